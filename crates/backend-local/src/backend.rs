//! [`LocalBackend`]: the backend that runs jobs as processes on this host.
//!
//! `prepare` only checks and renders: the engine has already filled the job's workspace,
//! so there is nothing to create except, for very large scripts, a script file.

use std::time::Duration;

use gantry_backend::{Backend, BackendError, BackendInfo, DeploySpec, JobEnv, JobSpec};

use crate::job::{LocalJobEnv, ScriptSource};
use crate::tree::{COOKIE_VAR, new_cookie};

/// The shell that runs scripts. An absolute path, so a job that sets its own `PATH` still
/// gets a shell.
pub(crate) const SHELL: &str = "/bin/sh";

/// Scripts up to this size are passed with `sh -c`; larger ones go through a file, because
/// Linux limits a single argument to 128 KiB (`MAX_ARG_STRLEN`).
const MAX_INLINE_SCRIPT: usize = 100 * 1024;

/// Runs jobs as host processes: one `sh -e` per job in its own process group, in the
/// job's workspace, with the host's environment plus the job's.
///
/// Jobs that need containers (`image`, `services`) are refused with
/// [`BackendError::Unsupported`]. Call [`crate::become_subreaper`] once at start so that
/// orphans of jobs are reaped.
#[derive(Debug, Clone)]
pub struct LocalBackend {
    /// After SIGTERM, how long a job's processes get to exit before SIGKILL.
    pub kill_grace: Duration,
    /// Output lines longer than this many bytes are split into several log lines.
    pub max_line_bytes: usize,
    /// After the job's processes are gone, how long to keep reading output that a process
    /// outside the job's reach may still be holding open.
    pub drain_timeout: Duration,
}

impl Default for LocalBackend {
    fn default() -> Self {
        LocalBackend {
            kill_grace: Duration::from_secs(2),
            max_line_bytes: 64 * 1024,
            drain_timeout: Duration::from_millis(500),
        }
    }
}

impl LocalBackend {
    /// A backend with the default settings: 2 s kill grace, 64 KiB lines.
    pub fn new() -> Self {
        Self::default()
    }
}

#[async_trait::async_trait]
impl Backend for LocalBackend {
    fn name(&self) -> &'static str {
        "local"
    }

    async fn probe(&self) -> Result<BackendInfo, BackendError> {
        if let Err(e) = std::fs::metadata(SHELL) {
            return Err(BackendError::Unavailable {
                backend: "local",
                message: format!(
                    "{SHELL} is missing ({e}); the local backend runs scripts with it"
                ),
            });
        }
        let release = std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap_or_default();
        Ok(BackendInfo {
            name: "local".to_owned(),
            version: format!("{} {}", std::env::consts::OS, release.trim())
                .trim()
                .to_owned(),
            containers: false,
        })
    }

    async fn prepare(&self, job: &JobSpec) -> Result<Box<dyn JobEnv>, BackendError> {
        check_supported(job)?;
        job.check_strings()?;
        job.check_workspace()?;

        let cookie = new_cookie();
        let mut env = job.env.clone();
        // Last, so that it wins over anything the job sets under the same name.
        env.push((COOKIE_VAR.to_owned(), cookie.clone()));

        let program = gantry_backend::render_script(&job.script);
        let script = if program.len() <= MAX_INLINE_SCRIPT {
            ScriptSource::Inline(program)
        } else {
            ScriptSource::write_file(&program).map_err(|source| BackendError::Io {
                context: format!("failed to write the script of job \"{}\"", job.job_name),
                source,
            })?
        };

        Ok(Box::new(LocalJobEnv::new(
            job,
            env,
            cookie,
            script,
            self.clone(),
        )))
    }
}

/// Refuses jobs that need containers (to run in, as services, to build or to deploy),
/// naming the job, everything it needs that this backend lacks, and the way out.
fn check_supported(job: &JobSpec) -> Result<(), BackendError> {
    let mut what = Vec::new();
    let mut keys = Vec::new();
    if let Some(image) = &job.image {
        what.push(format!("a container (image: {image})"));
        keys.push("\"image:\"");
    }
    if !job.services.is_empty() {
        let names: Vec<&str> = job.services.iter().map(|s| s.name.as_str()).collect();
        what.push(format!("service containers ({})", names.join(", ")));
        keys.push("\"services:\"");
    }
    if let Some(build) = &job.image_build {
        what.push(format!("an image build (tag: {})", build.tags.join(", ")));
        keys.push("\"image_build:\"");
    }
    if let Some(deploy) = &job.deploy {
        what.push(match deploy {
            DeploySpec::Compose { file } => format!("a compose deployment ({file})"),
            DeploySpec::Kubernetes { manifests, .. } => {
                format!("a Kubernetes deployment ({manifests})")
            }
        });
        keys.push("\"deploy:\"");
    }
    if what.is_empty() {
        return Ok(());
    }
    Err(BackendError::Unsupported {
        job: job.job_name.clone(),
        what: what.join(" and "),
        backend: "local",
        hint: Some(format!(
            "run with Docker available (--backend auto picks it) or remove {}",
            keys.join(" and ")
        )),
    })
}
