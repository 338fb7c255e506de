//! The one place this crate starts processes.
//!
//! Everything a job runs descends from a process started here, so this function decides,
//! for all of them: a new process group, the environment, the working directory and the
//! standard streams. Keeping it in one place is what lets the rest of the crate assume
//! that "the job's processes" means "process group N, plus whatever carries the cookie".
//!
//! Why `process_group(0)` (setpgid in the child) and not `setsid` or a `pre_exec` hook:
//! - the standard library applies it through `posix_spawn` (`POSIX_SPAWN_SETPGROUP`), so
//!   spawning stays on the fast vfork-like path; any `pre_exec` closure forces a full
//!   `fork`, which costs more per job, and needs `unsafe`, which this workspace denies;
//! - a process group is all that killing a tree needs (`kill(-pgid)`), and process-wrap
//!   would add a dependency for the same one call;
//! - staying in gantry's session (no `setsid`) keeps the job out of the terminal's
//!   foreground group, so Ctrl-C reaches only gantry, which then cancels jobs in order —
//!   while the job still cannot steal the terminal, because its stdin is `/dev/null`.

use std::ffi::OsStr;
use std::io;
use std::path::Path;
use std::process::Stdio;

use tokio::process::{Child, Command};

/// Starts `program args…` in `cwd` (with the program's file name as `argv[0]`) as the leader of a new process group.
///
/// The environment is gantry's own (so `PATH`, `HOME`, … work as on the host) with `env`
/// applied on top in order, later entries winning. stdin is `/dev/null`; stdout and stderr
/// are pipes for the caller to read.
///
/// The child is not killed when the handle is dropped: `kill_on_drop` would only kill the
/// leader, and the caller is responsible for the whole group anyway.
pub(crate) fn spawn_in_group<S: AsRef<OsStr>>(
    program: &Path,
    args: &[S],
    cwd: &Path,
    env: &[(String, String)],
) -> io::Result<Child> {
    let mut cmd = Command::new(program);
    // `sh`, not `/bin/sh`, in the shell's own messages (`sh: 1: foo: not found`).
    if let Some(name) = program.file_name() {
        cmd.arg0(name);
    }
    cmd.args(args)
        .current_dir(cwd)
        .envs(env.iter().map(|(k, v)| (k, v)))
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0)
        .kill_on_drop(false);
    cmd.spawn()
}
