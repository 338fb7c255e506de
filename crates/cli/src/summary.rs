//! `summary.json`: the machine-readable record of a run, written into its directory at
//! the end (atomically: a reader never sees half a file).

use std::collections::BTreeMap;
use std::path::Path;
use std::time::{Duration, SystemTime};

use anyhow::Context as _;
use gantry_engine::{JobStatus, RunStatus};
use serde::Serialize;

use crate::state::RunState;

/// Facts about the run that the events do not carry.
#[derive(Debug, Clone, Serialize)]
pub struct RunFacts {
    /// Run number.
    pub number: u64,
    /// The event planned for.
    pub event: String,
    /// Branch, if any.
    pub branch: Option<String>,
    /// Tag, if any.
    pub tag: Option<String>,
    /// Commit, if known.
    pub commit: Option<String>,
    /// Parameter values used.
    pub params: BTreeMap<String, String>,
}

#[derive(Serialize)]
struct Summary<'a> {
    run_id: &'a str,
    number: u64,
    pipeline: &'a str,
    status: &'static str,
    started_at: Option<String>,
    duration_ms: u128,
    event: &'a str,
    branch: Option<&'a str>,
    tag: Option<&'a str>,
    commit: Option<&'a str>,
    params: &'a BTreeMap<String, String>,
    jobs: Vec<Job<'a>>,
}

#[derive(Serialize)]
struct Job<'a> {
    name: &'a str,
    status: &'static str,
    /// How it failed, why it was skipped, or the infrastructure error.
    detail: Option<String>,
    duration_ms: u128,
    attempts: u32,
    /// Relative to the run directory; absent for jobs that never started.
    log: Option<String>,
    artifacts: Vec<Artifact<'a>>,
}

#[derive(Serialize)]
struct Artifact<'a> {
    path: &'a str,
    sha256: &'a str,
    size: u64,
}

fn ms(d: Duration) -> u128 {
    d.as_millis()
}

fn rfc3339(at: SystemTime) -> Option<String> {
    time::OffsetDateTime::from(at)
        .format(&time::format_description::well_known::Rfc3339)
        .ok()
}

/// The summary as JSON text.
pub fn to_json(state: &RunState, facts: &RunFacts, log_names: &[String]) -> String {
    let jobs = state
        .jobs
        .iter()
        .enumerate()
        .map(|(i, j)| Job {
            name: &j.name,
            status: j.status.as_ref().map_or("not_run", JobStatus::word),
            detail: match &j.status {
                Some(JobStatus::Failed { outcome, .. }) => Some(outcome.to_string()),
                Some(JobStatus::Errored { message }) => Some(message.clone()),
                Some(JobStatus::Skipped { reason }) => Some(reason.clone()),
                _ => None,
            },
            duration_ms: ms(j.duration),
            attempts: j.attempts,
            log: (j.attempts > 0 || j.started_at.is_some())
                .then(|| log_names.get(i).map(|n| format!("logs/{n}")))
                .flatten(),
            artifacts: j
                .artifacts
                .iter()
                .map(|a| Artifact {
                    path: &a.path,
                    sha256: &a.digest,
                    size: a.size,
                })
                .collect(),
        })
        .collect();
    let summary = Summary {
        run_id: &state.run_id,
        number: facts.number,
        pipeline: &state.pipeline,
        status: match state.status {
            Some(RunStatus::Succeeded) => "succeeded",
            Some(RunStatus::Failed) => "failed",
            Some(RunStatus::Cancelled) => "cancelled",
            None => "unknown",
        },
        started_at: state.started_at.and_then(rfc3339),
        duration_ms: ms(state.duration),
        event: &facts.event,
        branch: facts.branch.as_deref(),
        tag: facts.tag.as_deref(),
        commit: facts.commit.as_deref(),
        params: &facts.params,
        jobs,
    };
    // Serializing plain structs of strings and numbers cannot fail.
    serde_json::to_string_pretty(&summary).unwrap_or_default()
}

/// Writes `dir/summary.json` atomically.
pub fn write(dir: &Path, json: &str) -> anyhow::Result<()> {
    let tmp = dir.join(".summary.json.tmp");
    let path = dir.join("summary.json");
    std::fs::write(&tmp, format!("{json}\n"))
        .with_context(|| format!("cannot write {}", tmp.display()))?;
    std::fs::rename(&tmp, &path).with_context(|| format!("cannot write {}", path.display()))
}
