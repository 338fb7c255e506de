//! The agent protocol over HTTP (`/api/agent/v1/…`) and the admin routes for agents,
//! through the real router over a real store and a real git repository: handshake,
//! tokens, a lease from start to finish, fencing of stale and foreign reports, artifact
//! limits and bad names, malformed bodies, and the "waiting: no agent" message.

#![allow(clippy::unwrap_used)]

mod common;

use axum::body::Body;
use axum::http::{Request, StatusCode};
use common::{Fixture, executor};
use gantry_engine::artifacts::{Manifest, ManifestEntry};
use gantry_protocol::{ExecutorInfo, Finish, JobReport, PROTOCOL_VERSION};
use gantry_store::JobState;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

const PIPELINE: &str = "\
jobs:
  build:
    script: [make]
    artifacts: [out/app]
  test:
    needs: [build]
    script: [make test]
";

const GPU: &str = "\
jobs:
  train:
    runs_on: { pool: gpu }
    script: [train]
";

/// An executor as JSON.
fn info(name: &str) -> Value {
    serde_json::to_value(executor(name)).unwrap()
}

fn info_with(name: &str, labels: Value) -> Value {
    let mut v = info(name);
    v["labels"] = labels;
    v
}

fn sha(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

impl Fixture {
    /// Makes an agent token; returns its secret.
    async fn agent_token(&self, name: &str) -> String {
        let (status, v) = self
            .call("POST", "/api/agent-tokens", Some(json!({ "name": name })))
            .await;
        assert_eq!(status, StatusCode::CREATED, "{v}");
        assert_eq!(v["name"], name);
        v["token"].as_str().unwrap().to_owned()
    }

    /// Leases as executor `name` with `token`, not waiting: the lease's JSON, or `None`
    /// on 204.
    async fn http_lease(&self, token: &str, name: &str) -> Option<Value> {
        let (status, v) = self
            .call_as(
                Some(token),
                "POST",
                "/api/agent/v1/lease",
                Some(json!({ "executor": info(name), "wait_ms": 0 })),
            )
            .await;
        match status {
            StatusCode::OK => Some(v),
            StatusCode::NO_CONTENT => None,
            s => panic!("lease answered {s}: {v}"),
        }
    }

    /// Sends raw bytes with a token; status and body.
    async fn send_bytes(
        &self,
        token: &str,
        method: &str,
        uri: &str,
        content_type: Option<&str>,
        body: Vec<u8>,
        content_length: bool,
    ) -> (StatusCode, Value) {
        let mut req = Request::builder()
            .method(method)
            .uri(uri)
            .header("authorization", format!("Bearer {token}"));
        if let Some(ct) = content_type {
            req = req.header("content-type", ct);
        }
        let req = if content_length {
            req.header("content-length", body.len())
                .body(Body::from(body))
                .unwrap()
        } else {
            // A streamed body of unknown length.
            let stream = futures_util::stream::iter(
                body.chunks(100)
                    .map(|c| Ok::<_, std::io::Error>(bytes::Bytes::copy_from_slice(c)))
                    .collect::<Vec<_>>(),
            );
            req.body(Body::from_stream(stream)).unwrap()
        };
        let (status, bytes) = self.raw(req).await;
        let v = serde_json::from_slice(&bytes)
            .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&bytes).into_owned()));
        (status, v)
    }

    /// The stored objects under the artifacts directory (temporary files included).
    fn stored_objects(&self) -> Vec<String> {
        let mut found = Vec::new();
        let root = self.data.path().join("artifacts");
        let mut dirs = vec![root];
        while let Some(dir) = dirs.pop() {
            let Ok(entries) = std::fs::read_dir(&dir) else {
                continue;
            };
            for e in entries.flatten() {
                if e.path().is_dir() {
                    dirs.push(e.path());
                } else {
                    found.push(e.file_name().to_string_lossy().into_owned());
                }
            }
        }
        found.sort();
        found
    }
}

/// Asserts an agent refusal: its status and `error` code, and that the message says
/// `words`.
fn refused(got: (StatusCode, Value), status: StatusCode, code: &str, words: &str) {
    let (s, v) = got;
    assert_eq!(s, status, "{v}");
    assert_eq!(v["error"], code, "{v}");
    let message = v["message"].as_str().unwrap_or_default();
    assert!(message.contains(words), "{message:?} should say {words:?}");
}

#[tokio::test]
async fn handshake_names_the_limits_or_both_versions() {
    let f = Fixture::with(PIPELINE, |c| {
        c.max_artifact_bytes = 4096;
        c.lease_ttl = std::time::Duration::from_secs(12);
    })
    .await;
    let token = f.agent_token("build-1").await;
    let (status, hello) = f
        .call_as(
            Some(&token),
            "POST",
            "/api/agent/v1/hello",
            Some(info("build-1")),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{hello}");
    assert_eq!(hello["protocol"], PROTOCOL_VERSION);
    assert_eq!(hello["server_version"], env!("CARGO_PKG_VERSION"));
    assert_eq!(hello["lease_ttl_secs"], 12);
    assert_eq!(hello["max_artifact_bytes"], 4096);
    assert!(hello["max_log_batch_bytes"].as_u64().unwrap() > 0);
    assert_eq!(hello["max_lease_wait_ms"], 30_000);

    let mut other = info("build-1");
    other["protocol"] = json!(PROTOCOL_VERSION + 1);
    let got = f
        .call_as(Some(&token), "POST", "/api/agent/v1/hello", Some(other))
        .await;
    let words = format!(
        "agent speaks protocol {}; this server speaks protocol {PROTOCOL_VERSION} (gantry {}) \
         — run an agent of the same gantry version",
        PROTOCOL_VERSION + 1,
        env!("CARGO_PKG_VERSION")
    );
    assert_eq!(got.1["executor"], PROTOCOL_VERSION + 1);
    refused(got, StatusCode::UPGRADE_REQUIRED, "incompatible", &words);

    // A lease request of another version is refused the same way.
    let mut other = info("build-1");
    other["protocol"] = json!(0);
    let got = f
        .call_as(
            Some(&token),
            "POST",
            "/api/agent/v1/lease",
            Some(json!({ "executor": other, "wait_ms": 0 })),
        )
        .await;
    refused(
        got,
        StatusCode::UPGRADE_REQUIRED,
        "incompatible",
        "protocol 0",
    );

    // A name that cannot be shown or used safely is refused.
    let got = f
        .call_as(
            Some(&token),
            "POST",
            "/api/agent/v1/hello",
            Some(info("../../etc")),
        )
        .await;
    refused(
        got,
        StatusCode::BAD_REQUEST,
        "invalid",
        "invalid executor name",
    );
    for (labels, ok) in [
        (
            json!({ "kubernetes.io/arch": "amd64", "pool": "gpu 2" }),
            true,
        ),
        (json!({ "bad key": "x" }), false),
        (json!({ "pool": "line\nbreak" }), false),
    ] {
        let (status, v) = f
            .call_as(
                Some(&token),
                "POST",
                "/api/agent/v1/hello",
                Some(info_with("build-1", labels.clone())),
            )
            .await;
        let expect = if ok {
            StatusCode::OK
        } else {
            StatusCode::BAD_REQUEST
        };
        assert_eq!(status, expect, "{labels}: {v}");
    }
}

#[tokio::test]
async fn tokens_are_required_made_by_the_admin_and_revocable() {
    let f = Fixture::new(PIPELINE).await;
    // No token, a wrong one.
    let hello = || Some(info("build-1"));
    refused(
        f.call_as(None, "POST", "/api/agent/v1/hello", hello())
            .await,
        StatusCode::UNAUTHORIZED,
        "unauthorized",
        "agent token is required",
    );
    refused(
        f.call_as(Some("gantry_nope"), "POST", "/api/agent/v1/hello", hello())
            .await,
        StatusCode::UNAUTHORIZED,
        "unauthorized",
        "invalid or revoked token",
    );
    // The admin token is accepted too.
    let (status, _) = f.call("POST", "/api/agent/v1/hello", hello()).await;
    assert_eq!(status, StatusCode::OK);

    let token = f.agent_token("build-1").await;
    assert!(token.starts_with("gantry_"), "{token}");
    // Names are unique among live tokens, and checked.
    let (status, v) = f
        .call(
            "POST",
            "/api/agent-tokens",
            Some(json!({ "name": "build-1" })),
        )
        .await;
    assert_eq!(status, StatusCode::CONFLICT, "{v}");
    assert!(
        v["error"].as_str().unwrap().contains("exists already"),
        "{v}"
    );
    for bad in ["", "../x", "admin", "a b"] {
        let (status, v) = f
            .call("POST", "/api/agent-tokens", Some(json!({ "name": bad })))
            .await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{bad:?}: {v}");
    }
    // An agent token may not make tokens.
    let (status, _) = f
        .call_as(
            Some(&token),
            "POST",
            "/api/agent-tokens",
            Some(json!({ "name": "x" })),
        )
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    // The list shows no secret.
    let (status, list) = f.call("GET", "/api/agent-tokens", None).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(list.as_array().unwrap().len(), 1, "{list}");
    assert_eq!(list[0]["name"], "build-1");
    assert!(!list.to_string().contains(&token), "{list}");
    assert!(list[0].get("token").is_none(), "{list}");

    let (status, _) = f
        .call_as(Some(&token), "POST", "/api/agent/v1/hello", hello())
        .await;
    assert_eq!(status, StatusCode::OK);
    // Revoked: refused at once.
    let (status, _) = f.call("DELETE", "/api/agent-tokens/build-1", None).await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    refused(
        f.call_as(Some(&token), "POST", "/api/agent/v1/hello", hello())
            .await,
        StatusCode::UNAUTHORIZED,
        "unauthorized",
        "invalid or revoked token",
    );
    let (status, _) = f.call("DELETE", "/api/agent-tokens/build-1", None).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (status, _) = f.call("DELETE", "/api/agent-tokens/admin", None).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    // The name is free again.
    f.agent_token("build-1").await;
}

#[tokio::test]
async fn a_lease_runs_from_start_to_finish_over_http() {
    let f = Fixture::new(PIPELINE).await;
    let token = f.agent_token("build-1").await;
    assert!(f.http_lease(&token, "build-1").await.is_none());
    let id = f.trigger(json!({})).await["id"].as_i64().unwrap();

    let lease = f.http_lease(&token, "build-1").await.unwrap();
    assert_eq!(lease["job_key"], "build");
    assert_eq!(lease["attempt"], 1);
    let lease_id = lease["id"].as_str().unwrap().to_owned();
    let at = |what: &str| format!("/api/agent/v1/leases/{lease_id}/{what}");

    // Online, with one job running.
    let (_, agents) = f.call("GET", "/api/agents", None).await;
    let me = agents
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["name"] == "build-1")
        .unwrap_or_else(|| panic!("{agents}"));
    assert_eq!(me["running"], 1, "{agents}");
    assert_eq!(me["token"], "build-1");
    assert_eq!(me["builtin"], false);
    let (_, tokens) = f.call("GET", "/api/agent-tokens", None).await;
    assert_eq!(tokens[0]["agents"], json!(["build-1"]));

    let (status, state) = f
        .call_as(Some(&token), "POST", &at("heartbeat"), None)
        .await;
    assert_eq!((status, state), (StatusCode::OK, json!("ok")));

    let batch = |seq: u64, text: &str| json!({ "seq": seq, "lines": [{ "at_ms": 1, "stream": "stdout", "text": text }] });
    for (seq, text) in [(0, "one"), (0, "one"), (1, "two")] {
        let (status, v) = f
            .call_as(Some(&token), "POST", &at("logs"), Some(batch(seq, text)))
            .await;
        assert_eq!(status, StatusCode::NO_CONTENT, "{v}");
    }
    let finish = serde_json::to_value(Finish {
        report: JobReport::Succeeded,
        attempts: 1,
        duration_ms: 5,
        manifest: None,
    })
    .unwrap();
    let (status, v) = f
        .call_as(Some(&token), "POST", &at("finish"), Some(finish.clone()))
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT, "{v}");
    assert_eq!(f.states(id).await["build"], JobState::Succeeded);
    let (_, log) = f
        .call("GET", &format!("/api/runs/{id}/jobs/build/log"), None)
        .await;
    let log = log.as_str().unwrap();
    assert_eq!(log.matches("one\n").count(), 1, "{log}");
    assert!(log.contains("two\n"), "{log}");

    // Finished: the lease is gone.
    refused(
        f.call_as(Some(&token), "POST", &at("finish"), Some(finish))
            .await,
        StatusCode::CONFLICT,
        "stale",
        "no longer valid",
    );
    let (_, agents) = f.call("GET", "/api/agents", None).await;
    assert_eq!(agents[0]["running"], 0, "{agents}");
    // The next job is ready for the same agent.
    let next = f.http_lease(&token, "build-1").await.unwrap();
    assert_eq!(next["job_key"], "test");
}

#[tokio::test]
async fn reports_for_a_lease_the_caller_does_not_hold_change_nothing() {
    let f = Fixture::new(PIPELINE).await;
    let a = f.agent_token("exec-a").await;
    let b = f.agent_token("exec-b").await;
    let id = f.trigger(json!({})).await["id"].as_i64().unwrap();
    let lease = f.http_lease(&a, "exec-a").await.unwrap();
    let lease_id = lease["id"].as_str().unwrap().to_owned();
    let at = |what: &str| format!("/api/agent/v1/leases/{lease_id}/{what}");
    let log_of = || async {
        f.server
            .state()
            .logs
            .read_from(id, "build", 0)
            .await
            .unwrap()
    };
    let jobs = f.jobs(id).await;
    let log = log_of().await;
    let finish = json!({ "report": { "status": "succeeded" }, "attempts": 1, "duration_ms": 1, "manifest": null });
    let batch =
        json!({ "seq": 0, "lines": [{ "at_ms": 1, "stream": "stdout", "text": "forged" }] });

    // Another agent's token, with the right lease id.
    for (what, body) in [
        ("heartbeat", None),
        ("logs", Some(batch.clone())),
        ("finish", Some(finish.clone())),
    ] {
        refused(
            f.call_as(Some(&b), "POST", &at(what), body).await,
            StatusCode::CONFLICT,
            "stale",
            "held by executor exec-a",
        );
    }
    // A lease id nobody holds.
    refused(
        f.call_as(
            Some(&b),
            "POST",
            "/api/agent/v1/leases/0123abcd/finish",
            Some(finish.clone()),
        )
        .await,
        StatusCode::CONFLICT,
        "stale",
        "0123abcd",
    );
    assert_eq!(f.jobs(id).await, jobs, "a foreign report changed the jobs");
    assert_eq!(log_of().await, log, "a foreign report wrote to the log");

    // exec-a is lost: its lease expires and the job is queued again.
    gantry_server::loops::expire(f.server.state(), Some("exec-a"))
        .await
        .unwrap();
    let jobs = f.jobs(id).await;
    assert_eq!(jobs[0].state, JobState::Queued);
    let log = log_of().await;
    for (what, body) in [("logs", Some(batch)), ("finish", Some(finish))] {
        refused(
            f.call_as(Some(&a), "POST", &at(what), body).await,
            StatusCode::CONFLICT,
            "stale",
            "no longer valid",
        );
    }
    let (status, state) = f.call_as(Some(&a), "POST", &at("heartbeat"), None).await;
    assert_eq!((status, state), (StatusCode::OK, json!("lost")));
    assert_eq!(f.jobs(id).await, jobs, "a stale report changed the jobs");
    assert_eq!(log_of().await, log, "a stale report wrote to the log");

    // The next attempt goes to exec-b, and the log says what happened.
    let again = f.http_lease(&b, "exec-b").await.unwrap();
    assert_eq!(again["attempt"], 2);
    let text = String::from_utf8(log_of().await).unwrap();
    assert!(text.contains("agent exec-a was lost"), "{text}");
    assert!(text.contains("attempt 2 on exec-b"), "{text}");
}

#[tokio::test]
async fn a_token_revoked_mid_job_is_refused_at_the_next_call() {
    let f = Fixture::new(PIPELINE).await;
    let token = f.agent_token("build-1").await;
    f.trigger(json!({})).await;
    let lease = f.http_lease(&token, "build-1").await.unwrap();
    let heartbeat = format!(
        "/api/agent/v1/leases/{}/heartbeat",
        lease["id"].as_str().unwrap()
    );
    let (status, _) = f.call_as(Some(&token), "POST", &heartbeat, None).await;
    assert_eq!(status, StatusCode::OK);
    let (status, _) = f.call("DELETE", "/api/agent-tokens/build-1", None).await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    refused(
        f.call_as(Some(&token), "POST", &heartbeat, None).await,
        StatusCode::UNAUTHORIZED,
        "unauthorized",
        "revoked",
    );
}

#[tokio::test]
async fn artifacts_are_verified_limited_and_passed_to_dependent_jobs() {
    let f = Fixture::with(PIPELINE, |c| c.max_artifact_bytes = 1024).await;
    let token = f.agent_token("build-1").await;
    let id = f.trigger(json!({})).await["id"].as_i64().unwrap();
    let lease = f.http_lease(&token, "build-1").await.unwrap();
    let lease_id = lease["id"].as_str().unwrap().to_owned();
    let blob_at =
        |lease: &str, digest: &str| format!("/api/agent/v1/leases/{lease}/artifacts/{digest}");
    let put = |digest: String, body: Vec<u8>, length: bool| {
        let uri = blob_at(&lease_id, &digest);
        let token = token.clone();
        let f = &f;
        async move {
            f.send_bytes(
                &token,
                "PUT",
                &uri,
                Some("application/octet-stream"),
                body,
                length,
            )
            .await
        }
    };

    // Over the limit: refused, with Content-Length and without.
    let big = vec![7u8; 2000];
    for length in [true, false] {
        refused(
            put(sha(&big), big.clone(), length).await,
            StatusCode::PAYLOAD_TOO_LARGE,
            "too_large",
            "limit of 1024 bytes",
        );
    }
    // Content that does not hash to its name.
    refused(
        put(sha(b"other"), b"hello".to_vec(), true).await,
        StatusCode::BAD_REQUEST,
        "invalid",
        "hashes to",
    );
    // Names that are not a sha256, a path among them.
    for bad in [
        "..%2F..%2Fetc%2Fpasswd".to_owned(),
        "..".to_owned(),
        sha(b"hello").to_uppercase(),
        format!("{}0", sha(b"hello")),
    ] {
        refused(
            put(bad.clone(), b"hello".to_vec(), true).await,
            StatusCode::BAD_REQUEST,
            "invalid",
            "invalid digest",
        );
    }
    assert_eq!(
        f.stored_objects(),
        Vec::<String>::new(),
        "a refused upload left files"
    );

    // A good one, then the job finishes with it.
    let content = b"the built app".to_vec();
    let digest = sha(&content);
    let (status, v) = put(digest.clone(), content.clone(), false).await;
    assert_eq!(status, StatusCode::NO_CONTENT, "{v}");
    assert_eq!(f.stored_objects(), vec![digest[2..].to_owned()]);
    let manifest = Manifest {
        job: "build".into(),
        files: [(
            "out/app".to_owned(),
            ManifestEntry {
                digest: digest.clone(),
                size: content.len() as u64,
                mode: 0o755,
            },
        )]
        .into_iter()
        .collect(),
    };
    let finish = Finish {
        report: JobReport::Succeeded,
        attempts: 1,
        duration_ms: 3,
        manifest: Some(manifest),
    };
    let (status, v) = f
        .call_as(
            Some(&token),
            "POST",
            &format!("/api/agent/v1/leases/{lease_id}/finish"),
            Some(serde_json::to_value(finish).unwrap()),
        )
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT, "{v}");

    // The dependent job gets the manifest in its lease and the blob by its digest.
    let test = f.http_lease(&token, "build-1").await.unwrap();
    assert_eq!(test["job_key"], "test");
    assert_eq!(test["restore"][0]["files"]["out/app"]["digest"], digest);
    let test_id = test["id"].as_str().unwrap();
    let req = Request::builder()
        .method("GET")
        .uri(blob_at(test_id, &digest))
        .header("authorization", format!("Bearer {token}"))
        .body(Body::empty())
        .unwrap();
    let (status, bytes) = f.raw(req).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(bytes, content);
    // A blob that is not an artifact of the run is not handed out.
    let req = Request::builder()
        .method("GET")
        .uri(blob_at(test_id, &sha(b"elsewhere")))
        .header("authorization", format!("Bearer {token}"))
        .body(Body::empty())
        .unwrap();
    let (status, bytes) = f.raw(req).await;
    assert_eq!(
        status,
        StatusCode::BAD_REQUEST,
        "{}",
        String::from_utf8_lossy(&bytes)
    );
    assert_eq!(f.states(id).await["test"], JobState::Running);
}

#[tokio::test]
async fn malformed_requests_are_refused_with_a_message() {
    let f = Fixture::new(PIPELINE).await;
    let token = f.agent_token("build-1").await;
    let send = |uri: &'static str, ct: Option<&'static str>, body: &'static str| {
        f.send_bytes(&token, "POST", uri, ct, body.as_bytes().to_vec(), true)
    };
    refused(
        send(
            "/api/agent/v1/lease",
            Some("application/json"),
            "{\"executor\": ",
        )
        .await,
        StatusCode::BAD_REQUEST,
        "invalid",
        "invalid JSON body",
    );
    refused(
        send(
            "/api/agent/v1/lease",
            Some("application/json"),
            r#"{"executor": {"name": "x"}, "wait_ms": 0}"#,
        )
        .await,
        StatusCode::BAD_REQUEST,
        "invalid",
        "missing field",
    );
    refused(
        send("/api/agent/v1/hello", None, "{}").await,
        StatusCode::BAD_REQUEST,
        "invalid",
        "Content-Type: application/json",
    );
    refused(
        send(
            "/api/agent/v1/leases/x/logs",
            Some("application/json"),
            r#"{"seq": -1, "lines": []}"#,
        )
        .await,
        StatusCode::BAD_REQUEST,
        "invalid",
        "invalid JSON body",
    );
}

#[tokio::test]
async fn a_job_no_online_agent_can_take_says_so_until_one_comes() {
    let f = Fixture::new(GPU).await;
    let id = f.trigger(json!({})).await["id"].as_i64().unwrap();
    let message = || async {
        let (status, run) = f.call("GET", &format!("/api/runs/{id}"), None).await;
        assert_eq!(status, StatusCode::OK, "{run}");
        run["jobs"][0]["message"].clone()
    };
    assert_eq!(
        message().await,
        json!("waiting: no agent with label pool=gpu online")
    );
    // An agent without the label does not help.
    let token = f.agent_token("build-1").await;
    let (status, _) = f
        .call_as(
            Some(&token),
            "POST",
            "/api/agent/v1/hello",
            Some(info("cpu-1")),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        message().await,
        json!("waiting: no agent with label pool=gpu online")
    );
    // One with it does.
    let gpu = info_with("gpu-1", json!({ "pool": "gpu", "os": "linux" }));
    let (status, _) = f
        .call_as(
            Some(&token),
            "POST",
            "/api/agent/v1/hello",
            Some(gpu.clone()),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(message().await, Value::Null);
    let gpu: ExecutorInfo = serde_json::from_value(gpu).unwrap();
    let (status, lease) = f
        .call_as(
            Some(&token),
            "POST",
            "/api/agent/v1/lease",
            Some(json!({ "executor": gpu, "wait_ms": 0 })),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{lease}");
    assert_eq!(lease["job_key"], "train");
}

const TRIO: &str = "\
jobs:
  a:
    script: [a]
  b:
    script: [b]
  c:
    script: [c]
";

/// An agent started again in its work directory names, at hello, the leases its killed
/// run held: the server expires exactly those at once (no waiting out the ttl), and the
/// job's log says why. Leases of another agent — even one of the same name and token,
/// and one of another name under another token — are untouched, as are leases that are
/// no longer current or that nobody holds.
#[tokio::test]
async fn a_restarted_agent_gives_up_the_leases_its_earlier_run_left() {
    let f = Fixture::with(TRIO, |c| {
        c.lease_ttl = std::time::Duration::from_secs(3600);
    })
    .await;
    let pool = f.agent_token("pool").await;
    let other = f.agent_token("other").await;
    let id = f.trigger(json!({})).await["id"].as_i64().unwrap();
    let lease_id = |lease: Option<Value>| lease.unwrap()["id"].as_str().unwrap().to_owned();
    // build-1 holds a; a second agent that is also called build-1 (another machine, the
    // same token) holds b; build-2 holds c under another token.
    let first = lease_id(f.http_lease(&pool, "build-1").await);
    let twin = lease_id(f.http_lease(&pool, "build-1").await);
    let third = lease_id(f.http_lease(&other, "build-2").await);
    let states = || async {
        f.jobs(id)
            .await
            .iter()
            .map(|j| (j.key.clone(), j.state, j.attempt))
            .collect::<Vec<_>>()
    };
    let running = vec![
        ("a".to_owned(), JobState::Running, 1),
        ("b".to_owned(), JobState::Running, 1),
        ("c".to_owned(), JobState::Running, 1),
    ];
    assert_eq!(states().await, running);
    let fx = &f;
    let hello = |token: &str, name: &str, abandoned: Value| {
        let mut body = info(name);
        body["abandoned"] = abandoned;
        let token = token.to_owned();
        async move {
            fx.call_as(Some(&token), "POST", "/api/agent/v1/hello", Some(body))
                .await
        }
    };

    // Not the caller's: leases taken under another token, one nobody holds, one held
    // under another name.
    for (token, name, abandoned) in [
        (&pool, "build-2", json!([third])),
        (&other, "build-1", json!([first])),
        (&pool, "build-1", json!([third, "0123abcd"])),
        (&pool, "build-9", json!([twin])),
    ] {
        let (status, v) = hello(token, name, abandoned.clone()).await;
        assert_eq!(status, StatusCode::OK, "{v}");
        assert_eq!(v["expired_leases"], 0, "{name} {abandoned}: {v}");
    }
    assert_eq!(states().await, running);

    // build-1, started again, names what its killed run held: only that lease expires.
    let (status, v) = hello(&pool, "build-1", json!([first, third])).await;
    assert_eq!(status, StatusCode::OK, "{v}");
    assert_eq!(v["expired_leases"], 1, "{v}");
    assert_eq!(
        states().await,
        vec![
            ("a".to_owned(), JobState::Queued, 1),
            ("b".to_owned(), JobState::Running, 1),
            ("c".to_owned(), JobState::Running, 1),
        ]
    );
    let log = f.server.state().logs.read_from(id, "a", 0).await.unwrap();
    let log = String::from_utf8(log).unwrap();
    assert!(
        log.contains(
            "agent build-1 was lost (it restarted) during attempt 1; the job is queued again \
             for attempt 2"
        ),
        "{log}"
    );
    let (status, state) = f
        .call_as(
            Some(&pool),
            "POST",
            &format!("/api/agent/v1/leases/{first}/heartbeat"),
            None,
        )
        .await;
    assert_eq!((status, state), (StatusCode::OK, json!("lost")));
    for lease in [&twin, &third] {
        let token = if lease == &third { &other } else { &pool };
        let (status, state) = f
            .call_as(
                Some(token),
                "POST",
                &format!("/api/agent/v1/leases/{lease}/heartbeat"),
                None,
            )
            .await;
        assert_eq!((status, state), (StatusCode::OK, json!("ok")), "{lease}");
    }
    // Said again (the answer to the first hello was lost), it changes nothing more.
    let (status, v) = hello(&pool, "build-1", json!([first])).await;
    assert_eq!(
        (status, v["expired_leases"].clone()),
        (StatusCode::OK, json!(0))
    );
    let again = f.http_lease(&pool, "build-1").await.unwrap();
    assert_eq!(
        (again["job_key"].clone(), again["attempt"].clone()),
        (json!("a"), json!(2))
    );

    // A hello naming more leases than any agent holds is refused.
    let many: Vec<String> = (0..2000).map(|i| format!("{i:08x}")).collect();
    refused(
        hello(&pool, "build-1", json!(many)).await,
        StatusCode::BAD_REQUEST,
        "invalid",
        "abandoned leases",
    );
}
