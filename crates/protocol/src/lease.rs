//! Lease, report and log wire types.

use std::collections::BTreeMap;

use gantry_engine::artifacts::Manifest;
use gantry_pipeline::Plan;
use serde::{Deserialize, Serialize};

/// Version of the executor protocol. Bumped on any incompatible change to these types;
/// the server refuses executors that speak another one.
pub const PROTOCOL_VERSION: u32 = 1;

/// Who is asking for work.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ExecutorInfo {
    /// Unique executor name (`builtin` for the server's own executor).
    pub name: String,
    /// Labels a job's `runs_on` is matched against (`backend=docker`, `os=linux`, …).
    pub labels: BTreeMap<String, String>,
    /// Most jobs this executor runs at once.
    pub capacity: u32,
    /// [`PROTOCOL_VERSION`] of the executor.
    pub protocol: u32,
}

/// Opaque, unguessable id of one lease (one attempt of one job).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct LeaseId(pub String);

impl std::fmt::Display for LeaseId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// Where the job's source comes from: a git repository at one commit.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SourceRef {
    /// Clone URL (or local path) of the repository.
    pub url: String,
    /// Full commit id to check out.
    pub commit: String,
    /// The ref that was built (`refs/heads/develop`, `refs/tags/v1.2`).
    pub git_ref: String,
}

/// One job handed to an executor.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Lease {
    /// This lease; every report names it.
    pub id: LeaseId,
    /// Server-wide run id.
    pub run_id: i64,
    /// The run's number within its pipeline.
    pub run_number: i64,
    /// Repository name.
    pub repo: String,
    /// Pipeline name.
    pub pipeline: String,
    /// The run's whole plan (the job is `plan.jobs[job_index]`).
    pub plan: Plan,
    /// Which job.
    pub job_index: usize,
    /// The job's key (safe for paths), unique in the run.
    pub job_key: String,
    /// Attempt number of this job, from 1 (a lease lost to a dead executor is a new
    /// attempt).
    pub attempt: u32,
    /// The source to check out.
    pub source: SourceRef,
    /// Manifests of the artifacts of the job's transitive needs, in plan order; the blobs
    /// are fetched with [`JobSource::get_artifact`].
    pub restore: Vec<Manifest>,
    /// Secret values by name (masked in every log line).
    pub secrets: BTreeMap<String, String>,
    /// Seconds the lease lives without a heartbeat; heartbeat at least every third of it.
    pub ttl_secs: u64,
}

/// What the server says to a heartbeat.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LeaseState {
    /// Carry on; the deadline was extended.
    Ok,
    /// The run or job was cancelled: kill the job, tear down, then `finish` with
    /// `Cancelled`.
    Cancelled,
    /// The lease expired or was superseded: kill the job and report nothing more.
    Lost,
}

/// Where a log line came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LogStream {
    /// Script stdout.
    Stdout,
    /// Script stderr.
    Stderr,
    /// gantry's own lines.
    System,
    /// A service's output.
    Service,
}

/// One log line on the wire (already masked by the executor).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WireLogLine {
    /// Milliseconds since the Unix epoch.
    pub at_ms: u64,
    /// Stream.
    pub stream: LogStream,
    /// For service lines: the service name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source: Option<String>,
    /// Text without trailing newline.
    pub text: String,
}

/// A batch of log lines. `seq` numbers batches per lease from 0 so that a batch resent
/// after a timeout is stored once.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LogChunk {
    /// Batch number within the lease, from 0, no gaps.
    pub seq: u64,
    /// The lines.
    pub lines: Vec<WireLogLine>,
}

/// How a job ended, as reported by the executor.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "status", rename_all = "snake_case")]
pub enum JobReport {
    /// The script succeeded.
    Succeeded,
    /// The script failed; `outcome` in words ("exit code 3", "timed out after 10m").
    Failed {
        /// Exit code when there was one.
        exit_code: Option<i32>,
        /// The outcome in words.
        outcome: String,
        /// `allow_failure: true`.
        allowed: bool,
    },
    /// The infrastructure failed after its retry.
    Errored {
        /// What went wrong.
        message: String,
    },
    /// Stopped because the lease said `Cancelled`.
    Cancelled,
}

/// The final report of one lease.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Finish {
    /// How it ended.
    pub report: JobReport,
    /// Attempts the executor made within this lease (its own retries).
    pub attempts: u32,
    /// Wall time in milliseconds.
    pub duration_ms: u64,
    /// The job's artifacts (on success); every blob was sent with
    /// [`JobSource::put_artifact`] first.
    pub manifest: Option<Manifest>,
}

/// Why a lease call was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error, Serialize, Deserialize)]
#[serde(tag = "error", rename_all = "snake_case")]
pub enum LeaseError {
    /// The lease expired or was superseded; stop the job and report nothing more.
    #[error("lease {lease} is no longer valid: {reason}")]
    Stale {
        /// The lease.
        lease: String,
        /// Why ("expired", "re-leased as attempt 2").
        reason: String,
    },
    /// Bad or revoked token.
    #[error("not authorized: {0}")]
    Unauthorized(String),
    /// The executor speaks another protocol version.
    #[error(
        "agent speaks protocol {executor}; this server speaks {supported} — run an agent of \
         the same gantry version"
    )]
    Incompatible {
        /// What the executor sent.
        executor: u32,
        /// What the server speaks, in words ("protocol 1 (gantry 0.1.0)", see
        /// [`LeaseError::incompatible`]).
        supported: String,
    },
    /// The request was malformed or refers to something that does not exist.
    #[error("invalid request: {0}")]
    Invalid(String),
    /// An upload exceeded the configured limit.
    #[error("too large: {0}")]
    TooLarge(String),
    /// The server could not be reached or failed; try again later.
    #[error("server unavailable: {0}")]
    Unavailable(String),
}
