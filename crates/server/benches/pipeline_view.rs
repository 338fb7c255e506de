//! Benchmark: the pipeline view with 1,000 runs × 10 jobs in the store.
//!
//! `cargo bench -p gantry-server --bench pipeline_view` — plain `std::time::Instant`.
//! Fills a fresh SQLite store with 1,000 runs of a 10-job chain, written the way the
//! server writes them (every job queued, leased, finished; the setup is
//! `tests/webutil/seed.rs`, shared with `tests/web_render.rs`), then times:
//!
//! - the default page (`GET /repos/app/pipelines/app`, the newest 50 runs) through the
//!   router: reading the store and rendering, as a request is answered;
//! - a 1,000-run page: reading the 1,000 runs with their jobs, and rendering them (the
//!   issue's target: rendering 1,000 runs × 10 jobs under 50 ms).
//!
//! Prints p50 and p99 of each, and the page sizes.
#![allow(
    clippy::print_stdout,
    clippy::unwrap_used,
    reason = "a benchmark reports on stdout and may abort"
)]

#[path = "../tests/webutil/seed.rs"]
mod seed;

use std::time::{Duration, Instant};

use axum::body::Body;
use axum::http::{Request, StatusCode};
use gantry_server::web::pipeline::{load, render};
use gantry_server::web::view::Nav;
use http_body_util::BodyExt;
use tower::ServiceExt;

const RUNS: usize = 1000;
const JOBS: usize = 10;

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

/// p50 and p99 of `samples`, in ms.
fn percentiles(mut samples: Vec<Duration>) -> (f64, f64) {
    samples.sort();
    let at = |p: f64| samples[((samples.len() - 1) as f64 * p).round() as usize];
    (ms(at(0.50)), ms(at(0.99)))
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
    let started = Instant::now();
    seed::history(store.as_ref(), "app", RUNS, JOBS, seed::Jobs::Leased).await;
    println!(
        "setup: {RUNS} runs x {JOBS} jobs written through the store in {:.1} s",
        started.elapsed().as_secs_f64()
    );
    let mut config = gantry_server::ServerConfig::new(dir.path());
    config.anonymous_read = true;
    config.background_loops = false;
    let state = gantry_server::state::Shared::new(store.clone(), config);
    let app = gantry_server::api::router(state);

    // The default page through the router.
    let mut samples = Vec::new();
    let mut size = 0;
    for i in 0..220 {
        let req = Request::get("/repos/app/pipelines/app")
            .body(Body::empty())
            .unwrap();
        let t = Instant::now();
        let resp = app.clone().oneshot(req).await.unwrap();
        assert_eq!(resp.status(), StatusCode::OK);
        let body = resp.into_body().collect().await.unwrap().to_bytes();
        if i >= 20 {
            samples.push(t.elapsed());
        }
        size = body.len();
    }
    let (p50, p99) = percentiles(samples);
    println!(
        "default page (newest 50 runs x {JOBS} jobs), GET through the router: p50 {p50:.2} ms, p99 {p99:.2} ms, {} KiB of HTML",
        size / 1024
    );

    // A 1,000-run page: reading, then rendering.
    let nav = Nav {
        who: Some("admin".into()),
        csrf: "x".repeat(48),
        admin: true,
        v: "0",
    };
    let mut reads = Vec::new();
    let mut runs = Vec::new();
    for _ in 0..20 {
        let t = Instant::now();
        runs = load(store.as_ref(), "app", "app", None, RUNS)
            .await
            .unwrap();
        reads.push(t.elapsed());
    }
    assert_eq!(runs.len(), RUNS);
    let mut renders = Vec::new();
    for i in 0..110 {
        let t = Instant::now();
        let html = render(nav.clone(), "app", "app", &runs, false, 0).unwrap();
        if i >= 10 {
            renders.push(t.elapsed());
        }
        size = html.len();
    }
    let (r50, r99) = percentiles(reads);
    let (p50, p99) = percentiles(renders);
    println!(
        "{RUNS}-run page: reading {RUNS} runs with their jobs from the store p50 {r50:.1} ms, p99 {r99:.1} ms"
    );
    println!(
        "{RUNS}-run page: rendering {RUNS} runs x {JOBS} jobs p50 {p50:.2} ms, p99 {p99:.2} ms (target: under 50 ms), {} KiB of HTML",
        size / 1024
    );
    store.close().await;
}
