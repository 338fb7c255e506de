//! One lease, from start to report: check out, restore artifacts, run (restoring and
//! saving the job's cache through the lease, `caches.rs`), forward logs, heartbeat,
//! upload artifacts, finish, clean up.
//!
//! The job's directory (`work_dir/jobs/<run>-<job>-<attempt>-<n>`) holds the checkout
//! (`src/`), the job's workspaces (`work/`), its artifact store (`artifacts/`) and
//! scratch files; it is removed when the lease ends, however it ends.
//!
//! Who stops a job, and what is reported then:
//! - the server, through a heartbeat answering `Cancelled`: the job is killed and torn
//!   down, and finishes `Cancelled`;
//! - the server, through `Lost` or a `Stale` refusal of any call: the job is killed and
//!   nothing more is reported (another executor may have the job by now);
//! - the executor's own clock, when no heartbeat was confirmed for the lease's whole time
//!   to live (the server unreachable, the token revoked): the lease has expired on the
//!   server, so the job is killed and nothing more is reported, as for `Lost`;
//! - the executor shutting down: the job is killed and nothing is reported, so that its
//!   lease expires and the server hands the job out again as a new attempt.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use gantry_backend::CancellationToken;
use gantry_engine::artifacts::{ArtifactStore, Manifest};
use gantry_engine::mask::Masker;
use gantry_engine::{Backends, JobRun, JobStatus, OneJobResult, RunEvent, Source, run_one};
use gantry_protocol::{Finish, JobSource, Lease, LeaseError, LeaseState};
use tokio::sync::mpsc::UnboundedSender;

use crate::caches::LeaseCaches;
use crate::checkout::Checkouts;
use crate::report::{chain, job_report, system_line};
use crate::{blobs, logs};

/// What the executor's jobs share.
pub(crate) struct Shared {
    pub source: Arc<dyn JobSource>,
    pub backends: Backends,
    pub checkouts: Checkouts,
    /// `work_dir/jobs`.
    pub jobs_dir: PathBuf,
}

/// How one job is being stopped, shared by its tasks.
pub(crate) struct Control {
    /// Kills the job (a child of the executor's shutdown token).
    pub cancel: CancellationToken,
    /// The executor is shutting down.
    shutdown: CancellationToken,
    /// A heartbeat said `Cancelled`.
    server_cancelled: AtomicBool,
    /// The lease is gone: report nothing more.
    lost: AtomicBool,
}

impl Control {
    fn new(shutdown: &CancellationToken) -> Control {
        Control {
            cancel: shutdown.child_token(),
            shutdown: shutdown.clone(),
            server_cancelled: AtomicBool::new(false),
            lost: AtomicBool::new(false),
        }
    }

    /// The lease is gone: kill the job and stop reporting.
    pub(crate) fn lose(&self) {
        self.lost.store(true, Ordering::SeqCst);
        self.cancel.cancel();
    }

    fn lost(&self) -> bool {
        self.lost.load(Ordering::SeqCst)
    }

    /// Nothing more is to be sent for this lease.
    pub(crate) fn silenced(&self) -> bool {
        self.lost() || self.shutdown.is_cancelled()
    }
}

/// Runs `lease` to its end (see the module docs). `n` makes the job's directory unique.
pub(crate) async fn run_lease(
    shared: Arc<Shared>,
    lease: Lease,
    n: u64,
    shutdown: CancellationToken,
) {
    let dir = shared.jobs_dir.join(format!(
        "{}-{}-{}-{n}",
        lease.run_id,
        safe_name(&lease.job_key),
        lease.attempt
    ));
    let control = Arc::new(Control::new(&shutdown));
    let beating = CancellationToken::new();
    let heartbeat = tokio::spawn(heartbeat(
        Arc::clone(&shared.source),
        lease.clone(),
        Arc::clone(&control),
        beating.clone(),
    ));
    let (events, rx) = tokio::sync::mpsc::unbounded_channel();
    let forwarding = tokio::spawn(logs::forward(
        Arc::clone(&shared.source),
        lease.id.clone(),
        rx,
        Arc::clone(&control),
    ));

    let started = Instant::now();
    let result = execute(&shared, &lease, &dir, &control, events).await;
    // Every log line reaches the server before the result does.
    let _ = forwarding.await;
    let mut finish = Finish {
        report: job_report(&result.status),
        attempts: result.attempts,
        duration_ms: u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX),
        manifest: None,
    };
    if result.status == JobStatus::Succeeded
        && let Some(manifest) = result.manifest
    {
        match upload(&shared, &lease, &dir, &manifest, &control).await {
            Ok(()) => finish.manifest = Some(manifest),
            Err(message) => {
                finish.report = gantry_protocol::JobReport::Errored { message };
            }
        }
    }
    let abandoned =
        result.status == JobStatus::Cancelled && !control.server_cancelled.load(Ordering::SeqCst);
    if !control.lost() && !abandoned {
        report(&shared, &lease, finish, &control).await;
    }
    beating.cancel();
    let _ = heartbeat.await;
    let _ = tokio::task::spawn_blocking(move || gantry_engine::workspace::remove(&dir)).await;
}

/// Checkout, artifacts, the job itself. Setup failures end the job `Errored` with no
/// attempt made; a stop during setup ends it `Cancelled`.
async fn execute(
    shared: &Shared,
    lease: &Lease,
    dir: &Path,
    control: &Arc<Control>,
    events: UnboundedSender<RunEvent>,
) -> OneJobResult {
    // A password in the clone URL is as secret as the lease's secrets, and git may quote
    // the URL in its errors.
    let password = url_password(&lease.source.url);
    let masker = Masker::new(
        lease
            .secrets
            .values()
            .map(String::as_str)
            .chain(password.as_deref()),
    );
    let say = |text: String| {
        let line = system_line(masker.mask(&text).into_owned());
        let _ = events.send(RunEvent::JobLog {
            job: lease.job_index,
            line,
        });
    };
    let ended = |status: JobStatus| OneJobResult {
        status,
        attempts: 0,
        duration: Duration::ZERO,
        manifest: None,
    };
    let errored = |message: String| {
        let message = masker.mask(&message).into_owned();
        say(format!("error: {message}"));
        ended(JobStatus::Errored { message })
    };
    if lease.job_index >= lease.plan.jobs.len() {
        return errored(format!(
            "the lease names job {} but the plan has {} jobs",
            lease.job_index,
            lease.plan.jobs.len()
        ));
    }

    let src = dir.join("src");
    let store = ArtifactStore::new(dir.join("artifacts"));
    let setup = async {
        let short = lease
            .source
            .commit
            .get(..12)
            .unwrap_or(&lease.source.commit);
        say(format!("checking out {} at {short}", lease.source.url));
        shared
            .checkouts
            .checkout(&lease.source, &src, &dir.join("scratch"))
            .await
            .map_err(|e| {
                format!(
                    "cannot check out {} at {}: {}",
                    lease.source.url,
                    lease.source.commit,
                    chain(&e)
                )
            })?;
        fetch_artifacts(shared, lease, dir, &store, control).await
    };
    let setup = tokio::select! {
        done = setup => done,
        () = control.cancel.cancelled() => return ended(JobStatus::Cancelled),
    };
    if let Err(message) = setup {
        return if control.cancel.is_cancelled() {
            ended(JobStatus::Cancelled)
        } else {
            errored(message)
        };
    }
    let source = match Source::from_plain_dir(&src) {
        Ok(source) => source,
        Err(e) => return errored(format!("cannot list the checkout: {}", chain(&e))),
    };
    run_one(JobRun {
        plan: lease.plan.clone(),
        job: lease.job_index,
        backends: shared.backends.clone(),
        run_id: lease.run_id.to_string(),
        work_dir: dir.join("work"),
        source,
        store,
        restores: lease.restore.clone(),
        secrets: lease.secrets.clone(),
        events,
        cancel: control.cancel.clone(),
        caches: Some(Arc::new(LeaseCaches::new(
            Arc::clone(&shared.source),
            lease.id.clone(),
            dir.join("incoming"),
            Arc::clone(control),
        ))),
    })
    .await
}

/// Fetches every blob the lease's manifests name into `store`, checking each one's
/// digest on arrival.
async fn fetch_artifacts(
    shared: &Shared,
    lease: &Lease,
    dir: &Path,
    store: &ArtifactStore,
    control: &Control,
) -> Result<(), String> {
    let incoming = dir.join("incoming");
    let mut fetched = BTreeSet::new();
    for manifest in &lease.restore {
        for (path, entry) in &manifest.files {
            let digest = entry.digest.as_str();
            if !fetched.insert(digest) {
                continue;
            }
            let what = format!("artifact {path} of job \"{}\" ({digest})", manifest.job);
            blobs::fetch(
                shared.source.as_ref(),
                &lease.id,
                digest,
                store,
                &incoming,
                control,
                &what,
            )
            .await?;
        }
    }
    Ok(())
}

/// Sends every blob of the job's manifest (each digest once).
async fn upload(
    shared: &Shared,
    lease: &Lease,
    dir: &Path,
    manifest: &Manifest,
    control: &Control,
) -> Result<(), String> {
    let store = ArtifactStore::new(dir.join("artifacts"));
    let mut sent = BTreeSet::new();
    for (path, entry) in &manifest.files {
        if !sent.insert(entry.digest.as_str()) {
            continue;
        }
        let what = format!("artifact {path}");
        blobs::upload(
            shared.source.as_ref(),
            &lease.id,
            &entry.digest,
            &store,
            control,
            &what,
        )
        .await?;
    }
    Ok(())
}

/// Sends the job's result, retrying while the server is unavailable (for as long as the
/// executor runs and the lease holds).
async fn report(shared: &Shared, lease: &Lease, finish: Finish, control: &Control) {
    let mut backoff = Duration::from_millis(100);
    while !control.silenced() {
        match shared.source.finish(&lease.id, finish.clone()).await {
            Err(LeaseError::Unavailable(_)) => {
                tokio::select! {
                    () = tokio::time::sleep(backoff) => {}
                    () = control.shutdown.cancelled() => return,
                }
                backoff = (backoff * 2).min(Duration::from_secs(5));
            }
            // Done, refused as stale (the server moved on), or refused for good: either
            // way there is nothing more to say.
            _ => return,
        }
    }
}

/// Most time between heartbeats whatever the lease's time to live: a heartbeat's answer
/// is how a cancel reaches the job, and a cancel should take effect within seconds.
const HEARTBEAT_AT_LEAST_EVERY: Duration = Duration::from_secs(2);

/// Extends the lease every third of its time to live (or every
/// [`HEARTBEAT_AT_LEAST_EVERY`], if sooner) until `beating` is cancelled, and acts on what
/// the server answers.
///
/// A heartbeat that fails (server unreachable, token revoked) is tried again at the next
/// beat. Once no heartbeat has been confirmed for the lease's whole time to live, the
/// server has expired the lease by its own clock and may have handed the job to another
/// executor: the job is killed and its result dropped, as if the server had said `Lost`.
async fn heartbeat(
    source: Arc<dyn JobSource>,
    lease: Lease,
    control: Arc<Control>,
    beating: CancellationToken,
) {
    let ttl = Duration::from_secs(lease.ttl_secs.max(1));
    let period = Duration::from_millis(lease.ttl_secs.saturating_mul(1000) / 3)
        .clamp(Duration::from_millis(100), HEARTBEAT_AT_LEAST_EVERY);
    // The lease was handed out no later than now.
    let mut confirmed = Instant::now();
    loop {
        tokio::select! {
            () = beating.cancelled() => return,
            () = tokio::time::sleep(period) => {}
        }
        // The server extends the deadline from when it reads the heartbeat, which is
        // after it was sent: counting from the sending errs on the safe side.
        let sent = Instant::now();
        let answer = tokio::select! {
            () = beating.cancelled() => return,
            answer = source.heartbeat(&lease.id) => answer,
        };
        match answer {
            Ok(LeaseState::Ok) => confirmed = sent,
            Ok(LeaseState::Cancelled) => {
                confirmed = sent;
                control.server_cancelled.store(true, Ordering::SeqCst);
                control.cancel.cancel();
            }
            Ok(LeaseState::Lost) | Err(LeaseError::Stale { .. }) => {
                control.lose();
                return;
            }
            Err(_) if confirmed.elapsed() >= ttl => {
                control.lose();
                return;
            }
            // Try again at the next beat.
            Err(_) => {}
        }
    }
}

/// The password (or token) of a `scheme://user:password@host/…` URL, if it has one.
fn url_password(url: &str) -> Option<String> {
    let rest = url.split_once("://")?.1;
    let authority = rest.split('/').next()?;
    let userinfo = authority.rsplit_once('@')?.0;
    let password = userinfo.split_once(':').map_or(userinfo, |(_, p)| p);
    (!password.is_empty()).then(|| password.to_owned())
}

/// `key` restricted to `[A-Za-z0-9._-]`, for a directory name.
fn safe_name(key: &str) -> String {
    let name: String = key
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
                c
            } else {
                '-'
            }
        })
        .take(64)
        .collect();
    if name.is_empty() { "job".into() } else { name }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwords_in_urls() {
        let check = |url: &str, expect: Option<&str>| {
            assert_eq!(url_password(url).as_deref(), expect, "{url}");
        };
        check("https://ci:s3cret@git.example.com/app.git", Some("s3cret"));
        check("https://token@git.example.com/app.git", Some("token"));
        check("https://git.example.com/app.git", None);
        check("https://git.example.com/a@b/app.git", None);
        check("git@github.com:team/app.git", None);
        check("/srv/git/app", None);
    }

    #[test]
    fn safe_names() {
        assert_eq!(safe_name("build-go-1-18"), "build-go-1-18");
        assert_eq!(safe_name("../../etc"), "------etc");
        assert_eq!(safe_name(""), "job");
    }
}
