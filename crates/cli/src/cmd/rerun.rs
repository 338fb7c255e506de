//! `gantry rerun RUN [--failed]`: a new run with the same commit, ref and parameters.

use crate::api::{self, Api, Run};
use crate::args::{ColorChoice, RerunArgs};
use crate::error::{CliError, Exit};
use crate::paint::{self, Paint};

/// Runs `gantry rerun`.
pub fn rerun(args: RerunArgs, color: ColorChoice) -> Result<Exit, CliError> {
    let api = Api::new(&args.server)?;
    let paint = Paint::stdout(color);
    let id = args.run.to_string();
    let run: Run = api::block_on(api.post(
        &["api", "runs", &id, "rerun"],
        &serde_json::json!({ "failed_only": args.failed }),
    ))?;
    let what = if args.failed {
        "its failed jobs"
    } else {
        "all jobs"
    };
    paint::out(&format!(
        "{} {} (run {}), re-running {what} of run {}\n  {}\n  logs: gantry logs {} -f\n",
        paint.green("started"),
        paint.bold(run.title()),
        run.id,
        args.run,
        super::trigger::link(&api, run.id),
        run.id
    ));
    Ok(Exit::Success)
}
