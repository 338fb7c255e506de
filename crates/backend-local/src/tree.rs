//! The processes of one job: finding them, stopping them, reaping them.
//!
//! A job's processes are found two ways:
//! - its **process group**: the shell is started as the leader of a new group, and
//!   everything it starts stays in that group unless it asks to leave;
//! - its **cookie**: an environment variable unique to the job, inherited by every
//!   descendant, so that processes that left the group (`setsid`, `set -m`) can still be
//!   recognised by reading `/proc/<pid>/environ`. A process that scrubs its environment
//!   *and* leaves the group escapes; catching that needs cgroups, which a host process
//!   cannot count on having.
//!
//! Stopping means SIGTERM, a grace period, then SIGKILL. Reaping matters because gantry
//! is meant to run as a child subreaper ([`become_subreaper`]): orphans of a job are
//! re-parented to gantry instead of init, and every one that dies is a zombie until gantry
//! waits for it. gantry never calls `waitpid(-1)`, which would steal the exit status of
//! children that tokio or other code is waiting for; it reaps only processes it knows to
//! be a job's: members of a finished job's group, cookie carriers it has seen, and zombie
//! children that made themselves session leaders (only a process that ran `setsid`
//! itself is one; gantry starts none that way).

use std::collections::HashSet;
use std::io;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use nix::errno::Errno;
use nix::sys::signal::{Signal, kill, killpg};
use nix::sys::wait::{WaitPidFlag, WaitStatus, waitpid};
use nix::unistd::{Pid, getpgid, getsid};
use tokio::process::Child;
use tokio::time::Instant;

/// The environment variable that marks every process of a job.
pub const COOKIE_VAR: &str = "GANTRY_JOB_COOKIE";

/// How often the tree is checked while waiting for it to die.
const POLL: Duration = Duration::from_millis(10);

/// How long to wait after SIGKILL before giving up (a process stuck in uninterruptible
/// sleep, or one that is not ours to kill).
const KILL_WAIT: Duration = Duration::from_secs(5);

static SUBREAPER: AtomicBool = AtomicBool::new(false);

/// Makes this process a child subreaper (`PR_SET_CHILD_SUBREAPER`): orphaned descendants
/// of jobs are re-parented to gantry rather than to init, so gantry can find and reap
/// them. Call once, early in `main`; it affects the whole process and is inherited by no
/// one. Without it, jobs still run and their process groups are still killed, but
/// processes that escaped the group are found only by a slower scan of all of `/proc`.
pub fn become_subreaper() -> io::Result<()> {
    #[cfg(any(target_os = "linux", target_os = "android"))]
    {
        nix::sys::prctl::set_child_subreaper(true)?;
        SUBREAPER.store(true, Ordering::SeqCst);
        Ok(())
    }
    #[cfg(not(any(target_os = "linux", target_os = "android")))]
    {
        Err(io::Error::new(
            io::ErrorKind::Unsupported,
            "child subreapers exist only on Linux",
        ))
    }
}

fn is_subreaper() -> bool {
    SUBREAPER.load(Ordering::SeqCst)
}

/// A value for [`COOKIE_VAR`] that no other job of any gantry process shares.
pub(crate) fn new_cookie() -> String {
    static NEXT: AtomicU64 = AtomicU64::new(0);
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    format!(
        "{}-{}-{nanos:x}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed)
    )
}

/// The processes of one running (or finished) job.
#[derive(Debug, Clone)]
pub(crate) struct JobTree {
    /// The group the shell leads; equal to the shell's pid.
    pgid: Pid,
    /// `COOKIE_VAR=value` as it appears in `/proc/<pid>/environ`.
    cookie_entry: Vec<u8>,
}

/// What [`terminate`] did.
#[derive(Debug)]
pub(crate) struct Sweep {
    /// Whether any process was still running and had to be signalled.
    pub(crate) signalled: bool,
    /// Whether processes were still there when gantry gave up waiting after SIGKILL.
    pub(crate) survivors: bool,
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum Phase {
    /// Nothing sent yet.
    Quiet,
    /// SIGTERM sent; SIGKILL at the deadline.
    Term(Instant),
    /// SIGKILL sent; give up at the deadline.
    Kill(Instant),
}

impl JobTree {
    /// The tree of the job whose shell has pid `leader` and whose cookie is `cookie`.
    pub(crate) fn new(leader: u32, cookie: &str) -> JobTree {
        JobTree {
            pgid: Pid::from_raw(leader as i32),
            cookie_entry: format!("{COOKIE_VAR}={cookie}").into_bytes(),
        }
    }

    /// True while any process (zombies included) is in the job's group.
    fn group_alive(&self) -> bool {
        // EPERM means the group exists but holds a process we may not signal (a setuid
        // program): it is alive all the same.
        !matches!(killpg(self.pgid, None), Err(Errno::ESRCH))
    }

    fn signal_group(&self, signal: Signal) {
        let _ = killpg(self.pgid, signal);
    }

    /// Reaps every zombie in the job's group that is gantry's child. Only call this once
    /// the leader has been reaped through its `Child`, or it would take the leader's exit
    /// status away from tokio.
    fn reap_group(&self) {
        let group = Pid::from_raw(-self.pgid.as_raw());
        while let Ok(WaitStatus::Exited(..) | WaitStatus::Signaled(..)) =
            waitpid(group, Some(WaitPidFlag::WNOHANG))
        {}
    }

    /// Live processes (not zombies: they have no environment left) carrying the cookie.
    fn carriers(&self) -> Vec<Pid> {
        let me = std::process::id() as i32;
        candidates()
            .into_iter()
            .filter(|&pid| pid != me && environ_has(pid, &self.cookie_entry))
            .map(Pid::from_raw)
            .collect()
    }

    /// SIGKILLs everything of the job right now, without waiting. For `Drop`, where there
    /// is no time to be polite.
    pub(crate) fn kill_now(&self) {
        self.signal_group(Signal::SIGKILL);
        for pid in self.carriers() {
            let _ = kill(pid, Signal::SIGKILL);
        }
    }
}

/// Stops every process of the job and reaps what is gantry's to reap.
///
/// If nothing is running any more (the usual case after a script exits) this sends no
/// signal and returns at once. Otherwise: SIGTERM to the group and every cookie carrier,
/// up to `grace` for them to exit, then SIGKILL, then up to [`KILL_WAIT`] more. Carriers
/// that appear meanwhile get the signal of the current phase too.
pub(crate) async fn terminate(tree: &JobTree, leader: &mut Child, grace: Duration) -> Sweep {
    let leader_pid = leader.id().map(|p| Pid::from_raw(p as i32));
    // The leader has been reaped (through `leader`, so tokio knows) or cannot be waited for.
    let mut leader_gone = leader_pid.is_none();
    let mut phase = Phase::Quiet;
    let mut signalled: HashSet<Pid> = HashSet::new();
    let mut seen: HashSet<Pid> = HashSet::new();
    let mut survivors = false;
    loop {
        if !leader_gone {
            match leader.try_wait() {
                Ok(Some(_)) => leader_gone = true,
                Ok(None) => {}
                // Someone else reaped it; there is no status to report.
                Err(_) => leader_gone = true,
            }
        }
        if leader_gone {
            tree.reap_group();
        }
        reap_seen(&mut seen);
        // The group is checked before the carriers are listed: once it is empty, every
        // descendant that left it has already been re-parented (to gantry, when it is a
        // subreaper), so the list below is complete.
        let group_alive = !leader_gone || tree.group_alive();
        let carriers = tree.carriers();
        seen.extend(carriers.iter().filter(|&&p| Some(p) != leader_pid));
        if !group_alive && carriers.is_empty() {
            break;
        }

        let now = Instant::now();
        phase = match phase {
            Phase::Quiet => {
                tree.signal_group(Signal::SIGTERM);
                // A stopped process acts on SIGTERM only once continued.
                tree.signal_group(Signal::SIGCONT);
                Phase::Term(now + grace)
            }
            Phase::Term(deadline) if now >= deadline => {
                tree.signal_group(Signal::SIGKILL);
                signalled.clear();
                Phase::Kill(now + KILL_WAIT)
            }
            Phase::Kill(deadline) if now >= deadline => {
                survivors = true;
                break;
            }
            p => p,
        };
        let signal = match phase {
            Phase::Kill(_) => Signal::SIGKILL,
            _ => Signal::SIGTERM,
        };
        // Carriers still in the group already got the group's signal; a second one would
        // run a TERM handler twice.
        let outside = carriers
            .into_iter()
            .filter(|&pid| getpgid(Some(pid)).is_ok_and(|g| g != tree.pgid));
        for pid in outside {
            if signalled.insert(pid) {
                let _ = kill(pid, signal);
                if signal == Signal::SIGTERM {
                    let _ = kill(pid, Signal::SIGCONT);
                }
            }
        }

        if !leader_gone {
            // Wake up as soon as the shell dies, not only at the next poll.
            tokio::select! {
                _ = leader.wait() => leader_gone = true,
                () = tokio::time::sleep(POLL) => {}
            }
        } else {
            tokio::time::sleep(POLL).await;
        }
    }
    reap_seen(&mut seen);
    reap_escaped_zombies();
    Sweep {
        signalled: phase != Phase::Quiet,
        survivors,
    }
}

/// Reaps those of `seen` that have died and are gantry's children; forgets the ones that
/// are gone. One that is not gantry's child yet is kept: when its parent dies it may be
/// re-parented here.
fn reap_seen(seen: &mut HashSet<Pid>) {
    seen.retain(|&pid| match waitpid(pid, Some(WaitPidFlag::WNOHANG)) {
        Ok(WaitStatus::StillAlive) => true,
        Ok(_) => false,
        Err(_) => std::path::Path::new(&format!("/proc/{pid}")).exists(),
    });
}

/// Reaps zombie children of gantry that made themselves session leaders: descendants of
/// jobs that ran `setsid`, were orphaned, re-parented to gantry and have died. A no-op
/// unless gantry is a subreaper, since otherwise such orphans go to init.
pub(crate) fn reap_escaped_zombies() {
    if !is_subreaper() {
        return;
    }
    let Some(children) = children_of_self() else {
        return;
    };
    let my_session = getsid(None).ok().map(Pid::as_raw);
    for pid in children {
        let Some(st) = stat(pid) else { continue };
        if st.state == b'Z' && st.session == pid && Some(st.session) != my_session {
            let _ = waitpid(Pid::from_raw(pid), Some(WaitPidFlag::WNOHANG));
        }
    }
}

/// The processes worth checking for a cookie: gantry's own children when it is a
/// subreaper (every orphan of a job lands there), otherwise every process.
fn candidates() -> Vec<i32> {
    if is_subreaper()
        && let Some(children) = children_of_self()
    {
        return children;
    }
    all_pids()
}

/// Children of this process, from `/proc/self/task/*/children` (each thread has its own
/// list). `None` when the kernel does not provide these files.
fn children_of_self() -> Option<Vec<i32>> {
    let tasks = std::fs::read_dir("/proc/self/task").ok()?;
    let mut out = Vec::new();
    let mut any = false;
    for task in tasks.flatten() {
        let Ok(text) = std::fs::read_to_string(task.path().join("children")) else {
            continue;
        };
        any = true;
        out.extend(
            text.split_ascii_whitespace()
                .filter_map(|s| s.parse::<i32>().ok()),
        );
    }
    any.then_some(out)
}

/// Every pid in `/proc`.
pub(crate) fn all_pids() -> Vec<i32> {
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    dir.flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<i32>().ok())
        .collect()
}

/// Whether `/proc/<pid>/environ` holds exactly `entry` as one of its variables.
fn environ_has(pid: i32, entry: &[u8]) -> bool {
    match std::fs::read(format!("/proc/{pid}/environ")) {
        Ok(env) => env.split(|&b| b == 0).any(|e| e == entry),
        // Gone, or not ours to read: either way not something we can stop.
        Err(_) => false,
    }
}

/// The fields of `/proc/<pid>/stat` this crate needs.
#[derive(Debug)]
pub(crate) struct Stat {
    /// `R`, `S`, `Z`, …
    pub(crate) state: u8,
    pub(crate) ppid: i32,
    /// Process group.
    pub(crate) pgrp: i32,
    pub(crate) session: i32,
}

pub(crate) fn stat(pid: i32) -> Option<Stat> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name is in parentheses and may itself contain ") ", so the fixed
    // fields start after the *last* parenthesis: state ppid pgrp session ...
    let rest = &text[text.rfind(')')? + 1..];
    let mut fields = rest.split_ascii_whitespace();
    let state = *fields.next()?.as_bytes().first()?;
    let ppid = fields.next()?.parse().ok()?;
    let pgrp = fields.next()?.parse().ok()?;
    let session = fields.next()?.parse().ok()?;
    Some(Stat {
        state,
        ppid,
        pgrp,
        session,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cookies_are_unique() {
        let a = new_cookie();
        let b = new_cookie();
        assert_ne!(a, b);
        assert!(a.starts_with(&format!("{}-", std::process::id())), "{a}");
    }

    #[test]
    fn reads_own_stat_and_environ() {
        let me = std::process::id() as i32;
        let st = stat(me).expect("own stat");
        // The main thread's state: running, or sleeping while test threads work.
        assert!(
            matches!(st.state, b'R' | b'S'),
            "state {}",
            st.state as char
        );
        assert_eq!(Some(st.session), getsid(None).ok().map(Pid::as_raw));
        assert_eq!(st.pgrp, nix::unistd::getpgrp().as_raw());
        assert_eq!(st.ppid, nix::unistd::getppid().as_raw());
        // PATH is set in any environment cargo runs tests in.
        let path = std::env::var("PATH").expect("PATH");
        assert!(environ_has(me, format!("PATH={path}").as_bytes()));
        assert!(!environ_has(me, b"PATH"));
        assert!(all_pids().contains(&me));
    }
}
