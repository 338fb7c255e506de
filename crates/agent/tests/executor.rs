//! The executor loop against an in-memory [`JobSource`], with real git repositories and
//! real `sh` jobs on the local backend.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use gantry_agent::{Executor, ExecutorConfig, ExecutorError, ExecutorHandle, earlier_leases};
use gantry_backend::CancellationToken;
use gantry_backend_local::LocalBackend;
use gantry_engine::Backends;
use gantry_engine::artifacts::Manifest;
use gantry_pipeline::{Plan, PlanContext};
use gantry_protocol::{
    ExecutorInfo, Finish, JobReport, JobSource, Lease, LeaseError, LeaseId, LeaseState, LogChunk,
    LogStream, PROTOCOL_VERSION, SourceRef,
};
use gantry_test_support::{TempTree, git};
use tokio::sync::Notify;

/// Generous bound so that a broken executor fails the test instead of hanging it.
const PATIENCE: Duration = Duration::from_secs(60);

/// A job source that hands out queued leases and records everything reported.
#[derive(Default)]
struct Fake {
    queue: Mutex<VecDeque<Lease>>,
    queued: Notify,
    /// What heartbeats of a lease answer (default `Ok`).
    answers: Mutex<HashMap<LeaseId, LeaseState>>,
    heartbeats: Mutex<HashMap<LeaseId, usize>>,
    logs: Mutex<HashMap<LeaseId, Vec<LogChunk>>>,
    blobs: Mutex<HashMap<String, Vec<u8>>>,
    /// Cache entries by key (the first saved is kept).
    caches: Mutex<HashMap<String, Manifest>>,
    finishes: Mutex<Vec<(LeaseId, Finish)>>,
    finished: Notify,
    /// Refuse every lease call with this.
    refuse: Mutex<Option<LeaseError>>,
}

impl Fake {
    fn push(&self, lease: Lease) {
        self.queue.lock().expect("lock").push_back(lease);
        self.queued.notify_one();
    }

    fn answer(&self, lease: &str, state: LeaseState) {
        self.answers
            .lock()
            .expect("lock")
            .insert(LeaseId(lease.into()), state);
    }

    fn finish_of(&self, lease: &str) -> Option<Finish> {
        self.finishes
            .lock()
            .expect("lock")
            .iter()
            .find(|(id, _)| id.0 == lease)
            .map(|(_, f)| f.clone())
    }

    async fn wait_finish(&self, lease: &str) -> Finish {
        let wait = async {
            loop {
                let notified = self.finished.notified();
                if let Some(finish) = self.finish_of(lease) {
                    return finish;
                }
                notified.await;
            }
        };
        tokio::time::timeout(PATIENCE, wait)
            .await
            .unwrap_or_else(|_| panic!("no finish for {lease}"))
    }

    fn chunks(&self, lease: &str) -> Vec<LogChunk> {
        self.logs
            .lock()
            .expect("lock")
            .get(&LeaseId(lease.into()))
            .cloned()
            .unwrap_or_default()
    }

    /// `stream text` per line, in order.
    fn log(&self, lease: &str) -> Vec<String> {
        self.chunks(lease)
            .into_iter()
            .flat_map(|c| c.lines)
            .map(|l| {
                let stream = match l.stream {
                    LogStream::Stdout => "out",
                    LogStream::Stderr => "err",
                    LogStream::System => "sys",
                    LogStream::Service => "svc",
                };
                format!("{stream} {}", l.text)
            })
            .collect()
    }
}

#[async_trait::async_trait]
impl JobSource for Fake {
    async fn lease(&self, _me: &ExecutorInfo, wait: Duration) -> Result<Option<Lease>, LeaseError> {
        if let Some(e) = self.refuse.lock().expect("lock").clone() {
            return Err(e);
        }
        let notified = self.queued.notified();
        if let Some(lease) = self.queue.lock().expect("lock").pop_front() {
            return Ok(Some(lease));
        }
        let _ = tokio::time::timeout(wait, notified).await;
        Ok(self.queue.lock().expect("lock").pop_front())
    }

    async fn heartbeat(&self, lease: &LeaseId) -> Result<LeaseState, LeaseError> {
        *self
            .heartbeats
            .lock()
            .expect("lock")
            .entry(lease.clone())
            .or_default() += 1;
        let answers = self.answers.lock().expect("lock");
        Ok(answers.get(lease).copied().unwrap_or(LeaseState::Ok))
    }

    async fn append_log(&self, lease: &LeaseId, chunk: LogChunk) -> Result<(), LeaseError> {
        self.logs
            .lock()
            .expect("lock")
            .entry(lease.clone())
            .or_default()
            .push(chunk);
        Ok(())
    }

    async fn put_artifact(
        &self,
        _lease: &LeaseId,
        digest: &str,
        path: &Path,
    ) -> Result<(), LeaseError> {
        let bytes = std::fs::read(path).map_err(|e| LeaseError::Invalid(e.to_string()))?;
        self.blobs
            .lock()
            .expect("lock")
            .insert(digest.to_owned(), bytes);
        Ok(())
    }

    async fn get_artifact(
        &self,
        _lease: &LeaseId,
        digest: &str,
        dest: &Path,
    ) -> Result<(), LeaseError> {
        let bytes = self
            .blobs
            .lock()
            .expect("lock")
            .get(digest)
            .cloned()
            .ok_or_else(|| LeaseError::Invalid(format!("no blob {digest}")))?;
        std::fs::write(dest, bytes).map_err(|e| LeaseError::Invalid(e.to_string()))
    }

    async fn get_cache(&self, _lease: &LeaseId, key: &str) -> Result<Option<Manifest>, LeaseError> {
        Ok(self.caches.lock().expect("lock").get(key).cloned())
    }

    async fn put_cache(
        &self,
        _lease: &LeaseId,
        key: &str,
        manifest: Manifest,
    ) -> Result<bool, LeaseError> {
        let blobs = self.blobs.lock().expect("lock");
        if let Some(missing) = manifest
            .files
            .values()
            .find(|e| !blobs.contains_key(&e.digest))
        {
            return Err(LeaseError::Invalid(format!(
                "blob {} was not uploaded",
                missing.digest
            )));
        }
        let mut caches = self.caches.lock().expect("lock");
        if caches.contains_key(key) {
            return Ok(false);
        }
        caches.insert(key.to_owned(), manifest);
        Ok(true)
    }

    async fn finish(&self, lease: &LeaseId, finish: Finish) -> Result<(), LeaseError> {
        let lost = self.answers.lock().expect("lock").get(lease) == Some(&LeaseState::Lost);
        self.finishes
            .lock()
            .expect("lock")
            .push((lease.clone(), finish));
        self.finished.notify_waiters();
        if lost {
            return Err(LeaseError::Stale {
                lease: lease.0.clone(),
                reason: "expired".into(),
            });
        }
        Ok(())
    }
}

/// A repository whose first commit holds `gantry.yml` (`pipeline`) and `README.md`.
struct Repo {
    tree: TempTree,
    commit: String,
    plan: Plan,
}

fn repo(pipeline: &str) -> Repo {
    let tree = TempTree::new();
    git(tree.path(), &["init", "-q", "-b", "main"]);
    tree.file("gantry.yml", pipeline)
        .file("README.md", "committed readme\n")
        .exec(
            "tools/hello.sh",
            "#!/bin/sh\necho hello from a tracked script\n",
        );
    git(tree.path(), &["add", "-A"]);
    git(tree.path(), &["commit", "-q", "-m", "initial"]);
    let commit = git(tree.path(), &["rev-parse", "HEAD"]).trim().to_owned();
    // Uncommitted edits must not reach a job: it builds the commit.
    tree.file("README.md", "uncommitted edit\n");
    let spec = gantry_pipeline::parse("gantry.yml", pipeline).expect("the pipeline parses");
    let ctx = PlanContext {
        run_id: "41".into(),
        run_number: 7,
        branch: Some("main".into()),
        commit: Some(commit.clone()),
        ..PlanContext::default()
    };
    let plan = spec.plan(&ctx).expect("the pipeline plans");
    Repo { tree, commit, plan }
}

impl Repo {
    /// A lease `id` for the job named `job`.
    fn lease(&self, id: &str, job: &str) -> Lease {
        let job_index = self
            .plan
            .jobs
            .iter()
            .position(|j| j.name == job)
            .expect("a job of the plan");
        Lease {
            id: LeaseId(id.into()),
            run_id: 41,
            run_number: 7,
            repo: "app".into(),
            pipeline: self.plan.pipeline.clone(),
            plan: self.plan.clone(),
            job_index,
            job_key: gantry_engine::job_keys(&self.plan)[job_index].clone(),
            attempt: 1,
            source: SourceRef {
                url: self.tree.path().to_string_lossy().into_owned(),
                commit: self.commit.clone(),
                git_ref: "refs/heads/main".into(),
            },
            restore: Vec::new(),
            secrets: BTreeMap::new(),
            ttl_secs: 30,
        }
    }
}

/// A running executor over a [`Fake`].
struct Running {
    fake: Arc<Fake>,
    work: TempTree,
    cancel: CancellationToken,
    handle: ExecutorHandle,
    task: tokio::task::JoinHandle<Result<(), ExecutorError>>,
}

fn start(capacity: u32) -> Running {
    // As `gantry` does: reap whatever the jobs' scripts orphan.
    let _ = gantry_backend_local::become_subreaper();
    let fake = Arc::new(Fake::default());
    let work = TempTree::new();
    let config = ExecutorConfig {
        info: ExecutorInfo {
            name: "test".into(),
            labels: BTreeMap::new(),
            capacity,
            protocol: PROTOCOL_VERSION,
        },
        work_dir: work.join("executor"),
        backends: Backends {
            host: Arc::new(LocalBackend::new()),
            containers: None,
        },
        poll_wait: Duration::from_millis(200),
    };
    let executor = Executor::new(Arc::clone(&fake) as Arc<dyn JobSource>, config);
    let handle = executor.handle();
    let cancel = CancellationToken::new();
    let task = {
        let cancel = cancel.clone();
        tokio::spawn(async move { executor.run(cancel).await })
    };
    Running {
        fake,
        work,
        cancel,
        handle,
        task,
    }
}

impl Running {
    /// Stops the executor and checks that it left no job directory behind.
    async fn stop(self) -> TempTree {
        self.cancel.cancel();
        let result = tokio::time::timeout(PATIENCE, self.task)
            .await
            .expect("the executor stops")
            .expect("the executor task");
        assert!(result.is_ok(), "{result:?}");
        let left: Vec<_> = std::fs::read_dir(self.work.join("executor/jobs"))
            .expect("the jobs directory")
            .flatten()
            .map(|e| e.file_name())
            .collect();
        assert!(left.is_empty(), "job directories left: {left:?}");
        self.work
    }
}

fn contains(log: &[String], line: &str) -> bool {
    log.iter().any(|l| l == line)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_job_succeeds_and_its_log_arrives_in_numbered_batches() {
    let repo = repo(
        "jobs:
  build:
    env:
      TOKEN: { secret: deploy-token }
    script:
      - cat README.md
      - ./tools/hello.sh
      - echo to stderr >&2
      - echo token=$TOKEN
      - test ! -e .git
",
    );
    let running = start(1);
    let mut lease = repo.lease("l1", "build");
    lease.secrets = [("deploy-token".to_string(), "hunter22".to_string())].into();
    running.fake.push(lease);
    let finish = running.fake.wait_finish("l1").await;
    let log = running.fake.log("l1");
    assert_eq!(finish.report, JobReport::Succeeded, "{log:#?}");
    assert_eq!(finish.attempts, 1);
    assert_eq!(finish.manifest, None);
    for line in [
        "out committed readme",
        "out hello from a tracked script",
        "err to stderr",
        "out token=***",
    ] {
        assert!(contains(&log, line), "{line:?} not in {log:#?}");
    }
    assert!(log[0].starts_with("sys checking out "), "{log:#?}");
    assert!(!log.iter().any(|l| l.contains("hunter22")));
    let seqs: Vec<u64> = running.fake.chunks("l1").iter().map(|c| c.seq).collect();
    assert_eq!(seqs, (0..seqs.len() as u64).collect::<Vec<_>>());
    running.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_script_reports_its_exit_code() {
    let repo = repo(
        "jobs:
  fails:
    script:
      - echo about to fail
      - exit 3
  allowed:
    allow_failure: true
    script:
      - exit 4
",
    );
    let running = start(2);
    running.fake.push(repo.lease("l1", "fails"));
    running.fake.push(repo.lease("l2", "allowed"));
    let finish = running.fake.wait_finish("l1").await;
    assert_eq!(
        finish.report,
        JobReport::Failed {
            exit_code: Some(3),
            outcome: "failed with exit code 3".into(),
            allowed: false,
        }
    );
    assert!(contains(&running.fake.log("l1"), "out about to fail"));
    let finish = running.fake.wait_finish("l2").await;
    assert_eq!(
        finish.report,
        JobReport::Failed {
            exit_code: Some(4),
            outcome: "failed with exit code 4".into(),
            allowed: true,
        }
    );
    running.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn artifacts_go_up_from_one_lease_and_come_back_in_the_next() {
    let repo = repo(
        "jobs:
  build:
    script:
      - mkdir -p out
      - echo binary > out/app
      - chmod +x out/app
      - echo scratch > scratch.o
    artifacts: [out]
  test:
    needs: [build]
    script:
      - cat out/app
      - test -x out/app
      - test ! -e scratch.o
      - echo ok > report.txt
    artifacts: [report.txt]
",
    );
    let running = start(1);
    running.fake.push(repo.lease("l1", "build"));
    let built = running.fake.wait_finish("l1").await;
    assert_eq!(built.report, JobReport::Succeeded);
    let manifest: Manifest = built.manifest.expect("build's manifest");
    let entry = manifest
        .files
        .get("out/app")
        .expect("out/app stored")
        .clone();
    assert_eq!(entry.size, 7);
    assert_eq!(
        running.fake.blobs.lock().expect("lock").get(&entry.digest),
        Some(&b"binary\n".to_vec()),
        "the blob was uploaded"
    );

    let mut lease = repo.lease("l2", "test");
    lease.restore = vec![manifest];
    running.fake.push(lease);
    let tested = running.fake.wait_finish("l2").await;
    let log = running.fake.log("l2");
    assert_eq!(tested.report, JobReport::Succeeded, "{log:#?}");
    assert!(contains(&log, "out binary"), "{log:#?}");
    let report = tested.manifest.expect("test's manifest");
    assert_eq!(report.files.keys().collect::<Vec<_>>(), ["report.txt"]);

    // A blob the source no longer has: the job errors, naming the artifact.
    let mut lease = repo.lease("l3", "test");
    let mut broken = Manifest {
        job: "build".into(),
        files: BTreeMap::new(),
    };
    let mut missing = entry.clone();
    missing.digest = "0".repeat(64);
    broken.files.insert("out/app".into(), missing);
    lease.restore = vec![broken];
    running.fake.push(lease);
    let finish = running.fake.wait_finish("l3").await;
    match finish.report {
        JobReport::Errored { message } => assert_eq!(
            message,
            format!(
                "cannot fetch artifact out/app of job \"build\" ({}): invalid request: no blob {}",
                "0".repeat(64),
                "0".repeat(64)
            )
        ),
        other => panic!("not errored: {other:?}"),
    }
    running.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_heartbeat_saying_cancelled_kills_the_job_and_reports_cancelled() {
    let sleeper = Sleeper::new();
    let repo = repo(&format!(
        "jobs:\n  long:\n    script:\n      - {}\n",
        sleeper.script()
    ));
    let running = start(1);
    let mut lease = repo.lease("l1", "long");
    lease.ttl_secs = 1;
    running.fake.push(lease);
    sleeper.wait_started().await;
    running.fake.answer("l1", LeaseState::Cancelled);
    let finish = running.fake.wait_finish("l1").await;
    assert_eq!(finish.report, JobReport::Cancelled);
    assert!(!sleeper.is_running(), "the script's processes were killed");
    running.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lost_lease_kills_the_job_and_reports_nothing() {
    let sleeper = Sleeper::new();
    let repo = repo(&format!(
        "jobs:\n  long:\n    script:\n      - {}\n  quick:\n    script:\n      - echo quick\n",
        sleeper.script()
    ));
    // One slot: the second lease runs only once the first is over and cleaned up.
    let running = start(1);
    let mut lease = repo.lease("lost", "long");
    lease.ttl_secs = 1;
    running.fake.push(lease);
    running.fake.push(repo.lease("next", "quick"));
    sleeper.wait_started().await;
    running.fake.answer("lost", LeaseState::Lost);
    let next = running.fake.wait_finish("next").await;
    assert_eq!(next.report, JobReport::Succeeded);
    assert!(
        running.fake.finish_of("lost").is_none(),
        "no finish reported"
    );
    assert!(
        running
            .fake
            .heartbeats
            .lock()
            .expect("lock")
            .get(&LeaseId("lost".into()))
            .is_some_and(|n| *n >= 1)
    );
    assert!(!sleeper.is_running(), "the script's processes were killed");
    running.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn checkout_failures_are_errors_with_gits_message() {
    let repo = repo("jobs:\n  build:\n    script: [\"true\"]\n");
    let running = start(2);
    let absent = "deadbeef".repeat(5);
    let nowhere = repo.tree.join("no-such-repo");
    let not_found = format!("commit {absent} not found in ");
    let not_a_repo = format!(
        "git fetch failed: fatal: '{}' does not appear to be a git repository; ",
        nowhere.display()
    );
    let cases: Vec<(&str, String, String, Vec<&str>)> = vec![
        (
            "bad-commit",
            repo.tree.path().to_string_lossy().into_owned(),
            absent.clone(),
            vec![&not_found],
        ),
        (
            "bad-url",
            nowhere.to_string_lossy().into_owned(),
            repo.commit.clone(),
            vec![&not_a_repo],
        ),
        (
            "not-a-commit-id",
            repo.tree.path().to_string_lossy().into_owned(),
            "--upload-pack=touch".into(),
            vec!["refusing commit \"--upload-pack=touch\": not a full commit id"],
        ),
    ];
    for (id, url, commit, _) in &cases {
        let mut lease = repo.lease(id, "build");
        lease.source.url = url.clone();
        lease.source.commit = commit.clone();
        running.fake.push(lease);
    }
    for (id, url, commit, expect) in &cases {
        let finish = running.fake.wait_finish(id).await;
        let JobReport::Errored { message } = &finish.report else {
            panic!("{id}: not errored: {:?}", finish.report);
        };
        let prefix = format!("cannot check out {url} at {commit}: ");
        assert!(message.starts_with(&prefix), "{id}: {message}");
        assert!(!message.contains('\n'), "{id}: one line: {message}");
        for part in expect {
            assert!(message.contains(part), "{id}: {part:?} not in {message}");
        }
        assert_eq!(finish.attempts, 0, "{id}: no script ran");
        let log = running.fake.log(id);
        assert!(
            contains(&log, &format!("sys error: {message}")),
            "{id}: {log:#?}"
        );
    }
    // The good commit of the same repository still checks out afterwards.
    running.fake.push(repo.lease("good", "build"));
    assert_eq!(
        running.fake.wait_finish("good").await.report,
        JobReport::Succeeded
    );
    running.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refusing_source_stops_the_executor_with_the_reason() {
    let running = start(1);
    *running.fake.refuse.lock().expect("lock") = Some(LeaseError::Incompatible {
        executor: PROTOCOL_VERSION,
        supported: "99".into(),
    });
    let result = tokio::time::timeout(PATIENCE, running.task)
        .await
        .expect("the executor stops")
        .expect("the executor task");
    let err = result.expect_err("refused");
    assert_eq!(err.to_string(), "the server refused this executor");
    assert!(matches!(
        err,
        ExecutorError::Refused(LeaseError::Incompatible { .. })
    ));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn leftovers_of_a_dead_executor_are_swept_at_start() {
    let work = TempTree::new();
    work.file("executor/jobs/41-build-1-1/src/file", "left behind");
    let fake = Arc::new(Fake::default());
    let config = ExecutorConfig {
        info: ExecutorInfo {
            name: "test".into(),
            labels: BTreeMap::new(),
            capacity: 1,
            protocol: PROTOCOL_VERSION,
        },
        work_dir: work.join("executor"),
        backends: Backends {
            host: Arc::new(LocalBackend::new()),
            containers: None,
        },
        poll_wait: Duration::from_millis(50),
    };
    let executor = Executor::new(fake as Arc<dyn JobSource>, config);
    let cancel = CancellationToken::new();
    cancel.cancel();
    executor.run(cancel).await.expect("runs and stops");
    assert!(!work.join("executor/jobs/41-build-1-1").exists());
    assert!(work.join("executor/jobs").is_dir());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn long_logs_are_cut_into_ordered_batches_of_at_most_500_lines() {
    let repo = repo("jobs:\n  chatty:\n    script:\n      - seq 1 1200\n");
    let running = start(1);
    running.fake.push(repo.lease("l1", "chatty"));
    assert_eq!(
        running.fake.wait_finish("l1").await.report,
        JobReport::Succeeded
    );
    let chunks = running.fake.chunks("l1");
    let seqs: Vec<u64> = chunks.iter().map(|c| c.seq).collect();
    assert_eq!(seqs, (0..chunks.len() as u64).collect::<Vec<_>>());
    assert!(
        chunks
            .iter()
            .all(|c| !c.lines.is_empty() && c.lines.len() <= 500)
    );
    let numbers: Vec<String> = running
        .fake
        .log("l1")
        .into_iter()
        .filter_map(|l| l.strip_prefix("out ").map(str::to_owned))
        .filter(|l| !l.starts_with('+'))
        .collect();
    let expect: Vec<String> = (1..=1200).map(|n| n.to_string()).collect();
    assert_eq!(numbers, expect);
    running.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stopping_the_executor_kills_its_jobs_without_reporting_them() {
    let sleeper = Sleeper::new();
    let repo = repo(&format!(
        "jobs:\n  long:\n    script:\n      - {}\n",
        sleeper.script()
    ));
    let running = start(1);
    running.fake.push(repo.lease("l1", "long"));
    sleeper.wait_started().await;
    assert!(sleeper.is_running());
    let fake = Arc::clone(&running.fake);
    let work = running.stop().await;
    assert!(
        fake.finish_of("l1").is_none(),
        "left for the lease to expire"
    );
    assert!(!sleeper.is_running(), "the script's processes were killed");
    // The next run (of an agent: `gantry agent`) names the unreported lease at hello.
    assert_eq!(
        earlier_leases(&work.join("executor")),
        [LeaseId("l1".into())]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_drained_executor_takes_no_new_job_and_lets_the_running_one_finish() {
    let gate = TempTree::new();
    let open = gate.join("open");
    let repo = repo(&format!(
        "jobs:\n  gated:\n    script:\n      - \"while [ ! -e {} ]; do sleep 0.05; done\"\n  \
         quick:\n    script: [\"true\"]\n",
        open.display()
    ));
    let running = start(2);
    assert_eq!(running.handle.running(), 0);
    running.fake.push(repo.lease("l1", "gated"));
    tokio::time::timeout(PATIENCE, async {
        while running.handle.running() == 0 {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await
    .expect("the job starts");
    assert_eq!(
        earlier_leases(&running.work.join("executor")),
        [LeaseId("l1".into())],
        "a running job's lease is on record"
    );

    running.handle.drain();
    assert!(running.handle.draining());
    // There is room for this one, but a drained executor leases nothing more.
    running.fake.push(repo.lease("l2", "quick"));
    assert_eq!(running.handle.running(), 1);
    std::fs::write(&open, "").expect("open the gate");
    let result = tokio::time::timeout(PATIENCE, running.task)
        .await
        .expect("the drained executor returns once its job is over")
        .expect("the executor task");
    assert!(result.is_ok(), "{result:?}");
    assert!(!running.cancel.is_cancelled());
    assert_eq!(running.handle.running(), 0);
    assert_eq!(
        running.fake.finish_of("l1").map(|f| f.report),
        Some(JobReport::Succeeded)
    );
    assert!(running.fake.finish_of("l2").is_none());
    assert_eq!(
        running.fake.queue.lock().expect("lock").len(),
        1,
        "l2 was never leased"
    );
    assert_eq!(earlier_leases(&running.work.join("executor")), []);
}

/// A script line that starts a long `sleep` in the background, records its pid outside
/// the workspace, and waits for it: whether the job's processes were killed can then be
/// checked from the test.
struct Sleeper {
    scratch: TempTree,
}

impl Sleeper {
    fn new() -> Sleeper {
        Sleeper {
            scratch: TempTree::new(),
        }
    }

    fn script(&self) -> String {
        format!(
            "\"sleep 300 & echo $! > {}; wait\"",
            self.scratch.join("pid").display()
        )
    }

    fn pid(&self) -> Option<u32> {
        std::fs::read_to_string(self.scratch.join("pid"))
            .ok()?
            .trim()
            .parse()
            .ok()
    }

    async fn wait_started(&self) {
        tokio::time::timeout(PATIENCE, async {
            while self.pid().is_none() {
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        })
        .await
        .expect("the script starts");
    }

    /// The sleep exists and is not a zombie (this test process is a subreaper, so killed
    /// orphans linger as zombies until reaped).
    fn is_running(&self) -> bool {
        let pid = self.pid().expect("the script recorded its pid");
        std::fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|stat| {
            let state = stat.rsplit_once(')').map(|(_, rest)| rest.trim_start());
            !state.is_some_and(|s| s.starts_with('Z') || s.starts_with('X'))
        })
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_password_in_the_clone_url_never_reaches_the_log() {
    let repo = repo("jobs:\n  build:\n    script: [\"true\"]\n");
    let running = start(1);
    let mut lease = repo.lease("l1", "build");
    // Nothing listens on port 1: the fetch fails at once, and git quotes the URL.
    lease.source.url = "http://ci:pw-4711@127.0.0.1:1/app.git".into();
    running.fake.push(lease);
    let finish = running.fake.wait_finish("l1").await;
    let JobReport::Errored { message } = &finish.report else {
        panic!("not errored: {:?}", finish.report);
    };
    assert!(
        message.starts_with("cannot check out http://ci:***@127.0.0.1:1/app.git at "),
        "{message}"
    );
    let log = running.fake.log("l1").join("\n");
    assert!(
        !log.contains("pw-4711") && !message.contains("pw-4711"),
        "{log}"
    );
    running.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cache_goes_through_the_lease_and_is_checked_on_the_way_back() {
    let repo = repo(
        "jobs:
  build:
    cache: { key: deps-1, paths: [deps] }
    script:
      - if test -f deps/lib.txt; then echo \"found $(cat deps/lib.txt)\"; else mkdir -p deps; echo v1 > deps/lib.txt; echo made; fi
",
    );
    let running = start(1);
    let run = |id: &'static str| {
        let fake = Arc::clone(&running.fake);
        let lease = repo.lease(id, "build");
        async move {
            fake.push(lease);
            let finish = fake.wait_finish(id).await;
            let log = fake.log(id);
            assert_eq!(finish.report, JobReport::Succeeded, "{log:#?}");
            log
        }
    };
    // The first job saves the cache: its blob, then its manifest.
    let log = run("l1").await;
    assert!(contains(&log, "out made"), "{log:#?}");
    let saved = running
        .fake
        .caches
        .lock()
        .expect("lock")
        .get("deps-1")
        .cloned()
        .unwrap_or_else(|| panic!("not saved: {log:#?}"));
    let digest = saved.files["deps/lib.txt"].digest.clone();
    assert_eq!(
        running.fake.blobs.lock().expect("lock").get(&digest),
        Some(&b"v1\n".to_vec())
    );

    // The next job (on a fresh job directory) restores it.
    let log = run("l2").await;
    assert!(contains(&log, "out found v1"), "{log:#?}");
    assert!(
        log.iter()
            .any(|l| l.starts_with("sys cache \"deps-1\": restored 1 file")),
        "{log:#?}"
    );

    // A blob that does not match its digest is refused: the job runs without the cache.
    running
        .fake
        .blobs
        .lock()
        .expect("lock")
        .insert(digest.clone(), b"forged\n".to_vec());
    let log = run("l3").await;
    assert!(contains(&log, "out made"), "{log:#?}");
    assert!(
        log.iter()
            .any(|l| l.contains("cache file deps/lib.txt") && l.contains("arrived damaged")),
        "{log:#?}"
    );
    running.stop().await;
}
