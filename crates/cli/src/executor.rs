//! What `gantry serve`'s built-in executor and `gantry agent` share: the executor loop
//! ([`gantry_agent::Executor`]) over a job source, its backends (chosen as `gantry run`
//! chooses them) and its labels (what `runs_on` is matched against). The two differ only
//! in their source (the server in-process, or HTTP), their name and their work directory.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use gantry_backend::CancellationToken;
use gantry_engine::Backends;
use gantry_protocol::{ExecutorInfo, JobSource, PROTOCOL_VERSION};

use crate::args::BackendChoice;
use crate::backends;
use crate::error::CliError;

/// Labels every executor sets itself; `--label` may not override them, since jobs rely
/// on them being true.
pub const AUTOMATIC_LABELS: [&str; 3] = ["backend", "os", "arch"];

/// An executor's backends, and what to tell the user about them.
pub struct Chosen {
    /// Where its jobs run.
    pub backends: Backends,
    /// `docker` when a Docker daemon answered, else `local`: its `backend` label.
    pub kind: &'static str,
    /// Lines for the user (leftovers swept from Docker, Docker missing).
    pub notices: Vec<String>,
}

/// The backends for `choice`; connecting to Docker sweeps what dead gantry processes
/// left there.
pub async fn backends(choice: BackendChoice) -> Result<Chosen, CliError> {
    let chosen = backends::choose(choice, false).await?;
    let kind = if chosen.backends.containers.is_some() {
        "docker"
    } else {
        "local"
    };
    Ok(Chosen {
        backends: chosen.backends,
        kind,
        notices: chosen.notices,
    })
}

/// The labels of an executor whose backend is `kind`, plus `extra` (`--label`).
pub fn labels(kind: &str, extra: &BTreeMap<String, String>) -> BTreeMap<String, String> {
    let mut labels: BTreeMap<String, String> = extra.clone();
    for (k, v) in [
        ("backend", kind),
        ("os", std::env::consts::OS),
        ("arch", std::env::consts::ARCH),
    ] {
        labels.insert(k.to_owned(), v.to_owned());
    }
    labels
}

/// `backend=local, os=linux, arch=x86_64, pool=gpu`: automatic labels first.
pub fn shown_labels(labels: &BTreeMap<String, String>) -> String {
    let automatic = AUTOMATIC_LABELS
        .iter()
        .filter_map(|k| labels.get_key_value(*k));
    let custom = labels
        .iter()
        .filter(|(k, _)| !AUTOMATIC_LABELS.contains(&k.as_str()));
    automatic
        .chain(custom)
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// Who an executor is and where it works.
pub struct Settings {
    /// Its name (`builtin` for the server's own).
    pub name: String,
    /// Its labels (see [`labels`]).
    pub labels: BTreeMap<String, String>,
    /// Jobs at once.
    pub capacity: u32,
    /// Its own directory (git mirrors, job directories).
    pub work_dir: PathBuf,
    /// How long one lease call waits for work.
    pub poll_wait: Duration,
}

impl Settings {
    /// What it announces to the server.
    pub fn info(&self) -> ExecutorInfo {
        ExecutorInfo {
            name: self.name.clone(),
            labels: self.labels.clone(),
            capacity: self.capacity,
            protocol: PROTOCOL_VERSION,
        }
    }
}

/// Runs the executor loop until `stop` fires (running jobs are then killed without a
/// report, so they run again as a new attempt) or the source refuses it.
pub async fn run(
    source: Arc<dyn JobSource>,
    backends: Backends,
    settings: Settings,
    stop: CancellationToken,
) -> Result<(), gantry_agent::ExecutorError> {
    new(source, backends, settings).run(stop).await
}

/// The executor loop over `source`, not started yet: for an owner that also drains it
/// ([`gantry_agent::Executor::handle`]).
pub fn new(
    source: Arc<dyn JobSource>,
    backends: Backends,
    settings: Settings,
) -> gantry_agent::Executor {
    let config = gantry_agent::ExecutorConfig {
        info: settings.info(),
        work_dir: settings.work_dir,
        backends,
        poll_wait: settings.poll_wait,
    };
    gantry_agent::Executor::new(source, config)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn automatic_labels_win_and_come_first() {
        let extra: BTreeMap<String, String> = [("pool", "gpu"), ("backend", "fake")]
            .into_iter()
            .map(|(k, v)| (k.to_owned(), v.to_owned()))
            .collect();
        let l = labels("local", &extra);
        assert_eq!(l.get("backend").map(String::as_str), Some("local"));
        assert_eq!(l.get("os").map(String::as_str), Some(std::env::consts::OS));
        assert_eq!(
            l.get("arch").map(String::as_str),
            Some(std::env::consts::ARCH)
        );
        assert_eq!(l.get("pool").map(String::as_str), Some("gpu"));
        assert_eq!(
            shown_labels(&l),
            format!(
                "backend=local, os={}, arch={}, pool=gpu",
                std::env::consts::OS,
                std::env::consts::ARCH
            )
        );
    }
}
