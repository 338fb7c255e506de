//! Running other programs: the few helpers every task uses, so that each command is
//! echoed the same way and exit codes are passed on faithfully.

use std::ffi::OsString;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};

/// Writes a progress line of xtask itself (to stderr, where cargo and nextest write theirs).
pub fn say(msg: &str) {
    #[expect(clippy::print_stderr, reason = "xtask's own progress lines")]
    {
        eprintln!("xtask: {msg}");
    }
}

/// A command for `program`, searched on [`search_path`] (and run with it as `PATH`).
pub fn command(program: &str) -> Command {
    let mut cmd = Command::new(program);
    cmd.env("PATH", search_path());
    cmd
}

/// `PATH` plus the sbin folders, where Debian puts daemons and admin tools (`dockerd`,
/// `debootstrap`): a non-login root shell may lack them, and the tests need them. Plus
/// `CARGO_HOME/bin`, where [`cargo install`](crate::requirements::cargo_install) puts
/// the tools built from crates.io (geckodriver).
pub fn search_path() -> OsString {
    let current = std::env::var_os("PATH").unwrap_or_default();
    let mut dirs: Vec<PathBuf> = std::env::split_paths(&current).collect();
    let cargo_bin = cargo_home().join("bin");
    for extra in [
        Path::new("/usr/local/sbin"),
        Path::new("/usr/sbin"),
        Path::new("/sbin"),
        Path::new("/usr/local/bin"),
        Path::new("/usr/bin"),
        Path::new("/bin"),
        &cargo_bin,
    ] {
        if !dirs.iter().any(|d| d == extra) {
            dirs.push(extra.into());
        }
    }
    std::env::join_paths(dirs).unwrap_or(current)
}

/// Cargo's home, as cargo finds it: `CARGO_HOME`, else `~/.cargo`.
pub fn cargo_home() -> PathBuf {
    if let Some(home) = std::env::var_os("CARGO_HOME").filter(|h| !h.is_empty()) {
        return home.into();
    }
    let home = std::env::var_os("HOME").unwrap_or_else(|| "/root".into());
    PathBuf::from(home).join(".cargo")
}

/// The command line as a shell would show it.
pub fn display(cmd: &Command) -> String {
    let mut parts = vec![cmd.get_program().to_string_lossy().into_owned()];
    parts.extend(cmd.get_args().map(|a| a.to_string_lossy().into_owned()));
    parts.join(" ")
}

/// Runs `cmd` with inherited stdio, after echoing it.
pub fn run(cmd: &mut Command) -> Result<ExitStatus> {
    say(&format!("$ {}", display(cmd)));
    cmd.status()
        .with_context(|| format!("failed to start `{}`", display(cmd)))
}

/// Whether `argv` runs and exits 0 within `timeout`, with all output discarded. A command
/// that is not installed, fails or hangs (a daemon socket that never answers) is `false`.
pub fn succeeds(argv: &[&str], timeout: Duration) -> bool {
    let Some((program, args)) = argv.split_first() else {
        return false;
    };
    let Ok(mut child) = command(program)
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
    else {
        return false;
    };
    let deadline = Instant::now() + timeout;
    loop {
        match child.try_wait() {
            Ok(Some(status)) => return status.success(),
            Ok(None) if Instant::now() < deadline => thread::sleep(Duration::from_millis(50)),
            _ => {
                // Hung or unwaitable: not usable. Kill and reap so nothing is left behind.
                let _ = child.kill();
                let _ = child.wait();
                return false;
            }
        }
    }
}

/// The exit code to pass on for a finished child: its own, or 128 + signal like a shell.
pub fn exit_code(status: ExitStatus) -> i32 {
    if let Some(code) = status.code() {
        return code;
    }
    #[cfg(unix)]
    {
        use std::os::unix::process::ExitStatusExt;
        if let Some(signal) = status.signal() {
            return 128 + signal;
        }
    }
    1
}

/// Whether this process runs as root (real uid 0), from /proc: no libc dependency needed.
pub fn is_root() -> bool {
    let Ok(status) = fs::read_to_string("/proc/self/status") else {
        return false;
    };
    status
        .lines()
        .find_map(|l| l.strip_prefix("Uid:"))
        .and_then(|ids| ids.split_whitespace().next())
        == Some("0")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn succeeds_reports_exit_status_and_missing_programs() {
        let t = Duration::from_secs(30);
        assert!(succeeds(&["sh", "-c", "exit 0"], t));
        assert!(!succeeds(&["sh", "-c", "exit 3"], t));
        assert!(!succeeds(&["gantry-no-such-program-xyz"], t));
        assert!(!succeeds(&[], t));
    }

    #[test]
    fn search_path_has_the_sbin_folders_and_cargo_installs() {
        let dirs: Vec<PathBuf> = std::env::split_paths(&search_path()).collect();
        for dir in [
            PathBuf::from("/usr/sbin"),
            PathBuf::from("/usr/bin"),
            cargo_home().join("bin"),
        ] {
            assert!(dirs.contains(&dir), "{} in {dirs:?}", dir.display());
        }
    }

    #[test]
    fn succeeds_gives_up_on_a_hung_command() {
        assert!(!succeeds(&["sleep", "30"], Duration::from_millis(200)));
    }

    #[test]
    fn exit_codes_are_passed_on() {
        let status = |script: &str| {
            Command::new("sh")
                .args(["-c", script])
                .status()
                .expect("sh runs")
        };
        assert_eq!(exit_code(status("exit 0")), 0);
        assert_eq!(exit_code(status("exit 101")), 101);
        assert_eq!(exit_code(status("kill -TERM $$")), 128 + 15);
    }
}
