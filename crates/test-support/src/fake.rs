//! [`FakeBackend`]: a scriptable [`Backend`] that runs nothing and records everything.
//!
//! A job's behaviour is chosen by variables in its environment (the last entry of a name
//! wins, as in [`JobSpec::env`]):
//!
//! | variable | effect |
//! |---|---|
//! | `FAKE_EXIT=3` | the script ends `Failed { exit_code: 3 }` (`0` = success) |
//! | `FAKE_SLEEP=2s` | the script sleeps (`150ms`, `2s`, `1m`, bare number = seconds), honouring the cancel token (→ `Cancelled`) and `JobSpec::timeout` (→ `TimedOut`) |
//! | `FAKE_START_FAIL=1` | `prepare` returns `Err` on every attempt (an infrastructure error) |
//! | `FAKE_START_FAIL_ATTEMPTS=N` | `prepare` returns `Err` for attempts `1..=N` only |
//! | `FAKE_SCRIPT_ERR=1` | `run_script` returns `Err` (the infrastructure broke mid-script) |
//! | `FAKE_LOG=text` | each line of `text` becomes a stdout log line |
//! | `FAKE_FAIL_ATTEMPTS=N` | attempts `1..=N` fail (with `FAKE_EXIT`, or exit code 1) |
//! | `FAKE_WRITE=path=content` | writes a file into the workspace; several separated by `;` |
//! | `FAKE_SERVICE_FAIL=name` | `start_services` fails for that service |
//!
//! A service's own `FAKE_LOG` becomes service log lines. The script lines themselves are
//! only echoed as `+ cmd`, never run.
//!
//! The fake records every phase of every attempt in order ([`Record`]), the highest number
//! of scripts running at once, the specs it was given, the files each script saw in its
//! workspace, and how many prepared environments were never torn down.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use gantry_backend::{
    Backend, BackendError, BackendInfo, CancellationToken, JobEnv, JobSpec, LogSink, Outcome,
    ServiceFailure, Stream,
};

/// A fake backend, scriptable through `FAKE_*` job variables. Cheap to clone: clones share
/// their records.
#[derive(Clone)]
pub struct FakeBackend {
    containers: bool,
    state: Arc<State>,
}

/// What happened, in the order it happened.
#[derive(Debug, Clone, PartialEq)]
pub enum Phase {
    /// `prepare` succeeded.
    Prepared,
    /// `prepare` returned `Err`.
    PrepareFailed,
    /// `start_services` ran (whatever its result).
    ServicesStarted,
    /// `run_script` began.
    ScriptStarted,
    /// `run_script` ended with this outcome (`None`: it returned `Err`).
    ScriptFinished(Option<Outcome>),
    /// `teardown` ran.
    TornDown,
}

/// One recorded step of one attempt of one job.
#[derive(Debug, Clone)]
pub struct Record {
    /// The job's display name.
    pub job: String,
    /// The attempt, from 1.
    pub attempt: u32,
    /// What happened.
    pub phase: Phase,
    /// When.
    pub at: Instant,
}

/// (job, attempt, path → content) of one script start.
type Seen = (String, u32, BTreeMap<String, String>);

#[derive(Default)]
struct State {
    records: Mutex<Vec<Record>>,
    specs: Mutex<Vec<JobSpec>>,
    /// Files each script saw at its start.
    seen: Mutex<Vec<Seen>>,
    running: AtomicUsize,
    max_running: AtomicUsize,
    open_envs: AtomicUsize,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // A panicking test thread must not hide the records from the assertion that follows.
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl State {
    fn record(&self, spec: &JobSpec, phase: Phase) {
        lock(&self.records).push(Record {
            job: spec.job_name.clone(),
            attempt: spec.attempt,
            phase,
            at: Instant::now(),
        });
    }
}

impl Default for FakeBackend {
    fn default() -> Self {
        FakeBackend::new()
    }
}

impl FakeBackend {
    /// A fake that accepts every job, including `image`, `services`, `image_build` and
    /// `deploy` (it stands in for a container backend too).
    pub fn new() -> FakeBackend {
        FakeBackend {
            containers: true,
            state: Arc::default(),
        }
    }

    /// A fake host backend: refuses jobs that need a container, like the local backend.
    pub fn host_only() -> FakeBackend {
        FakeBackend {
            containers: false,
            state: Arc::default(),
        }
    }

    /// Every recorded step, in order.
    pub fn records(&self) -> Vec<Record> {
        lock(&self.state.records).clone()
    }

    /// Job names in the order their scripts started (one entry per attempt).
    pub fn starts(&self) -> Vec<String> {
        self.phase_jobs(|p| matches!(p, Phase::ScriptStarted))
    }

    /// Job names in the order their scripts finished (one entry per attempt).
    pub fn finishes(&self) -> Vec<String> {
        self.phase_jobs(|p| matches!(p, Phase::ScriptFinished(_)))
    }

    fn phase_jobs(&self, f: impl Fn(&Phase) -> bool) -> Vec<String> {
        lock(&self.state.records)
            .iter()
            .filter(|r| f(&r.phase))
            .map(|r| r.job.clone())
            .collect()
    }

    /// How many times `job`'s script started.
    pub fn script_runs(&self, job: &str) -> usize {
        self.starts().iter().filter(|j| *j == job).count()
    }

    /// How many times `prepare` was called for `job` (successful or not).
    pub fn prepares(&self, job: &str) -> usize {
        lock(&self.state.records)
            .iter()
            .filter(|r| r.job == job && matches!(r.phase, Phase::Prepared | Phase::PrepareFailed))
            .count()
    }

    /// How many times `teardown` ran for `job`.
    pub fn teardowns(&self, job: &str) -> usize {
        lock(&self.state.records)
            .iter()
            .filter(|r| r.job == job && r.phase == Phase::TornDown)
            .count()
    }

    /// True when `a`'s first script start was recorded before `b`'s last script finish:
    /// `a` did not wait for `b`.
    pub fn started_before_finished(&self, a: &str, b: &str) -> bool {
        let records = lock(&self.state.records);
        let start = records
            .iter()
            .position(|r| r.job == a && r.phase == Phase::ScriptStarted);
        let finish = records
            .iter()
            .rposition(|r| r.job == b && matches!(r.phase, Phase::ScriptFinished(_)));
        matches!((start, finish), (Some(s), Some(f)) if s < f)
    }

    /// True when `a`'s last script finish was recorded before `b`'s first script start.
    pub fn finished_before_started(&self, a: &str, b: &str) -> bool {
        let records = lock(&self.state.records);
        let finish = records
            .iter()
            .rposition(|r| r.job == a && matches!(r.phase, Phase::ScriptFinished(_)));
        let start = records
            .iter()
            .position(|r| r.job == b && r.phase == Phase::ScriptStarted);
        matches!((finish, start), (Some(f), Some(s)) if f < s)
    }

    /// The highest number of scripts that were running at the same time.
    pub fn max_concurrency(&self) -> usize {
        self.state.max_running.load(Ordering::SeqCst)
    }

    /// Environments prepared and not yet torn down (0 after a clean run).
    pub fn open_envs(&self) -> usize {
        self.state.open_envs.load(Ordering::SeqCst)
    }

    /// The spec of `job`'s last attempt.
    pub fn spec(&self, job: &str) -> Option<JobSpec> {
        lock(&self.state.specs)
            .iter()
            .rev()
            .find(|s| s.job_name == job)
            .cloned()
    }

    /// Files (path relative to the workspace → content, lossy) that `job`'s last attempt
    /// found in its workspace when its script started.
    pub fn seen_files(&self, job: &str) -> Option<BTreeMap<String, String>> {
        lock(&self.state.seen)
            .iter()
            .rev()
            .find(|(j, _, _)| j == job)
            .map(|(_, _, files)| files.clone())
    }
}

fn env_of<'a>(env: &'a [(String, String)], name: &str) -> Option<&'a str> {
    env.iter()
        .rev()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.as_str())
}

fn count_of(env: &[(String, String)], name: &str) -> u32 {
    env_of(env, name)
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(0)
}

/// Parses `150ms`, `2s`, `1m` or a bare number of seconds.
pub fn parse_duration(text: &str) -> Option<Duration> {
    let t = text.trim();
    let (num, unit) = match t.find(|c: char| !c.is_ascii_digit() && c != '.') {
        Some(i) => t.split_at(i),
        None => (t, "s"),
    };
    let n: f64 = num.parse().ok()?;
    let secs = match unit {
        "ms" => n / 1000.0,
        "s" => n,
        "m" => n * 60.0,
        _ => return None,
    };
    Some(Duration::from_secs_f64(secs))
}

#[async_trait::async_trait]
impl Backend for FakeBackend {
    fn name(&self) -> &'static str {
        "fake"
    }

    async fn probe(&self) -> Result<BackendInfo, BackendError> {
        Ok(BackendInfo {
            name: "fake".into(),
            version: "0".into(),
            containers: self.containers,
        })
    }

    async fn prepare(&self, job: &JobSpec) -> Result<Box<dyn JobEnv>, BackendError> {
        lock(&self.state.specs).push(job.clone());
        if !self.containers {
            let mut needs = Vec::new();
            if let Some(image) = &job.image {
                needs.push(format!("image: {image}"));
            }
            if !job.services.is_empty() {
                needs.push("services".to_owned());
            }
            if job.image_build.is_some() {
                needs.push("image_build".to_owned());
            }
            if job.deploy.is_some() {
                needs.push("deploy".to_owned());
            }
            if !needs.is_empty() {
                self.state.record(job, Phase::PrepareFailed);
                return Err(BackendError::Unsupported {
                    job: job.job_name.clone(),
                    what: format!("a container ({})", needs.join(", ")),
                    backend: "fake",
                    hint: None,
                });
            }
        }
        let always = env_of(&job.env, "FAKE_START_FAIL").is_some_and(|v| v != "0");
        if always || job.attempt <= count_of(&job.env, "FAKE_START_FAIL_ATTEMPTS") {
            self.state.record(job, Phase::PrepareFailed);
            return Err(BackendError::Other(format!(
                "fake: prepare failed for \"{}\" (attempt {})",
                job.job_name, job.attempt
            )));
        }
        self.state.record(job, Phase::Prepared);
        self.state.open_envs.fetch_add(1, Ordering::SeqCst);
        Ok(Box::new(FakeEnv {
            spec: job.clone(),
            state: Arc::clone(&self.state),
            torn_down: false,
        }))
    }
}

struct FakeEnv {
    spec: JobSpec,
    state: Arc<State>,
    torn_down: bool,
}

/// Decrements the running count even when `run_script`'s future is dropped mid-sleep.
struct Running<'a>(&'a State);

impl Drop for Running<'_> {
    fn drop(&mut self) {
        self.0.running.fetch_sub(1, Ordering::SeqCst);
    }
}

impl FakeEnv {
    fn final_outcome(&self) -> Outcome {
        let env = &self.spec.env;
        let code = env_of(env, "FAKE_EXIT").and_then(|v| v.trim().parse::<i32>().ok());
        if self.spec.attempt <= count_of(env, "FAKE_FAIL_ATTEMPTS") {
            return Outcome::Failed {
                exit_code: code.filter(|c| *c != 0).unwrap_or(1),
            };
        }
        match code {
            Some(0) | None => Outcome::Success,
            Some(exit_code) => Outcome::Failed { exit_code },
        }
    }
}

#[async_trait::async_trait]
impl JobEnv for FakeEnv {
    async fn start_services(&mut self, logs: LogSink) -> Result<(), ServiceFailure> {
        self.state.record(&self.spec, Phase::ServicesStarted);
        let failing = env_of(&self.spec.env, "FAKE_SERVICE_FAIL");
        for service in &self.spec.services {
            logs.system(format!("starting service {}", service.name));
            if let Some(text) = env_of(&service.env, "FAKE_LOG") {
                for line in text.lines() {
                    logs.service_line(&service.name, line);
                }
            }
            if failing == Some(service.name.as_str()) {
                return Err(ServiceFailure {
                    service: service.name.clone(),
                    reason: "did not become ready (fake)".into(),
                    last_logs: vec![format!("{}: fake last words", service.name)],
                });
            }
        }
        Ok(())
    }

    async fn run_script(
        &mut self,
        logs: LogSink,
        cancel: CancellationToken,
    ) -> Result<Outcome, BackendError> {
        let now = self.state.running.fetch_add(1, Ordering::SeqCst) + 1;
        let _running = Running(&self.state);
        self.state.max_running.fetch_max(now, Ordering::SeqCst);
        self.state.record(&self.spec, Phase::ScriptStarted);
        let seen = list_files(&self.spec.workspace_dir);
        lock(&self.state.seen).push((self.spec.job_name.clone(), self.spec.attempt, seen));

        let result = self.script(&logs, &cancel).await;
        let phase = Phase::ScriptFinished(result.as_ref().ok().cloned());
        self.state.record(&self.spec, phase);
        result
    }

    async fn teardown(mut self: Box<Self>) -> Result<(), BackendError> {
        self.state.record(&self.spec, Phase::TornDown);
        if !std::mem::replace(&mut self.torn_down, true) {
            self.state.open_envs.fetch_sub(1, Ordering::SeqCst);
        }
        Ok(())
    }
}

impl FakeEnv {
    async fn script(
        &self,
        logs: &LogSink,
        cancel: &CancellationToken,
    ) -> Result<Outcome, BackendError> {
        let env = &self.spec.env;
        if let Some(build) = &self.spec.image_build {
            logs.system(format!("fake: built image {}", build.tags.join(", ")));
        }
        if let Some(deploy) = &self.spec.deploy {
            logs.system(format!("fake: will deploy {deploy:?}"));
        }
        for line in &self.spec.script {
            logs.line(Stream::Stdout, format!("+ {line}"));
        }
        if let Some(text) = env_of(env, "FAKE_LOG") {
            for line in text.lines() {
                logs.line(Stream::Stdout, line);
            }
        }
        if let Some(writes) = env_of(env, "FAKE_WRITE") {
            for item in writes.split(';').filter(|s| !s.is_empty()) {
                let (path, content) = item.split_once('=').unwrap_or((item, ""));
                let target = self.spec.workspace_dir.join(path);
                let written = target
                    .parent()
                    .map_or(Ok(()), std::fs::create_dir_all)
                    .and_then(|()| std::fs::write(&target, content));
                if let Err(e) = written {
                    logs.line(Stream::Stderr, format!("fake: cannot write {path}: {e}"));
                    return Ok(Outcome::Failed { exit_code: 1 });
                }
            }
        }
        if env_of(env, "FAKE_SCRIPT_ERR").is_some_and(|v| v != "0") {
            return Err(BackendError::Other(
                "fake: the script's runner broke".into(),
            ));
        }
        if cancel.is_cancelled() {
            return Ok(Outcome::Cancelled);
        }
        let sleep = env_of(env, "FAKE_SLEEP")
            .and_then(parse_duration)
            .unwrap_or_default();
        if sleep.is_zero() {
            // Not even a zero sleep: tokio's timer has a 1 ms tick, which would dwarf
            // what the engine benchmark measures.
            return Ok(self.final_outcome());
        }
        // A zero timeout means "none": `JobSpec::default()` has one.
        let timeout = Some(self.spec.timeout).filter(|t| !t.is_zero());
        let timed_out = async {
            match timeout {
                Some(t) => tokio::time::sleep(t).await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            () = tokio::time::sleep(sleep) => {}
            () = cancel.cancelled() => return Ok(Outcome::Cancelled),
            () = timed_out => return Ok(Outcome::TimedOut),
        }
        Ok(self.final_outcome())
    }
}

/// Every regular file under `root` (relative, `/`-separated) with its content (lossy,
/// first 4 KiB). Symlinks are listed with their target as content, prefixed `-> `.
fn list_files(root: &Path) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(dir) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&dir) else {
            continue;
        };
        for entry in entries.flatten() {
            let path = entry.path();
            let Ok(meta) = std::fs::symlink_metadata(&path) else {
                continue;
            };
            let rel = path
                .strip_prefix(root)
                .map(|p| p.to_string_lossy().replace('\\', "/"))
                .unwrap_or_default();
            if meta.is_dir() {
                stack.push(path);
            } else if meta.file_type().is_symlink() {
                let target = std::fs::read_link(&path).unwrap_or_default();
                out.insert(rel, format!("-> {}", target.display()));
            } else {
                let bytes = std::fs::read(&path).unwrap_or_default();
                let head = &bytes[..bytes.len().min(4096)];
                out.insert(rel, String::from_utf8_lossy(head).into_owned());
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        let check = |text: &str, expect: Option<u64>| {
            assert_eq!(
                parse_duration(text).map(|d| d.as_millis() as u64),
                expect,
                "{text}"
            );
        };
        check("150ms", Some(150));
        check("2s", Some(2000));
        check("2", Some(2000));
        check("1m", Some(60_000));
        check("0.5s", Some(500));
        check("x", None);
        check("3h", None);
    }

    fn spec(env: &[(&str, &str)]) -> JobSpec {
        JobSpec {
            job_name: "j".into(),
            attempt: 1,
            env: env
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            ..Default::default()
        }
    }

    async fn run(fake: &FakeBackend, spec: &JobSpec) -> Result<Outcome, String> {
        let (logs, _rx) = LogSink::channel();
        let mut env = fake.prepare(spec).await.map_err(|e| e.to_string())?;
        let out = env
            .run_script(logs, CancellationToken::new())
            .await
            .map_err(|e| e.to_string());
        env.teardown().await.map_err(|e| e.to_string())?;
        out
    }

    #[tokio::test]
    async fn scripted_outcomes() {
        let fake = FakeBackend::new();
        let check = |env: &'static [(&'static str, &'static str)], expect: Result<Outcome, ()>| {
            let fake = fake.clone();
            async move {
                let got = run(&fake, &spec(env)).await.map_err(|_| ());
                assert_eq!(got, expect, "{env:?}");
            }
        };
        check(&[], Ok(Outcome::Success)).await;
        check(&[("FAKE_EXIT", "3")], Ok(Outcome::Failed { exit_code: 3 })).await;
        check(
            &[("FAKE_EXIT", "3"), ("FAKE_EXIT", "0")],
            Ok(Outcome::Success),
        )
        .await;
        check(
            &[("FAKE_FAIL_ATTEMPTS", "1")],
            Ok(Outcome::Failed { exit_code: 1 }),
        )
        .await;
        check(&[("FAKE_START_FAIL", "1")], Err(())).await;
        check(&[("FAKE_SCRIPT_ERR", "1")], Err(())).await;
        assert_eq!(fake.open_envs(), 0);
    }

    #[tokio::test]
    async fn timeout_and_cancel() {
        let fake = FakeBackend::new();
        let mut s = spec(&[("FAKE_SLEEP", "30s")]);
        s.timeout = Duration::from_millis(20);
        assert_eq!(run(&fake, &s).await, Ok(Outcome::TimedOut));

        let s = spec(&[("FAKE_SLEEP", "30s")]);
        let mut env = fake
            .prepare(&s)
            .await
            .map_err(|e| e.to_string())
            .expect("prepare");
        let cancel = CancellationToken::new();
        let (logs, _rx) = LogSink::channel();
        let trigger = cancel.clone();
        tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(20)).await;
            trigger.cancel();
        });
        let out = env.run_script(logs, cancel).await.ok();
        assert_eq!(out, Some(Outcome::Cancelled));
        assert_eq!(fake.open_envs(), 1);
        let _ = env.teardown().await;
        assert_eq!(fake.open_envs(), 0);
    }

    #[tokio::test]
    async fn host_only_refuses_containers() {
        let fake = FakeBackend::host_only();
        let mut s = spec(&[]);
        s.image = Some("alpine".into());
        let err = run(&fake, &s).await.err().unwrap_or_default();
        assert!(err.contains("a container (image: alpine)"), "{err}");
    }

    #[tokio::test]
    async fn writes_and_sees_files() {
        let dir = tempfile::tempdir().expect("tempdir");
        std::fs::write(dir.path().join("src.txt"), "hi").expect("write");
        let fake = FakeBackend::new();
        let mut s = spec(&[("FAKE_WRITE", "out/a.txt=one;b=two")]);
        s.workspace_dir = dir.path().to_path_buf();
        assert_eq!(run(&fake, &s).await, Ok(Outcome::Success));
        let seen = fake.seen_files("j").unwrap_or_default();
        assert_eq!(seen.keys().collect::<Vec<_>>(), ["src.txt"]);
        let a = std::fs::read_to_string(dir.path().join("out/a.txt")).unwrap_or_default();
        assert_eq!(a, "one");
    }
}
