//! The executor contract: how `gantry serve` hands out jobs and how executors report back.
//!
//! One interface, [`JobSource`], is used by the server's built-in executor (in-process)
//! and by remote agents (over HTTP, the agent issue): single-node and distributed runs are
//! one code path. A [`Lease`] carries everything one job needs (the planned job, the source
//! revision, the artifacts to restore, secrets). Every report names its lease; a report
//! under an expired or superseded lease is refused with [`LeaseError::Stale`] (fencing), and
//! the executor must then stop and clean up that job.
//!
//! Everything here is a wire type (serde), and nothing here does IO.

mod lease;
mod source;

pub use lease::*;
pub use source::*;
