//! Runs gantry jobs in Docker containers, through the Docker Engine API (bollard).
//!
//! [`DockerBackend`] implements the `gantry_backend` contract for jobs with `image`,
//! `services` and `image_build`:
//! - the script runs with `sh -e` in a container of the job's image, the job's workspace
//!   bind-mounted at its `workspace:` path and used as the working directory; output is
//!   streamed as it comes; exit codes, OOM kills, timeouts and cancels are outcomes;
//! - services run on a user-defined network made for that one job, reachable by their
//!   names; readiness is checked from a probe container on that network;
//! - `image_build` builds from the job's workspace through the Engine API and can push;
//! - everything created carries labels naming the run, the job and the owning gantry
//!   process, so teardown finds it and [`DockerBackend::sweep`] removes what a dead gantry
//!   left behind.
//!
//! Layout: `connect` (reaching the daemon, API version, error wording), `backend`
//! (settings, probe, prepare), `job` (the job container), `services` (service containers,
//! network, readiness), `ready` (the probe program), `image` (pull policy, builds, push),
//! `names` (names and labels), `owner` (who owns a resource; is it alive), `sweep`,
//! `output` (container output → log lines).

mod backend;
mod connect;
mod image;
mod job;
mod names;
mod output;
mod owner;
mod ready;
mod services;
mod sweep;

pub use backend::{DockerBackend, DockerSettings};
pub use names::{LABEL_BOOT, LABEL_JOB, LABEL_OWNER, LABEL_ROLE, LABEL_RUN};
pub use sweep::SweepReport;
