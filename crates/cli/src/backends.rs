//! Choosing where jobs run (`--backend`), and reaching Docker for `gantry gc`.
//!
//! Host jobs always run on the local backend. Jobs that need containers go to Docker:
//! under `auto` when a daemon answers, under `docker` always (a daemon that does not
//! answer is then an error before anything runs). Whenever Docker is reached, what killed
//! gantry processes left in it is swept first, so a crashed run never costs the next one.

use std::sync::Arc;
use std::time::Duration;

use gantry_backend::BackendError;
use gantry_backend_docker::{DockerBackend, SweepReport};
use gantry_engine::Backends;

use crate::args::BackendChoice;
use crate::error::CliError;

/// How long `auto` waits for a daemon that has a socket but does not answer.
const AUTO_CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// The backends of a run, and what to tell the user about them before it starts.
pub struct Chosen {
    /// For the engine.
    pub backends: Backends,
    /// Lines for the user (a sweep that removed something, Docker missing under auto).
    pub notices: Vec<String>,
}

/// The backends for `choice`. `needs_containers`: some job of the plan needs Docker (only
/// used to warn under `auto`).
pub async fn choose(choice: BackendChoice, needs_containers: bool) -> Result<Chosen, CliError> {
    let host: Arc<dyn gantry_backend::Backend> =
        Arc::new(gantry_backend_local::LocalBackend::new());
    let mut notices = Vec::new();
    let containers = match choice {
        BackendChoice::Local => None,
        BackendChoice::Docker => {
            let docker = DockerBackend::connect()
                .await
                .map_err(|e| CliError::Failed(anyhow::anyhow!("{e}")))?;
            notices.extend(sweep_notices(docker.sweep().await));
            Some(docker)
        }
        BackendChoice::Auto => {
            let connected =
                match tokio::time::timeout(AUTO_CONNECT_TIMEOUT, DockerBackend::connect()).await {
                    Ok(r) => r,
                    Err(_) => Err(BackendError::Unavailable {
                        backend: "docker",
                        message: format!(
                            "the Docker daemon did not answer within {}s",
                            AUTO_CONNECT_TIMEOUT.as_secs()
                        ),
                    }),
                };
            match connected {
                Ok(docker) => {
                    notices.extend(sweep_notices(docker.sweep().await));
                    Some(docker)
                }
                Err(e) => {
                    if needs_containers {
                        notices.push(format!("warning: jobs that need containers will fail: {e}"));
                    }
                    None
                }
            }
        }
    };
    Ok(Chosen {
        backends: Backends {
            host,
            containers: containers.map(|d| Arc::new(d) as Arc<dyn gantry_backend::Backend>),
        },
        notices,
    })
}

/// What a sweep at the start of a run is worth telling: only when it did something.
fn sweep_notices(result: Result<SweepReport, BackendError>) -> Vec<String> {
    match result {
        Ok(report) => {
            let mut lines = Vec::new();
            if report.removed() > 0 {
                lines.push(format!(
                    "removed what killed gantry runs left in Docker: {}",
                    counts(&report)
                ));
            }
            lines.extend(
                report
                    .errors
                    .iter()
                    .map(|e| format!("warning: could not remove a leftover: {e}")),
            );
            lines
        }
        Err(e) => vec![format!(
            "warning: could not look for leftovers of killed gantry runs: {e}"
        )],
    }
}

/// `2 containers, 1 network, 0 volumes`.
pub fn counts(report: &SweepReport) -> String {
    let n =
        |count: usize, what: &str| format!("{count} {what}{}", if count == 1 { "" } else { "s" });
    format!(
        "{}, {}, {}",
        n(report.containers, "container"),
        n(report.networks, "network"),
        n(report.volumes, "volume")
    )
}

/// Connects to Docker and sweeps, for `gantry gc`.
pub async fn gc() -> Result<SweepReport, CliError> {
    let docker = DockerBackend::connect()
        .await
        .map_err(|e| CliError::Failed(anyhow::anyhow!("{e}")))?;
    docker
        .sweep()
        .await
        .map_err(|e| CliError::Failed(anyhow::anyhow!("{e}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_read_naturally() {
        let report = SweepReport {
            containers: 2,
            networks: 1,
            volumes: 0,
            errors: vec![],
        };
        assert_eq!(counts(&report), "2 containers, 1 network, 0 volumes");
    }
}
