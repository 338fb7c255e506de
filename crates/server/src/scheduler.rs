//! The scheduler: turns stored job states into decisions, run by run.
//!
//! [`advance`] is called whenever something about a run changed (created, a job finished,
//! a lease expired, cancel requested, a slot in its concurrency group freed). It
//!
//! 1. admits the run if it is still waiting: runs of one `concurrency` group are admitted
//!    first come first served, at most `limit` at a time (a run is admitted once any of
//!    its jobs left `Pending`);
//! 2. asks [`gantry_engine::dag::decide`] — the same rules `gantry run` uses — which
//!    waiting jobs start, which wait for a person's approval (state `waiting`, see
//!    [`crate::approvals`]) and which are skipped, and applies that with
//!    [`Store::transition_jobs`](gantry_store::Store::transition_jobs), waking executors
//!    waiting for a lease;
//! 3. ends the run once every job is final, then starts downstream `after:` pipelines
//!    and sends notifications (outside the scheduler's lock).
//!
//! The database is the only state: after a restart, advancing every active run picks up
//! exactly where the crashed process stopped.

use std::collections::BTreeSet;

use gantry_engine::RunStatus;
use gantry_engine::dag::{self, Decision, Done, Node};
use gantry_store::{Job, JobState, JobTransition, Run, RunState, StoreError};

use crate::state::{State, now_ms};

/// The DAG view of a stored job state.
pub fn node(state: JobState) -> Node {
    match state {
        JobState::Pending => Node::Waiting,
        // A job held for approval was decided already: the rules count it as started.
        JobState::Queued | JobState::Waiting | JobState::Running => Node::Running,
        JobState::Succeeded => Node::Done(Done::Succeeded),
        JobState::Failed => Node::Done(Done::Failed),
        JobState::AllowedFailure => Node::Done(Done::AllowedFailure),
        JobState::Errored => Node::Done(Done::Errored),
        JobState::Skipped => Node::Done(Done::Skipped),
        JobState::Cancelled => Node::Done(Done::Cancelled),
    }
}

/// Brings run `run_id` as far as its stored state allows (see the module docs), then
/// the runs that this unblocked.
pub async fn advance(state: &State, run_id: i64) -> Result<(), StoreError> {
    let mut work = BTreeSet::from([run_id]);
    while let Some(id) = work.pop_first() {
        let step = {
            let _guard = state.sched.lock().await;
            advance_one(state, id).await?
        };
        if let Some(run) = step.finished {
            // A freed slot in a concurrency group admits the next run of the group.
            // Only the first `limit` active runs of the group can hold a slot, so only
            // they need a look (a long queue is not re-read on every finish).
            if let Some((group, limit)) = &run.concurrency {
                let next = state
                    .store
                    .active_runs()
                    .await?
                    .into_iter()
                    .filter(|r| r.concurrency.as_ref().is_some_and(|(g, _)| g == group))
                    .take((*limit).max(1) as usize);
                work.extend(next.map(|r| r.id));
            }
            let st = state.clone();
            tokio::spawn(async move { crate::finish::run_finished(&st, run).await });
        }
    }
    Ok(())
}

/// Advances every run that is not final, oldest first (at start and after lease expiry).
pub async fn advance_all(state: &State) -> Result<(), StoreError> {
    for run in state.store.active_runs().await? {
        advance(state, run.id).await?;
    }
    Ok(())
}

#[derive(Default)]
struct Step {
    /// The run, when this step ended it.
    finished: Option<Run>,
}

async fn advance_one(state: &State, run_id: i64) -> Result<Step, StoreError> {
    let store = &state.store;
    let run = store.run(run_id).await?;
    if run.state.is_final() {
        return Ok(Step::default());
    }
    let mut jobs = store.jobs(run_id).await?;
    if run.cancel_requested {
        if jobs.iter().all(|j| j.state.is_final()) {
            return finish(state, run, RunState::Cancelled).await;
        }
        return Ok(Step::default());
    }
    let Some(plan) = state.plan(&run) else {
        // Only a run created Errored lacks a plan; one that somehow lost it cannot go on.
        store
            .set_run_state(run_id, RunState::Errored, now_ms())
            .await?;
        return Ok(Step::default());
    };
    if plan.jobs.len() != jobs.len() {
        tracing::error!(run_id, "stored jobs do not match the run's plan");
        return finish(state, run, RunState::Errored).await;
    }
    let admitted = admitted(&run, &jobs);
    if !admitted && !admissible(state, &run).await? {
        return Ok(Step::default());
    }
    let mut queued_any = false;
    loop {
        let nodes: Vec<Node> = jobs.iter().map(|j| node(j.state)).collect();
        let decisions = dag::decide(&plan, &nodes, false);
        if decisions.is_empty() {
            break;
        }
        let changes: Vec<JobTransition> = decisions
            .into_iter()
            .map(|(idx, d)| match d {
                Decision::Start => JobTransition {
                    idx: idx as i64,
                    state: JobState::Queued,
                    message: None,
                },
                Decision::Skip(reason) => JobTransition {
                    idx: idx as i64,
                    state: JobState::Skipped,
                    message: Some(reason),
                },
                Decision::AwaitApproval => JobTransition {
                    idx: idx as i64,
                    state: JobState::Waiting,
                    message: Some(crate::approvals::waiting_message(&plan, idx)),
                },
            })
            .collect();
        // Reasons go in the log before the job is final, so a follower that ends its
        // stream on the final state has them.
        for c in changes
            .iter()
            .filter(|c| matches!(c.state, JobState::Skipped | JobState::Waiting))
        {
            if let Some(j) = jobs.iter().find(|j| j.idx == c.idx) {
                let msg = c.message.clone().unwrap_or_default();
                let line = if c.state == JobState::Skipped {
                    format!("skipped: {msg}")
                } else {
                    msg
                };
                state.logs.system(run_id, &j.key, now_ms(), &line).await;
            }
        }
        store.transition_jobs(run_id, &changes, now_ms()).await?;
        let before: Vec<JobState> = jobs.iter().map(|j| j.state).collect();
        jobs = store.jobs(run_id).await?;
        let mut changed = false;
        for (j, old) in jobs.iter().zip(before) {
            if j.state == old {
                continue;
            }
            changed = true;
            queued_any |= j.state == JobState::Queued;
        }
        if !changed {
            // The store refused every change (the jobs moved on meanwhile); deciding
            // again would give the same answer.
            break;
        }
    }
    if queued_any {
        state.queued.notify_waiters();
    }
    state.logs.touch();
    if jobs.iter().all(|j| j.state.is_final()) {
        let nodes: Vec<Node> = jobs.iter().map(|j| node(j.state)).collect();
        let outcome = match dag::run_outcome(&nodes) {
            Some(RunStatus::Succeeded) => RunState::Succeeded,
            Some(RunStatus::Cancelled) => RunState::Cancelled,
            _ => RunState::Failed,
        };
        return finish(state, run, outcome).await;
    }
    Ok(Step::default())
}

/// Whether a run was admitted: it started, or one of its jobs was queued or held for
/// approval (jobs that a rerun copied as final were never queued and do not count).
fn admitted(run: &Run, jobs: &[Job]) -> bool {
    run.state == RunState::Running
        || jobs.iter().any(|j| {
            matches!(
                j.state,
                JobState::Queued | JobState::Waiting | JobState::Running
            ) || (j.state.is_final() && (j.queued_at.is_some() || j.approval.is_some()))
        })
}

/// Whether a waiting run may be admitted now: without a concurrency group always; in a
/// group when fewer than `limit` older active runs of the group are ahead of it.
async fn admissible(state: &State, run: &Run) -> Result<bool, StoreError> {
    let Some((group, limit)) = &run.concurrency else {
        return Ok(true);
    };
    let active = state.store.active_runs().await?;
    let position = active
        .iter()
        .filter(|r| r.concurrency.as_ref().is_some_and(|(g, _)| g == group))
        .position(|r| r.id == run.id);
    Ok(position.is_some_and(|p| p < (*limit).max(1) as usize))
}

async fn finish(state: &State, run: Run, outcome: RunState) -> Result<Step, StoreError> {
    let now = now_ms();
    state.store.set_run_state(run.id, outcome, now).await?;
    state.forget_plan(run.id);
    state.logs.touch();
    let run = state.store.run(run.id).await?;
    Ok(Step {
        finished: Some(run),
    })
}
