//! [`Server`]: starting and stopping `gantry serve` as a library, for the CLI and for
//! tests.
//!
//! [`Server::start`] opens the store (migrating it), creates the admin token on the
//! first start, recovers from a crash (every lease the built-in executor held is expired
//! into a new attempt, every active run is advanced again), binds the listener, and
//! spawns the HTTP server and the background loops. The caller runs the built-in
//! executor against [`Server::job_source`], the same interface a remote agent uses.

use std::net::SocketAddr;
use std::sync::Arc;

use gantry_protocol::JobSource;
use gantry_store::{Store, StoreError};
use tokio::task::JoinHandle;

use crate::config::ServerConfig;
use crate::executor::ServerJobSource;
use crate::state::{Shared, State};

/// The name of the server's own executor; its leases are expired at every start, since
/// it died with the previous process.
pub const BUILTIN_EXECUTOR: &str = "builtin";

/// Why the server could not start.
#[derive(Debug, thiserror::Error)]
pub enum ServerError {
    /// The data directory could not be created.
    #[error("cannot create the data directory {path}")]
    DataDir {
        /// The directory.
        path: String,
        /// Cause.
        #[source]
        source: std::io::Error,
    },
    /// The database could not be opened or migrated.
    #[error("cannot open the database")]
    Store(#[from] StoreError),
    /// The listen address could not be bound.
    #[error("cannot listen on {addr}")]
    Bind {
        /// The address.
        addr: SocketAddr,
        /// Cause.
        #[source]
        source: std::io::Error,
    },
}

/// A running server.
pub struct Server {
    state: State,
    addr: SocketAddr,
    admin_token: Option<String>,
    http: JoinHandle<()>,
    loops: Vec<JoinHandle<()>>,
    stop: tokio::sync::watch::Sender<bool>,
}

impl Server {
    /// Starts a server with the store its configuration names (see the module docs).
    pub async fn start(config: ServerConfig) -> Result<Server, ServerError> {
        std::fs::create_dir_all(&config.data_dir).map_err(|source| ServerError::DataDir {
            path: config.data_dir.display().to_string(),
            source,
        })?;
        let store = gantry_store::open(&config.database_url()).await?;
        Server::start_with_store(config, store).await
    }

    /// Starts a server over an already open store.
    pub async fn start_with_store(
        config: ServerConfig,
        store: Arc<dyn Store>,
    ) -> Result<Server, ServerError> {
        std::fs::create_dir_all(&config.data_dir).map_err(|source| ServerError::DataDir {
            path: config.data_dir.display().to_string(),
            source,
        })?;
        let admin_token = crate::auth::ensure_admin_token(store.as_ref()).await?;
        let listen = config.listen;
        let loops_on = config.background_loops;
        let state = Shared::new(store, config);
        recover(&state).await?;
        let listener = tokio::net::TcpListener::bind(listen)
            .await
            .map_err(|source| ServerError::Bind {
                addr: listen,
                source,
            })?;
        let addr = listener.local_addr().map_err(|source| ServerError::Bind {
            addr: listen,
            source,
        })?;
        let _ = state.bound.set(addr);
        let (stop, mut stopped) = tokio::sync::watch::channel(false);
        let app = crate::api::router(state.clone());
        let http = tokio::spawn(async move {
            // The client's address reaches handlers (the login throttle counts by it).
            let app = app.into_make_service_with_connect_info::<SocketAddr>();
            let served = axum::serve(listener, app)
                .with_graceful_shutdown(async move {
                    let _ = stopped.wait_for(|s| *s).await;
                })
                .await;
            if let Err(e) = served {
                tracing::error!("the HTTP server failed: {e}");
            }
        });
        let loops = if loops_on {
            crate::loops::spawn(&state)
        } else {
            Vec::new()
        };
        Ok(Server {
            state,
            addr,
            admin_token,
            http,
            loops,
            stop,
        })
    }

    /// The address the API listens on.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `http://ADDR` (or the configured public URL).
    pub fn url(&self) -> String {
        self.state.public_url()
    }

    /// The admin token, in plaintext, when this start created it (first start only):
    /// show it once; only its hash is kept.
    pub fn admin_token(&self) -> Option<&str> {
        self.admin_token.as_deref()
    }

    /// The job source for the built-in executor (name it [`BUILTIN_EXECUTOR`]).
    pub fn job_source(&self) -> Arc<dyn JobSource> {
        Arc::new(ServerJobSource::new(self.state.clone()))
    }

    /// The shared state (tests, the CLI's status output).
    pub fn state(&self) -> &State {
        &self.state
    }

    /// Stops accepting requests, ends the loops and wakes waiting leases; in-flight
    /// requests finish first. Runs and jobs stay in the database as they are.
    pub async fn shutdown(self) {
        let _ = self.stop.send(true);
        self.state.shutdown.notify_waiters();
        for l in &self.loops {
            l.abort();
        }
        for l in self.loops {
            let _ = l.await;
        }
        // SSE followers keep connections open; don't wait on them forever.
        let _ = tokio::time::timeout(std::time::Duration::from_secs(5), self.http).await;
    }
}

/// Crash recovery: every lease of the built-in executor died with the previous process
/// (its jobs are queued again as a new attempt, or errored once out of attempts), and
/// every active run is advanced, so nothing waits for an event that already happened.
pub async fn recover(state: &State) -> Result<(), StoreError> {
    crate::loops::expire(state, Some(BUILTIN_EXECUTOR)).await?;
    crate::scheduler::advance_all(state).await?;
    // A smaller `--cache-max-size` than last time takes effect at once.
    if let Err(e) = crate::caches::evict(state).await {
        tracing::warn!("cannot evict caches: {e}");
    }
    crate::caches::sweep_orphans(state).await;
    Ok(())
}
