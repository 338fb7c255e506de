//! Benchmark: opening a finished 100,000-line job log.
//!
//! `cargo bench -p gantry-server --bench log_page` — plain `std::time::Instant`. Writes a
//! 100,000-line log (build output with ANSI colours, a failing command near the end) the
//! way executors write it, for a failed job of a real run, then times through the router:
//!
//! - the log page (`GET /runs/1/jobs/build`, which renders the last 5,000 lines and pins
//!   the failing command), and its size;
//! - a window of it (`?from=40000`, where search results link);
//! - the whole log (`?all=1`), for comparison;
//! - a search of the whole log (`/search?q=…&format=json`).
//!
//! Prints p50 and p99 of each.
#![allow(
    clippy::print_stdout,
    clippy::unwrap_used,
    reason = "a benchmark reports on stdout and may abort"
)]

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use axum::body::Body;
use axum::http::{Request, StatusCode};
use gantry_protocol::{LogStream, WireLogLine};
use gantry_store::{JobFinish, JobState, JobTransition, NewJob, NewRepo, NewRun, RunState};
use http_body_util::BodyExt;
use tower::ServiceExt;

const LINES: usize = 100_000;

fn percentiles(mut samples: Vec<Duration>) -> (f64, f64) {
    samples.sort();
    let at = |p: f64| samples[((samples.len() - 1) as f64 * p).round() as usize];
    (
        at(0.50).as_secs_f64() * 1000.0,
        at(0.99).as_secs_f64() * 1000.0,
    )
}

fn main() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(bench());
}

async fn bench() {
    let dir = tempfile::tempdir().unwrap();
    let store = gantry_store::open(dir.path().join("gantry.sqlite").to_str().unwrap())
        .await
        .unwrap();
    let repo = store
        .create_repo(NewRepo {
            name: "app".into(),
            url: "/srv/git/app.git".into(),
            webhook_secret: None,
        })
        .await
        .unwrap();
    let pipeline = store
        .ensure_pipeline(repo.id, "app", "gantry.yml")
        .await
        .unwrap();
    let run = store
        .create_run(
            NewRun {
                pipeline_id: pipeline.id,
                state: RunState::Queued,
                event: "push".into(),
                git_ref: "refs/heads/main".into(),
                commit: "0".repeat(40),
                cause: "Started by an SCM change (poll)".into(),
                params: BTreeMap::new(),
                plan_json: None,
                pipeline_file: None,
                error: None,
                concurrency: None,
                rerun_of: None,
                dedup_key: None,
                jobs: vec![NewJob {
                    idx: 0,
                    name: "build".into(),
                    key: "build".into(),
                    needs: vec![],
                    runs_on: BTreeMap::new(),
                    state: JobState::Pending,
                    message: None,
                    manifest_json: None,
                }],
            },
            1_700_000_000_000,
        )
        .await
        .unwrap()
        .unwrap();
    let queue = [JobTransition {
        idx: 0,
        state: JobState::Queued,
        message: None,
    }];
    store
        .transition_jobs(run.id, &queue, 1_700_000_000_000)
        .await
        .unwrap();
    store
        .lease_next("builtin", &BTreeMap::new(), "l", 1_700_000_000_000, 60_000)
        .await
        .unwrap()
        .unwrap();
    let mut config = gantry_server::ServerConfig::new(dir.path());
    config.anonymous_read = true;
    config.background_loops = false;
    let state = gantry_server::state::Shared::new(store.clone(), config);
    // The log, in batches of 1,000 lines as an executor sends them.
    let line = |i: usize| {
        let (stream, text) = match i {
            _ if i == LINES - 3 => (LogStream::System, "+ make test".to_string()),
            _ if i == LINES - 1 => (
                LogStream::Stderr,
                "\x1b[1;31merror\x1b[0m: test suite failed".to_string(),
            ),
            _ if i.is_multiple_of(100) => (
                LogStream::Stderr,
                format!("\x1b[33mwarning\x1b[0m: unused variable `x{i}` in src/module_{i}.rs"),
            ),
            _ => (
                LogStream::Stdout,
                format!(
                    "   Compiling crate-{i} v0.{}.{} (/workspace/crates/crate-{i}) \x1b[32mok\x1b[0m",
                    i % 10,
                    i % 7
                ),
            ),
        };
        WireLogLine {
            at_ms: 1_700_000_000_000 + i as u64,
            stream,
            source: None,
            text,
        }
    };
    let all: Vec<WireLogLine> = (0..LINES).map(line).collect();
    for batch in all.chunks(1000) {
        state.logs.append(run.id, "build", batch).await.unwrap();
    }
    store
        .finish_job(
            "l",
            JobFinish {
                state: JobState::Failed,
                message: Some("exit code 2".into()),
                exit_code: Some(2),
                manifest_json: None,
            },
            1_700_000_100_000,
        )
        .await
        .unwrap();
    let file = std::fs::metadata(state.logs.path(run.id, "build").unwrap())
        .unwrap()
        .len();
    println!(
        "setup: a finished job with a {LINES}-line log ({:.1} MiB stored)",
        file as f64 / (1024.0 * 1024.0)
    );
    let app = gantry_server::api::router(state);
    for (what, uri, rounds) in [
        (
            "log page (last 5,000 lines)",
            "/runs/1/jobs/build".to_string(),
            60,
        ),
        (
            "window of 5,000 lines (?from=40000)",
            "/runs/1/jobs/build?from=40000".to_string(),
            60,
        ),
        (
            "whole log (?all=1)",
            "/runs/1/jobs/build?all=1".to_string(),
            12,
        ),
        (
            "search of the whole log, JSON (q=unused variable `x4)",
            "/runs/1/jobs/build/search?format=json&q=unused+variable+%60x4".to_string(),
            60,
        ),
    ] {
        let mut samples = Vec::new();
        let mut size = 0;
        for i in 0..rounds + 3 {
            let req = Request::get(uri.as_str()).body(Body::empty()).unwrap();
            let t = Instant::now();
            let resp = app.clone().oneshot(req).await.unwrap();
            assert_eq!(resp.status(), StatusCode::OK, "{uri}");
            let body = resp.into_body().collect().await.unwrap().to_bytes();
            if i >= 3 {
                samples.push(t.elapsed());
            }
            size = body.len();
        }
        let (p50, p99) = percentiles(samples);
        println!(
            "{what}: p50 {p50:.1} ms, p99 {p99:.1} ms, {:.0} KiB",
            size as f64 / 1024.0
        );
    }
    store.close().await;
}
