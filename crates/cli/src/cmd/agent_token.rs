//! `gantry agent-token create|list|revoke` and `gantry agents`: the admin's view of a
//! server's agents, through its REST API (`/api/agent-tokens`, `/api/agents`).

use reqwest::Method;
use serde::Deserialize;
use time::OffsetDateTime;

use crate::api::{self, Api};
use crate::args::{
    AgentTokenCommand, AgentTokenListArgs, AgentTokenNameArgs, AgentsArgs, ColorChoice,
};
use crate::error::{CliError, Exit};
use crate::paint::{self, Paint};
use crate::table::Table;
use crate::when;

/// `POST /api/agent-tokens`: the token, shown this once.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct Created {
    name: String,
    token: String,
}

/// An agent token as listed.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct TokenRow {
    name: String,
    created_at: Option<String>,
    /// Online agents using it.
    agents: Vec<String>,
}

/// An online executor.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct AgentRow {
    name: String,
    labels: std::collections::BTreeMap<String, String>,
    capacity: u32,
    running: usize,
    last_seen: Option<String>,
    token: Option<String>,
    builtin: bool,
}

/// Runs `gantry agent-token …`.
pub fn agent_token(command: AgentTokenCommand, color: ColorChoice) -> Result<Exit, CliError> {
    match command {
        AgentTokenCommand::Create(args) => create(args, color),
        AgentTokenCommand::List(args) => list(args, color),
        AgentTokenCommand::Revoke(args) => revoke(args, color),
    }
}

fn create(args: AgentTokenNameArgs, color: ColorChoice) -> Result<Exit, CliError> {
    let api = Api::new(&args.server)?;
    let created: Created = api::block_on(api.post(
        &["api", "agent-tokens"],
        &serde_json::json!({ "name": args.name }),
    ))?;
    let paint = Paint::stderr(color);
    paint::err(&format!(
        "{}\n",
        paint.yellow(format!(
            "agent token {} created; it is shown only this once (the server keeps its hash):",
            created.name
        ))
    ));
    // The token alone on stdout, so that `T=$(gantry agent-token create x)` works.
    paint::out(&format!("{}\n", created.token));
    paint::err(&start_hint(api.base(), &created.name, &created.token));
    Ok(Exit::Success)
}

/// How to start an agent with a new token.
fn start_hint(server: &str, name: &str, token: &str) -> String {
    format!(
        "start an agent with it on the machine that should run jobs:\n  \
         GANTRY_AGENT_TOKEN={token} gantry agent --server {server} --name {name}\n  \
         (add --label KEY=VALUE for jobs with `runs_on`, --jobs N to run N jobs at once)\n"
    )
}

fn list(args: AgentTokenListArgs, color: ColorChoice) -> Result<Exit, CliError> {
    let api = Api::new(&args.server)?;
    let rows: Vec<serde_json::Value> = api::block_on(api.get(&["api", "agent-tokens"], &[]))?;
    if args.json {
        paint::out(&format!("{}\n", super::repo::pretty(&rows)));
        return Ok(Exit::Success);
    }
    if rows.is_empty() {
        paint::out("no agent tokens\n  help: make one with `gantry agent-token create NAME`\n");
        return Ok(Exit::Success);
    }
    let rows: Vec<TokenRow> = rows
        .into_iter()
        .map(|v| serde_json::from_value(v).unwrap_or_default())
        .collect();
    paint::out(&token_table(
        &rows,
        OffsetDateTime::now_utc(),
        Paint::stdout(color),
    ));
    Ok(Exit::Success)
}

fn token_table(rows: &[TokenRow], now: OffsetDateTime, paint: Paint) -> String {
    let mut table = Table::new(&["NAME", "CREATED", "AGENTS ONLINE"]);
    for row in rows {
        table.row(vec![
            paint.bold(&row.name),
            ago(row.created_at.as_deref(), now),
            if row.agents.is_empty() {
                paint.dim("-")
            } else {
                row.agents.join(", ")
            },
        ]);
    }
    table.render()
}

fn revoke(args: AgentTokenNameArgs, _color: ColorChoice) -> Result<Exit, CliError> {
    let api = Api::new(&args.server)?;
    api::block_on(async {
        api.send(api.request(Method::DELETE, &["api", "agent-tokens", &args.name]))
            .await
    })?;
    paint::out(&format!(
        "revoked agent token {}: agents using it are refused from their next request on; \
         their running jobs run again elsewhere\n",
        args.name
    ));
    Ok(Exit::Success)
}

/// Runs `gantry agents`.
pub fn agents(args: AgentsArgs, color: ColorChoice) -> Result<Exit, CliError> {
    let api = Api::new(&args.server)?;
    let rows: Vec<serde_json::Value> = api::block_on(api.get(&["api", "agents"], &[]))?;
    if args.json {
        paint::out(&format!("{}\n", super::repo::pretty(&rows)));
        return Ok(Exit::Success);
    }
    if rows.is_empty() {
        paint::out(
            "no agents online\n  help: `gantry agent-token create NAME` makes a token; \
             `gantry agent --server URL --token TOKEN` starts an agent with it\n",
        );
        return Ok(Exit::Success);
    }
    let rows: Vec<AgentRow> = rows
        .into_iter()
        .map(|v| serde_json::from_value(v).unwrap_or_default())
        .collect();
    paint::out(&agent_table(
        &rows,
        OffsetDateTime::now_utc(),
        Paint::stdout(color),
    ));
    Ok(Exit::Success)
}

fn agent_table(rows: &[AgentRow], now: OffsetDateTime, paint: Paint) -> String {
    let mut table = Table::new(&["NAME", "JOBS", "LABELS", "TOKEN", "LAST SEEN"]);
    for row in rows {
        let token = match (&row.token, row.builtin) {
            (_, true) => paint.dim("(built-in)"),
            (Some(t), false) => t.clone(),
            (None, false) => paint.dim("-"),
        };
        table.row(vec![
            paint.bold(&row.name),
            format!("{}/{}", row.running, row.capacity),
            crate::executor::shown_labels(&row.labels),
            token,
            ago(row.last_seen.as_deref(), now),
        ]);
    }
    table.render()
}

fn ago(at: Option<&str>, now: OffsetDateTime) -> String {
    at.and_then(when::parse)
        .map(|t| when::ago(t, now))
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tables() {
        let now = when::parse("2026-11-29T12:00:00Z").expect("now");
        let agents: Vec<AgentRow> = serde_json::from_str(
            r#"[
              {"name":"builtin","labels":{"backend":"local","os":"linux","arch":"x86_64"},
               "capacity":2,"running":0,"last_seen":"2026-11-29T11:59:59Z","protocol":1,
               "token":null,"builtin":true},
              {"name":"build-2","labels":{"pool":"gpu","backend":"docker","os":"linux",
               "arch":"aarch64"},"capacity":4,"running":3,"last_seen":"2026-11-29T11:59:30Z",
               "protocol":1,"token":"build-2","builtin":false,"future":true}
            ]"#,
        )
        .expect("agents");
        let tokens: Vec<TokenRow> = serde_json::from_str(
            r#"[
              {"name":"build-2","created_at":"2026-11-28T12:00:00Z","agents":["build-2"]},
              {"name":"spare","created_at":"2026-11-29T11:00:00Z","agents":[]}
            ]"#,
        )
        .expect("tokens");
        insta::assert_snapshot!(format!(
            "{}\n{}\n{}",
            agent_table(&agents, now, Paint::PLAIN),
            token_table(&tokens, now, Paint::PLAIN),
            start_hint("http://ci:8080", "build-2", "gantry_agent_x")
        ));
    }
}
