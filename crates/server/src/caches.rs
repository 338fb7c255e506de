//! Pipeline caches (`cache: { key, paths }`) kept by the server for its executors — the
//! built-in one and remote agents alike, through the lease calls
//! [`JobSource::get_cache`](gantry_protocol::JobSource::get_cache) and
//! [`put_cache`](gantry_protocol::JobSource::put_cache).
//!
//! - **Entries** are artifact manifests saved per repository under their resolved key;
//!   their files are ordinary blobs of the server's store ([`crate::blobs`]), uploaded
//!   with `put_artifact` before the manifest. A lease reads and writes only its own
//!   repository's entries, and may fetch the blobs they name.
//! - **First writer wins**: a save under a key that has an entry keeps the old one.
//! - **Checked before stored**: a manifest whose paths leave the workspace, whose blobs
//!   were not uploaded (or differ in size), an empty or overlong key, or an entry larger
//!   than the whole cache size is refused, and nothing is stored.
//! - **Eviction**: once the entries of all repositories add up to more than
//!   `cache_max_bytes`, the least recently used go (a fetch counts as a use), at every
//!   save and at start. The blobs of an evicted (or deleted) entry are deleted unless an
//!   artifact or another entry names them, or they were written within `blob_grace`
//!   (they may belong to an upload whose manifest is still on its way).

use std::collections::BTreeSet;
use std::path::Path;

use gantry_engine::artifacts::Manifest;
use gantry_engine::source::is_plain_relative;
use gantry_protocol::{LeaseError, check_cache_key};
use gantry_store::{CacheEntry, Job, NewCacheEntry, StoreError};

use crate::state::{State, now_ms};

/// What eviction or deletion removed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Removed {
    /// The entries.
    pub entries: Vec<CacheEntry>,
    /// Blobs deleted with them (those nothing else names).
    pub blobs: usize,
}

fn unavailable(e: StoreError) -> LeaseError {
    LeaseError::Unavailable(e.to_string())
}

/// The repository of the run `job` belongs to.
async fn repo_of(state: &State, job: &Job) -> Result<String, LeaseError> {
    Ok(state.store.run(job.run_id).await.map_err(unavailable)?.repo)
}

/// The entry of `job`'s repository under `key`, marked used.
pub(crate) async fn get(
    state: &State,
    job: &Job,
    key: &str,
) -> Result<Option<Manifest>, LeaseError> {
    check_cache_key(key)?;
    let repo = repo_of(state, job).await?;
    let Some(entry) = state
        .store
        .use_cache(&repo, key, now_ms())
        .await
        .map_err(unavailable)?
    else {
        return Ok(None);
    };
    serde_json::from_str(&entry.manifest_json)
        .map(Some)
        .map_err(|e| {
            LeaseError::Unavailable(format!(
                "the cache entry {key:?} of repository {repo} cannot be read: {e}"
            ))
        })
}

/// Saves `manifest` under `key` for `job`'s repository (see the module docs for what is
/// refused), then evicts what no longer fits. `false` when an entry was there (kept).
pub(crate) async fn put(
    state: &State,
    job: &Job,
    key: &str,
    manifest: &Manifest,
) -> Result<bool, LeaseError> {
    check_cache_key(key)?;
    let size = check_manifest(state, manifest)?;
    let limit = state.config.cache_max_bytes;
    if size > limit {
        return Err(LeaseError::TooLarge(format!(
            "the cache {key:?} has {size} bytes, more than the server keeps for all caches \
             together ({limit} bytes; `gantry serve --cache-max-size`)"
        )));
    }
    let repo = repo_of(state, job).await?;
    let manifest_json = serde_json::to_string(manifest)
        .map_err(|e| LeaseError::Invalid(format!("cache manifest: {e}")))?;
    let entry = NewCacheEntry {
        repo,
        key: key.to_owned(),
        manifest_json,
        digests: manifest.files.values().map(|e| e.digest.clone()).collect(),
        files: manifest.files.len() as i64,
        size: i64::try_from(size).unwrap_or(i64::MAX),
        run_id: Some(job.run_id),
    };
    let saved = state
        .store
        .save_cache(&entry, now_ms())
        .await
        .map_err(unavailable)?;
    if saved && let Err(e) = evict(state).await {
        tracing::warn!("cannot evict caches: {e}");
    }
    Ok(saved)
}

/// Checks every file of `manifest`: a plain relative path, a blob the server has, of the
/// size the manifest says. Returns the files' total size.
fn check_manifest(state: &State, manifest: &Manifest) -> Result<u64, LeaseError> {
    let mut total: u64 = 0;
    for (path, entry) in &manifest.files {
        if !is_plain_relative(Path::new(path)) || path.contains('\0') {
            return Err(LeaseError::Invalid(format!(
                "cache path {path:?} leaves the workspace (absolute, or containing \"..\")"
            )));
        }
        if state.blobs.path(&entry.digest).is_err() {
            return Err(LeaseError::Invalid(format!(
                "cache file {path}: invalid digest {:?}",
                entry.digest
            )));
        }
        let Some(stored) = state.blobs.size(&entry.digest) else {
            return Err(LeaseError::Invalid(format!(
                "cache file {path}: blob {} was not uploaded before the manifest",
                entry.digest
            )));
        };
        if stored != entry.size {
            return Err(LeaseError::Invalid(format!(
                "cache file {path}: the manifest says {} bytes, blob {} has {stored}",
                entry.size, entry.digest
            )));
        }
        total = total.saturating_add(stored);
    }
    Ok(total)
}

/// Evicts least recently used entries until all fit in `cache_max_bytes`, and deletes
/// their blobs that nothing else names.
pub async fn evict(state: &State) -> Result<Removed, StoreError> {
    let limit = i64::try_from(state.config.cache_max_bytes).unwrap_or(i64::MAX);
    let entries = state.store.evict_caches(limit).await?;
    if !entries.is_empty() {
        tracing::info!(
            "evicted {} cache entr{} (least recently used) to stay within {} bytes",
            entries.len(),
            if entries.len() == 1 { "y" } else { "ies" },
            limit
        );
    }
    let blobs = drop_blobs(state, &entries).await?;
    Ok(Removed { entries, blobs })
}

/// Deletes the entries of repository `repo` (only `key`, if given) and their blobs that
/// nothing else names.
pub async fn delete(state: &State, repo: &str, key: Option<&str>) -> Result<Removed, StoreError> {
    let entries = state.store.delete_caches(repo, key).await?;
    let blobs = drop_blobs(state, &entries).await?;
    Ok(Removed { entries, blobs })
}

/// Deletes every blob that no artifact or cache entry names and that is older than the
/// grace: the files of a cache save or an artifact upload whose manifest never arrived
/// (the agent died in between, or the save was refused). Returns how many it deleted;
/// a failure is logged and leaves the blobs for the next sweep.
pub async fn sweep_orphans(state: &State) -> usize {
    let blobs = state.blobs.clone();
    let grace = state.config.blob_grace;
    let old = match tokio::task::spawn_blocking(move || blobs.older_than(grace)).await {
        Ok(Ok(old)) => old,
        Ok(Err(e)) => {
            tracing::warn!("cannot list the blobs: {e}");
            return 0;
        }
        Err(e) => {
            tracing::warn!("listing the blobs panicked: {e}");
            return 0;
        }
    };
    let mut removed = 0;
    for chunk in old.chunks(500) {
        let used = match state.store.blobs_in_use(chunk).await {
            Ok(used) => used,
            Err(e) => {
                tracing::warn!("cannot tell which blobs are in use: {e}");
                return removed;
            }
        };
        let unused = chunk
            .iter()
            .filter(|d| !used.contains(*d))
            .cloned()
            .collect();
        removed += remove_unused(state, unused).await;
    }
    if removed > 0 {
        tracing::info!("deleted {removed} blob(s) that no artifact or cache names");
    }
    removed
}

/// Deletes the blobs of `entries` (already gone from the store) that no artifact or
/// other entry names and that are older than the grace; returns how many it deleted.
async fn drop_blobs(state: &State, entries: &[CacheEntry]) -> Result<usize, StoreError> {
    let mut digests = BTreeSet::new();
    for entry in entries {
        match serde_json::from_str::<Manifest>(&entry.manifest_json) {
            Ok(m) => digests.extend(m.files.into_values().map(|e| e.digest)),
            Err(e) => tracing::warn!(
                "cache entry {:?} of {} cannot be read ({e}); its blobs are kept",
                entry.key,
                entry.repo
            ),
        }
    }
    if digests.is_empty() {
        return Ok(0);
    }
    let digests: Vec<String> = digests.into_iter().collect();
    let used = state.store.blobs_in_use(&digests).await?;
    let unused: Vec<String> = digests.into_iter().filter(|d| !used.contains(d)).collect();
    Ok(remove_unused(state, unused).await)
}

/// Deletes the blobs `unused` (nothing names them) that are older than the grace; how
/// many it deleted.
async fn remove_unused(state: &State, unused: Vec<String>) -> usize {
    let blobs = state.blobs.clone();
    let grace = state.config.blob_grace;
    tokio::task::spawn_blocking(move || {
        let mut n = 0;
        for digest in unused {
            match blobs.remove_unused(&digest, grace) {
                Ok(true) => n += 1,
                Ok(false) => {}
                Err(e) => tracing::warn!("cannot delete blob {digest}: {e}"),
            }
        }
        n
    })
    .await
    .unwrap_or(0)
}
