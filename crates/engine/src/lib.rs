//! The gantry engine: runs a [`gantry_pipeline::Plan`] on a [`gantry_backend::Backend`].
//!
//! Two halves: the DAG scheduler ([`run`], `scheduler.rs`: which jobs are ready, skipped
//! or blocked; a job starts the moment its needs are done) and the job runner
//! (`runner.rs`: pristine workspace, restore artifacts, start services, run the script,
//! collect artifacts, tear down). Around them: the [`Source`] snapshot of a working tree,
//! pristine [`workspace`]s, the content-addressed [`artifacts`] store and secret
//! [`mask`]ing. [`dag`] holds the scheduling rules as pure functions (the server decides
//! with them too), and [`run_one`] runs a single job for executors that are handed jobs
//! one at a time. The engine's only output is the closed [`RunEvent`] enum; the CLI renders
//! it, the server persists it.

pub mod artifacts;
pub mod cache;
mod config;
pub mod dag;
mod event;
pub mod mask;
mod runner;
mod scheduler;
mod single;
pub mod source;
pub mod workspace;

#[cfg(test)]
mod testutil;

pub use config::{ArtifactSummary, Backends, JobSummary, RunConfig, RunSummary};
pub use event::*;
pub use runner::chain as error_chain;
pub use scheduler::{job_keys, run};
pub use single::{JobRun, OneJobResult, run_one};
pub use source::{Source, SourceError, SourceInfo};
