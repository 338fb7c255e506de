//! `gantry serve`: the CI server. It keeps repositories, runs and jobs in a
//! [`gantry_store::Store`], watches repositories (polling, webhooks, cron), plans runs from
//! the pipeline file at each commit, decides which jobs are ready, hands them to executors
//! through the [`gantry_protocol::JobSource`] lease interface (the built-in executor uses it
//! in-process), stores logs and artifacts as files, notifies, and serves the REST API.
//!
//! Map: [`server`] starts and stops everything; [`runs`] creates runs; [`scheduler`]
//! decides jobs ([`approvals`] holds some for a person); [`executor`] hands them out (to remote agents through [`api::agent`]) and
//! [`agents`] keeps track of who is online; [`logs`] and [`blobs`] keep the files, and
//! [`caches`] the pipeline caches made of blobs;
//! [`api`] is the HTTP surface; [`loops`] polls, fires schedules and expires leases;
//! [`git`], [`triggers`], [`notify`] and [`metrics`] are the building blocks they use.
//!
//! Architecture invariant: the server links no backend crate; jobs run only through leases.

// The OpenAPI document is one `serde_json::json!` literal, deeper than the default limit.
#![recursion_limit = "512"]

pub mod agents;
pub mod api;
pub mod approvals;
pub mod auth;
pub mod blobs;
pub mod caches;
pub mod config;
pub mod executor;
pub mod finish;
pub mod git;
pub mod interp;
pub mod logs;
pub mod loops;
pub mod metrics;
pub mod notify;
mod notify_hook;
pub mod runs;
pub mod scheduler;
pub mod server;
pub mod state;
pub mod triggers;
pub mod web;

pub use auth::rotate_admin_token;
pub use config::{ServerConfig, SmtpConfig, SmtpSettings, SmtpTls};
pub use executor::ServerJobSource;
pub use server::{BUILTIN_EXECUTOR, Server, ServerError};
