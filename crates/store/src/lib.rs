//! The server's persistent state: repositories, pipelines, runs, jobs, leases, tokens,
//! trigger bookkeeping — in SQLite (embedded, the default) or PostgreSQL, behind one
//! [`Store`] trait, with checked-in migrations per database.
//!
//! Promises: every state change that the queue depends on (creating a run with its jobs,
//! leasing a job, finishing it under its lease, expiring leases) is one transaction, so a
//! crash at any moment leaves a consistent state; a run is never lost and a job is never
//! leased twice at once. Logs and artifacts are not rows: they are files (see the server).

mod codec;
mod common;
mod model;
mod open;
mod postgres;
mod sqlite;
mod store;

pub use model::*;
pub use open::open;
pub(crate) use open::now_millis;
pub use postgres::PgStore;
pub use sqlite::SqliteStore;
pub use store::*;
