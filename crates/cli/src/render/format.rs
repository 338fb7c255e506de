//! Text both renderers share: durations, sizes, job status lines and the summary table.

use std::fmt::Write as _;
use std::time::Duration;

use gantry_engine::{JobStatus, RunStatus};

use crate::paint::Paint;
use crate::state::{JobState, RunState};

/// `0.3s`, `12.0s`, `2m03s`, `1h02m`.
pub fn duration(d: Duration) -> String {
    let secs = d.as_secs();
    if secs < 60 {
        format!("{:.1}s", d.as_secs_f64())
    } else if secs < 3600 {
        format!("{}m{:02}s", secs / 60, secs % 60)
    } else {
        format!("{}h{:02}m", secs / 3600, (secs % 3600) / 60)
    }
}

/// `512 B`, `1.2 KiB`, `3.4 MiB`.
pub fn size(bytes: u64) -> String {
    const UNITS: [&str; 4] = ["KiB", "MiB", "GiB", "TiB"];
    if bytes < 1024 {
        return format!("{bytes} B");
    }
    let mut value = bytes as f64 / 1024.0;
    let mut unit = 0;
    while value >= 1024.0 && unit + 1 < UNITS.len() {
        value /= 1024.0;
        unit += 1;
    }
    format!("{value:.1} {}", UNITS[unit])
}

/// Makes a log line safe to show on one terminal line: ANSI escapes and control
/// characters removed, tabs expanded to one space.
pub fn sanitize(text: &str) -> String {
    let stripped = console::strip_ansi_codes(text);
    stripped
        .chars()
        .filter_map(|c| match c {
            '\t' => Some(' '),
            c if c.is_control() => None,
            c => Some(c),
        })
        .collect()
}

/// The line printed when a job reaches its final status, e.g. `✓ build  1.2s`,
/// `✗ test  failed with exit code 1  0.3s`, `- deploy  skipped: needs "test", which failed`.
pub fn status_line(job: &JobState, paint: Paint) -> String {
    let Some(status) = &job.status else {
        return format!("? {}", job.name);
    };
    let name = paint.bold(&job.name);
    let took = paint.dim(duration(job.duration));
    let tries = if job.attempts > 1 {
        paint.dim(format!(" ({} attempts)", job.attempts))
    } else {
        String::new()
    };
    match status {
        JobStatus::Succeeded => format!("{} {name}  {took}{tries}", paint.green("✓")),
        JobStatus::Failed {
            outcome,
            allowed: false,
        } => {
            format!(
                "{} {name}  {}  {took}{tries}",
                paint.red("✗"),
                paint.red(outcome)
            )
        }
        JobStatus::Failed {
            outcome,
            allowed: true,
        } => format!(
            "{} {name}  {} (allowed to fail)  {took}{tries}",
            paint.yellow("!"),
            paint.yellow(outcome)
        ),
        JobStatus::Errored { message } => format!(
            "{} {name}  {}  {took}{tries}",
            paint.red("✗"),
            paint.red(format!("error: {message}"))
        ),
        JobStatus::Skipped { reason } => {
            format!(
                "{} {}",
                paint.dim("-"),
                paint.dim(format!("{}  skipped: {reason}", job.name))
            )
        }
        JobStatus::Cancelled if job.attempts == 0 => {
            format!(
                "{} {}",
                paint.dim("-"),
                paint.dim(format!("{}  cancelled before it started", job.name))
            )
        }
        JobStatus::Cancelled => {
            format!(
                "{} {name}  {}  {took}",
                paint.yellow("✗"),
                paint.yellow("cancelled")
            )
        }
    }
}

/// True for statuses whose last log lines are worth showing.
pub fn is_failure(status: &JobStatus) -> bool {
    matches!(status, JobStatus::Failed { .. } | JobStatus::Errored { .. })
}

/// What the summary needs besides the run state.
#[derive(Debug, Clone, Default)]
pub struct SummaryInfo {
    /// The run's number.
    pub number: u64,
    /// The run directory, as shown to the user.
    pub dir: Option<String>,
    /// Run directories deleted by `--keep`.
    pub pruned: Vec<u64>,
}

/// The closing summary: a table of jobs, the artifacts, the total and where things are.
pub fn summary(state: &RunState, info: &SummaryInfo, paint: Paint) -> String {
    let mut out = String::new();
    let width = state
        .jobs
        .iter()
        .map(|j| j.name.chars().count())
        .max()
        .unwrap_or(3)
        .max(3);
    let _ = writeln!(
        out,
        "\n{}",
        paint.bold(format!(
            "{:<width$}  {:<15}  {:>8}  {:>8}",
            "JOB", "STATUS", "DURATION", "ATTEMPTS"
        ))
    );
    for job in &state.jobs {
        let word = job.status.as_ref().map_or("not run", JobStatus::word);
        let padded = format!("{word:<15}");
        let colored = match &job.status {
            Some(JobStatus::Succeeded) => paint.green(padded),
            Some(JobStatus::Failed { allowed: false, .. } | JobStatus::Errored { .. }) => {
                paint.red(padded)
            }
            Some(JobStatus::Failed { allowed: true, .. } | JobStatus::Cancelled) => {
                paint.yellow(padded)
            }
            _ => paint.dim(padded),
        };
        let took = if job.attempts == 0 {
            "-".to_owned()
        } else {
            duration(job.duration)
        };
        let _ = writeln!(
            out,
            "{:<width$}  {colored}  {took:>8}  {:>8}",
            job.name, job.attempts
        );
    }

    let artifacts: Vec<_> = state
        .jobs
        .iter()
        .flat_map(|j| j.artifacts.iter().map(move |a| (j, a)))
        .collect();
    if !artifacts.is_empty() {
        let _ = writeln!(out, "\n{}", paint.bold("artifacts:"));
        for (job, a) in artifacts {
            let short = a.digest.get(..12).unwrap_or(&a.digest);
            let _ = writeln!(
                out,
                "  {}  {}  {}",
                a.path,
                paint.dim(size(a.size)),
                paint.dim(format!("from {}, sha256:{short}", job.name))
            );
        }
    }

    let counts: Vec<String> = state
        .counts()
        .iter()
        .map(|(w, n)| format!("{n} {w}"))
        .collect();
    let counts = if counts.is_empty() {
        "no jobs".to_owned()
    } else {
        counts.join(", ")
    };
    let took = duration(state.duration);
    let n = info.number;
    let total = match state.status {
        Some(RunStatus::Succeeded) => {
            format!("{} run {n} succeeded in {took}: {counts}", paint.green("✓"))
        }
        Some(RunStatus::Failed) => {
            format!("{} run {n} failed in {took}: {counts}", paint.red("✗"))
        }
        Some(RunStatus::Cancelled) => {
            format!(
                "{} run {n} cancelled after {took}: {counts}",
                paint.yellow("✗")
            )
        }
        None => format!(
            "{} run {n} ended without a result: {counts}",
            paint.red("✗")
        ),
    };
    let _ = writeln!(out, "\n{total}");
    if let Some(dir) = &info.dir {
        let _ = writeln!(out, "  logs, artifacts and summary.json: {dir}");
    }
    if !info.pruned.is_empty() {
        let list: Vec<String> = info.pruned.iter().map(u64::to_string).collect();
        let _ = writeln!(
            out,
            "  {}",
            paint.dim(format!("pruned old runs (--keep): {}", list.join(", ")))
        );
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        for (d, want) in [
            (Duration::from_millis(0), "0.0s"),
            (Duration::from_millis(340), "0.3s"),
            (Duration::from_millis(59_940), "59.9s"),
            (Duration::from_secs(123), "2m03s"),
            (Duration::from_secs(3720), "1h02m"),
        ] {
            assert_eq!(duration(d), want, "{d:?}");
        }
    }

    #[test]
    fn sizes() {
        for (b, want) in [
            (0, "0 B"),
            (1023, "1023 B"),
            (1536, "1.5 KiB"),
            (5 << 20, "5.0 MiB"),
        ] {
            assert_eq!(size(b), want);
        }
    }

    #[test]
    fn sanitizes_terminal_controls() {
        assert_eq!(sanitize("\x1b[31mred\x1b[0m\tok\r\x07"), "red ok");
    }
}
