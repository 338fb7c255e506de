//! The gantry engine: runs a [`gantry_pipeline::Plan`] on a [`gantry_backend::Backend`].
//!
//! Two halves: the DAG scheduler (which jobs are ready, skipped or blocked; a job starts
//! the moment its needs are done) and the job runner (pristine workspace, restore
//! artifacts, start services, run the script, collect artifacts, tear down). The engine's
//! only output is the closed [`RunEvent`] enum; the CLI renders it, the server persists it.

mod event;

pub use event::*;
