//! Helpers shared by the local backend's tests: building jobs, running them with a hang
//! guard, and looking at `/proc` for what a job left behind.
#![allow(dead_code, reason = "each test binary uses a different subset")]

use std::path::Path;
use std::sync::Once;
use std::time::Duration;

use gantry_backend::{
    Backend, BackendError, CancellationToken, JobSpec, LogLine, LogSink, Outcome, ServiceSpec,
    Stream,
};
use gantry_backend_local::LocalBackend;
use tempfile::TempDir;
use tokio::sync::mpsc::UnboundedReceiver;

/// Upper bound on any single test step, so a bug shows up as a failure, not a hung suite.
/// Never an assertion about speed.
pub const HANG_GUARD: Duration = Duration::from_secs(120);

/// Makes the test process a subreaper, as the CLI does, so that orphans of jobs come to it
/// and "no zombie remains" is something the tests can check.
pub fn init() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| gantry_backend_local::become_subreaper().expect("become subreaper"));
}

/// A job running `script` in a fresh temporary workspace.
pub fn job(script: &[&str]) -> (JobSpec, TempDir) {
    let ws = tempfile::tempdir().expect("temp workspace");
    let spec = JobSpec {
        run_id: "run-1".into(),
        job_name: "test job".into(),
        job_key: "test-job".into(),
        attempt: 1,
        workspace_dir: ws.path().to_path_buf(),
        container_workdir: "/workspace".into(),
        script: script.iter().map(|s| s.to_string()).collect(),
        timeout: HANG_GUARD,
        ..JobSpec::default()
    };
    (spec, ws)
}

/// A service with just a name and an image.
pub fn service(name: &str) -> ServiceSpec {
    ServiceSpec {
        name: name.into(),
        image: format!("{name}:latest"),
        env: Vec::new(),
        command: None,
        ready: None,
    }
}

/// What one run produced.
#[derive(Debug)]
pub struct Run {
    pub outcome: Outcome,
    pub lines: Vec<LogLine>,
}

impl Run {
    /// The text of the lines of one stream, in order.
    pub fn stream(&self, stream: Stream) -> Vec<String> {
        self.lines
            .iter()
            .filter(|l| l.stream == stream)
            .map(|l| l.text.clone())
            .collect()
    }

    pub fn stdout(&self) -> Vec<String> {
        self.stream(Stream::Stdout)
    }

    pub fn stderr(&self) -> Vec<String> {
        self.stream(Stream::Stderr)
    }

    pub fn system(&self) -> Vec<String> {
        self.stream(Stream::System)
    }

    /// The number after `key=` in the first stdout line that starts with it.
    pub fn value(&self, key: &str) -> i32 {
        let prefix = format!("{key}=");
        self.stdout()
            .iter()
            .find_map(|l| l.strip_prefix(&prefix)?.parse().ok())
            .unwrap_or_else(|| panic!("no {key}= line in {:?}", self.lines))
    }
}

/// Prepares, runs and tears down `spec` on `backend`.
pub async fn run_with(backend: &LocalBackend, spec: &JobSpec, cancel: CancellationToken) -> Run {
    let mut env = backend.prepare(spec).await.expect("prepare");
    let (sink, rx) = LogSink::channel();
    let outcome = guard(env.run_script(sink, cancel))
        .await
        .expect("run_script");
    guard(env.teardown()).await.expect("teardown");
    Run {
        outcome,
        lines: drain(rx),
    }
}

/// [`run_with`] on a default backend, never cancelled.
pub async fn run(spec: &JobSpec) -> Run {
    run_with(&LocalBackend::new(), spec, CancellationToken::new()).await
}

/// Everything in the channel right now.
pub fn drain(mut rx: UnboundedReceiver<LogLine>) -> Vec<LogLine> {
    let mut lines = Vec::new();
    while let Ok(l) = rx.try_recv() {
        lines.push(l);
    }
    lines
}

/// Awaits `fut`, failing the test if it takes longer than [`HANG_GUARD`].
pub async fn guard<F: std::future::Future>(fut: F) -> F::Output {
    tokio::time::timeout(HANG_GUARD, fut)
        .await
        .expect("hang guard expired: the backend hung")
}

/// Waits for a stdout line starting with `key=` and returns its number; used to learn a
/// pid from a job that is still running.
pub async fn wait_value(rx: &mut UnboundedReceiver<LogLine>, key: &str) -> i32 {
    let prefix = format!("{key}=");
    guard(async {
        while let Some(l) = rx.recv().await {
            if let Some(v) = l.text.strip_prefix(&prefix) {
                return v.parse().expect("number");
            }
        }
        panic!("log closed before a {key}= line");
    })
    .await
}

/// `BackendError` from preparing `spec`, which must fail.
pub async fn prepare_err(spec: &JobSpec) -> BackendError {
    match LocalBackend::new().prepare(spec).await {
        Ok(_) => panic!("prepare succeeded for {spec:?}"),
        Err(e) => e,
    }
}

/// Fields of `/proc/<pid>/stat`: (state, ppid, pgrp, session). `None` once it is gone.
pub fn stat(pid: i32) -> Option<(char, i32, i32, i32)> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let rest = &text[text.rfind(')')? + 1..];
    let f: Vec<&str> = rest.split_ascii_whitespace().collect();
    Some((
        f.first()?.chars().next()?,
        f.get(1)?.parse().ok()?,
        f.get(2)?.parse().ok()?,
        f.get(3)?.parse().ok()?,
    ))
}

/// Every process (zombies included) whose process group is `pgid`.
pub fn group_members(pgid: i32) -> Vec<(i32, char)> {
    all_pids()
        .into_iter()
        .filter_map(|pid| {
            let (state, _, pgrp, _) = stat(pid)?;
            (pgrp == pgid).then_some((pid, state))
        })
        .collect()
}

/// Zombie children of this test process.
pub fn zombie_children() -> Vec<i32> {
    let me = std::process::id() as i32;
    all_pids()
        .into_iter()
        .filter(|&pid| matches!(stat(pid), Some(('Z', ppid, _, _)) if ppid == me))
        .collect()
}

/// True while `/proc/<pid>` exists (alive or zombie).
pub fn exists(pid: i32) -> bool {
    Path::new(&format!("/proc/{pid}")).exists()
}

fn all_pids() -> Vec<i32> {
    std::fs::read_dir("/proc")
        .expect("/proc")
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse().ok())
        .collect()
}
