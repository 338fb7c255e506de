//! `/runs/{id}`: one run — its DAG as SVG, what started it, its parameters, its
//! artifacts, the jobs waiting for approval with Approve / Reject buttons, and the
//! cancel / rerun / rerun-failed buttons (CSRF-checked forms that go through the same
//! code as the API). `/ui/runs/{id}/status` gives the live parts the jobs' states as
//! JSON.

use askama::Template;
use axum::Json;
use axum::extract::{Path, State as Ax};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use gantry_engine::artifacts::Manifest;
use gantry_store::{Job, Run};

use crate::api::extract::{OptionalBody, Writer};
use crate::api::runs::{Rerun, run_by_path};
use crate::approvals::said;
use crate::state::{State, now_ms};
use crate::web::graph::{self, Graph, GraphJob};
use crate::web::session::Viewer;
use crate::web::urlencoded::{self, encode, encode_segment};
use crate::web::view::{self, Nav, Status};

/// A job in the list under the graph.
pub struct JobRow {
    key: String,
    name: String,
    href: String,
    status: Status,
    duration: String,
    message: Option<String>,
    approval: Option<String>,
}

/// A job waiting for approval.
pub struct Waiting {
    key: String,
    name: String,
    href: String,
    message: String,
}

/// An artifact file.
pub struct Artifact {
    job: String,
    path: String,
    size: String,
    href: String,
}

/// The run page.
#[derive(Template)]
#[template(path = "run.html")]
pub struct RunPage {
    nav: Nav,
    id: i64,
    repo: String,
    pipeline: String,
    pipeline_href: String,
    number: i64,
    status: Status,
    live: bool,
    cause: String,
    commit: String,
    git_ref: String,
    created: String,
    created_iso: String,
    started: String,
    duration: String,
    params: Vec<(String, String)>,
    error: Option<String>,
    rerun_of: Option<i64>,
    graph: Graph,
    jobs: Vec<JobRow>,
    waiting: Vec<Waiting>,
    artifacts: Vec<Artifact>,
    can_cancel: bool,
    can_rerun: bool,
    can_rerun_failed: bool,
}

fn size(bytes: u64) -> String {
    match bytes {
        b if b < 1024 => format!("{b} B"),
        b if b < 1024 * 1024 => format!("{:.1} KiB", b as f64 / 1024.0),
        b => format!("{:.1} MiB", b as f64 / (1024.0 * 1024.0)),
    }
}

fn job_href(run: i64, key: &str) -> String {
    format!("/runs/{run}/jobs/{}", encode_segment(key))
}

/// Builds the page of `run` with its `jobs`.
pub fn build(state: &State, viewer: &Viewer, run: &Run, jobs: &[Job]) -> RunPage {
    let now = now_ms();
    let plan = state.plan(run);
    let graph_jobs = jobs
        .iter()
        .map(|j| {
            let planned = plan.as_ref().and_then(|p| p.jobs.get(j.idx as usize));
            GraphJob {
                key: j.key.clone(),
                name: j.name.clone(),
                base: planned.map_or_else(|| j.name.clone(), |p| p.base.clone()),
                matrix: planned.is_some_and(|p| !p.matrix.is_empty()),
                needs: j
                    .needs
                    .iter()
                    .filter_map(|n| jobs.iter().position(|o| o.idx == *n))
                    .collect(),
                status: view::status(j.state.as_str()),
                href: job_href(run.id, &j.key),
                duration: view::span(j.started_at, j.finished_at, now),
            }
        })
        .collect();
    let mut artifacts = Vec::new();
    for j in jobs {
        let Some(m) = j
            .manifest_json
            .as_deref()
            .and_then(|t| serde_json::from_str::<Manifest>(t).ok())
        else {
            continue;
        };
        for (path, e) in m.files {
            artifacts.push(Artifact {
                href: format!(
                    "/api/runs/{}/artifacts/{}/{}",
                    run.id,
                    encode_segment(&j.key),
                    encode(&path)
                ),
                job: j.key.clone(),
                path,
                size: size(e.size),
            });
        }
    }
    let admin = viewer.is_admin();
    let final_ = run.state.is_final();
    RunPage {
        nav: Nav::new(viewer),
        id: run.id,
        repo: run.repo.clone(),
        pipeline: run.pipeline.clone(),
        pipeline_href: format!(
            "/repos/{}/pipelines/{}",
            encode_segment(&run.repo),
            encode_segment(&run.pipeline)
        ),
        number: run.number,
        status: view::status(view::run_state(run, jobs)),
        live: !final_,
        cause: run.cause.clone(),
        commit: run.commit.clone(),
        git_ref: view::short_ref(&run.git_ref).to_string(),
        created: view::time(run.created_at),
        created_iso: view::iso(run.created_at),
        started: run.started_at.map(view::time).unwrap_or_default(),
        duration: view::span(run.started_at, run.finished_at, now),
        params: run
            .params
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect(),
        error: run.error.clone(),
        rerun_of: run.rerun_of,
        graph: graph::layout(graph_jobs),
        jobs: jobs
            .iter()
            .map(|j| JobRow {
                key: j.key.clone(),
                name: j.name.clone(),
                href: job_href(run.id, &j.key),
                status: view::status(j.state.as_str()),
                duration: view::span(j.started_at, j.finished_at, now),
                // The message says who answered until the job's outcome replaces it;
                // the approval note says it with the time.
                message: j
                    .message
                    .clone()
                    .filter(|m| j.approval.as_ref().is_none_or(|a| *m != said(a))),
                approval: j
                    .approval
                    .as_ref()
                    .map(|a| format!("{} at {}", said(a), view::time(a.at))),
            })
            .collect(),
        waiting: jobs
            .iter()
            .filter(|j| j.state == gantry_store::JobState::Waiting)
            .map(|j| Waiting {
                key: j.key.clone(),
                name: j.name.clone(),
                href: job_href(run.id, &j.key),
                message: j
                    .message
                    .clone()
                    .unwrap_or_else(|| "waiting for approval".into()),
            })
            .collect(),
        artifacts,
        can_cancel: admin && !final_,
        can_rerun: admin && final_ && run.plan_json.is_some(),
        can_rerun_failed: admin
            && final_
            && run.plan_json.is_some()
            && jobs.iter().any(|j| {
                matches!(
                    j.state,
                    gantry_store::JobState::Failed
                        | gantry_store::JobState::Errored
                        | gantry_store::JobState::Cancelled
                )
            }),
    }
}

/// `GET /runs/{id}`.
pub async fn page(Ax(state): Ax<State>, viewer: Viewer, Path(id): Path<String>) -> Response {
    let run = match run_by_path(&state, &id).await {
        Ok(r) => r,
        Err(e) => return view::api_error(&viewer, e),
    };
    match state.store.jobs(run.id).await {
        Ok(mut jobs) => {
            state.annotate_waiting(&mut jobs);
            view::html(&build(&state, &viewer, &run, &jobs))
        }
        Err(e) => view::api_error(&viewer, e.into()),
    }
}

/// `GET /ui/runs/{id}/status`: the run's and its jobs' states, for live updates.
pub async fn status(Ax(state): Ax<State>, viewer: Viewer, Path(id): Path<String>) -> Response {
    let run = match run_by_path(&state, &id).await {
        Ok(r) => r,
        Err(e) => return e.into_response(),
    };
    let jobs = match state.store.jobs(run.id).await {
        Ok(j) => j,
        Err(e) => return view::api_error(&viewer, e.into()),
    };
    let now = now_ms();
    let st = view::status(view::run_state(&run, &jobs));
    Json(serde_json::json!({
        "id": run.id,
        "state": st.state,
        "html": st.to_string(),
        "final": run.state.is_final(),
        "duration": view::span(run.started_at, run.finished_at, now),
        "jobs": jobs.iter().map(|j| {
            let s = view::status(j.state.as_str());
            serde_json::json!({
                "key": j.key,
                "state": s.state,
                "html": s.to_string(),
                "duration": view::span(j.started_at, j.finished_at, now),
            })
        }).collect::<Vec<_>>(),
    }))
    .into_response()
}

/// Checks an action form: an admin session with the right CSRF token.
fn authorize(viewer: &Viewer, body: &[u8]) -> Result<Writer, Box<Response>> {
    let fields = urlencoded::parse(body);
    if !viewer.csrf_ok(urlencoded::last(&fields, "csrf")) {
        return Err(Box::new(view::error(
            viewer,
            StatusCode::FORBIDDEN,
            "This form expired or came from another site (CSRF check failed). Reload the page and try again.",
        )));
    }
    if !viewer.is_admin() {
        return Err(Box::new(view::error(
            viewer,
            StatusCode::FORBIDDEN,
            "Only an admin may do this.",
        )));
    }
    Ok(Writer(viewer.caller()))
}

/// `POST /runs/{id}/cancel`.
pub async fn cancel(
    Ax(state): Ax<State>,
    viewer: Viewer,
    Path(id): Path<String>,
    body: axum::body::Bytes,
) -> Response {
    let writer = match authorize(&viewer, &body) {
        Ok(w) => w,
        Err(r) => return *r,
    };
    match crate::api::runs::cancel(Ax(state), writer, Path(id)).await {
        Ok(Json(run)) => Redirect::to(&format!("/runs/{}", run.id)).into_response(),
        Err(e) => view::api_error(&viewer, e),
    }
}

async fn rerun_with(
    state: State,
    viewer: Viewer,
    id: String,
    body: &[u8],
    failed_only: bool,
) -> Response {
    let writer = match authorize(&viewer, body) {
        Ok(w) => w,
        Err(r) => return *r,
    };
    match crate::api::runs::rerun(
        Ax(state),
        writer,
        Path(id),
        OptionalBody(Rerun { failed_only }),
    )
    .await
    {
        Ok((_, Json(run))) => Redirect::to(&format!("/runs/{}", run.id)).into_response(),
        Err(e) => view::api_error(&viewer, e),
    }
}

/// `POST /runs/{id}/rerun`.
pub async fn rerun(
    Ax(state): Ax<State>,
    viewer: Viewer,
    Path(id): Path<String>,
    body: axum::body::Bytes,
) -> Response {
    rerun_with(state, viewer, id, &body, false).await
}

/// `POST /runs/{id}/rerun-failed`.
pub async fn rerun_failed(
    Ax(state): Ax<State>,
    viewer: Viewer,
    Path(id): Path<String>,
    body: axum::body::Bytes,
) -> Response {
    rerun_with(state, viewer, id, &body, true).await
}

async fn answer(
    state: State,
    viewer: Viewer,
    id: String,
    job: String,
    body: &[u8],
    approve: bool,
) -> Response {
    let Writer(caller) = match authorize(&viewer, body) {
        Ok(w) => w,
        Err(r) => return *r,
    };
    let found = async {
        let run = run_by_path(&state, &id).await?;
        let job = crate::api::logs::job_by_path(&state, run.id, &job).await?;
        Ok::<_, crate::api::ApiError>((run, job))
    };
    let (run, job) = match found.await {
        Ok(found) => found,
        Err(e) => return view::api_error(&viewer, e),
    };
    match crate::approvals::answer(&state, run.id, &job, approve, caller.name()).await {
        Ok(_) => Redirect::to(&format!("/runs/{}", run.id)).into_response(),
        Err(e) => view::api_error(&viewer, e.into()),
    }
}

/// `POST /runs/{id}/jobs/{job}/approve` (see [`crate::approvals`]).
pub async fn approve(
    Ax(state): Ax<State>,
    viewer: Viewer,
    Path((id, job)): Path<(String, String)>,
    body: axum::body::Bytes,
) -> Response {
    answer(state, viewer, id, job, &body, true).await
}

/// `POST /runs/{id}/jobs/{job}/reject` (see [`crate::approvals`]).
pub async fn reject(
    Ax(state): Ax<State>,
    viewer: Viewer,
    Path((id, job)): Path<(String, String)>,
    body: axum::body::Bytes,
) -> Response {
    answer(state, viewer, id, job, &body, false).await
}
