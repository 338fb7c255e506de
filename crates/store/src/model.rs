//! The rows the store keeps, as plain types.

use std::collections::BTreeMap;

/// Milliseconds since the Unix epoch (UTC). All times in the store are these.
pub type Millis = i64;

/// A registered git repository.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Repo {
    /// Id.
    pub id: i64,
    /// Unique name (`go-auth`), used in URLs.
    pub name: String,
    /// Clone URL or local path.
    pub url: String,
    /// Secret for webhook signatures/tokens; `None` refuses every webhook.
    pub webhook_secret: Option<String>,
    /// When it was registered.
    pub created_at: Millis,
    /// The last error reaching it (ls-remote/fetch), shown to users; `None` when fine.
    pub last_error: Option<String>,
    /// When it was last polled successfully or not.
    pub last_polled_at: Option<Millis>,
    /// When it should next be polled (backoff after errors).
    pub next_poll_at: Option<Millis>,
}

/// What is needed to register a repository.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewRepo {
    /// Unique name.
    pub name: String,
    /// Clone URL or local path.
    pub url: String,
    /// Webhook secret.
    pub webhook_secret: Option<String>,
}

/// A pipeline of a repository (one pipeline file), created the first time a run of it is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pipeline {
    /// Id.
    pub id: i64,
    /// Its repository.
    pub repo_id: i64,
    /// Pipeline name (unique within the repository).
    pub name: String,
    /// Path of its file in the repository (`gantry.yml`, `.gantry/release.yml`).
    pub path: String,
}

/// State of a run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RunState {
    /// Accepted, not admitted yet (waiting for its concurrency group or for a job to start).
    Queued,
    /// At least one job was handed out.
    Running,
    /// Every job that ran succeeded (or was allowed to fail).
    Succeeded,
    /// Some job failed or errored.
    Failed,
    /// Cancelled by a user.
    Cancelled,
    /// The run could not be planned (invalid pipeline at that commit, unreachable repo);
    /// its `error` says why.
    Errored,
}

impl RunState {
    /// Lowercase word, as stored.
    pub fn as_str(self) -> &'static str {
        match self {
            RunState::Queued => "queued",
            RunState::Running => "running",
            RunState::Succeeded => "succeeded",
            RunState::Failed => "failed",
            RunState::Cancelled => "cancelled",
            RunState::Errored => "errored",
        }
    }
    /// True once the run can change no more.
    pub fn is_final(self) -> bool {
        !matches!(self, RunState::Queued | RunState::Running)
    }
}

/// State of a job.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum JobState {
    /// Waiting for its needs (or for its run to be admitted).
    Pending,
    /// Ready, waiting for an executor.
    Queued,
    /// Ready, but held until a person approves it (`environment: { approval: required }`):
    /// approved it becomes `Queued`, rejected `Failed`.
    Waiting,
    /// Leased to an executor (running).
    Running,
    /// Succeeded.
    Succeeded,
    /// Failed (see `message`; `allowed` via `allow_failure`).
    Failed,
    /// Failed with `allow_failure: true`.
    AllowedFailure,
    /// The infrastructure failed, or the job could not be safely repeated after a crash.
    Errored,
    /// Never ran (see `message`).
    Skipped,
    /// Cancelled.
    Cancelled,
}

impl JobState {
    /// Lowercase word, as stored.
    pub fn as_str(self) -> &'static str {
        match self {
            JobState::Pending => "pending",
            JobState::Queued => "queued",
            JobState::Waiting => "waiting",
            JobState::Running => "running",
            JobState::Succeeded => "succeeded",
            JobState::Failed => "failed",
            JobState::AllowedFailure => "allowed_failure",
            JobState::Errored => "errored",
            JobState::Skipped => "skipped",
            JobState::Cancelled => "cancelled",
        }
    }
    /// True once the job can change no more.
    pub fn is_final(self) -> bool {
        !matches!(
            self,
            JobState::Pending | JobState::Queued | JobState::Waiting | JobState::Running
        )
    }
}

/// A run of a pipeline.
#[derive(Debug, Clone, PartialEq)]
pub struct Run {
    /// Server-wide id.
    pub id: i64,
    /// Its pipeline.
    pub pipeline_id: i64,
    /// Repository name (joined in for display).
    pub repo: String,
    /// Pipeline name (joined in for display).
    pub pipeline: String,
    /// Number within the pipeline, from 1.
    pub number: i64,
    /// State.
    pub state: RunState,
    /// Event that started it: `push`, `tag`, `poll`, `manual`, `schedule`, `trigger`.
    pub event: String,
    /// Full ref (`refs/heads/develop`, `refs/tags/v1.0`).
    pub git_ref: String,
    /// Full commit id.
    pub commit: String,
    /// Why it started, in words ("Started by an SCM change (poll)").
    pub cause: String,
    /// Parameters as given (after validation and defaults).
    pub params: BTreeMap<String, String>,
    /// The plan as JSON (`gantry_pipeline::Plan`); `None` when planning failed.
    pub plan_json: Option<String>,
    /// Path and text of the pipeline file at the run's commit (for `notify`, `after`,
    /// and for showing diagnostics).
    pub pipeline_file: Option<(String, String)>,
    /// Why the run errored (diagnostics of an invalid pipeline file, …).
    pub error: Option<String>,
    /// `concurrency.group`, with its limit.
    pub concurrency: Option<(String, u32)>,
    /// The run this one re-runs (rerun / rerun-failed), if any.
    pub rerun_of: Option<i64>,
    /// Set when a user asked to cancel.
    pub cancel_requested: bool,
    /// Times.
    pub created_at: Millis,
    /// When its first job was handed out.
    pub started_at: Option<Millis>,
    /// When it reached a final state.
    pub finished_at: Option<Millis>,
}

/// What is needed to create a run.
#[derive(Debug, Clone, PartialEq)]
pub struct NewRun {
    /// Its pipeline.
    pub pipeline_id: i64,
    /// Initial state: `Queued`, or `Errored` with `error` for a pipeline that could not
    /// be planned (then `jobs` is empty).
    pub state: RunState,
    /// Event word.
    pub event: String,
    /// Full ref.
    pub git_ref: String,
    /// Full commit id.
    pub commit: String,
    /// Cause in words.
    pub cause: String,
    /// Params.
    pub params: BTreeMap<String, String>,
    /// Plan JSON.
    pub plan_json: Option<String>,
    /// Path and text of the pipeline file.
    pub pipeline_file: Option<(String, String)>,
    /// Error text.
    pub error: Option<String>,
    /// Concurrency group and limit.
    pub concurrency: Option<(String, u32)>,
    /// Rerun of.
    pub rerun_of: Option<i64>,
    /// Idempotency key: a second `create_run` with the same key for the same pipeline
    /// creates nothing (`"ref:refs/heads/develop@<commit>"`, `"schedule:<unix minute>"`,
    /// `"delivery:<id>"`). `None` for runs that may repeat (manual).
    pub dedup_key: Option<String>,
    /// The jobs, by plan index.
    pub jobs: Vec<NewJob>,
}

/// A job of a new run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewJob {
    /// Plan index.
    pub idx: i64,
    /// Display name.
    pub name: String,
    /// Key (safe for paths).
    pub key: String,
    /// Plan indices of its needs.
    pub needs: Vec<i64>,
    /// `runs_on` labels.
    pub runs_on: BTreeMap<String, String>,
    /// Initial state: `Pending`, or final (`Succeeded` with `artifacts_json` copied from
    /// the earlier run, for rerun-failed).
    pub state: JobState,
    /// Reason / message for a state given at creation.
    pub message: Option<String>,
    /// Artifacts manifest JSON copied from an earlier run (rerun-failed).
    pub manifest_json: Option<String>,
}

/// A job of a run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Job {
    /// Its run.
    pub run_id: i64,
    /// Plan index.
    pub idx: i64,
    /// Display name.
    pub name: String,
    /// Key.
    pub key: String,
    /// Plan indices of its needs.
    pub needs: Vec<i64>,
    /// `runs_on` labels.
    pub runs_on: BTreeMap<String, String>,
    /// State.
    pub state: JobState,
    /// Leases handed out so far (attempts in the server's sense).
    pub attempt: u32,
    /// Current lease while `Running`.
    pub lease_id: Option<String>,
    /// Lease deadline while `Running`.
    pub lease_deadline: Option<Millis>,
    /// Executor holding / that held the lease.
    pub executor: Option<String>,
    /// Reason, outcome or error in words.
    pub message: Option<String>,
    /// Exit code of a failed script.
    pub exit_code: Option<i32>,
    /// Artifact manifest JSON (`gantry_engine::artifacts::Manifest`) once succeeded.
    pub manifest_json: Option<String>,
    /// When it was first queued.
    pub queued_at: Option<Millis>,
    /// When its current/last attempt started.
    pub started_at: Option<Millis>,
    /// When it reached a final state.
    pub finished_at: Option<Millis>,
    /// Cancel was requested while it ran (heartbeat answers `Cancelled`).
    pub cancel_requested: bool,
    /// A person's answer, for a job that waited for approval.
    pub approval: Option<Approval>,
}

/// A person's answer to a job waiting for approval ([`JobState::Waiting`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Approval {
    /// Approved (the job runs) or rejected (it fails).
    pub approved: bool,
    /// Who answered (a token's or a user's name).
    pub by: String,
    /// When.
    pub at: Millis,
}

/// What [`crate::Store::answer_approval`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ApprovalOutcome {
    /// The job was waiting and took the answer (approved: `Queued`; rejected: `Failed`).
    Answered(Job),
    /// The job was not waiting; it is returned as it is (its `approval` tells a repeated
    /// answer from one that comes too late).
    NotWaiting(Job),
}

/// A state change of a not-yet-leased job decided by the scheduler.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JobTransition {
    /// Plan index.
    pub idx: i64,
    /// `Queued`, `Waiting`, `Skipped` or `Cancelled` (from `Pending`), or `Pending` →
    /// `Queued`.
    pub state: JobState,
    /// Reason in words (for skipped).
    pub message: Option<String>,
}

/// A finished lease as the store records it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JobFinish {
    /// Final state (`Succeeded`, `Failed`, `AllowedFailure`, `Errored`, `Cancelled`).
    pub state: JobState,
    /// Outcome / error in words.
    pub message: Option<String>,
    /// Exit code.
    pub exit_code: Option<i32>,
    /// Manifest JSON on success.
    pub manifest_json: Option<String>,
}

/// A job handed out by [`crate::Store::lease_next`].
#[derive(Debug, Clone, PartialEq)]
pub struct Leased {
    /// The job (state `Running`, with the new lease id, attempt and deadline).
    pub job: Job,
    /// Its run.
    pub run: Run,
}

/// What heartbeats and reports find.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LeaseCheck {
    /// The lease is current; the deadline was extended.
    Ok,
    /// Current, but cancel was requested.
    Cancelled,
    /// Expired or superseded.
    Lost,
}

/// A lease that expired and what became of its job.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Expired {
    /// The job after the change (`Queued` with `attempt` kept, `Errored`, or `Cancelled`
    /// when a cancel was requested).
    pub job: Job,
    /// The executor that lost it.
    pub executor: String,
}

/// Filter for [`crate::Store::list_runs`]. Newest first; `before` is an id cursor.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RunFilter {
    /// Only this repository.
    pub repo: Option<String>,
    /// Only this pipeline (needs `repo`).
    pub pipeline: Option<String>,
    /// Only these states.
    pub states: Vec<RunState>,
    /// Only runs with id below this.
    pub before: Option<i64>,
    /// Page size (the store caps it at 500).
    pub limit: u32,
}

/// An artifact file of a job.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ArtifactRow {
    /// Run id.
    pub run_id: i64,
    /// Job plan index.
    pub job_idx: i64,
    /// Path relative to the workspace.
    pub path: String,
    /// Hex sha256.
    pub digest: String,
    /// Size in bytes.
    pub size: i64,
}

/// A cache entry to save (`cache: { key, paths }` of a job).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewCacheEntry {
    /// Name of the repository it belongs to.
    pub repo: String,
    /// The resolved key.
    pub key: String,
    /// The artifact manifest of its files, as JSON.
    pub manifest_json: String,
    /// Every blob the manifest names (duplicates are ignored).
    pub digests: Vec<String>,
    /// How many files.
    pub files: i64,
    /// Sum of the files' sizes, in bytes.
    pub size: i64,
    /// The run whose job saved it.
    pub run_id: Option<i64>,
}

/// A saved cache entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CacheEntry {
    /// Id.
    pub id: i64,
    /// Name of its repository.
    pub repo: String,
    /// The resolved key.
    pub key: String,
    /// The artifact manifest of its files, as JSON.
    pub manifest_json: String,
    /// How many files.
    pub files: i64,
    /// Sum of the files' sizes, in bytes.
    pub size: i64,
    /// The run whose job saved it (`None` once that run is gone).
    pub run_id: Option<i64>,
    /// When it was saved.
    pub created_at: Millis,
    /// When a job last fetched it (or when it was saved).
    pub last_used_at: Millis,
}

/// An API token (only its hash is stored).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Token {
    /// Id.
    pub id: i64,
    /// Name ("admin", "build-2").
    pub name: String,
    /// `admin` or `agent`.
    pub kind: String,
    /// Hex sha256 of the secret.
    pub hash: String,
    /// When it was made.
    pub created_at: Millis,
    /// When it was revoked.
    pub revoked_at: Option<Millis>,
}

/// What a user account may do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Role {
    /// Everything a viewer may, and start, cancel, rerun and approve runs, and manage
    /// repositories and users.
    Admin,
    /// Read only: pages, runs, logs, artifacts.
    Viewer,
}

impl Role {
    /// The stored (and API) word: `admin` or `viewer`.
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Admin => "admin",
            Role::Viewer => "viewer",
        }
    }

    /// The role named by `word` (as [`Role::as_str`] spells it).
    pub fn from_word(word: &str) -> Option<Role> {
        match word {
            "admin" => Some(Role::Admin),
            "viewer" => Some(Role::Viewer),
            _ => None,
        }
    }
}

/// A user account: a person who logs in to the web UI with a name and a password. Only
/// a password hash (a PHC string) is stored; `Debug` leaves it out.
#[derive(Clone, PartialEq, Eq)]
pub struct User {
    /// Id.
    pub id: i64,
    /// Unique name (`alice`), never changed.
    pub name: String,
    /// The password's hash as a PHC string (`$argon2id$v=19$…`).
    pub password_hash: String,
    /// What the account may do.
    pub role: Role,
    /// When it was made.
    pub created_at: Millis,
    /// When its password or role last changed (or when it was made).
    pub updated_at: Millis,
    /// When it was disabled; a disabled account cannot log in.
    pub disabled_at: Option<Millis>,
}

impl std::fmt::Debug for User {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("User")
            .field("id", &self.id)
            .field("name", &self.name)
            .field("password_hash", &"<redacted>")
            .field("role", &self.role)
            .field("created_at", &self.created_at)
            .field("updated_at", &self.updated_at)
            .field("disabled_at", &self.disabled_at)
            .finish()
    }
}

/// Counts for `/metrics`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct QueueStats {
    /// Runs not yet admitted.
    pub queued_runs: i64,
    /// Jobs waiting for an executor.
    pub queued_jobs: i64,
    /// Jobs running.
    pub running_jobs: i64,
    /// Finished runs by state word.
    pub runs_by_state: BTreeMap<String, i64>,
}
