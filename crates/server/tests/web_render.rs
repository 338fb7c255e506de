//! The pipeline view at scale: 1,000 runs × 10 jobs in the real store (written the way
//! the server writes them, see `webutil/seed.rs`) render into one complete table — every
//! row, every cell, in DAG order, escaped — and the default page through the router shows
//! the newest 50 with a link to older ones. How long this takes is measured by
//! `benches/pipeline_view.rs` (docs/benchmarks.md), not asserted here.

#![allow(clippy::unwrap_used)]

mod common;
mod webutil;

use axum::http::StatusCode;
use gantry_server::web::pipeline::{load, render};
use gantry_server::web::view::Nav;
use webutil::{count, request, seed};

const PIPE: &str = "\
on:
  manual: true
jobs:
  build:
    script: [make]
";

#[tokio::test]
async fn pipeline_view_of_1000_runs_with_10_jobs() {
    let f = common::Fixture::with(PIPE, |c| c.anonymous_read = true).await;
    let store = f.server.state().store.clone();
    seed::history(store.as_ref(), "big", 1000, 10, seed::Jobs::Created).await;

    let runs = load(store.as_ref(), "big", "big", None, 1000)
        .await
        .unwrap();
    assert_eq!(runs.len(), 1000);
    let nav = Nav {
        who: Some("admin".into()),
        csrf: "x".into(),
        admin: true,
        v: "0",
    };
    let html = render(nav, "big", "big", &runs, false, 0).unwrap();
    assert_eq!(count(&html, "<tr class=\"run-row\""), 1000);
    assert_eq!(count(&html, "<td class=\"job-cell status-"), 10_000);
    assert_eq!(count(&html, "class=\"job-col\""), 10);
    let cols: Vec<usize> = (0..10)
        .map(|i| {
            html.find(&format!("class=\"job-col\" data-job=\"job-{i}\""))
                .unwrap()
        })
        .collect();
    assert!(cols.windows(2).all(|w| w[0] < w[1]), "DAG order: {cols:?}");
    // 142 failed runs: the row, its status span, the last cell and its span.
    let failed = (1..=1000).filter(|n| seed::failed(*n)).count();
    assert_eq!(failed, 142);
    assert_eq!(count(&html, "data-state=\"failed\""), failed * 4);
    assert!(html.contains("job &#60;3&#62;"));
    assert!(!html.contains("job <3>"));

    // The page people open: the newest 50 runs, through the router.
    let r = request(&f, "GET", "/repos/big/pipelines/big", None, None).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert_eq!(count(&r.body, "<tr class=\"run-row\""), 50);
    assert!(r.body.contains("data-run-number=\"1000\""));
    assert!(r.body.contains("data-run-number=\"951\""));
    assert!(!r.body.contains("data-run-number=\"950\""));
    let older = &runs[49].0;
    assert!(r.body.contains(&format!(
        "<a id=\"older-runs\" href=\"/repos/big/pipelines/big?before={}\">",
        older.id
    )));

    // Runs whose jobs were leased and finished show every job's duration.
    seed::history(store.as_ref(), "small", 3, 10, seed::Jobs::Leased).await;
    let r = request(&f, "GET", "/repos/small/pipelines/small", None, None).await;
    assert_eq!(count(&r.body, "<span class=\"duration\">4.2s</span>"), 30);
    assert_eq!(
        count(&r.body, "<span class=\"run-duration\">50.0s</span>"),
        3
    );
}
