//! Approvals: jobs whose `environment:` says `approval: required` wait for a person.
//!
//! The scheduler holds such a job in state `waiting` once the DAG rules would start it
//! ([`gantry_engine::dag::Decision::AwaitApproval`]); it stays there — across restarts,
//! since the database is the only state — until someone with an admin token answers:
//!
//! - approved: the job is queued like any other and runs; its log says `approved by
//!   NAME`;
//! - rejected: the job ends `failed` with the message `rejected by NAME` (also in its
//!   log), and the DAG rules carry on from there (jobs that need it are skipped,
//!   `status: failure` jobs run, the run fails);
//! - the run is cancelled: the job ends `cancelled` like every job that did not start.
//!
//! An answer is recorded on the job (`approval`: who, when, which way). Answering again
//! the same way is harmless (nothing changes, no second log line); any other answer to
//! a job that is not waiting is refused ([`ApprovalError::NotWaiting`], a 409 in the
//! API). The run keeps its state meanwhile (`running`, or `queued` if nothing ran yet);
//! the web UI shows a run whose only unfinished work waits for approval as "waiting for
//! approval".

use gantry_pipeline::Plan;
use gantry_store::{Approval, ApprovalOutcome, Job, JobState, StoreError};

use crate::scheduler;
use crate::state::{State, now_ms};

/// Why an answer was refused.
#[derive(Debug, thiserror::Error)]
pub enum ApprovalError {
    /// The job is not waiting for approval (and was not answered this way before).
    #[error("{0}")]
    NotWaiting(String),
    /// The database failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// The message (and log line) of a job that starts waiting: `waiting for approval to
/// deploy to production`.
pub fn waiting_message(plan: &Plan, idx: usize) -> String {
    match plan.jobs.get(idx).and_then(|j| j.environment.as_ref()) {
        Some(env) if !env.name.is_empty() => {
            format!("waiting for approval to deploy to {}", env.name)
        }
        _ => "waiting for approval".to_string(),
    }
}

/// An answer in words, as the job's message and log say it: `approved by alice`.
pub fn said(approval: &Approval) -> String {
    let word = if approval.approved {
        "approved"
    } else {
        "rejected"
    };
    format!("{word} by {}", approval.by)
}

/// Answers job `job` of run `run_id` for `by` (see the module docs); returns the job
/// after the answer.
pub async fn answer(
    state: &State,
    run_id: i64,
    job: &Job,
    approve: bool,
    by: &str,
) -> Result<Job, ApprovalError> {
    let approval = Approval {
        approved: approve,
        by: by.to_string(),
        at: now_ms(),
    };
    let message = said(&approval);
    let answered = {
        // One answer at a time, in step with the scheduler: the log line is written only
        // by the answer that finds the job waiting, and before the job changes, so that
        // a follower whose stream ends with a rejected job has the line.
        let _guard = state.sched.lock().await;
        let current = state
            .store
            .jobs(run_id)
            .await?
            .into_iter()
            .find(|j| j.idx == job.idx)
            .ok_or_else(|| StoreError::NotFound(format!("job {} of run {run_id}", job.key)))?;
        if current.state == JobState::Waiting {
            state
                .logs
                .system(run_id, &current.key, approval.at, &message)
                .await;
        }
        state
            .store
            .answer_approval(run_id, job.idx, &approval, Some(&message))
            .await?
    };
    match answered {
        ApprovalOutcome::Answered(job) => {
            if approve {
                state.queued.notify_waiters();
            }
            state.logs.touch();
            scheduler::advance(state, run_id).await?;
            Ok(job)
        }
        ApprovalOutcome::NotWaiting(job) => match &job.approval {
            Some(a) if a.approved == approve => Ok(job),
            Some(a) => Err(ApprovalError::NotWaiting(format!(
                "job {} was already {}",
                job.key,
                said(a)
            ))),
            None => Err(ApprovalError::NotWaiting(format!(
                "job {} is {}, not waiting for approval",
                job.key,
                job.state.as_str()
            ))),
        },
    }
}
