//! [`DockerJobEnv`]: one job in Docker — its services, its image build, its script in a
//! container, and teardown that leaves nothing behind.
//!
//! The script runs as `/bin/sh -e -c PROGRAM` (the image's entrypoint is replaced, as in
//! other CI systems: the job runs a script, not the image's default program), in the
//! job's workspace bind-mounted at `container_workdir`. Output is attached before the
//! container starts, so no line is missed.
//!
//! Ownership: a container usually runs as root, so files it creates in the bind-mounted
//! workspace belong to root on the host. When gantry itself is not root, the program is
//! wrapped so that, after the script, the workspace is given back to gantry's uid:gid
//! (the script's exit code is kept). If the script never gets there (timeout, cancel,
//! OOM), a short helper container of the same image does it, as root.

use std::path::PathBuf;
use std::sync::Arc;

use bollard::errors::Error;
use bollard::models::{ContainerCreateBody, HostConfig};
use bollard::query_parameters::{
    AttachContainerOptionsBuilder, CreateContainerOptionsBuilder, RemoveContainerOptionsBuilder,
};
use gantry_backend::{
    BackendError, CancellationToken, JobEnv, JobSpec, LogSink, Outcome, ServiceFailure, Stream,
};

use crate::backend::Inner;
use crate::connect::{api_error, describe, is_connection_error, is_not_found};
use crate::names::{Names, labels};
use crate::services::{self, Ctx, RunningService, SharedTracked, exit_code, lock, track};

/// The wrapper that gives the workspace back to the host user after the script:
/// `sh -c WRAPPER gantry PROGRAM UID:GID WORKDIR`.
const CHOWN_WRAPPER: &str = r#"/bin/sh -e -c "$1" gantry-script
code=$?
chown -R -h "$2" "$3" 2>/dev/null || true
exit $code"#;

/// One job prepared by [`crate::DockerBackend`].
pub(crate) struct DockerJobEnv {
    inner: Arc<Inner>,
    job: JobSpec,
    names: Names,
    /// Lines about pulls done in `prepare` (which has no log), shown at the first step.
    pending_notes: Vec<String>,
    tracked: SharedTracked,
    services: Vec<RunningService>,
}

impl std::fmt::Debug for DockerJobEnv {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DockerJobEnv")
            .field("job", &self.job.job_name)
            .field("names", &self.names)
            .finish_non_exhaustive()
    }
}

/// Why waiting for the job container stopped.
enum Ended {
    Exited(Result<i64, Error>),
    TimedOut,
    Cancelled,
}

impl DockerJobEnv {
    pub(crate) fn new(inner: Arc<Inner>, job: JobSpec, pulled: Vec<String>) -> Self {
        let names = Names::new(&job);
        DockerJobEnv {
            inner,
            job,
            names,
            pending_notes: pulled,
            tracked: SharedTracked::default(),
            services: Vec::new(),
        }
    }

    fn flush_notes(&mut self, logs: &LogSink) {
        for note in self.pending_notes.drain(..) {
            logs.system(note);
        }
    }

    /// The image the script runs in: the job's, else the first tag it built.
    fn script_image(&self) -> Option<String> {
        self.job.image.clone().or_else(|| {
            self.job
                .image_build
                .as_ref()
                .and_then(|b| b.tags.first().cloned())
        })
    }

    fn workspace(&self) -> Result<PathBuf, BackendError> {
        std::fs::canonicalize(&self.job.workspace_dir).map_err(|source| BackendError::Io {
            context: format!(
                "workspace of job \"{}\" is not usable: {}",
                self.job.job_name,
                self.job.workspace_dir.display()
            ),
            source,
        })
    }

    fn network(&self) -> Option<String> {
        lock(&self.tracked).network.clone()
    }

    /// Runs the script in a container of `image`.
    async fn run_container(
        &mut self,
        image: &str,
        logs: &LogSink,
        cancel: &CancellationToken,
        deadline: tokio::time::Instant,
    ) -> Result<Outcome, BackendError> {
        let docker = self.inner.docker.clone();
        let workspace = self.workspace()?;
        let workdir = self.job.container_workdir.clone();
        let program = gantry_backend::render_script(&self.job.script);
        let owner = self.inner.settings.file_owner;
        let cmd = match owner {
            None => vec!["-e".to_owned(), "-c".to_owned(), program],
            Some((uid, gid)) => vec![
                "-c".to_owned(),
                CHOWN_WRAPPER.to_owned(),
                "gantry".to_owned(),
                program,
                format!("{uid}:{gid}"),
                workdir.clone(),
            ],
        };
        let memory = self.inner.settings.memory_limit;
        let body = ContainerCreateBody {
            image: Some(image.to_owned()),
            entrypoint: Some(vec!["/bin/sh".to_owned()]),
            cmd: Some(cmd),
            env: Some(
                self.job
                    .env
                    .iter()
                    .map(|(k, v)| format!("{k}={v}"))
                    .collect(),
            ),
            working_dir: Some(workdir.clone()),
            attach_stdout: Some(true),
            attach_stderr: Some(true),
            labels: Some(labels(&self.job, &self.inner.owner, "job")),
            host_config: Some(HostConfig {
                binds: Some(vec![format!("{}:{workdir}", workspace.display())]),
                network_mode: self.network(),
                memory,
                // Equal to the memory limit: no swap, so going over it is an OOM kill.
                memory_swap: memory,
                ..Default::default()
            }),
            ..Default::default()
        };
        let name = self.names.job_container();
        let options = CreateContainerOptionsBuilder::new().name(&name).build();
        docker
            .create_container(Some(options), body)
            .await
            .map_err(|e| api_error(format!("create the job container (image {image})"), &e))?;
        track(&self.tracked, &name);

        let attach = AttachContainerOptionsBuilder::new()
            .stream(true)
            .stdout(true)
            .stderr(true)
            .build();
        let attached = docker
            .attach_container(&name, Some(attach))
            .await
            .map_err(|e| api_error("attach to the job container", &e))?;
        let pump_logs = logs.clone();
        let mut pump = tokio::spawn(crate::output::pump(attached.output, move |err, line| {
            let stream = if err { Stream::Stderr } else { Stream::Stdout };
            pump_logs.line(stream, line);
        }));

        if let Err(e) = docker.start_container(&name, None).await {
            pump.abort();
            if is_connection_error(&e) {
                return Err(api_error("start the job container", &e));
            }
            return Err(BackendError::Other(format!(
                "cannot start the job container (image {image}): {}; the image must contain \
                 /bin/sh",
                describe(&e)
            )));
        }

        let ended = tokio::select! {
            r = exit_code(&docker, &name) => Ended::Exited(r),
            () = tokio::time::sleep_until(deadline) => Ended::TimedOut,
            () = cancel.cancelled() => Ended::Cancelled,
        };
        let outcome = match ended {
            Ended::Exited(Ok(code)) => {
                let oom = docker
                    .inspect_container(&name, None)
                    .await
                    .ok()
                    .and_then(|c| c.state)
                    .and_then(|s| s.oom_killed)
                    .unwrap_or(false);
                match (oom, code) {
                    (true, _) => Outcome::OutOfMemory,
                    (false, 0) => Outcome::Success,
                    (false, code) => Outcome::Failed {
                        exit_code: i32::try_from(code).unwrap_or(-1),
                    },
                }
            }
            Ended::Exited(Err(e)) => {
                pump.abort();
                return Err(api_error("wait for the job container", &e));
            }
            Ended::TimedOut | Ended::Cancelled => {
                let why = if matches!(ended, Ended::TimedOut) {
                    format!(
                        "timed out after {}",
                        gantry_backend::human_duration(self.job.timeout)
                    )
                } else {
                    "cancelled".to_owned()
                };
                logs.system(format!("{why}: stopping the job's container"));
                services::remove_now(&docker, &self.tracked, &name).await;
                if matches!(ended, Ended::TimedOut) {
                    Outcome::TimedOut
                } else {
                    Outcome::Cancelled
                }
            }
        };
        // The attach stream ends when the container stops; bounded, in case the daemon
        // keeps it open.
        if tokio::time::timeout(self.inner.settings.drain_timeout, &mut pump)
            .await
            .is_err()
        {
            pump.abort();
        }
        if owner.is_some()
            && matches!(
                outcome,
                Outcome::TimedOut | Outcome::Cancelled | Outcome::OutOfMemory
            )
        {
            self.give_back_workspace(image, &workspace, logs).await;
        }
        Ok(outcome)
    }

    /// Gives the workspace to the host user with a helper container running as root, for
    /// when the script's own wrapper could not (it was killed).
    async fn give_back_workspace(&self, image: &str, workspace: &std::path::Path, logs: &LogSink) {
        let Some((uid, gid)) = self.inner.settings.file_owner else {
            return;
        };
        let docker = &self.inner.docker;
        let name = format!("{}-chown", self.names.job_container());
        let body = ContainerCreateBody {
            image: Some(image.to_owned()),
            user: Some("0:0".to_owned()),
            entrypoint: Some(vec!["/bin/sh".to_owned(), "-c".to_owned()]),
            cmd: Some(vec![format!("chown -R -h {uid}:{gid} /gantry-workspace")]),
            labels: Some(labels(&self.job, &self.inner.owner, "chown")),
            host_config: Some(HostConfig {
                binds: Some(vec![format!("{}:/gantry-workspace", workspace.display())]),
                network_mode: Some("none".to_owned()),
                ..Default::default()
            }),
            ..Default::default()
        };
        let options = CreateContainerOptionsBuilder::new().name(&name).build();
        if docker.create_container(Some(options), body).await.is_err() {
            logs.system("warning: could not give the workspace files back to the host user");
            return;
        }
        track(&self.tracked, &name);
        let ok = docker.start_container(&name, None).await.is_ok()
            && matches!(exit_code(docker, &name).await, Ok(0));
        if !ok {
            logs.system("warning: could not give the workspace files back to the host user");
        }
        services::remove_now(docker, &self.tracked, &name).await;
    }
}

#[async_trait::async_trait]
impl JobEnv for DockerJobEnv {
    async fn start_services(&mut self, logs: LogSink) -> Result<(), ServiceFailure> {
        self.flush_notes(&logs);
        let ctx = Ctx {
            inner: &self.inner,
            job: &self.job,
            names: &self.names,
            tracked: &self.tracked,
            logs: &logs,
        };
        services::start_all(&ctx, &mut self.services).await
    }

    async fn run_script(
        &mut self,
        logs: LogSink,
        cancel: CancellationToken,
    ) -> Result<Outcome, BackendError> {
        self.flush_notes(&logs);
        if cancel.is_cancelled() {
            return Ok(Outcome::Cancelled);
        }
        // One deadline for the build and the script together: the job's timeout.
        let deadline = tokio::time::Instant::now() + self.job.timeout;
        if let Some(build) = self.job.image_build.clone() {
            let docker = self.inner.docker.clone();
            let job = self.job.clone();
            let built = tokio::select! {
                r = crate::image::build_and_push(&docker, &job, &build, &logs) => r?,
                () = tokio::time::sleep_until(deadline) => {
                    logs.system(format!("timed out after {}: stopping the image build", gantry_backend::human_duration(self.job.timeout)));
                    return Ok(Outcome::TimedOut);
                }
                () = cancel.cancelled() => {
                    logs.system("cancelled: stopping the image build");
                    return Ok(Outcome::Cancelled);
                }
            };
            if !built {
                return Ok(Outcome::Failed { exit_code: 1 });
            }
        }
        if self.job.script.iter().all(|l| l.trim().is_empty()) {
            return Ok(Outcome::Success);
        }
        let Some(image) = self.script_image() else {
            return Err(BackendError::Other(format!(
                "job \"{}\" has a script but no image to run it in",
                self.job.job_name
            )));
        };
        self.run_container(&image, &logs, &cancel, deadline).await
    }

    async fn teardown(mut self: Box<Self>) -> Result<(), BackendError> {
        let docker = self.inner.docker.clone();
        let containers = std::mem::take(&mut lock(&self.tracked).containers);
        let removals = containers.iter().map(|name| {
            let docker = docker.clone();
            async move {
                let options = RemoveContainerOptionsBuilder::new()
                    .force(true)
                    .v(true)
                    .build();
                match docker.remove_container(name, Some(options)).await {
                    Ok(()) => Ok(()),
                    Err(e) if is_not_found(&e) => Ok(()),
                    Err(e) => Err((name.clone(), e)),
                }
            }
        });
        let failed: Vec<(String, Error)> = futures_util::future::join_all(removals)
            .await
            .into_iter()
            .filter_map(Result::err)
            .collect();
        services::join_followers(
            std::mem::take(&mut self.services),
            self.inner.settings.drain_timeout,
        )
        .await;
        let network = lock(&self.tracked).network.take();
        let mut network_error = None;
        if let Some(net) = network {
            match docker.remove_network(&net).await {
                Ok(()) => {}
                Err(e) if is_not_found(&e) => {}
                Err(e) => network_error = Some((net, e)),
            }
        }
        // Anything left is still tracked, so the drop safety net tries once more.
        for (name, _) in &failed {
            lock(&self.tracked).containers.push(name.clone());
        }
        if let Some((net, _)) = &network_error {
            lock(&self.tracked).network = Some(net.clone());
        }
        let first = failed
            .first()
            .map(|(n, e)| (format!("remove container {n}"), e))
            .or(network_error
                .as_ref()
                .map(|(n, e)| (format!("remove network {n}"), e)));
        match first {
            None => Ok(()),
            Some((what, e)) => Err(api_error(what, e)),
        }
    }
}

impl Drop for DockerJobEnv {
    /// The engine always calls `teardown`; this is the safety net when it could not (a
    /// panic, an aborted task): what is still tracked is removed by a background task.
    fn drop(&mut self) {
        for svc in &self.services {
            svc.follower.abort();
        }
        let (containers, network) = {
            let mut t = lock(&self.tracked);
            (std::mem::take(&mut t.containers), t.network.take())
        };
        if containers.is_empty() && network.is_none() {
            return;
        }
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            return;
        };
        let docker = self.inner.docker.clone();
        runtime.spawn(async move {
            for name in containers {
                let options = RemoveContainerOptionsBuilder::new()
                    .force(true)
                    .v(true)
                    .build();
                let _ = docker.remove_container(&name, Some(options)).await;
            }
            if let Some(net) = network {
                let _ = docker.remove_network(&net).await;
            }
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The wrapper keeps the script's exit code and hands the workspace over, with the
    /// host's own `sh` and `chown` standing in for the container's.
    #[test]
    fn the_chown_wrapper_keeps_the_exit_code() {
        let dir = tempfile::tempdir().expect("tempdir");
        let uid = nix::unistd::geteuid().as_raw();
        let gid = nix::unistd::getegid().as_raw();
        for (script, expect) in [
            ("touch made; exit 7", 7),
            ("touch made", 0),
            ("false; touch no", 1),
        ] {
            let status = std::process::Command::new("sh")
                .args(["-c", CHOWN_WRAPPER, "gantry", script])
                .arg(format!("{uid}:{gid}"))
                .arg(dir.path())
                .current_dir(dir.path())
                .status()
                .expect("sh runs");
            assert_eq!(status.code(), Some(expect), "{script}");
        }
        assert!(dir.path().join("made").exists());
        assert!(
            !dir.path().join("no").exists(),
            "sh -e stops at the first failure"
        );
    }
}
