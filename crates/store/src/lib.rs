//! The server's persistent state: repositories, pipelines, runs, jobs, leases, tokens,
//! user accounts, trigger bookkeeping, pipeline cache entries — in SQLite (embedded, the
//! default) or PostgreSQL, behind one [`Store`] trait, with checked-in migrations per
//! database.
//!
//! Promises: every state change that the queue depends on (creating a run with its jobs,
//! leasing a job, finishing it under its lease, expiring leases) is one transaction, so a
//! crash at any moment leaves a consistent state; a run is never lost and a job is never
//! leased twice at once. Logs and artifacts are not rows: they are files (see the server).
//!
//! # Opening
//!
//! [`open`] takes `postgres://…` for [`PgStore`], and `sqlite:…` or a plain file path for
//! [`SqliteStore`] (file and folder created), and applies the migrations
//! (`migrations/sqlite`, `migrations/postgres`, embedded with `sqlx::migrate!`). All times
//! are passed in by the caller (`now` arguments), so the server's clock is the only clock
//! and the tests use fixed times.
//!
//! # Schema
//!
//! The two schemas are column-for-column the same (only identity columns are spelled
//! differently), so every statement is written once (`common.rs`) with `$N` parameters,
//! which both databases accept. Maps and lists (params, `runs_on`, needs) are JSON text;
//! states are the lowercase words of [`RunState::as_str`] / [`JobState::as_str`].
//!
//! - `repos` (unique `name`), `ref_heads` (last seen commit per ref, for polling),
//!   `pipelines` (unique per repository and name; `last_number` is the run counter).
//! - `runs`: unique `(pipeline_id, number)`; unique `(pipeline_id, dedup_key)` where a key
//!   is given; `repo_id` copied from the pipeline so one repository's runs are an index
//!   range; indexes `(pipeline_id, id)`, `(repo_id, id)`, `(state, id)`.
//! - `jobs`: key `(run_id, idx)`; unique `lease_id`; partial indexes on queued jobs (the
//!   queue, in hand-out order) and on running jobs by deadline (expiry).
//! - `artifacts` (key `(run_id, job_idx, path)`, referencing the job) and `tokens` (unique
//!   hash; a name is unique among tokens not revoked, so a rotated name can be reused).
//! - `users` (unique `name`; `password_hash` is a PHC string made by the server, `role` is
//!   [`Role::as_str`]; `disabled_at` set while the account is disabled).
//! - `caches` (unique `(repo_id, cache_key)`; index on `(last_used_at, id)`, the eviction
//!   order) and `cache_blobs` (the blobs each entry names; indexed by digest, as are
//!   `artifacts`, so that "is this blob still named?" is two index probes). A save is
//!   `ON CONFLICT DO NOTHING`: the first entry saved under a key is kept.
//!
//! # Decisions
//!
//! - **Numbering.** `create_run` increments the pipeline's `last_number` with an
//!   `UPDATE … RETURNING`, which holds the row's write lock until commit: concurrent creates
//!   take consecutive numbers. A duplicate `dedup_key` (`ON CONFLICT DO NOTHING`) rolls the
//!   transaction back, so it uses up no number.
//! - **One writer on SQLite.** Writes go through a pool of one connection and start with
//!   `BEGIN IMMEDIATE`; reads use a separate pool and, in WAL mode, never wait for it.
//!   Foreign keys are on, `busy_timeout` is 30 s, `synchronous = NORMAL` (a killed process
//!   loses nothing; a power cut may lose the last commits). `sqlite::memory:` uses a single
//!   connection for everything.
//! - **Leasing on PostgreSQL** picks the oldest matching queued job with
//!   `FOR UPDATE SKIP LOCKED`, so concurrent leases take different jobs instead of waiting.
//!   Writers that touch several jobs lock them in `(run_id, idx)` order before the run row,
//!   the order a lease locks in, so no two transactions wait on each other in a circle.
//! - **Labels.** A job matches an executor when every `runs_on` pair is among the
//!   executor's labels (PostgreSQL: `jsonb <@`; SQLite: `json_each`).
//! - **Leases.** A lease is current while its job is `running` with that `lease_id`.
//!   Expiry is an event — [`Store::expire_leases`], run by the server's sweep — not a clock
//!   comparison in each call: until the sweep, a late heartbeat or report is still honoured.
//!   After it, heartbeats answer [`LeaseCheck::Lost`] and reports [`StoreError::StaleLease`]
//!   and change nothing. An expired job is queued again with its attempt count kept (the
//!   next lease adds one), errored once `attempt >= max_attempts` ("lease expired on
//!   executor X after N attempts"), or cancelled if a cancel was requested meanwhile.
//! - **Run state side effects.** `lease_next` sets a queued run `running` (and its
//!   `started_at`) with its first job; `request_cancel` makes the run `cancelled` at once
//!   when none of its jobs is running (nothing would report back otherwise).
//! - **Listing** is keyset pagination on the run id (`before`), newest first; `limit` 0
//!   means 50, and the store caps it at 500.
//!
//! # Tests
//!
//! `tests/store.rs` is one suite of cases, run as `sqlite::<case>` against a fresh file
//! and as `postgres::<case>` against a fresh schema (one per test, so they run in
//! parallel) in the database named by `GANTRY_TEST_POSTGRES`:
//!
//! ```sh
//! GANTRY_TEST_POSTGRES=postgres://gantry:gantry@127.0.0.1:5432/gantry_test \
//!     cargo nextest run -p gantry-store
//! ```
//!
//! `cargo xtask test` installs Debian's `postgresql`, starts a cluster on 127.0.0.1:5432,
//! creates that role and database, and sets the variable. Without it the PostgreSQL cases
//! are skipped with a notice, except under `CI=true`, where they fail.
//! `cargo bench -p gantry-store` times `list_runs` over 100,000 runs.

mod codec;
mod common;
mod model;
mod open;
mod postgres;
mod sqlite;
mod store;

pub use model::*;
pub(crate) use open::now_millis;
pub use open::open;
pub use postgres::PgStore;
pub use sqlite::SqliteStore;
pub use store::*;
