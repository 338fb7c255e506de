//! Pipeline caches over the agent protocol (see [`crate::caches`]):
//!
//! - `GET /api/agent/v1/leases/{lease}/caches/{key}`: `200` with the entry's artifact
//!   manifest (its blobs are then fetched like artifacts), `204` when the lease's
//!   repository has no entry under the key.
//! - `PUT /api/agent/v1/leases/{lease}/caches/{key}` with the manifest as JSON, after its
//!   blobs were uploaded: `201` once saved, `200` when an entry was already there and is
//!   kept (the first writer wins).
//!
//! The key is one percent-encoded path segment. Refusals are those of every lease call
//! (`stale`, `unauthorized`), plus `invalid` (bad key, unsafe path, blob not uploaded)
//! and `too_large` (an entry over the server's cache size).

use axum::Json;
use axum::extract::{FromRequestParts, Path, State as Ax};
use axum::http::StatusCode;
use axum::http::request::Parts;
use axum::response::{IntoResponse, Response};
use gantry_engine::artifacts::Manifest;
use gantry_protocol::{JobSource, LeaseId};

use crate::api::agent::{AgentCaller, AgentError, AgentJson, held, path_rejection};
use crate::executor::ServerJobSource;
use crate::state::State;

/// The `{lease}` and `{key}` of a cache route.
#[derive(Debug)]
pub struct CachePath {
    /// The lease.
    pub lease: LeaseId,
    /// The cache key, percent-decoded.
    pub key: String,
}

impl FromRequestParts<State> for CachePath {
    type Rejection = AgentError;

    async fn from_request_parts(parts: &mut Parts, state: &State) -> Result<Self, AgentError> {
        let Path((lease, key)) = Path::<(String, String)>::from_request_parts(parts, state)
            .await
            .map_err(path_rejection)?;
        Ok(CachePath {
            lease: LeaseId(lease),
            key,
        })
    }
}

/// `GET …/caches/{key}`: the entry's manifest, or `204`.
pub async fn get(
    Ax(state): Ax<State>,
    AgentCaller(token): AgentCaller,
    path: CachePath,
) -> Result<Response, AgentError> {
    held(&state, &token, &path.lease).await?;
    let found = ServerJobSource::new(state.clone())
        .get_cache(&path.lease, &path.key)
        .await?;
    Ok(match found {
        Some(manifest) => Json(manifest).into_response(),
        None => StatusCode::NO_CONTENT.into_response(),
    })
}

/// `PUT …/caches/{key}`: saves the manifest (its blobs uploaded before); `201` saved,
/// `200` kept the entry that was there.
pub async fn put(
    Ax(state): Ax<State>,
    AgentCaller(token): AgentCaller,
    path: CachePath,
    AgentJson(manifest): AgentJson<Manifest>,
) -> Result<StatusCode, AgentError> {
    held(&state, &token, &path.lease).await?;
    let saved = ServerJobSource::new(state.clone())
        .put_cache(&path.lease, &path.key, manifest)
        .await?;
    Ok(if saved {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    })
}
