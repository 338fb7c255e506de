//! SIGINT and SIGTERM during a run: the first cancels the run cleanly through its
//! `CancellationToken` (jobs are killed, teardown runs); a second one kills what is left
//! and exits at once with 130.

use gantry_backend::CancellationToken;
use tokio::signal::unix::{Signal, SignalKind, signal};
use tokio::sync::mpsc::UnboundedSender;

/// The installed handlers. Installing them before the run starts means a signal never
/// meets the default action (instant death, leaving jobs behind).
pub struct Signals {
    int: Signal,
    term: Signal,
}

impl Signals {
    /// Installs the handlers.
    pub fn install() -> std::io::Result<Signals> {
        Ok(Signals {
            int: signal(SignalKind::interrupt())?,
            term: signal(SignalKind::terminate())?,
        })
    }

    /// Waits for the next signal; says which, in words.
    pub async fn next(&mut self) -> &'static str {
        tokio::select! {
            _ = self.int.recv() => "interrupted",
            _ = self.term.recv() => "terminated",
        }
    }

    /// Watches for signals for the rest of the run; messages for the user go to `notices`.
    pub fn watch(mut self, cancel: CancellationToken, notices: UnboundedSender<String>) {
        tokio::spawn(async move {
            let what = self.next().await;
            // The notice goes first so that it is printed before the cancelled jobs.
            let _ = notices.send(format!(
                "{what}: cancelling the run (stopping jobs, cleaning up); \
                 press Ctrl-C again to exit at once"
            ));
            cancel.cancel();
            let what = self.next().await;
            kill_children();
            crate::term::restore();
            crate::paint::err(&format!("{what} again: killed running jobs, exiting\n"));
            std::process::exit(130);
        });
    }
}

/// Kills every child process and its process group, best effort. gantry is a subreaper,
/// so orphaned grandchildren are its children too; a few passes catch the ones that are
/// re-parented while we kill.
pub fn kill_children() {
    use nix::sys::signal::{Signal, kill, killpg};
    use nix::unistd::{Pid, getpgrp};
    let me = std::process::id() as i32;
    let own_group = getpgrp();
    for _ in 0..3 {
        let children = children_of(me);
        if children.is_empty() {
            break;
        }
        for (pid, pgid) in children {
            if Pid::from_raw(pgid) != own_group {
                let _ = killpg(Pid::from_raw(pgid), Signal::SIGKILL);
            }
            let _ = kill(Pid::from_raw(pid), Signal::SIGKILL);
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
}

/// `(pid, pgid)` of the processes whose parent is `parent`, from `/proc`.
fn children_of(parent: i32) -> Vec<(i32, i32)> {
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    dir.filter_map(Result::ok)
        .filter_map(|e| e.file_name().to_str()?.parse::<i32>().ok())
        .filter_map(|pid| {
            let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
            let (ppid, pgid) = parse_stat(&stat)?;
            (ppid == parent).then_some((pid, pgid))
        })
        .collect()
}

/// `(ppid, pgid)` from a `/proc/PID/stat` line. The command name may contain spaces and
/// parentheses, so fields are counted from the last `)`.
fn parse_stat(stat: &str) -> Option<(i32, i32)> {
    let rest = &stat[stat.rfind(')')? + 1..];
    let mut fields = rest.split_whitespace();
    let _state = fields.next()?;
    let ppid = fields.next()?.parse().ok()?;
    let pgid = fields.next()?.parse().ok()?;
    Some((ppid, pgid))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stat_with_odd_command_names() {
        assert_eq!(parse_stat("42 (sh) S 7 42 42 0 -1"), Some((7, 42)));
        assert_eq!(parse_stat("42 (a) b (c)) R 9 11 11 0"), Some((9, 11)));
        assert_eq!(parse_stat("garbage"), None);
    }

    #[test]
    fn finds_own_children() {
        let mut child = std::process::Command::new("sleep")
            .arg("30")
            .spawn()
            .expect("spawn");
        let me = std::process::id() as i32;
        let found = children_of(me);
        assert!(
            found.iter().any(|(pid, _)| *pid == child.id() as i32),
            "{found:?}"
        );
        let _ = child.kill();
        let _ = child.wait();
    }
}
