//! `gantry token rotate`: revokes the admin token and prints a new one, by opening the
//! server's database directly (the way back for an operator who lost the token, so it
//! cannot require one). A running server sees the change at its next request.

use anyhow::Context as _;

use crate::args::{ColorChoice, TokenCommand, TokenRotateArgs};
use crate::error::{CliError, Exit};
use crate::paint::{self, Paint};

/// Runs `gantry token …`.
pub fn token(command: TokenCommand, color: ColorChoice) -> Result<Exit, CliError> {
    match command {
        TokenCommand::Rotate(args) => rotate(args, color),
    }
}

fn rotate(args: TokenRotateArgs, color: ColorChoice) -> Result<Exit, CliError> {
    let mut config = gantry_server::ServerConfig::new(&args.data);
    config.database_url = args.database.clone();
    // Without --database the SQLite file must already be there: rotating the token of a
    // directory that holds no server would silently create an empty one.
    if config.database_url.is_none() && !super::serve::sqlite_file(&config).exists() {
        return Err(CliError::invalid(format!(
            "error: {} holds no gantry database\n  help: give the --data directory of the \
             server (or --database for PostgreSQL)",
            args.data.display()
        )));
    }
    let url = config.database_url();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    let token = runtime.block_on(async {
        let store = gantry_store::open(&url)
            .await
            .with_context(|| format!("cannot open the database {}", shown_url(&url)))?;
        gantry_server::rotate_admin_token(store.as_ref())
            .await
            .context("cannot store the new token")
    })?;
    let paint = Paint::stderr(color);
    paint::err(&format!(
        "{}\n",
        paint.yellow("the old admin token is revoked; the new one is shown only this once:")
    ));
    paint::out(&format!("{token}\n"));
    Ok(Exit::Success)
}

/// A database URL without its password, for messages.
pub fn shown_url(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_owned();
    };
    match rest.split_once('@') {
        Some((userinfo, host)) => {
            let user = userinfo.split(':').next().unwrap_or("");
            format!("{scheme}://{user}:***@{host}")
        }
        None => url.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwords_are_hidden() {
        for (url, want) in [
            (
                "postgres://gantry:s3cret@db/gantry",
                "postgres://gantry:***@db/gantry",
            ),
            (
                "sqlite:///var/lib/gantry/gantry.sqlite?mode=rwc",
                "sqlite:///var/lib/gantry/gantry.sqlite?mode=rwc",
            ),
            ("/path/db.sqlite", "/path/db.sqlite"),
        ] {
            assert_eq!(shown_url(url), want);
        }
    }
}
