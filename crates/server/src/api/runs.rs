//! `/api/runs…`: listing runs, one run with its jobs, cancel and rerun, and answering
//! jobs that wait for approval.

use axum::Json;
use axum::extract::{Path, Query, State as Ax};
use axum::http::StatusCode;
use gantry_store::{Run, RunFilter, RunState};
use serde::{Deserialize, Serialize};

use crate::api::error::ApiError;
use crate::api::extract::{OptionalBody, Reader, Writer};
use crate::api::json::RunJson;
use crate::scheduler;
use crate::state::{State, now_ms};

/// Query of `GET /api/runs`.
#[derive(Debug, Default, Deserialize)]
pub struct ListQuery {
    /// Only this repository.
    pub repo: Option<String>,
    /// Only this pipeline (needs `repo`).
    pub pipeline: Option<String>,
    /// Only these states, comma-separated.
    pub state: Option<String>,
    /// Only runs with an id below this (the `next` of the previous page).
    pub before: Option<i64>,
    /// Page size (default 50, at most 500).
    pub limit: Option<u32>,
}

/// A page of runs.
#[derive(Debug, Serialize)]
pub struct RunPage {
    /// Newest first.
    pub runs: Vec<RunJson>,
    /// `before` for the next page; `null` on the last.
    pub next: Option<i64>,
}

fn parse_state(s: &str) -> Option<RunState> {
    [
        RunState::Queued,
        RunState::Running,
        RunState::Succeeded,
        RunState::Failed,
        RunState::Cancelled,
        RunState::Errored,
    ]
    .into_iter()
    .find(|st| st.as_str() == s)
}

/// `GET /api/runs`.
pub async fn list(
    Ax(state): Ax<State>,
    _: Reader,
    Query(q): Query<ListQuery>,
) -> Result<Json<RunPage>, ApiError> {
    let mut states = Vec::new();
    for s in q
        .state
        .iter()
        .flat_map(|s| s.split(','))
        .filter(|s| !s.is_empty())
    {
        states.push(parse_state(s.trim()).ok_or_else(|| {
            ApiError::BadRequest(format!(
                "unknown run state {s:?}: expected queued, running, succeeded, failed, cancelled or errored"
            ))
        })?);
    }
    if q.pipeline.is_some() && q.repo.is_none() {
        return Err(ApiError::BadRequest("pipeline= needs repo=".into()));
    }
    let limit = q.limit.unwrap_or(50).clamp(1, 500);
    let runs = state
        .store
        .list_runs(&RunFilter {
            repo: q.repo,
            pipeline: q.pipeline,
            states,
            before: q.before,
            limit,
        })
        .await?;
    let next = (runs.len() == limit as usize)
        .then(|| runs.last().map(|r| r.id))
        .flatten();
    Ok(Json(RunPage {
        runs: runs.iter().map(RunJson::new).collect(),
        next,
    }))
}

/// A run by the id in a URL (404 for anything that is not a known id).
pub(crate) async fn run_by_path(state: &State, id: &str) -> Result<Run, ApiError> {
    let Ok(n) = id.parse::<i64>() else {
        return Err(ApiError::NotFound(format!("run {id:?} not found")));
    };
    match state.store.run(n).await {
        Ok(r) => Ok(r),
        Err(gantry_store::StoreError::NotFound(_)) => {
            Err(ApiError::NotFound(format!("run {n} not found")))
        }
        Err(e) => Err(e.into()),
    }
}

/// `GET /api/runs/{id}`.
pub async fn get(
    Ax(state): Ax<State>,
    _: Reader,
    Path(id): Path<String>,
) -> Result<Json<RunJson>, ApiError> {
    let run = run_by_path(&state, &id).await?;
    let mut jobs = state.store.jobs(run.id).await?;
    state.annotate_waiting(&mut jobs);
    Ok(Json(RunJson::with_jobs(&run, &jobs)))
}

/// `POST /api/runs/{id}/cancel`: unstarted jobs end cancelled at once, running ones are
/// told at their next heartbeat. Cancelling a finished run changes nothing.
pub async fn cancel(
    Ax(state): Ax<State>,
    _: Writer,
    Path(id): Path<String>,
) -> Result<Json<RunJson>, ApiError> {
    let run = run_by_path(&state, &id).await?;
    if !run.state.is_final() {
        state.store.request_cancel(run.id, now_ms()).await?;
        state.logs.touch();
        scheduler::advance(&state, run.id).await?;
    }
    let run = state.store.run(run.id).await?;
    let mut jobs = state.store.jobs(run.id).await?;
    state.annotate_waiting(&mut jobs);
    Ok(Json(RunJson::with_jobs(&run, &jobs)))
}

/// `POST /api/runs/{id}/rerun` body.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Rerun {
    /// Only the jobs that did not succeed (reusing the artifacts of those that did).
    #[serde(default)]
    pub failed_only: bool,
}

/// `POST /api/runs/{id}/rerun`.
pub async fn rerun(
    Ax(state): Ax<State>,
    Writer(caller): Writer,
    Path(id): Path<String>,
    OptionalBody(body): OptionalBody<Rerun>,
) -> Result<(StatusCode, Json<RunJson>), ApiError> {
    let run = run_by_path(&state, &id).await?;
    let new = crate::runs::rerun(&state, &run, body.failed_only, caller.name()).await?;
    let mut jobs = state.store.jobs(new.id).await?;
    state.annotate_waiting(&mut jobs);
    Ok((StatusCode::CREATED, Json(RunJson::with_jobs(&new, &jobs))))
}

/// `POST /api/runs/{id}/jobs/{job}/approve`: a job waiting for approval is queued (see
/// [`crate::approvals`]); answers the run with its jobs. Approving an approved job again
/// changes nothing; a job that is not waiting is a 409.
pub async fn approve(
    Ax(state): Ax<State>,
    Writer(caller): Writer,
    Path((id, job)): Path<(String, String)>,
) -> Result<Json<RunJson>, ApiError> {
    answer(&state, &caller, &id, &job, true).await
}

/// `POST /api/runs/{id}/jobs/{job}/reject`: a job waiting for approval fails with
/// "rejected by NAME", and the run carries on by the DAG rules; otherwise as `approve`.
pub async fn reject(
    Ax(state): Ax<State>,
    Writer(caller): Writer,
    Path((id, job)): Path<(String, String)>,
) -> Result<Json<RunJson>, ApiError> {
    answer(&state, &caller, &id, &job, false).await
}

async fn answer(
    state: &State,
    caller: &crate::api::extract::Caller,
    id: &str,
    job: &str,
    approve: bool,
) -> Result<Json<RunJson>, ApiError> {
    let run = run_by_path(state, id).await?;
    let job = crate::api::logs::job_by_path(state, run.id, job).await?;
    crate::approvals::answer(state, run.id, &job, approve, caller.name()).await?;
    let run = state.store.run(run.id).await?;
    let jobs = state.store.jobs(run.id).await?;
    Ok(Json(RunJson::with_jobs(&run, &jobs)))
}
