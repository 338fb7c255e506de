//! Shared fixture of the server tests: a real server (SQLite in a temp dir, a real
//! listener) over a real git repository, the router driven with `oneshot`, and the
//! in-process job source driven by hand as a test executor.
//!
//! With `GANTRY_TEST_POSTGRES` set (`cargo xtask test` sets it), every fixture runs on
//! PostgreSQL instead, in a schema `server_<pid>_<n>` of that (throw-away) test database.

#![allow(dead_code, clippy::unwrap_used, clippy::print_stderr)]

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::http::{Request, StatusCode};
use gantry_protocol::{
    ExecutorInfo, Finish, JobReport, JobSource, Lease, LeaseId, LogChunk, LogStream,
    PROTOCOL_VERSION, WireLogLine,
};
use gantry_server::{Server, ServerConfig};
use gantry_store::{Job, JobState, Run};
use gantry_test_support::{TempTree, git};
use http_body_util::BodyExt;
use serde_json::Value;
use tower::ServiceExt;

/// A server over a repository named `app`.
pub struct Fixture {
    pub data: tempfile::TempDir,
    pub repo: TempTree,
    pub server: Server,
    pub token: String,
    pub source: Arc<dyn JobSource>,
    /// PostgreSQL URL and schema, when the tests run against PostgreSQL.
    pub pg: Option<(String, String)>,
}

/// Starts a server on SQLite under the data directory, or — with `GANTRY_TEST_POSTGRES`
/// set — on PostgreSQL in a schema of its own, so the same tests cover both.
pub async fn start_server(c: ServerConfig, pg: &Option<(String, String)>) -> Server {
    match pg {
        Some((url, schema)) => {
            let store = gantry_store::PgStore::connect_in_schema(url, schema)
                .await
                .unwrap();
            Server::start_with_store(c, Arc::new(store)).await.unwrap()
        }
        None => Server::start(c).await.unwrap(),
    }
}

/// Options of [`Fixture::start`].
pub fn config(data: &std::path::Path) -> ServerConfig {
    let mut c = ServerConfig::new(data);
    c.listen = "127.0.0.1:0".parse().unwrap();
    c.background_loops = false;
    c.max_body_bytes = 64 * 1024;
    c
}

impl Fixture {
    /// A server whose repository `app` holds `gantry.yml` = `pipeline` on `main`.
    pub async fn new(pipeline: &str) -> Fixture {
        Fixture::with(pipeline, |_| {}).await
    }

    /// Like [`new`] with a config tweak.
    pub async fn with(pipeline: &str, tweak: impl FnOnce(&mut ServerConfig)) -> Fixture {
        let repo = TempTree::new();
        git(repo.path(), &["init", "-q", "-b", "main"]);
        repo.file("gantry.yml", pipeline);
        git(repo.path(), &["add", "-A"]);
        git(repo.path(), &["commit", "-q", "-m", "initial"]);
        let data = tempfile::tempdir().unwrap();
        let mut c = config(data.path());
        tweak(&mut c);
        let pg = std::env::var("GANTRY_TEST_POSTGRES").ok().map(|url| {
            static N: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
            let n = N.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            (url, format!("server_{}_{n}", std::process::id()))
        });
        // Schema names repeat when process ids do: start from an empty one.
        if let Some((url, schema)) = &pg {
            gantry_store::PgStore::drop_schema(url, schema)
                .await
                .unwrap();
        }
        let server = start_server(c, &pg).await;
        let token = server.admin_token().unwrap().to_string();
        let source = server.job_source();
        let f = Fixture {
            data,
            repo,
            server,
            token,
            source,
            pg,
        };
        let (status, body) = f
            .call(
                "POST",
                "/api/repos",
                Some(serde_json::json!({
                    "name": "app",
                    "url": f.repo.path().display().to_string(),
                    "webhook_secret": "s3cret"
                })),
            )
            .await;
        assert_eq!(status, StatusCode::CREATED, "{body}");
        f
    }

    /// Commits `text` as the pipeline file; returns the commit id.
    pub fn commit_pipeline(&self, text: &str) -> String {
        self.repo.file("gantry.yml", text);
        git(self.repo.path(), &["add", "-A"]);
        git(self.repo.path(), &["commit", "-q", "-m", "change"]);
        self.head()
    }

    /// The commit at `main`.
    pub fn head(&self) -> String {
        git(self.repo.path(), &["rev-parse", "HEAD"])
            .trim()
            .to_string()
    }

    /// Sends a request through the router with the admin token.
    pub async fn call(&self, method: &str, uri: &str, body: Option<Value>) -> (StatusCode, Value) {
        let token = self.token.clone();
        self.call_as(Some(&token), method, uri, body).await
    }

    /// Sends a request with the given token (or none).
    pub async fn call_as(
        &self,
        token: Option<&str>,
        method: &str,
        uri: &str,
        body: Option<Value>,
    ) -> (StatusCode, Value) {
        let mut req = Request::builder().method(method).uri(uri);
        if let Some(t) = token {
            req = req.header("authorization", format!("Bearer {t}"));
        }
        let req = match body {
            Some(b) => req
                .header("content-type", "application/json")
                .body(Body::from(b.to_string()))
                .unwrap(),
            None => req.body(Body::empty()).unwrap(),
        };
        let (status, bytes) = self.raw(req).await;
        let value = serde_json::from_slice(&bytes)
            .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&bytes).into_owned()));
        (status, value)
    }

    /// Sends a prepared request; returns status and body bytes.
    pub async fn raw(&self, req: Request<Body>) -> (StatusCode, Vec<u8>) {
        let app = gantry_server::api::router(self.server.state().clone());
        let resp = app.oneshot(req).await.unwrap();
        let status = resp.status();
        let bytes = resp
            .into_body()
            .collect()
            .await
            .unwrap()
            .to_bytes()
            .to_vec();
        (status, bytes)
    }

    /// Triggers a manual run of `app`; returns the first run's JSON.
    pub async fn trigger(&self, body: Value) -> Value {
        let (status, v) = self
            .call("POST", "/api/repos/app/trigger", Some(body))
            .await;
        assert_eq!(status, StatusCode::CREATED, "{v}");
        v[0].clone()
    }

    /// A run from the store.
    pub async fn run(&self, id: i64) -> Run {
        self.server.state().store.run(id).await.unwrap()
    }

    /// Jobs of a run, by name → state.
    pub async fn states(&self, id: i64) -> BTreeMap<String, JobState> {
        self.jobs(id)
            .await
            .into_iter()
            .map(|j| (j.name, j.state))
            .collect()
    }

    /// Jobs of a run.
    pub async fn jobs(&self, id: i64) -> Vec<Job> {
        self.server.state().store.jobs(id).await.unwrap()
    }

    /// Leases a job as executor `name`, waiting up to a generous minute.
    pub async fn lease_as(&self, name: &str) -> Lease {
        self.source
            .lease(&executor(name), Duration::from_secs(60))
            .await
            .unwrap()
            .expect("a job to lease")
    }

    /// Leases a job as executor `test`.
    pub async fn lease(&self) -> Lease {
        self.lease_as("test").await
    }

    /// Whether a job can be leased right now (no waiting).
    pub async fn try_lease(&self) -> Option<Lease> {
        self.source
            .lease(&executor("test"), Duration::ZERO)
            .await
            .unwrap()
    }

    /// Ends a lease.
    pub async fn finish(&self, lease: &Lease, report: JobReport) {
        self.source.finish(&lease.id, finish(report)).await.unwrap();
    }

    /// Appends stdout lines to a lease's log as batch `seq`.
    pub async fn log(&self, lease: &LeaseId, seq: u64, lines: &[&str]) {
        let chunk = LogChunk {
            seq,
            lines: lines
                .iter()
                .map(|t| WireLogLine {
                    at_ms: 1,
                    stream: LogStream::Stdout,
                    source: None,
                    text: t.to_string(),
                })
                .collect(),
        };
        self.source.append_log(lease, chunk).await.unwrap();
    }
}

/// An executor without labels.
pub fn executor(name: &str) -> ExecutorInfo {
    ExecutorInfo {
        name: name.to_string(),
        labels: BTreeMap::new(),
        capacity: 4,
        protocol: PROTOCOL_VERSION,
    }
}

/// A finish report without artifacts.
pub fn finish(report: JobReport) -> Finish {
    Finish {
        report,
        attempts: 1,
        duration_ms: 5,
        manifest: None,
    }
}

/// A failed script.
pub fn failed() -> JobReport {
    JobReport::Failed {
        exit_code: Some(3),
        outcome: "exit code 3".into(),
        allowed: false,
    }
}
