//! [`open`]: the one entry point the server and the CLI use, choosing the database by
//! the shape of the address they were given.

use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use crate::model::Millis;
use crate::postgres::PgStore;
use crate::sqlite::SqliteStore;
use crate::store::{Store, StoreError};

/// Opens the store at `url` and brings its schema up to date:
/// `postgres://…` (or `postgresql://…`) is PostgreSQL; `sqlite:…` or a plain file path is
/// SQLite (the file and its folder are created if missing).
pub async fn open(url: &str) -> Result<Arc<dyn Store>, StoreError> {
    if url.starts_with("postgres://") || url.starts_with("postgresql://") {
        return Ok(Arc::new(PgStore::connect(url).await?));
    }
    if let Some((scheme, _)) = url.split_once("://")
        && scheme != "sqlite"
        && !scheme.contains(['/', '.'])
    {
        return Err(StoreError::Database(format!(
            "unsupported database url `{scheme}://…`: use postgres://…, sqlite:… or a file path"
        )));
    }
    Ok(Arc::new(SqliteStore::open(url).await?))
}

/// Now, as the store's times are kept.
pub(crate) fn now_millis() -> Millis {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}
