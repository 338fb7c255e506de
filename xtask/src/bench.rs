//! `cargo xtask bench [--record]`: runs the workspace's benches in release mode and, with
//! `--record`, writes their results into docs/benchmarks.md.
//!
//! Each bench is a `harness = false` binary that prints its results as lines on stdout;
//! those lines are recorded as they are. Only the part of docs/benchmarks.md between
//! [`BEGIN`] and [`END`] is rewritten, so the prose around it stays.

use std::fs;
use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::Stdio;
use std::time::{SystemTime, UNIX_EPOCH};

use anyhow::{Context, Result, bail};

use crate::metadata::{Workspace, cargo};
use crate::process::{self, command, say};

/// The packages whose benches run, in this order. A package without benches yet is skipped.
pub const PACKAGES: &[&str] = &[
    "gantry-pipeline",
    "gantry-backend-local",
    "gantry-backend-docker",
    "gantry-engine",
    "gantry-store",
    "gantry-server",
    "gantry",
];

/// Opening marker of the recorded section.
pub const BEGIN: &str = "<!-- bench:begin -->";
/// Closing marker of the recorded section.
pub const END: &str = "<!-- bench:end -->";

/// One line a bench printed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BenchLine {
    /// `package/bench-target`.
    pub bench: String,
    /// The line as printed.
    pub line: String,
}

/// The machine a recording was made on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Machine {
    /// `YYYY-MM-DD` (UTC).
    pub date: String,
    /// What `nproc` says.
    pub cpus: String,
    /// `model name` from /proc/cpuinfo.
    pub cpu_model: String,
    /// `rustc --version`.
    pub rustc: String,
}

/// Runs every bench; with `record`, rewrites docs/benchmarks.md.
pub fn run(root: &Path, record: bool) -> Result<()> {
    let ws = Workspace::load(root)?;
    let mut lines = Vec::new();
    for package in PACKAGES {
        let Some(member) = ws.member(package) else {
            say(&format!("{package}: not in the workspace, skipped"));
            continue;
        };
        let benches = member.benches();
        if benches.is_empty() {
            say(&format!("{package}: no benches yet, skipped"));
            continue;
        }
        for bench in benches {
            lines.extend(run_one(root, package, bench)?);
        }
    }
    if lines.is_empty() {
        if record {
            bail!("no bench printed anything: nothing to record");
        }
        say("no bench printed anything");
        return Ok(());
    }
    if record {
        let path = root.join("docs/benchmarks.md");
        let doc =
            fs::read_to_string(&path).with_context(|| format!("cannot read {}", path.display()))?;
        let updated = replace_section(&doc, &render(&Machine::current(), &lines))?;
        fs::write(&path, updated).with_context(|| format!("cannot write {}", path.display()))?;
        say(&format!(
            "recorded {} result line(s) in {}",
            lines.len(),
            path.display()
        ));
    }
    Ok(())
}

/// `cargo bench -p PACKAGE --bench BENCH`, passing its stdout through and keeping it.
fn run_one(root: &Path, package: &str, bench: &str) -> Result<Vec<BenchLine>> {
    let mut cmd = command(&cargo());
    cmd.current_dir(root)
        .args(["bench", "-p", package, "--bench", bench])
        .stdout(Stdio::piped());
    say(&format!("$ {}", process::display(&cmd)));
    let mut child = cmd
        .spawn()
        .with_context(|| format!("failed to start `{}`", process::display(&cmd)))?;
    let mut lines = Vec::new();
    if let Some(stdout) = child.stdout.take() {
        for line in BufReader::new(stdout).lines() {
            let line = line.context("reading bench output")?;
            #[expect(
                clippy::print_stdout,
                reason = "the bench's own output, passed through"
            )]
            {
                println!("{line}");
            }
            if !line.trim().is_empty() {
                lines.push(BenchLine {
                    bench: format!("{package}/{bench}"),
                    line,
                });
            }
        }
    }
    let status = child.wait()?;
    if !status.success() {
        bail!("bench `{package}/{bench}` failed ({status})");
    }
    Ok(lines)
}

impl Machine {
    /// This machine, now.
    pub fn current() -> Self {
        let cpus = std::thread::available_parallelism().map_or("?".to_owned(), |n| n.to_string());
        let cpu_model = fs::read_to_string("/proc/cpuinfo")
            .ok()
            .and_then(|info| {
                info.lines()
                    .find(|l| l.starts_with("model name"))
                    .and_then(|l| l.split_once(':'))
                    .map(|(_, v)| v.trim().to_owned())
            })
            .unwrap_or_else(|| "unknown".to_owned());
        let rustc = command("rustc")
            .arg("--version")
            .output()
            .ok()
            .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
            .filter(|v| !v.is_empty())
            .unwrap_or_else(|| "unknown".to_owned());
        let days = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_secs() / 86_400);
        Self {
            date: civil_date(days),
            cpus,
            cpu_model,
            rustc,
        }
    }
}

/// The recorded section (markers excluded): the machine, then one row per result line.
pub fn render(machine: &Machine, lines: &[BenchLine]) -> String {
    let mut out = String::new();
    out.push_str("Recorded with `cargo xtask bench --record`.\n\n");
    out.push_str("| date | CPUs (`nproc`) | CPU | rustc |\n|---|---|---|---|\n");
    out.push_str(&format!(
        "| {} | {} | {} | {} |\n\n",
        cell(&machine.date),
        cell(&machine.cpus),
        cell(&machine.cpu_model),
        cell(&machine.rustc)
    ));
    out.push_str("| bench | result |\n|---|---|\n");
    for l in lines {
        out.push_str(&format!("| `{}` | {} |\n", l.bench, cell(l.line.trim())));
    }
    out
}

fn cell(s: &str) -> String {
    s.replace('|', "\\|")
}

/// `doc` with the text between [`BEGIN`] and [`END`] replaced by `section`.
pub fn replace_section(doc: &str, section: &str) -> Result<String> {
    let (Some(begin), Some(end)) = (doc.find(BEGIN), doc.find(END)) else {
        bail!("docs/benchmarks.md lacks the markers `{BEGIN}` and `{END}`");
    };
    if end < begin {
        bail!("docs/benchmarks.md has `{END}` before `{BEGIN}`");
    }
    let head = &doc[..begin + BEGIN.len()];
    let tail = &doc[end..];
    Ok(format!("{head}\n{}\n{tail}", section.trim_end()))
}

/// `YYYY-MM-DD` of the day `days` after 1970-01-01 (proleptic Gregorian; H. Hinnant's
/// days-to-civil algorithm), so no date crate is needed.
pub fn civil_date(days: u64) -> String {
    let z = days as i64 + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1_460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!("{year:04}-{month:02}-{day:02}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn civil_dates() {
        for (days, expect) in [
            (0, "1970-01-01"),
            (59, "1970-03-01"),
            (10_957, "2000-01-01"),
            (11_016, "2000-02-29"),
            (20_786, "2026-11-29"),
        ] {
            assert_eq!(civil_date(days), expect, "day {days}");
        }
    }

    fn sample() -> (Machine, Vec<BenchLine>) {
        let machine = Machine {
            date: "2026-11-29".into(),
            cpus: "2".into(),
            cpu_model: "Some CPU @ 2.0GHz".into(),
            rustc: "rustc 1.95.0".into(),
        };
        let lines = vec![
            BenchLine {
                bench: "gantry-pipeline/plan".into(),
                line: "plan 2000 jobs: 12.3 ms".into(),
            },
            BenchLine {
                bench: "gantry-engine/dag".into(),
                line: "a | b".into(),
            },
        ];
        (machine, lines)
    }

    #[test]
    fn renders_a_table() {
        let (machine, lines) = sample();
        assert_eq!(
            render(&machine, &lines),
            "Recorded with `cargo xtask bench --record`.\n\n\
             | date | CPUs (`nproc`) | CPU | rustc |\n|---|---|---|---|\n\
             | 2026-11-29 | 2 | Some CPU @ 2.0GHz | rustc 1.95.0 |\n\n\
             | bench | result |\n|---|---|\n\
             | `gantry-pipeline/plan` | plan 2000 jobs: 12.3 ms |\n\
             | `gantry-engine/dag` | a \\| b |\n"
        );
    }

    #[test]
    fn replaces_only_between_markers() {
        let doc =
            format!("# Title\n\nProse before.\n\n{BEGIN}\nold results\n{END}\n\nProse after.\n");
        let once = replace_section(&doc, "new results\n").expect("markers present");
        assert_eq!(
            once,
            format!("# Title\n\nProse before.\n\n{BEGIN}\nnew results\n{END}\n\nProse after.\n")
        );
        // Recording again replaces, never accumulates.
        assert_eq!(
            replace_section(&once, "new results\n").expect("markers present"),
            once
        );
    }

    #[test]
    fn missing_markers_are_an_error() {
        let err = replace_section("no markers", "x").expect_err("markers missing");
        assert_eq!(
            err.to_string(),
            "docs/benchmarks.md lacks the markers `<!-- bench:begin -->` and `<!-- bench:end -->`"
        );
        let err = replace_section(&format!("{END}\n{BEGIN}"), "x").expect_err("wrong order");
        assert_eq!(
            err.to_string(),
            "docs/benchmarks.md has `<!-- bench:end -->` before `<!-- bench:begin -->`"
        );
    }

    #[test]
    fn the_repository_doc_has_the_markers() {
        let doc = fs::read_to_string(crate::metadata::workspace_root().join("docs/benchmarks.md"))
            .expect("docs/benchmarks.md exists");
        assert!(
            replace_section(&doc, "x").is_ok(),
            "docs/benchmarks.md must keep its markers"
        );
    }
}
