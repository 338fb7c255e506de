//! The executor contract: how `gantry serve` hands out jobs and how executors report back.
//!
//! One interface, [`JobSource`], is used by the server's built-in executor (in-process)
//! and by remote agents (over HTTP, the agent issue): single-node and distributed runs are
//! one code path. A [`Lease`] carries everything one job needs (the planned job, the source
//! revision, the artifacts to restore, secrets); the job's `cache:` entries are read and
//! saved under the lease too, scoped to its repository. Every report names its lease; a
//! report under an expired or superseded lease is refused with [`LeaseError::Stale`]
//! (fencing), and the executor must then stop and clean up that job.
//!
//! Remote agents reach the same interface over HTTP; the routes, bodies and the mapping of
//! errors to status codes are in this crate too (`http.rs`: [`AGENT_API`], [`AgentHello`],
//! [`ServerHello`], [`LeaseRequest`], [`ErrorBody`]), so the server and the agent's client
//! share them.
//!
//! Everything here is a wire type (serde), and nothing here does IO.

mod http;
mod lease;
mod source;

pub use http::*;
pub use lease::*;
pub use source::*;
