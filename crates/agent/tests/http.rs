//! The executor over HTTP: the real [`Executor`] with an [`HttpJobSource`] against a real
//! `gantry serve` ([`gantry_server::Server`] on 127.0.0.1, SQLite in a temp dir) over a
//! real git repository, running real `sh` jobs on the local backend.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use gantry_agent::{Executor, ExecutorConfig, ExecutorError, HttpJobSource};
use gantry_backend::CancellationToken;
use gantry_backend_local::LocalBackend;
use gantry_engine::Backends;
use gantry_protocol::{ExecutorInfo, JobSource, LeaseError, PROTOCOL_VERSION};
use gantry_server::{Server, ServerConfig};
use gantry_test_support::{TempTree, git};
use serde_json::{Value, json};

/// Generous bound so that a broken agent fails the test instead of hanging it.
const PATIENCE: Duration = Duration::from_secs(90);

/// A server with a repository `app` whose `gantry.yml` is `pipeline`, and an agent token.
struct Setup {
    repo: TempTree,
    data: TempTree,
    server: Server,
    admin: String,
    agent_token: String,
    http: reqwest::Client,
}

async fn setup(pipeline: &str, tweak: impl FnOnce(&mut ServerConfig)) -> Setup {
    // As `gantry agent` does: reap whatever the jobs' scripts orphan.
    let _ = gantry_backend_local::become_subreaper();
    let repo = TempTree::new();
    git(repo.path(), &["init", "-q", "-b", "main"]);
    repo.file("gantry.yml", pipeline);
    git(repo.path(), &["add", "-A"]);
    git(repo.path(), &["commit", "-q", "-m", "initial"]);
    let data = TempTree::new();
    let mut config = ServerConfig::new(data.join("server"));
    config.listen = "127.0.0.1:0".parse().expect("address");
    config.background_loops = false;
    tweak(&mut config);
    let server = Server::start(config).await.expect("the server starts");
    let admin = server.admin_token().expect("first start").to_owned();
    let mut s = Setup {
        repo,
        data,
        server,
        admin,
        agent_token: String::new(),
        http: reqwest::Client::new(),
    };
    let url = s.repo.path().display().to_string();
    let (status, v) = s
        .call(
            "POST",
            "/api/repos",
            Some(json!({ "name": "app", "url": url })),
        )
        .await;
    assert_eq!(status, 201, "{v}");
    let (status, v) = s
        .call(
            "POST",
            "/api/agent-tokens",
            Some(json!({ "name": "agents" })),
        )
        .await;
    assert_eq!(status, 201, "{v}");
    s.agent_token = v["token"].as_str().expect("a token").to_owned();
    s
}

impl Setup {
    /// An admin API call: status and JSON (or text) body.
    async fn call(&self, method: &str, path: &str, body: Option<Value>) -> (u16, Value) {
        let method = reqwest::Method::from_bytes(method.as_bytes()).expect("method");
        let mut req = self
            .http
            .request(method, format!("{}{path}", self.server.url()))
            .bearer_auth(&self.admin);
        if let Some(body) = body {
            req = req.json(&body);
        }
        let resp = req.send().await.expect("the server answers");
        let status = resp.status().as_u16();
        let text = resp.text().await.expect("a body");
        let value = serde_json::from_str(&text).unwrap_or(Value::String(text));
        (status, value)
    }

    async fn trigger(&self) -> i64 {
        let (status, v) = self
            .call("POST", "/api/repos/app/trigger", Some(json!({})))
            .await;
        assert_eq!(status, 201, "{v}");
        v[0]["id"].as_i64().expect("a run id")
    }

    /// Waits until run `id` is final; its JSON.
    async fn wait_final(&self, id: i64) -> Value {
        tokio::time::timeout(PATIENCE, async {
            loop {
                let (_, run) = self.call("GET", &format!("/api/runs/{id}"), None).await;
                if ["succeeded", "failed", "cancelled", "errored"]
                    .contains(&run["state"].as_str().unwrap_or_default())
                {
                    return run;
                }
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        })
        .await
        .unwrap_or_else(|_| panic!("run {id} did not finish"))
    }

    fn source(&self) -> Arc<HttpJobSource> {
        Arc::new(
            HttpJobSource::new(&self.server.url(), self.agent_token.clone()).expect("a source"),
        )
    }

    /// Starts an executor named `name` over HTTP.
    fn agent(&self, name: &str, source: Arc<HttpJobSource>) -> Agent {
        let config = ExecutorConfig {
            info: info(name),
            work_dir: self.data.join(&format!("agent-{name}")),
            backends: Backends {
                host: Arc::new(LocalBackend::new()),
                containers: None,
            },
            poll_wait: Duration::from_secs(1),
        };
        let executor = Executor::new(source as Arc<dyn JobSource>, config);
        let cancel = CancellationToken::new();
        let task = {
            let cancel = cancel.clone();
            tokio::spawn(async move { executor.run(cancel).await })
        };
        Agent { cancel, task }
    }
}

struct Agent {
    cancel: CancellationToken,
    task: tokio::task::JoinHandle<Result<(), ExecutorError>>,
}

impl Agent {
    async fn stop(self) -> Result<(), ExecutorError> {
        self.cancel.cancel();
        tokio::time::timeout(PATIENCE, self.task)
            .await
            .expect("the agent stops")
            .expect("the agent task")
    }
}

fn info(name: &str) -> ExecutorInfo {
    ExecutorInfo {
        name: name.into(),
        labels: BTreeMap::from([("backend".to_owned(), "local".to_owned())]),
        capacity: 2,
        protocol: PROTOCOL_VERSION,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dag_passes_an_artifact_from_job_to_job_through_the_server() {
    let s = setup(
        "jobs:
  build:
    script:
      - mkdir -p out
      - printf 'built by run %s\\n' \"$GANTRY_RUN_ID\" > out/app.txt
      - head -c 300000 /dev/urandom > out/blob.bin
      - sha256sum out/blob.bin > out/blob.sum
    artifacts: [out]
  test:
    needs: [build]
    runs_on: { backend: local }
    script:
      - cat out/app.txt
      - sha256sum -c out/blob.sum
",
        |_| {},
    )
    .await;
    let source = s.source();
    let hello = source.hello(&info("build-1")).await.expect("hello");
    assert_eq!(hello.protocol, PROTOCOL_VERSION);
    assert_eq!(hello.lease_ttl_secs, 30);
    assert_eq!(source.server_hello(), Some(hello));
    let agent = s.agent("build-1", source);
    let id = s.trigger().await;

    let run = s.wait_final(id).await;
    assert_eq!(run["state"], "succeeded", "{run:#}");
    for job in run["jobs"].as_array().expect("jobs") {
        assert_eq!(job["executor"], "build-1", "{job:#}");
        assert_eq!(job["attempt"], 1, "{job:#}");
    }
    let (_, log) = s
        .call("GET", &format!("/api/runs/{id}/jobs/test/log"), None)
        .await;
    let log = log.as_str().expect("a text log");
    assert!(log.contains(&format!("built by run {id}")), "{log}");
    assert!(log.contains("out/blob.bin: OK"), "{log}");
    let (_, artifacts) = s
        .call("GET", &format!("/api/runs/{id}/artifacts"), None)
        .await;
    let paths: Vec<&str> = artifacts
        .as_array()
        .expect("artifacts")
        .iter()
        .filter_map(|a| a["path"].as_str())
        .collect();
    assert_eq!(paths, ["out/app.txt", "out/blob.bin", "out/blob.sum"]);
    // The agent is listed as online while it waits for work.
    let (_, agents) = s.call("GET", "/api/agents", None).await;
    assert!(
        agents
            .as_array()
            .expect("agents")
            .iter()
            .any(|a| a["name"] == "build-1" && a["token"] == "agents" && a["running"] == 0),
        "{agents:#}"
    );

    agent.stop().await.expect("a clean stop");
    assert!(
        std::fs::read_dir(s.data.join("agent-build-1/jobs"))
            .expect("the jobs directory")
            .next()
            .is_none(),
        "the agent left job directories behind"
    );
    s.server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refusals_come_back_as_the_servers_lease_errors() {
    let s = setup("jobs:\n  a:\n    script: [\"true\"]\n", |_| {}).await;

    let mut other = info("build-1");
    other.protocol = PROTOCOL_VERSION + 1;
    let e = s.source().hello(&other).await.expect_err("refused");
    assert!(
        matches!(e, LeaseError::Incompatible { executor, .. } if executor == PROTOCOL_VERSION + 1),
        "{e:?}"
    );
    assert_eq!(
        e.to_string(),
        format!(
            "agent speaks protocol {}; this server speaks protocol {PROTOCOL_VERSION} (gantry {}) \
             — run an agent of the same gantry version",
            PROTOCOL_VERSION + 1,
            env!("CARGO_PKG_VERSION")
        )
    );

    // A wrong token: the executor stops at once, refused.
    let wrong = Arc::new(HttpJobSource::new(&s.server.url(), "gantry_wrong".into()).expect("ok"));
    let agent = s.agent("build-1", wrong);
    let ended = tokio::time::timeout(PATIENCE, agent.task)
        .await
        .expect("the agent stops by itself")
        .expect("the agent task");
    assert!(
        matches!(
            ended,
            Err(ExecutorError::Refused(LeaseError::Unauthorized(ref m))) if m.contains("invalid or revoked token")
        ),
        "{ended:?}"
    );

    // Nobody listening: unavailable, to be retried.
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        l.local_addr().expect("addr").port()
    };
    let nowhere = HttpJobSource::new(&format!("http://127.0.0.1:{port}"), "t".into()).expect("ok");
    let e = nowhere.hello(&info("x")).await.expect_err("nobody there");
    assert!(matches!(e, LeaseError::Unavailable(_)), "{e:?}");

    // Something that is not a gantry server (or an older one) answers 404.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    let answering = tokio::spawn(async move {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let (mut conn, _) = listener.accept().await.expect("accept");
        let mut buf = vec![0u8; 4096];
        let _ = conn.read(&mut buf).await;
        let _ = conn
            .write_all(b"HTTP/1.1 404 Not Found\r\ncontent-length: 9\r\n\r\nnot found")
            .await;
    });
    let other = HttpJobSource::new(&format!("http://{addr}"), "t".into()).expect("ok");
    let e = other
        .hello(&info("x"))
        .await
        .expect_err("no agent protocol");
    assert!(
        matches!(&e, LeaseError::Incompatible { supported, .. } if supported.contains("no agent protocol")),
        "{e:?}"
    );
    answering.await.expect("the fake server");
    s.server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_job_whose_server_is_gone_past_the_lease_deadline_is_killed() {
    let pid_dir = TempTree::new();
    let pid_file = pid_dir.join("pid");
    let s = setup(
        &format!(
            "jobs:\n  long:\n    script:\n      - \"sleep 300 & echo $! > {}; wait\"\n",
            pid_file.display()
        ),
        |c| c.lease_ttl = Duration::from_secs(2),
    )
    .await;
    let agent = s.agent("build-1", s.source());
    s.trigger().await;
    let pid: u32 = tokio::time::timeout(PATIENCE, async {
        loop {
            if let Some(pid) = std::fs::read_to_string(&pid_file)
                .ok()
                .and_then(|t| t.trim().parse().ok())
            {
                return pid;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await
    .expect("the job starts");
    assert!(is_running(pid));

    // The server goes away: heartbeats fail, and once the lease's time to live has passed
    // without one confirmed, the agent kills the job (the server would hand it out again).
    s.server.shutdown().await;
    tokio::time::timeout(PATIENCE, async {
        while is_running(pid) {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    })
    .await
    .expect("the job is killed");
    // The agent itself keeps going (retrying the server) until told to stop.
    assert!(!agent.task.is_finished());
    agent.stop().await.expect("a clean stop");
}

/// Whether process `pid` exists and is not a zombie (this test process is a subreaper,
/// so killed orphans linger as zombies until reaped).
fn is_running(pid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|stat| {
        let state = stat.rsplit_once(')').map(|(_, rest)| rest.trim_start());
        !state.is_some_and(|s| s.starts_with('Z') || s.starts_with('X'))
    })
}

/// Writes `bytes` to a file under `dir`; its path and sha256.
fn blob_file(dir: &TempTree, name: &str, bytes: &[u8]) -> (std::path::PathBuf, String) {
    use sha2::Digest;
    dir.file(name, std::str::from_utf8(bytes).expect("text"));
    (dir.join(name), hex::encode(sha2::Sha256::digest(bytes)))
}

fn manifest_of(files: &[(&str, &str, u64)]) -> gantry_engine::artifacts::Manifest {
    gantry_engine::artifacts::Manifest {
        job: "build".into(),
        files: files
            .iter()
            .map(|(path, digest, size)| {
                (
                    (*path).to_owned(),
                    gantry_engine::artifacts::ManifestEntry {
                        digest: (*digest).to_owned(),
                        size: *size,
                        mode: 0o644,
                    },
                )
            })
            .collect(),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn caches_travel_over_http_under_any_key() {
    let s = setup("jobs:\n  a:\n    script: [\"true\"]\n", |_| {}).await;
    let source = s.source();
    s.trigger().await;
    let lease = source
        .lease(&info("build-1"), PATIENCE)
        .await
        .expect("lease")
        .expect("a job");
    // Keys are one path segment on the wire, whatever they contain.
    let key = "deps/linux x86_64?v=1#é";
    assert_eq!(source.get_cache(&lease.id, key).await.expect("get"), None);

    let (path, digest) = blob_file(&s.data, "blob", b"cached bytes\n");
    let manifest = manifest_of(&[("target/dep.txt", &digest, 13)]);
    // The manifest before its blob: refused, nothing saved.
    let e = source
        .put_cache(&lease.id, key, manifest.clone())
        .await
        .expect_err("blob not uploaded");
    assert!(
        matches!(&e, LeaseError::Invalid(m) if m.contains("was not uploaded")),
        "{e:?}"
    );
    assert_eq!(source.get_cache(&lease.id, key).await.expect("get"), None);

    source
        .put_artifact(&lease.id, &digest, &path)
        .await
        .expect("upload");
    assert!(
        source
            .put_cache(&lease.id, key, manifest.clone())
            .await
            .expect("save")
    );
    // The first writer wins.
    let (other_path, other) = blob_file(&s.data, "other", b"other\n");
    source
        .put_artifact(&lease.id, &other, &other_path)
        .await
        .expect("upload");
    let stored = source
        .put_cache(&lease.id, key, manifest_of(&[("x", &other, 6)]))
        .await
        .expect("a second save is no error");
    assert!(!stored, "the first entry is kept");
    assert_eq!(
        source.get_cache(&lease.id, key).await.expect("get"),
        Some(manifest)
    );

    // Refused on this side already, with the server's words.
    let e = source
        .get_cache(&lease.id, &"k".repeat(600))
        .await
        .expect_err("too long");
    assert!(
        matches!(&e, LeaseError::Invalid(m) if m.contains("at most 512")),
        "{e:?}"
    );

    // The next run's job (a new lease of the same repository) finds it and may fetch its
    // blob, which is no artifact of its run.
    source
        .finish(
            &lease.id,
            gantry_protocol::Finish {
                report: gantry_protocol::JobReport::Succeeded,
                attempts: 1,
                duration_ms: 1,
                manifest: None,
            },
        )
        .await
        .expect("finish");
    s.trigger().await;
    let next = source
        .lease(&info("build-1"), PATIENCE)
        .await
        .expect("lease")
        .expect("a job");
    let found = source
        .get_cache(&next.id, key)
        .await
        .expect("get")
        .expect("the entry");
    let dest = s.data.join("fetched");
    source
        .get_artifact(&next.id, &found.files["target/dep.txt"].digest, &dest)
        .await
        .expect("fetch the cached blob");
    assert_eq!(std::fs::read(&dest).expect("read"), b"cached bytes\n");
    // The finished lease is stale for caches too.
    let e = source.get_cache(&lease.id, key).await.expect_err("stale");
    assert!(matches!(e, LeaseError::Stale { .. }), "{e:?}");
    s.server.shutdown().await;
}

/// The built-in executor's way: the executor over the server's in-process source. A
/// cache saved by one run's job is restored by the next run's.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_builtin_executor_keeps_caches_on_the_server_too() {
    let s = setup(
        "jobs:
  build:
    cache: { key: tools-1, paths: [tools] }
    script:
      - if test -f tools/t.txt; then echo \"restored run $(cat tools/t.txt)\"; else mkdir -p tools; echo \"$GANTRY_RUN_ID\" > tools/t.txt; fi
",
        |_| {},
    )
    .await;
    let config = ExecutorConfig {
        info: info("builtin"),
        work_dir: s.data.join("builtin"),
        backends: Backends {
            host: Arc::new(LocalBackend::new()),
            containers: None,
        },
        poll_wait: Duration::from_secs(1),
    };
    let executor = Executor::new(s.server.job_source(), config);
    let cancel = CancellationToken::new();
    let task = {
        let cancel = cancel.clone();
        tokio::spawn(async move { executor.run(cancel).await })
    };
    let log_of = |id: i64| {
        let s = &s;
        async move {
            let run = s.wait_final(id).await;
            assert_eq!(run["state"], "succeeded", "{run:#}");
            let (_, log) = s
                .call("GET", &format!("/api/runs/{id}/jobs/build/log"), None)
                .await;
            log.as_str().expect("a text log").to_owned()
        }
    };
    let first = s.trigger().await;
    let log = log_of(first).await;
    assert!(log.contains("cache \"tools-1\": saved 1 file"), "{log}");
    let second = s.trigger().await;
    let log = log_of(second).await;
    assert!(log.contains(&format!("restored run {first}")), "{log}");
    let (_, caches) = s.call("GET", "/api/repos/app/caches", None).await;
    assert_eq!(caches["caches"][0]["key"], "tools-1", "{caches}");
    assert_eq!(caches["caches"][0]["run_id"], first, "{caches}");
    cancel.cancel();
    let _ = tokio::time::timeout(PATIENCE, task).await;
    s.server.shutdown().await;
}
