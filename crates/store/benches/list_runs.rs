//! Benchmark: `Store::list_runs` with 100,000 runs in the database.
//!
//! `cargo bench -p gantry-store` — plain `std::time::Instant`. Fills a fresh SQLite file
//! (and, when `GANTRY_TEST_POSTGRES` is set, a fresh schema in that PostgreSQL database)
//! with 100,000 runs of 20 pipelines in 10 repositories through `create_run`, one job
//! each, every 20th run failed; then times pages of 50 runs: the newest page, a page deep
//! in the history (keyset cursor), one repository, one pipeline, and failed runs only.
//! Prints p50 and p99 of each. Target (issue 5): listing through the API under 20 ms p99,
//! of which this is the database's share.
#![allow(
    clippy::print_stdout,
    clippy::unwrap_used,
    reason = "a benchmark reports on stdout and may abort"
)]

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use gantry_store::*;

const RUNS: usize = 100_000;
const REPOS: usize = 10;
const PIPELINES_PER_REPO: usize = 2;
const QUERIES: usize = 300;

fn new_run(pipeline_id: i64, i: usize) -> NewRun {
    NewRun {
        pipeline_id,
        state: RunState::Queued,
        event: "push".into(),
        git_ref: "refs/heads/main".into(),
        commit: format!("{i:040x}"),
        cause: "Started by an SCM change (poll)".into(),
        params: BTreeMap::from([("target".to_owned(), "staging".to_owned())]),
        plan_json: Some(format!(
            r#"{{"name":"bench","jobs":[{{"name":"build-{i}"}}]}}"#
        )),
        pipeline_file: Some((
            "gantry.yml".into(),
            "jobs:\n  build:\n    script: [make]\n".into(),
        )),
        error: None,
        concurrency: None,
        rerun_of: None,
        dedup_key: Some(format!("ref:refs/heads/main@{i}")),
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
    }
}

async fn fill(store: &dyn Store) -> i64 {
    let mut pipelines = Vec::new();
    for r in 0..REPOS {
        let repo = store
            .create_repo(NewRepo {
                name: format!("repo-{r}"),
                url: format!("https://git.example/repo-{r}.git"),
                webhook_secret: None,
            })
            .await
            .unwrap();
        for p in 0..PIPELINES_PER_REPO {
            let path = format!(".gantry/p{p}.yml");
            pipelines.push(
                store
                    .ensure_pipeline(repo.id, &format!("p{p}"), &path)
                    .await
                    .unwrap(),
            );
        }
    }
    let start = Instant::now();
    let mut middle = 0;
    for i in 0..RUNS {
        let pipeline = &pipelines[i % pipelines.len()];
        let run = store
            .create_run(new_run(pipeline.id, i), 1_800_000_000_000)
            .await
            .unwrap()
            .unwrap();
        if i % 20 == 0 {
            store
                .set_run_state(run.id, RunState::Failed, 1_800_000_000_001)
                .await
                .unwrap();
        }
        if i == RUNS / 2 {
            middle = run.id;
        }
    }
    let took = start.elapsed();
    println!(
        "  filled {RUNS} runs in {:.1} s ({:.0} runs/s)",
        took.as_secs_f64(),
        RUNS as f64 / took.as_secs_f64()
    );
    middle
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i]
}

async fn measure(store: &dyn Store, what: &str, filter: RunFilter) {
    let mut samples = Vec::with_capacity(QUERIES);
    for _ in 0..QUERIES {
        let start = Instant::now();
        let page = store.list_runs(&filter).await.unwrap();
        samples.push(start.elapsed());
        assert_eq!(page.len(), 50, "{what}: a full page");
    }
    samples.sort_unstable();
    println!(
        "  list_runs {what}: p50 {:.2} ms, p99 {:.2} ms",
        percentile(&samples, 0.5).as_secs_f64() * 1e3,
        percentile(&samples, 0.99).as_secs_f64() * 1e3
    );
}

async fn bench(name: &str, store: Arc<dyn Store>) {
    println!("store/list_runs on {name}, {RUNS} runs, pages of 50:");
    let middle = fill(&*store).await;
    let page = |f: RunFilter| RunFilter { limit: 50, ..f };
    measure(&*store, "newest page", page(RunFilter::default())).await;
    measure(
        &*store,
        "page at the middle (cursor)",
        page(RunFilter {
            before: Some(middle),
            ..RunFilter::default()
        }),
    )
    .await;
    measure(
        &*store,
        "one repository",
        page(RunFilter {
            repo: Some("repo-3".into()),
            ..RunFilter::default()
        }),
    )
    .await;
    measure(
        &*store,
        "one pipeline",
        page(RunFilter {
            repo: Some("repo-3".into()),
            pipeline: Some("p1".into()),
            ..RunFilter::default()
        }),
    )
    .await;
    measure(
        &*store,
        "failed only",
        page(RunFilter {
            states: vec![RunState::Failed],
            ..RunFilter::default()
        }),
    )
    .await;
    store.close().await;
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("bench.sqlite");
    bench("SQLite", open(path.to_str().unwrap()).await.unwrap()).await;
    if let Ok(url) = std::env::var("GANTRY_TEST_POSTGRES") {
        let schema = format!("bench_{}", std::process::id());
        let store = PgStore::connect_in_schema(&url, &schema).await.unwrap();
        bench("PostgreSQL", Arc::new(store)).await;
        let mut conn = <sqlx::PgConnection as sqlx::Connection>::connect(&url)
            .await
            .unwrap();
        sqlx::query(sqlx::AssertSqlSafe(format!(
            "DROP SCHEMA \"{schema}\" CASCADE"
        )))
        .execute(&mut conn)
        .await
        .unwrap();
    }
}
