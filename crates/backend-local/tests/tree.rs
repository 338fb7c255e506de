//! Stopping a job's whole process tree: timeout, cancel, leftovers of a finished script,
//! processes that escaped the group, an abandoned run. After each, no process of the job
//! may remain, and no zombie child of this (subreaper) test process.
//!
//! The tests take one lock so that "no zombie child of the test process" is not disturbed
//! by a job of another test that is exiting at that moment.

mod common;

use std::time::Duration;

use common::{exists, group_members, guard, job, run, run_with, wait_value, zombie_children};
use gantry_backend::{Backend, CancellationToken, LogSink, Outcome};
use gantry_backend_local::LocalBackend;

static SERIAL: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

async fn serial() -> tokio::sync::MutexGuard<'static, ()> {
    common::init();
    SERIAL.lock().await
}

/// Nothing of group `pgid` is left, and this process has no zombie child.
fn assert_clean(pgid: i32) {
    assert_eq!(group_members(pgid), [], "processes of group {pgid} remain");
    assert_eq!(
        zombie_children(),
        Vec::<i32>::new(),
        "zombie children remain"
    );
}

/// A script whose shell reports its pid (= its process group) and then waits on a tree:
/// a child shell with a background grandchild and a foreground one.
const TREE: &[&str] = &["echo pgid=$$", "sh -c 'sleep 300 & sleep 300'"];

#[tokio::test]
async fn timeout_kills_the_whole_tree() {
    let _serial = serial().await;
    let (mut spec, _ws) = job(TREE);
    spec.timeout = Duration::from_secs(1);
    let r = run(&spec).await;
    assert_eq!(r.outcome, Outcome::TimedOut, "{:?}", r.lines);
    assert_eq!(
        r.system(),
        ["timed out after 1s: stopping the job's processes"]
    );
    assert_clean(r.value("pgid"));
}

#[tokio::test]
async fn timeout_escalates_to_sigkill_when_sigterm_is_ignored() {
    let _serial = serial().await;
    let (mut spec, _ws) = job(&[
        "echo pgid=$$",
        "sh -c 'trap \"\" TERM; sleep 300 & trap \"\" TERM; sleep 300'",
    ]);
    spec.timeout = Duration::from_secs(1);
    let backend = LocalBackend {
        kill_grace: Duration::from_millis(200),
        ..LocalBackend::new()
    };
    let r = run_with(&backend, &spec, CancellationToken::new()).await;
    assert_eq!(r.outcome, Outcome::TimedOut, "{:?}", r.lines);
    assert_clean(r.value("pgid"));
}

#[tokio::test]
async fn cancel_kills_the_whole_tree() {
    let _serial = serial().await;
    let (spec, _ws) = job(TREE);
    let backend = LocalBackend::new();
    let mut env = backend.prepare(&spec).await.expect("prepare");
    let (sink, mut rx) = LogSink::channel();
    let cancel = CancellationToken::new();
    let canceller = cancel.clone();
    let (outcome, pgid) = tokio::join!(env.run_script(sink, cancel), async {
        let pgid = wait_value(&mut rx, "pgid").await;
        canceller.cancel();
        pgid
    });
    assert_eq!(outcome.expect("run_script"), Outcome::Cancelled);
    guard(env.teardown()).await.expect("teardown");
    let system: Vec<_> = common::drain(rx).into_iter().map(|l| l.text).collect();
    assert!(
        system.contains(&"cancelled: stopping the job's processes".to_owned()),
        "{system:?}"
    );
    assert_clean(pgid);
}

#[tokio::test]
async fn background_process_holding_stdout_does_not_hang_the_job() {
    let _serial = serial().await;
    let (spec, _ws) = job(&["echo pgid=$$", "sleep 300 &", "echo done"]);
    let r = run(&spec).await;
    assert_eq!(r.outcome, Outcome::Success);
    assert_eq!(r.stdout().last().map(String::as_str), Some("done"));
    assert_eq!(
        r.system(),
        ["the script left processes running; they were stopped"]
    );
    assert_clean(r.value("pgid"));
}

#[tokio::test]
async fn failing_script_with_background_processes_keeps_its_exit_code() {
    let _serial = serial().await;
    let (spec, _ws) = job(&["echo pgid=$$", "sleep 300 &", "exit 4"]);
    let r = run(&spec).await;
    assert_eq!(r.outcome, Outcome::Failed { exit_code: 4 });
    assert_clean(r.value("pgid"));
}

#[tokio::test]
async fn processes_that_left_the_group_are_found_by_cookie() {
    let _serial = serial().await;
    // `setsid` puts sleep in a new session and group; it keeps stdout open. The script
    // waits until the escapee has written its pid, then ends.
    let (spec, _ws) = job(&[
        "echo pgid=$$",
        "setsid sh -c 'echo $$ > escaped.pid; exec sleep 300' &",
        "while [ ! -s escaped.pid ]; do sleep 0.01; done",
        "echo escaped=$(cat escaped.pid)",
    ]);
    let r = run(&spec).await;
    assert_eq!(r.outcome, Outcome::Success, "{:?}", r.lines);
    let escaped = r.value("escaped");
    assert_ne!(escaped, r.value("pgid"));
    assert!(
        !exists(escaped),
        "escaped process {escaped} is still there: {:?}",
        common::stat(escaped)
    );
    assert_clean(r.value("pgid"));
    // Job-control shells (`set -m`) put each background job in a group of its own.
    let (spec, _ws) = job(&[
        "echo pgid=$$",
        "set -m; sh -c 'echo own=$$; exec sleep 300' & sleep 0.2",
    ]);
    let r = run(&spec).await;
    assert_eq!(r.outcome, Outcome::Success, "{:?}", r.lines);
    let own = r.value("own");
    assert!(
        !exists(own),
        "process {own} in its own group is still there"
    );
    assert_clean(r.value("pgid"));
}

#[tokio::test]
async fn escapee_without_the_cookie_cannot_hang_the_job() {
    let _serial = serial().await;
    // `env -i` drops the cookie, and setsid leaves the group: gantry cannot find this
    // one. It holds stdout open; the run must still end, after the drain timeout.
    let (spec, _ws) = job(&[
        "echo pgid=$$",
        "setsid env -i sh -c 'echo $$ > escaped.pid; exec sleep 300' &",
        "while [ ! -s escaped.pid ]; do sleep 0.01; done",
        "echo escaped=$(cat escaped.pid)",
    ]);
    let r = run(&spec).await;
    let escaped = r.value("escaped");
    // Clean up what the backend documents it cannot catch, before asserting anything.
    let pid = nix::unistd::Pid::from_raw(escaped);
    let _ = nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGKILL);
    let _ = nix::sys::wait::waitpid(pid, None);
    assert_eq!(r.outcome, Outcome::Success, "{:?}", r.lines);
    assert!(
        r.system().contains(
            &"stopped reading output: a process outside the job still holds it open".to_owned()
        ),
        "{:?}",
        r.system()
    );
    assert_clean(r.value("pgid"));
}

#[tokio::test]
async fn orphans_that_exit_on_their_own_are_reaped() {
    let _serial = serial().await;
    // A double fork: the middle `sh` exits at once, so the escapee is re-parented to this
    // subreaper test process; it then exits by itself and is a zombie child here (the
    // script checks) that neither the group nor the cookie can find. Only the reaping of
    // escaped session leaders removes it.
    let (spec, _ws) = job(&[
        "echo pgid=$$",
        r#"sh -c 'setsid sh -c "echo \$\$ > escaped.pid; sleep 0.2" >/dev/null 2>&1 &'"#,
        "while [ ! -s escaped.pid ]; do sleep 0.01; done",
        "echo escaped=$(cat escaped.pid)",
        "while [ \"$(cut -d' ' -f3 /proc/$(cat escaped.pid)/stat)\" != Z ]; do sleep 0.05; done",
        "echo escapee is a zombie",
    ]);
    let r = run(&spec).await;
    assert_eq!(r.outcome, Outcome::Success, "{:?}", r.lines);
    assert!(r.stdout().contains(&"escapee is a zombie".to_owned()));
    let escaped = r.value("escaped");
    assert!(!exists(escaped), "{escaped}: {:?}", common::stat(escaped));
    assert_clean(r.value("pgid"));
}

#[tokio::test]
async fn teardown_stops_a_run_that_was_abandoned() {
    let _serial = serial().await;
    let (spec, _ws) = job(TREE);
    let backend = LocalBackend::new();
    let mut env = backend.prepare(&spec).await.expect("prepare");
    let (sink, mut rx) = LogSink::channel();
    let pgid = {
        let run = env.run_script(sink, CancellationToken::new());
        tokio::select! {
            r = run => panic!("script ended early: {r:?}"),
            pgid = wait_value(&mut rx, "pgid") => pgid,
        }
        // The run_script future is dropped here, as when the engine's task is aborted.
    };
    assert!(
        !group_members(pgid).is_empty(),
        "the tree should still be running"
    );
    guard(env.teardown()).await.expect("teardown");
    assert_clean(pgid);
}

#[tokio::test]
async fn dropping_a_running_job_env_kills_its_group() {
    let _serial = serial().await;
    let (spec, _ws) = job(TREE);
    let backend = LocalBackend::new();
    let mut env = backend.prepare(&spec).await.expect("prepare");
    let (sink, mut rx) = LogSink::channel();
    let pgid = {
        let run = env.run_script(sink, CancellationToken::new());
        tokio::select! {
            r = run => panic!("script ended early: {r:?}"),
            pgid = wait_value(&mut rx, "pgid") => pgid,
        }
    };
    drop(env);
    // Drop sends SIGKILL at once and leaves the reaping to a task on this runtime.
    guard(async {
        while !group_members(pgid).is_empty() {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await;
    assert_clean(pgid);
}
