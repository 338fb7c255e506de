//! `gantry user add|list|passwd|role|disable|enable|remove`: the user accounts of a
//! server's web UI, through its REST API (`/api/users…`, admin token).
//!
//! Passwords are read from the terminal without echo (asked twice), or from standard
//! input with `--password-stdin` (for scripts). They are sent to the server, which keeps
//! only a hash; the CLI never prints or stores them.

use std::io::{BufRead, BufReader, Read, Write};

use nix::sys::termios::{LocalFlags, SetArg, tcgetattr, tcsetattr};
use reqwest::Method;
use serde::Deserialize;
use time::OffsetDateTime;

use crate::api::{self, Api};
use crate::args::{
    ColorChoice, UserAddArgs, UserCommand, UserListArgs, UserNameArgs, UserPasswordArgs,
    UserRoleArgs,
};
use crate::error::{CliError, Exit};
use crate::paint::{self, Paint};
use crate::table::Table;
use crate::when;

/// A user account as the API shows it.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct UserRow {
    name: String,
    role: String,
    disabled: bool,
    created_at: Option<String>,
}

/// Runs `gantry user …`.
pub fn user(command: UserCommand, color: ColorChoice) -> Result<Exit, CliError> {
    match command {
        UserCommand::Add(args) => add(args, color),
        UserCommand::List(args) => list(args, color),
        UserCommand::Passwd(args) => passwd(args),
        UserCommand::Role(args) => role(args),
        UserCommand::Disable(args) => set_disabled(args, true),
        UserCommand::Enable(args) => set_disabled(args, false),
        UserCommand::Remove(args) => remove(args),
    }
}

fn add(args: UserAddArgs, color: ColorChoice) -> Result<Exit, CliError> {
    let api = Api::new(&args.server)?;
    // Checked here too, so that a bad name is told before the password is asked for.
    gantry_server::auth::validate_user_name(&args.name)
        .map_err(|e| CliError::invalid(format!("error: {e}")))?;
    let password = read_password(args.password_stdin, &args.name)?;
    let body = serde_json::json!({
        "name": args.name,
        "password": password,
        "role": args.role.as_str(),
    });
    let user: UserRow = api::block_on(api.post(&["api", "users"], &body))?;
    let paint = Paint::stdout(color);
    paint::out(&format!(
        "{} user {} ({})\n  they log in at {}/login\n",
        paint.green("created"),
        paint.bold(&user.name),
        user.role,
        api.base()
    ));
    Ok(Exit::Success)
}

fn list(args: UserListArgs, color: ColorChoice) -> Result<Exit, CliError> {
    let api = Api::new(&args.server)?;
    let rows: Vec<serde_json::Value> = api::block_on(api.get(&["api", "users"], &[]))?;
    if args.json {
        paint::out(&format!("{}\n", super::repo::pretty(&rows)));
        return Ok(Exit::Success);
    }
    if rows.is_empty() {
        paint::out("no users\n  help: make one with `gantry user add NAME --role admin`\n");
        return Ok(Exit::Success);
    }
    let rows: Vec<UserRow> = rows
        .into_iter()
        .map(|v| serde_json::from_value(v).unwrap_or_default())
        .collect();
    paint::out(&user_table(
        &rows,
        OffsetDateTime::now_utc(),
        Paint::stdout(color),
    ));
    Ok(Exit::Success)
}

fn user_table(rows: &[UserRow], now: OffsetDateTime, paint: Paint) -> String {
    let mut table = Table::new(&["NAME", "ROLE", "STATUS", "CREATED"]);
    for row in rows {
        table.row(vec![
            paint.bold(&row.name),
            row.role.clone(),
            if row.disabled {
                paint.red("disabled")
            } else {
                paint.green("active")
            },
            row.created_at
                .as_deref()
                .and_then(when::parse)
                .map(|t| when::ago(t, now))
                .unwrap_or_default(),
        ]);
    }
    table.render()
}

fn passwd(args: UserPasswordArgs) -> Result<Exit, CliError> {
    let api = Api::new(&args.server)?;
    let password = read_password(args.password_stdin, &args.name)?;
    change(
        &api,
        &args.name,
        serde_json::json!({ "password": password }),
    )?;
    paint::out(&format!(
        "changed the password of {}; their sessions have ended\n",
        args.name
    ));
    Ok(Exit::Success)
}

fn role(args: UserRoleArgs) -> Result<Exit, CliError> {
    let api = Api::new(&args.server)?;
    change(
        &api,
        &args.name,
        serde_json::json!({ "role": args.role.as_str() }),
    )?;
    paint::out(&format!(
        "{} is now {} {}\n",
        args.name,
        if args.role.as_str() == "admin" {
            "an"
        } else {
            "a"
        },
        args.role.as_str()
    ));
    Ok(Exit::Success)
}

fn set_disabled(args: UserNameArgs, disabled: bool) -> Result<Exit, CliError> {
    let api = Api::new(&args.server)?;
    change(
        &api,
        &args.name,
        serde_json::json!({ "disabled": disabled }),
    )?;
    paint::out(&if disabled {
        format!(
            "disabled user {}: they cannot log in, and their sessions have ended\n",
            args.name
        )
    } else {
        format!("enabled user {}: they can log in again\n", args.name)
    });
    Ok(Exit::Success)
}

fn remove(args: UserNameArgs) -> Result<Exit, CliError> {
    let api = Api::new(&args.server)?;
    api::block_on(async {
        api.send(api.request(Method::DELETE, &["api", "users", &args.name]))
            .await
    })?;
    paint::out(&format!(
        "removed user {}; their sessions have ended\n",
        args.name
    ));
    Ok(Exit::Success)
}

/// `PATCH /api/users/{name}`.
fn change(api: &Api, name: &str, body: serde_json::Value) -> Result<(), CliError> {
    api::block_on(async {
        api.send(
            api.request(Method::PATCH, &["api", "users", name])
                .json(&body),
        )
        .await
    })?;
    Ok(())
}

/// The new password: from standard input, or asked twice on the terminal.
fn read_password(from_stdin: bool, name: &str) -> Result<String, CliError> {
    let password = if from_stdin {
        let mut text = String::new();
        std::io::stdin().read_to_string(&mut text).map_err(|e| {
            CliError::Failed(anyhow::anyhow!("cannot read the password from stdin: {e}"))
        })?;
        strip_newline(text)
    } else {
        let first = ask_hidden(&format!("Password for {name}: "))?;
        gantry_server::auth::check_password(&first)
            .map_err(|e| CliError::invalid(format!("error: {e}")))?;
        let second = ask_hidden("Repeat it: ")?;
        if first != second {
            return Err(CliError::invalid(
                "error: the two passwords differ; nothing was changed",
            ));
        }
        first
    };
    if password.is_empty() {
        return Err(CliError::invalid("error: the password is empty"));
    }
    Ok(password)
}

/// Text less one final line ending (what `echo` and a here-document add).
fn strip_newline(mut text: String) -> String {
    if text.ends_with('\n') {
        text.pop();
        if text.ends_with('\r') {
            text.pop();
        }
    }
    text
}

/// Asks on the controlling terminal with echo off; reads one line.
fn ask_hidden(prompt: &str) -> Result<String, CliError> {
    let no_tty = |e: std::io::Error| {
        CliError::invalid(format!(
            "error: no terminal to ask for the password ({e})\n  help: pass it on standard \
             input with --password-stdin"
        ))
    };
    let tty = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open("/dev/tty")
        .map_err(no_tty)?;
    let original = tcgetattr(&tty).map_err(|e| no_tty(e.into()))?;
    let mut quiet = original.clone();
    quiet.local_flags.remove(LocalFlags::ECHO);
    // Enter still echoes as a newline, so the next prompt starts on a line of its own.
    quiet.local_flags.insert(LocalFlags::ECHONL);
    let mut out = &tty;
    out.write_all(prompt.as_bytes())
        .and_then(|()| out.flush())
        .map_err(no_tty)?;
    tcsetattr(&tty, SetArg::TCSAFLUSH, &quiet).map_err(|e| no_tty(e.into()))?;
    let mut line = String::new();
    let read = BufReader::new(&tty).read_line(&mut line);
    // Echo comes back before anything else can fail.
    let _ = tcsetattr(&tty, SetArg::TCSAFLUSH, &original);
    read.map_err(no_tty)?;
    Ok(strip_newline(line))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn final_newlines_are_stripped_once() {
        let check = |input: &str, want: &str| {
            assert_eq!(strip_newline(input.to_owned()), want, "{input:?}");
        };
        check("secret\n", "secret");
        check("secret\r\n", "secret");
        check("secret", "secret");
        check("secret\n\n", "secret\n");
        check(" spaced out \n", " spaced out ");
        check("", "");
    }

    #[test]
    fn table() {
        let now = when::parse("2026-11-29T12:00:00Z").expect("now");
        let rows: Vec<UserRow> = serde_json::from_str(
            r#"[
              {"id":1,"name":"alice","role":"admin","disabled":false,
               "created_at":"2026-11-28T12:00:00Z","updated_at":"2026-11-28T12:00:00Z"},
              {"id":2,"name":"bob","role":"viewer","disabled":true,
               "created_at":"2026-11-29T11:00:00Z","disabled_at":"2026-11-29T11:30:00Z",
               "future":1}
            ]"#,
        )
        .expect("rows");
        insta::assert_snapshot!(user_table(&rows, now, Paint::PLAIN));
    }
}
