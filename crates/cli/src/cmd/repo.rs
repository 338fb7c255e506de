//! `gantry repo add` and `gantry repo list`: repositories registered on a server
//! (`gantry repo caches` is in `repo_caches.rs`).

use crate::api::{self, Api, Repo};
use crate::args::{ColorChoice, RepoAddArgs, RepoCommand, RepoListArgs};
use crate::error::{CliError, Exit};
use crate::paint::{self, Paint};
use crate::table::Table;

/// Runs `gantry repo …`.
pub fn repo(command: RepoCommand, color: ColorChoice) -> Result<Exit, CliError> {
    match command {
        RepoCommand::Add(args) => add(args, color),
        RepoCommand::List(args) => list(args, color),
        RepoCommand::Caches(args) => super::repo_caches::caches(args, color),
    }
}

fn add(args: RepoAddArgs, color: ColorChoice) -> Result<Exit, CliError> {
    let api = Api::new(&args.server)?;
    let paint = Paint::stdout(color);
    let mut body = serde_json::json!({ "name": args.name, "url": args.url });
    if let Some(secret) = &args.webhook_secret {
        body["webhook_secret"] = serde_json::Value::String(secret.clone());
    }
    let repo: Repo = api::block_on(api.post(&["api", "repos"], &body))?;
    let mut text = format!(
        "{} repository {} ({})\n",
        paint.green("registered"),
        paint.bold(&repo.name),
        repo.url
    );
    text.push_str(
        "  the server polls it for the triggers of its pipelines (`on.push`, `on.tag`)\n",
    );
    let hook = api.url(&["hooks", &repo.name]);
    if args.webhook_secret.is_some() {
        text.push_str(&format!(
            "  webhook URL: {hook} (push and tag events, signed with the secret)\n"
        ));
    } else {
        text.push_str(
            "  no webhook secret: webhooks are refused (add one with --webhook-secret)\n",
        );
    }
    paint::out(&text);
    Ok(Exit::Success)
}

fn list(args: RepoListArgs, color: ColorChoice) -> Result<Exit, CliError> {
    let api = Api::new(&args.server)?;
    let repos: Vec<serde_json::Value> = api::block_on(api.get(&["api", "repos"], &[]))?;
    if args.json {
        paint::out(&format!("{}\n", pretty(&repos)));
        return Ok(Exit::Success);
    }
    if repos.is_empty() {
        paint::out("no repositories (add one with `gantry repo add NAME URL`)\n");
        return Ok(Exit::Success);
    }
    let paint = Paint::stdout(color);
    let mut table = Table::new(&["NAME", "URL", "STATUS"]);
    for value in repos {
        let repo: Repo = serde_json::from_value(value).unwrap_or_default();
        let status = match &repo.last_error {
            Some(e) => paint.red(format!("error: {}", first_line(e))),
            None if repo.last_polled_at.is_some() => paint.green("ok"),
            None => paint.dim("not polled yet"),
        };
        table.row(vec![paint.bold(&repo.name), repo.url, status]);
    }
    paint::out(&table.render());
    Ok(Exit::Success)
}

/// JSON for people and `jq`.
pub fn pretty(value: &impl serde::Serialize) -> String {
    serde_json::to_string_pretty(value).unwrap_or_default()
}

/// The first line of a message, for one table cell.
pub fn first_line(text: &str) -> &str {
    text.lines().next().unwrap_or("")
}
