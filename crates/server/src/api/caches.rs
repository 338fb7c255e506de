//! `/api/repos/{repo}/caches`: the pipeline caches the server keeps for a repository
//! (see [`crate::caches`]) — listed for anyone who may read, deleted by an admin (all of
//! the repository's, or the one under `?key=`). Deleting an entry deletes its blobs that
//! no artifact or other entry names.

use axum::Json;
use axum::extract::{Path, Query, State as Ax};
use serde::{Deserialize, Serialize};

use crate::api::error::ApiError;
use crate::api::extract::{Reader, Writer};
use crate::api::json::rfc3339;
use crate::state::State;

/// One cache entry.
#[derive(Debug, Serialize)]
pub struct CacheJson {
    /// The resolved key.
    pub key: String,
    /// How many files.
    pub files: i64,
    /// Their total size, in bytes.
    pub size: i64,
    /// When it was saved.
    pub created_at: String,
    /// When a job last restored it (or when it was saved).
    pub last_used_at: String,
    /// The run whose job saved it.
    pub run_id: Option<i64>,
}

/// `GET /api/repos/{repo}/caches`.
#[derive(Debug, Serialize)]
pub struct CachesJson {
    /// The repository.
    pub repo: String,
    /// Its entries, most recently used first.
    pub caches: Vec<CacheJson>,
    /// Their total size, in bytes.
    pub size: i64,
    /// What the server keeps for the caches of all repositories together, in bytes
    /// (`--cache-max-size`); past it, the least recently used entries are evicted.
    pub max_size: u64,
}

/// `DELETE /api/repos/{repo}/caches` query.
#[derive(Debug, Default, Deserialize)]
pub struct DeleteQuery {
    /// Only the entry under this key.
    #[serde(default)]
    pub key: Option<String>,
}

/// What a delete removed.
#[derive(Debug, Serialize)]
pub struct DeletedJson {
    /// The keys of the deleted entries.
    pub deleted: Vec<String>,
    /// Their total size, in bytes.
    pub size: i64,
    /// Blobs deleted with them (those no artifact or other entry names).
    pub blobs: usize,
}

/// `GET /api/repos/{repo}/caches`.
pub async fn list(
    Ax(state): Ax<State>,
    _: Reader,
    Path(name): Path<String>,
) -> Result<Json<CachesJson>, ApiError> {
    let repo = state.store.repo_by_name(&name).await?;
    let entries = state.store.list_caches(Some(&repo.name)).await?;
    Ok(Json(CachesJson {
        size: entries.iter().map(|e| e.size).sum(),
        caches: entries
            .into_iter()
            .map(|e| CacheJson {
                key: e.key,
                files: e.files,
                size: e.size,
                created_at: rfc3339(e.created_at),
                last_used_at: rfc3339(e.last_used_at),
                run_id: e.run_id,
            })
            .collect(),
        repo: repo.name,
        max_size: state.config.cache_max_bytes,
    }))
}

/// `DELETE /api/repos/{repo}/caches[?key=K]`: `404` when a key is given and the
/// repository has no entry under it.
pub async fn delete(
    Ax(state): Ax<State>,
    _: Writer,
    Path(name): Path<String>,
    Query(q): Query<DeleteQuery>,
) -> Result<Json<DeletedJson>, ApiError> {
    let removed = crate::caches::delete(&state, &name, q.key.as_deref()).await?;
    if let Some(key) = &q.key
        && removed.entries.is_empty()
    {
        return Err(ApiError::NotFound(format!(
            "repository {name} has no cache {key:?}"
        )));
    }
    Ok(Json(DeletedJson {
        size: removed.entries.iter().map(|e| e.size).sum(),
        deleted: removed.entries.into_iter().map(|e| e.key).collect(),
        blobs: removed.blobs,
    }))
}
