//! [`LocalJobEnv`]: one job on the host — running its script, enforcing its timeout,
//! honouring cancel, and leaving nothing behind.

use std::ffi::OsString;
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::ExitStatus;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use gantry_backend::{
    BackendError, CancellationToken, JobEnv, JobSpec, LogSink, Outcome, ServiceFailure, Stream,
};
use tokio::process::Child;
use tokio_util::task::AbortOnDropHandle;

use crate::backend::{LocalBackend, SHELL};
use crate::lines::pump;
use crate::spawn::spawn_in_group;
use crate::tree::{self, JobTree};

/// How the rendered script reaches the shell.
#[derive(Debug)]
pub(crate) enum ScriptSource {
    /// As the argument of `sh -c`.
    Inline(String),
    /// As a file `sh` reads (too large for one argument). Removed at teardown.
    File(PathBuf),
}

impl ScriptSource {
    /// Writes `program` to a new private file in the temp directory. The file is outside
    /// the workspace on purpose: it must not show up in the job's files or artifacts.
    pub(crate) fn write_file(program: &str) -> std::io::Result<ScriptSource> {
        static NEXT: AtomicU64 = AtomicU64::new(0);
        let path = std::env::temp_dir().join(format!(
            "gantry-script-{}-{}.sh",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        ));
        let mut file = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&path)?;
        if let Err(e) = file.write_all(program.as_bytes()) {
            let _ = std::fs::remove_file(&path);
            return Err(e);
        }
        Ok(ScriptSource::File(path))
    }
}

/// A script run in progress: kept on the job env (not only in `run_script`'s future) so
/// that `teardown` can still stop it if `run_script` was abandoned half-way.
#[derive(Debug)]
struct Running {
    child: Child,
    tree: JobTree,
}

/// One job prepared by [`LocalBackend`].
#[derive(Debug)]
pub(crate) struct LocalJobEnv {
    job_name: String,
    workspace: PathBuf,
    env: Vec<(String, String)>,
    cookie: String,
    script: ScriptSource,
    timeout: Duration,
    settings: LocalBackend,
    running: Option<Running>,
}

/// Why waiting for the shell stopped.
enum Ended {
    Exited(std::io::Result<ExitStatus>),
    TimedOut,
    Cancelled,
}

impl LocalJobEnv {
    pub(crate) fn new(
        job: &JobSpec,
        env: Vec<(String, String)>,
        cookie: String,
        script: ScriptSource,
        settings: LocalBackend,
    ) -> Self {
        LocalJobEnv {
            job_name: job.job_name.clone(),
            workspace: job.workspace_dir.clone(),
            env,
            cookie,
            script,
            timeout: job.timeout,
            settings,
            running: None,
        }
    }

    fn shell_args(&self) -> Vec<OsString> {
        match &self.script {
            ScriptSource::Inline(program) => vec!["-e".into(), "-c".into(), program.into()],
            ScriptSource::File(path) => vec!["-e".into(), path.into()],
        }
    }

    /// Stops what an abandoned `run_script` left running.
    async fn stop_running(&mut self) {
        if let Some(mut running) = self.running.take() {
            tree::terminate(&running.tree, &mut running.child, self.settings.kill_grace).await;
        }
    }
}

#[async_trait::async_trait]
impl JobEnv for LocalJobEnv {
    async fn start_services(&mut self, _logs: LogSink) -> Result<(), ServiceFailure> {
        // `prepare` refuses jobs with services, so there is never anything to start.
        Ok(())
    }

    async fn run_script(
        &mut self,
        logs: LogSink,
        cancel: CancellationToken,
    ) -> Result<Outcome, BackendError> {
        if cancel.is_cancelled() {
            return Ok(Outcome::Cancelled);
        }
        self.stop_running().await;

        let mut child = spawn_in_group(
            Path::new(SHELL),
            &self.shell_args(),
            &self.workspace,
            &self.env,
        )
        .map_err(|source| BackendError::Io {
            context: format!("failed to start {SHELL} for job \"{}\"", self.job_name),
            source,
        })?;
        let Some(pid) = child.id() else {
            return Err(BackendError::Other(format!(
                "the shell of job \"{}\" vanished right after it started",
                self.job_name
            )));
        };
        let tree = JobTree::new(pid, &self.cookie);

        // The readers run as tasks so output keeps flowing while this function is busy
        // stopping processes; they are aborted if this future is dropped.
        let stop = CancellationToken::new();
        let cap = self.settings.max_line_bytes;
        let mut pumps = Vec::with_capacity(2);
        if let Some(out) = child.stdout.take() {
            let task = pump(out, Stream::Stdout, logs.clone(), cap, stop.clone());
            pumps.push(AbortOnDropHandle::new(tokio::spawn(task)));
        }
        if let Some(err) = child.stderr.take() {
            let task = pump(err, Stream::Stderr, logs.clone(), cap, stop.clone());
            pumps.push(AbortOnDropHandle::new(tokio::spawn(task)));
        }

        let running = self.running.insert(Running { child, tree });
        let ended = tokio::select! {
            status = running.child.wait() => Ended::Exited(status),
            () = tokio::time::sleep(self.timeout) => Ended::TimedOut,
            () = cancel.cancelled() => Ended::Cancelled,
        };
        // A script that finished just as the deadline or the cancel came keeps its result.
        let ended = match ended {
            Ended::TimedOut | Ended::Cancelled
                if matches!(running.child.try_wait(), Ok(Some(_))) =>
            {
                Ended::Exited(running.child.wait().await)
            }
            e => e,
        };
        match &ended {
            Ended::TimedOut => logs.system(format!(
                "timed out after {}: stopping the job's processes",
                gantry_backend::human_duration(self.timeout)
            )),
            Ended::Cancelled => logs.system("cancelled: stopping the job's processes"),
            Ended::Exited(_) => {}
        }

        // After the shell is gone, whatever it left behind (`sleep 100 &`) is stopped too:
        // the job is over, and such a process would otherwise hold the output pipes open.
        let sweep =
            tree::terminate(&running.tree, &mut running.child, self.settings.kill_grace).await;
        self.running = None;
        if sweep.signalled && matches!(ended, Ended::Exited(_)) {
            logs.system("the script left processes running; they were stopped");
        }
        if sweep.survivors {
            logs.system("some of the job's processes did not exit after SIGKILL");
        }

        // Every process of the job is gone, so the pipes normally hit end-of-file at once.
        // One that escaped both the group and the cookie could keep them open forever.
        let drained = tokio::time::timeout(self.settings.drain_timeout, async {
            for p in &mut pumps {
                let _ = p.await;
            }
        })
        .await;
        if drained.is_err() {
            stop.cancel();
            for p in &mut pumps {
                let _ = p.await;
            }
            logs.system("stopped reading output: a process outside the job still holds it open");
        }

        match ended {
            Ended::TimedOut => Ok(Outcome::TimedOut),
            Ended::Cancelled => Ok(Outcome::Cancelled),
            Ended::Exited(Ok(status)) => Ok(outcome(status)),
            Ended::Exited(Err(source)) => Err(BackendError::Io {
                context: format!("failed to wait for the shell of job \"{}\"", self.job_name),
                source,
            }),
        }
    }

    async fn teardown(mut self: Box<Self>) -> Result<(), BackendError> {
        self.stop_running().await;
        let result = match std::mem::replace(&mut self.script, ScriptSource::Inline(String::new()))
        {
            ScriptSource::File(path) => match std::fs::remove_file(&path) {
                Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(BackendError::Io {
                    context: format!("failed to remove script file {}", path.display()),
                    source: e,
                }),
                _ => Ok(()),
            },
            ScriptSource::Inline(_) => Ok(()),
        };
        tree::reap_escaped_zombies();
        result
    }
}

impl Drop for LocalJobEnv {
    /// The engine always calls `teardown`; this is the safety net for when it could not
    /// (a panic, an aborted task). Everything gets SIGKILL at once; reaping needs waiting,
    /// so it is left to a task when there is a runtime to run one.
    fn drop(&mut self) {
        if let Some(mut running) = self.running.take() {
            running.tree.kill_now();
            if let Ok(runtime) = tokio::runtime::Handle::try_current() {
                runtime.spawn(async move {
                    tree::terminate(&running.tree, &mut running.child, Duration::ZERO).await;
                });
            }
        }
        if let ScriptSource::File(path) = &self.script {
            let _ = std::fs::remove_file(path);
        }
    }
}

/// The outcome of a shell that exited on its own.
fn outcome(status: ExitStatus) -> Outcome {
    match (status.code(), status.signal()) {
        (Some(0), _) => Outcome::Success,
        (Some(exit_code), _) => Outcome::Failed { exit_code },
        // A signal gantry did not send: gantry's own kills are reported as timeout/cancel.
        (None, Some(signal)) => Outcome::Killed { signal },
        // Stopped/continued statuses are never final; nothing else exists on Unix.
        (None, None) => Outcome::Failed { exit_code: -1 },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exit_statuses_map_to_outcomes() {
        for (raw, expect) in [
            (0, Outcome::Success),
            (3 << 8, Outcome::Failed { exit_code: 3 }),
            (9, Outcome::Killed { signal: 9 }),
            (15, Outcome::Killed { signal: 15 }),
        ] {
            assert_eq!(outcome(ExitStatus::from_raw(raw)), expect, "raw {raw}");
        }
    }
}
