//! The `gantry` binary: `gantry run`, `lint`, `graph`, `gc`, `cache` on this machine;
//! `gantry serve` (the CI server with its built-in executor) and `gantry token`; `gantry
//! agent` (an executor of a server's jobs on another machine); and the server's clients
//! `gantry repo`, `runs`, `trigger`, `logs`, `cancel`, `rerun`, `agent-token`, `agents`.
//!
//! The only crate that links concrete backends. It turns command-line input into a plan,
//! hands the plan to the engine, and renders the engine's events for a person.

mod api;
mod args;
mod backends;
mod cmd;
mod discover;
mod error;
mod executor;
mod graph;
mod inputs;
mod logs;
mod mask;
mod memory;
mod paint;
mod render;
mod run_dir;
mod signals;
mod sse;
mod state;
mod summary;
mod table;
mod term;
mod watch;
mod when;

use std::process::ExitCode;

use clap::Parser as _;

use crate::args::{Cli, Command};
use crate::paint::Paint;

fn main() -> ExitCode {
    // The local UTC offset can only be read soundly while the process has one thread, so
    // read it first; log timestamps use it.
    let offset = time::UtcOffset::current_local_offset().unwrap_or(time::UtcOffset::UTC);
    // One TLS crypto provider for the whole process (reqwest, SMTP); installing it before
    // anything uses TLS means no library ever has to pick one. Failing means one is
    // installed already, which is as good.
    let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
    // Usage errors exit with 2 here (clap's convention matches ours).
    let cli = Cli::parse();
    let color = cli.color;
    let result = match cli.command {
        Command::Run(args) => cmd::run::run(args, color, offset),
        Command::Lint(args) => cmd::lint::lint(args, color),
        Command::Graph(args) => cmd::graph::graph(args, color),
        Command::Gc(args) => cmd::gc::gc(args, color),
        Command::Cache(args) => cmd::cache::cache(args, color),
        Command::Serve(args) => cmd::serve::serve(args, color),
        Command::Token(args) => cmd::token::token(args, color),
        Command::Repo(args) => cmd::repo::repo(args, color),
        Command::User(args) => cmd::user::user(args, color),
        Command::Runs(args) => cmd::runs::runs(args, color),
        Command::Trigger(args) => cmd::trigger::trigger(args, color),
        Command::Logs(args) => cmd::logs::logs(args, color),
        Command::Cancel(args) => cmd::cancel::cancel(args, color),
        Command::Rerun(args) => cmd::rerun::rerun(args, color),
        Command::Agent(args) => cmd::agent::agent(args, color),
        Command::AgentToken(args) => cmd::agent_token::agent_token(args, color),
        Command::Agents(args) => cmd::agent_token::agents(args, color),
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
