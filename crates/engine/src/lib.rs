//! The gantry engine: runs a [`gantry_pipeline::Plan`] on a [`gantry_backend::Backend`].
//!
//! Two halves: the DAG scheduler ([`run`], `scheduler.rs`: which jobs are ready, skipped
//! or blocked; a job starts the moment its needs are done) and the job runner
//! (`runner.rs`: pristine workspace, restore artifacts, start services, run the script,
//! collect artifacts, tear down). Around them: the [`Source`] snapshot of a working tree,
//! pristine [`workspace`]s, the content-addressed [`artifacts`] store and secret
//! [`mask`]ing. The engine's only output is the closed [`RunEvent`] enum; the CLI renders
//! it, the server persists it.

pub mod artifacts;
mod config;
mod event;
pub mod mask;
mod runner;
mod scheduler;
pub mod source;
pub mod workspace;

#[cfg(test)]
mod testutil;

pub use config::{ArtifactSummary, Backends, JobSummary, RunConfig, RunSummary};
pub use event::*;
pub use scheduler::{job_keys, run};
pub use source::{Source, SourceError, SourceInfo};
