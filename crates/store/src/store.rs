//! The [`Store`] trait and its error type.

use std::collections::BTreeMap;

use crate::model::*;

/// Why a store call failed.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The thing asked for does not exist.
    #[error("{0} not found")]
    NotFound(String),
    /// A unique name is taken (repository name, …).
    #[error("{0} already exists")]
    Conflict(String),
    /// A report under a lease that is no longer current.
    #[error("lease {0} is no longer valid")]
    StaleLease(String),
    /// The database failed.
    #[error("database error: {0}")]
    Database(String),
    /// Migrations could not be applied.
    #[error("failed to migrate the database: {0}")]
    Migrate(String),
}

/// The server's persistent state. Implemented for SQLite and PostgreSQL; both pass the
/// same test suite.
#[async_trait::async_trait]
pub trait Store: Send + Sync {
    // --- repositories and pipelines ---
    /// Registers a repository; `Conflict` when the name is taken.
    async fn create_repo(&self, repo: NewRepo) -> Result<Repo, StoreError>;
    /// A repository by name.
    async fn repo_by_name(&self, name: &str) -> Result<Repo, StoreError>;
    /// All repositories by name.
    async fn list_repos(&self) -> Result<Vec<Repo>, StoreError>;
    /// Records a poll: error (or `None` when it worked), and when to poll next.
    async fn record_poll(
        &self,
        repo_id: i64,
        at: Millis,
        error: Option<String>,
        next_poll_at: Millis,
    ) -> Result<(), StoreError>;
    /// Last seen head of every ref of a repository (for polling).
    async fn ref_heads(&self, repo_id: i64) -> Result<BTreeMap<String, String>, StoreError>;
    /// Records the head of a ref.
    async fn set_ref_head(
        &self,
        repo_id: i64,
        git_ref: &str,
        commit: &str,
    ) -> Result<(), StoreError>;
    /// The pipeline `name` of a repository, created (with `path`) if new; the path is
    /// updated if it moved.
    async fn ensure_pipeline(
        &self,
        repo_id: i64,
        name: &str,
        path: &str,
    ) -> Result<Pipeline, StoreError>;
    /// Pipelines of a repository (all when `None`).
    async fn list_pipelines(&self, repo_id: Option<i64>) -> Result<Vec<Pipeline>, StoreError>;

    // --- runs ---
    /// Creates a run with its jobs and the next number of its pipeline, in one
    /// transaction. `Ok(None)` when a run with the same `dedup_key` exists for the
    /// pipeline (nothing is created).
    async fn create_run(&self, run: NewRun, now: Millis) -> Result<Option<Run>, StoreError>;
    /// A run by id.
    async fn run(&self, id: i64) -> Result<Run, StoreError>;
    /// A run by repository, pipeline and number.
    async fn run_by_number(
        &self,
        repo: &str,
        pipeline: &str,
        number: i64,
    ) -> Result<Run, StoreError>;
    /// Runs, newest first.
    async fn list_runs(&self, filter: &RunFilter) -> Result<Vec<Run>, StoreError>;
    /// The latest finished run of a pipeline before run number `before` (for "fixed").
    async fn previous_finished_run(
        &self,
        pipeline_id: i64,
        before: i64,
    ) -> Result<Option<Run>, StoreError>;
    /// Runs that are not final (for the scheduler and for recovery), oldest first.
    async fn active_runs(&self) -> Result<Vec<Run>, StoreError>;
    /// Sets a run's state (`Running` sets `started_at` once; final states set
    /// `finished_at`).
    async fn set_run_state(
        &self,
        run_id: i64,
        state: RunState,
        now: Millis,
    ) -> Result<(), StoreError>;
    /// Marks a run cancel-requested; pending, queued and waiting jobs become `Cancelled`,
    /// running ones get `cancel_requested`; with no job running, the run itself becomes
    /// `Cancelled` (nothing would report back otherwise). A final run is left as it is.
    /// Returns the run after the change.
    async fn request_cancel(&self, run_id: i64, now: Millis) -> Result<Run, StoreError>;

    // --- jobs and leases ---
    /// Jobs of a run by plan index.
    async fn jobs(&self, run_id: i64) -> Result<Vec<Job>, StoreError>;
    /// Applies scheduler decisions to not-yet-leased jobs (one transaction; a job that
    /// is no longer in the expected earlier state is left alone): `Queued` from `Pending`
    /// (sets `queued_at` once), `Waiting` from `Pending`, `Pending` from `Queued`, any
    /// final state (`Skipped`, `Cancelled`, …) from `Pending`, `Queued` or `Waiting` (sets
    /// `finished_at`); `Running` is ignored (only a lease starts a job).
    async fn transition_jobs(
        &self,
        run_id: i64,
        changes: &[JobTransition],
        now: Millis,
    ) -> Result<(), StoreError>;
    /// Answers a job waiting for approval, in one step: a `Waiting` job takes the answer
    /// (approved: `Queued`, with `queued_at`; rejected: `Failed` with `message`, with
    /// `finished_at`) and records it in `approval`. A job in any other state is left as
    /// it is ([`ApprovalOutcome::NotWaiting`]). `NotFound` when there is no such job.
    async fn answer_approval(
        &self,
        run_id: i64,
        idx: i64,
        approval: &Approval,
        message: Option<&str>,
    ) -> Result<ApprovalOutcome, StoreError>;
    /// Hands out the oldest queued job (by run id, then plan index; jobs are only
    /// `Queued` in admitted runs) whose `runs_on` labels are all among `labels`: sets it `Running` with a new
    /// `lease_id`, `attempt + 1`, `executor` and deadline `now + ttl_ms`, atomically (no
    /// job is ever leased twice at once). A `Queued` run becomes `Running` (with
    /// `started_at`) in the same transaction.
    async fn lease_next(
        &self,
        executor: &str,
        labels: &BTreeMap<String, String>,
        lease_id: &str,
        now: Millis,
        ttl_ms: i64,
    ) -> Result<Option<Leased>, StoreError>;
    /// Extends a lease's deadline to `now + ttl_ms` if it is current.
    async fn heartbeat(
        &self,
        lease_id: &str,
        now: Millis,
        ttl_ms: i64,
    ) -> Result<LeaseCheck, StoreError>;
    /// The job holding lease `lease_id`; `StaleLease` when no job holds it any more.
    async fn job_by_lease(&self, lease_id: &str) -> Result<Job, StoreError>;
    /// Ends a lease; `StaleLease` when it is not current (nothing changes).
    async fn finish_job(
        &self,
        lease_id: &str,
        finish: JobFinish,
        now: Millis,
    ) -> Result<Job, StoreError>;
    /// Leases whose deadline passed before `now` (or, with `executor`, every lease of
    /// that executor: the built-in executor after a restart): their jobs become `Queued`
    /// again, or `Errored` with a reason once `attempt >= max_attempts`, or `Cancelled`
    /// when a cancel was requested.
    async fn expire_leases(
        &self,
        now: Millis,
        executor: Option<&str>,
        max_attempts: u32,
    ) -> Result<Vec<Expired>, StoreError>;

    // --- artifacts ---
    /// Records artifact files of a job.
    async fn add_artifacts(&self, rows: &[ArtifactRow]) -> Result<(), StoreError>;
    /// Artifacts of a run.
    async fn artifacts(&self, run_id: i64) -> Result<Vec<ArtifactRow>, StoreError>;

    // --- caches ---
    /// Saves a cache entry with its blob list, unless the repository already has one
    /// under that key: the first writer wins. `Ok(true)` when this call saved it,
    /// `Ok(false)` when an entry was there; `NotFound` for an unknown repository.
    async fn save_cache(&self, entry: &NewCacheEntry, now: Millis) -> Result<bool, StoreError>;
    /// The entry of repository `repo` under `key`, marked used at `now`.
    async fn use_cache(
        &self,
        repo: &str,
        key: &str,
        now: Millis,
    ) -> Result<Option<CacheEntry>, StoreError>;
    /// Entries of one repository (every repository's with `None`), most recently used
    /// first.
    async fn list_caches(&self, repo: Option<&str>) -> Result<Vec<CacheEntry>, StoreError>;
    /// Deletes the entries of repository `repo` (only the one under `key`, if given) and
    /// returns them; `NotFound` for an unknown repository.
    async fn delete_caches(
        &self,
        repo: &str,
        key: Option<&str>,
    ) -> Result<Vec<CacheEntry>, StoreError>;
    /// Deletes least recently used entries (of any repository) until the sizes of those
    /// left add up to at most `max_bytes`, and returns the deleted ones.
    async fn evict_caches(&self, max_bytes: i64) -> Result<Vec<CacheEntry>, StoreError>;
    /// Whether an entry of repository `repo` names blob `digest`.
    async fn cache_has_blob(&self, repo: &str, digest: &str) -> Result<bool, StoreError>;
    /// Those of `digests` that an artifact or a cache entry still names.
    async fn blobs_in_use(
        &self,
        digests: &[String],
    ) -> Result<std::collections::BTreeSet<String>, StoreError>;

    // --- tokens ---
    /// Stores a token hash.
    async fn create_token(
        &self,
        name: &str,
        kind: &str,
        hash: &str,
        now: Millis,
    ) -> Result<Token, StoreError>;
    /// A non-revoked token by hash.
    async fn token_by_hash(&self, hash: &str) -> Result<Option<Token>, StoreError>;
    /// All tokens.
    async fn list_tokens(&self) -> Result<Vec<Token>, StoreError>;
    /// Revokes a token by name.
    async fn revoke_token(&self, name: &str, now: Millis) -> Result<(), StoreError>;

    // --- users ---
    /// Makes a user account; `Conflict` when the name is taken. The caller checks the
    /// name's form and hashes the password.
    async fn create_user(
        &self,
        name: &str,
        password_hash: &str,
        role: Role,
        now: Millis,
    ) -> Result<User, StoreError>;
    /// A user by name (disabled ones too); `NotFound` when there is none.
    async fn user_by_name(&self, name: &str) -> Result<User, StoreError>;
    /// All users by name.
    async fn list_users(&self) -> Result<Vec<User>, StoreError>;
    /// Replaces a user's password hash (sets `updated_at`).
    async fn set_user_password(
        &self,
        name: &str,
        password_hash: &str,
        now: Millis,
    ) -> Result<User, StoreError>;
    /// Changes a user's role (sets `updated_at`).
    async fn set_user_role(&self, name: &str, role: Role, now: Millis) -> Result<User, StoreError>;
    /// Disables a user (`disabled_at = now`, kept if already disabled) or enables it
    /// again (`disabled_at` cleared).
    async fn set_user_disabled(
        &self,
        name: &str,
        disabled: bool,
        now: Millis,
    ) -> Result<User, StoreError>;
    /// Deletes a user; `NotFound` when there is none.
    async fn delete_user(&self, name: &str) -> Result<(), StoreError>;

    // --- metrics ---
    /// Queue counts.
    async fn queue_stats(&self) -> Result<QueueStats, StoreError>;

    // --- lifecycle ---
    /// Closes the connections (waiting for calls in flight); later calls fail. Call it
    /// on shutdown so SQLite checkpoints its write-ahead log.
    async fn close(&self) {}
}
