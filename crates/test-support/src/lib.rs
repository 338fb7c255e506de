//! Test helpers shared across gantry crates: a scriptable [`FakeBackend`] and fixtures.
//!
//! The fake obeys `FAKE_*` variables in a job's environment (see [`fake`]) and records
//! what happened so tests can assert DAG order, the parallelism limit, retries and
//! teardown without Docker or real processes. [`fixtures`] builds source trees on disk,
//! including real git repositories with tracked, untracked and ignored files.
//! [`TcpProxy`] sits between two real processes and cuts or resets their connection on
//! the test's command.

pub mod fake;
pub mod fixtures;
pub mod proxy;

pub use fake::{FakeBackend, Phase, Record};
pub use fixtures::{TempTree, generate_tree, git, git_repo};
pub use proxy::TcpProxy;
