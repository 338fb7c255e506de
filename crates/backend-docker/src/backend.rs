//! [`DockerBackend`]: connecting, probing, and checking a job before anything is created.
//!
//! `prepare` creates nothing in Docker: it checks the job (workspace, strings, build
//! context) and makes sure every image the job names is present, pulling what is missing.
//! A missing image is a configuration problem, reported as
//! [`BackendError::Unsupported`] so the engine does not retry it. Containers and networks
//! are created by the [`JobEnv`] steps, which track them for teardown.

use std::sync::Arc;
use std::time::Duration;

use bollard::Docker;
use gantry_backend::{Backend, BackendError, BackendInfo, DeploySpec, JobEnv, JobSpec};

use crate::connect;
use crate::image;
use crate::job::DockerJobEnv;
use crate::owner::Owner;
use crate::sweep::{self, SweepReport};

/// Knobs of the Docker backend. `Default` is what `gantry run` uses.
#[derive(Debug, Clone)]
pub struct DockerSettings {
    /// Memory limit of job containers in bytes (`None`: unlimited). A script that goes
    /// over it is killed and reported as [`gantry_backend::Outcome::OutOfMemory`].
    pub memory_limit: Option<i64>,
    /// After the script, files in the workspace are given to this `uid:gid`, so that the
    /// host (artifact collection, the next steps) can use and remove them. Default: the
    /// user running gantry when that is not root; root needs nothing.
    pub file_owner: Option<(u32, u32)>,
    /// The tools the readiness probe may use, in order (`None`: all it knows, see the
    /// `ready` module). Tests use it to exercise one tool at a time.
    pub probe_tools: Option<Vec<String>>,
    /// How many of a failing service's last log lines go into the error.
    pub service_log_lines: usize,
    /// How long teardown waits for the last output of stopped containers.
    pub drain_timeout: Duration,
}

impl Default for DockerSettings {
    fn default() -> Self {
        let euid = nix::unistd::geteuid().as_raw();
        let egid = nix::unistd::getegid().as_raw();
        DockerSettings {
            memory_limit: None,
            file_owner: (euid != 0).then_some((euid, egid)),
            probe_tools: None,
            service_log_lines: 30,
            drain_timeout: Duration::from_secs(2),
        }
    }
}

/// Shared by the backend and every job it prepared.
#[derive(Debug)]
pub(crate) struct Inner {
    pub docker: Docker,
    pub server_version: String,
    pub settings: DockerSettings,
    pub owner: Owner,
}

/// Runs jobs in Docker containers. Cheap to clone; one value serves many jobs at once.
#[derive(Debug, Clone)]
pub struct DockerBackend {
    inner: Arc<Inner>,
}

impl DockerBackend {
    /// Connects to the daemon at `DOCKER_HOST` (default `/var/run/docker.sock`) with the
    /// default settings. A daemon that does not answer is [`BackendError::Unavailable`],
    /// with how to start one.
    pub async fn connect() -> Result<DockerBackend, BackendError> {
        Self::connect_with(DockerSettings::default()).await
    }

    /// Like [`DockerBackend::connect`], with `settings`.
    pub async fn connect_with(settings: DockerSettings) -> Result<DockerBackend, BackendError> {
        let host = std::env::var("DOCKER_HOST").ok();
        Self::connect_at(host.as_deref(), settings).await
    }

    /// Connects to the daemon at `host`, written like `DOCKER_HOST`
    /// (`unix:///var/run/docker.sock`, `tcp://127.0.0.1:2375`; `None`: the default
    /// socket). The daemon must run on this machine: workspaces are bind-mounted.
    pub async fn connect_at(
        host: Option<&str>,
        settings: DockerSettings,
    ) -> Result<DockerBackend, BackendError> {
        let (docker, server_version) = connect::connect(host).await?;
        Ok(DockerBackend {
            inner: Arc::new(Inner {
                docker,
                server_version,
                settings,
                owner: Owner::current(),
            }),
        })
    }

    /// The settings in use.
    pub fn settings(&self) -> &DockerSettings {
        &self.inner.settings
    }

    /// Removes every container, network and volume whose owning gantry process is no
    /// longer running (a gantry killed with `kill -9`, a crash, a reboot). Resources of
    /// running gantry processes, this one included, are left alone.
    pub async fn sweep(&self) -> Result<SweepReport, BackendError> {
        sweep::sweep(&self.inner).await
    }
}

#[async_trait::async_trait]
impl Backend for DockerBackend {
    fn name(&self) -> &'static str {
        "docker"
    }

    async fn probe(&self) -> Result<BackendInfo, BackendError> {
        let v = self
            .inner
            .docker
            .version()
            .await
            .map_err(|e| connect::api_error("ask the Docker daemon for its version", &e))?;
        Ok(BackendInfo {
            name: "docker".to_owned(),
            version: format!(
                "Docker Engine {} (API {})",
                v.version
                    .unwrap_or_else(|| self.inner.server_version.clone()),
                v.api_version.unwrap_or_default()
            ),
            containers: true,
        })
    }

    async fn prepare(&self, job: &JobSpec) -> Result<Box<dyn JobEnv>, BackendError> {
        check_supported(job)?;
        job.check_strings()?;
        check_workdir(job)?;
        job.check_workspace()?;
        if let Some(build) = &job.image_build {
            image::check_context(job, build)?;
        }
        // Every image the job names must be here before anything is created; the image
        // this job builds itself is not (yet).
        let built = job
            .image_build
            .as_ref()
            .map(|b| b.tags.clone())
            .unwrap_or_default();
        let mut pulled = Vec::new();
        let wanted = job.image.iter().map(|i| (i, None)).chain(
            job.services
                .iter()
                .map(|s| (&s.image, Some(s.name.as_str()))),
        );
        for (name, service) in wanted {
            if built.contains(name) {
                continue;
            }
            match image::ensure(&self.inner.docker, name).await {
                Ok(Some(note)) => pulled.push(note),
                Ok(None) => {}
                Err(image::ImageError::Daemon(e)) => return Err(e),
                Err(image::ImageError::Missing(why)) => {
                    let what = match service {
                        Some(s) => format!("image {name} for service \"{s}\""),
                        None => format!("image {name}"),
                    };
                    return Err(BackendError::Unsupported {
                        job: job.job_name.clone(),
                        what,
                        backend: "docker",
                        hint: Some(why),
                    });
                }
            }
        }
        Ok(Box::new(DockerJobEnv::new(
            self.inner.clone(),
            job.clone(),
            pulled,
        )))
    }
}

/// Refuses what the Docker backend cannot do: deployments (not implemented yet), and a
/// script with services but no container to run in.
fn check_supported(job: &JobSpec) -> Result<(), BackendError> {
    let unsupported = |what: String, hint: &str| {
        Err(BackendError::Unsupported {
            job: job.job_name.clone(),
            what,
            backend: "docker",
            hint: Some(hint.to_owned()),
        })
    };
    if let Some(deploy) = &job.deploy {
        let what = match deploy {
            DeploySpec::Compose { file } => format!("a compose deployment ({file})"),
            DeploySpec::Kubernetes { manifests, .. } => {
                format!("a Kubernetes deployment ({manifests})")
            }
        };
        return unsupported(what, "deployments are not implemented yet");
    }
    let has_script = job.script.iter().any(|l| !l.trim().is_empty());
    if has_script && job.image.is_none() && job.image_build.is_none() && !job.services.is_empty() {
        return unsupported(
            "its script to run next to its services".to_owned(),
            "services are reached by name from a container on the job's network: give the \
             job an `image:` to run its script in",
        );
    }
    Ok(())
}

/// The workspace is mounted at `workspace:`, which must be absolute in the container.
fn check_workdir(job: &JobSpec) -> Result<(), BackendError> {
    if job.container_workdir.starts_with('/') {
        return Ok(());
    }
    Err(BackendError::Other(format!(
        "job \"{}\" cannot run: workspace {:?} must be an absolute path inside the container",
        job.job_name, job.container_workdir
    )))
}
