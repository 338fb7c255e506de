//! The HTTP API: JSON over axum, `Authorization: Bearer` tokens, errors as
//! `{"error": "message"}`. Handlers stay thin; the work happens in [`crate::runs`],
//! [`crate::scheduler`] and the store. The OpenAPI document ([`openapi`]) describes
//! every route here and is checked against the committed `openapi.json` by a test.

pub mod artifacts;
pub mod error;
pub mod extract;
pub mod hooks;
pub mod json;
pub mod logs;
pub mod openapi;
pub mod repos;
pub mod runs;

use axum::Json;
use axum::Router;
use axum::extract::{DefaultBodyLimit, Request, State as Ax};
use axum::http::{HeaderValue, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};

pub use error::ApiError;

use crate::api::extract::Reader;
use crate::state::State;

/// The whole HTTP surface of the server.
pub fn router(state: State) -> Router {
    let limit = state.config.max_body_bytes;
    Router::new()
        .merge(crate::web::routes())
        .route("/api/health", get(health))
        .route("/api/openapi.json", get(openapi_json))
        .route("/api/repos", get(repos::list).post(repos::add))
        .route("/api/repos/{repo}", get(repos::get))
        .route(
            "/api/repos/{repo}/pipelines/{pipeline}/params",
            get(repos::params),
        )
        .route("/api/repos/{repo}/trigger", post(repos::trigger))
        .route("/api/runs", get(runs::list))
        .route("/api/runs/{id}", get(runs::get))
        .route("/api/runs/{id}/cancel", post(runs::cancel))
        .route("/api/runs/{id}/rerun", post(runs::rerun))
        .route("/api/runs/{id}/log", get(logs::run_log))
        .route("/api/runs/{id}/jobs/{job}/log", get(logs::job_log))
        .route(
            "/api/runs/{id}/jobs/{job}/log/stream",
            get(logs::stream_log),
        )
        .route("/api/runs/{id}/artifacts", get(artifacts::list))
        .route(
            "/api/runs/{id}/artifacts/{job}/{*path}",
            get(artifacts::download),
        )
        .route("/hooks/{repo}", post(hooks::receive))
        .route("/metrics", get(metrics))
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(DefaultBodyLimit::max(limit))
        .layer(middleware::from_fn_with_state(state.clone(), length_limit))
        .with_state(state)
}

/// Refuses a body whose declared length is over the limit before reading any of it.
async fn length_limit(Ax(state): Ax<State>, req: Request, next: Next) -> Response {
    let declared = req
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > state.config.max_body_bytes as u64) {
        return ApiError::TooLarge(format!(
            "request body is larger than the limit of {} bytes",
            state.config.max_body_bytes
        ))
        .into_response();
    }
    next.run(req).await
}

async fn not_found(req: Request) -> ApiError {
    ApiError::NotFound(format!("no such route: {}", req.uri().path()))
}

async fn method_not_allowed(req: Request) -> Response {
    let mut r = ApiError::BadRequest(format!(
        "method {} is not allowed on {}",
        req.method(),
        req.uri().path()
    ))
    .into_response();
    *r.status_mut() = axum::http::StatusCode::METHOD_NOT_ALLOWED;
    r
}

/// `GET /api/health` (no auth).
async fn health() -> Json<serde_json::Value> {
    Json(serde_json::json!({ "ok": true, "version": env!("CARGO_PKG_VERSION") }))
}

/// `GET /api/openapi.json` (no auth: it describes the API, not its data).
async fn openapi_json() -> Json<serde_json::Value> {
    Json(openapi::document())
}

/// `GET /metrics`.
async fn metrics(Ax(state): Ax<State>, _: Reader) -> Result<Response, ApiError> {
    let stats = state.store.queue_stats().await?;
    let text = crate::metrics::render(&stats, &state.durations, &[]);
    let mut r = text.into_response();
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static(crate::metrics::CONTENT_TYPE),
    );
    Ok(r)
}
