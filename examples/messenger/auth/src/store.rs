//! Where users and tokens live: the [`Store`] trait the API is written against, the
//! MySQL/MariaDB implementation, and (for unit tests) an in-memory one.

use std::future::Future;

use mysql_async::prelude::Queryable;
use mysql_async::{Conn, OptsBuilder, Pool};

use crate::cli::Options;

/// The database could not answer (down, unreachable, or a query failed).
#[derive(Debug, Clone, PartialEq)]
pub struct StoreError(pub String);

impl std::fmt::Display for StoreError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// Users (with password hashes) and their tokens (with expiry, in Unix seconds).
pub trait Store: Send + Sync + 'static {
    /// Adds a user; `Ok(false)` when the userid is taken.
    fn add_user(
        &self,
        userid: &str,
        hash: &str,
    ) -> impl Future<Output = Result<bool, StoreError>> + Send;
    /// The stored password hash of a user, `None` for an unknown user.
    fn password_hash(
        &self,
        userid: &str,
    ) -> impl Future<Output = Result<Option<String>, StoreError>> + Send;
    /// Removes a user and their tokens.
    fn delete_user(&self, userid: &str) -> impl Future<Output = Result<(), StoreError>> + Send;
    /// Records a token for a user, valid until `expires` (Unix seconds).
    fn add_token(
        &self,
        userid: &str,
        token: &str,
        expires: u64,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;
    /// Whether `token` belongs to `userid` and is still valid at `now`.
    fn token_valid(
        &self,
        userid: &str,
        token: &str,
        now: u64,
    ) -> impl Future<Output = Result<bool, StoreError>> + Send;
}

/// The real store: a connection pool to MySQL/MariaDB.
pub struct MysqlStore {
    pool: Pool,
}

const SCHEMA: [&str; 2] = [
    "CREATE TABLE IF NOT EXISTS users (
        userid VARCHAR(64) NOT NULL PRIMARY KEY,
        password_hash VARCHAR(255) NOT NULL
    )",
    "CREATE TABLE IF NOT EXISTS tokens (
        token CHAR(64) NOT NULL PRIMARY KEY,
        userid VARCHAR(64) NOT NULL,
        expires BIGINT UNSIGNED NOT NULL,
        INDEX (userid)
    )",
];

/// MySQL's "duplicate entry" error code.
const ER_DUP_ENTRY: u16 = 1062;

impl MysqlStore {
    /// A pool for the database the options name; connects lazily.
    pub fn new(o: &Options) -> Self {
        let opts = OptsBuilder::default()
            .ip_or_hostname(o.db_host.clone())
            .tcp_port(o.db_port)
            .user(Some(o.db_user.clone()))
            .pass(Some(o.db_password.clone()))
            .db_name(Some(o.database.clone()));
        MysqlStore {
            pool: Pool::new(opts),
        }
    }

    /// Creates the tables when they are missing; fails while the database is unreachable.
    pub async fn create_tables(&self) -> Result<(), StoreError> {
        let mut conn = self.conn().await?;
        for statement in SCHEMA {
            conn.query_drop(statement).await.map_err(err)?;
        }
        Ok(())
    }

    /// After a failed query: reconnects and makes sure the tables exist, since the
    /// database that came back may be a fresh one (a new container, an empty volume).
    async fn recover(&self) -> Result<(), StoreError> {
        self.create_tables().await?;
        crate::log::info("reconnected to the database");
        Ok(())
    }

    async fn conn(&self) -> Result<Conn, StoreError> {
        self.pool.get_conn().await.map_err(err)
    }
}

fn err(e: mysql_async::Error) -> StoreError {
    StoreError(e.to_string())
}

/// Runs `body` on a pooled connection, and once more after [`MysqlStore::recover`] when
/// it fails: after the database restarts, the pool's idle connections are dead (the
/// first query on each tells us so) and the tables may be gone. One retry makes the
/// service reconnect without failing a request.
macro_rules! retry_once {
    ($self:ident, |$conn:ident| $body:expr) => {{
        let first = async {
            let mut $conn = $self.conn().await?;
            $body.await.map_err(err)
        }
        .await;
        match first {
            Ok(v) => Ok(v),
            Err(e) => {
                crate::log::warn(&format!("database error ({e}); reconnecting"));
                $self.recover().await?;
                let mut $conn = $self.conn().await?;
                $body.await.map_err(err)
            }
        }
    }};
}

impl Store for MysqlStore {
    async fn add_user(&self, userid: &str, hash: &str) -> Result<bool, StoreError> {
        let result = async {
            let mut conn = self.conn().await?;
            conn.exec_drop(
                "INSERT INTO users (userid, password_hash) VALUES (?, ?)",
                (userid, hash),
            )
            .await
            .map_err(|e| match e {
                mysql_async::Error::Server(ref s) if s.code == ER_DUP_ENTRY => None,
                e => Some(err(e)),
            })
        }
        .await;
        match result {
            Ok(()) => Ok(true),
            Err(None) => Ok(false),
            Err(Some(e)) => {
                // Not a duplicate: maybe a dead pooled connection; one fresh try.
                crate::log::warn(&format!("database error ({e}); reconnecting"));
                self.recover().await?;
                let mut conn = self.conn().await?;
                match conn
                    .exec_drop(
                        "INSERT INTO users (userid, password_hash) VALUES (?, ?)",
                        (userid, hash),
                    )
                    .await
                {
                    Ok(()) => Ok(true),
                    Err(mysql_async::Error::Server(s)) if s.code == ER_DUP_ENTRY => Ok(false),
                    Err(e) => Err(err(e)),
                }
            }
        }
    }

    async fn password_hash(&self, userid: &str) -> Result<Option<String>, StoreError> {
        retry_once!(self, |conn| conn.exec_first::<String, _, _>(
            "SELECT password_hash FROM users WHERE userid = ?",
            (userid,)
        ))
    }

    async fn delete_user(&self, userid: &str) -> Result<(), StoreError> {
        retry_once!(self, |conn| conn
            .exec_drop("DELETE FROM tokens WHERE userid = ?", (userid,)))?;
        retry_once!(self, |conn| conn
            .exec_drop("DELETE FROM users WHERE userid = ?", (userid,)))
    }

    async fn add_token(&self, userid: &str, token: &str, expires: u64) -> Result<(), StoreError> {
        retry_once!(self, |conn| conn.exec_drop(
            "INSERT INTO tokens (token, userid, expires) VALUES (?, ?, ?)",
            (token, userid, expires)
        ))
    }

    async fn token_valid(&self, userid: &str, token: &str, now: u64) -> Result<bool, StoreError> {
        let found = retry_once!(self, |conn| conn.exec_first::<u64, _, _>(
            "SELECT expires FROM tokens WHERE token = ? AND userid = ?",
            (token, userid)
        ))?;
        Ok(found.is_some_and(|expires| expires > now))
    }
}

/// An in-memory [`Store`] for unit tests, which can pretend the database is down.
#[cfg(test)]
pub mod memory {
    use std::collections::HashMap;
    use std::sync::Mutex;
    use std::sync::atomic::{AtomicBool, Ordering};

    use super::{Store, StoreError};

    #[derive(Default)]
    pub struct MemoryStore {
        users: Mutex<HashMap<String, String>>,
        tokens: Mutex<HashMap<String, (String, u64)>>,
        pub down: AtomicBool,
    }

    impl MemoryStore {
        fn up(&self) -> Result<(), StoreError> {
            if self.down.load(Ordering::SeqCst) {
                Err(StoreError("connection refused".into()))
            } else {
                Ok(())
            }
        }
        pub fn stored_hash(&self, userid: &str) -> Option<String> {
            self.users.lock().expect("lock").get(userid).cloned()
        }
    }

    impl Store for MemoryStore {
        async fn add_user(&self, userid: &str, hash: &str) -> Result<bool, StoreError> {
            self.up()?;
            let mut users = self.users.lock().expect("lock");
            if users.contains_key(userid) {
                return Ok(false);
            }
            users.insert(userid.into(), hash.into());
            Ok(true)
        }
        async fn password_hash(&self, userid: &str) -> Result<Option<String>, StoreError> {
            self.up()?;
            Ok(self.stored_hash(userid))
        }
        async fn delete_user(&self, userid: &str) -> Result<(), StoreError> {
            self.up()?;
            self.users.lock().expect("lock").remove(userid);
            self.tokens
                .lock()
                .expect("lock")
                .retain(|_, (u, _)| u != userid);
            Ok(())
        }
        async fn add_token(
            &self,
            userid: &str,
            token: &str,
            expires: u64,
        ) -> Result<(), StoreError> {
            self.up()?;
            self.tokens
                .lock()
                .expect("lock")
                .insert(token.into(), (userid.into(), expires));
            Ok(())
        }
        async fn token_valid(
            &self,
            userid: &str,
            token: &str,
            now: u64,
        ) -> Result<bool, StoreError> {
            self.up()?;
            Ok(self
                .tokens
                .lock()
                .expect("lock")
                .get(token)
                .is_some_and(|(u, e)| u == userid && *e > now))
        }
    }
}
