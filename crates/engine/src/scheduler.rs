//! The DAG scheduler: [`run`] decides, event by event, which jobs start, wait or end
//! without running.
//!
//! There are no stage barriers: a job starts the moment every job it needs has finished
//! and a slot is free (`parallelism` counts running jobs). The scheduler alone owns the
//! run's state; job tasks (see [`crate::runner`]) only emit their own start/log/artifact
//! events and hand back a result, and the scheduler reacts to one finished task or the
//! cancel token at a time (`select!` over a `JoinSet`, no polling).
//!
//! Rules, for a job whose needs have all finished:
//!
//! - `when: { status: success }` (the default): it runs if every need succeeded or failed
//!   with `allow_failure`; otherwise it is skipped, naming the need (`needs "build",
//!   which failed`). Skips propagate, since a skipped need is not a success.
//! - `when: { status: always }`: it runs, whatever its needs did.
//! - `when: { status: failure }`: it runs if any job of the run has failed (a failure
//!   not allowed, or an error). If nothing has failed yet it waits until something does
//!   or until every `success` job that does not depend on it has finished, and is then
//!   skipped ("nothing failed"). So a cleanup job needs no `needs` to run last.
//! - A job excluded by its `when` conditions is skipped with the planner's reason, and
//!   so are the jobs that need it (they could not get its artifacts); `always` and
//!   `failure` jobs still run.
//! - `--fail-fast`: the first failure cancels the running `success` jobs (they end
//!   `Cancelled`) and skips every `success` job not yet started ("not started:
//!   --fail-fast ..."); `always` and `failure` jobs still run.
//! - Cancellation (the token, i.e. Ctrl-C): running jobs are cancelled (their backends
//!   kill the scripts and tear down), nothing new starts, unstarted jobs end `Cancelled`,
//!   and the run is `Cancelled`.
//!
//! The run is `Failed` if any job failed without `allow_failure` or errored.
//!
//! The rules themselves live in [`crate::dag`] (shared with the server); this module
//! owns the events, the job tasks, the parallelism limit and cancellation.

use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use gantry_backend::CancellationToken;
use gantry_pipeline::Plan;
use tokio::sync::mpsc::UnboundedSender;
use tokio::task::JoinSet;

use crate::artifacts::{ArtifactStore, Manifest};
use crate::config::{ArtifactSummary, Backends, JobSummary, RunConfig, RunSummary};
use crate::dag::{self, Dag, Decision, Done, Facts, Node};
use crate::event::{JobIndex, JobStatus, RunEvent, RunStatus};
use crate::mask::Masker;
use crate::runner::{self, JobResult, RunContext, chain};
use crate::workspace;

/// Runs `plan` to the end and returns its summary. Every step is also reported on
/// `events`, ending with [`RunEvent::RunFinished`]. Cancel `cancel` to stop the run
/// cleanly: running jobs are killed and torn down, and the summary says `Cancelled`.
/// Dropping the future instead cancels the running jobs too, which then tear down in the
/// background for as long as the runtime lives, but nobody learns how they ended.
pub async fn run(
    plan: &Plan,
    backends: &Backends,
    config: RunConfig,
    events: UnboundedSender<RunEvent>,
    cancel: CancellationToken,
) -> RunSummary {
    let started = Instant::now();
    let _ = events.send(RunEvent::RunStarted {
        run_id: config.run_id.clone(),
        pipeline: plan.pipeline.clone(),
        jobs: plan.jobs.iter().map(|j| j.name.clone()).collect(),
        at: SystemTime::now(),
    });
    let keys = job_keys(plan);
    let source_dir = config.run_dir.join("source");
    let work_dir = config.run_dir.join("work");

    // Freeze the source once, so every job sees the tree as it was when the run began.
    let snapshot = {
        let source = config.source.clone();
        let dest = source_dir.clone();
        tokio::task::spawn_blocking(move || {
            workspace::remove(&dest).map_err(|e| chain(&e))?;
            source.snapshot_into(&dest).map_err(|e| chain(&e))
        })
        .await
        .unwrap_or_else(|e| Err(format!("snapshot panicked: {e}")))
    };

    let mut outcome = Outcomes::new(plan.jobs.len());
    let mut cancelled = false;
    match snapshot {
        Ok((frozen, _stats)) => {
            let ctx = Arc::new(RunContext {
                plan: plan.clone(),
                backends: backends.clone(),
                run_id: config.run_id.clone(),
                work_dir: work_dir.clone(),
                source: frozen,
                store: ArtifactStore::new(config.run_dir.join("artifacts")),
                masker: Masker::new(config.secrets.values().map(String::as_str)),
                secrets: config.secrets.clone(),
                keep_workspaces: config.keep_workspaces,
                keys: keys.clone(),
                events: events.clone(),
                caches: config.caches.clone(),
            });
            let mut scheduler = Scheduler::new(ctx, &config, cancel);
            scheduler.run().await;
            cancelled = scheduler.cancelled;
            outcome = std::mem::replace(&mut scheduler.outcomes, Outcomes::new(0));
        }
        Err(message) => {
            let message = format!("cannot snapshot the source: {message}");
            for (i, job) in plan.jobs.iter().enumerate() {
                let status = match &job.excluded {
                    Some(reason) => JobStatus::Skipped {
                        reason: reason.clone(),
                    },
                    None => JobStatus::Errored {
                        message: message.clone(),
                    },
                };
                outcome.finish(&events, i, status, 0, Duration::ZERO);
            }
        }
    }

    if !config.keep_workspaces {
        let dirs = [source_dir, work_dir];
        let _ = tokio::task::spawn_blocking(move || {
            for dir in dirs {
                let _ = workspace::remove(&dir);
            }
        })
        .await;
    }

    let status = if cancelled {
        RunStatus::Cancelled
    } else if outcome.statuses().any(is_failure) {
        RunStatus::Failed
    } else {
        RunStatus::Succeeded
    };
    let duration = started.elapsed();
    let _ = events.send(RunEvent::RunFinished {
        status,
        duration,
        dir: Some(config.run_dir.clone()),
    });
    let mut artifacts = Vec::new();
    for (job, manifest) in outcome.manifests.iter().enumerate() {
        for (path, entry) in manifest.iter().flat_map(|m| &m.files) {
            artifacts.push(ArtifactSummary {
                job,
                path: path.clone(),
                digest: entry.digest.clone(),
                size: entry.size,
            });
        }
    }
    let jobs = plan
        .jobs
        .iter()
        .zip(keys)
        .zip(outcome.done)
        .map(|((job, key), done)| {
            let (status, attempts, duration) = done.unwrap_or((
                JobStatus::Skipped {
                    reason: "not reached".into(),
                },
                0,
                Duration::ZERO,
            ));
            JobSummary {
                name: job.name.clone(),
                key,
                status,
                duration,
                attempts,
            }
        })
        .collect();
    RunSummary {
        run_id: config.run_id,
        status,
        duration,
        jobs,
        artifacts,
        dir: config.run_dir,
    }
}

/// A job failure that fails the run (and triggers `status: failure` jobs).
fn is_failure(status: &JobStatus) -> bool {
    Done::from(status).is_failure()
}

/// Keys for paths and container names: the job name lowercased, runs of anything but
/// `[a-z0-9]` turned into `-`, made unique with the job's index when two collide.
pub fn job_keys(plan: &Plan) -> Vec<String> {
    let mut seen = std::collections::HashSet::new();
    plan.jobs
        .iter()
        .enumerate()
        .map(|(i, job)| {
            let mut key = String::new();
            for c in job.name.chars() {
                if c.is_ascii_alphanumeric() {
                    key.push(c.to_ascii_lowercase());
                } else if !key.ends_with('-') {
                    key.push('-');
                }
            }
            let mut key = key.trim_matches('-').chars().take(48).collect::<String>();
            if key.is_empty() {
                key.push_str("job");
            }
            if !seen.insert(key.clone()) {
                key = format!("{key}-{i}");
                seen.insert(key.clone());
            }
            key
        })
        .collect()
}

/// Final results, filled as jobs end.
struct Outcomes {
    /// (status, attempts, duration) once the job is done.
    done: Vec<Option<(JobStatus, u32, Duration)>>,
    manifests: Vec<Option<Arc<Manifest>>>,
}

impl Outcomes {
    fn new(n: usize) -> Outcomes {
        Outcomes {
            done: vec![None; n],
            manifests: vec![None; n],
        }
    }

    fn statuses(&self) -> impl Iterator<Item = &JobStatus> {
        self.done.iter().flatten().map(|(s, _, _)| s)
    }

    fn finish(
        &mut self,
        events: &UnboundedSender<RunEvent>,
        job: JobIndex,
        status: JobStatus,
        attempts: u32,
        duration: Duration,
    ) {
        let _ = events.send(RunEvent::JobFinished {
            job,
            status: status.clone(),
            duration,
            attempts,
        });
        self.done[job] = Some((status, attempts, duration));
    }
}

struct Scheduler {
    ctx: Arc<RunContext>,
    parallelism: usize,
    fail_fast: bool,
    cancel: CancellationToken,
    /// Parent of every job's token: a child of `cancel`, also fired if the scheduler is
    /// dropped mid-run.
    jobs_token: CancellationToken,
    outcomes: Outcomes,
    /// Cancel tokens of running jobs.
    running: HashMap<JobIndex, CancellationToken>,
    tasks: JoinSet<JobResult>,
    task_jobs: HashMap<tokio::task::Id, JobIndex>,
    /// The plan's edges, and the rules.
    dag: Dag,
    /// Every job's state as the rules see it.
    nodes: Vec<Node>,
    /// Per job, how many of its needs have not finished yet.
    unfinished: Vec<usize>,
    /// Pending jobs whose needs have all finished: the only ones `decide` looks at, so
    /// that one finished job costs work in proportion to what it unblocks, not to the
    /// size of the plan.
    decidable: BTreeSet<JobIndex>,
    /// Look at every pending job on the next `decide` (at the start, and after a change
    /// that ends jobs regardless of their needs: cancel, `--fail-fast`).
    rescan: bool,
    /// The first job that failed the run.
    first_failure: Option<JobIndex>,
    /// `--fail-fast` has stopped the run.
    stopped: bool,
    /// The cancel token fired.
    cancelled: bool,
    /// Nothing runs and nothing can start: `failure` jobs still waiting decide now.
    settling: bool,
}

impl Scheduler {
    fn new(ctx: Arc<RunContext>, config: &RunConfig, cancel: CancellationToken) -> Scheduler {
        let jobs = &ctx.plan.jobs;
        let n = jobs.len();
        let unfinished: Vec<usize> = jobs.iter().map(|j| j.needs.len()).collect();
        let decidable = (0..n).filter(|&j| unfinished[j] == 0).collect();
        Scheduler {
            parallelism: config.parallelism.max(1),
            fail_fast: config.fail_fast,
            jobs_token: cancel.child_token(),
            cancel,
            outcomes: Outcomes::new(n),
            running: HashMap::new(),
            tasks: JoinSet::new(),
            task_jobs: HashMap::new(),
            dag: Dag::new(&ctx.plan),
            nodes: vec![Node::Waiting; n],
            unfinished,
            decidable,
            rescan: true,
            first_failure: None,
            stopped: false,
            cancelled: false,
            settling: false,
            ctx,
        }
    }

    async fn run(&mut self) {
        loop {
            self.decide();
            if self.tasks.is_empty() {
                if self.pending().next().is_none() {
                    break;
                }
                // Nothing runs, yet jobs wait: only `failure` jobs waiting for a failure
                // that can no longer come (or for each other). Let them decide.
                if self.settling {
                    self.give_up();
                    break;
                }
                self.settling = true;
                continue;
            }
            self.settling = false;
            tokio::select! {
                Some(joined) = self.tasks.join_next_with_id() => self.on_joined(joined),
                () = self.cancel.cancelled(), if !self.cancelled => {
                    // Child tokens of running jobs fire with it.
                    self.cancelled = true;
                    self.rescan = true;
                }
            }
        }
    }

    fn pending(&self) -> impl Iterator<Item = JobIndex> + '_ {
        (0..self.ctx.plan.jobs.len())
            .filter(|&j| self.outcomes.done[j].is_none() && !self.running.contains_key(&j))
    }

    /// Ends or starts every pending job that can be decided, until nothing changes.
    fn decide(&mut self) {
        loop {
            let mut changed = false;
            let candidates: Vec<JobIndex> = if std::mem::take(&mut self.rescan) {
                self.pending().collect()
            } else {
                self.decidable.iter().copied().collect()
            };
            for j in candidates {
                if self.cancelled {
                    self.finish(j, JobStatus::Cancelled, 0, Duration::ZERO);
                    changed = true;
                    continue;
                }
                match self.verdict(j) {
                    None => {}
                    Some(Decision::Skip(reason)) => {
                        self.finish(j, JobStatus::Skipped { reason }, 0, Duration::ZERO);
                        changed = true;
                    }
                    // `verdict` never holds a job for approval (only `dag::decide`
                    // does): a local run has nobody to ask, so such a job just starts.
                    Some(Decision::Start | Decision::AwaitApproval)
                        if self.running.len() < self.parallelism =>
                    {
                        self.start(j);
                        changed = true;
                    }
                    Some(Decision::Start | Decision::AwaitApproval) => {}
                }
            }
            if !changed {
                break;
            }
        }
    }

    /// The rules' decision for pending job `j` (`None`: wait).
    fn verdict(&self, j: JobIndex) -> Option<Decision> {
        let facts = Facts {
            first_failure: self.first_failure,
            fail_fast: self.fail_fast,
            settling: self.settling,
        };
        self.dag.verdict(&self.ctx.plan, &self.nodes, j, &facts)
    }

    fn start(&mut self, j: JobIndex) {
        let token = self.jobs_token.child_token();
        self.decidable.remove(&j);
        let restores = dag::all_needs(&self.ctx.plan, j)
            .into_iter()
            .filter_map(|n| self.outcomes.manifests[n].clone())
            .collect();
        let handle = self.tasks.spawn(runner::run_job(
            Arc::clone(&self.ctx),
            j,
            restores,
            token.clone(),
        ));
        self.task_jobs.insert(handle.id(), j);
        self.running.insert(j, token);
        self.nodes[j] = Node::Running;
    }

    fn on_joined(&mut self, joined: Result<(tokio::task::Id, JobResult), tokio::task::JoinError>) {
        let (id, result) = match joined {
            Ok((id, result)) => (id, result),
            Err(e) => {
                let id = e.id();
                let result = JobResult {
                    status: JobStatus::Errored {
                        message: format!("internal error: the job's task failed: {e}"),
                    },
                    attempts: 1,
                    duration: Duration::ZERO,
                    manifest: None,
                };
                (id, result)
            }
        };
        let Some(j) = self.task_jobs.remove(&id) else {
            return;
        };
        self.running.remove(&j);
        if is_failure(&result.status) {
            self.first_failure.get_or_insert(j);
            self.nodes[j] = Node::Done(Done::from(&result.status));
            if self.fail_fast && !self.stopped {
                self.stopped = true;
                self.rescan = true;
                for r in dag::fail_fast_cancels(&self.ctx.plan, &self.nodes, true) {
                    if let Some(token) = self.running.get(&r) {
                        token.cancel();
                    }
                }
            }
        }
        if result.status == JobStatus::Succeeded {
            self.outcomes.manifests[j] = result.manifest;
        }
        self.finish(j, result.status, result.attempts, result.duration);
    }

    /// Records a job's final status and unblocks the jobs that need it.
    fn finish(&mut self, j: JobIndex, status: JobStatus, attempts: u32, duration: Duration) {
        self.decidable.remove(&j);
        self.nodes[j] = Node::Done(Done::from(&status));
        self.outcomes
            .finish(&self.ctx.events, j, status, attempts, duration);
        for &d in &self.dag.needed_by[j] {
            self.unfinished[d] -= 1;
            if self.unfinished[d] == 0 && self.outcomes.done[d].is_none() {
                self.decidable.insert(d);
            }
        }
    }

    /// Ends jobs that still wait when nothing can make progress. Unreachable with the
    /// rules above; kept so that a scheduling bug shows as a skip, not a hang.
    fn give_up(&mut self) {
        let stuck: Vec<JobIndex> = self.pending().collect();
        for j in stuck {
            let status = JobStatus::Skipped {
                reason: "could not be scheduled (internal error)".into(),
            };
            self.finish(j, status, 0, Duration::ZERO);
        }
    }
}

impl Drop for Scheduler {
    fn drop(&mut self) {
        // Only when `run`'s future is dropped mid-run: let the jobs see the cancel and tear
        // down on their own instead of being aborted at whatever await they were in.
        if !self.tasks.is_empty() {
            self.jobs_token.cancel();
            self.tasks.detach_all();
        }
    }
}

#[cfg(test)]
mod tests;
