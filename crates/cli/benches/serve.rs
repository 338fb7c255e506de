//! Benchmark of `gantry serve` as users run it: the real binary, its built-in executor on
//! the local backend, SQLite under a temporary data directory, a real bare git repository.
//!
//! `cargo bench -p gantry --bench serve` (or `cargo xtask bench`) prints, as lines:
//! - idle RSS of the server process (with its built-in executor) after start, and again
//!   after all the work below (target: under 30 MB);
//! - webhook received → first job running: a commit is pushed, a GitLab-style push hook is
//!   posted, and the time from sending the request to the job's `started_at` (stamped by
//!   the server when the executor leases it) is taken per push (target: median under 50 ms);
//! - 1,000 runs triggered at once (8 requests in flight) drain completely: every run
//!   succeeded, every job ran in exactly one attempt, none is missing;
//! - listing runs through the API (`GET /api/runs?limit=50`, newest page and a deep page)
//!   with 100,000 runs in the database (filled through `gantry_store` while the server is
//!   stopped), p50 and p99 (target: p99 under 20 ms).
#![allow(
    clippy::print_stdout,
    clippy::print_stderr,
    clippy::unwrap_used,
    reason = "a benchmark reports on stdout and may abort"
)]

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use serde_json::{Value, json};

const PUSHES: usize = 30;
const DRAIN_RUNS: usize = 1_000;
const LIST_RUNS: usize = 100_000;
const LIST_QUERIES: usize = 500;

const PIPELINE: &str = "\
name: bench
on:
  push: [main]
  manual: true
jobs:
  hello:
    script:
      - \"true\"
";

struct Serve {
    child: Child,
    url: String,
    token: String,
}

impl Drop for Serve {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn git(dir: &Path, args: &[&str]) -> String {
    let out = Command::new("git")
        .args(args)
        .current_dir(dir)
        .env("GIT_AUTHOR_NAME", "bench")
        .env("GIT_AUTHOR_EMAIL", "bench@example.com")
        .env("GIT_COMMITTER_NAME", "bench")
        .env("GIT_COMMITTER_EMAIL", "bench@example.com")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "git {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap().trim().to_owned()
}

/// Starts `gantry serve` and waits until it answers; `token` is read from its first-start
/// output, or passed in for a restart.
fn start(data: &Path, token: Option<String>) -> Serve {
    let port = free_port();
    let mut child = Command::new(env!("CARGO_BIN_EXE_gantry"))
        .args(["serve", "--data"])
        .arg(data)
        .args(["--listen", &format!("127.0.0.1:{port}")])
        .args(["--backend", "local", "--jobs", "2", "--poll-interval", "1h"])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // The first start prints the admin token on stderr; the rest of stderr is drained so
    // the server never blocks on a full pipe.
    let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
    let token = match token {
        Some(t) => t,
        None => lines
            .by_ref()
            .map_while(Result::ok)
            .find(|l| l.contains("GANTRY_TOKEN="))
            .and_then(|l| l.rsplit('=').next().map(str::to_owned))
            .expect("gantry serve printed no admin token"),
    };
    std::thread::spawn(move || lines.for_each(drop));
    let url = format!("http://127.0.0.1:{port}");
    let serve = Serve { child, url, token };
    let deadline = Instant::now() + Duration::from_secs(60);
    while reqwest::blocking_get(&format!("{}/api/health", serve.url)).is_none() {
        assert!(Instant::now() < deadline, "gantry serve did not answer");
        std::thread::sleep(Duration::from_millis(50));
    }
    serve
}

/// A tiny blocking HTTP helper on top of the async client, so the bench reads top-down.
mod reqwest {
    pub fn blocking_get(url: &str) -> Option<String> {
        super::rt().block_on(async {
            let r = ::reqwest::get(url).await.ok()?;
            r.status().is_success().then_some(())?;
            r.text().await.ok()
        })
    }
}

fn rt() -> &'static tokio::runtime::Runtime {
    static RT: std::sync::OnceLock<tokio::runtime::Runtime> = std::sync::OnceLock::new();
    RT.get_or_init(|| {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap()
    })
}

impl Serve {
    fn client(&self) -> ::reqwest::Client {
        ::reqwest::Client::new()
    }

    async fn get(&self, client: &::reqwest::Client, path: &str) -> Value {
        let r = client
            .get(format!("{}{path}", self.url))
            .bearer_auth(&self.token)
            .send()
            .await
            .unwrap();
        assert!(r.status().is_success(), "GET {path}: {}", r.status());
        r.json().await.unwrap()
    }

    async fn post(&self, client: &::reqwest::Client, path: &str, body: Value) -> Value {
        let r = client
            .post(format!("{}{path}", self.url))
            .bearer_auth(&self.token)
            .json(&body)
            .send()
            .await
            .unwrap();
        let status = r.status();
        let text = r.text().await.unwrap();
        assert!(status.is_success(), "POST {path}: {status}: {text}");
        serde_json::from_str(&text).unwrap()
    }

    fn rss_kib(&self) -> u64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.child.id())).unwrap();
        status
            .lines()
            .find_map(|l| l.strip_prefix("VmRSS:"))
            .and_then(|v| v.split_whitespace().next())
            .and_then(|v| v.parse().ok())
            .unwrap()
    }
}

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64
}

fn parse_ms(v: &Value) -> Option<i64> {
    let t =
        time::OffsetDateTime::parse(v.as_str()?, &time::format_description::well_known::Rfc3339)
            .ok()?;
    Some((t.unix_timestamp_nanos() / 1_000_000) as i64)
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

fn main() {
    if std::env::args().any(|a| a == "--list") {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let bare = tmp.path().join("bench.git");
    let work = tmp.path().join("work");
    std::fs::create_dir_all(&work).unwrap();
    git(
        tmp.path(),
        &["init", "-q", "--bare", "-b", "main", bare.to_str().unwrap()],
    );
    git(&work, &["init", "-q", "-b", "main"]);
    std::fs::write(work.join("gantry.yml"), PIPELINE).unwrap();
    git(&work, &["add", "."]);
    git(&work, &["commit", "-q", "-m", "pipeline"]);
    git(&work, &["push", "-q", bare.to_str().unwrap(), "main"]);

    let serve = start(&data, None);
    std::thread::sleep(Duration::from_secs(3));
    let idle_start = serve.rss_kib();
    let client = serve.client();
    rt().block_on(serve.post(
        &client,
        "/api/repos",
        json!({"name": "bench", "url": bare.to_str().unwrap(), "webhook_secret": "s3cret"}),
    ));

    // Webhook → first job running.
    let mut latencies = Vec::new();
    for i in 0..PUSHES {
        let before = git(&work, &["rev-parse", "HEAD"]);
        std::fs::write(work.join("n.txt"), i.to_string()).unwrap();
        git(&work, &["add", "."]);
        git(&work, &["commit", "-q", "-m", &format!("push {i}")]);
        git(&work, &["push", "-q", bare.to_str().unwrap(), "main"]);
        let after = git(&work, &["rev-parse", "HEAD"]);
        let body = json!({
            "object_kind": "push", "ref": "refs/heads/main", "before": before, "after": after,
            "user_username": "bench", "project": {"git_http_url": bare.to_str().unwrap()},
        });
        let latency = rt().block_on(async {
            let sent = now_ms();
            let r = client
                .post(format!("{}/hooks/bench", serve.url))
                .header("X-Gitlab-Event", "Push Hook")
                .header("X-Gitlab-Token", "s3cret")
                .header("X-Gitlab-Event-UUID", format!("bench-{i}"))
                .json(&body)
                .send()
                .await
                .unwrap();
            let status = r.status();
            let v: Value = r.json().await.unwrap();
            assert!(status.is_success(), "webhook: {status}: {v}");
            let id = v["runs"][0]["id"]
                .as_i64()
                .expect("the webhook started a run");
            loop {
                let run = serve.get(&client, &format!("/api/runs/{id}")).await;
                if let Some(started) = parse_ms(&run["jobs"][0]["started_at"]) {
                    return started - sent;
                }
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
        });
        latencies.push(latency as f64);
    }
    latencies.sort_by(f64::total_cmp);
    println!(
        "webhook → first job running ({PUSHES} pushes): median {:.0} ms, p90 {:.0} ms, max {:.0} ms",
        percentile(&latencies, 0.5),
        percentile(&latencies, 0.9),
        latencies[latencies.len() - 1]
    );

    // 1,000 runs at once.
    let started = Instant::now();
    let ids: Vec<i64> = rt().block_on(async {
        let sem = std::sync::Arc::new(tokio::sync::Semaphore::new(8));
        let mut tasks = tokio::task::JoinSet::new();
        for _ in 0..DRAIN_RUNS {
            let permit = sem.clone().acquire_owned().await.unwrap();
            let (client, url, token) = (client.clone(), serve.url.clone(), serve.token.clone());
            tasks.spawn(async move {
                let r = client
                    .post(format!("{url}/api/repos/bench/trigger"))
                    .bearer_auth(token)
                    .json(&json!({}))
                    .send()
                    .await
                    .unwrap();
                let v: Value = r.json().await.unwrap();
                drop(permit);
                v[0]["id"]
                    .as_i64()
                    .or_else(|| v["runs"][0]["id"].as_i64())
                    .unwrap()
            });
        }
        let mut ids = Vec::new();
        while let Some(id) = tasks.join_next().await {
            ids.push(id.unwrap());
        }
        ids
    });
    let queued_in = started.elapsed();
    let (done, twice) = rt().block_on(async {
        loop {
            let mut finished = 0;
            let mut twice = 0;
            let mut before: Option<i64> = None;
            loop {
                let q = match before {
                    Some(b) => format!("/api/runs?repo=bench&limit=500&before={b}"),
                    None => "/api/runs?repo=bench&limit=500".to_owned(),
                };
                let page = serve.get(&client, &q).await;
                for r in page["runs"].as_array().unwrap() {
                    if ids.contains(&r["id"].as_i64().unwrap()) && r["state"] == "succeeded" {
                        finished += 1;
                    }
                }
                match page["next"].as_i64() {
                    Some(n) => before = Some(n),
                    None => break,
                }
            }
            if finished == ids.len() {
                for id in &ids {
                    let run = serve.get(&client, &format!("/api/runs/{id}")).await;
                    for job in run["jobs"].as_array().unwrap() {
                        if job["attempt"].as_i64() != Some(1) || job["state"] != "succeeded" {
                            twice += 1;
                        }
                    }
                }
                return (finished, twice);
            }
            assert!(
                started.elapsed() < Duration::from_secs(1800),
                "runs did not drain"
            );
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
    });
    let drained_in = started.elapsed();
    println!(
        "{DRAIN_RUNS} runs triggered at once: accepted in {:.1} s, all drained in {:.1} s \
         ({:.1} runs/s); {done} succeeded, {} missing, {twice} jobs not run exactly once",
        queued_in.as_secs_f64(),
        drained_in.as_secs_f64(),
        DRAIN_RUNS as f64 / drained_in.as_secs_f64(),
        DRAIN_RUNS - done,
    );
    std::thread::sleep(Duration::from_secs(3));
    let idle_after = serve.rss_kib();
    println!(
        "idle RSS of gantry serve with its built-in executor: {:.1} MB after start, {:.1} MB \
         after {} runs",
        idle_start as f64 / 1024.0,
        idle_after as f64 / 1024.0,
        DRAIN_RUNS + PUSHES
    );

    // 100,000 runs listed through the API.
    let token = serve.token.clone();
    drop(serve);
    fill_runs(&data, LIST_RUNS - DRAIN_RUNS - PUSHES);
    let serve = start(&data, Some(token));
    let client = serve.client();
    let (newest, deep) = rt().block_on(async {
        let first = serve.get(&client, "/api/runs?limit=50").await;
        let total_first = first["runs"].as_array().unwrap().len();
        assert_eq!(total_first, 50);
        let deep_id = first["runs"][0]["id"].as_i64().unwrap() - 80_000;
        let mut newest = Vec::new();
        let mut deep = Vec::new();
        for _ in 0..LIST_QUERIES {
            for (path, into) in [
                ("/api/runs?limit=50".to_owned(), &mut newest),
                (format!("/api/runs?limit=50&before={deep_id}"), &mut deep),
            ] {
                let t = Instant::now();
                let v = serve.get(&client, &path).await;
                into.push(t.elapsed().as_secs_f64() * 1000.0);
                assert_eq!(v["runs"].as_array().unwrap().len(), 50);
            }
        }
        (newest, deep)
    });
    for (name, mut v) in [("newest page", newest), ("page 80,000 runs deep", deep)] {
        v.sort_by(f64::total_cmp);
        println!(
            "GET /api/runs?limit=50 with {LIST_RUNS} runs, {name} ({LIST_QUERIES} requests): \
             p50 {:.2} ms, p99 {:.2} ms",
            percentile(&v, 0.5),
            percentile(&v, 0.99)
        );
    }
}

/// Adds `n` finished runs of the bench pipeline straight into the stopped server's store.
fn fill_runs(data: &Path, n: usize) {
    rt().block_on(async {
        let db: PathBuf = data.join("gantry.sqlite");
        let url = if db.exists() {
            db.to_str().unwrap().to_owned()
        } else {
            panic!("no SQLite database at {}", db.display())
        };
        let store = gantry_store::open(&url).await.unwrap();
        let repo = store.repo_by_name("bench").await.unwrap();
        let pipeline = store
            .ensure_pipeline(repo.id, "bench", "gantry.yml")
            .await
            .unwrap();
        let t = Instant::now();
        for i in 0..n {
            let run = gantry_store::NewRun {
                pipeline_id: pipeline.id,
                state: gantry_store::RunState::Succeeded,
                event: "push".into(),
                git_ref: "refs/heads/main".into(),
                commit: format!("{i:040x}"),
                cause: "Started by an SCM change (poll)".into(),
                params: BTreeMap::new(),
                plan_json: None,
                pipeline_file: None,
                error: None,
                concurrency: None,
                rerun_of: None,
                dedup_key: None,
                jobs: Vec::new(),
            };
            store.create_run(run, now_ms()).await.unwrap();
        }
        eprintln!("filled {n} runs in {:.1} s", t.elapsed().as_secs_f64());
    });
}
