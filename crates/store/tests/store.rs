//! The store's behaviour, as one suite of cases run against both databases: every case
//! below runs as `sqlite::<case>` (a fresh database file in a temporary folder) and as
//! `postgres::<case>` (a fresh schema in the database named by `GANTRY_TEST_POSTGRES`,
//! e.g. `postgres://gantry:gantry@127.0.0.1:5432/gantry_test`; `cargo xtask test` sets it
//! up). Without that variable the PostgreSQL cases are skipped with a notice, except
//! under `CI=true`, where they fail.

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::sync::Arc;

use gantry_store::*;

/// A fixed "now" so deadlines and times are exact.
const NOW: Millis = 1_800_000_000_000;
/// Lease time to live.
const TTL: i64 = 30_000;

/// A store under test, and how to open it again.
struct Db {
    store: Arc<dyn Store>,
    kind: Kind,
}

enum Kind {
    Sqlite {
        // Removed (with the database) when the test ends.
        _dir: tempfile::TempDir,
        path: PathBuf,
    },
    Postgres {
        url: String,
        schema: String,
    },
}

impl Db {
    async fn sqlite() -> Db {
        let dir = tempfile::tempdir().expect("temporary folder");
        let path = dir.path().join("data").join("gantry.sqlite");
        let store = open(path.to_str().expect("utf-8 path"))
            .await
            .expect("open a new SQLite store");
        Db {
            store,
            kind: Kind::Sqlite { _dir: dir, path },
        }
    }

    /// A store in a schema of its own; `None` (skipped) without `GANTRY_TEST_POSTGRES`.
    #[expect(
        clippy::print_stderr,
        reason = "the skip notice is for the person running the tests"
    )]
    async fn postgres(case: &str) -> Option<Db> {
        let Ok(url) = std::env::var("GANTRY_TEST_POSTGRES") else {
            let ci = std::env::var("CI").is_ok_and(|v| v == "true" || v == "1");
            assert!(
                !ci,
                "GANTRY_TEST_POSTGRES is not set: CI must run the PostgreSQL store tests \
                 (cargo xtask test sets it up)"
            );
            eprintln!(
                "skipped: GANTRY_TEST_POSTGRES is not set (e.g. \
                 postgres://gantry:gantry@127.0.0.1:5432/gantry_test; `cargo xtask test` sets it)"
            );
            return None;
        };
        let schema = format!("test_{case}_{}", std::process::id());
        let schema: String = schema.chars().take(63).collect();
        PgStore::drop_schema(&url, &schema)
            .await
            .expect("drop the test schema");
        let store = PgStore::connect_in_schema(&url, &schema)
            .await
            .expect("connect to the PostgreSQL test database");
        Some(Db {
            store: Arc::new(store),
            kind: Kind::Postgres { url, schema },
        })
    }

    /// Closes the store and opens the same database again, as a restarted server does.
    async fn reopen(&mut self) {
        self.store.close().await;
        self.store = match &self.kind {
            Kind::Sqlite { path, .. } => open(path.to_str().expect("utf-8 path"))
                .await
                .expect("reopen the SQLite store"),
            Kind::Postgres { url, schema } => Arc::new(
                PgStore::connect_in_schema(url, schema)
                    .await
                    .expect("reconnect to PostgreSQL"),
            ),
        };
    }

    /// Drops what the test made (a failed test keeps its schema for a look).
    async fn cleanup(self) {
        self.store.close().await;
        if let Kind::Postgres { url, schema } = &self.kind {
            PgStore::drop_schema(url, schema)
                .await
                .expect("drop the test schema");
        }
    }
}

/// Declares every case once per database.
macro_rules! suite {
    ($($case:ident),* $(,)?) => {
        mod sqlite {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
                async fn $case() {
                    let mut db = super::Db::sqlite().await;
                    super::$case(&mut db).await;
                    db.cleanup().await;
                }
            )*
        }
        mod postgres {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
                async fn $case() {
                    let Some(mut db) = super::Db::postgres(stringify!($case)).await else {
                        return;
                    };
                    super::$case(&mut db).await;
                    db.cleanup().await;
                }
            )*
        }
    };
}

suite!(
    repos_and_pipelines,
    ref_heads,
    numbering_under_concurrent_creates,
    dedup_keys,
    concurrent_duplicates_create_one_run,
    errored_and_copied_at_creation,
    unknown_pipeline,
    lease_exclusivity_under_concurrency,
    labels_match_as_a_subset,
    lease_order_and_run_start,
    fencing_refuses_stale_reports,
    heartbeat_lost_after_expiry,
    expire_requeues_then_errors,
    expire_by_executor,
    transitions,
    cancel_with_running_jobs,
    cancel_with_nothing_running,
    approvals,
    run_states_and_lookups,
    list_runs_pages_and_filters,
    many_runs,
    artifacts,
    caches_first_writer_wins_per_repository,
    caches_evict_least_recently_used,
    cache_blobs_in_use,
    tokens,
    users,
    queue_stats,
    restart_keeps_everything,
);

// ---------------------------------------------------------------------------------------
// Fixtures

fn labels(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect()
}

fn job(idx: i64, needs: &[i64], runs_on: &[(&str, &str)]) -> NewJob {
    NewJob {
        idx,
        name: format!("job {idx}"),
        key: format!("job-{idx}"),
        needs: needs.to_vec(),
        runs_on: labels(runs_on),
        state: JobState::Pending,
        message: None,
        manifest_json: None,
    }
}

fn new_run(pipeline_id: i64, jobs: Vec<NewJob>) -> NewRun {
    NewRun {
        pipeline_id,
        state: RunState::Queued,
        event: "push".into(),
        git_ref: "refs/heads/main".into(),
        commit: "0123456789abcdef0123456789abcdef01234567".into(),
        cause: "Started by an SCM change (poll)".into(),
        params: labels(&[("target", "prod")]),
        plan_json: Some(r#"{"jobs":[]}"#.into()),
        pipeline_file: Some(("gantry.yml".into(), "jobs: {}\n".into())),
        error: None,
        concurrency: Some(("deploy".into(), 1)),
        rerun_of: None,
        dedup_key: None,
        jobs,
    }
}

async fn repo(store: &dyn Store, name: &str) -> Repo {
    store
        .create_repo(NewRepo {
            name: name.into(),
            url: format!("https://git.example/{name}.git"),
            webhook_secret: Some("s3cret".into()),
        })
        .await
        .expect("create repo")
}

async fn pipeline(store: &dyn Store, repo_name: &str, name: &str) -> Pipeline {
    let repo = match store.repo_by_name(repo_name).await {
        Ok(repo) => repo,
        Err(_) => repo(store, repo_name).await,
    };
    store
        .ensure_pipeline(repo.id, name, &format!(".gantry/{name}.yml"))
        .await
        .expect("ensure pipeline")
}

async fn create(store: &dyn Store, run: NewRun) -> Run {
    store
        .create_run(run, NOW)
        .await
        .expect("create run")
        .expect("not a duplicate")
}

/// A run whose jobs are all queued (admitted, no needs).
async fn queued_run(store: &dyn Store, pipeline_id: i64, jobs: Vec<NewJob>) -> Run {
    let run = create(store, new_run(pipeline_id, jobs)).await;
    queue(store, run.id, &store.jobs(run.id).await.expect("jobs")).await;
    run
}

async fn queue(store: &dyn Store, run_id: i64, jobs: &[Job]) {
    let changes: Vec<_> = jobs
        .iter()
        .map(|j| JobTransition {
            idx: j.idx,
            state: JobState::Queued,
            message: None,
        })
        .collect();
    store
        .transition_jobs(run_id, &changes, NOW)
        .await
        .expect("queue jobs");
}

async fn lease(store: &dyn Store, executor: &str, lease_id: &str, now: Millis) -> Option<Leased> {
    store
        .lease_next(executor, &BTreeMap::new(), lease_id, now, TTL)
        .await
        .expect("lease_next")
}

async fn job_of(store: &dyn Store, run_id: i64, idx: i64) -> Job {
    store
        .jobs(run_id)
        .await
        .expect("jobs")
        .into_iter()
        .find(|j| j.idx == idx)
        .expect("job exists")
}

fn finish(state: JobState, message: &str) -> JobFinish {
    JobFinish {
        state,
        message: Some(message.into()),
        exit_code: (state == JobState::Failed).then_some(3),
        manifest_json: (state == JobState::Succeeded).then(|| r#"{"files":[]}"#.into()),
    }
}

// ---------------------------------------------------------------------------------------
// Cases

async fn repos_and_pipelines(db: &mut Db) {
    let s = &*db.store;
    let b = repo(s, "b-repo").await;
    let a = repo(s, "a-repo").await;
    assert_eq!(b.name, "b-repo");
    assert_eq!(b.webhook_secret.as_deref(), Some("s3cret"));
    assert!(b.created_at > 0 && b.last_error.is_none() && b.next_poll_at.is_none());

    let dup = s
        .create_repo(NewRepo {
            name: "a-repo".into(),
            url: "elsewhere".into(),
            webhook_secret: None,
        })
        .await;
    assert!(
        matches!(dup, Err(StoreError::Conflict(ref what)) if what == "repository a-repo"),
        "{dup:?}"
    );
    assert!(matches!(
        s.repo_by_name("nope").await,
        Err(StoreError::NotFound(_))
    ));
    let names: Vec<_> = s
        .list_repos()
        .await
        .expect("list")
        .into_iter()
        .map(|r| r.name)
        .collect();
    assert_eq!(names, ["a-repo", "b-repo"]);

    s.record_poll(a.id, NOW, Some("could not reach it".into()), NOW + 60_000)
        .await
        .expect("record poll");
    let a2 = s.repo_by_name("a-repo").await.expect("repo");
    assert_eq!(
        (a2.last_polled_at, a2.last_error.as_deref(), a2.next_poll_at),
        (Some(NOW), Some("could not reach it"), Some(NOW + 60_000))
    );
    s.record_poll(a.id, NOW + 1, None, NOW + 2)
        .await
        .expect("record poll");
    assert_eq!(
        s.repo_by_name("a-repo").await.expect("repo").last_error,
        None
    );
    assert!(matches!(
        s.record_poll(9999, NOW, None, NOW).await,
        Err(StoreError::NotFound(_))
    ));

    let p1 = s
        .ensure_pipeline(a.id, "ci", "gantry.yml")
        .await
        .expect("pipeline");
    let again = s
        .ensure_pipeline(a.id, "ci", "gantry.yml")
        .await
        .expect("pipeline");
    assert_eq!(p1, again, "ensuring twice changes nothing");
    let moved = s
        .ensure_pipeline(a.id, "ci", ".gantry/ci.yml")
        .await
        .expect("pipeline");
    assert_eq!((moved.id, moved.path.as_str()), (p1.id, ".gantry/ci.yml"));
    let p2 = s
        .ensure_pipeline(a.id, "release", "release.yml")
        .await
        .expect("pipeline");
    let p3 = s
        .ensure_pipeline(b.id, "ci", "gantry.yml")
        .await
        .expect("pipeline");
    assert_ne!(
        p3.id, p1.id,
        "same name in another repository is another pipeline"
    );
    assert!(matches!(
        s.ensure_pipeline(9999, "ci", "gantry.yml").await,
        Err(StoreError::NotFound(_))
    ));
    let of_a: Vec<_> = s
        .list_pipelines(Some(a.id))
        .await
        .expect("list")
        .into_iter()
        .map(|p| p.id)
        .collect();
    assert_eq!(of_a, [p1.id, p2.id]);
    assert_eq!(s.list_pipelines(None).await.expect("list").len(), 3);
}

async fn ref_heads(db: &mut Db) {
    let s = &*db.store;
    let r = repo(s, "r").await;
    let other = repo(s, "other").await;
    assert!(s.ref_heads(r.id).await.expect("heads").is_empty());
    for (git_ref, commit) in [
        ("refs/heads/main", "aaa"),
        ("refs/tags/v1.0", "bbb"),
        ("refs/heads/main", "ccc"),
    ] {
        s.set_ref_head(r.id, git_ref, commit)
            .await
            .expect("set head");
    }
    s.set_ref_head(other.id, "refs/heads/main", "zzz")
        .await
        .expect("set head");
    assert_eq!(
        s.ref_heads(r.id).await.expect("heads"),
        labels(&[("refs/heads/main", "ccc"), ("refs/tags/v1.0", "bbb")])
    );
    assert!(matches!(
        s.set_ref_head(9999, "refs/heads/main", "x").await,
        Err(StoreError::NotFound(_))
    ));
}

async fn numbering_under_concurrent_creates(db: &mut Db) {
    let a = pipeline(&*db.store, "repo", "a").await;
    let b = pipeline(&*db.store, "repo", "b").await;
    let mut tasks = Vec::new();
    for i in 0..40 {
        let store = db.store.clone();
        let pipeline_id = if i % 4 == 0 { b.id } else { a.id };
        tasks.push(tokio::spawn(async move {
            let run = store
                .create_run(
                    new_run(pipeline_id, vec![job(0, &[], &[]), job(1, &[0], &[])]),
                    NOW,
                )
                .await
                .expect("create")
                .expect("created");
            (pipeline_id, run.number)
        }));
    }
    let mut numbers: BTreeMap<i64, Vec<i64>> = BTreeMap::new();
    for t in tasks {
        let (p, n) = t.await.expect("task");
        numbers.entry(p).or_default().push(n);
    }
    for (p, expect) in [(a.id, 30), (b.id, 10)] {
        let mut got = numbers.remove(&p).expect("runs of pipeline");
        got.sort_unstable();
        assert_eq!(got, (1..=expect).collect::<Vec<_>>(), "pipeline {p}");
    }
    let run = db
        .store
        .run_by_number("repo", "a", 30)
        .await
        .expect("run #30");
    assert_eq!(
        (run.pipeline.as_str(), run.repo.as_str(), run.number),
        ("a", "repo", 30)
    );
    assert_eq!(db.store.jobs(run.id).await.expect("jobs").len(), 2);
    assert!(matches!(
        db.store.run_by_number("repo", "a", 31).await,
        Err(StoreError::NotFound(_))
    ));
}

async fn dedup_keys(db: &mut Db) {
    let s = &*db.store;
    let a = pipeline(s, "repo", "a").await;
    let b = pipeline(s, "repo", "b").await;
    let keyed = |pipeline_id, key: &str| NewRun {
        dedup_key: Some(key.into()),
        ..new_run(pipeline_id, vec![job(0, &[], &[])])
    };
    let first = s
        .create_run(keyed(a.id, "ref:main@abc"), NOW)
        .await
        .expect("create");
    assert_eq!(first.map(|r| r.number), Some(1));
    let dup = s
        .create_run(keyed(a.id, "ref:main@abc"), NOW)
        .await
        .expect("create");
    assert_eq!(dup, None, "same key, same pipeline: nothing created");
    let other_pipeline = s
        .create_run(keyed(b.id, "ref:main@abc"), NOW)
        .await
        .expect("create");
    assert_eq!(
        other_pipeline.map(|r| r.number),
        Some(1),
        "keys are per pipeline"
    );
    let next = s
        .create_run(keyed(a.id, "ref:main@def"), NOW)
        .await
        .expect("create");
    assert_eq!(
        next.map(|r| r.number),
        Some(2),
        "the duplicate used no number"
    );
    // Runs without a key may repeat.
    for n in [3, 4] {
        assert_eq!(create(s, new_run(a.id, vec![])).await.number, n);
    }
    let runs = s
        .list_runs(&RunFilter {
            repo: Some("repo".into()),
            pipeline: Some("a".into()),
            ..RunFilter::default()
        })
        .await
        .expect("list");
    assert_eq!(runs.len(), 4);
}

async fn concurrent_duplicates_create_one_run(db: &mut Db) {
    let p = pipeline(&*db.store, "repo", "ci").await;
    let mut tasks = Vec::new();
    for _ in 0..12 {
        let store = db.store.clone();
        tasks.push(tokio::spawn(async move {
            store
                .create_run(
                    NewRun {
                        dedup_key: Some("delivery:42".into()),
                        ..new_run(p.id, vec![job(0, &[], &[])])
                    },
                    NOW,
                )
                .await
                .expect("create")
        }));
    }
    let mut created = Vec::new();
    for t in tasks {
        created.extend(t.await.expect("task"));
    }
    assert_eq!(created.len(), 1, "one delivery, one run: {created:?}");
    assert_eq!(created[0].number, 1);
    assert_eq!(create(&*db.store, new_run(p.id, vec![])).await.number, 2);
}

async fn errored_and_copied_at_creation(db: &mut Db) {
    let s = &*db.store;
    let p = pipeline(s, "repo", "ci").await;
    let errored = create(
        s,
        NewRun {
            state: RunState::Errored,
            error: Some("gantry.yml:3:5: unknown key `stpes`".into()),
            plan_json: None,
            ..new_run(p.id, vec![])
        },
    )
    .await;
    assert_eq!(errored.state, RunState::Errored);
    assert_eq!(errored.finished_at, Some(NOW));
    assert_eq!(
        errored.error.as_deref(),
        Some("gantry.yml:3:5: unknown key `stpes`")
    );
    assert!(s.jobs(errored.id).await.expect("jobs").is_empty());
    assert!(s.active_runs().await.expect("active").is_empty());

    // Rerun-failed: the job that succeeded before is copied, final, with its manifest.
    let copied = NewJob {
        state: JobState::Succeeded,
        message: Some("reused from run #1".into()),
        manifest_json: Some(r#"{"files":["a"]}"#.into()),
        ..job(0, &[], &[])
    };
    let rerun = create(
        s,
        NewRun {
            rerun_of: Some(errored.id),
            ..new_run(p.id, vec![copied, job(1, &[0], &[])])
        },
    )
    .await;
    assert_eq!(rerun.rerun_of, Some(errored.id));
    assert_eq!(rerun.params, labels(&[("target", "prod")]));
    assert_eq!(rerun.concurrency, Some(("deploy".into(), 1)));
    assert_eq!(
        rerun.pipeline_file,
        Some(("gantry.yml".into(), "jobs: {}\n".into()))
    );
    let jobs = s.jobs(rerun.id).await.expect("jobs");
    assert_eq!(jobs[0].state, JobState::Succeeded);
    assert_eq!(jobs[0].finished_at, Some(NOW));
    assert_eq!(jobs[0].manifest_json.as_deref(), Some(r#"{"files":["a"]}"#));
    assert_eq!(
        (jobs[1].state, jobs[1].needs.clone()),
        (JobState::Pending, vec![0])
    );
    queue(s, rerun.id, &jobs).await;
    let leased = lease(s, "e1", "l1", NOW).await.expect("a job");
    assert_eq!(leased.job.idx, 1, "the copied job is not run again");
    assert!(lease(s, "e1", "l2", NOW).await.is_none());
}

async fn unknown_pipeline(db: &mut Db) {
    let got = db
        .store
        .create_run(new_run(4242, vec![job(0, &[], &[])]), NOW)
        .await;
    assert!(matches!(got, Err(StoreError::NotFound(_))), "{got:?}");
    assert!(
        matches!(db.store.run(4242).await, Err(StoreError::NotFound(ref w)) if w == "run 4242")
    );
}

async fn lease_exclusivity_under_concurrency(db: &mut Db) {
    let p = pipeline(&*db.store, "repo", "ci").await;
    let mut all = BTreeSet::new();
    for _ in 0..20 {
        let jobs = (0..5).map(|i| job(i, &[], &[])).collect();
        let run = queued_run(&*db.store, p.id, jobs).await;
        all.extend((0..5).map(|i| (run.id, i)));
    }
    let mut workers = Vec::new();
    for w in 0..8 {
        let store = db.store.clone();
        workers.push(tokio::spawn(async move {
            let mut got = Vec::new();
            for n in 0.. {
                let lease_id = format!("w{w}-{n}");
                match lease(&*store, &format!("exec-{w}"), &lease_id, NOW).await {
                    Some(l) => {
                        assert_eq!(l.job.lease_id.as_deref(), Some(lease_id.as_str()));
                        assert_eq!(l.job.attempt, 1);
                        got.push((l.job.run_id, l.job.idx));
                    }
                    None => break,
                }
            }
            got
        }));
    }
    let mut leased = Vec::new();
    for w in workers {
        leased.extend(w.await.expect("worker"));
    }
    let unique: BTreeSet<_> = leased.iter().copied().collect();
    assert_eq!(
        unique.len(),
        leased.len(),
        "a job was leased twice: {leased:?}"
    );
    assert_eq!(unique, all, "every queued job was handed out");
    let stats = db.store.queue_stats().await.expect("stats");
    assert_eq!((stats.queued_jobs, stats.running_jobs), (0, 100));
}

async fn labels_match_as_a_subset(db: &mut Db) {
    let s = &*db.store;
    let p = pipeline(s, "repo", "ci").await;
    let run = queued_run(
        s,
        p.id,
        vec![
            job(0, &[], &[("os", "linux"), ("arch", "arm64")]),
            job(1, &[], &[("os", "linux")]),
            job(2, &[], &[]),
            job(3, &[], &[("gpu", "yes")]),
        ],
    )
    .await;
    // (executor labels, the job it gets); leases are not finished, so each job goes once.
    let check = async |have: &[(&str, &str)], expect: Option<i64>| {
        let got = s
            .lease_next(
                "e",
                &labels(have),
                &format!("lease-{have:?}-{expect:?}"),
                NOW,
                TTL,
            )
            .await
            .expect("lease_next")
            .map(|l| l.job.idx);
        assert_eq!(got, expect, "labels {have:?}");
    };
    check(&[("os", "windows"), ("gpu", "no")], Some(2)).await;
    check(&[("os", "windows")], None).await;
    check(&[("arch", "arm64")], None).await;
    check(&[("os", "linux"), ("arch", "amd64")], Some(1)).await;
    check(
        &[("os", "linux"), ("arch", "arm64"), ("disk", "ssd")],
        Some(0),
    )
    .await;
    check(&[("os", "linux"), ("arch", "arm64")], None).await;
    check(&[("gpu", "yes")], Some(3)).await;
    let states: Vec<_> = s
        .jobs(run.id)
        .await
        .expect("jobs")
        .iter()
        .map(|j| j.state)
        .collect();
    assert_eq!(states, [JobState::Running; 4]);
}

async fn lease_order_and_run_start(db: &mut Db) {
    let s = &*db.store;
    let p = pipeline(s, "repo", "ci").await;
    let first = create(s, new_run(p.id, vec![job(0, &[], &[]), job(1, &[], &[])])).await;
    let second = queued_run(s, p.id, vec![job(0, &[], &[])]).await;
    // Only the second job of the first run is queued.
    queue(s, first.id, &s.jobs(first.id).await.expect("jobs")[1..]).await;
    let l1 = lease(s, "e", "l1", NOW + 5).await.expect("a job");
    assert_eq!(
        (l1.job.run_id, l1.job.idx),
        (first.id, 1),
        "oldest run first"
    );
    assert_eq!(l1.job.state, JobState::Running);
    assert_eq!(l1.job.executor.as_deref(), Some("e"));
    assert_eq!(l1.job.lease_deadline, Some(NOW + 5 + TTL));
    assert_eq!(l1.job.started_at, Some(NOW + 5));
    assert_eq!(l1.job.queued_at, Some(NOW));
    assert_eq!(
        l1.run.state,
        RunState::Running,
        "the run started with its first job"
    );
    assert_eq!(l1.run.started_at, Some(NOW + 5));
    let l2 = lease(s, "e", "l2", NOW + 9).await.expect("a job");
    assert_eq!((l2.job.run_id, l2.job.idx), (second.id, 0));
    assert!(
        lease(s, "e", "l3", NOW).await.is_none(),
        "pending jobs are not handed out"
    );
    assert_eq!(s.job_by_lease("l1").await.expect("job").idx, 1);
    assert!(matches!(
        s.job_by_lease("nope").await,
        Err(StoreError::StaleLease(_))
    ));
    // A second job of a running run leaves its start alone.
    queue(s, first.id, &s.jobs(first.id).await.expect("jobs")).await;
    let l4 = lease(s, "e", "l4", NOW + 50).await.expect("a job");
    assert_eq!((l4.job.run_id, l4.job.idx), (first.id, 0));
    assert_eq!(l4.run.started_at, Some(NOW + 5));
}

async fn fencing_refuses_stale_reports(db: &mut Db) {
    let s = &*db.store;
    let p = pipeline(s, "repo", "ci").await;
    let run = queued_run(s, p.id, vec![job(0, &[], &[])]).await;
    lease(s, "e", "good", NOW).await.expect("a job");
    let before = job_of(s, run.id, 0).await;
    let stale = s
        .finish_job("forged", finish(JobState::Succeeded, "done"), NOW + 1)
        .await;
    assert!(
        matches!(stale, Err(StoreError::StaleLease(ref l)) if l == "forged"),
        "{stale:?}"
    );
    assert_eq!(
        job_of(s, run.id, 0).await,
        before,
        "a stale report changes nothing"
    );

    let done = s
        .finish_job("good", finish(JobState::Failed, "exit code 3"), NOW + 2)
        .await
        .expect("finish");
    assert_eq!(done.state, JobState::Failed);
    assert_eq!(
        (done.exit_code, done.message.as_deref()),
        (Some(3), Some("exit code 3"))
    );
    assert_eq!(
        (done.finished_at, done.lease_id.as_deref()),
        (Some(NOW + 2), None)
    );
    // The same report again (a retried request) is refused and changes nothing.
    let again = s
        .finish_job("good", finish(JobState::Succeeded, "late"), NOW + 3)
        .await;
    assert!(matches!(again, Err(StoreError::StaleLease(_))), "{again:?}");
    assert_eq!(job_of(s, run.id, 0).await, done);
    assert_eq!(
        s.heartbeat("good", NOW + 4, TTL).await.expect("heartbeat"),
        LeaseCheck::Lost
    );
    assert!(matches!(
        s.job_by_lease("good").await,
        Err(StoreError::StaleLease(_))
    ));
    // A lease only ends in a final state.
    let run2 = queued_run(s, p.id, vec![job(0, &[], &[])]).await;
    lease(s, "e", "l2", NOW).await.expect("a job");
    assert!(
        s.finish_job("l2", finish(JobState::Queued, "?"), NOW)
            .await
            .is_err()
    );
    assert_eq!(job_of(s, run2.id, 0).await.state, JobState::Running);
}

async fn heartbeat_lost_after_expiry(db: &mut Db) {
    let s = &*db.store;
    let p = pipeline(s, "repo", "ci").await;
    let run = queued_run(s, p.id, vec![job(0, &[], &[])]).await;
    lease(s, "e1", "first", NOW).await.expect("a job");
    assert_eq!(
        s.heartbeat("first", NOW + 10_000, TTL).await.expect("hb"),
        LeaseCheck::Ok
    );
    assert_eq!(
        job_of(s, run.id, 0).await.lease_deadline,
        Some(NOW + 10_000 + TTL)
    );
    // Not expired before the extended deadline.
    assert!(
        s.expire_leases(NOW + TTL + 1, None, 3)
            .await
            .expect("expire")
            .is_empty()
    );
    let expired = s
        .expire_leases(NOW + 10_000 + TTL + 1, None, 3)
        .await
        .expect("expire");
    assert_eq!(expired.len(), 1);
    assert_eq!(
        s.heartbeat("first", NOW + 50_000, TTL).await.expect("hb"),
        LeaseCheck::Lost
    );
    let late = s
        .finish_job("first", finish(JobState::Succeeded, "done"), NOW + 50_000)
        .await;
    assert!(matches!(late, Err(StoreError::StaleLease(_))), "{late:?}");
    let second = lease(s, "e2", "second", NOW + 60_000)
        .await
        .expect("the job again");
    assert_eq!(
        (second.job.attempt, second.job.executor.as_deref()),
        (2, Some("e2"))
    );
    assert_eq!(
        s.heartbeat("first", NOW + 60_001, TTL).await.expect("hb"),
        LeaseCheck::Lost
    );
    assert_eq!(
        s.heartbeat("second", NOW + 60_001, TTL).await.expect("hb"),
        LeaseCheck::Ok
    );
}

async fn expire_requeues_then_errors(db: &mut Db) {
    let s = &*db.store;
    let p = pipeline(s, "repo", "ci").await;
    let run = queued_run(s, p.id, vec![job(0, &[], &[]), job(1, &[], &[])]).await;
    lease(s, "e1", "a1", NOW).await.expect("job 0");
    lease(s, "e1", "b1", NOW + TTL).await.expect("job 1");
    // Only job 0's deadline has passed.
    let expired = s
        .expire_leases(NOW + TTL + 1, None, 2)
        .await
        .expect("expire");
    assert_eq!(expired.len(), 1);
    let e = &expired[0];
    assert_eq!(
        (e.executor.as_str(), e.job.idx, e.job.state, e.job.attempt),
        ("e1", 0, JobState::Queued, 1)
    );
    assert_eq!(e.job.lease_id, None);
    assert_eq!(
        e.job.message.as_deref(),
        Some("lease expired on executor e1 after 1 attempt; queued again")
    );
    assert_eq!(job_of(s, run.id, 1).await.state, JobState::Running);

    let again = lease(s, "e2", "a2", NOW + 100_000)
        .await
        .expect("job 0 again");
    assert_eq!((again.job.idx, again.job.attempt), (0, 2));
    let expired = s
        .expire_leases(NOW + 200_000, None, 2)
        .await
        .expect("expire");
    let mut got: Vec<_> = expired
        .iter()
        .map(|e| {
            (
                e.job.idx,
                e.job.state,
                e.job.attempt,
                e.job.message.clone().unwrap_or_default(),
            )
        })
        .collect();
    got.sort_by_key(|g| g.0);
    assert_eq!(
        got,
        [
            (
                0,
                JobState::Errored,
                2,
                "lease expired on executor e2 after 2 attempts".to_owned()
            ),
            (
                1,
                JobState::Queued,
                1,
                "lease expired on executor e1 after 1 attempt; queued again".to_owned()
            ),
        ]
    );
    let errored = job_of(s, run.id, 0).await;
    assert_eq!(
        (errored.finished_at, errored.lease_id),
        (Some(NOW + 200_000), None)
    );
    assert!(
        s.expire_leases(NOW + 300_000, None, 2)
            .await
            .expect("expire")
            .is_empty()
    );
}

async fn expire_by_executor(db: &mut Db) {
    let s = &*db.store;
    let p = pipeline(s, "repo", "ci").await;
    let run = queued_run(s, p.id, (0..3).map(|i| job(i, &[], &[])).collect()).await;
    lease(s, "builtin", "b0", NOW).await.expect("job 0");
    lease(s, "remote", "r1", NOW).await.expect("job 1");
    lease(s, "builtin", "b2", NOW).await.expect("job 2");
    // After a restart the built-in executor's leases are void, deadline or not.
    let expired = s
        .expire_leases(NOW + 1, Some("builtin"), 3)
        .await
        .expect("expire");
    let idx: Vec<_> = expired.iter().map(|e| (e.job.idx, e.job.state)).collect();
    assert_eq!(idx, [(0, JobState::Queued), (2, JobState::Queued)]);
    assert!(expired.iter().all(|e| e.executor == "builtin"));
    assert_eq!(
        s.heartbeat("r1", NOW + 2, TTL).await.expect("hb"),
        LeaseCheck::Ok
    );
    assert_eq!(job_of(s, run.id, 1).await.state, JobState::Running);
}

async fn transitions(db: &mut Db) {
    let s = &*db.store;
    let p = pipeline(s, "repo", "ci").await;
    let run = create(s, new_run(p.id, (0..5).map(|i| job(i, &[], &[])).collect())).await;
    let t = |idx, state, message: Option<&str>| JobTransition {
        idx,
        state,
        message: message.map(str::to_owned),
    };
    s.transition_jobs(
        run.id,
        &[
            t(0, JobState::Queued, None),
            t(1, JobState::Skipped, Some("skipped: needs `build` failed")),
            t(2, JobState::Cancelled, Some("cancelled")),
            t(3, JobState::Queued, None),
        ],
        NOW + 1,
    )
    .await
    .expect("transition");
    lease(s, "e", "l0", NOW + 2).await.expect("job 0");
    // Each of these is no longer in the state it expects: nothing changes.
    s.transition_jobs(
        run.id,
        &[
            t(0, JobState::Skipped, Some("too late")),
            t(1, JobState::Queued, None),
            t(3, JobState::Queued, Some("queued twice")),
            t(4, JobState::Pending, None),
            t(4, JobState::Running, None),
        ],
        NOW + 3,
    )
    .await
    .expect("transition");
    // And a queued job can go back to pending.
    s.transition_jobs(run.id, &[t(3, JobState::Pending, None)], NOW + 4)
        .await
        .expect("transition");
    let got: Vec<_> = s
        .jobs(run.id)
        .await
        .expect("jobs")
        .into_iter()
        .map(|j| (j.idx, j.state, j.message, j.queued_at, j.finished_at))
        .collect();
    assert_eq!(
        got,
        [
            (0, JobState::Running, None, Some(NOW + 1), None),
            (
                1,
                JobState::Skipped,
                Some("skipped: needs `build` failed".into()),
                None,
                Some(NOW + 1)
            ),
            (
                2,
                JobState::Cancelled,
                Some("cancelled".into()),
                None,
                Some(NOW + 1)
            ),
            (3, JobState::Pending, None, Some(NOW + 1), None),
            (4, JobState::Pending, None, None, None),
        ]
    );
}

async fn cancel_with_running_jobs(db: &mut Db) {
    let s = &*db.store;
    let p = pipeline(s, "repo", "ci").await;
    let run = create(s, new_run(p.id, (0..3).map(|i| job(i, &[], &[])).collect())).await;
    let jobs = s.jobs(run.id).await.expect("jobs");
    queue(s, run.id, &jobs[..2]).await;
    lease(s, "e", "l0", NOW).await.expect("job 0");
    let after = s.request_cancel(run.id, NOW + 7).await.expect("cancel");
    assert!(after.cancel_requested);
    assert_eq!(after.state, RunState::Running, "a job still runs");
    let got: Vec<_> = s
        .jobs(run.id)
        .await
        .expect("jobs")
        .into_iter()
        .map(|j| (j.state, j.cancel_requested, j.finished_at))
        .collect();
    assert_eq!(
        got,
        [
            (JobState::Running, true, None),
            (JobState::Cancelled, false, Some(NOW + 7)),
            (JobState::Cancelled, false, Some(NOW + 7)),
        ]
    );
    assert_eq!(
        s.heartbeat("l0", NOW + 8, TTL).await.expect("hb"),
        LeaseCheck::Cancelled
    );
    assert!(
        lease(s, "e", "l1", NOW + 9).await.is_none(),
        "cancelled jobs are not handed out"
    );
    let done = s
        .finish_job("l0", finish(JobState::Cancelled, "cancelled"), NOW + 10)
        .await
        .expect("finish");
    assert_eq!(done.state, JobState::Cancelled);

    // A cancel-requested job whose lease expires is cancelled, not requeued.
    let run2 = queued_run(s, p.id, vec![job(0, &[], &[])]).await;
    lease(s, "e", "m0", NOW).await.expect("job");
    s.request_cancel(run2.id, NOW + 1).await.expect("cancel");
    let expired = s
        .expire_leases(NOW + TTL + 1, None, 5)
        .await
        .expect("expire");
    assert_eq!(expired.len(), 1);
    assert_eq!(expired[0].job.state, JobState::Cancelled);
}

async fn cancel_with_nothing_running(db: &mut Db) {
    let s = &*db.store;
    let p = pipeline(s, "repo", "ci").await;
    let run = create(s, new_run(p.id, vec![job(0, &[], &[]), job(1, &[0], &[])])).await;
    let after = s.request_cancel(run.id, NOW + 3).await.expect("cancel");
    assert_eq!(
        (after.state, after.finished_at, after.cancel_requested),
        (RunState::Cancelled, Some(NOW + 3), true)
    );
    assert!(
        s.jobs(run.id)
            .await
            .expect("jobs")
            .iter()
            .all(|j| j.state == JobState::Cancelled)
    );
    // Cancelling a finished run changes nothing.
    let again = s.request_cancel(run.id, NOW + 9).await.expect("cancel");
    assert_eq!(again, after);
    assert!(matches!(
        s.request_cancel(9999, NOW).await,
        Err(StoreError::NotFound(_))
    ));
}

async fn approvals(db: &mut Db) {
    let s = &*db.store;
    let p = pipeline(s, "repo", "deploy").await;
    let run = create(s, new_run(p.id, (0..3).map(|i| job(i, &[], &[])).collect())).await;
    let hold = |idx| JobTransition {
        idx,
        state: JobState::Waiting,
        message: Some("waiting for approval to deploy to production".into()),
    };
    s.transition_jobs(run.id, &[hold(0), hold(1), hold(2)], NOW + 1)
        .await
        .expect("hold");
    let held = job_of(s, run.id, 0).await;
    assert_eq!(
        (held.state, held.queued_at, held.finished_at, held.approval),
        (JobState::Waiting, None, None, None)
    );
    assert!(
        lease(s, "e", "l0", NOW + 2).await.is_none(),
        "a job waiting for approval is not handed out"
    );
    // Only a pending job starts waiting.
    s.transition_jobs(run.id, &[hold(0)], NOW + 2)
        .await
        .expect("transition");
    assert_eq!(job_of(s, run.id, 0).await.state, JobState::Waiting);

    let answer = |approved, by: &str, at| Approval {
        approved,
        by: by.into(),
        at,
    };
    // Approved: queued (and then handed out), the answer kept.
    let out = s
        .answer_approval(
            run.id,
            0,
            &answer(true, "alice", NOW + 3),
            Some("approved by alice"),
        )
        .await
        .expect("approve");
    let ApprovalOutcome::Answered(job0) = out else {
        panic!("job 0 was waiting: {out:?}");
    };
    assert_eq!(
        (job0.state, job0.queued_at, job0.message.as_deref()),
        (JobState::Queued, Some(NOW + 3), Some("approved by alice"))
    );
    assert_eq!(job0.approval, Some(answer(true, "alice", NOW + 3)));
    // Rejected: failed at once, with the message.
    let out = s
        .answer_approval(
            run.id,
            1,
            &answer(false, "bob", NOW + 4),
            Some("rejected by bob"),
        )
        .await
        .expect("reject");
    let ApprovalOutcome::Answered(job1) = out else {
        panic!("job 1 was waiting: {out:?}");
    };
    assert_eq!(
        (job1.state, job1.finished_at, job1.message.as_deref()),
        (JobState::Failed, Some(NOW + 4), Some("rejected by bob"))
    );
    assert_eq!(job1.approval, Some(answer(false, "bob", NOW + 4)));
    // A second answer changes nothing and shows the first.
    for (idx, approved) in [(0, false), (1, true), (0, true)] {
        let out = s
            .answer_approval(run.id, idx, &answer(approved, "carol", NOW + 5), None)
            .await
            .expect("answer again");
        let ApprovalOutcome::NotWaiting(job) = out else {
            panic!("job {idx} is no longer waiting: {out:?}");
        };
        assert_ne!(job.approval.map(|a| a.by), Some("carol".to_string()));
    }
    assert_eq!(
        lease(s, "e", "l0", NOW + 6)
            .await
            .map(|l| (l.job.idx, l.job.approval)),
        Some((0, Some(answer(true, "alice", NOW + 3))))
    );
    assert!(matches!(
        s.answer_approval(run.id, 9, &answer(true, "alice", NOW), None)
            .await,
        Err(StoreError::NotFound(_))
    ));
    // Cancelling the run cancels a job that still waits.
    let after = s.request_cancel(run.id, NOW + 7).await.expect("cancel");
    assert_eq!(after.state, RunState::Running, "job 0 still runs");
    let waiting = job_of(s, run.id, 2).await;
    assert_eq!(
        (waiting.state, waiting.finished_at, waiting.approval),
        (JobState::Cancelled, Some(NOW + 7), None)
    );
    // The answers survive a restart.
    db.reopen().await;
    assert_eq!(
        job_of(&*db.store, run.id, 1).await.approval,
        Some(answer(false, "bob", NOW + 4))
    );
}

async fn run_states_and_lookups(db: &mut Db) {
    let s = &*db.store;
    let p = pipeline(s, "repo", "ci").await;
    let runs: Vec<_> = {
        let mut v = Vec::new();
        for _ in 0..5 {
            v.push(create(s, new_run(p.id, vec![])).await);
        }
        v
    };
    s.set_run_state(runs[0].id, RunState::Running, NOW + 1)
        .await
        .expect("state");
    s.set_run_state(runs[0].id, RunState::Running, NOW + 2)
        .await
        .expect("state");
    s.set_run_state(runs[0].id, RunState::Succeeded, NOW + 3)
        .await
        .expect("state");
    s.set_run_state(runs[1].id, RunState::Failed, NOW + 4)
        .await
        .expect("state");
    s.set_run_state(runs[2].id, RunState::Running, NOW + 5)
        .await
        .expect("state");
    s.set_run_state(runs[3].id, RunState::Cancelled, NOW + 6)
        .await
        .expect("state");
    assert!(matches!(
        s.set_run_state(9999, RunState::Running, NOW).await,
        Err(StoreError::NotFound(_))
    ));
    let r0 = s.run(runs[0].id).await.expect("run");
    assert_eq!(
        (r0.state, r0.started_at, r0.finished_at),
        (RunState::Succeeded, Some(NOW + 1), Some(NOW + 3))
    );
    let active: Vec<_> = s
        .active_runs()
        .await
        .expect("active")
        .iter()
        .map(|r| r.number)
        .collect();
    assert_eq!(active, [3, 5], "not final, oldest first");
    for (before, expect) in [
        (1, None),
        (2, Some(1)),
        (3, Some(2)),
        (5, Some(4)),
        (6, Some(4)),
    ] {
        let prev = s
            .previous_finished_run(p.id, before)
            .await
            .expect("previous");
        assert_eq!(prev.map(|r| r.number), expect, "before #{before}");
    }
}

async fn list_runs_pages_and_filters(db: &mut Db) {
    let s = &*db.store;
    let a_ci = pipeline(s, "a", "ci").await;
    let a_rel = pipeline(s, "a", "release").await;
    let b_ci = pipeline(s, "b", "ci").await;
    let mut ids = Vec::new();
    for i in 0..30 {
        let p = [a_ci.id, a_rel.id, b_ci.id][i % 3];
        let run = create(s, new_run(p, vec![])).await;
        if i % 5 == 0 {
            s.set_run_state(run.id, RunState::Failed, NOW)
                .await
                .expect("state");
        }
        ids.push((run.id, p, i % 5 == 0));
    }
    let list = async |filter: RunFilter| -> Vec<i64> {
        s.list_runs(&filter)
            .await
            .expect("list")
            .iter()
            .map(|r| r.id)
            .collect()
    };
    let expect = |pred: &dyn Fn(i64, bool) -> bool| -> Vec<i64> {
        ids.iter()
            .rev()
            .filter(|(_, p, f)| pred(*p, *f))
            .map(|(id, _, _)| *id)
            .collect()
    };
    // Pages of 7, following the cursor, give every run once, newest first.
    let mut paged = Vec::new();
    let mut before = None;
    loop {
        let page = list(RunFilter {
            before,
            limit: 7,
            ..RunFilter::default()
        })
        .await;
        assert!(page.len() <= 7);
        let Some(&last) = page.last() else { break };
        paged.extend(page);
        before = Some(last);
    }
    assert_eq!(paged, expect(&|_, _| true));
    assert_eq!(
        list(RunFilter::default()).await,
        expect(&|_, _| true),
        "limit 0 is the default page"
    );
    let repo = |r: &str| Some(r.to_owned());
    for (filter, want) in [
        (
            RunFilter {
                repo: repo("a"),
                ..RunFilter::default()
            },
            expect(&|p, _| p != b_ci.id),
        ),
        (
            RunFilter {
                repo: repo("a"),
                pipeline: repo("ci"),
                ..RunFilter::default()
            },
            expect(&|p, _| p == a_ci.id),
        ),
        (
            RunFilter {
                pipeline: repo("ci"),
                ..RunFilter::default()
            },
            expect(&|p, _| p != a_rel.id),
        ),
        (
            RunFilter {
                states: vec![RunState::Failed],
                ..RunFilter::default()
            },
            expect(&|_, f| f),
        ),
        (
            RunFilter {
                states: vec![RunState::Queued, RunState::Failed],
                repo: repo("b"),
                ..RunFilter::default()
            },
            expect(&|p, _| p == b_ci.id),
        ),
        (
            RunFilter {
                repo: repo("nope"),
                ..RunFilter::default()
            },
            vec![],
        ),
        (
            RunFilter {
                repo: repo("b"),
                limit: 2,
                ..RunFilter::default()
            },
            expect(&|p, _| p == b_ci.id)[..2].to_vec(),
        ),
    ] {
        assert_eq!(list(filter.clone()).await, want, "{filter:?}");
    }
}

async fn many_runs(db: &mut Db) {
    // Enough runs that a missing index or a scan per page would show; the 100,000-run
    // timing lives in the benchmark, this checks correctness at volume.
    const RUNS: i64 = 2_000;
    let p = pipeline(&*db.store, "big", "ci").await;
    let mut tasks = Vec::new();
    for w in 0..4 {
        let store = db.store.clone();
        tasks.push(tokio::spawn(async move {
            for _ in 0..RUNS / 4 {
                store
                    .create_run(new_run(p.id, vec![job(0, &[], &[])]), NOW + w)
                    .await
                    .expect("create")
                    .expect("created");
            }
        }));
    }
    for t in tasks {
        t.await.expect("task");
    }
    let mut seen = 0;
    let mut numbers = BTreeSet::new();
    let mut before = None;
    loop {
        let page = db
            .store
            .list_runs(&RunFilter {
                repo: Some("big".into()),
                before,
                limit: 500,
                ..RunFilter::default()
            })
            .await
            .expect("list");
        let Some(last) = page.last() else { break };
        before = Some(last.id);
        seen += page.len();
        numbers.extend(page.iter().map(|r| r.number));
    }
    assert_eq!(seen, RUNS as usize);
    assert_eq!(numbers, (1..=RUNS).collect::<BTreeSet<_>>());
    let stats = db.store.queue_stats().await.expect("stats");
    assert_eq!(stats.queued_runs, RUNS);
}

async fn artifacts(db: &mut Db) {
    let s = &*db.store;
    let p = pipeline(s, "repo", "ci").await;
    let run = create(s, new_run(p.id, vec![job(0, &[], &[]), job(1, &[], &[])])).await;
    let row = |job_idx, path: &str, digest: &str, size| ArtifactRow {
        run_id: run.id,
        job_idx,
        path: path.into(),
        digest: digest.into(),
        size,
    };
    s.add_artifacts(&[
        row(1, "dist/app", "aa", 10),
        row(0, "z.txt", "bb", 2),
        row(0, "a.txt", "cc", 3),
    ])
    .await
    .expect("add");
    // An upload retried after a crash replaces its rows.
    s.add_artifacts(&[row(1, "dist/app", "dd", 11)])
        .await
        .expect("add again");
    assert_eq!(
        s.artifacts(run.id).await.expect("list"),
        [
            row(0, "a.txt", "cc", 3),
            row(0, "z.txt", "bb", 2),
            row(1, "dist/app", "dd", 11)
        ]
    );
    let bad = s.add_artifacts(&[row(7, "x", "ee", 1)]).await;
    assert!(matches!(bad, Err(StoreError::NotFound(_))), "{bad:?}");
    assert_eq!(
        s.artifacts(run.id).await.expect("list").len(),
        3,
        "nothing of a failed batch stays"
    );
}

fn cache_entry(repo: &str, key: &str, digests: &[&str], size: i64) -> NewCacheEntry {
    NewCacheEntry {
        repo: repo.into(),
        key: key.into(),
        manifest_json: format!(r#"{{"job":"build","files":{{}},"key":"{key}"}}"#),
        digests: digests.iter().map(|d| (*d).to_owned()).collect(),
        files: digests.len() as i64,
        size,
        run_id: None,
    }
}

/// (repo, key, last used) of the listed entries, in listing order.
async fn cache_list(s: &dyn Store, repo: Option<&str>) -> Vec<(String, String, Millis)> {
    s.list_caches(repo)
        .await
        .expect("list caches")
        .into_iter()
        .map(|e| (e.repo, e.key, e.last_used_at))
        .collect()
}

async fn caches_first_writer_wins_per_repository(db: &mut Db) {
    let s = &*db.store;
    let p = pipeline(s, "app", "ci").await;
    repo(s, "other").await;
    let run = create(s, new_run(p.id, vec![job(0, &[], &[])])).await;
    let mut first = cache_entry("app", "deps-1", &["aa", "bb", "aa"], 30);
    first.run_id = Some(run.id);
    assert!(s.save_cache(&first, NOW).await.expect("save"));
    // A second save of the key keeps the first entry.
    let second = cache_entry("app", "deps-1", &["cc"], 5);
    assert!(!s.save_cache(&second, NOW + 1).await.expect("save again"));
    // Another repository has keys of its own.
    assert!(
        s.save_cache(&cache_entry("other", "deps-1", &["cc"], 5), NOW + 2)
            .await
            .expect("save in other")
    );
    let missing = s.save_cache(&cache_entry("nope", "k", &[], 0), NOW).await;
    assert!(
        matches!(missing, Err(StoreError::NotFound(_))),
        "{missing:?}"
    );

    let got = s
        .use_cache("app", "deps-1", NOW + 10)
        .await
        .expect("use")
        .expect("an entry");
    assert_eq!(
        (
            got.repo.as_str(),
            got.key.as_str(),
            got.manifest_json.as_str(),
            got.files,
            got.size,
            got.run_id,
            got.created_at,
            got.last_used_at
        ),
        (
            "app",
            "deps-1",
            first.manifest_json.as_str(),
            3,
            30,
            Some(run.id),
            NOW,
            NOW + 10
        )
    );
    assert_eq!(s.use_cache("app", "deps-2", NOW).await.expect("use"), None);
    assert_eq!(s.use_cache("nope", "deps-1", NOW).await.expect("use"), None);
    assert!(s.cache_has_blob("app", "aa").await.expect("has"));
    assert!(s.cache_has_blob("app", "bb").await.expect("has"));
    assert!(!s.cache_has_blob("app", "cc").await.expect("has"));
    assert!(s.cache_has_blob("other", "cc").await.expect("has"));
    assert!(!s.cache_has_blob("other", "aa").await.expect("has"));

    assert_eq!(
        cache_list(s, None).await,
        [
            ("app".into(), "deps-1".into(), NOW + 10),
            ("other".into(), "deps-1".into(), NOW + 2)
        ]
    );
    assert_eq!(
        cache_list(s, Some("other")).await,
        [("other".into(), "deps-1".into(), NOW + 2)]
    );
    assert!(cache_list(s, Some("nope")).await.is_empty());

    // Deleting one key, then all of a repository; the other repository keeps its own.
    assert!(
        s.save_cache(&cache_entry("app", "tools", &["dd"], 1), NOW)
            .await
            .expect("save")
    );
    let gone = s.delete_caches("app", Some("tools")).await.expect("delete");
    assert_eq!(
        gone.iter().map(|e| e.key.as_str()).collect::<Vec<_>>(),
        ["tools"]
    );
    assert!(!s.cache_has_blob("app", "dd").await.expect("has"));
    let gone = s.delete_caches("app", None).await.expect("delete all");
    assert_eq!(
        gone.iter().map(|e| e.key.as_str()).collect::<Vec<_>>(),
        ["deps-1"]
    );
    assert!(
        s.delete_caches("app", None)
            .await
            .expect("again")
            .is_empty()
    );
    assert!(matches!(
        s.delete_caches("nope", None).await,
        Err(StoreError::NotFound(_))
    ));
    assert_eq!(
        cache_list(s, None).await,
        [("other".into(), "deps-1".into(), NOW + 2)]
    );
    // A deleted key can be saved again.
    assert!(
        s.save_cache(&second, NOW + 20)
            .await
            .expect("save after delete")
    );
    db.reopen().await;
    assert_eq!(cache_list(&*db.store, Some("app")).await.len(), 1);
}

async fn caches_evict_least_recently_used(db: &mut Db) {
    let s = &*db.store;
    repo(s, "app").await;
    repo(s, "lib").await;
    for (i, (repo, key)) in [("app", "a"), ("lib", "b"), ("app", "c"), ("app", "d")]
        .into_iter()
        .enumerate()
    {
        let entry = cache_entry(repo, key, &[key], 10);
        assert!(s.save_cache(&entry, NOW + i as i64).await.expect("save"));
    }
    // Under the limit: nothing goes.
    assert!(s.evict_caches(40).await.expect("evict").is_empty());
    // `a` was used last, so `b` and `c` go first.
    s.use_cache("app", "a", NOW + 100).await.expect("use");
    let evicted: Vec<String> = s
        .evict_caches(25)
        .await
        .expect("evict")
        .into_iter()
        .map(|e| format!("{}/{}", e.repo, e.key))
        .collect();
    assert_eq!(evicted, ["lib/b", "app/c"]);
    assert_eq!(
        cache_list(s, None).await,
        [
            ("app".into(), "a".into(), NOW + 100),
            ("app".into(), "d".into(), NOW + 3)
        ]
    );
    assert!(!s.cache_has_blob("lib", "b").await.expect("has"));
    let evicted = s.evict_caches(0).await.expect("evict all");
    assert_eq!(evicted.len(), 2);
    assert!(cache_list(s, None).await.is_empty());
}

async fn cache_blobs_in_use(db: &mut Db) {
    let s = &*db.store;
    let p = pipeline(s, "app", "ci").await;
    let run = create(s, new_run(p.id, vec![job(0, &[], &[])])).await;
    s.add_artifacts(&[ArtifactRow {
        run_id: run.id,
        job_idx: 0,
        path: "out/app".into(),
        digest: "art".into(),
        size: 1,
    }])
    .await
    .expect("artifacts");
    s.save_cache(&cache_entry("app", "k", &["shared", "only"], 2), NOW)
        .await
        .expect("save");
    s.save_cache(&cache_entry("app", "k2", &["shared"], 1), NOW)
        .await
        .expect("save");
    let ask = |list: &[&str]| list.iter().map(|d| (*d).to_owned()).collect::<Vec<_>>();
    let used = s
        .blobs_in_use(&ask(&["art", "shared", "only", "none"]))
        .await
        .expect("in use");
    assert_eq!(
        used,
        BTreeSet::from(["art".into(), "shared".into(), "only".into()])
    );
    s.delete_caches("app", Some("k")).await.expect("delete");
    let used = s
        .blobs_in_use(&ask(&["art", "shared", "only"]))
        .await
        .expect("in use");
    assert_eq!(used, BTreeSet::from(["art".into(), "shared".into()]));
}

async fn tokens(db: &mut Db) {
    let s = &*db.store;
    let admin = s
        .create_token("admin", "admin", "hash-1", NOW)
        .await
        .expect("token");
    assert_eq!(
        (
            admin.name.as_str(),
            admin.kind.as_str(),
            admin.created_at,
            admin.revoked_at
        ),
        ("admin", "admin", NOW, None)
    );
    assert_eq!(
        s.token_by_hash("hash-1").await.expect("lookup"),
        Some(admin.clone())
    );
    assert_eq!(s.token_by_hash("nope").await.expect("lookup"), None);
    let dup = s.create_token("admin", "admin", "hash-2", NOW).await;
    assert!(matches!(dup, Err(StoreError::Conflict(_))), "{dup:?}");
    // Rotation: revoke, then the name is free again.
    s.revoke_token("admin", NOW + 1).await.expect("revoke");
    assert_eq!(s.token_by_hash("hash-1").await.expect("lookup"), None);
    let rotated = s
        .create_token("admin", "admin", "hash-2", NOW + 2)
        .await
        .expect("token");
    s.create_token("build-1", "agent", "hash-3", NOW + 3)
        .await
        .expect("token");
    let all: Vec<_> = s
        .list_tokens()
        .await
        .expect("list")
        .into_iter()
        .map(|t| (t.name, t.hash, t.revoked_at))
        .collect();
    assert_eq!(
        all,
        [
            ("admin".into(), "hash-1".into(), Some(NOW + 1)),
            ("admin".into(), "hash-2".into(), None),
            ("build-1".into(), "hash-3".into(), None),
        ]
    );
    assert_eq!(
        s.token_by_hash("hash-2").await.expect("lookup"),
        Some(rotated)
    );
    assert!(matches!(
        s.revoke_token("ghost", NOW).await,
        Err(StoreError::NotFound(_))
    ));
}

async fn users(db: &mut Db) {
    let s = &*db.store;
    let alice = s
        .create_user("alice", "hash-a", Role::Admin, NOW)
        .await
        .expect("create");
    assert_eq!(
        (
            alice.name.as_str(),
            alice.password_hash.as_str(),
            alice.role,
            alice.created_at,
            alice.updated_at,
            alice.disabled_at
        ),
        ("alice", "hash-a", Role::Admin, NOW, NOW, None)
    );
    assert!(
        !format!("{alice:?}").contains("hash-a"),
        "Debug hides the password hash"
    );
    let dup = s.create_user("alice", "hash-x", Role::Viewer, NOW).await;
    assert!(matches!(dup, Err(StoreError::Conflict(_))), "{dup:?}");
    s.create_user("bob", "hash-b", Role::Viewer, NOW + 1)
        .await
        .expect("create");
    assert_eq!(s.user_by_name("alice").await.expect("by name"), alice);
    let missing = s.user_by_name("carol").await;
    assert!(
        matches!(missing, Err(StoreError::NotFound(_))),
        "{missing:?}"
    );

    let bob = s
        .set_user_password("bob", "hash-b2", NOW + 2)
        .await
        .expect("passwd");
    assert_eq!(
        (bob.password_hash.as_str(), bob.updated_at, bob.created_at),
        ("hash-b2", NOW + 2, NOW + 1)
    );
    let bob = s
        .set_user_role("bob", Role::Admin, NOW + 3)
        .await
        .expect("role");
    assert_eq!((bob.role, bob.updated_at), (Role::Admin, NOW + 3));
    // Disabling twice keeps the first time; enabling clears it.
    let bob = s
        .set_user_disabled("bob", true, NOW + 4)
        .await
        .expect("disable");
    assert_eq!(bob.disabled_at, Some(NOW + 4));
    let bob = s
        .set_user_disabled("bob", true, NOW + 5)
        .await
        .expect("disable again");
    assert_eq!(bob.disabled_at, Some(NOW + 4));
    assert_eq!(
        s.user_by_name("bob").await.expect("by name").disabled_at,
        Some(NOW + 4),
        "a disabled user is still found (to refuse its login)"
    );
    let bob = s
        .set_user_disabled("bob", false, NOW + 6)
        .await
        .expect("enable");
    assert_eq!(bob.disabled_at, None);

    let names: Vec<_> = s
        .list_users()
        .await
        .expect("list")
        .into_iter()
        .map(|u| (u.name, u.role))
        .collect();
    assert_eq!(
        names,
        [("alice".into(), Role::Admin), ("bob".into(), Role::Admin)]
    );

    for missing in [
        s.set_user_password("carol", "h", NOW).await.map(drop),
        s.set_user_role("carol", Role::Viewer, NOW).await.map(drop),
        s.set_user_disabled("carol", true, NOW).await.map(drop),
        s.delete_user("carol").await,
    ] {
        assert!(
            matches!(missing, Err(StoreError::NotFound(_))),
            "{missing:?}"
        );
    }
    s.delete_user("alice").await.expect("delete");
    assert!(matches!(
        s.user_by_name("alice").await,
        Err(StoreError::NotFound(_))
    ));
    // The name is free again, with a new id.
    let again = s
        .create_user("alice", "hash-a2", Role::Viewer, NOW + 7)
        .await
        .expect("create again");
    assert_ne!(again.id, alice.id);

    // Accounts survive a restart.
    db.reopen().await;
    let after = db.store.user_by_name("alice").await.expect("by name");
    assert_eq!(after, again);
}

async fn queue_stats(db: &mut Db) {
    let s = &*db.store;
    assert_eq!(s.queue_stats().await.expect("stats"), QueueStats::default());
    let p = pipeline(s, "repo", "ci").await;
    let r1 = queued_run(s, p.id, (0..3).map(|i| job(i, &[], &[])).collect()).await;
    create(s, new_run(p.id, vec![job(0, &[], &[])])).await;
    let r3 = create(s, new_run(p.id, vec![])).await;
    s.set_run_state(r3.id, RunState::Failed, NOW)
        .await
        .expect("state");
    let leased = lease(s, "e", "l", NOW).await.expect("a job");
    assert_eq!((leased.job.run_id, leased.job.idx), (r1.id, 0));
    assert_eq!(
        s.queue_stats().await.expect("stats"),
        QueueStats {
            queued_runs: 1,
            queued_jobs: 2,
            running_jobs: 1,
            runs_by_state: [("failed".to_owned(), 1)].into_iter().collect(),
        }
    );
}

async fn restart_keeps_everything(db: &mut Db) {
    let p = pipeline(&*db.store, "repo", "ci").await;
    let run = queued_run(
        &*db.store,
        p.id,
        vec![job(0, &[], &[("os", "linux")]), job(1, &[0], &[])],
    )
    .await;
    let leased = db
        .store
        .lease_next(
            "builtin",
            &labels(&[("os", "linux")]),
            "before-restart",
            NOW,
            TTL,
        )
        .await
        .expect("lease")
        .expect("a job");
    db.store
        .create_token("admin", "admin", "h", NOW)
        .await
        .expect("token");
    db.store
        .set_ref_head(p.repo_id, "refs/heads/main", "abc")
        .await
        .expect("head");
    let jobs_before = db.store.jobs(run.id).await.expect("jobs");
    let run_before = db.store.run(run.id).await.expect("run");

    db.reopen().await;
    let s = &*db.store;
    assert_eq!(s.run(run.id).await.expect("run"), run_before);
    assert_eq!(s.jobs(run.id).await.expect("jobs"), jobs_before);
    assert_eq!(
        s.job_by_lease("before-restart").await.expect("job"),
        leased.job
    );
    assert!(s.token_by_hash("h").await.expect("token").is_some());
    assert_eq!(
        s.ref_heads(p.repo_id).await.expect("heads"),
        labels(&[("refs/heads/main", "abc")])
    );
    // Numbering continues, the lease can be expired as a restarted server does.
    assert_eq!(create(s, new_run(p.id, vec![])).await.number, 2);
    let expired = s
        .expire_leases(NOW + 1, Some("builtin"), 3)
        .await
        .expect("expire");
    assert_eq!(expired.len(), 1);
    assert_eq!(
        (expired[0].job.state, expired[0].job.attempt),
        (JobState::Queued, 1)
    );
}
