//! Caches: files a job keeps for later runs of any job that names the same key
//! (`cache: { key, paths }`), such as a dependency download directory or a build cache.
//!
//! A cache entry is an artifact [`Manifest`] (workspace-relative path → content-addressed
//! blob) saved under its resolved key. Where entries live is the [`CacheStore`]'s business:
//! `.gantry/cache` of the project for `gantry run` ([`DirCaches`]), the server's blob
//! store for agents (over the lease protocol). The job runner resolves the key
//! ([`resolve_key`]: `${hash:FILES}` over the prepared workspace), fetches the entry into
//! an [`ArtifactStore`] of the attempt (a scratch store beside the workspace, not the
//! run's artifact store) and restores it before the script, and after a successful
//! script collects `paths` into that store ([`ArtifactStore::collect_cache`]) and hands
//! the manifest to [`CacheStore::save`].
//!
//! Entries are immutable: a key that was found is not saved again, and a save of a key
//! that another job saved meanwhile keeps the first one. Put a content hash in the key
//! (`deps-${hash:Cargo.lock}`) so that a changed input makes a new entry.

mod dir;
mod key;

pub use dir::{CacheEntry, DirCaches, Removed};
pub use key::{KeyError, has_hashes, resolve_key};

use crate::artifacts::{ArtifactStore, Manifest};

/// Why a cache could not be fetched or saved. A cache failure never fails the job: the
/// runner says so in the job's log and carries on (without the cache, or without saving).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct CacheError(pub String);

/// Where cache entries are kept. Implemented by the local store of `gantry run` and by
/// the agent over its lease (`gantry-agent`).
#[async_trait::async_trait]
pub trait CacheStore: Send + Sync + std::fmt::Debug {
    /// Looks up the entry saved under `key`. When there is one, every blob it names is put
    /// into `store` (checked against its digest) and its manifest is returned.
    async fn fetch(&self, key: &str, store: &ArtifactStore)
    -> Result<Option<Manifest>, CacheError>;

    /// Saves `manifest`, whose blobs are in `store`, under `key`, and tells whether this
    /// call stored the entry or kept one that was there (another job saved the key
    /// meanwhile), for the job log. A key that already has an entry is not an error.
    async fn save(
        &self,
        key: &str,
        manifest: &Manifest,
        store: &ArtifactStore,
    ) -> Result<Saved, CacheError>;
}

/// What [`CacheStore::save`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Saved {
    /// The entry is now the one saved.
    Stored,
    /// The key had an entry already; it was kept (entries are immutable).
    Kept,
}
