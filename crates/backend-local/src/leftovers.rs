//! [`stop_leftovers`]: stops the processes of jobs that an earlier gantry process left
//! running when it was killed (`kill -9`, a crash).
//!
//! A live gantry stops its jobs' processes itself ([`crate::tree`]). A killed one cannot:
//! its jobs' shells and whatever they started keep running, re-parented to init. The
//! next gantry in the same place (an agent started again in its work directory) finds
//! them by what every job process carries from its start:
//! - the job cookie ([`COOKIE_VAR`]): the process was started by this backend, for a job;
//! - a variable naming the job's workspace (the engine's `GANTRY_WORKSPACE`), which
//!   must lie inside the directory the caller owns (the agent's `jobs/`): the job was
//!   one of *that* directory's, not another agent's on the same machine, nor a `gantry
//!   run` elsewhere.
//!
//! Both are read from `/proc/<pid>/environ`, which is the environment a process was
//! started with: a script that changes or unsets the variables later does not change
//! its own entry, only its children's. Such children are still found when they stay in
//! the process group a marked job shell leads (every job's shell leads its own group).
//!
//! A pid read from `/proc` may be reused by an unrelated process before it is signalled.
//! So every process is signalled through a pidfd opened *before* its marks are checked
//! (again): a pidfd always names the process it was opened for, and if the pid was
//! reused before the open, the check reads the newcomer's environment and fails.

use std::ffi::OsStr;
use std::os::fd::OwnedFd;
use std::os::unix::ffi::OsStrExt;
use std::path::{Component, Path, PathBuf};
use std::time::{Duration, Instant};

use nix::unistd::getpgrp;
use rustix::process::{PidfdFlags, Signal, pidfd_open, pidfd_send_signal};

use crate::tree::{COOKIE_VAR, all_pids, stat};

/// How often the processes are looked for again while they are being stopped.
const POLL: Duration = Duration::from_millis(50);

/// How long to wait after SIGKILL before giving up (a process stuck in uninterruptible
/// sleep).
const KILL_WAIT: Duration = Duration::from_secs(5);

/// What [`stop_leftovers`] did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Leftovers {
    /// Processes it found and signalled.
    pub stopped: usize,
    /// Processes still there when it gave up waiting after SIGKILL.
    pub survivors: usize,
}

/// Stops the leftover processes of jobs whose workspace was inside `root`: every process
/// whose environment holds [`COOKIE_VAR`] and names in `var` a path inside `root`, and
/// every process of a process group such a process leads. They get SIGTERM (and
/// SIGCONT), `grace` to exit, then SIGKILL; processes they start meanwhile are found
/// and stopped too. Blocks until they are gone, or for at most `grace` plus 5 s.
///
/// Call it only when no job under `root` can be running legitimately: before the
/// executor that owns `root` starts (which is what the owner's lock file is for). This
/// process, its ancestors and its own process group are never signalled. Processes of
/// other users cannot be read and are left alone.
pub fn stop_leftovers(var: &str, root: &Path, grace: Duration) -> Leftovers {
    let marks = Marks::new(var, root);
    let spared = Spared::current();
    let mut signalled: Vec<i32> = Vec::new();
    let started = Instant::now();
    let mut signal = Signal::TERM;
    let mut deadline = started + grace;
    loop {
        let found = marks.find(&spared);
        if found.is_empty() {
            return Leftovers {
                stopped: signalled.len(),
                survivors: 0,
            };
        }
        let now = Instant::now();
        if now >= deadline {
            if signal == Signal::KILL {
                return Leftovers {
                    stopped: signalled.len(),
                    survivors: found.len(),
                };
            }
            signal = Signal::KILL;
            deadline = now + KILL_WAIT;
        }
        for (pid, pidfd) in &found {
            if !signalled.contains(pid) {
                signalled.push(*pid);
            }
            let _ = pidfd_send_signal(pidfd, signal);
            if signal == Signal::TERM {
                // A stopped process acts on SIGTERM only once continued.
                let _ = pidfd_send_signal(pidfd, Signal::CONT);
            }
        }
        std::thread::sleep(POLL);
    }
}

/// What marks a process as a job of `root`.
struct Marks {
    /// `VAR=`, as it starts an `environ` entry.
    var_prefix: Vec<u8>,
    cookie_prefix: Vec<u8>,
    /// `root` as given, and as the file system resolves it (when it exists).
    roots: Vec<PathBuf>,
}

impl Marks {
    fn new(var: &str, root: &Path) -> Marks {
        let mut roots = vec![root.to_path_buf()];
        if let Ok(real) = std::fs::canonicalize(root)
            && real != root
        {
            roots.push(real);
        }
        Marks {
            var_prefix: format!("{var}=").into_bytes(),
            cookie_prefix: format!("{COOKIE_VAR}=").into_bytes(),
            roots,
        }
    }

    /// Whether the environment `process` started with marks it as a job of the root.
    fn marked(&self, pid: i32) -> bool {
        // A zombie has no environment left; it is gone for this purpose.
        let Ok(environ) = std::fs::read(format!("/proc/{pid}/environ")) else {
            return false;
        };
        let mut cookie = false;
        let mut inside = false;
        for entry in environ.split(|&b| b == 0) {
            if entry.starts_with(&self.cookie_prefix) {
                cookie = true;
            } else if let Some(value) = entry.strip_prefix(self.var_prefix.as_slice()) {
                inside |= self.inside(Path::new(OsStr::from_bytes(value)));
            }
        }
        cookie && inside
    }

    /// Whether `path` is strictly inside one of the roots. A path with `..` is refused
    /// rather than resolved: the engine never makes one.
    fn inside(&self, path: &Path) -> bool {
        if !path.is_absolute() || path.components().any(|c| c == Component::ParentDir) {
            return false;
        }
        let within = |p: &Path| self.roots.iter().any(|r| p != r && p.starts_with(r));
        within(path) || std::fs::canonicalize(path).is_ok_and(|real| within(&real))
    }

    /// The leftover processes alive now, each with a pidfd opened before it was checked.
    fn find(&self, spared: &Spared) -> Vec<(i32, OwnedFd)> {
        let pids: Vec<i32> = all_pids()
            .into_iter()
            .filter(|&pid| !spared.pids.contains(&pid))
            .collect();
        // Groups led by a marked process: the job shells' own groups.
        let mut groups: Vec<i32> = Vec::new();
        let mut found = Vec::new();
        for &pid in &pids {
            // Checked before the pidfd is opened only to spare opening one per process
            // of the machine; the check after the open is the one that counts.
            if !self.marked(pid) {
                continue;
            }
            let Some(pidfd) = open(pid) else { continue };
            if !self.marked(pid) {
                continue;
            }
            if stat(pid).is_some_and(|s| s.pgrp == pid && s.pgrp != spared.group) {
                groups.push(pid);
            }
            found.push((pid, pidfd));
        }
        for &pid in &pids {
            if found.iter().any(|(p, _)| *p == pid) {
                continue;
            }
            let member =
                |pid| stat(pid).is_some_and(|s| s.state != b'Z' && groups.contains(&s.pgrp));
            if !member(pid) {
                continue;
            }
            let Some(pidfd) = open(pid) else { continue };
            if member(pid) {
                found.push((pid, pidfd));
            }
        }
        found
    }
}

/// A pidfd for `pid`, or `None` when it is gone (or pidfds are not supported, in which
/// case nothing is signalled: better a leftover than a wrong kill).
fn open(pid: i32) -> Option<OwnedFd> {
    let pid = rustix::process::Pid::from_raw(pid)?;
    pidfd_open(pid, PidfdFlags::empty()).ok()
}

/// Who is never signalled: this process and its ancestors, and its process group.
struct Spared {
    pids: Vec<i32>,
    group: i32,
}

impl Spared {
    fn current() -> Spared {
        let mut pids = Vec::new();
        let mut pid = std::process::id() as i32;
        while pid > 0 && !pids.contains(&pid) {
            pids.push(pid);
            pid = stat(pid).map_or(0, |s| s.ppid);
        }
        Spared {
            pids,
            group: getpgrp().as_raw(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_paths_strictly_inside_the_root_are_marks() {
        let marks = Marks::new("GANTRY_WORKSPACE", Path::new("/srv/agent/jobs"));
        for (path, inside) in [
            ("/srv/agent/jobs/12-build-1-1/work/build", true),
            ("/srv/agent/jobs/x", true),
            ("/srv/agent/jobs", false),
            ("/srv/agent/jobs2/x", false),
            ("/srv/agent/git", false),
            ("/srv/agent/jobs/../other/jobs/x", false),
            ("srv/agent/jobs/x", false),
            ("", false),
        ] {
            assert_eq!(marks.inside(Path::new(path)), inside, "{path}");
        }
    }

    #[test]
    fn this_process_and_its_group_are_spared() {
        let spared = Spared::current();
        assert_eq!(spared.pids.first(), Some(&(std::process::id() as i32)));
        assert!(spared.pids.len() >= 2, "the test runner has a parent");
        assert!(spared.group > 0);
    }
}
