//! Logs over HTTP: the whole log or a byte range, and live following over Server-Sent
//! Events.
//!
//! `GET …/log` answers the text people read (the stored time and stream fields
//! stripped); `?format=stored` answers the stored lines as they are. Both honour
//! `Range: bytes=…` over the bytes they answer with. `GET …/log/stream` sends each
//! stored line as an event `line` whose id is the byte offset just after it in the
//! stored file, so a client that reconnects with `Last-Event-ID` (or `?from=`) misses
//! nothing and sees nothing twice; the event `end` (data: the job's state) closes the
//! stream once the job is final and everything was sent.

use std::convert::Infallible;
use std::time::Duration;

use axum::extract::{Path, Query, State as Ax};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use futures_util::stream::{self, Stream};
use gantry_store::Job;
use serde::Deserialize;

use crate::api::error::ApiError;
use crate::api::extract::Reader;
use crate::api::runs::run_by_path;
use crate::logs::{RUN_LOG, strip_fields};
use crate::state::State;

/// Query of the log routes.
#[derive(Debug, Default, Deserialize)]
pub struct LogQuery {
    /// `text` (default) or `stored`.
    pub format: Option<String>,
    /// SSE: start after this byte offset (like `Last-Event-ID`).
    pub from: Option<u64>,
}

/// The job named in a URL: its plan index, its key, or its display name
/// (`build (GO=1.18)`). Names that look like paths are refused outright.
pub(crate) async fn job_by_path(state: &State, run_id: i64, job: &str) -> Result<Job, ApiError> {
    if job.contains('/') || job.contains('\\') || job.contains("..") || job.contains('\0') {
        return Err(ApiError::BadRequest(format!("invalid job name {job:?}")));
    }
    let jobs = state.store.jobs(run_id).await?;
    let found = match job.parse::<i64>() {
        Ok(i) => jobs.into_iter().find(|j| j.idx == i),
        Err(_) => {
            let by_key = jobs.iter().position(|j| j.key == job);
            let at = by_key.or_else(|| jobs.iter().position(|j| j.name == job));
            at.map(|i| jobs[i].clone())
        }
    };
    found.ok_or_else(|| ApiError::NotFound(format!("run {run_id} has no job {job:?}")))
}

/// `GET /api/runs/{id}/jobs/{job}/log`.
pub async fn job_log(
    Ax(state): Ax<State>,
    _: Reader,
    Path((id, job)): Path<(String, String)>,
    Query(q): Query<LogQuery>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let run = run_by_path(&state, &id).await?;
    let job = job_by_path(&state, run.id, &job).await?;
    serve(&state, run.id, &job.key, &q, &headers).await
}

/// `GET /api/runs/{id}/log`: the run-level log (why a run could not be planned).
pub async fn run_log(
    Ax(state): Ax<State>,
    _: Reader,
    Path(id): Path<String>,
    Query(q): Query<LogQuery>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let run = run_by_path(&state, &id).await?;
    serve(&state, run.id, RUN_LOG, &q, &headers).await
}

async fn serve(
    state: &State,
    run_id: i64,
    key: &str,
    q: &LogQuery,
    headers: &HeaderMap,
) -> Result<Response, ApiError> {
    let stored = state
        .logs
        .read_from(run_id, key, 0)
        .await
        .map_err(ApiError::internal)?;
    let body = match q.format.as_deref() {
        None | Some("text") => strip_fields(&stored),
        Some("stored") => stored,
        Some(f) => {
            return Err(ApiError::BadRequest(format!(
                "unknown log format {f:?}: expected text or stored"
            )));
        }
    };
    let total = body.len() as u64;
    let range = match headers.get(header::RANGE) {
        Some(v) => Some(parse_range(v.to_str().unwrap_or(""), total)?),
        None => None,
    };
    let mut resp = match range {
        Some((start, end)) => {
            let mut r = (
                StatusCode::PARTIAL_CONTENT,
                body[start as usize..=end as usize].to_vec(),
            )
                .into_response();
            r.headers_mut().insert(
                header::CONTENT_RANGE,
                HeaderValue::from_str(&format!("bytes {start}-{end}/{total}"))
                    .map_err(ApiError::internal)?,
            );
            r
        }
        None => (StatusCode::OK, body).into_response(),
    };
    let h = resp.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    h.insert(header::ACCEPT_RANGES, HeaderValue::from_static("bytes"));
    Ok(resp)
}

/// `bytes=A-B`, `bytes=A-`, `bytes=-N` → inclusive `(start, end)` within `total`.
pub fn parse_range(value: &str, total: u64) -> Result<(u64, u64), ApiError> {
    let unsatisfiable = || {
        ApiError::RangeNotSatisfiable(format!(
            "range {value:?} is outside the log ({total} bytes)"
        ))
    };
    let bad = || {
        ApiError::BadRequest(format!(
            "invalid Range header {value:?}: expected bytes=START-END"
        ))
    };
    let spec = value.trim().strip_prefix("bytes=").ok_or_else(bad)?;
    if spec.contains(',') {
        return Err(ApiError::BadRequest(
            "multiple byte ranges are not supported".into(),
        ));
    }
    let (a, b) = spec.split_once('-').ok_or_else(bad)?;
    let (a, b) = (a.trim(), b.trim());
    let (start, end) = match (a.is_empty(), b.is_empty()) {
        (true, true) => return Err(bad()),
        (true, false) => {
            let n: u64 = b.parse().map_err(|_| bad())?;
            if n == 0 || total == 0 {
                return Err(unsatisfiable());
            }
            (total.saturating_sub(n), total - 1)
        }
        (false, _) => {
            let start: u64 = a.parse().map_err(|_| bad())?;
            let end: u64 = if b.is_empty() {
                u64::MAX
            } else {
                b.parse().map_err(|_| bad())?
            };
            if end < start {
                return Err(bad());
            }
            if start >= total {
                return Err(unsatisfiable());
            }
            (start, end.min(total - 1))
        }
    };
    if start >= total {
        return Err(unsatisfiable());
    }
    Ok((start, end))
}

/// `GET /api/runs/{id}/jobs/{job}/log/stream`.
pub async fn stream_log(
    Ax(state): Ax<State>,
    _: Reader,
    Path((id, job)): Path<(String, String)>,
    Query(q): Query<LogQuery>,
    headers: HeaderMap,
) -> Result<Sse<impl Stream<Item = Result<Event, Infallible>>>, ApiError> {
    let run = run_by_path(&state, &id).await?;
    let job = job_by_path(&state, run.id, &job).await?;
    let resume = headers
        .get("last-event-id")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok());
    let from = resume.or(q.from).unwrap_or(0);
    Ok(Sse::new(follow(state, run.id, job.idx, job.key, from)).keep_alive(KeepAlive::default()))
}

struct Follow {
    state: State,
    run_id: i64,
    idx: i64,
    key: String,
    offset: u64,
    pending: std::collections::VecDeque<Event>,
    rx: tokio::sync::watch::Receiver<u64>,
    done: bool,
}

fn follow(
    state: State,
    run_id: i64,
    idx: i64,
    key: String,
    from: u64,
) -> impl Stream<Item = Result<Event, Infallible>> {
    let rx = state.logs.subscribe();
    let f = Follow {
        state,
        run_id,
        idx,
        key,
        offset: from,
        pending: Default::default(),
        rx,
        done: false,
    };
    stream::unfold(f, |mut f| async move {
        loop {
            if let Some(ev) = f.pending.pop_front() {
                return Some((Ok(ev), f));
            }
            if f.done {
                return None;
            }
            // Look at the job's state before reading, so that lines written before it
            // became final are all read before `end` is sent.
            let final_state = match f.state.store.jobs(f.run_id).await {
                Ok(jobs) => jobs
                    .iter()
                    .find(|j| j.idx == f.idx)
                    .filter(|j| j.state.is_final())
                    .map(|j| j.state.as_str()),
                Err(_) => None,
            };
            f.rx.borrow_and_update();
            let bytes = f
                .state
                .logs
                .read_from(f.run_id, &f.key, f.offset)
                .await
                .unwrap_or_default();
            let complete = bytes.iter().rposition(|b| *b == b'\n').map_or(0, |i| i + 1);
            for line in bytes[..complete].split_inclusive(|b| *b == b'\n') {
                f.offset += line.len() as u64;
                let text = String::from_utf8_lossy(&line[..line.len() - 1]).into_owned();
                f.pending.push_back(
                    Event::default()
                        .event("line")
                        .id(f.offset.to_string())
                        .data(text),
                );
            }
            if !f.pending.is_empty() {
                continue;
            }
            if let Some(word) = final_state {
                f.pending
                    .push_back(Event::default().event("end").data(word));
                f.done = true;
                continue;
            }
            // Wait for the log to grow or a job to change; re-check now and then in
            // case a change came from another process sharing the database.
            let _ = tokio::time::timeout(Duration::from_secs(5), f.rx.changed()).await;
        }
    })
}
