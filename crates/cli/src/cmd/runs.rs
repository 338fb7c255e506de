//! `gantry runs`: runs on a server as a table (or JSON), newest first.

use time::OffsetDateTime;

use crate::api::{self, Api, Run};
use crate::args::{ColorChoice, RunsArgs};
use crate::error::{CliError, Exit};
use crate::paint::{self, Paint};
use crate::table::Table;
use crate::when;

/// Runs `gantry runs`.
pub fn runs(args: RunsArgs, color: ColorChoice) -> Result<Exit, CliError> {
    let api = Api::new(&args.server)?;
    let mut query = vec![("limit", args.limit.to_string())];
    if let Some(repo) = &args.repo {
        query.push(("repo", repo.clone()));
    }
    if let Some(pipeline) = &args.pipeline {
        query.push(("pipeline", pipeline.clone()));
    }
    if let Some(state) = &args.state {
        query.push(("state", state.clone()));
    }
    let page: api::RunPage = api::block_on(api.get(&["api", "runs"], &query))?;
    if args.json {
        paint::out(&format!("{}\n", super::repo::pretty(&page.runs)));
        return Ok(Exit::Success);
    }
    if page.runs.is_empty() {
        paint::out("no runs\n");
        return Ok(Exit::Success);
    }
    let runs: Vec<Run> = page
        .runs
        .into_iter()
        .map(|v| serde_json::from_value(v).unwrap_or_default())
        .collect();
    let show_repo = args.repo.is_none();
    paint::out(&table(
        &runs,
        show_repo,
        OffsetDateTime::now_utc(),
        Paint::stdout(color),
    ));
    Ok(Exit::Success)
}

/// The table of runs.
pub fn table(runs: &[Run], show_repo: bool, now: OffsetDateTime, paint: Paint) -> String {
    let mut header = vec!["ID"];
    if show_repo {
        header.push("REPO");
    }
    header.extend([
        "RUN", "STATE", "REF", "COMMIT", "CAUSE", "CREATED", "DURATION",
    ]);
    let mut table = Table::new(&header);
    for run in runs {
        let mut row = vec![run.id.to_string()];
        if show_repo {
            row.push(run.repo.clone());
        }
        row.extend([
            paint.bold(run.title()),
            state(&run.state, paint),
            short_ref(&run.git_ref).to_owned(),
            run.commit.chars().take(10).collect(),
            run.cause.clone(),
            run.created_at
                .as_deref()
                .and_then(when::parse)
                .map(|t| when::ago(t, now))
                .unwrap_or_default(),
            when::took(
                run.duration_ms,
                run.started_at.as_deref(),
                run.is_final(),
                now,
            ),
        ]);
        table.row(row);
    }
    table.render()
}

/// A run or job state word, colored by what it means.
pub fn state(word: &str, paint: Paint) -> String {
    match word {
        "succeeded" => paint.green(word),
        "failed" | "errored" => paint.red(word),
        "running" => paint.cyan(word),
        "cancelled" | "allowed_failure" => paint.yellow(word),
        _ => paint.dim(word),
    }
}

/// `refs/heads/develop` → `develop`, `refs/tags/v1.0` → `v1.0`.
pub fn short_ref(git_ref: &str) -> &str {
    git_ref
        .strip_prefix("refs/heads/")
        .or_else(|| git_ref.strip_prefix("refs/tags/"))
        .unwrap_or(git_ref)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn run_table() {
        let runs: Vec<Run> = serde_json::from_str(
            r#"[
              {"id":7,"repo":"go-auth","pipeline":"go-auth","number":3,"state":"running",
               "ref":"refs/heads/develop","commit":"0123456789abcdef0123",
               "cause":"Started by an SCM change (poll)","created_at":"2026-11-29T11:58:00Z",
               "started_at":"2026-11-29T11:59:30Z"},
              {"id":5,"repo":"go-auth","pipeline":"release","number":1,"state":"failed",
               "ref":"refs/tags/v1.0","commit":"fedcba9876543210",
               "cause":"Started manually by admin","created_at":"2026-11-28T12:00:00Z",
               "started_at":"2026-11-28T12:00:01Z","finished_at":"2026-11-28T12:02:04Z",
               "duration_ms":123000}
            ]"#,
        )
        .expect("runs");
        let now = when::parse("2026-11-29T12:00:00Z").expect("now");
        insta::assert_snapshot!(table(&runs, true, now, Paint::PLAIN));
        assert!(!table(&runs, false, now, Paint::PLAIN).contains("REPO"));
    }
}
