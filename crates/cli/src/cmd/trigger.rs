//! `gantry trigger REPO`: starts runs of a repository's pipelines on a server, and with
//! `--wait` waits for them. The server validates the parameters (its diagnostics name
//! the declared ones); a refusal starts nothing.

use std::time::Duration;

use crate::api::{self, Api, Run};
use crate::args::{ColorChoice, TriggerArgs};
use crate::error::{CliError, Exit};
use crate::inputs;
use crate::paint::{self, Paint};

/// How often `--wait` asks for the runs' state.
const WAIT_POLL: Duration = Duration::from_secs(1);

/// Runs `gantry trigger`.
pub fn trigger(args: TriggerArgs, color: ColorChoice) -> Result<Exit, CliError> {
    let params = inputs::parse_pairs("--param", &args.params)?;
    let api = Api::new(&args.server)?;
    let paint = Paint::stdout(color);
    let mut body = serde_json::json!({});
    if let Some(pipeline) = &args.pipeline {
        body["pipeline"] = pipeline.as_str().into();
    }
    if let Some(git_ref) = &args.git_ref {
        body["ref"] = git_ref.as_str().into();
    }
    if !params.is_empty() {
        body["params"] = serde_json::to_value(&params).unwrap_or_default();
    }
    api::block_on(async {
        let runs: Vec<Run> = match api
            .post(&["api", "repos", &args.repo, "trigger"], &body)
            .await
        {
            Ok(runs) => runs,
            Err(CliError::Invalid(msg)) => {
                return Err(CliError::Invalid(format!(
                    "{msg}\n  note: nothing was started"
                )));
            }
            Err(e) => return Err(e),
        };
        if runs.is_empty() {
            paint::out("nothing started: no pipeline of this repository runs manually\n");
            return Ok(Exit::Success);
        }
        let mut text = String::new();
        for run in &runs {
            text.push_str(&started(run, &api, paint));
        }
        paint::out(&text);
        if !args.wait {
            return Ok(Exit::Success);
        }
        wait(&api, &runs, paint).await
    })
}

/// What is printed for a started run.
fn started(run: &Run, api: &Api, paint: Paint) -> String {
    let commit: String = run.commit.chars().take(10).collect();
    format!(
        "{} {} (run {}) at {} {commit}\n  {}\n  logs: gantry logs {} -f\n",
        paint.green("started"),
        paint.bold(run.title()),
        run.id,
        super::runs::short_ref(&run.git_ref),
        link(api, run.id),
        run.id
    )
}

/// Where a person sees the run.
pub fn link(api: &Api, run: i64) -> String {
    api.url(&["runs", &run.to_string()]).to_string()
}

/// Waits until every run is final; the exit code is the worst outcome.
async fn wait(api: &Api, runs: &[Run], paint: Paint) -> Result<Exit, CliError> {
    let mut exit = Exit::Success;
    for run in runs {
        let run = loop {
            let now = api.run(run.id).await?;
            if now.is_final() {
                break now;
            }
            tokio::time::sleep(WAIT_POLL).await;
        };
        let mut line = format!(
            "{} {}",
            paint.bold(run.title()),
            super::runs::state(&run.state, paint)
        );
        if let Some(ms) = run.duration_ms {
            line.push_str(&format!(
                " in {}",
                crate::render::format::duration(Duration::from_millis(ms.max(0) as u64))
            ));
        }
        if let Some(error) = &run.error {
            line.push_str(&format!(": {}", super::repo::first_line(error)));
        }
        paint::out(&format!("{line}\n"));
        exit = match (exit, run.state.as_str()) {
            (Exit::Failure, _) => Exit::Failure,
            (_, "succeeded") => exit,
            (_, "cancelled") => Exit::Cancelled,
            _ => Exit::Failure,
        };
    }
    Ok(exit)
}
