//! What the end-to-end tests share: `gantry serve` as a real process and the `gantry` CLI
//! as its client (`server`), real git repositories (`git`), raw HTTP (`http`) and a look
//! at this machine's processes (`procs`).
//!
//! Each test binary includes this module (`mod support;`) and uses a part of it.
#![allow(
    dead_code,
    unused_imports,
    reason = "each test binary uses a different part of these helpers"
)]

pub mod git;
pub mod http;
pub mod procs;
pub mod server;

use std::time::Duration;

pub use git::Repo;
pub use http::http;
pub use procs::processes_with_arg;
pub use server::{Server, admin_token, client, client_command, code, is_final, stderr, stdout};

/// Long enough for a loaded two-core machine; a deadline is a hang, not a measurement.
pub const DEADLINE: Duration = Duration::from_secs(180);
