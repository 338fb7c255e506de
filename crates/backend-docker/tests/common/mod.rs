//! Shared helpers of the Docker backend's tests: a backend on the real daemon, jobs in
//! temp workspaces, running a job through the whole contract, and counting what it left
//! in Docker (with the `docker` CLI, independently of the code under test).
//!
//! The tests need a running daemon and the images of `cargo xtask images`; `cargo xtask
//! test` sets both up. Without them they fail with a message saying so.

#![allow(
    dead_code,
    reason = "each test binary uses a different part of the helpers"
)]

use std::process::Command;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use gantry_backend::{
    Backend, BackendError, CancellationToken, JobSpec, LogLine, LogSink, Outcome, ServiceFailure,
    ServiceSpec, Stream,
};
use gantry_backend_docker::{DockerBackend, DockerSettings};

/// sh, bash, perl, curl, busybox.
pub const TOOLS: &str = "gantry-test/tools:latest";
/// Debian's MariaDB with the official image's environment variables.
pub const MARIADB: &str = "gantry-test/mariadb:latest";

pub async fn backend() -> DockerBackend {
    backend_with(DockerSettings::default()).await
}

pub async fn backend_with(settings: DockerSettings) -> DockerBackend {
    let backend = match DockerBackend::connect_with(settings).await {
        Ok(b) => b,
        Err(e) => panic!("these tests need a Docker daemon (`cargo xtask test` starts one): {e}"),
    };
    for image in [TOOLS, MARIADB] {
        assert!(
            docker(&["image", "inspect", image]).is_some(),
            "image {image} is missing: run `cargo xtask images`"
        );
    }
    backend
}

/// A run id no other test (or test process) uses.
pub fn unique_run_id(test: &str) -> String {
    static NEXT: AtomicU64 = AtomicU64::new(0);
    format!(
        "t-{test}-{}-{}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed)
    )
}

/// A job running `script` in the tools image, in a fresh temp workspace.
pub fn job(test: &str, script: &[&str]) -> (JobSpec, tempfile::TempDir) {
    let ws = tempfile::tempdir().expect("temp workspace");
    let run_id = unique_run_id(test);
    let spec = JobSpec {
        run_id: run_id.clone(),
        job_name: test.to_owned(),
        job_key: test.to_owned(),
        attempt: 1,
        workspace_dir: ws.path().to_path_buf(),
        container_workdir: "/workspace".to_owned(),
        image: Some(TOOLS.to_owned()),
        env: vec![("CI".to_owned(), "true".to_owned())],
        script: script.iter().map(|s| (*s).to_owned()).collect(),
        timeout: Duration::from_secs(120),
        labels: vec![
            ("gantry.run".to_owned(), run_id),
            ("gantry.job".to_owned(), test.to_owned()),
        ],
        ..Default::default()
    };
    (spec, ws)
}

/// A service of the tools image running `sh -c script`.
pub fn service(name: &str, script: &str) -> ServiceSpec {
    ServiceSpec {
        name: name.to_owned(),
        image: TOOLS.to_owned(),
        env: vec![],
        command: Some(vec!["sh".to_owned(), "-c".to_owned(), script.to_owned()]),
        ready: None,
    }
}

/// The end of a job run through the contract.
#[derive(Debug)]
pub enum Ended {
    Ran(Outcome),
    Services(ServiceFailure),
    Script(BackendError),
}

/// What [`run`] saw.
#[derive(Debug)]
pub struct Ran {
    pub ended: Ended,
    pub lines: Vec<LogLine>,
    pub teardown: Result<(), BackendError>,
}

impl Ran {
    pub fn outcome(&self) -> &Outcome {
        match &self.ended {
            Ended::Ran(o) => o,
            other => panic!("expected an outcome, got {other:?}\nlog:\n{}", self.log()),
        }
    }

    /// Lines of one stream, as text.
    pub fn texts(&self, stream: Stream) -> Vec<String> {
        self.lines
            .iter()
            .filter(|l| l.stream == stream)
            .map(|l| l.text.clone())
            .collect()
    }

    /// The whole log, for failure messages.
    pub fn log(&self) -> String {
        self.lines
            .iter()
            .map(|l| match &l.source {
                Some(s) => format!("[{s}] {}", l.text),
                None => format!("{:?}: {}", l.stream, l.text),
            })
            .collect::<Vec<_>>()
            .join("\n")
    }
}

/// prepare → start_services → run_script → teardown, like the engine; `cancel_after`
/// cancels the script after that long.
pub async fn run_with(
    backend: &DockerBackend,
    spec: &JobSpec,
    cancel_after: Option<Duration>,
) -> Ran {
    let mut env = match backend.prepare(spec).await {
        Ok(env) => env,
        Err(e) => panic!("prepare failed: {e}"),
    };
    let (sink, mut rx) = LogSink::channel();
    let ended = match env.start_services(sink.clone()).await {
        Err(failure) => Ended::Services(failure),
        Ok(()) => {
            let cancel = CancellationToken::new();
            if let Some(after) = cancel_after {
                let c = cancel.clone();
                tokio::spawn(async move {
                    tokio::time::sleep(after).await;
                    c.cancel();
                });
            }
            match env.run_script(sink.clone(), cancel).await {
                Ok(o) => Ended::Ran(o),
                Err(e) => Ended::Script(e),
            }
        }
    };
    let teardown = env.teardown().await;
    drop(sink);
    let mut lines = Vec::new();
    while let Some(l) = rx.recv().await {
        lines.push(l);
    }
    Ran {
        ended,
        lines,
        teardown,
    }
}

pub async fn run(backend: &DockerBackend, spec: &JobSpec) -> Ran {
    run_with(backend, spec, None).await
}

/// Output of a `docker` CLI command, `None` when it fails.
pub fn docker(args: &[&str]) -> Option<String> {
    let out = Command::new("docker").args(args).output().ok()?;
    out.status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).into_owned())
}

/// Containers, networks and volumes labelled with `run_id`, as `kind id` lines.
pub fn leftovers(run_id: &str) -> Vec<String> {
    let filter = format!("label=gantry.run={run_id}");
    let mut found = Vec::new();
    for (kind, args) in [
        ("container", vec!["ps", "-aq", "--filter", &filter]),
        ("network", vec!["network", "ls", "-q", "--filter", &filter]),
        ("volume", vec!["volume", "ls", "-q", "--filter", &filter]),
    ] {
        let out = docker(&args).unwrap_or_else(|| panic!("docker {args:?} failed"));
        found.extend(out.lines().map(|id| format!("{kind} {id}")));
    }
    found
}

/// Removes whatever a test left under `run_id` (after it asserted on it).
pub fn force_clean(run_id: &str) {
    let filter = format!("label=gantry.run={run_id}");
    if let Some(ids) = docker(&["ps", "-aq", "--filter", &filter]) {
        for id in ids.lines() {
            let _ = docker(&["rm", "-f", "-v", id]);
        }
    }
    if let Some(ids) = docker(&["network", "ls", "-q", "--filter", &filter]) {
        for id in ids.lines() {
            let _ = docker(&["network", "rm", id]);
        }
    }
}
