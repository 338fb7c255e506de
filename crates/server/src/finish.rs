//! What happens once a run reached its final state: downstream `after:` pipelines start,
//! and notifications go out.
//!
//! Runs outside the scheduler's lock, in its own task: a slow mail server or an
//! unreachable repository never holds up the queue. Failures are logged, not retried:
//! the run's outcome is already recorded.

use std::future::Future;
use std::pin::Pin;

use gantry_pipeline::{EnvSource, Event, OutcomeFilter, Spec};
use gantry_store::{Run, RunState};

use crate::runs::{RunError, RunRequest, default_name, start_runs};
use crate::state::State;

/// Called once per run, after it became final. Boxed: finishing a run may start runs
/// (`after:`), whose creation may finish runs, and async functions cannot be recursive.
pub fn run_finished(state: &State, run: Run) -> Pin<Box<dyn Future<Output = ()> + Send + '_>> {
    Box::pin(run_finished_inner(state, run))
}

async fn run_finished_inner(state: &State, run: Run) {
    if let (Some(s), Some(f)) = (run.started_at, run.finished_at) {
        state.durations.observe((f - s) as f64 / 1000.0);
    }
    let Some(spec) = spec_of(&run) else {
        return;
    };
    let previous = match state
        .store
        .previous_finished_run(run.pipeline_id, run.number)
        .await
    {
        Ok(p) => p,
        Err(e) => {
            tracing::warn!(run_id = run.id, "cannot look up the previous run: {e}");
            None
        }
    };
    let fixed = run.state == RunState::Succeeded
        && previous
            .as_ref()
            .is_some_and(|p| matches!(p.state, RunState::Failed | RunState::Errored));
    if let Err(e) = start_downstream(state, &run, &spec, fixed).await {
        tracing::warn!(run_id = run.id, "downstream trigger failed: {e}");
    }
    crate::notify_hook::send(state, &run, &spec, previous.as_ref()).await;
}

/// The pipeline file of a run, parsed again (it was valid when the run was planned).
pub(crate) fn spec_of(run: &Run) -> Option<Spec> {
    let (path, text) = run.pipeline_file.as_ref()?;
    gantry_pipeline::parse_named(path, &default_name(&run.repo, path), text).ok()
}

/// Whether an outcome filter list matches a final run state (`fixed`: it succeeded after
/// a failure).
pub fn outcome_matches(filters: &[OutcomeFilter], state: RunState, fixed: bool) -> bool {
    filters.iter().any(|f| match f {
        OutcomeFilter::Always => true,
        OutcomeFilter::Success => state == RunState::Succeeded,
        OutcomeFilter::Failure => matches!(state, RunState::Failed | RunState::Errored),
        OutcomeFilter::Fixed => fixed,
    })
}

async fn start_downstream(
    state: &State,
    run: &Run,
    spec: &Spec,
    fixed: bool,
) -> Result<(), RunError> {
    for (i, after) in spec.after.iter().enumerate() {
        let on: Vec<OutcomeFilter> = if after.on.is_empty() {
            vec![OutcomeFilter::Success]
        } else {
            after.on.iter().map(|o| o.value).collect()
        };
        if !outcome_matches(&on, run.state, fixed) {
            continue;
        }
        let target = after.trigger.value.clone();
        // `params` values see the upstream run's built-ins, params and top-level env.
        let mut env = std::collections::BTreeMap::new();
        for var in &spec.env {
            if let EnvSource::Plain(t) = &var.value.value
                && let Ok(v) = crate::interp::render(t, |n| {
                    env.get(n).cloned().or_else(|| upstream_var(run, n))
                })
            {
                env.insert(var.name.value.clone(), v);
            }
        }
        let mut params = std::collections::BTreeMap::new();
        for (name, value) in &after.params {
            let rendered = crate::interp::render(&value.value, |n| {
                env.get(n).cloned().or_else(|| upstream_var(run, n))
            })
            .unwrap_or_else(|_| value.value.as_str().to_string());
            params.insert(name.value.clone(), rendered);
        }
        let mut req = RunRequest::new(
            Event::Trigger,
            format!("Triggered by run #{} of {}", run.number, run.pipeline),
        );
        req.pipeline = Some(target.clone());
        req.params = params;
        req.dedup_key = Some(format!("after:{}:{i}", run.id));
        // The same repository at the same commit first; else the pipeline of that name
        // in another repository, at its default branch.
        let repo = state.store.repo_by_name(&run.repo).await?;
        let mut same = req.clone();
        same.git_ref = Some(run.git_ref.clone());
        same.commit = Some(run.commit.clone());
        same.fetch = false;
        match start_runs(state, &repo, same).await {
            Ok(runs) if !runs.is_empty() => continue,
            Ok(_) | Err(RunError::NotFound(_)) => {}
            Err(e) => return Err(e),
        }
        let pipelines = state.store.list_pipelines(None).await?;
        let Some(other) = pipelines
            .iter()
            .find(|p| p.name == target && p.repo_id != repo.id)
        else {
            tracing::warn!(run_id = run.id, "after: no pipeline named {target:?}");
            continue;
        };
        let repos = state.store.list_repos().await?;
        if let Some(r) = repos.iter().find(|r| r.id == other.repo_id) {
            start_runs(state, r, req).await?;
        }
    }
    Ok(())
}

/// Variables of the upstream run for `after.params`: its params and built-ins.
fn upstream_var(run: &Run, name: &str) -> Option<String> {
    if let Some(v) = run.params.get(name) {
        return Some(v.clone());
    }
    match name {
        "GANTRY_PIPELINE" => Some(run.pipeline.clone()),
        "GANTRY_RUN_NUMBER" => Some(run.number.to_string()),
        "GANTRY_RUN_ID" => Some(run.id.to_string()),
        "GANTRY_COMMIT" => Some(run.commit.clone()),
        "GANTRY_REF" => Some(
            run.git_ref
                .strip_prefix("refs/heads/")
                .or_else(|| run.git_ref.strip_prefix("refs/tags/"))
                .unwrap_or(&run.git_ref)
                .to_string(),
        ),
        "GANTRY_BRANCH" => Some(
            run.git_ref
                .strip_prefix("refs/heads/")
                .unwrap_or_default()
                .to_string(),
        ),
        "GANTRY_TAG" => Some(
            run.git_ref
                .strip_prefix("refs/tags/")
                .unwrap_or_default()
                .to_string(),
        ),
        _ => None,
    }
}
