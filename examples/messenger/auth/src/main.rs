//! `auth`: the messenger's authentication service — users with hashed passwords and
//! expiring tokens, behind a small REST API, stored in MySQL/MariaDB.
//!
//! `auth -l debug run --db-host db -p 9000`; see `cli.rs` for every option.

mod api;
mod cli;
mod http;
mod password;
mod store;

use messenger_common::log;

use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use crate::cli::{Command, Options};
use crate::store::MysqlStore;

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let options = match cli::parse(&args) {
        Ok(Command::Help) => {
            print!("{}", cli::USAGE);
            return ExitCode::SUCCESS;
        }
        Ok(Command::Run(options)) => options,
        Err(e) => {
            eprintln!("auth: {e}\n\n{}", cli::USAGE);
            return ExitCode::from(2);
        }
    };
    log::init("auth", options.log_level);
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("auth: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let serve = async {
        tokio::select! {
            r = run(options) => r,
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

async fn run(options: Options) -> Result<(), String> {
    let store = MysqlStore::new(&options);
    // The services of an environment start in any order: wait for the database rather
    // than dying, so whoever orchestrates us needs no startup ordering.
    loop {
        log::info(&format!(
            "Connecting to database {}:{}",
            options.db_host, options.db_port
        ));
        match store.create_tables().await {
            Ok(()) => break,
            Err(e) => {
                log::warn(&format!("database not reachable yet ({e}); retrying in 1s"));
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
        }
    }
    log::info(&format!(
        "Connected to database {}:{}, tables ready",
        options.db_host, options.db_port
    ));
    let state = Arc::new(api::Api::new(store, options.token_ttl));
    http::serve(state, options.port).await
}

/// Resolves on SIGTERM or SIGINT. As PID 1 of a container the process gets no default
/// handling of SIGTERM, so without this `docker stop` would wait for its timeout.
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
