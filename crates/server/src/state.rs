//! [`Shared`]: the state every part of the server works on — the store, the log and blob
//! files, git mirrors, and the wake-up signals between the scheduler, the lease
//! long-poll and log followers.

use std::collections::HashMap;
use std::sync::{Arc, Mutex as StdMutex};

use gantry_pipeline::Plan;
use gantry_store::{Repo, Store};
use tokio::sync::{Mutex, Notify};

use crate::blobs::BlobStore;
use crate::config::ServerConfig;
use crate::git::Mirror;
use crate::logs::LogStore;

/// Shared server state (behind an `Arc`, see [`State`]).
pub struct Shared {
    /// The database.
    pub store: Arc<dyn Store>,
    /// Settings.
    pub config: ServerConfig,
    /// Job logs.
    pub logs: LogStore,
    /// Artifact blobs.
    pub blobs: BlobStore,
    /// Signalled whenever jobs become queued: wakes lease long-polls at once, so a job
    /// is handed out the moment it is ready.
    pub queued: Notify,
    /// Serializes scheduler passes: decisions for one run are read-modify-write on its
    /// jobs, and finishing a run must notify exactly once.
    pub(crate) sched: Mutex<()>,
    /// Serializes run creation, so that the number a plan was made with
    /// (`GANTRY_RUN_NUMBER`) is the number the store gives the run.
    pub(crate) creating: Mutex<()>,
    /// Plans by run id, parsed once from the run's JSON.
    plans: StdMutex<HashMap<i64, Arc<Plan>>>,
    /// Next expected log batch per lease, to store a resent batch once.
    pub(crate) log_seq: StdMutex<HashMap<String, u64>>,
    /// One git mirror per repository id.
    mirrors: StdMutex<HashMap<i64, Mirror>>,
    /// Signalled on shutdown; background loops end.
    pub(crate) shutdown: Notify,
    /// Durations of runs finished since the start, for `/metrics`.
    pub durations: crate::metrics::RunDurations,
    /// Pipelines at each repository's default branch, as of its last poll (for cron
    /// and the poll interval).
    pub(crate) specs: StdMutex<HashMap<i64, Vec<gantry_pipeline::Spec>>>,
    /// Poll back-off per repository.
    pub(crate) backoff: StdMutex<HashMap<i64, crate::triggers::refs::Backoff>>,
    /// Repositories being polled right now.
    pub(crate) polling: StdMutex<std::collections::HashSet<i64>>,
    /// The address the API listens on, once bound.
    pub(crate) bound: std::sync::OnceLock<std::net::SocketAddr>,
    /// Executors heard from lately and the leases they hold.
    pub agents: crate::agents::Registry,
}

/// The handle every part of the server holds.
pub type State = Arc<Shared>;

impl Shared {
    /// State over an open store.
    pub fn new(store: Arc<dyn Store>, config: ServerConfig) -> State {
        Arc::new(Shared {
            logs: LogStore::new(config.logs_dir()),
            blobs: BlobStore::new(config.artifacts_dir(), config.max_artifact_bytes),
            store,
            config,
            queued: Notify::new(),
            sched: Mutex::new(()),
            creating: Mutex::new(()),
            plans: StdMutex::new(HashMap::new()),
            log_seq: StdMutex::new(HashMap::new()),
            mirrors: StdMutex::new(HashMap::new()),
            shutdown: Notify::new(),
            durations: Default::default(),
            specs: StdMutex::new(HashMap::new()),
            backoff: StdMutex::new(HashMap::new()),
            polling: StdMutex::new(Default::default()),
            bound: std::sync::OnceLock::new(),
            agents: Default::default(),
        })
    }

    /// The plan of a run (`None` for a run that could not be planned, or whose stored
    /// plan no longer parses).
    pub fn plan(&self, run: &gantry_store::Run) -> Option<Arc<Plan>> {
        let mut plans = self.plans.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(p) = plans.get(&run.id) {
            return Some(p.clone());
        }
        let plan: Plan = serde_json::from_str(run.plan_json.as_deref()?).ok()?;
        let plan = Arc::new(plan);
        // Final runs are rarely asked again; keep the cache to active ones.
        if !run.state.is_final() {
            plans.insert(run.id, plan.clone());
        }
        Some(plan)
    }

    /// Forgets the cached plan of a run that reached its end.
    pub(crate) fn forget_plan(&self, run_id: i64) {
        self.plans
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(&run_id);
    }

    /// The git mirror of a repository (a new one when the URL changed).
    pub fn mirror(&self, repo: &Repo) -> Mirror {
        let mut mirrors = self.mirrors.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(m) = mirrors.get(&repo.id)
            && m.url() == repo.url
        {
            return m.clone();
        }
        let m = Mirror::new(
            self.config.git_dir().join(format!("{}.git", repo.id)),
            &repo.url,
        );
        mirrors.insert(repo.id, m.clone());
        m
    }

    /// Says on each queued job of `jobs` that no online executor could take it, when
    /// that is so ("waiting: no agent with label pool=gpu online"), after the message it
    /// already has. The words are worked out when asked, from the executors online now,
    /// so they go away by themselves once one comes (or the job is leased).
    pub fn annotate_waiting(&self, jobs: &mut [gantry_store::Job]) {
        let now = now_ms();
        let ttl = self.config.lease_ttl.as_millis() as i64;
        for job in jobs
            .iter_mut()
            .filter(|j| j.state == gantry_store::JobState::Queued)
        {
            if let Some(why) = self.agents.waiting_reason(&job.runs_on, now, ttl) {
                job.message = Some(match job.message.take() {
                    Some(m) if !m.is_empty() => format!("{m}; {why}"),
                    _ => why,
                });
            }
        }
    }

    /// The base URL for links to the server.
    pub fn public_url(&self) -> String {
        match &self.config.public_url {
            Some(u) => u.trim_end_matches('/').to_string(),
            None => format!(
                "http://{}",
                self.bound.get().copied().unwrap_or(self.config.listen)
            ),
        }
    }
}

/// Milliseconds since the Unix epoch, now.
pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}
