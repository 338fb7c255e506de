//! The in-process [`JobSource`]: how executors (the built-in one, and remote agents
//! through the HTTP routes of [`crate::api::agent`]) get jobs from the store and report
//! them.
//!
//! - `lease` hands out the oldest queued job whose `runs_on` labels the executor has,
//!   waiting on [`Shared::queued`](crate::state::Shared::queued) when there is none, so
//!   a job becomes running the moment the scheduler queues it. The lease carries the
//!   plan, the source, and the artifact manifests of every job the job transitively
//!   needs.
//! - Every lease is recorded in the [registry](crate::agents::Registry) with its
//!   executor (and, over HTTP, its token); an executor waiting in `lease` counts as
//!   online.
//! - Every later call names its lease; a lease that expired or was superseded gets
//!   [`LeaseError::Stale`] and changes nothing (fencing).
//! - Log batches carry a sequence number per lease, so a batch resent after a timeout is
//!   stored once.
//! - Artifact blobs are verified against their digest on upload; a finish whose manifest
//!   names a blob the server does not have ends the job errored. A lease may fetch the
//!   blobs of its run's artifacts and of its repository's caches ([`crate::caches`]).

use std::path::Path;
use std::time::Duration;

use gantry_engine::artifacts::Manifest;
use gantry_engine::dag;
use gantry_pipeline::EnvValue;
use gantry_protocol::{
    ExecutorInfo, Finish, JobReport, JobSource, Lease, LeaseError, LeaseId, LeaseState, LogChunk,
    PROTOCOL_VERSION, SourceRef,
};
use gantry_store::{
    ArtifactRow, Job, JobFinish, JobState, LeaseCheck, Leased, RunState, StoreError,
};

use crate::agents::Holder;
use crate::blobs::BlobError;
use crate::scheduler;
use crate::state::{State, now_ms};

/// The server's side of the executor contract, in-process.
#[derive(Clone)]
pub struct ServerJobSource {
    state: State,
}

impl ServerJobSource {
    /// A job source over the server's state.
    pub fn new(state: State) -> ServerJobSource {
        ServerJobSource { state }
    }

    fn ttl_ms(&self) -> i64 {
        self.state.config.lease_ttl.as_millis() as i64
    }

    async fn try_lease(
        &self,
        me: &ExecutorInfo,
        token_id: Option<i64>,
    ) -> Result<Option<Lease>, LeaseError> {
        let store = &self.state.store;
        let lease_id = new_lease_id();
        let now = now_ms();
        let Some(Leased { job, run }) = store
            .lease_next(&me.name, &me.labels, &lease_id, now, self.ttl_ms())
            .await
            .map_err(unavailable)?
        else {
            return Ok(None);
        };
        self.state.agents.hold(
            &lease_id,
            Holder {
                executor: me.name.clone(),
                token_id,
                job: (run.id, job.idx),
                since: now,
            },
        );
        if run.state == RunState::Queued {
            store
                .set_run_state(run.id, RunState::Running, now_ms())
                .await
                .map_err(unavailable)?;
        }
        let built = self.build_lease(&lease_id, &job, &run).await;
        match built {
            Ok(lease) => {
                let text = if job.attempt > 1 {
                    format!("attempt {} on {}", job.attempt, me.name)
                } else {
                    format!("leased to executor {} (attempt {})", me.name, job.attempt)
                };
                self.state
                    .logs
                    .system(run.id, &job.key, now_ms(), &text)
                    .await;
                Ok(Some(lease))
            }
            Err(message) => {
                // The job cannot be described to any executor: end it errored rather
                // than hand it out again and again.
                let _ = store
                    .finish_job(
                        &lease_id,
                        JobFinish {
                            state: JobState::Errored,
                            message: Some(message.clone()),
                            exit_code: None,
                            manifest_json: None,
                        },
                        now_ms(),
                    )
                    .await;
                self.state.agents.release(&lease_id);
                self.state
                    .logs
                    .system(run.id, &job.key, now_ms(), &format!("error: {message}"))
                    .await;
                let _ = scheduler::advance(&self.state, run.id).await;
                Ok(None)
            }
        }
    }

    async fn build_lease(
        &self,
        lease_id: &str,
        job: &Job,
        run: &gantry_store::Run,
    ) -> Result<Lease, String> {
        let plan = self
            .state
            .plan(run)
            .ok_or_else(|| "the run's plan cannot be read".to_string())?;
        let index = usize::try_from(job.idx)
            .ok()
            .filter(|i| *i < plan.jobs.len())
            .ok_or_else(|| format!("job index {} is not in the plan", job.idx))?;
        let repo = self
            .state
            .store
            .repo_by_name(&run.repo)
            .await
            .map_err(|e| e.to_string())?;
        let jobs = self
            .state
            .store
            .jobs(run.id)
            .await
            .map_err(|e| e.to_string())?;
        let mut restore = Vec::new();
        for need in dag::all_needs(&plan, index) {
            let Some(j) = jobs.iter().find(|j| j.idx == need as i64) else {
                continue;
            };
            if let Some(json) = &j.manifest_json {
                let m: Manifest = serde_json::from_str(json)
                    .map_err(|e| format!("artifact manifest of {:?}: {e}", j.name))?;
                restore.push(m);
            }
        }
        // The plan was made before the store gave the run its id; fill it in now.
        let mut plan = (*plan).clone();
        for j in &mut plan.jobs {
            for (k, v) in &mut j.env {
                match k.as_str() {
                    "GANTRY_RUN_ID" => *v = EnvValue::Plain(run.id.to_string()),
                    "GANTRY_RUN_NUMBER" => *v = EnvValue::Plain(run.number.to_string()),
                    _ => {}
                }
            }
        }
        Ok(Lease {
            id: LeaseId(lease_id.to_string()),
            run_id: run.id,
            run_number: run.number,
            repo: run.repo.clone(),
            pipeline: run.pipeline.clone(),
            plan,
            job_index: index,
            job_key: job.key.clone(),
            attempt: job.attempt,
            source: SourceRef {
                url: repo.url,
                commit: run.commit.clone(),
                git_ref: run.git_ref.clone(),
            },
            restore,
            secrets: Default::default(),
            ttl_secs: self.state.config.lease_ttl.as_secs().max(1),
        })
    }

    /// The job holding `lease`, or `Stale`.
    pub(crate) async fn current(&self, lease: &LeaseId) -> Result<Job, LeaseError> {
        let job = self
            .state
            .store
            .job_by_lease(&lease.0)
            .await
            .map_err(|e| self.lease_error(e, lease))?;
        if let Some(executor) = &job.executor {
            self.state.agents.touch(executor, now_ms());
        }
        Ok(job)
    }

    /// `lease_error`, forgetting the holder of a lease found stale.
    fn lease_error(&self, e: StoreError, lease: &LeaseId) -> LeaseError {
        let e = lease_error(e, lease);
        if matches!(e, LeaseError::Stale { .. }) {
            self.state.agents.release(&lease.0);
        }
        e
    }

    /// [`JobSource::lease`] for an executor calling with the token whose id is
    /// `token_id` (`None` in-process): the lease is recorded as held under that token, so
    /// that reports under another one are refused.
    pub async fn lease_with_token(
        &self,
        me: &ExecutorInfo,
        wait: Duration,
        token_id: Option<i64>,
        token_name: Option<&str>,
    ) -> Result<Option<Lease>, LeaseError> {
        if me.protocol != PROTOCOL_VERSION {
            return Err(LeaseError::incompatible(me.protocol));
        }
        // Online for as long as it waits, however long that is.
        let _polling = self.state.agents.polling(me, token_name, now_ms());
        let deadline = tokio::time::Instant::now() + wait;
        loop {
            // Register interest before looking, so a job queued between the look and
            // the wait still wakes us.
            let notified = self.state.queued.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            if let Some(lease) = self.try_lease(me, token_id).await? {
                return Ok(Some(lease));
            }
            tokio::select! {
                _ = &mut notified => {}
                _ = tokio::time::sleep_until(deadline) => return Ok(None),
                _ = self.state.shutdown.notified() => return Ok(None),
            }
        }
    }

    /// Checks that blob `digest` is one the lease of `job` may fetch: an artifact of its
    /// run, or a file of a cache entry of its repository. A lease is not a key to every
    /// blob.
    pub(crate) async fn check_blob_access(
        &self,
        job: &Job,
        digest: &str,
    ) -> Result<(), LeaseError> {
        let rows = self
            .state
            .store
            .artifacts(job.run_id)
            .await
            .map_err(unavailable)?;
        if rows.iter().any(|r| r.digest == digest) {
            return Ok(());
        }
        let jobs = self
            .state
            .store
            .jobs(job.run_id)
            .await
            .map_err(unavailable)?;
        let in_manifest = jobs.iter().any(|j| {
            j.manifest_json
                .as_deref()
                .is_some_and(|m| m.contains(digest))
        });
        if in_manifest {
            return Ok(());
        }
        let repo = self
            .state
            .store
            .run(job.run_id)
            .await
            .map_err(unavailable)?
            .repo;
        if self
            .state
            .store
            .cache_has_blob(&repo, digest)
            .await
            .map_err(unavailable)?
        {
            return Ok(());
        }
        Err(LeaseError::Invalid(format!(
            "blob {digest} is neither an artifact of run {} nor a file of a cache of \
             repository {repo}",
            job.run_id
        )))
    }
}

/// 128 random bits from the OS, as hex: unguessable lease ids.
pub(crate) fn new_lease_id() -> String {
    crate::auth::random_hex(16)
}

fn unavailable(e: StoreError) -> LeaseError {
    LeaseError::Unavailable(e.to_string())
}

fn lease_error(e: StoreError, lease: &LeaseId) -> LeaseError {
    match e {
        StoreError::StaleLease(_) | StoreError::NotFound(_) => LeaseError::Stale {
            lease: lease.0.clone(),
            reason: "expired or superseded".into(),
        },
        e => unavailable(e),
    }
}

#[async_trait::async_trait]
impl JobSource for ServerJobSource {
    async fn lease(&self, me: &ExecutorInfo, wait: Duration) -> Result<Option<Lease>, LeaseError> {
        self.lease_with_token(me, wait, None, None).await
    }

    async fn heartbeat(&self, lease: &LeaseId) -> Result<LeaseState, LeaseError> {
        let check = self
            .state
            .store
            .heartbeat(&lease.0, now_ms(), self.ttl_ms())
            .await
            .map_err(|e| self.lease_error(e, lease))?;
        match self.state.agents.holder(&lease.0) {
            Some(_) if check == LeaseCheck::Lost => self.state.agents.release(&lease.0),
            Some(h) => self.state.agents.touch(&h.executor, now_ms()),
            None => {}
        }
        Ok(match check {
            LeaseCheck::Ok => LeaseState::Ok,
            LeaseCheck::Cancelled => LeaseState::Cancelled,
            LeaseCheck::Lost => LeaseState::Lost,
        })
    }

    async fn append_log(&self, lease: &LeaseId, chunk: LogChunk) -> Result<(), LeaseError> {
        let job = self.current(lease).await?;
        {
            let mut seqs = self.state.log_seq.lock().unwrap_or_else(|e| e.into_inner());
            let next = seqs.entry(lease.0.clone()).or_insert(0);
            if chunk.seq < *next {
                // Already stored: the executor resent it after a timeout.
                return Ok(());
            }
            *next = chunk.seq + 1;
        }
        self.state
            .logs
            .append(job.run_id, &job.key, &chunk.lines)
            .await
            .map_err(|e| LeaseError::Unavailable(e.to_string()))
    }

    async fn put_artifact(
        &self,
        lease: &LeaseId,
        digest: &str,
        path: &Path,
    ) -> Result<(), LeaseError> {
        self.current(lease).await?;
        if self.state.blobs.contains(digest) {
            // As young as an upload: a cache eviction now must not take it away before
            // the manifest naming it arrives.
            self.state.blobs.touch(digest);
            return Ok(());
        }
        self.state
            .blobs
            .put_file(digest, path)
            .await
            .map_err(|e| match e {
                BlobError::TooLarge { .. } => LeaseError::TooLarge(e.to_string()),
                BlobError::Io(e) => LeaseError::Unavailable(e.to_string()),
                e => LeaseError::Invalid(e.to_string()),
            })
    }

    async fn get_artifact(
        &self,
        lease: &LeaseId,
        digest: &str,
        dest: &Path,
    ) -> Result<(), LeaseError> {
        let job = self.current(lease).await?;
        self.check_blob_access(&job, digest).await?;
        self.state
            .blobs
            .get_file(digest, dest)
            .await
            .map_err(|e| match e {
                BlobError::Io(e) => LeaseError::Unavailable(e.to_string()),
                e => LeaseError::Invalid(e.to_string()),
            })
    }

    async fn get_cache(&self, lease: &LeaseId, key: &str) -> Result<Option<Manifest>, LeaseError> {
        let job = self.current(lease).await?;
        crate::caches::get(&self.state, &job, key).await
    }

    async fn put_cache(
        &self,
        lease: &LeaseId,
        key: &str,
        manifest: Manifest,
    ) -> Result<bool, LeaseError> {
        let job = self.current(lease).await?;
        crate::caches::put(&self.state, &job, key, &manifest).await
    }

    async fn finish(&self, lease: &LeaseId, finish: Finish) -> Result<(), LeaseError> {
        let job = self.current(lease).await?;
        let mut record = match &finish.report {
            JobReport::Succeeded => JobFinish {
                state: JobState::Succeeded,
                message: None,
                exit_code: None,
                manifest_json: None,
            },
            JobReport::Failed {
                exit_code,
                outcome,
                allowed,
            } => JobFinish {
                state: if *allowed {
                    JobState::AllowedFailure
                } else {
                    JobState::Failed
                },
                message: Some(outcome.clone()),
                exit_code: *exit_code,
                manifest_json: None,
            },
            JobReport::Errored { message } => JobFinish {
                state: JobState::Errored,
                message: Some(message.clone()),
                exit_code: None,
                manifest_json: None,
            },
            JobReport::Cancelled => JobFinish {
                state: JobState::Cancelled,
                message: Some("cancelled".into()),
                exit_code: None,
                manifest_json: None,
            },
        };
        let mut rows = Vec::new();
        if record.state == JobState::Succeeded
            && let Some(manifest) = &finish.manifest
        {
            let missing: Vec<&str> = manifest
                .files
                .values()
                .map(|e| e.digest.as_str())
                .filter(|d| !self.state.blobs.contains(d))
                .collect();
            if missing.is_empty() {
                record.manifest_json = Some(
                    serde_json::to_string(manifest)
                        .map_err(|e| LeaseError::Invalid(format!("artifact manifest: {e}")))?,
                );
                rows = manifest
                    .files
                    .iter()
                    .map(|(path, e)| ArtifactRow {
                        run_id: job.run_id,
                        job_idx: job.idx,
                        path: path.clone(),
                        digest: e.digest.clone(),
                        size: e.size as i64,
                    })
                    .collect();
            } else {
                record.state = JobState::Errored;
                record.message = Some(format!(
                    "artifacts were not uploaded before finishing: {}",
                    missing.join(", ")
                ));
            }
        }
        // The last line goes in before the job is final: a follower ends its stream once
        // it sees the job final and has read everything, so it must not miss this line.
        let text = match &record.message {
            Some(m) => format!("job {}: {m}", record.state.as_str()),
            None => format!("job {}", record.state.as_str()),
        };
        self.state
            .logs
            .system(job.run_id, &job.key, now_ms(), &text)
            .await;
        self.state
            .store
            .finish_job(&lease.0, record, now_ms())
            .await
            .map_err(|e| self.lease_error(e, lease))?;
        self.state.agents.release(&lease.0);
        if !rows.is_empty()
            && let Err(e) = self.state.store.add_artifacts(&rows).await
        {
            tracing::error!(run_id = job.run_id, "cannot record artifacts: {e}");
        }
        self.state
            .log_seq
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(&lease.0);
        scheduler::advance(&self.state, job.run_id)
            .await
            .map_err(unavailable)?;
        Ok(())
    }
}
