//! The built-in executor of `gantry serve`: the agent's loop ([`gantry_agent::Executor`])
//! over the server's in-process job source, named `builtin` (the server expires its
//! leases at every start, since they died with the previous process).

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use gantry_backend::CancellationToken;
use gantry_engine::Backends;
use gantry_protocol::{ExecutorInfo, JobSource, PROTOCOL_VERSION};

/// How long one lease call waits for work. In-process the wait ends the moment a job is
/// queued, so this only bounds how often an idle executor asks again.
const POLL_WAIT: Duration = Duration::from_secs(30);

/// What the built-in executor is.
pub struct Settings {
    /// Jobs at once.
    pub capacity: u32,
    /// `local` or `docker`: its `backend` label.
    pub kind: &'static str,
    /// Its directory (mirrors, job workspaces): `DATA/executor`.
    pub work_dir: PathBuf,
}

/// Runs the executor until `stop` fires; running jobs are then stopped without a report,
/// so they run again as a new attempt at the next start.
pub async fn run(
    source: Arc<dyn JobSource>,
    backends: Backends,
    settings: Settings,
    stop: CancellationToken,
) -> Result<(), gantry_agent::ExecutorError> {
    let config = gantry_agent::ExecutorConfig {
        info: ExecutorInfo {
            name: gantry_server::server::BUILTIN_EXECUTOR.to_owned(),
            labels: super::serve::labels(settings.kind),
            capacity: settings.capacity,
            protocol: PROTOCOL_VERSION,
        },
        work_dir: settings.work_dir,
        backends,
        poll_wait: POLL_WAIT,
    };
    gantry_agent::Executor::new(source, config).run(stop).await
}
