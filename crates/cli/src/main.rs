//! The `gantry` binary: `gantry run`, `gantry lint`, `gantry graph`, `gantry gc`.
//!
//! The only crate that links concrete backends. It turns command-line input into a plan,
//! hands the plan to the engine, and renders the engine's events for a person.

mod args;
mod backends;
mod cmd;
mod discover;
mod error;
mod graph;
mod inputs;
mod logs;
mod mask;
mod paint;
mod render;
mod run_dir;
mod signals;
mod state;
mod summary;
mod term;

use std::process::ExitCode;

use clap::Parser as _;

use crate::args::{Cli, Command};
use crate::paint::Paint;

fn main() -> ExitCode {
    // The local UTC offset can only be read soundly while the process has one thread, so
    // read it first; log timestamps use it.
    let offset = time::UtcOffset::current_local_offset().unwrap_or(time::UtcOffset::UTC);
    // Usage errors exit with 2 here (clap's convention matches ours).
    let cli = Cli::parse();
    let color = cli.color;
    let result = match cli.command {
        Command::Run(args) => cmd::run::run(args, color, offset),
        Command::Lint(args) => cmd::lint::lint(args, color),
        Command::Graph(args) => cmd::graph::graph(args, color),
        Command::Gc(args) => cmd::gc::gc(args, color),
    };
    match result {
        Ok(exit) => exit.into(),
        Err(err) => {
            let text = match &err {
                error::CliError::Invalid(_) => err.to_string(),
                error::CliError::Failed(_) => format!("error: {err}"),
            };
            paint::err(&format!(
                "{}\n",
                paint::diagnostics(&text, Paint::stderr(color))
            ));
            ExitCode::from(err.code())
        }
    }
}
