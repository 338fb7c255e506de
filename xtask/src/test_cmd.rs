//! `cargo xtask test`: THE test command (README and `.ci/run` call exactly this).
//!
//! 1. Meets the [requirements](crate::requirements) (installing missing Debian packages,
//!    starting daemons), so it works on a fresh machine.
//!    With the Docker requirements among them, builds the test images
//!    ([`crate::images`], cached); with PostgreSQL among them, passes its test database
//!    to the tests as `GANTRY_TEST_POSTGRES` ([`crate::postgres::URL`]).
//! 2. Runs `cargo nextest run --workspace --no-fail-fast` (the `ci` profile of
//!    `.config/nextest.toml` when `CI=true`), or `cargo test --workspace --no-fail-fast`
//!    where nextest is missing, passing on any arguments given after `--`.
//! 3. Streams the output, repeats nextest's `Summary` line last so it closes the log, and
//!    exits with the runner's exit code.

use std::io::{self, BufRead, BufReader, IsTerminal, Write};
use std::path::Path;
use std::process::{Command, Stdio};

use anyhow::{Context, Result, bail};

use crate::images;
use crate::metadata::cargo;
use crate::process::{self, exit_code, say, search_path};
use crate::requirements::{self, ensure, selected};

/// Options of `cargo xtask test`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TestOptions {
    /// Extra requirement groups to set up (`--with docker`).
    pub with: Vec<String>,
    /// Arguments for the test runner (after `--`).
    pub runner_args: Vec<String>,
}

impl TestOptions {
    /// Parses `[--with GROUP]... [-- RUNNER_ARGS...]`.
    pub fn parse(args: &[String]) -> Result<Self> {
        let mut opts = Self::default();
        let mut it = args.iter();
        while let Some(arg) = it.next() {
            match arg.as_str() {
                "--" => {
                    opts.runner_args.extend(it.by_ref().cloned());
                }
                "--with" => {
                    let Some(group) = it.next() else {
                        bail!("`--with` needs a group name")
                    };
                    opts.with.push(group.clone());
                }
                other => match other.strip_prefix("--with=") {
                    Some(group) => opts.with.push(group.to_owned()),
                    None => bail!(
                        "unknown argument `{other}` (runner arguments go after `--`: \
                         cargo xtask test -- -E 'test(name)')"
                    ),
                },
            }
        }
        let groups = requirements::groups();
        for g in &opts.with {
            if !groups.contains(&g.as_str()) {
                bail!(
                    "unknown requirement group `{g}`; known: {}",
                    groups.join(", ")
                );
            }
        }
        Ok(opts)
    }
}

/// Runs the whole suite; returns the exit code to exit with.
pub fn run(root: &Path, opts: &TestOptions) -> Result<i32> {
    let reqs = selected(&opts.with);
    let fallbacks = ensure(&reqs)?;
    // With a Docker daemon set up, the container tests need their images (cached: a
    // second run only inspects them).
    if reqs.iter().any(|r| r.name == requirements::DOCKER_DAEMON) {
        images::run(root)?;
    }
    let ci = std::env::var("CI").is_ok_and(|v| v == "true" || v == "1");
    let use_nextest = !fallbacks.contains(&"cargo-nextest");
    let mut cmd = Command::new(cargo());
    cmd.current_dir(root)
        .args(runner_command(use_nextest, ci, &opts.runner_args));
    prepare_env(&mut cmd);
    // A CI build is built once and thrown away: incremental state would only take disk
    // (1.5 GB of it for this workspace) and time.
    if ci && std::env::var_os("CARGO_INCREMENTAL").is_none() {
        cmd.env("CARGO_INCREMENTAL", "0");
    }
    // The store tests run against PostgreSQL too; a URL the caller set wins.
    if reqs
        .iter()
        .any(|r| r.name == requirements::POSTGRES_DATABASE)
        && std::env::var_os("GANTRY_TEST_POSTGRES").is_none()
    {
        cmd.env("GANTRY_TEST_POSTGRES", crate::postgres::URL);
    }
    let piped = use_nextest && !io::stderr().is_terminal();
    if !piped {
        let status = process::run(&mut cmd)?;
        return Ok(exit_code(status));
    }
    // Not a terminal (CI, a log file): read nextest's stderr line by line, pass it through
    // at once, and repeat its summary at the very end, after anything xtask prints.
    say(&format!("$ {}", process::display(&cmd)));
    let mut child = cmd
        .stderr(Stdio::piped())
        .spawn()
        .with_context(|| format!("failed to start `{}`", process::display(&cmd)))?;
    let mut summary = None;
    let mut summary_was_last = false;
    if let Some(stderr) = child.stderr.take() {
        let mut out = io::stderr().lock();
        for line in BufReader::new(stderr).split(b'\n') {
            let line = line.context("reading the test runner's output")?;
            out.write_all(&line)?;
            out.write_all(b"\n")?;
            out.flush()?;
            let text = String::from_utf8_lossy(&line);
            summary_was_last = is_summary_line(&text);
            if summary_was_last {
                summary = Some(text.into_owned());
            }
        }
    }
    let status = child.wait()?;
    if let Some(summary) = summary.filter(|_| !summary_was_last) {
        let mut out = io::stderr().lock();
        writeln!(out, "{summary}")?;
    }
    Ok(exit_code(status))
}

/// The arguments to `cargo` that run the suite. `--workspace` is left out when the caller
/// picks packages itself (`-- -p xtask`).
pub fn runner_command(nextest: bool, ci: bool, extra: &[String]) -> Vec<String> {
    let picks_packages = extra
        .iter()
        .any(|a| a == "-p" || a.starts_with("--package") || (a.starts_with("-p") && a.len() > 2));
    let mut args: Vec<String> = if nextest {
        vec!["nextest".into(), "run".into()]
    } else {
        vec!["test".into()]
    };
    if !picks_packages {
        args.push("--workspace".into());
    }
    args.push("--no-fail-fast".into());
    if nextest
        && ci
        && !extra
            .iter()
            .any(|a| a.starts_with("--profile") || a == "-P")
    {
        args.extend(["--profile".into(), "ci".into()]);
    }
    args.extend(extra.iter().cloned());
    args
}

/// nextest's closing line: `     Summary [   1.234s] 12 tests run: 12 passed, 0 skipped`.
pub fn is_summary_line(line: &str) -> bool {
    line.trim_start().starts_with("Summary [")
}

fn prepare_env(cmd: &mut Command) {
    cmd.env("PATH", search_path());
    // Colors in a log file are noise; keep whatever the caller chose explicitly.
    if std::env::var_os("CARGO_TERM_COLOR").is_none() && !io::stderr().is_terminal() {
        cmd.env("CARGO_TERM_COLOR", "never");
    }
    // `cargo run` gave xtask the variables of xtask's own package; the tests must not
    // inherit them (a test reading CARGO_PKG_NAME must see its own crate's).
    for (key, _) in std::env::vars_os() {
        let key = key.to_string_lossy();
        if key.starts_with("CARGO_PKG_")
            || matches!(
                key.as_ref(),
                "CARGO_MANIFEST_DIR"
                    | "CARGO_MANIFEST_PATH"
                    | "CARGO_CRATE_NAME"
                    | "CARGO_BIN_NAME"
                    | "CARGO_PRIMARY_PACKAGE"
            )
        {
            cmd.env_remove(key.as_ref());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn strings(s: &[&str]) -> Vec<String> {
        s.iter().map(|s| (*s).to_owned()).collect()
    }

    fn check_parse(args: &[&str], expect: Result<(&[&str], &[&str]), &str>) {
        let got = TestOptions::parse(&strings(args)).map_err(|e| e.to_string());
        let expect = expect
            .map(|(with, runner)| TestOptions {
                with: strings(with),
                runner_args: strings(runner),
            })
            .map_err(str::to_owned);
        assert_eq!(got, expect, "args: {args:?}");
    }

    #[test]
    fn parses_options() {
        check_parse(&[], Ok((&[], &[])));
        check_parse(&["--with", "docker"], Ok((&["docker"], &[])));
        check_parse(
            &["--with=docker", "--", "-E", "test(x)"],
            Ok((&["docker"], &["-E", "test(x)"])),
        );
        check_parse(
            &["--", "--with", "docker"],
            Ok((&[], &["--with", "docker"])),
        );
        check_parse(&["--with"], Err("`--with` needs a group name"));
        check_parse(
            &["--with", "kube"],
            Err("unknown requirement group `kube`; known: base, docker, postgres"),
        );
        check_parse(
            &["-p", "xtask"],
            Err(
                "unknown argument `-p` (runner arguments go after `--`: cargo xtask test -- -E \
                 'test(name)')",
            ),
        );
    }

    #[test]
    fn runner_commands() {
        for (nextest, ci, extra, expect) in [
            (
                true,
                false,
                &[][..],
                "nextest run --workspace --no-fail-fast",
            ),
            (
                true,
                true,
                &[],
                "nextest run --workspace --no-fail-fast --profile ci",
            ),
            (
                true,
                true,
                &["--profile", "default"],
                "nextest run --workspace --no-fail-fast --profile default",
            ),
            (
                true,
                false,
                &["-p", "xtask"],
                "nextest run --no-fail-fast -p xtask",
            ),
            (
                true,
                false,
                &["--package=xtask"],
                "nextest run --no-fail-fast --package=xtask",
            ),
            (false, true, &[], "test --workspace --no-fail-fast"),
            (false, false, &["-pxtask"], "test --no-fail-fast -pxtask"),
        ] {
            assert_eq!(
                runner_command(nextest, ci, &strings(extra)).join(" "),
                expect,
                "{extra:?}"
            );
        }
    }

    #[test]
    fn summary_lines() {
        for (line, expect) in [
            (
                "     Summary [   1.234s] 12 tests run: 12 passed, 0 skipped",
                true,
            ),
            (
                "Summary [   0.010s] 3 tests run: 2 passed, 1 failed, 0 skipped",
                true,
            ),
            ("        PASS [   0.003s] xtask tidy::module_docs", false),
            ("test summary_lines ... ok", false),
        ] {
            assert_eq!(is_summary_line(line), expect, "{line}");
        }
    }
}
