//! [`PgStore`]: the store in a PostgreSQL database, for servers that outgrow one file.
//!
//! Concurrency comes from the database: the next job is picked with
//! `FOR UPDATE SKIP LOCKED` (concurrent leases take different jobs instead of waiting),
//! run numbers come from a counter row that `UPDATE` locks until commit, and multi-row
//! changes lock their jobs in `(run_id, idx)` order before touching the run row — the
//! same order `lease_next` uses — so two transactions never wait for each other in a
//! circle.

use std::collections::BTreeMap;
use std::str::FromStr;

use sqlx::postgres::{PgConnectOptions, PgPool, PgPoolOptions};
use sqlx::{ConnectOptions, Connection, Postgres, Transaction};

use crate::codec;
use crate::model::*;
use crate::store::*;

/// Connections at once.
const CONNECTIONS: u32 = 10;

/// The store in a PostgreSQL database.
#[derive(Debug, Clone)]
pub struct PgStore {
    pool: PgPool,
}

impl PgStore {
    /// Connects to `url` (`postgres://user:password@host:port/database`) and applies the
    /// migrations to the database's default schema.
    pub async fn connect(url: &str) -> Result<Self, StoreError> {
        let options = PgConnectOptions::from_str(url).map_err(codec::db)?;
        Self::connect_with(options).await
    }

    /// Like [`PgStore::connect`], with every table in `schema` (created if missing):
    /// several independent stores in one database, as the tests use.
    pub async fn connect_in_schema(url: &str, schema: &str) -> Result<Self, StoreError> {
        let options = PgConnectOptions::from_str(url).map_err(codec::db)?;
        let quoted = format!("\"{}\"", schema.replace('"', "\"\""));
        let mut conn = options.connect().await.map_err(codec::db)?;
        sqlx::query(sqlx::AssertSqlSafe(format!(
            "CREATE SCHEMA IF NOT EXISTS {quoted}"
        )))
        .execute(&mut conn)
        .await
        .map_err(codec::db)?;
        conn.close().await.map_err(codec::db)?;
        // A startup parameter, so every pooled connection has it from its first query.
        Self::connect_with(options.options([("search_path", quoted)])).await
    }

    /// Drops `schema` and everything in it, if it exists: a test's leftovers from an
    /// earlier process (schema names repeat when process ids do).
    pub async fn drop_schema(url: &str, schema: &str) -> Result<(), StoreError> {
        let options = PgConnectOptions::from_str(url).map_err(codec::db)?;
        let quoted = format!("\"{}\"", schema.replace('"', "\"\""));
        let mut conn = options.connect().await.map_err(codec::db)?;
        sqlx::query(sqlx::AssertSqlSafe(format!(
            "DROP SCHEMA IF EXISTS {quoted} CASCADE"
        )))
        .execute(&mut conn)
        .await
        .map_err(codec::db)?;
        conn.close().await.map_err(codec::db)
    }

    async fn connect_with(options: PgConnectOptions) -> Result<Self, StoreError> {
        let pool = PgPoolOptions::new()
            .max_connections(CONNECTIONS)
            .connect_with(options)
            .await
            .map_err(codec::db)?;
        sqlx::migrate!("migrations/postgres")
            .run(&pool)
            .await
            .map_err(|e| StoreError::Migrate(e.to_string()))?;
        Ok(Self { pool })
    }

    /// Locks the selected rows until commit (in the order selected).
    const FOR_UPDATE: &'static str = " FOR UPDATE";

    async fn write(&self) -> Result<Transaction<'static, Postgres>, StoreError> {
        self.pool.begin().await.map_err(codec::db)
    }

    fn write_pool(&self) -> &PgPool {
        &self.pool
    }

    fn read(&self) -> &PgPool {
        &self.pool
    }

    async fn close_pools(&self) {
        self.pool.close().await;
    }

    /// The oldest queued job whose `runs_on` object is contained in the executor's labels
    /// (`<@`: every pair of the job is among them). Jobs locked by a concurrent lease are
    /// skipped, so that lease keeps its job and this one takes the next.
    async fn pick_job(
        tx: &mut Transaction<'static, Postgres>,
        labels_json: &str,
    ) -> Result<Option<(i64, i64)>, StoreError> {
        sqlx::query_as(
            "SELECT run_id, idx FROM jobs \
             WHERE state = 'queued' AND runs_on::jsonb <@ $1::jsonb \
             ORDER BY run_id, idx LIMIT 1 FOR UPDATE SKIP LOCKED",
        )
        .bind(labels_json)
        .fetch_optional(&mut **tx)
        .await
        .map_err(codec::db)
    }
}

crate::common::impl_store!(PgStore, Postgres);
