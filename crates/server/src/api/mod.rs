//! The HTTP API: JSON over axum, `Authorization: Bearer` tokens, errors as
//! `{"error": "message"}`. Handlers stay thin; the work happens in [`crate::runs`],
//! [`crate::scheduler`] and the store. The OpenAPI document ([`openapi`]) describes
//! every route here and is checked against the committed `openapi.json` by a test.
//!
//! The agent protocol (`/api/agent/v1/…`, [`agent`], [`agent_artifacts`],
//! [`agent_caches`]) answers
//! refusals in its own shape, `{"error": CODE, "message": …}`, which the agent's client
//! maps back to a `LeaseError`; the admin routes for agents are in [`agent_tokens`].

pub mod agent;
pub mod agent_artifacts;
pub mod agent_caches;
pub mod agent_tokens;
pub mod artifacts;
pub mod caches;
pub mod error;
pub mod extract;
pub mod hooks;
pub mod json;
pub mod logs;
pub mod openapi;
pub mod repos;
pub mod runs;
pub mod users;

use axum::Json;
use axum::Router;
use axum::extract::{DefaultBodyLimit, Request, State as Ax};
use axum::http::{HeaderValue, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, post, put};

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
        .route(
            "/api/repos/{repo}/caches",
            get(caches::list).delete(caches::delete),
        )
        .route("/api/users", get(users::list).post(users::add))
        .route(
            "/api/users/{name}",
            get(users::get).patch(users::change).delete(users::remove),
        )
        .route("/api/runs", get(runs::list))
        .route("/api/runs/{id}", get(runs::get))
        .route("/api/runs/{id}/cancel", post(runs::cancel))
        .route("/api/runs/{id}/rerun", post(runs::rerun))
        .route("/api/runs/{id}/jobs/{job}/approve", post(runs::approve))
        .route("/api/runs/{id}/jobs/{job}/reject", post(runs::reject))
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
        .route(
            "/api/agent-tokens",
            get(agent_tokens::list).post(agent_tokens::create),
        )
        .route("/api/agent-tokens/{name}", delete(agent_tokens::revoke))
        .route("/api/agents", get(agent_tokens::agents))
        .route("/hooks/{repo}", post(hooks::receive))
        .route("/metrics", get(metrics))
        .layer(DefaultBodyLimit::max(limit))
        .layer(middleware::from_fn_with_state(state.clone(), length_limit))
        // After the layers above: the agent routes have limits of their own.
        .merge(agent_routes(&state))
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .with_state(state)
}

/// The agent protocol (`/api/agent/v1`, see [`agent`]). JSON calls may carry a log batch
/// up to `max_log_batch_bytes`; artifact uploads stream under their own limit
/// (`max_artifact_bytes`, checked by [`agent_artifacts`]).
fn agent_routes(state: &State) -> Router<State> {
    let json_limit = state
        .config
        .max_body_bytes
        .max(state.config.max_log_batch_bytes);
    let blobs = Router::new()
        .route(
            "/api/agent/v1/leases/{lease}/artifacts/{digest}",
            put(agent_artifacts::put).get(agent_artifacts::get),
        )
        .layer(DefaultBodyLimit::disable());
    Router::new()
        .route("/api/agent/v1/hello", post(agent::hello))
        .route("/api/agent/v1/lease", post(agent::lease))
        .route(
            "/api/agent/v1/leases/{lease}/heartbeat",
            post(agent::heartbeat),
        )
        .route("/api/agent/v1/leases/{lease}/logs", post(agent::logs))
        .route("/api/agent/v1/leases/{lease}/finish", post(agent::finish))
        .route(
            "/api/agent/v1/leases/{lease}/caches/{key}",
            get(agent_caches::get).put(agent_caches::put),
        )
        .layer(DefaultBodyLimit::max(json_limit))
        .merge(blobs)
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
