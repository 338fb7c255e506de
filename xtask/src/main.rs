//! `cargo xtask`: gantry's project tasks (`tidy`, `test`, `images`, `bench`). Argument
//! parsing only; the tasks live in the library.

use std::process::ExitCode;

use anyhow::{Result, bail};
use xtask::metadata::workspace_root;
use xtask::process::say;
use xtask::test_cmd::TestOptions;
use xtask::tidy::{self, Verdict};
use xtask::{bench, images, test_cmd};

const USAGE: &str = "\
usage: cargo xtask <task>

tasks:
  tidy                         architecture and hygiene checks (also run by `cargo test`)
  test [--with GROUP] [-- ARGS]
                               THE test command: installs what the tests need (Debian
                               packages, daemons), then runs the whole suite with nextest;
                               ARGS go to `cargo nextest run` (e.g. -- -p gantry-engine)
                               set up by default: docker (docker.io, dockerd, debootstrap,
                               docker-registry on 127.0.0.1:5000) and the test images
  images                       builds the container images the tests use (Debian base
                               by debootstrap + docker import, then docker build on top);
                               installs docker.io/debootstrap and starts dockerd first
                               when missing; cached: an unchanged recipe's image is kept
  bench [--record]             runs the benches in release mode; --record writes the
                               results into docs/benchmarks.md";

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match dispatch(&args) {
        Ok(code) => ExitCode::from(u8::try_from(code).unwrap_or(1)),
        Err(e) => {
            say(&format!("error: {e:#}"));
            ExitCode::from(2)
        }
    }
}

fn dispatch(args: &[String]) -> Result<i32> {
    let root = workspace_root();
    let Some((task, rest)) = args.split_first() else {
        say(USAGE);
        return Ok(2);
    };
    match task.as_str() {
        "tidy" => {
            if let Some(extra) = rest.first() {
                bail!("`tidy` takes no arguments, got `{extra}`");
            }
            tidy_report(&root)
        }
        "test" => test_cmd::run(&root, &TestOptions::parse(rest)?),
        "images" => {
            if let Some(extra) = rest.first() {
                bail!("`images` takes no arguments, got `{extra}`");
            }
            // The images need a Docker daemon and debootstrap: set those up first, so
            // that `cargo xtask images` works on a fresh machine too.
            let docker: Vec<_> = xtask::requirements::selected(&[])
                .into_iter()
                .filter(|r| r.group == "docker")
                .collect();
            xtask::requirements::ensure(&docker)?;
            images::run(&root)?;
            Ok(0)
        }
        "bench" => {
            let record = match rest {
                [] => false,
                [flag] if flag == "--record" => true,
                _ => bail!("usage: cargo xtask bench [--record]"),
            };
            bench::run(&root, record)?;
            Ok(0)
        }
        "help" | "-h" | "--help" => {
            say(USAGE);
            Ok(0)
        }
        other => bail!("unknown task `{other}`\n{USAGE}"),
    }
}

fn tidy_report(root: &std::path::Path) -> Result<i32> {
    let mut failed = 0;
    for (name, verdict) in tidy::run_all(root)? {
        match verdict {
            Verdict::Ok => say(&format!("tidy: {name}: ok")),
            Verdict::Skipped(why) => say(&format!("tidy: {name}: skipped: {why}")),
            Verdict::Failed(problems) => {
                failed += 1;
                say(&format!("tidy: {name}: FAILED"));
                for p in problems {
                    say(&format!("  {p}"));
                }
            }
        }
    }
    if failed > 0 {
        say(&format!("tidy: {failed} check(s) failed"));
        return Ok(1);
    }
    Ok(0)
}
