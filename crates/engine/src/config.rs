//! What a run is given ([`Backends`], [`RunConfig`]) and what it gives back ([`RunSummary`]).

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use gantry_backend::Backend;

use crate::cache::CacheStore;
use crate::event::{JobIndex, JobStatus, RunStatus};
use crate::source::Source;

/// The backends a run may use.
#[derive(Clone)]
pub struct Backends {
    /// Runs jobs without `image`, `services`, `image_build` or `deploy` (host processes).
    pub host: Arc<dyn Backend>,
    /// Runs jobs that need a container; `None` when no container backend is available,
    /// and such jobs then end `Errored` with a message saying what they need.
    pub containers: Option<Arc<dyn Backend>>,
}

/// How to run a plan. Its `Debug` output lists secret names, never their values.
#[derive(Clone)]
pub struct RunConfig {
    /// The run's id (labels, `GANTRY_RUN_ID`).
    pub run_id: String,
    /// The run's directory: artifacts under `artifacts/` (content-addressed), the frozen
    /// source under `source/`, job workspaces under `work/<job_key>` (each removed when
    /// its job ends unless `keep_workspaces`).
    pub run_dir: PathBuf,
    /// The source jobs start from; frozen into `run_dir/source` when the run starts.
    pub source: Source,
    /// Most jobs running at once (`--jobs N`); 0 is taken as 1.
    pub parallelism: usize,
    /// Stop at the first failure: cancel running jobs, start no new ones (except jobs
    /// with `when: { status: failure | always }`).
    pub fail_fast: bool,
    /// Secret values by name, for `env: { X: { secret: NAME } }`; all are masked in logs.
    pub secrets: BTreeMap<String, String>,
    /// Keep job workspaces and the frozen source after the run (for debugging).
    pub keep_workspaces: bool,
    /// Where `cache:` entries are fetched from and saved to; `None` runs jobs without
    /// their caches (the job log says so).
    pub caches: Option<Arc<dyn CacheStore>>,
}

impl std::fmt::Debug for RunConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RunConfig")
            .field("run_id", &self.run_id)
            .field("run_dir", &self.run_dir)
            .field("source", &self.source.root())
            .field("parallelism", &self.parallelism)
            .field("fail_fast", &self.fail_fast)
            .field("secrets", &self.secrets.keys().collect::<Vec<_>>())
            .field("keep_workspaces", &self.keep_workspaces)
            .field("caches", &self.caches)
            .finish()
    }
}

/// The result of a run.
#[derive(Debug, Clone)]
pub struct RunSummary {
    /// The run's id.
    pub run_id: String,
    /// Overall status.
    pub status: RunStatus,
    /// Wall time.
    pub duration: Duration,
    /// One entry per planned job, by index.
    pub jobs: Vec<JobSummary>,
    /// Every stored artifact, by job then path.
    pub artifacts: Vec<ArtifactSummary>,
    /// The run's directory.
    pub dir: PathBuf,
}

/// The result of one job.
#[derive(Debug, Clone)]
pub struct JobSummary {
    /// Display name.
    pub name: String,
    /// Key used for its workspace and manifest (`run_dir/artifacts/<key>.json`).
    pub key: String,
    /// Final status.
    pub status: JobStatus,
    /// Wall time over all attempts (zero when it never started).
    pub duration: Duration,
    /// Attempts made (0 when it never started).
    pub attempts: u32,
}

/// One stored artifact file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ArtifactSummary {
    /// The job that stored it.
    pub job: JobIndex,
    /// Path relative to the workspace.
    pub path: String,
    /// Hex sha256 of the content.
    pub digest: String,
    /// Size in bytes.
    pub size: u64,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_output_hides_secret_values() {
        let config = RunConfig {
            run_id: "r".into(),
            run_dir: "/tmp/r".into(),
            source: Source::from_entries("/src", Vec::new()),
            parallelism: 1,
            fail_fast: false,
            secrets: [("TOKEN".to_string(), "hunter22".to_string())].into(),
            keep_workspaces: false,
            caches: None,
        };
        let text = format!("{config:?}");
        assert!(
            text.contains("TOKEN") && !text.contains("hunter22"),
            "{text}"
        );
    }
}
