//! [`SqliteStore`]: the embedded default, one database file under the server's data
//! directory.
//!
//! Connections run in WAL mode (readers never wait for the writer), with foreign keys on
//! and a busy timeout. Writes go through a pool of exactly one connection and start
//! with `BEGIN IMMEDIATE`: that single writer is what makes leasing, numbering and
//! fencing atomic here (SQLite has no row locks), and taking the write lock up front
//! means a transaction never fails half-way when upgrading from read to write.
//! Reads use a separate small pool and see every committed write.

use std::collections::BTreeMap;
use std::path::Path;
use std::str::FromStr;
use std::time::Duration;

use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteSynchronous,
};
use sqlx::{Sqlite, Transaction};

use crate::codec;
use crate::model::*;
use crate::store::*;

/// How long a statement waits for another process's write lock before failing.
const BUSY_TIMEOUT: Duration = Duration::from_secs(30);

/// Readers at once.
const READERS: u32 = 4;

/// The store in an SQLite database file.
#[derive(Debug, Clone)]
pub struct SqliteStore {
    read: SqlitePool,
    write: SqlitePool,
}

impl SqliteStore {
    /// Opens (creating if missing) the database at `target` — an `sqlite:` URL
    /// (`sqlite:///var/lib/gantry/db.sqlite`, `sqlite::memory:`) or a plain file path — and
    /// applies the migrations.
    pub async fn open(target: &str) -> Result<Self, StoreError> {
        let options = if target.starts_with("sqlite:") {
            SqliteConnectOptions::from_str(target).map_err(codec::db)?
        } else {
            let path = Path::new(target);
            if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
                std::fs::create_dir_all(parent).map_err(|e| {
                    StoreError::Database(format!("cannot create {}: {e}", parent.display()))
                })?;
            }
            SqliteConnectOptions::new().filename(path)
        };
        let in_memory = target.contains(":memory:") || target.contains("mode=memory");
        let options = options
            .create_if_missing(true)
            .foreign_keys(true)
            .busy_timeout(BUSY_TIMEOUT);
        let store = if in_memory {
            // An in-memory database lives as long as its connection: one connection, kept
            // forever, serves reads and writes.
            let pool = SqlitePoolOptions::new()
                .max_connections(1)
                .min_connections(1)
                .idle_timeout(None)
                .max_lifetime(None)
                .connect_with(options)
                .await
                .map_err(codec::db)?;
            Self {
                read: pool.clone(),
                write: pool,
            }
        } else {
            // WAL: readers see the last commit while the writer works; NORMAL sync is
            // durable against a killed process (the WAL is in the OS), only a power cut
            // can lose the last commits.
            let options = options
                .journal_mode(SqliteJournalMode::Wal)
                .synchronous(SqliteSynchronous::Normal);
            let write = SqlitePoolOptions::new()
                .max_connections(1)
                .connect_with(options.clone())
                .await
                .map_err(codec::db)?;
            let read = SqlitePoolOptions::new()
                .max_connections(READERS)
                .connect_with(options)
                .await
                .map_err(codec::db)?;
            Self { read, write }
        };
        sqlx::migrate!("migrations/sqlite")
            .run(&store.write)
            .await
            .map_err(|e| StoreError::Migrate(e.to_string()))?;
        Ok(store)
    }

    /// Row locks do not exist in SQLite; the single writer excludes everyone instead.
    const FOR_UPDATE: &'static str = "";

    async fn write(&self) -> Result<Transaction<'static, Sqlite>, StoreError> {
        self.write
            .begin_with("BEGIN IMMEDIATE")
            .await
            .map_err(codec::db)
    }

    fn write_pool(&self) -> &SqlitePool {
        &self.write
    }

    fn read(&self) -> &SqlitePool {
        &self.read
    }

    async fn close_pools(&self) {
        self.read.close().await;
        self.write.close().await;
    }

    /// The oldest queued job whose `runs_on` pairs all appear among the executor's
    /// labels (`labels_json`, a JSON object). Runs inside the write transaction, so no
    /// other lease can pick the same job before this one commits.
    async fn pick_job(
        tx: &mut Transaction<'static, Sqlite>,
        labels_json: &str,
    ) -> Result<Option<(i64, i64)>, StoreError> {
        sqlx::query_as(
            "SELECT run_id, idx FROM jobs j WHERE state = 'queued' AND NOT EXISTS ( \
                 SELECT 1 FROM json_each(j.runs_on) want WHERE NOT EXISTS ( \
                     SELECT 1 FROM json_each($1) have \
                     WHERE have.key = want.key AND have.value = want.value)) \
             ORDER BY run_id, idx LIMIT 1",
        )
        .bind(labels_json)
        .fetch_optional(&mut **tx)
        .await
        .map_err(codec::db)
    }
}

crate::common::impl_store!(SqliteStore, Sqlite);
