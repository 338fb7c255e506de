//! The traits and data types of the backend contract.

use std::path::PathBuf;
use std::time::Duration;

use crate::LogSink;
use tokio_util::sync::CancellationToken;

/// Where jobs run. One value per process; serves many jobs at once.
#[async_trait::async_trait]
pub trait Backend: Send + Sync {
    /// Short name: `local`, `docker`, `kubernetes`.
    fn name(&self) -> &'static str;
    /// Cheap check that the backend can run jobs; changes nothing.
    async fn probe(&self) -> Result<BackendInfo, BackendError>;
    /// Creates the isolated place for one job. On `Err`, nothing is left behind.
    async fn prepare(&self, job: &JobSpec) -> Result<Box<dyn JobEnv>, BackendError>;
}

/// One job's isolated place: workspace, network, services.
#[async_trait::async_trait]
pub trait JobEnv: Send {
    /// Starts the job's services and waits until each is ready.
    async fn start_services(&mut self, logs: LogSink) -> Result<(), ServiceFailure>;
    /// Runs the script. A failing script is `Ok(Outcome::Failed{..})`, not `Err`.
    /// The backend enforces `JobSpec::timeout` and honours `cancel` promptly, killing
    /// everything the script started.
    async fn run_script(
        &mut self,
        logs: LogSink,
        cancel: CancellationToken,
    ) -> Result<Outcome, BackendError>;
    /// Removes everything `prepare` and later steps created. Idempotent; also runs after
    /// failures, timeouts and cancels.
    async fn teardown(self: Box<Self>) -> Result<(), BackendError>;
}

/// What a backend says about itself in [`Backend::probe`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BackendInfo {
    /// Backend name.
    pub name: String,
    /// Version of what it talks to (e.g. Docker Engine version), free-form.
    pub version: String,
    /// Can this backend run jobs with an `image`?
    pub containers: bool,
}

/// Everything a backend needs to run one job. Built by the engine from a planned job.
///
/// `Default` exists so tests and backends can write `JobSpec { script, ..Default::default() }`;
/// the engine always fills every field.
#[derive(Debug, Clone, Default)]
pub struct JobSpec {
    /// Run id this job belongs to (for labels and sweeping).
    pub run_id: String,
    /// The job's display name, e.g. `build (GO=1.18)`.
    pub job_name: String,
    /// A short identifier safe for container names, unique within the run.
    pub job_key: String,
    /// The attempt number, starting at 1.
    pub attempt: u32,
    /// The job's pristine workspace on the host; the backend runs the script in it (or
    /// mounts it). Artifacts are collected from here after the script.
    pub workspace_dir: PathBuf,
    /// Where the workspace appears inside a container.
    pub container_workdir: String,
    /// Container image; `None` runs on the host.
    pub image: Option<String>,
    /// Fully resolved environment (secrets included), in order; later entries win.
    pub env: Vec<(String, String)>,
    /// Script lines, run in one `sh -e`, each echoed as `+ cmd`.
    pub script: Vec<String>,
    /// Services for this job.
    pub services: Vec<ServiceSpec>,
    /// Limit on `run_script`.
    pub timeout: Duration,
    /// Labels attached to every resource the backend creates.
    pub labels: Vec<(String, String)>,
    /// Build an image (before the script, if there is one). Only container backends can;
    /// others answer [`BackendError::Unsupported`] from `prepare`.
    pub image_build: Option<ImageBuildSpec>,
    /// Deploy something (after the script, if there is one). Only container backends can.
    pub deploy: Option<DeploySpec>,
}

/// `image_build:` of a job, with paths relative to the job's workspace.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImageBuildSpec {
    /// Build context, relative to the workspace.
    pub context: String,
    /// Dockerfile path relative to the context.
    pub dockerfile: String,
    /// Tags to give the image (at least one).
    pub tags: Vec<String>,
    /// Build args, in order.
    pub args: Vec<(String, String)>,
    /// Push the tags after building.
    pub push: bool,
}

/// `deploy:` of a job, with paths relative to the job's workspace.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DeploySpec {
    /// A compose file applied on the Docker host.
    Compose {
        /// Path relative to the workspace.
        file: String,
    },
    /// Kubernetes manifests applied to a namespace.
    Kubernetes {
        /// Directory or file relative to the workspace.
        manifests: String,
        /// Namespace, if set.
        namespace: Option<String>,
    },
}

/// A service container to start before the script.
#[derive(Debug, Clone)]
pub struct ServiceSpec {
    /// Name and hostname on the job's network.
    pub name: String,
    /// Image.
    pub image: String,
    /// Resolved environment.
    pub env: Vec<(String, String)>,
    /// Command override.
    pub command: Option<Vec<String>>,
    /// Readiness check.
    pub ready: Option<ReadySpec>,
}

/// A readiness check, performed from inside the job's network.
#[derive(Debug, Clone)]
pub struct ReadySpec {
    /// TCP port to connect to.
    pub port: u16,
    /// If set, an HTTP GET of this path must answer 2xx/3xx.
    pub http_path: Option<String>,
    /// Give up after this long.
    pub timeout: Duration,
}

/// How a script run ended. Data, not errors.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Outcome {
    /// Exit code 0.
    Success,
    /// Non-zero exit code.
    Failed {
        /// The exit code.
        exit_code: i32,
    },
    /// Killed by a signal not sent by gantry.
    Killed {
        /// Signal number.
        signal: i32,
    },
    /// Exceeded `JobSpec::timeout`; killed.
    TimedOut,
    /// Killed by the kernel's OOM killer.
    OutOfMemory,
    /// Cancelled by the user or the engine; killed.
    Cancelled,
}

impl Outcome {
    /// True for [`Outcome::Success`].
    pub fn is_success(&self) -> bool {
        matches!(self, Outcome::Success)
    }
}

impl std::fmt::Display for Outcome {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Outcome::Success => f.write_str("succeeded"),
            Outcome::Failed { exit_code } => write!(f, "failed with exit code {exit_code}"),
            Outcome::Killed { signal } => write!(f, "killed by signal {signal}"),
            Outcome::TimedOut => f.write_str("timed out"),
            Outcome::OutOfMemory => f.write_str("killed: out of memory"),
            Outcome::Cancelled => f.write_str("cancelled"),
        }
    }
}

/// The infrastructure failed (not the job's script).
#[derive(Debug, thiserror::Error)]
pub enum BackendError {
    /// The job asks for something this backend cannot provide.
    #[error("job \"{job}\" needs {what}, which the {backend} backend cannot provide{}", hint.as_deref().map(|h| format!(": {h}")).unwrap_or_default())]
    Unsupported {
        /// Job name.
        job: String,
        /// What it needs, e.g. `a container (image: go-builder:1.19)`.
        what: String,
        /// Backend name.
        backend: &'static str,
        /// How to get it.
        hint: Option<String>,
    },
    /// The backend is not available (daemon down, …).
    #[error("{backend} backend unavailable: {message}")]
    Unavailable {
        /// Backend name.
        backend: &'static str,
        /// What is wrong and how to fix it.
        message: String,
    },
    /// An IO operation failed.
    #[error("{context}")]
    Io {
        /// What was being done.
        context: String,
        /// Cause.
        #[source]
        source: std::io::Error,
    },
    /// Anything else, with a message meant for the user.
    #[error("{0}")]
    Other(String),
}

/// A service could not be started or never became ready.
#[derive(Debug, thiserror::Error)]
#[error("service \"{service}\" {reason}")]
pub struct ServiceFailure {
    /// Service name.
    pub service: String,
    /// What went wrong, e.g. `did not become ready within 90s (tcp 3306)`.
    pub reason: String,
    /// The service's last log lines, for the job log.
    pub last_logs: Vec<String>,
}
