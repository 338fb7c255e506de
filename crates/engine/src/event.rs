//! [`RunEvent`]: the engine's one and only output.

use std::path::PathBuf;
use std::time::{Duration, SystemTime};

use gantry_backend::{LogLine, Outcome};

/// Index of a job in the run's [`gantry_pipeline::Plan::jobs`].
pub type JobIndex = usize;

/// Everything that happens during a run, in order.
#[derive(Debug, Clone)]
pub enum RunEvent {
    /// The run began. `jobs` lists every planned job's name, by index.
    RunStarted {
        /// Run id.
        run_id: String,
        /// Pipeline name.
        pipeline: String,
        /// Job names by index.
        jobs: Vec<String>,
        /// When.
        at: SystemTime,
    },
    /// An attempt of a job started.
    JobStarted {
        /// Which job.
        job: JobIndex,
        /// Attempt number, from 1.
        attempt: u32,
        /// When.
        at: SystemTime,
    },
    /// A line of a job's log (already masked).
    JobLog {
        /// Which job.
        job: JobIndex,
        /// The line.
        line: LogLine,
    },
    /// An artifact was stored.
    ArtifactStored {
        /// Which job produced it.
        job: JobIndex,
        /// Path relative to the workspace.
        path: String,
        /// Content digest (hex sha256).
        digest: String,
        /// Size in bytes.
        size: u64,
    },
    /// A job reached its final status (also for skipped jobs, which never started).
    JobFinished {
        /// Which job.
        job: JobIndex,
        /// Final status.
        status: JobStatus,
        /// Wall time over all attempts (zero for skipped).
        duration: Duration,
        /// Attempts made (0 for skipped).
        attempts: u32,
    },
    /// The run ended.
    RunFinished {
        /// Overall status.
        status: RunStatus,
        /// Wall time.
        duration: Duration,
        /// Where logs and artifacts are kept, if anywhere.
        dir: Option<PathBuf>,
    },
}

/// Final status of one job.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum JobStatus {
    /// Script succeeded.
    Succeeded,
    /// Failed (outcome says how); `allowed` when `allow_failure` is set.
    Failed {
        /// How the last attempt ended.
        outcome: Outcome,
        /// `allow_failure: true`.
        allowed: bool,
    },
    /// The infrastructure failed (backend error), after its retry.
    Errored {
        /// Message.
        message: String,
    },
    /// Never ran, and why (a need failed, `when` excluded it, not selected, …).
    Skipped {
        /// Why.
        reason: String,
    },
    /// Cancelled (Ctrl-C, `--fail-fast`).
    Cancelled,
}

impl JobStatus {
    /// A short word for tables: `success`, `failed`, `allowed-failure`, `error`,
    /// `skipped`, `cancelled`.
    pub fn word(&self) -> &'static str {
        match self {
            JobStatus::Succeeded => "success",
            JobStatus::Failed { allowed: true, .. } => "allowed-failure",
            JobStatus::Failed { .. } => "failed",
            JobStatus::Errored { .. } => "error",
            JobStatus::Skipped { .. } => "skipped",
            JobStatus::Cancelled => "cancelled",
        }
    }
}

/// Overall status of a run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RunStatus {
    /// Every job that ran succeeded (or was allowed to fail).
    Succeeded,
    /// Some job failed.
    Failed,
    /// The run was cancelled.
    Cancelled,
}
