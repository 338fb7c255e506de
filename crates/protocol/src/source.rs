//! [`JobSource`]: the executor contract.

use std::path::Path;
use std::time::Duration;

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
    /// Fetches one artifact blob of the lease's run into `dest`.
    async fn get_artifact(
        &self,
        lease: &LeaseId,
        digest: &str,
        dest: &Path,
    ) -> Result<(), LeaseError>;
    /// Ends the lease with the job's result. Refused with `Stale` if the lease is gone.
    async fn finish(&self, lease: &LeaseId, finish: Finish) -> Result<(), LeaseError>;
}
