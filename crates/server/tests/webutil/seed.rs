//! A long pipeline history in a real store: runs of a chain of jobs, every 7th run with
//! a failed last job. [`Jobs::Leased`] writes it the way the server does — every job
//! queued, leased and finished, so it has start and end times (21 transactions per run of
//! 10 jobs: what the benchmark wants); [`Jobs::Created`] creates the jobs already
//! finished, without times (one transaction per run: what a debug-build test can
//! afford). Shared by `tests/web_render.rs` and `benches/pipeline_view.rs`.

#![allow(dead_code, clippy::unwrap_used)]

use std::collections::BTreeMap;

use gantry_store::{
    JobFinish, JobState, JobTransition, NewJob, NewRepo, NewRun, Run, RunState, Store,
};

/// When the first run was created.
pub const T0: i64 = 1_700_000_000_000;

/// How the jobs come to their end (see the module docs).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Jobs {
    /// Leased and finished one by one, with times.
    Leased,
    /// Created finished.
    Created,
}

/// Whether run number `n` failed (its last job did).
pub fn failed(n: usize) -> bool {
    n.is_multiple_of(7)
}

/// Registers repository `repo` with a pipeline of the same name and `runs` finished runs
/// of `jobs` jobs each (`job-0` … `job-N`, each needing the one before, named `job <i>` so that the
/// names need escaping).
pub async fn history(store: &dyn Store, repo: &str, runs: usize, jobs: usize, how: Jobs) {
    let registered = store
        .create_repo(NewRepo {
            name: repo.into(),
            url: format!("/srv/git/{repo}.git"),
            webhook_secret: None,
        })
        .await
        .unwrap();
    let pipeline = store
        .ensure_pipeline(registered.id, repo, "gantry.yml")
        .await
        .unwrap();
    for n in 1..=runs {
        let created = T0 + n as i64 * 60_000;
        let run = store
            .create_run(
                NewRun {
                    pipeline_id: pipeline.id,
                    state: RunState::Queued,
                    event: "push".into(),
                    git_ref: "refs/heads/main".into(),
                    commit: format!("{n:040x}"),
                    cause: "Started by an SCM change (poll)".into(),
                    params: BTreeMap::new(),
                    plan_json: None,
                    pipeline_file: None,
                    error: None,
                    concurrency: None,
                    rerun_of: None,
                    dedup_key: None,
                    jobs: (0..jobs)
                        .map(|i| NewJob {
                            idx: i as i64,
                            name: format!("job <{i}>"),
                            key: format!("job-{i}"),
                            needs: if i == 0 { vec![] } else { vec![i as i64 - 1] },
                            runs_on: BTreeMap::new(),
                            state: match how {
                                Jobs::Leased => JobState::Pending,
                                Jobs::Created if i + 1 == jobs && failed(n) => JobState::Failed,
                                Jobs::Created => JobState::Succeeded,
                            },
                            message: None,
                            manifest_json: None,
                        })
                        .collect(),
                },
                created,
            )
            .await
            .unwrap()
            .unwrap();
        match how {
            Jobs::Leased => lease_all(store, repo, &run, n, jobs, created).await,
            Jobs::Created => store
                .set_run_state(run.id, RunState::Running, created + 1000)
                .await
                .unwrap(),
        }
        let state = if failed(n) {
            RunState::Failed
        } else {
            RunState::Succeeded
        };
        store
            .set_run_state(run.id, state, created + 1000 + jobs as i64 * 5_000)
            .await
            .unwrap();
    }
}

/// Queues, leases and finishes every job of `run` in order.
async fn lease_all(store: &dyn Store, repo: &str, run: &Run, n: usize, jobs: usize, created: i64) {
    let no_labels = BTreeMap::new();
    let queue: Vec<JobTransition> = (0..jobs as i64)
        .map(|idx| JobTransition {
            idx,
            state: JobState::Queued,
            message: None,
        })
        .collect();
    store
        .transition_jobs(run.id, &queue, created)
        .await
        .unwrap();
    for i in 0..jobs {
        let start = created + 1000 + i as i64 * 5_000;
        let lease = format!("lease-{repo}-{n}-{i}");
        store
            .lease_next("builtin", &no_labels, &lease, start, 60_000)
            .await
            .unwrap()
            .unwrap();
        let fail = i + 1 == jobs && failed(n);
        store
            .finish_job(
                &lease,
                JobFinish {
                    state: if fail {
                        JobState::Failed
                    } else {
                        JobState::Succeeded
                    },
                    message: fail.then(|| "exit code 2".to_string()),
                    exit_code: fail.then_some(2),
                    manifest_json: None,
                },
                start + 4_200,
            )
            .await
            .unwrap();
    }
}
