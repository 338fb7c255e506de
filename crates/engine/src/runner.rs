//! The job runner: drives one job through its attempts on a backend.
//!
//! Each attempt: pick the backend (host, or containers for jobs with `image`, `services`,
//! `image_build` or `deploy`) → resolve the environment (secrets from the run's secrets;
//! `GANTRY_WORKSPACE`) → make a pristine workspace ([`crate::workspace::prepare`]) →
//! restore the job's `cache` (`cache.rs`) → `prepare` → `start_services` → `run_script`
//! → collect artifacts and save the cache on success → `teardown` (always, once
//! `prepare` succeeded) → remove the workspace.
//!
//! Retries: a failed script (any outcome but success or cancel) or a service that does
//! not come up is retried `retry` times; an infrastructure error (`Err` from the backend,
//! a workspace that cannot be made, artifacts that cannot be stored) is retried once on
//! its own budget. A configuration problem that a retry cannot fix (a missing secret, no
//! container backend, a backend that does not support the job) is not retried. Every
//! attempt starts from a fresh workspace and emits `JobStarted` with its number.
//!
//! Every log line, the backend's and the runner's own, is masked before it is emitted.
//! Lines are forwarded while each backend call runs, so a long script streams.

use std::collections::BTreeMap;
use std::future::Future;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use gantry_backend::{
    Backend, BackendError, CancellationToken, DeploySpec, ImageBuildSpec, JobEnv, JobSpec, LogLine,
    LogSink, Outcome, ReadySpec, ServiceSpec, Stream,
};
use gantry_pipeline::{Deploy, EnvValue, Plan, PlannedJob, Probe};
use tokio::sync::mpsc::{UnboundedReceiver, UnboundedSender};

use crate::artifacts::{ArtifactStore, Manifest};
use crate::cache::CacheStore;
use crate::config::Backends;
use crate::event::{JobIndex, JobStatus, RunEvent};
use crate::mask::Masker;
use crate::source::Source;
use crate::workspace;

mod cache;

/// Everything the jobs of one run share. Immutable once the run starts.
pub(crate) struct RunContext {
    pub plan: Plan,
    pub backends: Backends,
    pub run_id: String,
    /// `run_dir/work`: job workspaces live in `<work_dir>/<job_key>`.
    pub work_dir: PathBuf,
    /// The frozen source.
    pub source: Source,
    pub store: ArtifactStore,
    pub secrets: BTreeMap<String, String>,
    pub keep_workspaces: bool,
    /// Per job: a name safe for paths and container names, unique in the run.
    pub keys: Vec<String>,
    pub masker: Masker,
    pub events: UnboundedSender<RunEvent>,
    /// Where `cache:` entries live; `None`: jobs run without their caches.
    pub caches: Option<Arc<dyn CacheStore>>,
}

/// How a job ended, for the scheduler.
pub(crate) struct JobResult {
    pub status: JobStatus,
    pub attempts: u32,
    pub duration: Duration,
    /// Its artifacts, when it succeeded.
    pub manifest: Option<Arc<Manifest>>,
}

/// How one attempt ended.
enum Attempt {
    /// The script ran (or was cancelled before it could); with artifacts on success.
    Ran(Outcome, Option<Manifest>),
    /// A service did not come up: retried like a failed script, final status `Errored`.
    Service(String),
    /// The infrastructure failed: retried once.
    Infra(String),
    /// A retry cannot help.
    Fatal(String),
}

/// Runs job `job` to its final status. `restores` are the manifests of its transitive
/// needs in plan order; `cancel` stops it (Ctrl-C, `--fail-fast`).
pub(crate) async fn run_job(
    ctx: Arc<RunContext>,
    job: JobIndex,
    restores: Vec<Arc<Manifest>>,
    cancel: CancellationToken,
) -> JobResult {
    let runner = Runner {
        ctx: &ctx,
        job,
        planned: &ctx.plan.jobs[job],
        restores,
    };
    runner.run(cancel).await
}

struct Runner<'a> {
    ctx: &'a RunContext,
    job: JobIndex,
    planned: &'a PlannedJob,
    restores: Vec<Arc<Manifest>>,
}

impl Runner<'_> {
    async fn run(&self, cancel: CancellationToken) -> JobResult {
        let started = Instant::now();
        let mut attempt = 0;
        let mut retries_left = self.planned.retry;
        let mut infra_retry_left = true;
        let (status, manifest) = loop {
            attempt += 1;
            self.emit(RunEvent::JobStarted {
                job: self.job,
                attempt,
                at: SystemTime::now(),
            });
            let result = self.attempt(attempt, &cancel).await;
            let retry_note = |left: u32| {
                format!(
                    "retrying ({left} retr{} left)",
                    if left == 1 { "y" } else { "ies" }
                )
            };
            match result {
                Attempt::Ran(Outcome::Success, manifest) => break (JobStatus::Succeeded, manifest),
                Attempt::Ran(Outcome::Cancelled, _) => break (JobStatus::Cancelled, None),
                Attempt::Ran(outcome, _) => {
                    if retries_left > 0 && !cancel.is_cancelled() {
                        retries_left -= 1;
                        self.system(format!(
                            "attempt {attempt} {outcome}; {}",
                            retry_note(retries_left)
                        ));
                        continue;
                    }
                    let allowed = self.planned.allow_failure;
                    break (JobStatus::Failed { outcome, allowed }, None);
                }
                Attempt::Service(message) => {
                    self.system(format!("error: {message}"));
                    if retries_left > 0 && !cancel.is_cancelled() {
                        retries_left -= 1;
                        self.system(format!(
                            "attempt {attempt} failed; {}",
                            retry_note(retries_left)
                        ));
                        continue;
                    }
                    break (JobStatus::Errored { message }, None);
                }
                Attempt::Infra(message) => {
                    self.system(format!("error: {message}"));
                    if cancel.is_cancelled() {
                        break (JobStatus::Cancelled, None);
                    }
                    if std::mem::take(&mut infra_retry_left) {
                        self.system(format!(
                            "attempt {attempt} hit an infrastructure error; retrying once"
                        ));
                        continue;
                    }
                    break (JobStatus::Errored { message }, None);
                }
                Attempt::Fatal(message) => {
                    self.system(format!("error: {message}"));
                    break (JobStatus::Errored { message }, None);
                }
            }
        };
        // Error messages can quote commands or backend output: mask them like log lines.
        let status = match status {
            JobStatus::Errored { message } => JobStatus::Errored {
                message: self.ctx.masker.mask(&message).into_owned(),
            },
            other => other,
        };
        JobResult {
            status,
            attempts: attempt,
            duration: started.elapsed(),
            manifest: manifest.map(Arc::new),
        }
    }

    async fn attempt(&self, attempt: u32, cancel: &CancellationToken) -> Attempt {
        let ctx = self.ctx;
        let job = self.planned;
        let backend: &Arc<dyn Backend> = if job.container_needs().is_empty() {
            &ctx.backends.host
        } else {
            match &ctx.backends.containers {
                Some(b) => b,
                None => return Attempt::Fatal(self.no_container_message()),
            }
        };
        if cancel.is_cancelled() {
            return Attempt::Ran(Outcome::Cancelled, None);
        }
        let workspace_dir = ctx.work_dir.join(&ctx.keys[self.job]);
        let spec = match self.spec(attempt, &workspace_dir) {
            Ok(spec) => spec,
            Err(secret) => {
                return Attempt::Fatal(format!(
                    "secret \"{secret}\" is not set; pass --secret {secret}=VALUE or a secrets file"
                ));
            }
        };

        let prepared = {
            let source = ctx.source.clone();
            let store = ctx.store.clone();
            let restores = self.restores.clone();
            let dir = workspace_dir.clone();
            tokio::task::spawn_blocking(move || {
                let manifests: Vec<&Manifest> = restores.iter().map(|m| &**m).collect();
                workspace::prepare(&source, &dir, &store, &manifests)
            })
            .await
        };
        match prepared {
            Ok(Ok(_stats)) => {}
            Ok(Err(e)) => {
                self.remove_workspace(&workspace_dir).await;
                return Attempt::Infra(format!("cannot prepare the workspace: {}", chain(&e)));
            }
            Err(e) => return Attempt::Infra(format!("workspace preparation panicked: {e}")),
        }

        let cache = self.restore_cache(&workspace_dir).await;
        let result = self
            .in_workspace(backend, &spec, &workspace_dir, cache.as_ref(), cancel)
            .await;
        if let Some(cache) = cache {
            self.end_cache(cache).await;
        }
        result
    }

    /// From the backend's `prepare` to the workspace's removal, once the workspace is
    /// ready.
    async fn in_workspace(
        &self,
        backend: &Arc<dyn Backend>,
        spec: &JobSpec,
        workspace_dir: &std::path::Path,
        cache: Option<&cache::CacheRun>,
        cancel: &CancellationToken,
    ) -> Attempt {
        let ctx = self.ctx;
        let (sink, mut rx) = LogSink::channel();
        let env = match self.drive(&mut rx, backend.prepare(spec)).await {
            Ok(env) => env,
            Err(e) => {
                self.flush(&mut rx);
                self.remove_workspace(workspace_dir).await;
                return match e {
                    BackendError::Unsupported { .. } => Attempt::Fatal(e.to_string()),
                    e => Attempt::Infra(chain(&e)),
                };
            }
        };
        let mut env: Box<dyn JobEnv> = env;
        let result = self
            .use_env(&mut *env, spec, cache, &sink, &mut rx, cancel)
            .await;
        // Teardown runs whatever happened above, including cancel and timeout.
        if let Err(e) = self.drive(&mut rx, env.teardown()).await {
            self.system(format!("warning: teardown failed: {}", chain(&e)));
        }
        drop(sink);
        self.flush(&mut rx);
        if !ctx.keep_workspaces {
            self.remove_workspace(workspace_dir).await;
        }
        result
    }

    /// Services, script, artifacts and cache, once the backend prepared the job's place.
    async fn use_env(
        &self,
        env: &mut dyn JobEnv,
        spec: &JobSpec,
        cache: Option<&cache::CacheRun>,
        sink: &LogSink,
        rx: &mut UnboundedReceiver<LogLine>,
        cancel: &CancellationToken,
    ) -> Attempt {
        // Called even without services: the contract's order is prepare, start_services,
        // run_script, and a backend may do per-job setup there.
        if let Err(failure) = self.drive(rx, env.start_services(sink.clone())).await {
            for line in &failure.last_logs {
                self.log(LogLine {
                    at: SystemTime::now(),
                    stream: Stream::Service,
                    source: Some(failure.service.clone()),
                    text: line.clone(),
                });
            }
            return Attempt::Service(failure.to_string());
        }
        if cancel.is_cancelled() {
            return Attempt::Ran(Outcome::Cancelled, None);
        }
        let outcome = match self
            .drive(rx, env.run_script(sink.clone(), cancel.child_token()))
            .await
        {
            Ok(outcome) => outcome,
            Err(e) => return Attempt::Infra(chain(&e)),
        };
        if !outcome.is_success() {
            if let Some(cache) = cache {
                self.save_cache(cache, &outcome, &spec.workspace_dir).await;
            }
            return Attempt::Ran(outcome, None);
        }
        let manifest = match self.collect(&spec.workspace_dir).await {
            Ok(manifest) => manifest,
            Err(message) => return Attempt::Infra(message),
        };
        // After the artifacts: a slow or failing cache save never costs the job its
        // artifacts, and a job whose artifacts cannot be stored saves no cache.
        if let Some(cache) = cache {
            self.save_cache(cache, &outcome, &spec.workspace_dir).await;
        }
        Attempt::Ran(outcome, manifest)
    }

    async fn collect(&self, workspace_dir: &std::path::Path) -> Result<Option<Manifest>, String> {
        let patterns = self.planned.artifacts.clone();
        if patterns.is_empty() {
            return Ok(None);
        }
        let store = self.ctx.store.clone();
        let name = self.planned.name.clone();
        let key = self.ctx.keys[self.job].clone();
        let dir = workspace_dir.to_path_buf();
        let collected =
            tokio::task::spawn_blocking(move || store.collect(&name, &key, &dir, &patterns))
                .await
                .map_err(|e| format!("artifact collection panicked: {e}"))?
                .map_err(|e| format!("cannot store artifacts: {}", chain(&e)))?;
        for warning in &collected.warnings {
            self.system(warning.clone());
        }
        for (path, entry) in &collected.manifest.files {
            self.emit(RunEvent::ArtifactStored {
                job: self.job,
                path: path.clone(),
                digest: entry.digest.clone(),
                size: entry.size,
            });
        }
        Ok(Some(collected.manifest))
    }

    /// Builds the backend's view of the job; `Err(name)` for a secret that is not set.
    fn spec(&self, attempt: u32, workspace_dir: &std::path::Path) -> Result<JobSpec, String> {
        let job = self.planned;
        let ctx = self.ctx;
        let mut env = self.resolve(&job.env)?;
        let gantry_workspace = match job.image {
            Some(_) => job.workspace.clone(),
            None => workspace_dir.to_string_lossy().into_owned(),
        };
        env.push(("GANTRY_WORKSPACE".to_owned(), gantry_workspace));
        let services = job
            .services
            .iter()
            .map(|s| {
                Ok(ServiceSpec {
                    name: s.name.clone(),
                    image: s.image.clone(),
                    env: self.resolve(&s.env)?,
                    command: s.command.clone(),
                    ready: s.ready.as_ref().map(|r| match &r.probe {
                        Probe::Tcp { port } => ReadySpec {
                            port: *port,
                            http_path: None,
                            timeout: r.timeout,
                        },
                        Probe::Http { path, port } => ReadySpec {
                            port: *port,
                            http_path: Some(path.clone()),
                            timeout: r.timeout,
                        },
                    }),
                })
            })
            .collect::<Result<Vec<_>, String>>()?;
        let key = &ctx.keys[self.job];
        Ok(JobSpec {
            run_id: ctx.run_id.clone(),
            job_name: job.name.clone(),
            job_key: key.clone(),
            attempt,
            workspace_dir: workspace_dir.to_path_buf(),
            container_workdir: job.workspace.clone(),
            image: job.image.clone(),
            env,
            script: job.script.clone(),
            services,
            timeout: job.timeout,
            labels: vec![
                ("gantry.run".to_owned(), ctx.run_id.clone()),
                ("gantry.job".to_owned(), key.clone()),
            ],
            image_build: job.image_build.as_ref().map(|b| ImageBuildSpec {
                context: b.context.clone(),
                dockerfile: b.dockerfile.clone(),
                tags: b.tags.clone(),
                args: b.args.iter().map(|(k, v)| (k.clone(), v.clone())).collect(),
                push: b.push,
            }),
            deploy: job.deploy.as_ref().map(|d| match d {
                Deploy::Compose { file } => DeploySpec::Compose { file: file.clone() },
                Deploy::Kubernetes {
                    manifests,
                    namespace,
                } => DeploySpec::Kubernetes {
                    manifests: manifests.clone(),
                    namespace: namespace.clone(),
                },
            }),
        })
    }

    fn resolve(&self, env: &[(String, EnvValue)]) -> Result<Vec<(String, String)>, String> {
        env.iter()
            .map(|(name, value)| match value {
                EnvValue::Plain(v) => Ok((name.clone(), v.clone())),
                EnvValue::Secret(secret) => self
                    .ctx
                    .secrets
                    .get(secret)
                    .map(|v| (name.clone(), v.clone()))
                    .ok_or_else(|| secret.clone()),
            })
            .collect()
    }

    fn no_container_message(&self) -> String {
        let job = self.planned;
        let mut needs = Vec::new();
        if let Some(image) = &job.image {
            needs.push(format!("image: {image}"));
        }
        if !job.services.is_empty() {
            let names: Vec<&str> = job.services.iter().map(|s| s.name.as_str()).collect();
            needs.push(format!("services: {}", names.join(" ")));
        }
        if let Some(build) = &job.image_build {
            needs.push(format!("image_build: {}", build.tags.join(" ")));
        }
        if let Some(deploy) = &job.deploy {
            needs.push(match deploy {
                Deploy::Compose { file } => format!("deploy: compose {file}"),
                Deploy::Kubernetes { manifests, .. } => format!("deploy: kubernetes {manifests}"),
            });
        }
        format!(
            "job \"{}\" needs a container ({}) but no container backend is available; \
             start Docker (`dockerd`) and use --backend auto or docker",
            job.name,
            needs.join(", ")
        )
    }

    /// Awaits `fut` while forwarding the log lines it produces.
    async fn drive<F: Future>(&self, rx: &mut UnboundedReceiver<LogLine>, fut: F) -> F::Output {
        tokio::pin!(fut);
        loop {
            tokio::select! {
                biased;
                Some(line) = rx.recv() => self.log(line),
                out = &mut fut => {
                    self.flush(rx);
                    return out;
                }
            }
        }
    }

    /// Forwards the lines already queued, without waiting for more.
    fn flush(&self, rx: &mut UnboundedReceiver<LogLine>) {
        while let Ok(line) = rx.try_recv() {
            self.log(line);
        }
    }

    async fn remove_workspace(&self, dir: &std::path::Path) {
        let dir = dir.to_path_buf();
        let removed = tokio::task::spawn_blocking(move || workspace::remove(&dir)).await;
        if let Ok(Err(e)) = removed {
            self.system(format!("warning: {}", chain(&e)));
        }
    }

    fn log(&self, mut line: LogLine) {
        if let std::borrow::Cow::Owned(masked) = self.ctx.masker.mask(&line.text) {
            line.text = masked;
        }
        self.emit(RunEvent::JobLog {
            job: self.job,
            line,
        });
    }

    fn system(&self, text: String) {
        self.log(LogLine {
            at: SystemTime::now(),
            stream: Stream::System,
            source: None,
            text,
        });
    }

    fn emit(&self, event: RunEvent) {
        // A closed receiver means nobody listens any more; the run still completes.
        let _ = self.ctx.events.send(event);
    }
}

/// An error and its causes, `: `-separated (for messages users read; executors use it too).
pub fn chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        let cause_text = cause.to_string();
        if !text.ends_with(&cause_text) {
            text.push_str(": ");
            text.push_str(&cause_text);
        }
        source = cause.source();
    }
    text
}
