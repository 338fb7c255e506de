//! Runs gantry jobs as host processes, each in its own process group.
//!
//! [`LocalBackend`] implements the `gantry_backend` contract for jobs without containers:
//! the script runs in one `sh -e` in the job's workspace, each command echoed as
//! `+ cmd`; stdout and stderr become timestamped log lines as they arrive; a timeout or a
//! cancel stops the whole process tree (SIGTERM, a grace period, SIGKILL), and so does the
//! end of the script for anything it left in the background. With
//! [`become_subreaper`] called at start, orphans of jobs are re-parented to gantry and
//! reaped, so no zombie remains.
//!
//! Layout: `backend` (prepare, probe), `job` (run and teardown), `spawn` (the only place a
//! process is started), `lines` (pipe bytes to log lines), `tree` (finding, stopping and
//! reaping a job's processes). The `sh` program itself is rendered by
//! [`gantry_backend::render_script`], shared with the other backends. `leftovers`
//! ([`stop_leftovers`]) finds and stops what the jobs of a killed gantry left running.

mod backend;
mod job;
mod leftovers;
mod lines;
mod spawn;
mod tree;

pub use backend::LocalBackend;
pub use leftovers::{Leftovers, stop_leftovers};
pub use tree::{COOKIE_VAR, become_subreaper};
