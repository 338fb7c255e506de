//! `gantry cancel RUN`: asks the server to cancel a run. Queued jobs are cancelled at
//! once; running ones are stopped by their executor at its next heartbeat.

use crate::api::{self, Api, Run};
use crate::args::{CancelArgs, ColorChoice};
use crate::error::{CliError, Exit};
use crate::paint::{self, Paint};

/// Runs `gantry cancel`.
pub fn cancel(args: CancelArgs, color: ColorChoice) -> Result<Exit, CliError> {
    let api = Api::new(&args.server)?;
    let paint = Paint::stdout(color);
    let id = args.run.to_string();
    let run: Run =
        api::block_on(api.post(&["api", "runs", &id, "cancel"], &serde_json::json!({})))?;
    let what = if run.state == "cancelled" {
        "cancelled".to_owned()
    } else if run.is_final() {
        format!("already {}", run.state)
    } else {
        "cancelling (running jobs stop at their next heartbeat)".to_owned()
    };
    paint::out(&format!(
        "{} (run {}): {}\n",
        paint.bold(run.title()),
        run.id,
        super::runs::state(&what, paint)
    ));
    Ok(Exit::Success)
}
