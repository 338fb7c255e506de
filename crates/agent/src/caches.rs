//! [`LeaseCaches`]: the engine's [`CacheStore`] for a leased job — its caches live in the
//! server's store and travel through the lease ([`JobSource::get_cache`] /
//! [`JobSource::put_cache`], blobs as artifacts), so a cache saved by a job on one agent
//! is restored by a job on another, or by the server's built-in executor.
//!
//! - `fetch` asks the server for the entry of the lease's repository under the key, then
//!   fetches each blob the job's store lacks, checking its digest (the same function as
//!   for artifacts, `blobs.rs`).
//! - `save` uploads each blob once, then the manifest; the server keeps the first entry
//!   saved under a key, and says whether this one was ([`Saved`]).
//! - A `Stale` refusal loses the lease, as anywhere in the job; a stop of the job (a
//!   cancel, a lost lease) ends a transfer at once.

use std::collections::BTreeSet;
use std::path::PathBuf;
use std::sync::Arc;

use gantry_engine::artifacts::{ArtifactStore, Manifest};
use gantry_engine::cache::{CacheError, CacheStore, Saved};
use gantry_protocol::{JobSource, LeaseId};

use crate::blobs;
use crate::job::Control;

/// The caches of one lease's job (see the module docs).
pub(crate) struct LeaseCaches {
    source: Arc<dyn JobSource>,
    lease: LeaseId,
    /// Scratch directory for blobs on their way in.
    incoming: PathBuf,
    control: Arc<Control>,
}

impl std::fmt::Debug for LeaseCaches {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LeaseCaches")
            .field("lease", &self.lease)
            .field("incoming", &self.incoming)
            .finish_non_exhaustive()
    }
}

impl LeaseCaches {
    /// The caches of the job under `lease`, fetched through `incoming`.
    pub(crate) fn new(
        source: Arc<dyn JobSource>,
        lease: LeaseId,
        incoming: PathBuf,
        control: Arc<Control>,
    ) -> LeaseCaches {
        LeaseCaches {
            source,
            lease,
            incoming,
            control,
        }
    }

    /// `work`, or an error as soon as the job is being stopped.
    async fn unless_stopped<T>(
        &self,
        work: impl Future<Output = Result<T, String>>,
    ) -> Result<T, CacheError> {
        tokio::select! {
            done = work => done.map_err(CacheError),
            () = self.control.cancel.cancelled() => {
                Err(CacheError("the job is being stopped".into()))
            }
        }
    }
}

#[async_trait::async_trait]
impl CacheStore for LeaseCaches {
    async fn fetch(
        &self,
        key: &str,
        store: &ArtifactStore,
    ) -> Result<Option<Manifest>, CacheError> {
        self.unless_stopped(async {
            let manifest = match self.source.get_cache(&self.lease, key).await {
                Ok(Some(manifest)) => manifest,
                Ok(None) => return Ok(None),
                Err(e) => {
                    blobs::lose_if_stale(&e, &self.control);
                    return Err(format!("cannot look up the cache on the server: {e}"));
                }
            };
            let mut fetched = BTreeSet::new();
            for (path, entry) in &manifest.files {
                let digest = entry.digest.as_str();
                if !fetched.insert(digest) {
                    continue;
                }
                let what = format!("cache file {path} ({digest})");
                blobs::fetch(
                    self.source.as_ref(),
                    &self.lease,
                    digest,
                    store,
                    &self.incoming,
                    &self.control,
                    &what,
                )
                .await?;
            }
            Ok(Some(manifest))
        })
        .await
    }

    async fn save(
        &self,
        key: &str,
        manifest: &Manifest,
        store: &ArtifactStore,
    ) -> Result<Saved, CacheError> {
        self.unless_stopped(async {
            let mut sent = BTreeSet::new();
            for (path, entry) in &manifest.files {
                if !sent.insert(entry.digest.as_str()) {
                    continue;
                }
                let what = format!("cache file {path}");
                blobs::upload(
                    self.source.as_ref(),
                    &self.lease,
                    &entry.digest,
                    store,
                    &self.control,
                    &what,
                )
                .await?;
            }
            match self
                .source
                .put_cache(&self.lease, key, manifest.clone())
                .await
            {
                Ok(true) => Ok(Saved::Stored),
                Ok(false) => Ok(Saved::Kept),
                Err(e) => {
                    blobs::lose_if_stale(&e, &self.control);
                    Err(format!("the server did not save the cache: {e}"))
                }
            }
        })
        .await
    }
}
