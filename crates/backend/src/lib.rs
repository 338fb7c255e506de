//! The backend contract: where one job runs.
//!
//! A [`Backend`] prepares an isolated place for one job ([`JobEnv`]): its workspace,
//! network and services. The job's script runs there while log lines are pushed into a
//! [`LogSink`], and the result comes back as an [`Outcome`] — a failing script, a timeout
//! or an OOM kill is data, never an `Err`. `Err` ([`BackendError`]) means the
//! infrastructure failed (the engine retries that once). Teardown is idempotent and runs
//! after success, failure, timeout and cancel alike.
//!
//! This crate holds the contract and nothing else: no implementation, no pipeline types.
//! Two small helpers every backend needs are here so that all backends behave alike:
//! [`render_script`] (the `sh -e` program with `+ cmd` echoes) and [`LineSplitter`]
//! (output bytes → log lines), plus the checks of a `JobSpec` every backend makes
//! (`JobSpec::check_strings`, `JobSpec::check_workspace`) and [`human_duration`].

mod checks;
mod contract;
mod lines;
mod log;
mod script;

pub use checks::human_duration;
pub use contract::*;
pub use lines::LineSplitter;
pub use log::*;
pub use script::render_script;
pub use tokio_util::sync::CancellationToken;
