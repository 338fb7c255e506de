//! [`Watched`]: the job source of `gantry agent`, wrapped so that the agent can tell its
//! operator what it does (a line per job leased and per result, lost contact and
//! reconnection, leases lost to another executor). Draining is the executor's own
//! ([`gantry_agent::ExecutorHandle::drain`]).
//!
//! The executor loop reports nothing of this itself; every one of these events is a call
//! through the [`JobSource`] it uses, so watching the calls is enough.
//!
//! A job counts as running from its lease until its result was accepted or refused, the
//! server said the lease is gone, or its heartbeats stopped: the executor heartbeats
//! every running job at least every 2 s whatever the network does, and stops only when
//! the job is over (including when it gave the lease up on its own after failing to
//! reach the server for the lease's whole time to live).

use std::collections::HashMap;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use gantry_protocol::{
    ExecutorInfo, Finish, JobReport, JobSource, Lease, LeaseError, LeaseId, LeaseState, LogChunk,
};

use crate::paint;

/// Heartbeats of a running job come at least this often (the executor's own bound is
/// 2 s; the rest is slack for a slow machine).
const BEATS_AT_LEAST_EVERY: Duration = Duration::from_secs(10);

/// One job the agent holds.
struct Held {
    /// `run 12 (app #3) job build`.
    title: String,
    leased: Instant,
    /// When the last heartbeat call started, if one did.
    last_beat: Option<Instant>,
    /// Heartbeat calls in flight.
    beating: u32,
    ttl: Duration,
}

impl Held {
    /// Whether the executor still works on it, judged by its heartbeats.
    fn alive(&self, now: Instant) -> bool {
        if self.beating > 0 {
            return true;
        }
        let since = self.last_beat.unwrap_or(self.leased);
        now.duration_since(since) < BEATS_AT_LEAST_EVERY.max(self.ttl)
    }
}

/// A [`JobSource`] that reports what passes through it (see the module docs).
pub struct Watched {
    inner: Arc<dyn JobSource>,
    held: Mutex<HashMap<LeaseId, Held>>,
    /// The last lease call failed to reach the server.
    offline: AtomicBool,
}

impl Watched {
    /// Wraps `inner`.
    pub fn new(inner: Arc<dyn JobSource>) -> Watched {
        Watched {
            inner,
            held: Mutex::new(HashMap::new()),
            offline: AtomicBool::new(false),
        }
    }

    fn held(&self) -> std::sync::MutexGuard<'_, HashMap<LeaseId, Held>> {
        self.held.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Jobs running now. Jobs whose heartbeats stopped without a word from the server
    /// (the executor gave their lease up after failing to reach it) are forgotten here.
    pub fn running(&self) -> usize {
        let now = Instant::now();
        let mut held = self.held();
        held.retain(|_, h| {
            let alive = h.alive(now);
            if !alive {
                paint::err(&format!(
                    "{}: stopped without contact with the server for the lease's time to \
                     live; the server runs it again\n",
                    h.title
                ));
            }
            alive
        });
        held.len()
    }

    /// The job is over; says so with `what`, if given.
    fn done(&self, lease: &LeaseId, what: Option<String>) {
        let held = self.held().remove(lease);
        if let (Some(held), Some(what)) = (held, what) {
            paint::err(&format!("{}: {what}\n", held.title));
        }
    }

    /// The server no longer knows this lease: the executor kills the job and reports
    /// nothing more.
    fn lost(&self, lease: &LeaseId, why: &str) {
        self.done(
            lease,
            Some(format!(
                "lease lost ({why}); the job is stopped here and its result dropped"
            )),
        );
    }

    /// Says when the server stops answering (any call: lease requests while the agent
    /// has room, heartbeats while it is busy) and when it answers again.
    fn contact<T>(&self, answer: &Result<T, LeaseError>) {
        match answer {
            Err(LeaseError::Unavailable(why)) => {
                if !self.offline.swap(true, Ordering::SeqCst) {
                    paint::err(&format!(
                        "lost contact with the server ({why}); retrying (running jobs \
                         carry on)\n"
                    ));
                }
            }
            _ => {
                if self.offline.swap(false, Ordering::SeqCst) {
                    paint::err("reconnected to the server\n");
                }
            }
        }
    }

    /// Watches the answer of any call made for a lease.
    fn check<T>(&self, lease: &LeaseId, answer: &Result<T, LeaseError>) {
        if let Err(LeaseError::Stale { reason, .. }) = answer {
            self.lost(lease, reason);
        }
    }
}

/// `succeeded`, `failed: exit code 3`, … with the wall time.
fn result_words(finish: &Finish) -> String {
    let took = Duration::from_millis(finish.duration_ms);
    let what = match &finish.report {
        JobReport::Succeeded => "succeeded".to_owned(),
        JobReport::Failed {
            outcome, allowed, ..
        } => {
            if *allowed {
                format!("failed (allowed): {outcome}")
            } else {
                format!("failed: {outcome}")
            }
        }
        JobReport::Errored { message } => format!("errored: {message}"),
        JobReport::Cancelled => "cancelled".to_owned(),
    };
    format!("{what} ({:.1}s)", took.as_secs_f64())
}

#[async_trait::async_trait]
impl JobSource for Watched {
    async fn lease(&self, me: &ExecutorInfo, wait: Duration) -> Result<Option<Lease>, LeaseError> {
        // Forget jobs that ended silently, so that the table stays small.
        self.running();
        let answer = self.inner.lease(me, wait).await;
        self.contact(&answer);
        match &answer {
            Err(_) => {}
            Ok(lease) => {
                if let Some(lease) = lease {
                    let title = format!(
                        "run {} ({} #{}) job {}",
                        lease.run_id, lease.pipeline, lease.run_number, lease.job_key
                    );
                    paint::err(&format!("{title}: leased (attempt {})\n", lease.attempt));
                    self.held().insert(
                        lease.id.clone(),
                        Held {
                            title,
                            leased: Instant::now(),
                            last_beat: None,
                            beating: 0,
                            ttl: Duration::from_secs(lease.ttl_secs),
                        },
                    );
                }
            }
        }
        answer
    }

    async fn heartbeat(&self, lease: &LeaseId) -> Result<LeaseState, LeaseError> {
        if let Some(h) = self.held().get_mut(lease) {
            h.last_beat = Some(Instant::now());
            h.beating += 1;
        }
        let answer = self.inner.heartbeat(lease).await;
        self.contact(&answer);
        if let Some(h) = self.held().get_mut(lease) {
            h.beating = h.beating.saturating_sub(1);
            h.last_beat = Some(Instant::now());
        }
        match &answer {
            Ok(LeaseState::Lost) => self.lost(lease, "the server gave the job to another executor"),
            Ok(LeaseState::Cancelled) => {
                if let Some(h) = self.held().get(lease) {
                    paint::err(&format!(
                        "{}: cancelled on the server; stopping it\n",
                        h.title
                    ));
                }
            }
            _ => self.check(lease, &answer),
        }
        answer
    }

    async fn append_log(&self, lease: &LeaseId, chunk: LogChunk) -> Result<(), LeaseError> {
        let answer = self.inner.append_log(lease, chunk).await;
        self.check(lease, &answer);
        answer
    }

    async fn put_artifact(
        &self,
        lease: &LeaseId,
        digest: &str,
        path: &Path,
    ) -> Result<(), LeaseError> {
        let answer = self.inner.put_artifact(lease, digest, path).await;
        self.check(lease, &answer);
        answer
    }

    async fn get_artifact(
        &self,
        lease: &LeaseId,
        digest: &str,
        dest: &Path,
    ) -> Result<(), LeaseError> {
        let answer = self.inner.get_artifact(lease, digest, dest).await;
        self.check(lease, &answer);
        answer
    }

    async fn get_cache(
        &self,
        lease: &LeaseId,
        key: &str,
    ) -> Result<Option<gantry_engine::artifacts::Manifest>, LeaseError> {
        let answer = self.inner.get_cache(lease, key).await;
        self.check(lease, &answer);
        answer
    }

    async fn put_cache(
        &self,
        lease: &LeaseId,
        key: &str,
        manifest: gantry_engine::artifacts::Manifest,
    ) -> Result<bool, LeaseError> {
        let answer = self.inner.put_cache(lease, key, manifest).await;
        self.check(lease, &answer);
        answer
    }

    async fn finish(&self, lease: &LeaseId, finish: Finish) -> Result<(), LeaseError> {
        let words = result_words(&finish);
        let answer = self.inner.finish(lease, finish).await;
        match &answer {
            Ok(()) => self.done(lease, Some(words)),
            Err(LeaseError::Stale { reason, .. }) => {
                self.done(
                    lease,
                    Some(format!(
                        "result ({words}) refused: the lease is no longer valid ({reason})"
                    )),
                );
            }
            // The executor tries again.
            Err(LeaseError::Unavailable(_)) => {}
            Err(e) => self.done(lease, Some(format!("result ({words}) refused: {e}"))),
        }
        answer
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn results_in_words() {
        let check = |report: JobReport, want: &str| {
            let finish = Finish {
                report,
                attempts: 1,
                duration_ms: 4_250,
                manifest: None,
            };
            assert_eq!(result_words(&finish), want);
        };
        check(JobReport::Succeeded, "succeeded (4.2s)");
        check(
            JobReport::Failed {
                exit_code: Some(3),
                outcome: "exit code 3".into(),
                allowed: false,
            },
            "failed: exit code 3 (4.2s)",
        );
        check(
            JobReport::Errored {
                message: "no docker".into(),
            },
            "errored: no docker (4.2s)",
        );
        check(JobReport::Cancelled, "cancelled (4.2s)");
    }

    #[test]
    fn jobs_count_as_running_while_they_heartbeat() {
        let now = Instant::now();
        let held = |leased: Duration, last_beat: Option<Duration>, beating: u32| Held {
            title: String::new(),
            leased: now - leased,
            last_beat: last_beat.map(|d| now - d),
            beating,
            ttl: Duration::from_secs(3),
        };
        let s = Duration::from_secs;
        for (h, alive) in [
            (held(s(1), None, 0), true),
            (held(s(60), Some(s(1)), 0), true),
            (held(s(60), Some(s(30)), 1), true),
            (held(s(60), Some(s(30)), 0), false),
            (held(s(60), None, 0), false),
        ] {
            assert_eq!(h.alive(now), alive);
        }
    }
}
