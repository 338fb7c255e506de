//! `gantry gc`: removes what killed gantry processes left in Docker.

use anyhow::Context as _;

use crate::args::{ColorChoice, GcArgs};
use crate::backends;
use crate::error::{CliError, Exit};
use crate::paint;

/// Runs `gantry gc`.
pub fn gc(_args: GcArgs, _color: ColorChoice) -> Result<Exit, CliError> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    let report = runtime.block_on(backends::gc())?;
    if report.removed() == 0 {
        paint::out("nothing to remove\n");
    } else {
        paint::out(&format!("removed {}\n", backends::counts(&report)));
    }
    if report.errors.is_empty() {
        return Ok(Exit::Success);
    }
    let mut msg = String::from("some leftovers could not be removed:");
    for e in &report.errors {
        msg.push_str("\n  ");
        msg.push_str(e);
    }
    Err(CliError::Failed(anyhow::anyhow!(msg)))
}
