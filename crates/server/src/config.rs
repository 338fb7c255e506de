//! [`ServerConfig`]: everything `gantry serve` can be told, with the defaults of a
//! single-machine setup (SQLite and files under the data directory).

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// Settings of one server process.
#[derive(Debug, Clone)]
pub struct ServerConfig {
    /// Where the database (SQLite), logs, artifacts and git mirrors live.
    pub data_dir: PathBuf,
    /// Address to listen on (`127.0.0.1:8080`; port 0 picks a free one).
    pub listen: SocketAddr,
    /// Database URL (`postgres://…`, `sqlite://…`); `None` = SQLite under `data_dir`.
    pub database_url: Option<String>,
    /// Whether requests without a token may read (list runs, read logs). Off by default.
    pub anonymous_read: bool,
    /// How often repositories are polled when their pipeline sets no `on.poll`.
    pub default_poll_interval: Duration,
    /// How long a lease lives without a heartbeat.
    pub lease_ttl: Duration,
    /// Leases a job may be given before an expired one marks it errored instead of
    /// re-queueing it.
    pub max_attempts: u32,
    /// Base URL of the server as users reach it, for links in notifications
    /// (`https://ci.example.com`); `None` = `http://<listen address>`.
    pub public_url: Option<String>,
    /// Mail server for `notify: email`; `None` = email notifications are logged and
    /// dropped.
    pub smtp: Option<SmtpSettings>,
    /// Largest request body the API accepts (JSON, webhooks), in bytes.
    pub max_body_bytes: usize,
    /// Largest artifact blob an executor may upload, in bytes.
    pub max_artifact_bytes: u64,
    /// Most bytes the pipeline caches of all repositories may take together (the sum of
    /// their entries' sizes); past it, the least recently used entries are evicted.
    pub cache_max_bytes: u64,
    /// A blob no artifact or cache entry names is deleted with the entry that named it
    /// only once it is this old: younger ones may belong to an upload whose manifest has
    /// not arrived yet (a job's artifacts, another job's cache).
    pub blob_grace: Duration,
    /// Largest log batch (the JSON body of one agent `logs` call) an agent may send, in
    /// bytes; agent calls other than artifact uploads are limited to the larger of this
    /// and `max_body_bytes`.
    pub max_log_batch_bytes: usize,
    /// Run the polling, cron and lease-expiry loops (tests switch them off to drive the
    /// server by hand).
    pub background_loops: bool,
}

/// Mail server settings (the notification module's type).
pub use crate::notify::email::{SmtpSettings, SmtpTls};

/// The former name of [`SmtpSettings`].
pub type SmtpConfig = SmtpSettings;

impl ServerConfig {
    /// Defaults for a data directory: listen on `127.0.0.1:8080`, SQLite, anonymous read
    /// off, poll every 5 minutes, 30 s leases, 3 attempts, 10 MiB bodies, 1 GiB artifacts,
    /// 10 GiB of caches (blobs kept an hour after their last use), 8 MiB log batches.
    pub fn new(data_dir: impl Into<PathBuf>) -> ServerConfig {
        ServerConfig {
            data_dir: data_dir.into(),
            listen: SocketAddr::from(([127, 0, 0, 1], 8080)),
            database_url: None,
            anonymous_read: false,
            default_poll_interval: Duration::from_secs(300),
            lease_ttl: Duration::from_secs(30),
            max_attempts: 3,
            public_url: None,
            smtp: None,
            max_body_bytes: 10 * 1024 * 1024,
            max_artifact_bytes: 1024 * 1024 * 1024,
            cache_max_bytes: 10 * 1024 * 1024 * 1024,
            blob_grace: Duration::from_secs(3600),
            max_log_batch_bytes: 8 * 1024 * 1024,
            background_loops: true,
        }
    }

    /// The database URL in effect: the configured one, or the SQLite file under the
    /// data directory.
    pub fn database_url(&self) -> String {
        match &self.database_url {
            Some(url) => url.clone(),
            None => self.data_dir.join("gantry.sqlite").display().to_string(),
        }
    }

    /// Where job logs live.
    pub fn logs_dir(&self) -> PathBuf {
        self.data_dir.join("logs")
    }

    /// Where artifact blobs live.
    pub fn artifacts_dir(&self) -> PathBuf {
        self.data_dir.join("artifacts")
    }

    /// Where git mirrors live.
    pub fn git_dir(&self) -> PathBuf {
        self.data_dir.join("git")
    }

    /// The data directory.
    pub fn data_dir(&self) -> &Path {
        &self.data_dir
    }
}
