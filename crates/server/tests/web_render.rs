//! The pipeline view's server-side rendering at scale: 1,000 runs × 10 jobs render into
//! one complete table (every row, every cell). The time it took is printed (see
//! docs/benchmarks.md), not asserted.

#![allow(clippy::unwrap_used, clippy::print_stderr)]

use std::collections::BTreeMap;
use std::time::Instant;

use gantry_server::web::pipeline::render;
use gantry_server::web::view::Nav;
use gantry_store::{Job, JobState, Run, RunState};

fn run(id: i64) -> Run {
    Run {
        id,
        pipeline_id: 1,
        repo: "app".into(),
        pipeline: "app".into(),
        number: id,
        state: if id % 7 == 0 {
            RunState::Failed
        } else {
            RunState::Succeeded
        },
        event: "push".into(),
        git_ref: "refs/heads/main".into(),
        commit: format!("{id:040x}"),
        cause: "Started by an SCM change (poll)".into(),
        params: BTreeMap::new(),
        plan_json: None,
        pipeline_file: None,
        error: None,
        concurrency: None,
        rerun_of: None,
        cancel_requested: false,
        created_at: 1_700_000_000_000 + id * 60_000,
        started_at: Some(1_700_000_000_000 + id * 60_000 + 1000),
        finished_at: Some(1_700_000_000_000 + id * 60_000 + 95_000),
    }
}

fn job(run_id: i64, idx: i64) -> Job {
    Job {
        run_id,
        idx,
        name: format!("job <{idx}>"),
        key: format!("job-{idx}"),
        needs: if idx == 0 { vec![] } else { vec![idx - 1] },
        runs_on: BTreeMap::new(),
        state: if idx == 9 && run_id % 7 == 0 {
            JobState::Failed
        } else {
            JobState::Succeeded
        },
        attempt: 1,
        lease_id: None,
        lease_deadline: None,
        executor: Some("builtin".into()),
        message: None,
        exit_code: None,
        manifest_json: None,
        queued_at: Some(0),
        started_at: Some(1_700_000_000_000 + idx * 1000),
        finished_at: Some(1_700_000_000_000 + idx * 1000 + 4200),
        cancel_requested: false,
    }
}

#[test]
fn pipeline_view_of_1000_runs_with_10_jobs() {
    let runs: Vec<(Run, Vec<Job>)> = (1..=1000)
        .rev()
        .map(|id| (run(id), (0..10).map(|i| job(id, i)).collect()))
        .collect();
    let nav = Nav {
        who: Some("admin".into()),
        csrf: "x".into(),
        admin: true,
        v: "0",
    };
    // One warm-up render, then the measured one.
    let _ = render(nav.clone(), "app", "app", &runs, false, 0).unwrap();
    let start = Instant::now();
    let html = render(nav, "app", "app", &runs, false, 0).unwrap();
    let took = start.elapsed();
    eprintln!(
        "pipeline view, 1000 runs x 10 jobs: {:.2} ms, {} KiB of HTML",
        took.as_secs_f64() * 1000.0,
        html.len() / 1024
    );
    assert_eq!(html.matches("<tr class=\"run-row\"").count(), 1000);
    assert_eq!(html.matches("<td class=\"job-cell status-").count(), 10_000);
    assert_eq!(html.matches("class=\"job-col\"").count(), 10);
    assert_eq!(html.matches("data-state=\"failed\"").count(), 142 * 4);
    assert!(html.contains("job &#60;3&#62;"));
    assert!(!html.contains("job <3>"));
}
