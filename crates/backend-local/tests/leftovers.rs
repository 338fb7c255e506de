//! [`stop_leftovers`] against real leftovers: "owners" (this test binary run again as a
//! child process, playing a gantry with a work directory) start real jobs on the local
//! backend, one owner is `kill -9`ed, and what its jobs left is stopped — its shell, a
//! background child, a child that dropped the marking variables but stayed in the job's
//! process group, one that left the group with `setsid` — while the jobs of another
//! owner that is still alive, and a process that only looks similar, are left alone.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::{HANG_GUARD, stat};
use gantry_backend::{Backend, CancellationToken, LogSink};
use gantry_backend_local::{COOKIE_VAR, Leftovers, LocalBackend, stop_leftovers};

/// The variable the engine sets to a job's workspace.
const VAR: &str = "GANTRY_WORKSPACE";

/// Set in an owner's environment: its work directory.
const OWNER_DIR: &str = "LEFTOVERS_TEST_OWNER_DIR";

/// The job every owner runs: it records the pids of its processes in its workspace
/// (`0` the shell, `1` a background child, `2` a child without the marking variables,
/// `3` a child in a session of its own) and waits.
const SCRIPT: &[&str] = &[
    "sleep 3001 & echo $! > pid.1",
    "env -u GANTRY_WORKSPACE -u GANTRY_JOB_COOKIE sleep 3002 & echo $! > pid.2",
    "setsid sleep 3003 & echo $! > pid.3",
    "echo $$ > pid.0",
    "wait",
];

/// In an owner (see [`owner`]): runs [`SCRIPT`] as a job in `DIR/jobs/1/work` and waits
/// to be killed.
fn be_an_owner(dir: &Path) {
    let workspace = dir.join("jobs/1/work");
    std::fs::create_dir_all(&workspace).expect("workspace");
    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    runtime.block_on(async {
        let (mut spec, _unused) = common::job(SCRIPT);
        spec.workspace_dir = workspace.clone();
        spec.env
            .push((VAR.to_owned(), workspace.to_string_lossy().into_owned()));
        let mut env = LocalBackend::new().prepare(&spec).await.expect("prepare");
        let (sink, _rx) = LogSink::channel();
        let _ = env.run_script(sink, CancellationToken::new()).await;
    });
}

/// An owner process with work directory `dir`, once its job's processes have all
/// started: the owner and the pids of its job (as [`SCRIPT`] numbers them).
fn owner(dir: &Path) -> (Child, Vec<i32>) {
    let child = Command::new(std::env::current_exe().expect("test binary"))
        .args([
            "--exact",
            "leftovers_of_a_killed_owner_are_stopped_and_only_those",
        ])
        .args(["--nocapture", "--test-threads", "1"])
        .env(OWNER_DIR, dir)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .spawn()
        .expect("start an owner");
    let workspace = dir.join("jobs/1/work");
    let started = Instant::now();
    let pids = loop {
        let read = |n: usize| -> Option<i32> {
            std::fs::read_to_string(workspace.join(format!("pid.{n}")))
                .ok()?
                .trim()
                .parse()
                .ok()
        };
        if let Some(pids) = (0..4).map(read).collect::<Option<Vec<i32>>>() {
            break pids;
        }
        assert!(
            started.elapsed() < HANG_GUARD,
            "the owner's job never started"
        );
        std::thread::sleep(Duration::from_millis(20));
    };
    (child, pids)
}

/// Alive, and not a zombie.
fn alive(pid: i32) -> bool {
    stat(pid).is_some_and(|(state, ..)| state != 'Z')
}

fn kill(pid: i32) {
    let _ = nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(pid),
        nix::sys::signal::Signal::SIGKILL,
    );
}

/// Kills what a failed test would otherwise leave.
struct Cleanup(Vec<i32>);

impl Drop for Cleanup {
    fn drop(&mut self) {
        self.0.iter().copied().for_each(kill);
    }
}

#[test]
fn leftovers_of_a_killed_owner_are_stopped_and_only_those() {
    if let Some(dir) = std::env::var_os(OWNER_DIR) {
        be_an_owner(&PathBuf::from(dir));
        return;
    }
    let tmp = tempfile::tempdir().expect("tempdir");
    let (dead_dir, live_dir) = (tmp.path().join("dead"), tmp.path().join("live"));
    let (mut dead, dead_job) = owner(&dead_dir);
    let (mut live, live_job) = owner(&live_dir);
    // Looks like a job of the dead owner by its workspace, but no backend started it.
    let mut lookalike = Command::new("sleep")
        .arg("3004")
        .env(VAR, dead_dir.join("jobs/2/work"))
        .env_remove(COOKIE_VAR)
        .spawn()
        .expect("sleep");
    let mut cleanup = Cleanup(dead_job.iter().chain(&live_job).copied().collect());
    cleanup.0.extend([live.id() as i32, lookalike.id() as i32]);
    assert!(dead_job.iter().chain(&live_job).all(|&p| alive(p)));
    assert!(
        std::fs::read(format!("/proc/{}/environ", dead_job[0]))
            .expect("environ")
            .split(|&b| b == 0)
            .any(|e| e.starts_with(format!("{COOKIE_VAR}=").as_bytes())),
        "jobs carry the cookie"
    );

    dead.kill().expect("kill -9 the owner");
    dead.wait().expect("reap the owner");
    assert!(
        dead_job.iter().all(|&p| alive(p)),
        "a killed owner's job runs on"
    );

    let swept = stop_leftovers(VAR, &dead_dir.join("jobs"), Duration::from_secs(2));
    assert_eq!(
        swept,
        Leftovers {
            stopped: 4,
            survivors: 0
        }
    );
    for (n, &pid) in dead_job.iter().enumerate() {
        assert!(!alive(pid), "process {n} ({pid}) of the dead owner's job");
    }
    for (n, &pid) in live_job.iter().enumerate() {
        assert!(alive(pid), "process {n} ({pid}) of the live owner's job");
    }
    assert!(alive(live.id() as i32), "the live owner");
    assert!(alive(lookalike.id() as i32), "the lookalike");

    // Nothing is left to find the second time.
    let again = stop_leftovers(VAR, &dead_dir.join("jobs"), Duration::from_secs(2));
    assert_eq!(again, Leftovers::default());

    live.kill().expect("kill -9 the other owner");
    live.wait().expect("reap the other owner");
    let swept = stop_leftovers(VAR, &live_dir.join("jobs"), Duration::from_secs(2));
    assert_eq!(swept.stopped, 4, "{swept:?}");
    assert!(live_job.iter().all(|&p| !alive(p)));
    assert!(alive(lookalike.id() as i32), "the lookalike");
    lookalike.kill().expect("kill the lookalike");
    lookalike.wait().expect("reap the lookalike");
    cleanup.0.clear();
}
