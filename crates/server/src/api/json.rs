//! The JSON shapes of the API (wire types): runs, jobs, repositories. Times are RFC 3339
//! strings in UTC; webhook secrets are never shown.

use std::collections::BTreeMap;

use gantry_store::{Job, Millis, Pipeline, Repo, Run};
use serde::Serialize;

/// Milliseconds since the epoch as RFC 3339 (`2026-11-29T18:28:07.123Z`).
pub fn rfc3339(ms: Millis) -> String {
    let t = time::OffsetDateTime::from_unix_timestamp_nanos(ms as i128 * 1_000_000)
        .unwrap_or(time::OffsetDateTime::UNIX_EPOCH);
    t.format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_default()
}

fn opt_time(ms: Option<Millis>) -> Option<String> {
    ms.map(rfc3339)
}

/// A run.
#[derive(Debug, Serialize)]
pub struct RunJson {
    /// Server-wide id.
    pub id: i64,
    /// Repository name.
    pub repo: String,
    /// Pipeline name.
    pub pipeline: String,
    /// Number within the pipeline.
    pub number: i64,
    /// `queued`, `running`, `succeeded`, `failed`, `cancelled`, `errored`.
    pub state: &'static str,
    /// Event word.
    pub event: String,
    /// Full ref.
    #[serde(rename = "ref")]
    pub git_ref: String,
    /// Commit id.
    pub commit: String,
    /// Why it started.
    pub cause: String,
    /// Params.
    pub params: BTreeMap<String, String>,
    /// Why it errored.
    pub error: Option<String>,
    /// Times.
    pub created_at: String,
    /// When the first job was handed out.
    pub started_at: Option<String>,
    /// When it ended.
    pub finished_at: Option<String>,
    /// `finished - started` (or `- created` for runs that never started), once finished.
    pub duration_ms: Option<i64>,
    /// The run this re-runs.
    pub rerun_of: Option<i64>,
    /// Cancel was asked for.
    pub cancel_requested: bool,
    /// `concurrency.group`, if any.
    pub concurrency_group: Option<String>,
    /// Jobs (in the single-run view).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub jobs: Option<Vec<JobJson>>,
}

impl RunJson {
    /// A run without its jobs.
    pub fn new(run: &Run) -> RunJson {
        RunJson {
            id: run.id,
            repo: run.repo.clone(),
            pipeline: run.pipeline.clone(),
            number: run.number,
            state: run.state.as_str(),
            event: run.event.clone(),
            git_ref: run.git_ref.clone(),
            commit: run.commit.clone(),
            cause: run.cause.clone(),
            params: run.params.clone(),
            error: run.error.clone(),
            created_at: rfc3339(run.created_at),
            started_at: opt_time(run.started_at),
            finished_at: opt_time(run.finished_at),
            duration_ms: run
                .finished_at
                .map(|f| f - run.started_at.unwrap_or(run.created_at)),
            rerun_of: run.rerun_of,
            cancel_requested: run.cancel_requested,
            concurrency_group: run.concurrency.as_ref().map(|(g, _)| g.clone()),
            jobs: None,
        }
    }

    /// A run with its jobs.
    pub fn with_jobs(run: &Run, jobs: &[Job]) -> RunJson {
        let mut r = RunJson::new(run);
        r.jobs = Some(jobs.iter().map(JobJson::new).collect());
        r
    }
}

/// A job of a run.
#[derive(Debug, Serialize)]
pub struct JobJson {
    /// Plan index.
    pub idx: i64,
    /// Key (for log and artifact URLs).
    pub key: String,
    /// Display name.
    pub name: String,
    /// Plan indices of its needs.
    pub needs: Vec<i64>,
    /// `pending`, `queued`, `waiting` (for approval), `running`, `succeeded`, `failed`,
    /// `allowed_failure`, `errored`, `skipped`, `cancelled`.
    pub state: &'static str,
    /// Leases handed out.
    pub attempt: u32,
    /// Executor that holds / held it.
    pub executor: Option<String>,
    /// Reason or outcome in words.
    pub message: Option<String>,
    /// Exit code of a failed script.
    pub exit_code: Option<i32>,
    /// Times.
    pub queued_at: Option<String>,
    /// When the current or last attempt started.
    pub started_at: Option<String>,
    /// When it ended.
    pub finished_at: Option<String>,
    /// The answer to a job that waited for approval; `null` until someone answered.
    pub approval: Option<ApprovalJson>,
}

/// Who approved or rejected a job, and when.
#[derive(Debug, Serialize)]
pub struct ApprovalJson {
    /// `approved` or `rejected`.
    pub answer: &'static str,
    /// Token or user name.
    pub by: String,
    /// When.
    pub at: String,
}

impl JobJson {
    /// From the stored job.
    pub fn new(j: &Job) -> JobJson {
        JobJson {
            idx: j.idx,
            key: j.key.clone(),
            name: j.name.clone(),
            needs: j.needs.clone(),
            state: j.state.as_str(),
            attempt: j.attempt,
            executor: j.executor.clone(),
            message: j.message.clone(),
            exit_code: j.exit_code,
            queued_at: opt_time(j.queued_at),
            started_at: opt_time(j.started_at),
            finished_at: opt_time(j.finished_at),
            approval: j.approval.as_ref().map(|a| ApprovalJson {
                answer: if a.approved { "approved" } else { "rejected" },
                by: a.by.clone(),
                at: rfc3339(a.at),
            }),
        }
    }
}

/// A repository.
#[derive(Debug, Serialize)]
pub struct RepoJson {
    /// Id.
    pub id: i64,
    /// Name.
    pub name: String,
    /// Clone URL.
    pub url: String,
    /// Whether a webhook secret is set (the secret itself is never shown).
    pub webhook: bool,
    /// When it was registered.
    pub created_at: String,
    /// The last error reaching it.
    pub last_error: Option<String>,
    /// When it was last polled.
    pub last_polled_at: Option<String>,
    /// When it is polled next.
    pub next_poll_at: Option<String>,
    /// Pipelines (in the single-repository view).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pipelines: Option<Vec<PipelineJson>>,
}

impl RepoJson {
    /// From the stored repository.
    pub fn new(r: &Repo) -> RepoJson {
        RepoJson {
            id: r.id,
            name: r.name.clone(),
            url: r.url.clone(),
            webhook: r.webhook_secret.as_deref().is_some_and(|s| !s.is_empty()),
            created_at: rfc3339(r.created_at),
            last_error: r.last_error.clone(),
            last_polled_at: opt_time(r.last_polled_at),
            next_poll_at: opt_time(r.next_poll_at),
            pipelines: None,
        }
    }
}

/// A pipeline of a repository.
#[derive(Debug, Serialize)]
pub struct PipelineJson {
    /// Name.
    pub name: String,
    /// File path in the repository.
    pub path: String,
}

impl PipelineJson {
    /// From the stored pipeline.
    pub fn new(p: &Pipeline) -> PipelineJson {
        PipelineJson {
            name: p.name.clone(),
            path: p.path.clone(),
        }
    }
}

/// A param of a pipeline, for a "build with parameters" form.
#[derive(Debug, Serialize)]
pub struct ParamJson {
    /// Name.
    pub name: String,
    /// `string`, `bool`, `choice`, `ref`.
    #[serde(rename = "type")]
    pub kind: &'static str,
    /// Default value.
    pub default: Option<String>,
    /// Allowed values of a `choice`.
    pub choices: Vec<String>,
    /// Help text.
    pub description: Option<String>,
    /// For `ref`: the tag pattern.
    pub pattern: Option<String>,
    /// For `ref`: the allowed values (matching tags, newest first, then branches).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub allowed: Option<Vec<String>>,
}

/// An artifact file.
#[derive(Debug, Serialize)]
pub struct ArtifactJson {
    /// Job key.
    pub job: String,
    /// Job plan index.
    pub job_idx: i64,
    /// Path in the workspace.
    pub path: String,
    /// Hex sha256.
    pub digest: String,
    /// Bytes.
    pub size: u64,
}
