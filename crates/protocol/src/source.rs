//! [`JobSource`]: the executor contract.

use std::path::Path;
use std::time::Duration;

use gantry_engine::artifacts::Manifest;

use crate::lease::{ExecutorInfo, Finish, Lease, LeaseError, LeaseId, LeaseState, LogChunk};

/// Where executors get work and report it. Implemented by the server in-process
/// (`gantry-server`) and over HTTP (the agent's client); used by the executor loop
/// (`gantry-agent`).
#[async_trait::async_trait]
pub trait JobSource: Send + Sync {
    /// Waits up to `wait` for a job this executor can take; `None` when none came.
    async fn lease(&self, me: &ExecutorInfo, wait: Duration) -> Result<Option<Lease>, LeaseError>;
    /// Extends the lease's deadline and says whether to carry on.
    async fn heartbeat(&self, lease: &LeaseId) -> Result<LeaseState, LeaseError>;
    /// Appends a batch of log lines to the job's log.
    async fn append_log(&self, lease: &LeaseId, chunk: LogChunk) -> Result<(), LeaseError>;
    /// Stores one artifact blob (the file at `path`, whose sha256 is `digest`).
    async fn put_artifact(
        &self,
        lease: &LeaseId,
        digest: &str,
        path: &Path,
    ) -> Result<(), LeaseError>;
    /// Fetches one blob into `dest`: an artifact of the lease's run, or a file of a cache
    /// entry of the lease's repository.
    async fn get_artifact(
        &self,
        lease: &LeaseId,
        digest: &str,
        dest: &Path,
    ) -> Result<(), LeaseError>;
    /// The cache entry saved under `key` for the lease's repository (`cache: { key,
    /// paths }`), if there is one; its blobs are fetched with
    /// [`JobSource::get_artifact`]. Marks the entry used (caches are evicted least
    /// recently used first).
    async fn get_cache(&self, lease: &LeaseId, key: &str) -> Result<Option<Manifest>, LeaseError>;
    /// Saves `manifest` under `key` for the lease's repository; every blob it names was
    /// sent with [`JobSource::put_artifact`] first. `true` when it was saved; `false`
    /// when `key` already had an entry, which is kept (the first writer wins; not an
    /// error). Refused with
    /// `Invalid` for an empty or overlong key, a path that leaves the workspace or a blob
    /// the server does not have, `TooLarge` for an entry over the server's cache size,
    /// and `Stale` like every report.
    async fn put_cache(
        &self,
        lease: &LeaseId,
        key: &str,
        manifest: Manifest,
    ) -> Result<bool, LeaseError>;
    /// Ends the lease with the job's result. Refused with `Stale` if the lease is gone.
    async fn finish(&self, lease: &LeaseId, finish: Finish) -> Result<(), LeaseError>;
}
