//! [`run_one`]: one job of a plan on its own, for executors that are handed jobs one at a
//! time (the server's built-in executor, remote agents) instead of whole runs.
//!
//! It is the same job runner the DAG scheduler uses (attempts, retries, pristine
//! workspaces, services, artifacts, masking, teardown); only the surroundings differ: the
//! caller has already decided that the job runs, supplies the source as a directory it
//! checked out, and supplies the manifests of the needs whose blobs it put into `store`.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use gantry_backend::CancellationToken;
use gantry_pipeline::Plan;
use tokio::sync::mpsc::UnboundedSender;

use crate::artifacts::{ArtifactStore, Manifest};
use crate::cache::CacheStore;
use crate::config::Backends;
use crate::event::{JobIndex, JobStatus, RunEvent};
use crate::mask::Masker;
use crate::runner::{self, RunContext};
use crate::scheduler::job_keys;
use crate::source::Source;

/// One job to run with [`run_one`]. Its `Debug` output lists secret names, never values.
pub struct JobRun {
    /// The run's whole plan.
    pub plan: Plan,
    /// Which job (`plan.jobs[job]`).
    pub job: JobIndex,
    /// The backends it may use.
    pub backends: Backends,
    /// The run's id (labels, container names).
    pub run_id: String,
    /// Where the job's workspace is made: `work_dir/<job_key>` ([`job_keys`]), removed
    /// when the job ends.
    pub work_dir: PathBuf,
    /// The files the workspace starts from. Read while the job runs, so it must not
    /// change meanwhile (a checkout made for this job).
    pub source: Source,
    /// Where the blobs of `restores` are, and where the job's artifacts are stored.
    pub store: ArtifactStore,
    /// Manifests of the artifacts of the job's transitive needs, in plan order.
    pub restores: Vec<Manifest>,
    /// Secret values by name; every value is masked in every log line and message.
    pub secrets: BTreeMap<String, String>,
    /// Receives `JobStarted` (per attempt), `JobLog`, `ArtifactStored` and, last,
    /// `JobFinished`. A closed receiver does not stop the job.
    pub events: UnboundedSender<RunEvent>,
    /// Cancel to kill the job; it is torn down and ends [`JobStatus::Cancelled`].
    pub cancel: CancellationToken,
    /// Where `cache:` entries are fetched from and saved to; `None` runs the job without
    /// its cache (the job log says so).
    pub caches: Option<Arc<dyn CacheStore>>,
}

impl std::fmt::Debug for JobRun {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("JobRun")
            .field("pipeline", &self.plan.pipeline)
            .field("job", &self.job)
            .field("run_id", &self.run_id)
            .field("work_dir", &self.work_dir)
            .field("source", &self.source.root())
            .field("store", &self.store.root())
            .field("restores", &self.restores.len())
            .field("secrets", &self.secrets.keys().collect::<Vec<_>>())
            .field("caches", &self.caches)
            .finish()
    }
}

/// How a job run by [`run_one`] ended.
#[derive(Debug, Clone)]
pub struct OneJobResult {
    /// Final status (never `Skipped`: skipping is decided before a job is handed out).
    pub status: JobStatus,
    /// Attempts made (its own retries included).
    pub attempts: u32,
    /// Wall time over all attempts.
    pub duration: Duration,
    /// Its artifacts, on success when it declares any; the blobs are in the store.
    pub manifest: Option<Manifest>,
}

/// Runs `run.job` to its final status (see [`JobRun`]). Ends with a `JobFinished`
/// event. Panics if `run.job` is not a job of `run.plan`.
pub async fn run_one(run: JobRun) -> OneJobResult {
    assert!(
        run.job < run.plan.jobs.len(),
        "job {} is not in the plan",
        run.job
    );
    let events = run.events.clone();
    let job = run.job;
    let ctx = Arc::new(RunContext {
        keys: job_keys(&run.plan),
        plan: run.plan,
        backends: run.backends,
        run_id: run.run_id,
        work_dir: run.work_dir,
        source: run.source,
        store: run.store,
        masker: Masker::new(run.secrets.values().map(String::as_str)),
        secrets: run.secrets,
        keep_workspaces: false,
        events: run.events,
        caches: run.caches,
    });
    let restores = run.restores.into_iter().map(Arc::new).collect();
    let result = runner::run_job(ctx, job, restores, run.cancel).await;
    let _ = events.send(RunEvent::JobFinished {
        job,
        status: result.status.clone(),
        duration: result.duration,
        attempts: result.attempts,
    });
    OneJobResult {
        status: result.status,
        attempts: result.attempts,
        duration: result.duration,
        manifest: result
            .manifest
            .map(|m| Arc::try_unwrap(m).unwrap_or_else(|m| (*m).clone())),
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use gantry_backend::Outcome;
    use gantry_test_support::{FakeBackend, TempTree};

    use super::*;
    use crate::testutil::{job, plan, source_tree};

    struct Ran {
        result: OneJobResult,
        events: Vec<RunEvent>,
        fake: FakeBackend,
    }

    async fn run(
        p: &Plan,
        j: usize,
        store: &ArtifactStore,
        restores: Vec<Manifest>,
        cancel: CancellationToken,
    ) -> Ran {
        let fake = FakeBackend::new();
        let source = source_tree();
        let work = TempTree::new();
        let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
        let result = run_one(JobRun {
            plan: p.clone(),
            job: j,
            backends: Backends {
                host: Arc::new(fake.clone()),
                containers: Some(Arc::new(fake.clone())),
            },
            run_id: "run-7".into(),
            work_dir: work.join("work"),
            source: Source::from_dir(source.path()).expect("list"),
            store: store.clone(),
            restores,
            secrets: [("tok".to_string(), "s3cret".to_string())].into(),
            events: tx,
            cancel,
            caches: None,
        })
        .await;
        let mut events = Vec::new();
        while let Ok(e) = rx.try_recv() {
            events.push(e);
        }
        assert!(
            !work.join("work").join(&job_keys(p)[j]).exists(),
            "workspace removed"
        );
        assert_eq!(fake.open_envs(), 0);
        Ran {
            result,
            events,
            fake,
        }
    }

    fn logs(events: &[RunEvent]) -> Vec<String> {
        events
            .iter()
            .filter_map(|e| match e {
                RunEvent::JobLog { line, .. } => Some(line.text.clone()),
                _ => None,
            })
            .collect()
    }

    #[tokio::test]
    async fn runs_one_job_with_artifacts_of_its_needs_and_masks_secrets() {
        let p = plan(vec![
            job("build")
                .env("FAKE_WRITE", "out/app=binary")
                .artifacts(&["out"]),
            job("test")
                .needs(&["build"])
                .env("FAKE_LOG", "token is s3cret")
                .env("FAKE_WRITE", "report.xml=ok")
                .artifacts(&["report.xml"]),
        ]);
        let store_dir = TempTree::new();
        let store = ArtifactStore::new(store_dir.path());
        let first = run(&p, 0, &store, vec![], CancellationToken::new()).await;
        assert_eq!(first.result.status, JobStatus::Succeeded);
        let manifest = first.result.manifest.expect("build's artifacts");
        assert_eq!(manifest.files.keys().collect::<Vec<_>>(), ["out/app"]);

        let second = run(&p, 1, &store, vec![manifest], CancellationToken::new()).await;
        assert_eq!(second.result.status, JobStatus::Succeeded);
        assert_eq!(second.result.attempts, 1);
        let seen = second.fake.seen_files("test").expect("ran");
        assert_eq!(seen.get("out/app").map(String::as_str), Some("binary"));
        let logs = logs(&second.events);
        assert!(logs.contains(&"token is ***".to_string()), "{logs:?}");
        assert!(matches!(
            second.events.first(),
            Some(RunEvent::JobStarted {
                job: 1,
                attempt: 1,
                ..
            })
        ));
        assert!(matches!(
            second.events.last(),
            Some(RunEvent::JobFinished {
                job: 1,
                status: JobStatus::Succeeded,
                attempts: 1,
                ..
            })
        ));
        assert!(second.events.iter().any(|e| matches!(
            e,
            RunEvent::ArtifactStored { job: 1, path, .. } if path == "report.xml"
        )));
    }

    #[tokio::test]
    async fn failures_are_retried_and_reported() {
        let p = plan(vec![job("flaky").env("FAKE_EXIT", "3").retry(1)]);
        let store_dir = TempTree::new();
        let store = ArtifactStore::new(store_dir.path());
        let ran = run(&p, 0, &store, vec![], CancellationToken::new()).await;
        assert_eq!(
            ran.result.status,
            JobStatus::Failed {
                outcome: Outcome::Failed { exit_code: 3 },
                allowed: false
            }
        );
        assert_eq!(ran.result.attempts, 2);
        assert!(ran.result.manifest.is_none());
    }

    #[tokio::test]
    async fn a_missing_restore_blob_is_an_error() {
        let p = plan(vec![job("build"), job("test").needs(&["build"])]);
        let store_dir = TempTree::new();
        let store = ArtifactStore::new(store_dir.path());
        let manifest = Manifest {
            job: "build".into(),
            files: [(
                "out/app".to_string(),
                crate::artifacts::ManifestEntry {
                    digest: "ab".repeat(32),
                    size: 3,
                    mode: 0o644,
                },
            )]
            .into(),
        };
        let ran = run(&p, 1, &store, vec![manifest], CancellationToken::new()).await;
        match &ran.result.status {
            JobStatus::Errored { message } => {
                assert!(message.contains("is missing or damaged"), "{message}")
            }
            other => panic!("not an error: {other:?}"),
        }
    }

    #[tokio::test]
    async fn a_cancelled_token_cancels() {
        let p = plan(vec![job("long").env("FAKE_SLEEP", "30s")]);
        let store_dir = TempTree::new();
        let store = ArtifactStore::new(store_dir.path());
        let cancel = CancellationToken::new();
        cancel.cancel();
        let ran = run(&p, 0, &store, vec![], cancel).await;
        assert_eq!(ran.result.status, JobStatus::Cancelled);
    }
}
