//! [`Executor`]: the loop that leases jobs from a [`JobSource`] and runs them, and
//! [`ExecutorHandle`], how its owner drains it (no new jobs, the running ones finish).

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use gantry_backend::CancellationToken;
use gantry_engine::Backends;
use gantry_protocol::{ExecutorInfo, JobSource, LeaseError};
use tokio::sync::Semaphore;
use tokio::task::JoinSet;

use crate::checkout::Checkouts;
use crate::job::{Shared, run_lease};
use crate::leases::LeaseRecords;

/// How an executor runs.
#[derive(Clone)]
pub struct ExecutorConfig {
    /// Who it is; `info.capacity` jobs run at once (0 is taken as 1).
    pub info: ExecutorInfo,
    /// Its own directory: bare mirrors under `git/`, one directory per running job under
    /// `jobs/` (swept at start: whatever is there was left by an executor that died), a
    /// record of each lease it holds under `leases/` (see [`crate::earlier_leases`];
    /// cleared at start). Never shared by two executors, nor by two `run`s at once.
    pub work_dir: PathBuf,
    /// Where jobs run.
    pub backends: Backends,
    /// How long one `lease` call may wait for work (long poll).
    pub poll_wait: Duration,
}

impl std::fmt::Debug for ExecutorConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ExecutorConfig")
            .field("info", &self.info)
            .field("work_dir", &self.work_dir)
            .field("host_backend", &self.backends.host.name())
            .field(
                "container_backend",
                &self.backends.containers.as_ref().map(|b| b.name()),
            )
            .field("poll_wait", &self.poll_wait)
            .finish()
    }
}

/// Why an executor stopped on its own.
#[derive(Debug, thiserror::Error)]
pub enum ExecutorError {
    /// The job source refused this executor for good (token, protocol version).
    #[error("the server refused this executor")]
    Refused(#[source] LeaseError),
    /// The work directory cannot be prepared.
    #[error("cannot prepare the work directory {}", path.display())]
    WorkDir {
        /// Which directory.
        path: PathBuf,
        /// Cause.
        #[source]
        source: std::io::Error,
    },
}

/// Leases jobs from a [`JobSource`] and runs them on its backends, up to its capacity at
/// once. The same loop serves the server's built-in executor (an in-process source) and
/// remote agents (an HTTP source).
pub struct Executor {
    source: Arc<dyn JobSource>,
    config: ExecutorConfig,
    handle: ExecutorHandle,
}

/// What the owner of a running [`Executor`] may do to it besides cancelling it: drain it
/// and count its jobs. Clones share the executor; get one with [`Executor::handle`].
#[derive(Debug, Clone, Default)]
pub struct ExecutorHandle {
    drain: CancellationToken,
    running: Arc<AtomicUsize>,
}

impl ExecutorHandle {
    /// Stops leasing for good; [`Executor::run`] returns once the jobs running now have
    /// finished, reported and been cleaned up (a cancel meanwhile still kills them). A
    /// lease request waiting on the server is abandoned: should the server hand out a
    /// job in that very instant, its lease expires unanswered and the job runs again
    /// elsewhere, as for any lost executor; waiting for the long poll to end instead
    /// would make stopping an idle executor take up to its poll time.
    pub fn drain(&self) {
        self.drain.cancel();
    }

    /// Whether [`ExecutorHandle::drain`] was called.
    pub fn draining(&self) -> bool {
        self.drain.is_cancelled()
    }

    /// Jobs running now: leased and not yet over (reported, taken back by the server,
    /// or stopped, and cleaned up).
    pub fn running(&self) -> usize {
        self.running.load(Ordering::SeqCst)
    }
}

/// Counts one job as running while it lives.
struct Counted(Arc<AtomicUsize>);

impl Counted {
    fn new(running: &Arc<AtomicUsize>) -> Counted {
        running.fetch_add(1, Ordering::SeqCst);
        Counted(Arc::clone(running))
    }
}

impl Drop for Counted {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

impl Executor {
    /// An executor leasing from `source`.
    pub fn new(source: Arc<dyn JobSource>, config: ExecutorConfig) -> Executor {
        Executor {
            source,
            config,
            handle: ExecutorHandle::default(),
        }
    }

    /// A handle to drain this executor and count its jobs, also while it runs.
    pub fn handle(&self) -> ExecutorHandle {
        self.handle.clone()
    }

    /// Leases and runs jobs until `cancel` fires, then kills the running jobs, tears them
    /// down and returns once they are cleaned up. Jobs stopped that way are not reported:
    /// their leases expire and the server hands them out again as new attempts.
    ///
    /// Once drained ([`ExecutorHandle::drain`]), it leases no more and returns when the
    /// running jobs are over.
    ///
    /// A source that is unavailable is retried with a growing pause (up to 5 s); one
    /// that refuses the executor (bad token, other protocol version) ends the loop with
    /// [`ExecutorError::Refused`], after the running jobs were stopped.
    pub async fn run(&self, cancel: CancellationToken) -> Result<(), ExecutorError> {
        let work_dir = &self.config.work_dir;
        let jobs_dir = work_dir.join("jobs");
        let prepare = |path: PathBuf| {
            move |source| ExecutorError::WorkDir {
                path: path.clone(),
                source,
            }
        };
        match std::fs::remove_dir_all(&jobs_dir) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(prepare(jobs_dir.clone())(e)),
        }
        std::fs::create_dir_all(&jobs_dir).map_err(prepare(jobs_dir.clone()))?;
        let records = LeaseRecords::new(work_dir);
        records.reset().map_err(prepare(work_dir.join("leases")))?;
        let shared = Arc::new(Shared {
            source: Arc::clone(&self.source),
            backends: self.config.backends.clone(),
            checkouts: Checkouts::new(work_dir.join("git")),
            jobs_dir,
        });
        // Jobs stop with the executor, also when it stops on its own.
        let jobs_token = cancel.child_token();
        let result = self
            .lease_loop(&shared, &records, &cancel, &jobs_token)
            .await;
        jobs_token.cancel();
        result
    }

    async fn lease_loop(
        &self,
        shared: &Arc<Shared>,
        records: &LeaseRecords,
        cancel: &CancellationToken,
        jobs_token: &CancellationToken,
    ) -> Result<(), ExecutorError> {
        let info = &self.config.info;
        let drain = &self.handle.drain;
        let slots = Arc::new(Semaphore::new(info.capacity.max(1) as usize));
        let mut jobs = Jobs {
            set: JoinSet::new(),
            stop: jobs_token.clone(),
        };
        let mut leased: u64 = 0;
        let mut backoff = Duration::from_millis(100);
        let outcome = loop {
            while jobs.set.try_join_next().is_some() {}
            // Biased: once stopped or drained, nothing more is leased, even when work
            // is ready at the same moment.
            let permit = tokio::select! {
                biased;
                () = cancel.cancelled() => break Ok(()),
                () = drain.cancelled() => break Ok(()),
                permit = Arc::clone(&slots).acquire_owned() => match permit {
                    Ok(permit) => permit,
                    Err(_) => break Ok(()),
                },
            };
            let asked = tokio::select! {
                biased;
                () = cancel.cancelled() => break Ok(()),
                () = drain.cancelled() => break Ok(()),
                asked = self.source.lease(info, self.config.poll_wait) => asked,
            };
            match asked {
                Ok(Some(lease)) => {
                    backoff = Duration::from_millis(100);
                    leased += 1;
                    records.hold(&lease.id);
                    let id = lease.id.clone();
                    let counted = Counted::new(&self.handle.running);
                    let job = run_lease(Arc::clone(shared), lease, leased, jobs_token.clone());
                    let (records, stopping) = (records.clone(), jobs_token.clone());
                    jobs.set.spawn(async move {
                        job.await;
                        // A job stopped with the executor is not reported, so its lease is
                        // still the server's current one: the record stays for the next run.
                        if !stopping.is_cancelled() {
                            records.release(&id);
                        }
                        drop(counted);
                        drop(permit);
                    });
                }
                Ok(None) => {}
                Err(e @ (LeaseError::Unauthorized(_) | LeaseError::Incompatible { .. })) => {
                    break Err(ExecutorError::Refused(e));
                }
                Err(_) => {
                    drop(permit);
                    tokio::select! {
                        () = cancel.cancelled() => break Ok(()),
                        () = tokio::time::sleep(backoff) => {}
                    }
                    backoff = (backoff * 2).min(Duration::from_secs(5));
                }
            }
        };
        if outcome.is_ok() && drain.is_cancelled() {
            // Drained: the running jobs finish, unless a cancel comes first.
            loop {
                tokio::select! {
                    () = cancel.cancelled() => break,
                    next = jobs.set.join_next() => if next.is_none() { break },
                }
            }
        }
        jobs_token.cancel();
        while jobs.set.join_next().await.is_some() {}
        outcome
    }
}

/// The running jobs' tasks. Should `run`'s future be dropped mid-run, the jobs are told
/// to stop and left to kill, tear down and clean up on their own in the background,
/// rather than being aborted at whatever await they were in (which would skip teardown).
struct Jobs {
    set: JoinSet<()>,
    stop: CancellationToken,
}

impl Drop for Jobs {
    fn drop(&mut self) {
        if !self.set.is_empty() {
            self.stop.cancel();
            self.set.detach_all();
        }
    }
}
