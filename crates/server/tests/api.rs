//! The HTTP surface: auth, webhooks, bad input (malformed JSON, oversized bodies, path
//! traversal, unknown ids), logs with byte ranges and live following over SSE.

#![allow(clippy::unwrap_used)]

mod common;

use axum::body::Body;
use axum::http::{Request, StatusCode};
use common::Fixture;
use gantry_protocol::JobReport;
use hmac::{Hmac, Mac};
use serde_json::json;
use sha2::Sha256;

const PIPELINE: &str = "\
on:
  push: [main]
jobs:
  build:
    script: [make]
";

#[tokio::test]
async fn auth_is_required_unless_anonymous_read_is_on() {
    let f = Fixture::new(PIPELINE).await;
    let check = |token: Option<&'static str>,
                 method: &'static str,
                 uri: &'static str,
                 expect: StatusCode| {
        let f = &f;
        async move {
            let (status, body) = f.call_as(token, method, uri, None).await;
            assert_eq!(status, expect, "{method} {uri} with {token:?}: {body}");
            if status.is_client_error() {
                assert!(body["error"].is_string(), "{body}");
            }
        }
    };
    check(None, "GET", "/api/health", StatusCode::OK).await;
    check(None, "GET", "/api/openapi.json", StatusCode::OK).await;
    check(None, "GET", "/api/runs", StatusCode::UNAUTHORIZED).await;
    check(None, "GET", "/api/repos", StatusCode::UNAUTHORIZED).await;
    check(
        Some("gantry_wrong"),
        "GET",
        "/api/runs",
        StatusCode::UNAUTHORIZED,
    )
    .await;
    check(
        None,
        "POST",
        "/api/repos/app/trigger",
        StatusCode::UNAUTHORIZED,
    )
    .await;
    let (status, _) = f.call("GET", "/api/runs", None).await;
    assert_eq!(status, StatusCode::OK);

    let anon = Fixture::with(PIPELINE, |c| c.anonymous_read = true).await;
    let (status, _) = anon.call_as(None, "GET", "/api/runs", None).await;
    assert_eq!(status, StatusCode::OK);
    let (status, _) = anon.call_as(None, "GET", "/api/repos/app", None).await;
    assert_eq!(status, StatusCode::OK);
    // A bad token is still refused, and writing still needs a token.
    let (status, _) = anon
        .call_as(Some("gantry_wrong"), "GET", "/api/runs", None)
        .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    let (status, _) = anon
        .call_as(None, "POST", "/api/repos/app/trigger", Some(json!({})))
        .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn rotating_the_admin_token_revokes_the_old_one() {
    let f = Fixture::new(PIPELINE).await;
    let new = gantry_server::rotate_admin_token(f.server.state().store.as_ref())
        .await
        .unwrap();
    let (status, _) = f.call("GET", "/api/runs", None).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    let (status, _) = f.call_as(Some(&new), "GET", "/api/runs", None).await;
    assert_eq!(status, StatusCode::OK);
}

fn github_push(f: &Fixture, secret: &str, delivery: &str) -> Request<Body> {
    let body = json!({
        "ref": "refs/heads/main",
        "before": "0000000000000000000000000000000000000000",
        "after": f.head(),
        "pusher": { "name": "alice" },
        "repository": { "clone_url": "https://example.invalid/app.git" }
    })
    .to_string();
    let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).unwrap();
    mac.update(body.as_bytes());
    let sig = hex::encode(mac.finalize().into_bytes());
    Request::post("/hooks/app")
        .header("content-type", "application/json")
        .header("x-github-event", "push")
        .header("x-github-delivery", delivery)
        .header("x-hub-signature-256", format!("sha256={sig}"))
        .body(Body::from(body))
        .unwrap()
}

#[tokio::test]
async fn webhooks_are_verified_and_deduplicated() {
    let f = Fixture::new(PIPELINE).await;
    let runs = || async {
        let (_, page) = f.call("GET", "/api/runs", None).await;
        page["runs"].as_array().unwrap().len()
    };
    // A forged signature starts nothing.
    let (status, body) = f.raw(github_push(&f, "wrong", "d1")).await;
    assert_eq!(
        status,
        StatusCode::UNAUTHORIZED,
        "{}",
        String::from_utf8_lossy(&body)
    );
    // So does a missing one.
    let mut unsigned = github_push(&f, "s3cret", "d1");
    unsigned.headers_mut().remove("x-hub-signature-256");
    let (status, _) = f.raw(unsigned).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_eq!(runs().await, 0);

    let (status, body) = f.raw(github_push(&f, "s3cret", "d1")).await;
    assert_eq!(
        status,
        StatusCode::CREATED,
        "{}",
        String::from_utf8_lossy(&body)
    );
    let v: serde_json::Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(v["runs"][0]["cause"], "Started by push webhook from alice");
    assert_eq!(v["runs"][0]["event"], "push");
    assert_eq!(runs().await, 1);
    // A redelivery, or another delivery of the same push, starts nothing new.
    for delivery in ["d1", "d2"] {
        let (status, body) = f.raw(github_push(&f, "s3cret", delivery)).await;
        assert_eq!(
            status,
            StatusCode::ACCEPTED,
            "{}",
            String::from_utf8_lossy(&body)
        );
    }
    assert_eq!(runs().await, 1);
    // Unknown repositories are 404.
    let mut other = github_push(&f, "s3cret", "d3");
    *other.uri_mut() = "/hooks/nope".parse().unwrap();
    let (status, _) = f.raw(other).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn bad_input_gets_clear_errors_and_changes_nothing() {
    let f = Fixture::new(PIPELINE).await;
    let send = |method: &str, uri: &str, body: Vec<u8>| {
        Request::builder()
            .method(method)
            .uri(uri)
            .header("authorization", format!("Bearer {}", f.token))
            .header("content-type", "application/json")
            .body(Body::from(body))
            .unwrap()
    };
    let cases: Vec<(Request<Body>, StatusCode, &str)> = vec![
        (
            send("POST", "/api/repos", b"{not json".to_vec()),
            StatusCode::BAD_REQUEST,
            "invalid JSON",
        ),
        (
            send("POST", "/api/repos", br#"{"name":"x"}"#.to_vec()),
            StatusCode::BAD_REQUEST,
            "url",
        ),
        (
            send(
                "POST",
                "/api/repos",
                br#"{"name":"../x","url":"/tmp"}"#.to_vec(),
            ),
            StatusCode::BAD_REQUEST,
            "invalid repository name",
        ),
        (
            send("POST", "/api/repos/app/trigger", b"[1,2]".to_vec()),
            StatusCode::BAD_REQUEST,
            "invalid JSON",
        ),
        (
            send("POST", "/api/repos", vec![b' '; 100 * 1024]),
            StatusCode::PAYLOAD_TOO_LARGE,
            "too large",
        ),
        (
            send("POST", "/hooks/app", vec![b'x'; 100 * 1024]),
            StatusCode::PAYLOAD_TOO_LARGE,
            "larger than",
        ),
        (
            send("GET", "/api/runs/999", vec![]),
            StatusCode::NOT_FOUND,
            "run 999 not found",
        ),
        (
            send("GET", "/api/runs/abc", vec![]),
            StatusCode::NOT_FOUND,
            "not found",
        ),
        (
            send("POST", "/api/runs/999/cancel", vec![]),
            StatusCode::NOT_FOUND,
            "not found",
        ),
        (
            send("GET", "/api/repos/nope", vec![]),
            StatusCode::NOT_FOUND,
            "not found",
        ),
        (
            send("GET", "/api/nothing", vec![]),
            StatusCode::NOT_FOUND,
            "no such route",
        ),
        (
            send("GET", "/api/runs?state=bogus", vec![]),
            StatusCode::BAD_REQUEST,
            "unknown run state",
        ),
    ];
    for (req, expect, needle) in cases {
        let what = format!("{} {}", req.method(), req.uri());
        let (status, body) = f.raw(req).await;
        let body = String::from_utf8_lossy(&body);
        assert_eq!(status, expect, "{what}: {body}");
        let v: serde_json::Value =
            serde_json::from_str(&body).unwrap_or_else(|_| panic!("{what}: not JSON: {body}"));
        assert!(
            v["error"].as_str().unwrap().contains(needle),
            "{what}: {body}"
        );
    }
    let (_, repos) = f.call("GET", "/api/repos", None).await;
    assert_eq!(repos.as_array().unwrap().len(), 1);
    let (status, _) = f
        .call(
            "POST",
            "/api/repos",
            Some(json!({ "name": "app", "url": "/x" })),
        )
        .await;
    assert_eq!(status, StatusCode::CONFLICT);
}

#[tokio::test]
async fn path_traversal_is_refused() {
    let f = Fixture::new(PIPELINE).await;
    let id = f.trigger(json!({})).await["id"].as_i64().unwrap();
    let cases = [
        (
            format!("/api/runs/{id}/artifacts/build/..%2F..%2Fetc%2Fpasswd"),
            StatusCode::BAD_REQUEST,
        ),
        (
            format!("/api/runs/{id}/artifacts/build/a/../../b"),
            StatusCode::BAD_REQUEST,
        ),
        (
            format!("/api/runs/{id}/artifacts/build/%2Fetc%2Fpasswd"),
            StatusCode::BAD_REQUEST,
        ),
        (
            format!("/api/runs/{id}/artifacts/build/missing"),
            StatusCode::NOT_FOUND,
        ),
        (
            format!("/api/runs/{id}/artifacts/..%2F..%2Fx/y"),
            StatusCode::BAD_REQUEST,
        ),
        (
            format!("/api/runs/{id}/jobs/..%2F..%2Fetc%2Fpasswd/log"),
            StatusCode::BAD_REQUEST,
        ),
        (
            format!("/api/runs/{id}/jobs/nope/log"),
            StatusCode::NOT_FOUND,
        ),
        (format!("/api/runs/{id}/jobs/7/log"), StatusCode::NOT_FOUND),
    ];
    for (uri, expect) in cases {
        let (status, body) = f.call("GET", &uri, None).await;
        assert_eq!(status, expect, "{uri}: {body}");
        assert!(body["error"].is_string(), "{uri}: {body}");
    }
}

async fn get_text(
    f: &Fixture,
    uri: &str,
    headers: &[(&str, &str)],
) -> (StatusCode, axum::http::HeaderMap, String) {
    let mut req = Request::get(uri).header("authorization", format!("Bearer {}", f.token));
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    let app = gantry_server::api::router(f.server.state().clone());
    let resp = tower::ServiceExt::oneshot(app, req.body(Body::empty()).unwrap())
        .await
        .unwrap();
    let status = resp.status();
    let headers = resp.headers().clone();
    let body = http_body_util::BodyExt::collect(resp.into_body())
        .await
        .unwrap()
        .to_bytes();
    (status, headers, String::from_utf8_lossy(&body).into_owned())
}

/// `(event, id, data)` of each SSE event in a complete stream.
fn events(text: &str) -> Vec<(String, Option<u64>, String)> {
    text.split("\n\n")
        .filter(|block| !block.trim().is_empty())
        .filter_map(|block| {
            let mut event = None;
            let mut id = None;
            let mut data = String::new();
            for line in block.lines() {
                if let Some(v) = line.strip_prefix("event: ") {
                    event = Some(v.to_string());
                } else if let Some(v) = line.strip_prefix("id: ") {
                    id = v.parse().ok();
                } else if let Some(v) = line.strip_prefix("data: ") {
                    data = v.to_string();
                }
            }
            event.map(|e| (e, id, data))
        })
        .collect()
}

#[tokio::test]
async fn logs_serve_ranges_and_stream_with_resume() {
    let f = Fixture::new(PIPELINE).await;
    let id = f.trigger(json!({})).await["id"].as_i64().unwrap();
    let lease = f.lease().await;
    f.log(&lease.id, 0, &["one", "two"]).await;
    f.log(&lease.id, 0, &["one", "two"]).await; // resent batch: stored once
    f.log(&lease.id, 1, &["three"]).await;

    // Follow live: the stream is opened before the last line and the end exist.
    let follow = {
        let uri = format!("/api/runs/{id}/jobs/build/log/stream");
        let app = gantry_server::api::router(f.server.state().clone());
        let token = f.token.clone();
        tokio::spawn(async move {
            let req = Request::get(uri)
                .header("authorization", format!("Bearer {token}"))
                .body(Body::empty())
                .unwrap();
            let resp = tower::ServiceExt::oneshot(app, req).await.unwrap();
            let body = http_body_util::BodyExt::collect(resp.into_body())
                .await
                .unwrap()
                .to_bytes();
            String::from_utf8_lossy(&body).into_owned()
        })
    };
    f.log(&lease.id, 2, &["four"]).await;
    f.finish(&lease, JobReport::Succeeded).await;
    let live = events(
        &tokio::time::timeout(std::time::Duration::from_secs(60), follow)
            .await
            .unwrap()
            .unwrap(),
    );
    let texts: Vec<&str> = live
        .iter()
        .filter(|e| e.0 == "line")
        .map(|e| e.2.splitn(3, ' ').nth(2).unwrap())
        .collect();
    assert_eq!(texts[1..5], ["one", "two", "three", "four"], "{live:?}");
    assert!(texts[0].starts_with("leased to executor test"), "{texts:?}");
    assert_eq!(live.last().unwrap().0, "end");
    assert_eq!(live.last().unwrap().2, "succeeded");

    // The whole text, then ranges of it.
    let (status, headers, text) =
        get_text(&f, &format!("/api/runs/{id}/jobs/build/log"), &[]).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(headers["accept-ranges"], "bytes");
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines[1..5], ["one", "two", "three", "four"], "{text}");
    let start = text.find("two").unwrap();
    let range = format!("bytes={start}-{}", start + 2);
    let (status, headers, part) = get_text(
        &f,
        &format!("/api/runs/{id}/jobs/0/log"),
        &[("range", &range)],
    )
    .await;
    assert_eq!(status, StatusCode::PARTIAL_CONTENT);
    assert_eq!(part, "two");
    assert_eq!(
        headers["content-range"].to_str().unwrap(),
        format!("bytes {start}-{}/{}", start + 2, text.len())
    );
    let (status, _, tail) = get_text(
        &f,
        &format!("/api/runs/{id}/jobs/build/log"),
        &[("range", "bytes=-5")],
    )
    .await;
    assert_eq!(status, StatusCode::PARTIAL_CONTENT);
    assert_eq!(tail, text[text.len() - 5..]);
    let past = format!("bytes={}-", text.len() + 10);
    let (status, _, _) = get_text(
        &f,
        &format!("/api/runs/{id}/jobs/build/log"),
        &[("range", &past)],
    )
    .await;
    assert_eq!(status, StatusCode::RANGE_NOT_SATISFIABLE);
    // Stored form: time and stream fields kept.
    let (_, _, stored) = get_text(
        &f,
        &format!("/api/runs/{id}/jobs/build/log?format=stored"),
        &[],
    )
    .await;
    assert!(stored.contains("1 o one\n"), "{stored}");

    // Resume after the line "two": the stream continues with "three", nothing repeated.
    let two = live.iter().find(|e| e.2.ends_with(" two")).unwrap();
    let last_id = two.1.unwrap().to_string();
    let (_, _, resumed) = get_text(
        &f,
        &format!("/api/runs/{id}/jobs/build/log/stream"),
        &[("last-event-id", &last_id)],
    )
    .await;
    let resumed = events(&resumed);
    assert!(resumed[0].2.ends_with(" three"), "{resumed:?}");
    assert_eq!(resumed.len(), live.len() - 3, "{resumed:?}");
    assert_eq!(resumed.last().unwrap().0, "end");
}

#[tokio::test]
async fn runs_list_pages_and_filters() {
    let f = Fixture::new(PIPELINE).await;
    for _ in 0..3 {
        f.trigger(json!({})).await;
    }
    let (_, page) = f.call("GET", "/api/runs?limit=2", None).await;
    let runs = page["runs"].as_array().unwrap();
    assert_eq!(runs.len(), 2);
    assert_eq!(runs[0]["number"], 3);
    let next = page["next"].as_i64().unwrap();
    let (_, page2) = f
        .call("GET", &format!("/api/runs?limit=2&before={next}"), None)
        .await;
    assert_eq!(page2["runs"].as_array().unwrap().len(), 1);
    assert_eq!(page2["next"], serde_json::Value::Null);
    let (_, queued) = f
        .call(
            "GET",
            "/api/runs?repo=app&pipeline=app&state=queued,running",
            None,
        )
        .await;
    assert_eq!(queued["runs"].as_array().unwrap().len(), 3);
    let (_, one) = f
        .call("GET", &format!("/api/runs/{}", runs[0]["id"]), None)
        .await;
    assert_eq!(one["jobs"][0]["name"], "build");
    assert_eq!(one["jobs"][0]["state"], "queued");
    assert!(one["created_at"].as_str().unwrap().ends_with('Z'));
    let (status, repo) = f.call("GET", "/api/repos/app", None).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(repo["pipelines"][0]["name"], "app");
    assert_eq!(repo["webhook"], true);
    assert!(repo.get("webhook_secret").is_none());
}

#[tokio::test]
async fn params_list_allowed_refs() {
    let f = Fixture::new(
        "params:\n  VERSION:\n    type: ref\n    pattern: \"v*\"\n    default: main\n  MODE:\n    type: choice\n    choices: [fast, full]\njobs:\n  build:\n    script: [make]\n",
    )
    .await;
    gantry_test_support::git(f.repo.path(), &["tag", "v1.0"]);
    gantry_test_support::git(f.repo.path(), &["tag", "v1.10"]);
    gantry_test_support::git(f.repo.path(), &["tag", "other"]);
    let (status, params) = f
        .call("GET", "/api/repos/app/pipelines/app/params", None)
        .await;
    assert_eq!(status, StatusCode::OK, "{params}");
    assert_eq!(params[0]["name"], "VERSION");
    assert_eq!(params[0]["type"], "ref");
    assert_eq!(params[0]["allowed"], json!(["v1.10", "v1.0", "main"]));
    assert_eq!(params[1]["choices"], json!(["fast", "full"]));
    // A manual run with the ref param builds that ref.
    let run = f.trigger(json!({ "params": { "VERSION": "v1.0" } })).await;
    assert_eq!(run["ref"], "refs/tags/v1.0");
    assert_eq!(run["params"]["VERSION"], "v1.0");
}
