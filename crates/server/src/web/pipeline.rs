//! `/repos/{repo}/pipelines/{pipeline}`: the build-pipeline view. One row per run, one
//! column per job in DAG order, each cell the job's status and duration, so a row shows
//! how far that commit got. Runs that are still going update live (`live.js` polls
//! `/ui/runs/{id}/status`), and the first page reloads when a new run appears.

use askama::Template;
use axum::Json;
use axum::extract::{Path, Query, State as Ax};
use axum::response::{IntoResponse, Response};
use gantry_store::{Job, Run, RunFilter, Store, StoreError};
use serde::Deserialize;

use crate::state::{State, now_ms};
use crate::web::session::Viewer;
use crate::web::urlencoded::encode_segment;
use crate::web::view::{self, Nav, Status};

/// Runs per page.
pub const PAGE: u32 = 50;

/// A job column.
#[derive(Debug, Clone)]
pub struct Column {
    /// Job key.
    pub key: String,
    /// Display name.
    pub name: String,
}

/// One job's cell in a row.
#[derive(Debug)]
pub struct Cell {
    /// Job key.
    pub key: String,
    /// Status.
    pub status: Status,
    /// Duration text.
    pub duration: String,
    /// Link to the job's log.
    pub href: String,
}

/// One run's row.
#[derive(Debug)]
pub struct Row {
    /// Run id.
    pub id: i64,
    /// Number within the pipeline.
    pub number: i64,
    /// Run status.
    pub status: Status,
    /// Still changing.
    pub live: bool,
    /// Short commit id.
    pub commit: String,
    /// Full commit id.
    pub commit_full: String,
    /// Short ref.
    pub git_ref: String,
    /// Cause in words.
    pub cause: String,
    /// Created, readable.
    pub time: String,
    /// Created, RFC 3339.
    pub iso: String,
    /// Run duration.
    pub duration: String,
    /// One entry per column: `None` when this run has no such job.
    pub cells: Vec<Option<Cell>>,
}

/// The page.
#[derive(Template)]
#[template(path = "pipeline.html")]
pub struct PipelinePage {
    nav: Nav,
    repo: String,
    pipeline: String,
    form_href: String,
    base_href: String,
    columns: Vec<Column>,
    rows: Vec<Row>,
    older: Option<String>,
    paged: bool,
    latest: i64,
}

/// Query of the page.
#[derive(Debug, Deserialize)]
pub struct PageQuery {
    /// Runs with an id below this.
    pub before: Option<i64>,
}

/// The columns (job keys in DAG order, newest run's order first, jobs only older runs
/// had appended) and rows of `runs` (newest first, each with its jobs).
pub fn table(runs: &[(Run, Vec<Job>)], now: i64) -> (Vec<Column>, Vec<Row>) {
    let mut columns: Vec<Column> = Vec::new();
    let mut index = std::collections::HashMap::new();
    for (_, jobs) in runs {
        for j in jobs {
            if !index.contains_key(j.key.as_str()) {
                index.insert(j.key.clone(), columns.len());
                columns.push(Column {
                    key: j.key.clone(),
                    name: j.name.clone(),
                });
            }
        }
    }
    let rows = runs
        .iter()
        .map(|(r, jobs)| {
            let mut cells: Vec<Option<Cell>> = (0..columns.len()).map(|_| None).collect();
            for j in jobs {
                if let Some(&at) = index.get(j.key.as_str()) {
                    cells[at] = Some(Cell {
                        key: j.key.clone(),
                        status: view::status(j.state.as_str()),
                        duration: view::span(j.started_at, j.finished_at, now),
                        href: format!("/runs/{}/jobs/{}", r.id, encode_segment(&j.key)),
                    });
                }
            }
            Row {
                id: r.id,
                number: r.number,
                status: view::status(view::run_state(r, jobs)),
                live: !r.state.is_final(),
                commit: view::short_commit(&r.commit).to_string(),
                commit_full: r.commit.clone(),
                git_ref: view::short_ref(&r.git_ref).to_string(),
                cause: r.cause.clone(),
                time: view::time(r.created_at),
                iso: view::iso(r.created_at),
                duration: view::span(r.started_at, r.finished_at, now),
                cells,
            }
        })
        .collect();
    (columns, rows)
}

/// The page for `runs` (already loaded), as HTML.
pub fn render(
    nav: Nav,
    repo: &str,
    pipeline: &str,
    runs: &[(Run, Vec<Job>)],
    paged: bool,
    now: i64,
) -> Result<String, askama::Error> {
    page_of(nav, repo, pipeline, runs, paged, now).render()
}

fn page_of(
    nav: Nav,
    repo: &str,
    pipeline: &str,
    runs: &[(Run, Vec<Job>)],
    paged: bool,
    now: i64,
) -> PipelinePage {
    let (columns, rows) = table(runs, now);
    let base_href = format!(
        "/repos/{}/pipelines/{}",
        encode_segment(repo),
        encode_segment(pipeline)
    );
    let older = (runs.len() == PAGE as usize)
        .then(|| {
            runs.last()
                .map(|(r, _)| format!("{base_href}?before={}", r.id))
        })
        .flatten();
    PipelinePage {
        nav,
        repo: repo.to_string(),
        pipeline: pipeline.to_string(),
        form_href: format!("{base_href}/run"),
        latest: runs.first().map_or(0, |(r, _)| r.id),
        base_href,
        columns,
        rows,
        older,
        paged,
    }
}

/// The newest `limit` runs of a pipeline (with an id below `before`), each with its
/// jobs, newest first: what the page shows.
pub async fn load(
    store: &dyn Store,
    repo: &str,
    pipeline: &str,
    before: Option<i64>,
    limit: usize,
) -> Result<Vec<(Run, Vec<Job>)>, StoreError> {
    let mut out = Vec::with_capacity(limit);
    let mut before = before;
    // In pages: the store answers at most 500 runs at a time.
    while out.len() < limit {
        let runs = store
            .list_runs(&RunFilter {
                repo: Some(repo.to_string()),
                pipeline: Some(pipeline.to_string()),
                before,
                limit: (limit - out.len()).min(500) as u32,
                ..Default::default()
            })
            .await?;
        let Some(last) = runs.last() else { break };
        before = Some(last.id);
        let full = runs.len() == 500;
        for r in runs {
            let jobs = store.jobs(r.id).await?;
            out.push((r, jobs));
        }
        if !full {
            break;
        }
    }
    Ok(out)
}

/// `GET /repos/{repo}/pipelines/{pipeline}`.
pub async fn page(
    Ax(state): Ax<State>,
    viewer: Viewer,
    Path((repo, pipeline)): Path<(String, String)>,
    Query(q): Query<PageQuery>,
) -> Response {
    let known = async {
        let r = state.store.repo_by_name(&repo).await?;
        let ps = state.store.list_pipelines(Some(r.id)).await?;
        Ok::<bool, StoreError>(ps.iter().any(|p| p.name == pipeline))
    };
    match known.await {
        Ok(true) => {}
        Ok(false) | Err(StoreError::NotFound(_)) => {
            return view::error(
                &viewer,
                axum::http::StatusCode::NOT_FOUND,
                format!("repository {repo:?} has no pipeline {pipeline:?} (yet)"),
            );
        }
        Err(e) => return view::api_error(&viewer, e.into()),
    }
    match load(
        state.store.as_ref(),
        &repo,
        &pipeline,
        q.before,
        PAGE as usize,
    )
    .await
    {
        Ok(runs) => view::html(&page_of(
            Nav::new(&viewer),
            &repo,
            &pipeline,
            &runs,
            q.before.is_some(),
            now_ms(),
        )),
        Err(e) => view::api_error(&viewer, e.into()),
    }
}

/// `GET /ui/repos/{repo}/pipelines/{pipeline}/latest`: `{"latest": id}` of the newest
/// run (`null` without runs), so the first page can reload when a run appears.
pub async fn latest(
    Ax(state): Ax<State>,
    viewer: Viewer,
    Path((repo, pipeline)): Path<(String, String)>,
) -> Response {
    match load(state.store.as_ref(), &repo, &pipeline, None, 1).await {
        Ok(runs) => {
            Json(serde_json::json!({ "latest": runs.first().map(|(r, _)| r.id) })).into_response()
        }
        Err(e) => view::api_error(&viewer, e.into()),
    }
}
