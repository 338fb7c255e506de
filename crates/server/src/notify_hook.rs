//! The seam between finished runs and the senders in [`crate::notify`]: which `notify:`
//! entries fire, the message, and sending each (failures are logged; the run's outcome
//! is recorded either way).

use std::time::Duration;

use gantry_pipeline::Spec;
use gantry_store::{JobState, Run};

use crate::notify::{NotifyMessage, email, resolve_target, should_notify, webhook};
use crate::state::State;

/// Sends the notifications `spec.notify` asks for about `run`.
pub async fn send(state: &State, run: &Run, spec: &Spec, previous: Option<&Run>) {
    let entries: Vec<_> = spec
        .notify
        .iter()
        .filter(|n| {
            should_notify(
                n.on.iter().map(|o| &o.value),
                run.state,
                previous.map(|p| p.state),
            )
        })
        .collect();
    if entries.is_empty() {
        return;
    }
    let failed_jobs = match state.store.jobs(run.id).await {
        Ok(jobs) => jobs
            .into_iter()
            .filter(|j| matches!(j.state, JobState::Failed | JobState::Errored))
            .map(|j| j.name)
            .collect(),
        Err(e) => {
            tracing::warn!(run_id = run.id, "cannot read jobs for a notification: {e}");
            Vec::new()
        }
    };
    let msg = NotifyMessage {
        repo: run.repo.clone(),
        pipeline: run.pipeline.clone(),
        run_number: run.number,
        git_ref: run.git_ref.clone(),
        commit: run.commit.clone(),
        cause: run.cause.clone(),
        state: run.state,
        failed_jobs,
        link: format!("{}/api/runs/{}", state.public_url(), run.id),
        duration: match (run.started_at, run.finished_at) {
            (Some(s), Some(f)) if f >= s => Some(Duration::from_millis((f - s) as u64)),
            _ => None,
        },
    };
    // Targets see the run's params and the server's environment (where operators keep
    // webhook URLs and addresses out of the repository).
    let lookup = |name: &str| {
        run.params
            .get(name)
            .cloned()
            .or_else(|| std::env::var(name).ok())
    };
    let client = reqwest::Client::new();
    for entry in entries {
        if let Some(url) = &entry.webhook {
            match resolve_target(&url.value, lookup) {
                Ok(url) => {
                    if let Err(e) = webhook::send(&client, &url, &msg).await {
                        tracing::warn!(run_id = run.id, "webhook notification failed: {e}");
                    }
                }
                Err(e) => tracing::warn!(run_id = run.id, "webhook notification: {e}"),
            }
        }
        if entry.email.is_empty() {
            continue;
        }
        let mut to = Vec::new();
        for t in &entry.email {
            match resolve_target(&t.value, lookup) {
                Ok(a) => to.push(a),
                Err(e) => tracing::warn!(run_id = run.id, "email notification: {e}"),
            }
        }
        match (&state.config.smtp, to.is_empty()) {
            (_, true) => {}
            (None, false) => tracing::warn!(
                run_id = run.id,
                "email notification to {} dropped: no SMTP server is configured",
                to.join(", ")
            ),
            (Some(smtp), false) => {
                if let Err(e) = email::send(smtp, &to, &msg).await {
                    tracing::warn!(run_id = run.id, "email notification failed: {e}");
                }
            }
        }
    }
}
