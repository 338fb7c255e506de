//! [`RunState`]: what the CLI knows about a run, folded from the engine's `RunEvent`s.
//!
//! The renderers, the log files and `summary.json` all read this one model, so they can
//! never disagree about a job's status or duration.

use std::collections::VecDeque;
use std::time::{Duration, SystemTime};

use gantry_engine::{JobStatus, RunEvent, RunStatus};

/// How many of a job's last log lines are kept to show when it fails.
pub const TAIL_LINES: usize = 20;

/// One stored artifact.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Artifact {
    /// Path relative to the workspace.
    pub path: String,
    /// Hex sha256.
    pub digest: String,
    /// Bytes.
    pub size: u64,
}

/// One job as seen so far.
#[derive(Debug, Clone)]
pub struct JobState {
    /// Display name.
    pub name: String,
    /// When the current (last) attempt started.
    pub started_at: Option<SystemTime>,
    /// Attempts started so far (the final count comes with `JobFinished`).
    pub attempts: u32,
    /// Final status, once finished.
    pub status: Option<JobStatus>,
    /// Wall time over all attempts, once finished.
    pub duration: Duration,
    /// Artifacts it stored.
    pub artifacts: Vec<Artifact>,
    /// Its last log lines (at most [`TAIL_LINES`]), for failure reports.
    pub tail: VecDeque<String>,
}

impl JobState {
    fn new(name: String) -> JobState {
        JobState {
            name,
            started_at: None,
            attempts: 0,
            status: None,
            duration: Duration::ZERO,
            artifacts: Vec::new(),
            tail: VecDeque::new(),
        }
    }
}

/// The run as seen so far.
#[derive(Debug, Clone, Default)]
pub struct RunState {
    /// Run id (from `RunStarted`).
    pub run_id: String,
    /// Pipeline name.
    pub pipeline: String,
    /// Jobs by index.
    pub jobs: Vec<JobState>,
    /// When the run started.
    pub started_at: Option<SystemTime>,
    /// Final status, once finished.
    pub status: Option<RunStatus>,
    /// Wall time, once finished.
    pub duration: Duration,
}

impl RunState {
    /// Folds one event in.
    pub fn apply(&mut self, event: &RunEvent) {
        match event {
            RunEvent::RunStarted {
                run_id,
                pipeline,
                jobs,
                at,
            } => {
                self.run_id.clone_from(run_id);
                self.pipeline.clone_from(pipeline);
                self.jobs = jobs.iter().cloned().map(JobState::new).collect();
                self.started_at = Some(*at);
            }
            RunEvent::JobStarted { job, attempt, at } => {
                if let Some(j) = self.jobs.get_mut(*job) {
                    j.started_at = Some(*at);
                    j.attempts = *attempt;
                }
            }
            RunEvent::JobLog { job, line } => {
                if let Some(j) = self.jobs.get_mut(*job) {
                    if j.tail.len() == TAIL_LINES {
                        j.tail.pop_front();
                    }
                    j.tail.push_back(line.text.clone());
                }
            }
            RunEvent::ArtifactStored {
                job,
                path,
                digest,
                size,
            } => {
                if let Some(j) = self.jobs.get_mut(*job) {
                    j.artifacts.push(Artifact {
                        path: path.clone(),
                        digest: digest.clone(),
                        size: *size,
                    });
                }
            }
            RunEvent::JobFinished {
                job,
                status,
                duration,
                attempts,
            } => {
                if let Some(j) = self.jobs.get_mut(*job) {
                    j.status = Some(status.clone());
                    j.duration = *duration;
                    j.attempts = *attempts;
                }
            }
            RunEvent::RunFinished {
                status, duration, ..
            } => {
                self.status = Some(*status);
                self.duration = *duration;
            }
        }
    }

    /// The job's name, or a placeholder for an index the engine never announced.
    pub fn name(&self, job: usize) -> &str {
        self.jobs.get(job).map_or("?", |j| j.name.as_str())
    }

    /// `(label, count)` for each status present, in a fixed order, labels worded for
    /// a sentence ("2 succeeded, 1 failed").
    pub fn counts(&self) -> Vec<(&'static str, usize)> {
        const ORDER: [(&str, &str); 6] = [
            ("success", "succeeded"),
            ("failed", "failed"),
            ("allowed-failure", "allowed to fail"),
            ("error", "errored"),
            ("cancelled", "cancelled"),
            ("skipped", "skipped"),
        ];
        ORDER
            .iter()
            .map(|(word, label)| {
                let n = self
                    .jobs
                    .iter()
                    .filter(|j| j.status.as_ref().map(JobStatus::word) == Some(*word))
                    .count();
                (*label, n)
            })
            .filter(|(_, n)| *n > 0)
            .collect()
    }
}
