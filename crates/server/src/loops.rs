//! The server's background loops: polling repositories, firing schedules, and expiring
//! leases of executors that stopped heartbeating.
//!
//! Each is a plain `loop { work; sleep or shutdown }` task. Their state worth keeping
//! (last seen ref heads, when to poll next, which run a ref+commit or a schedule slot
//! started) is in the database, so a restart neither repeats nor loses a trigger.

use std::collections::HashMap;
use std::time::Duration;

use gantry_pipeline::Event;
use gantry_store::{JobState, Repo};

use crate::git;
use crate::runs::{RunError, RunRequest, default_name, start_runs};
use crate::scheduler;
use crate::state::{State, now_ms};
use crate::triggers::refs::{Backoff, poll_interval};

/// Longest wait between polls of a repository that keeps failing.
const MAX_BACKOFF: Duration = Duration::from_secs(3600);

/// Spawns the loops; they end on shutdown.
pub fn spawn(state: &State) -> Vec<tokio::task::JoinHandle<()>> {
    vec![
        tokio::spawn(poll_loop(state.clone())),
        tokio::spawn(cron_loop(state.clone())),
        tokio::spawn(expiry_loop(state.clone())),
        tokio::spawn(orphan_loop(state.clone())),
    ]
}

/// Deletes blobs nothing names ([`crate::caches::sweep_orphans`]) once per grace period;
/// the first sweep ran at start.
async fn orphan_loop(state: State) {
    let every = state.config.blob_grace.max(Duration::from_secs(60));
    while pause(&state, every).await {
        crate::caches::sweep_orphans(&state).await;
    }
}

/// Sleeps `d`, or returns false at shutdown.
async fn pause(state: &State, d: Duration) -> bool {
    tokio::select! {
        _ = tokio::time::sleep(d) => true,
        _ = state.shutdown.notified() => false,
    }
}

async fn poll_loop(state: State) {
    loop {
        match state.store.list_repos().await {
            Ok(repos) => {
                let now = now_ms();
                for repo in repos {
                    if repo.next_poll_at.is_none_or(|t| t <= now) {
                        let st = state.clone();
                        tokio::spawn(async move { poll_repo(&st, &repo).await });
                    }
                }
            }
            Err(e) => tracing::warn!("cannot list repositories to poll: {e}"),
        }
        if !pause(&state, Duration::from_secs(1)).await {
            return;
        }
    }
}

/// Polls one repository now: lists its refs, starts runs for refs that moved (once per
/// ref and commit), refreshes its pipelines, records when to poll next. A repository
/// that cannot be reached keeps its error for people to see and is polled less often.
pub async fn poll_repo(state: &State, repo: &Repo) {
    {
        let mut polling = state.polling.lock().unwrap_or_else(|e| e.into_inner());
        if !polling.insert(repo.id) {
            return;
        }
    }
    let result = poll_inner(state, repo).await;
    let now = now_ms();
    let interval = repo_interval(state, repo.id);
    let (error, delay) = {
        let mut backoffs = state.backoff.lock().unwrap_or_else(|e| e.into_inner());
        let b = backoffs
            .entry(repo.id)
            .or_insert_with(|| Backoff::new(MAX_BACKOFF));
        match &result {
            Ok(()) => b.success(),
            Err(_) => b.failure(),
        }
        (result.err(), b.delay(interval))
    };
    if let Some(e) = &error {
        tracing::warn!(repo = %repo.name, "poll failed: {e}");
    }
    if let Err(e) = state
        .store
        .record_poll(repo.id, now, error, now + delay.as_millis() as i64)
        .await
    {
        tracing::warn!(repo = %repo.name, "cannot record poll: {e}");
    }
    state
        .polling
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .remove(&repo.id);
}

fn repo_interval(state: &State, repo_id: i64) -> Duration {
    let default = state.config.default_poll_interval;
    let specs = state.specs.lock().unwrap_or_else(|e| e.into_inner());
    specs
        .get(&repo_id)
        .and_then(|list| {
            list.iter()
                .filter_map(|s| poll_interval(&s.on, Some(default)))
                .min()
        })
        .unwrap_or(default)
}

async fn poll_inner(state: &State, repo: &Repo) -> Result<(), String> {
    let refs = git::ls_remote(&repo.url).await.map_err(|e| e.to_string())?;
    let known = state
        .store
        .ref_heads(repo.id)
        .await
        .map_err(|e| e.to_string())?;
    let changed: Vec<_> = refs
        .iter()
        .filter(|r| known.get(&r.name) != Some(&r.commit))
        .collect();
    let first_poll = known.is_empty();
    let cached = state
        .specs
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .contains_key(&repo.id);
    if changed.is_empty() && cached {
        return Ok(());
    }
    let mirror = state.mirror(repo);
    mirror.fetch().await.map_err(|e| e.to_string())?;
    refresh_specs(state, repo).await;
    for r in changed {
        // The first poll of a repository learns where its refs are; only later moves
        // are changes that start runs.
        if !first_poll {
            let mut req = RunRequest::new(Event::Poll, "Started by an SCM change (poll)");
            req.git_ref = Some(r.name.clone());
            req.commit = Some(r.commit.clone());
            req.before = known.get(&r.name).cloned();
            req.dedup_key = Some(format!("ref:{}@{}", r.name, r.commit));
            req.fetch = false;
            match start_runs(state, repo, req).await {
                Ok(_) | Err(RunError::NotFound(_)) => {}
                Err(e) => {
                    tracing::warn!(repo = %repo.name, git_ref = %r.name, "poll could not start runs: {e}")
                }
            }
        }
        state
            .store
            .set_ref_head(repo.id, &r.name, &r.commit)
            .await
            .map_err(|e| e.to_string())?;
    }
    Ok(())
}

/// Re-reads the pipelines at the repository's default branch (for schedules and poll
/// intervals).
async fn refresh_specs(state: &State, repo: &Repo) {
    let mirror = state.mirror(repo);
    let Ok(branches) = mirror.branches().await else {
        return;
    };
    let head = ["main", "master", "develop"]
        .iter()
        .find_map(|b| {
            branches
                .iter()
                .find(|r| r.name == format!("refs/heads/{b}"))
        })
        .or(branches.first());
    let Some(head) = head else { return };
    let Ok(files) = mirror.pipeline_files(&head.commit).await else {
        return;
    };
    let specs: Vec<_> = files
        .iter()
        .filter_map(|(path, text)| {
            gantry_pipeline::parse_named(path, &default_name(&repo.name, path), text).ok()
        })
        .collect();
    state
        .specs
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .insert(repo.id, specs);
}

async fn cron_loop(state: State) {
    let mut clock = ScheduleClock::new(now_ms());
    loop {
        fire_schedules(&state, &mut clock, now_ms()).await;
        if !pause(&state, Duration::from_secs(10)).await {
            return;
        }
    }
}

/// Which schedule slots have been handled. Slots are counted from `started` (the server's
/// start): a schedule does not fire for slots in the past. Each slot's run carries the
/// slot in its dedup key, so two servers (or a restart within the minute) start it once.
#[derive(Debug)]
pub struct ScheduleClock {
    started: i64,
    last: HashMap<(i64, String, String), i64>,
}

impl ScheduleClock {
    /// A clock that fires slots after `started` (unix ms).
    pub fn new(started: i64) -> ScheduleClock {
        ScheduleClock {
            started,
            last: HashMap::new(),
        }
    }
}

/// Starts one run for every schedule slot that fell due up to `now` (the latest slot of
/// each `on.schedule` entry, not one per missed slot), for the pipelines last read from
/// each repository's default branch. Returns the runs started.
pub async fn fire_schedules(state: &State, clock: &mut ScheduleClock, now: i64) -> Vec<i64> {
    let due: Vec<(i64, String, i64)> = {
        let specs = state.specs.lock().unwrap_or_else(|e| e.into_inner());
        let mut due = Vec::new();
        for (repo_id, list) in specs.iter() {
            for spec in list {
                for expr in &spec.on.schedule {
                    let key = (*repo_id, spec.name().to_string(), expr.value.clone());
                    let since = *clock.last.get(&key).unwrap_or(&clock.started);
                    if let Some(slot) = crate::triggers::cron::due(&expr.value, since, now) {
                        clock.last.insert(key, slot);
                        due.push((*repo_id, spec.name().to_string(), slot));
                    }
                }
            }
        }
        due
    };
    let mut started = Vec::new();
    for (repo_id, pipeline, slot) in due {
        let repos = state.store.list_repos().await.unwrap_or_default();
        let Some(repo) = repos.into_iter().find(|r| r.id == repo_id) else {
            continue;
        };
        let mut req = RunRequest::new(Event::Schedule, "Started by schedule");
        req.pipeline = Some(pipeline.clone());
        req.dedup_key = Some(format!("schedule:{slot}"));
        match start_runs(state, &repo, req).await {
            Ok(runs) => started.extend(runs.iter().map(|r| r.id)),
            Err(e) => {
                tracing::warn!(repo = %repo.name, %pipeline, "schedule could not start a run: {e}")
            }
        }
    }
    started
}

async fn expiry_loop(state: State) {
    let every = (state.config.lease_ttl / 3).max(Duration::from_millis(200));
    loop {
        if !pause(&state, every).await {
            return;
        }
        if let Err(e) = expire(&state, None).await {
            tracing::warn!("lease expiry failed: {e}");
        }
    }
}

/// Whether a job whose executor died must not simply run again: a `deploy` job may have
/// changed an environment half-way, so a person decides (the job ends errored with why).
async fn unsafe_to_repeat(state: &State, job: &gantry_store::Job) -> bool {
    let Ok(run) = state.store.run(job.run_id).await else {
        return false;
    };
    let Some(plan) = run
        .plan_json
        .as_deref()
        .and_then(|p| serde_json::from_str::<gantry_pipeline::Plan>(p).ok())
    else {
        return false;
    };
    usize::try_from(job.idx)
        .ok()
        .and_then(|i| plan.jobs.get(i))
        .is_some_and(|j| j.deploy.is_some())
}

/// Expires overdue leases (or every lease of `executor`), logs what became of each job
/// ("agent build-2 was lost (its lease expired) during attempt 1; the job is queued again
/// for attempt 2 (at most 3)"), and advances the runs concerned. A job is leased at most
/// `max_attempts` times; after that an expired lease ends it errored. A `deploy` job is
/// not queued again: it ends errored.
pub async fn expire(
    state: &State,
    executor: Option<&str>,
) -> Result<usize, gantry_store::StoreError> {
    expire_because(state, executor, &std::collections::BTreeSet::new()).await
}

/// [`expire`], called right after the leases of `restarted` (jobs as run id and plan
/// index) were made overdue because their agent, started again, said at hello that an
/// earlier run of it had left them: their logs say so ("agent build-2 was lost (it
/// restarted) during attempt 1; …").
pub async fn expire_restarted(
    state: &State,
    restarted: &std::collections::BTreeSet<(i64, i64)>,
) -> Result<usize, gantry_store::StoreError> {
    expire_because(state, None, restarted).await
}

async fn expire_because(
    state: &State,
    executor: Option<&str>,
    restarted: &std::collections::BTreeSet<(i64, i64)>,
) -> Result<usize, gantry_store::StoreError> {
    let now = now_ms();
    let expired = state
        .store
        .expire_leases(now, executor, state.config.max_attempts)
        .await?;
    let mut runs = std::collections::BTreeSet::new();
    // The built-in executor's leases are expired at start because it died with the
    // previous server process, not because their deadline passed.
    let why = match executor {
        Some(crate::server::BUILTIN_EXECUTOR) => "the server restarted",
        _ => "its lease expired",
    };
    for e in &expired {
        state.agents.release_job((e.job.run_id, e.job.idx), now);
        let why = if restarted.contains(&(e.job.run_id, e.job.idx)) {
            "it restarted"
        } else {
            why
        };
        let who = if e.executor == crate::server::BUILTIN_EXECUTOR {
            format!("executor {}", e.executor)
        } else {
            format!("agent {}", e.executor)
        };
        if e.job.state == JobState::Queued && unsafe_to_repeat(state, &e.job).await {
            let text = format!(
                "{who} was lost ({why}) during attempt {} of this deployment job; a \
                 deployment is not repeated automatically: check the environment, then \
                 rerun the run",
                e.job.attempt
            );
            state
                .store
                .transition_jobs(
                    e.job.run_id,
                    &[gantry_store::JobTransition {
                        idx: e.job.idx,
                        state: JobState::Errored,
                        message: Some(text.clone()),
                    }],
                    now,
                )
                .await?;
            state
                .logs
                .system(e.job.run_id, &e.job.key, now, &text)
                .await;
            runs.insert(e.job.run_id);
            continue;
        }
        let text = match e.job.state {
            JobState::Queued => format!(
                "{who} was lost ({why}) during attempt {}; the job is queued again for \
                 attempt {} (at most {})",
                e.job.attempt,
                e.job.attempt + 1,
                state.config.max_attempts
            ),
            _ => format!(
                "{who} was lost ({why}) during attempt {}: {}",
                e.job.attempt,
                e.job.message.clone().unwrap_or_else(|| "giving up".into())
            ),
        };
        state
            .logs
            .system(e.job.run_id, &e.job.key, now, &text)
            .await;
        runs.insert(e.job.run_id);
    }
    if !expired.is_empty() {
        state.queued.notify_waiters();
    }
    for run_id in runs {
        scheduler::advance(state, run_id).await?;
    }
    Ok(expired.len())
}
