//! Triggers wired into the server: SCM polling (once per ref and commit), downstream
//! `after:` pipelines, and notifications to a local HTTP receiver.

#![allow(clippy::unwrap_used)]

mod common;

use std::time::Duration;

use common::Fixture;
use gantry_protocol::JobReport;
use gantry_store::RunState;
use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// Waits (generously) until the repository's first poll, started when it was
/// registered, has been recorded.
async fn first_poll_done(f: &Fixture) -> gantry_store::Repo {
    for _ in 0..600 {
        let repo = f.server.state().store.repo_by_name("app").await.unwrap();
        if repo.last_polled_at.is_some() {
            return repo;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("the first poll never finished");
}

async fn run_count(f: &Fixture) -> usize {
    let (_, page) = f.call("GET", "/api/runs", None).await;
    page["runs"].as_array().unwrap().len()
}

#[tokio::test]
async fn polling_starts_one_run_per_new_commit() {
    let f = Fixture::new("on:\n  push: [main]\njobs:\n  build:\n    script: [make]\n").await;
    let repo = first_poll_done(&f).await;
    assert_eq!(repo.last_error, None);
    // The first poll only learns where the refs are.
    assert_eq!(run_count(&f).await, 0);
    let commit =
        f.commit_pipeline("on:\n  push: [main]\njobs:\n  build:\n    script: [make, true]\n");
    gantry_server::loops::poll_repo(f.server.state(), &repo).await;
    let (_, page) = f.call("GET", "/api/runs", None).await;
    let runs = page["runs"].as_array().unwrap();
    assert_eq!(runs.len(), 1);
    assert_eq!(runs[0]["cause"], "Started by an SCM change (poll)");
    assert_eq!(runs[0]["event"], "poll");
    assert_eq!(runs[0]["commit"], commit.as_str());
    // Polling again, or a restart's poll, starts nothing new.
    gantry_server::loops::poll_repo(f.server.state(), &repo).await;
    f.server
        .state()
        .store
        .set_ref_head(
            repo.id,
            "refs/heads/main",
            "0000000000000000000000000000000000000000",
        )
        .await
        .unwrap();
    gantry_server::loops::poll_repo(f.server.state(), &repo).await;
    assert_eq!(run_count(&f).await, 1);
}

#[tokio::test]
async fn unreachable_repository_shows_its_error() {
    let f = Fixture::new("jobs:\n  build:\n    script: [make]\n").await;
    let (status, _) = f
        .call(
            "POST",
            "/api/repos",
            Some(json!({ "name": "gone", "url": "/nonexistent/repo.git" })),
        )
        .await;
    assert_eq!(status, axum::http::StatusCode::CREATED);
    let mut shown = None;
    for _ in 0..600 {
        let (_, repo) = f.call("GET", "/api/repos/gone", None).await;
        if repo["last_error"].is_string() {
            shown = Some(repo);
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let repo = shown.expect("the poll error is shown");
    assert!(
        repo["last_error"].as_str().unwrap().contains("ls-remote"),
        "{repo}"
    );
    assert!(repo["next_poll_at"].is_string());
    let (status, body) = f
        .call("POST", "/api/repos/gone/trigger", Some(json!({})))
        .await;
    assert_eq!(status, axum::http::StatusCode::BAD_GATEWAY, "{body}");
}

#[tokio::test]
async fn after_starts_the_downstream_pipeline_with_params() {
    let f = Fixture::new(
        "env:\n  APP: go-auth\nafter:\n  - trigger: deploy\n    params: { VERSION: \"${APP}-${GANTRY_RUN_NUMBER}\" }\njobs:\n  build:\n    script: [make]\n",
    )
    .await;
    f.repo.file(
        ".gantry/deploy.yml",
        "on:\n  manual: false\nparams:\n  VERSION:\n    type: string\njobs:\n  ship:\n    script: [ship]\n",
    );
    gantry_test_support::git(f.repo.path(), &["add", "-A"]);
    gantry_test_support::git(f.repo.path(), &["commit", "-q", "-m", "deploy"]);
    let (status, runs) = f
        .call(
            "POST",
            "/api/repos/app/trigger",
            Some(json!({ "pipeline": "app" })),
        )
        .await;
    assert_eq!(status, axum::http::StatusCode::CREATED, "{runs}");
    let lease = f.lease().await;
    f.finish(&lease, JobReport::Succeeded).await;
    // The downstream run is created by the finished run's task.
    let ship = f.lease().await;
    assert_eq!(ship.pipeline, "deploy");
    assert_eq!(ship.plan.params["VERSION"], "go-auth-1");
    let run = f.run(ship.run_id).await;
    assert_eq!(run.cause, "Triggered by run #1 of app");
    assert_eq!(run.event, "trigger");
    // Manual runs of it are refused: on.manual is false.
    let (status, body) = f
        .call(
            "POST",
            "/api/repos/app/trigger",
            Some(json!({ "pipeline": "deploy" })),
        )
        .await;
    assert_eq!(
        status,
        axum::http::StatusCode::UNPROCESSABLE_ENTITY,
        "{body}"
    );
}

/// Accepts one HTTP request on `listener`, answers 200, returns its body.
async fn receive_one(listener: tokio::net::TcpListener) -> String {
    let (mut sock, _) = listener.accept().await.unwrap();
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    loop {
        let n = sock.read(&mut chunk).await.unwrap();
        assert!(n > 0, "connection closed early");
        buf.extend_from_slice(&chunk[..n]);
        let text = String::from_utf8_lossy(&buf).into_owned();
        if let Some(end) = text.find("\r\n\r\n") {
            let len: usize = text[..end]
                .lines()
                .find_map(|l| {
                    let (k, v) = l.split_once(':')?;
                    k.eq_ignore_ascii_case("content-length")
                        .then(|| v.trim().parse().ok())?
                })
                .unwrap_or(0);
            if buf.len() >= end + 4 + len {
                sock.write_all(
                    b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\nconnection: close\r\n\r\n",
                )
                .await
                .unwrap();
                return String::from_utf8_lossy(&buf[end + 4..end + 4 + len]).into_owned();
            }
        }
    }
}

#[tokio::test]
async fn failure_notifies_the_webhook() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/hook", listener.local_addr().unwrap());
    let got = tokio::spawn(receive_one(listener));
    let f = Fixture::new(&format!(
        "notify:\n  - on: [failure]\n    webhook: {url}\njobs:\n  build:\n    script: [make]\n"
    ))
    .await;
    let id = f.trigger(json!({})).await["id"].as_i64().unwrap();
    let lease = f.lease().await;
    f.finish(&lease, common::failed()).await;
    assert_eq!(f.run(id).await.state, RunState::Failed);
    let body = tokio::time::timeout(Duration::from_secs(60), got)
        .await
        .unwrap()
        .unwrap();
    let v: serde_json::Value = serde_json::from_str(&body).unwrap();
    let text = v.to_string();
    assert!(text.contains("app #1 failed"), "{text}");
    assert!(text.contains("build"), "{text}");
}

#[tokio::test]
async fn a_schedule_slot_starts_one_run_also_across_restarts() {
    let f =
        Fixture::new("on:\n  schedule: [\"*/5 * * * *\"]\njobs:\n  nightly:\n    script: [make]\n")
            .await;
    let repo = first_poll_done(&f).await;
    // The first poll read the pipelines of the default branch, schedules included.
    gantry_server::loops::poll_repo(f.server.state(), &repo).await;
    let state = f.server.state();
    let minute = 60_000;
    // A server started at 00:01 (in some day's minutes) sees the 00:05 slot at 00:07.
    let day = 1_800_000_000_000 / (1440 * minute) * (1440 * minute);
    let mut clock = gantry_server::loops::ScheduleClock::new(day + minute);
    assert!(
        gantry_server::loops::fire_schedules(state, &mut clock, day + 3 * minute)
            .await
            .is_empty(),
        "no slot is due before 00:05"
    );
    let fired = gantry_server::loops::fire_schedules(state, &mut clock, day + 7 * minute).await;
    assert_eq!(fired.len(), 1);
    let run = f.run(fired[0]).await;
    assert_eq!(run.cause, "Started by schedule");
    assert_eq!(run.event, "schedule");
    // The same slot again, and a restarted server's fresh clock, start nothing more.
    assert!(
        gantry_server::loops::fire_schedules(state, &mut clock, day + 8 * minute)
            .await
            .is_empty()
    );
    let mut restarted = gantry_server::loops::ScheduleClock::new(day + 4 * minute);
    assert!(
        gantry_server::loops::fire_schedules(state, &mut restarted, day + 8 * minute)
            .await
            .is_empty()
    );
    // The next slot (00:10) is a new run, even after missing several checks.
    let next = gantry_server::loops::fire_schedules(state, &mut clock, day + 12 * minute).await;
    assert_eq!(next.len(), 1);
    assert_eq!(run_count(&f).await, 2);
}
