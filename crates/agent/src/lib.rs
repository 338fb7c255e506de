//! The executor: leases jobs from a [`gantry_protocol::JobSource`], checks out their
//! source, restores the artifacts of their needs, runs them with the engine's single-job
//! runner ([`gantry_engine::run_one`]) on the given backends, and reports back: log lines
//! in batches, heartbeats, artifact blobs, the final result.
//!
//! The server's built-in executor runs this loop over an in-process source; remote agents
//! run it over HTTP with [`HttpJobSource`] (`http.rs`), the client of the server's agent
//! routes. See [`Executor`] for the loop, `job.rs` for one lease from start to
//! report, `checkout.rs` for the git mirror cache, `logs.rs` for log batching,
//! `caches.rs` for the job's `cache:` kept on the server, `blobs.rs` for moving
//! artifact and cache blobs, and `leases.rs` for the record of held leases that a
//! killed executor leaves for its next run.

mod blobs;
mod caches;
mod checkout;
mod executor;
mod http;
mod job;
mod leases;
mod logs;
mod report;

pub use executor::{Executor, ExecutorConfig, ExecutorError, ExecutorHandle};
pub use http::HttpJobSource;
pub use leases::earlier_leases;
