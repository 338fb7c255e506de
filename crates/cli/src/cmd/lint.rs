//! `gantry lint [FILE]`: every problem of a pipeline file, or a one-line all-clear.

use std::path::Path;

use crate::args::{ColorChoice, LintArgs};
use crate::discover;
use crate::error::{CliError, Exit};
use crate::paint::{self, Paint};

/// Runs `gantry lint`.
pub fn lint(args: LintArgs, color: ColorChoice) -> Result<Exit, CliError> {
    let file = discover::resolve(args.file.as_deref(), Path::new("."))?;
    let paint = Paint::stdout(color);
    let text = discover::read(&file)?;
    let name = super::shown(&file);
    match super::parse(&file, &text) {
        Ok(spec) => {
            let jobs = spec.jobs().len();
            paint::out(&format!(
                "{} {name}: {jobs} job{}, no problems\n",
                paint.green("✓"),
                if jobs == 1 { "" } else { "s" }
            ));
            Ok(Exit::Success)
        }
        Err(diagnostics) => {
            paint::out(&format!(
                "{}\n",
                paint::diagnostics(&diagnostics.to_string(), paint)
            ));
            Ok(Exit::Failure)
        }
    }
}
