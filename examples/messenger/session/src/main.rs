//! `session`: the messenger's message router. Clients connect over TCP, authenticate
//! with a userid and a token (checked against the `auth` service over HTTP), then send
//! lines to other users, delivered to every open connection of the recipient. The
//! protocol is in `protocol.rs` and the example's README.
//!
//! `session -l debug run --auth-host auth --auth-port 9000 -p 9001`

mod auth_client;
mod cli;
mod hub;
mod protocol;
mod server;

use messenger_common::log;

use std::process::ExitCode;
use std::sync::Arc;

use crate::auth_client::HttpAuth;
use crate::cli::Command;

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let options = match cli::parse(&args) {
        Ok(Command::Help) => {
            print!("{}", cli::USAGE);
            return ExitCode::SUCCESS;
        }
        Ok(Command::Run(options)) => options,
        Err(e) => {
            eprintln!("session: {e}\n\n{}", cli::USAGE);
            return ExitCode::from(2);
        }
    };
    log::init("session", options.log_level);
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("session: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let auth = Arc::new(HttpAuth::new(&options.auth_host, options.auth_port));
    let serve = async {
        tokio::select! {
            r = server::serve(auth, options.port) => r,
            () = shutdown() => Ok(()),
        }
    };
    match runtime.block_on(serve) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            log::error(&e);
            ExitCode::FAILURE
        }
    }
}

/// Resolves on SIGTERM or SIGINT (as PID 1 of a container nothing else would stop us
/// before `docker stop`'s timeout).
async fn shutdown() {
    use tokio::signal::unix::{SignalKind, signal};
    match signal(SignalKind::terminate()) {
        Ok(mut term) => {
            tokio::select! {
                _ = term.recv() => {}
                _ = tokio::signal::ctrl_c() => {}
            }
        }
        Err(_) => {
            let _ = tokio::signal::ctrl_c().await;
        }
    }
    log::info("stopping");
}
