//! `/`: every repository and pipeline with its last run and a strip of recent outcomes.

use askama::Template;
use axum::extract::State as Ax;
use axum::response::Response;
use gantry_store::{RunFilter, StoreError};

use crate::state::{State, now_ms};
use crate::web::session::Viewer;
use crate::web::urlencoded::encode_segment;
use crate::web::view::{self, Nav, Status};

/// How many recent runs the history strip shows.
const HISTORY: u32 = 15;

/// One pipeline's row.
pub struct PipelineRow {
    repo: String,
    name: String,
    href: String,
    last: Option<LastRun>,
    history: Vec<HistoryItem>,
}

/// The newest run of a pipeline.
pub struct LastRun {
    href: String,
    number: i64,
    status: Status,
    duration: String,
    git_ref: String,
    time: String,
    iso: String,
}

/// One earlier outcome.
pub struct HistoryItem {
    href: String,
    number: i64,
    status: Status,
}

/// A repository with its pipelines.
pub struct RepoBlock {
    name: String,
    url: String,
    error: Option<String>,
    pipelines: Vec<PipelineRow>,
}

/// The dashboard.
#[derive(Template)]
#[template(path = "dashboard.html")]
pub struct Dashboard {
    nav: Nav,
    repos: Vec<RepoBlock>,
}

/// `GET /`.
pub async fn page(Ax(state): Ax<State>, viewer: Viewer) -> Response {
    match build(&state).await {
        Ok(repos) => view::html(&Dashboard {
            nav: Nav::new(&viewer),
            repos,
        }),
        Err(e) => view::api_error(&viewer, e.into()),
    }
}

async fn build(state: &State) -> Result<Vec<RepoBlock>, StoreError> {
    let now = now_ms();
    let repos = state.store.list_repos().await?;
    let pipelines = state.store.list_pipelines(None).await?;
    let mut out = Vec::new();
    for repo in repos {
        let mut rows = Vec::new();
        for p in pipelines.iter().filter(|p| p.repo_id == repo.id) {
            let runs = state
                .store
                .list_runs(&RunFilter {
                    repo: Some(repo.name.clone()),
                    pipeline: Some(p.name.clone()),
                    limit: HISTORY,
                    ..Default::default()
                })
                .await?;
            // Only runs still going can be waiting for approval: only their jobs are read.
            let mut shown = Vec::with_capacity(runs.len());
            for r in &runs {
                let word = if r.state.is_final() {
                    r.state.as_str()
                } else {
                    view::run_state(r, &state.store.jobs(r.id).await?)
                };
                shown.push(view::status(word));
            }
            let last = runs.first().zip(shown.first()).map(|(r, status)| LastRun {
                href: format!("/runs/{}", r.id),
                number: r.number,
                status: status.clone(),
                duration: view::span(r.started_at, r.finished_at, now),
                git_ref: view::short_ref(&r.git_ref).to_string(),
                time: view::time(r.created_at),
                iso: view::iso(r.created_at),
            });
            rows.push(PipelineRow {
                href: format!(
                    "/repos/{}/pipelines/{}",
                    encode_segment(&repo.name),
                    encode_segment(&p.name)
                ),
                repo: repo.name.clone(),
                name: p.name.clone(),
                last,
                history: runs
                    .iter()
                    .zip(shown)
                    .map(|(r, status)| HistoryItem {
                        href: format!("/runs/{}", r.id),
                        number: r.number,
                        status,
                    })
                    .collect(),
            });
        }
        out.push(RepoBlock {
            name: repo.name,
            url: repo.url,
            error: repo.last_error,
            pipelines: rows,
        });
    }
    Ok(out)
}
