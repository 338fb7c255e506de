//! Jobs that wait for approval (`environment: { approval: required }`), through the real
//! router on a real repository and store: the job is held in state `waiting` once its
//! needs succeeded, shows as "waiting for approval" on every page, and goes on only when
//! an admin approves it (API or the run page's form); a rejection fails it and the DAG
//! rules carry on; cancelling the run cancels it.

#![allow(clippy::unwrap_used)]

mod common;
mod webutil;

use axum::http::StatusCode;
use common::Fixture;
use gantry_protocol::JobReport;
use gantry_store::{JobState, RunState};
use serde_json::{Value, json};
use webutil::{csrf, get, login, post, request};

const PIPE: &str = "\
on:
  manual: true
jobs:
  build:
    script: [make]
  deploy:
    needs: [build]
    environment: { name: production, approval: required }
    script: [deploy]
  smoke:
    needs: [deploy]
    script: [smoke]
  cleanup:
    when: { status: failure }
    script: [cleanup]
";

/// Triggers a run and lets `build` succeed: `deploy` then waits. Returns the run id.
async fn run_to_the_gate(f: &Fixture) -> i64 {
    let id = f.trigger(json!({})).await["id"].as_i64().unwrap();
    let build = f.lease().await;
    assert_eq!(build.job_key, "build");
    f.finish(&build, JobReport::Succeeded).await;
    id
}

async fn state_of(f: &Fixture, id: i64, key: &str) -> JobState {
    f.jobs(id)
        .await
        .into_iter()
        .find(|j| j.key == key)
        .unwrap()
        .state
}

async fn log_of(f: &Fixture, id: i64, key: &str) -> String {
    let (status, v) = f
        .call("GET", &format!("/api/runs/{id}/jobs/{key}/log"), None)
        .await;
    assert_eq!(status, StatusCode::OK);
    v.as_str().unwrap_or_default().to_string()
}

/// `POST /api/runs/{id}/jobs/{job}/{answer}` with the admin token.
async fn answer(f: &Fixture, id: i64, job: &str, answer: &str) -> (StatusCode, Value) {
    f.call("POST", &format!("/api/runs/{id}/jobs/{job}/{answer}"), None)
        .await
}

fn job_json<'a>(run: &'a Value, key: &str) -> &'a Value {
    run["jobs"]
        .as_array()
        .unwrap()
        .iter()
        .find(|j| j["key"] == key)
        .unwrap()
}

#[tokio::test]
async fn an_approved_job_runs_and_approving_again_changes_nothing() {
    let f = Fixture::new(PIPE).await;
    let id = run_to_the_gate(&f).await;
    assert_eq!(state_of(&f, id, "deploy").await, JobState::Waiting);
    assert!(
        f.try_lease().await.is_none(),
        "a waiting job is not handed out"
    );
    assert_eq!(f.run(id).await.state, RunState::Running);
    let (_, run) = f.call("GET", &format!("/api/runs/{id}"), None).await;
    let deploy = job_json(&run, "deploy");
    assert_eq!(deploy["state"], "waiting");
    assert_eq!(
        deploy["message"],
        "waiting for approval to deploy to production"
    );
    assert!(deploy["approval"].is_null());
    assert!(
        log_of(&f, id, "deploy")
            .await
            .contains("waiting for approval to deploy to production")
    );

    // Without a token: refused, nothing changes.
    let (status, _) = f
        .call_as(
            None,
            "POST",
            &format!("/api/runs/{id}/jobs/deploy/approve"),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_eq!(state_of(&f, id, "deploy").await, JobState::Waiting);

    let (status, run) = answer(&f, id, "deploy", "approve").await;
    assert_eq!(status, StatusCode::OK, "{run}");
    let deploy = job_json(&run, "deploy");
    assert_eq!(deploy["state"], "queued");
    assert_eq!(deploy["approval"]["answer"], "approved");
    assert_eq!(deploy["approval"]["by"], "admin");
    // Again, by index this time: the same answer, no second log line.
    let (status, again) = answer(&f, id, "1", "approve").await;
    assert_eq!(status, StatusCode::OK, "{again}");
    assert_eq!(job_json(&again, "deploy")["approval"], deploy["approval"]);
    assert_eq!(
        log_of(&f, id, "deploy")
            .await
            .matches("approved by admin")
            .count(),
        1
    );
    // The other answer comes too late.
    let (status, body) = answer(&f, id, "deploy", "reject").await;
    assert_eq!(status, StatusCode::CONFLICT, "{body}");
    assert_eq!(body["error"], "job deploy was already approved by admin");

    // It runs, and what needs it after it.
    let deploy = f.lease().await;
    assert_eq!(deploy.job_key, "deploy");
    f.finish(&deploy, JobReport::Succeeded).await;
    let smoke = f.lease().await;
    assert_eq!(smoke.job_key, "smoke");
    f.finish(&smoke, JobReport::Succeeded).await;
    let run = f.run(id).await;
    assert_eq!(run.state, RunState::Succeeded);
    assert_eq!(state_of(&f, id, "cleanup").await, JobState::Skipped);
}

#[tokio::test]
async fn a_rejected_job_fails_and_the_dag_rules_go_on() {
    let f = Fixture::new(PIPE).await;
    let id = run_to_the_gate(&f).await;
    // The `failure` job keeps waiting while the gate is closed: the deploy may still fail.
    assert_eq!(state_of(&f, id, "cleanup").await, JobState::Pending);
    // Not waiting (yet, or any more): 409.
    let (status, body) = answer(&f, id, "build", "approve").await;
    assert_eq!(status, StatusCode::CONFLICT);
    assert_eq!(
        body["error"],
        "job build is succeeded, not waiting for approval"
    );
    let (status, _) = answer(&f, id, "nope", "approve").await;
    assert_eq!(status, StatusCode::NOT_FOUND);

    let (status, run) = answer(&f, id, "deploy", "reject").await;
    assert_eq!(status, StatusCode::OK, "{run}");
    let jobs = f.jobs(id).await;
    let by_key = |k: &str| jobs.iter().find(|j| j.key == k).unwrap();
    assert_eq!(by_key("deploy").state, JobState::Failed);
    assert_eq!(
        by_key("deploy").message.as_deref(),
        Some("rejected by admin")
    );
    assert_eq!(by_key("smoke").state, JobState::Skipped);
    assert_eq!(
        by_key("smoke").message.as_deref(),
        Some("needs \"deploy\", which failed")
    );
    assert_eq!(by_key("cleanup").state, JobState::Queued);
    assert!(log_of(&f, id, "deploy").await.contains("rejected by admin"));
    // Rejecting again is harmless; approving now is too late.
    assert_eq!(answer(&f, id, "deploy", "reject").await.0, StatusCode::OK);
    assert_eq!(
        answer(&f, id, "deploy", "approve").await.0,
        StatusCode::CONFLICT
    );
    let cleanup = f.lease().await;
    assert_eq!(cleanup.job_key, "cleanup");
    f.finish(&cleanup, JobReport::Succeeded).await;
    assert_eq!(f.run(id).await.state, RunState::Failed);
}

#[tokio::test]
async fn cancelling_the_run_cancels_a_waiting_job() {
    let f = Fixture::new(PIPE).await;
    let id = run_to_the_gate(&f).await;
    let (status, run) = f
        .call("POST", &format!("/api/runs/{id}/cancel"), None)
        .await;
    assert_eq!(status, StatusCode::OK, "{run}");
    assert_eq!(run["state"], "cancelled");
    assert_eq!(job_json(&run, "deploy")["state"], "cancelled");
    let (status, _) = answer(&f, id, "deploy", "approve").await;
    assert_eq!(status, StatusCode::CONFLICT);
}

#[tokio::test]
async fn a_waiting_job_still_waits_after_a_restart() {
    let f = Fixture::new(PIPE).await;
    let id = run_to_the_gate(&f).await;
    let token = f.token.clone();
    let Fixture {
        data,
        repo: _repo,
        server,
        pg,
        ..
    } = f;
    server.shutdown().await;
    let server = common::start_server(common::config(data.path()), &pg).await;
    let store = &server.state().store;
    let deploy = store.jobs(id).await.unwrap().remove(1);
    assert_eq!(
        (deploy.key.as_str(), deploy.state),
        ("deploy", JobState::Waiting)
    );
    let source = server.job_source();
    let none = source
        .lease(&common::executor("test"), std::time::Duration::ZERO)
        .await
        .unwrap();
    assert!(none.is_none(), "restarting approves nothing");
    let req = axum::http::Request::post(format!("/api/runs/{id}/jobs/deploy/approve"))
        .header("authorization", format!("Bearer {token}"))
        .body(axum::body::Body::empty())
        .unwrap();
    let resp = tower::ServiceExt::oneshot(gantry_server::api::router(server.state().clone()), req)
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    let lease = source
        .lease(
            &common::executor("test"),
            std::time::Duration::from_secs(60),
        )
        .await
        .unwrap()
        .unwrap();
    assert_eq!(lease.job_key, "deploy");
    server.shutdown().await;
}

// ---------------------------------------------------------------------------------------
// The web UI

/// The status span of state `waiting`, as every page writes it.
const WAITING: &str = "<span class=\"status status-waiting\" data-state=\"waiting\"><span class=\"icon\" aria-hidden=\"true\">⚑</span> <span class=\"word\">waiting for approval</span></span>";

#[tokio::test]
async fn pages_show_the_wait_and_the_run_page_answers_it() {
    let f = Fixture::new(PIPE).await;
    let id = run_to_the_gate(&f).await;
    let s = login(&f).await;

    // Every status span: the run page's graph node, job row and approval list…
    let r = get(&f, &format!("/runs/{id}"), &s).await;
    assert_eq!(r.status, StatusCode::OK);
    let run_page = r.body;
    assert!(
        run_page.contains(
            "<g class=\"node status-waiting\" data-job=\"deploy\" data-state=\"waiting\">"
        )
    );
    assert!(run_page.contains("<tspan class=\"node-word\">waiting for approval</tspan>"));
    assert!(run_page.contains(&format!(
        "<tr class=\"job-row\" data-job=\"deploy\" data-state=\"waiting\"><th scope=\"row\"><a href=\"/runs/{id}/jobs/deploy\">deploy</a></th><td class=\"job-status\">{WAITING}</td>"
    )));
    // …and the run itself, whose only unfinished work waits.
    assert!(run_page.contains(&format!("<span id=\"run-status\">{WAITING}</span>")));
    assert!(run_page.contains(&format!(
        "<form id=\"approve-form-deploy\" method=\"post\" action=\"/runs/{id}/jobs/deploy/approve\""
    )));
    assert!(run_page.contains(&format!(
        "<form id=\"reject-form-deploy\" method=\"post\" action=\"/runs/{id}/jobs/deploy/reject\""
    )));
    assert!(run_page.contains("waiting for approval to deploy to production"));

    // The pipeline view's cell and row, the dashboard, the log page, the live JSON.
    let view = get(&f, "/repos/app/pipelines/app", &s).await.body;
    assert!(view.contains(&format!(
        "<td class=\"job-cell status-waiting\" data-job=\"deploy\" data-state=\"waiting\"><a href=\"/runs/{id}/jobs/deploy\">{WAITING}"
    )));
    assert!(view.contains(&format!(
        "data-run-id=\"{id}\" data-run-number=\"1\" data-state=\"waiting\""
    )));
    let home = get(&f, "/", &s).await.body;
    assert!(home.contains(&format!("#1</a> {WAITING}")), "{home}");
    assert!(home.contains("<li class=\"history-item status-waiting\" data-state=\"waiting\">"));
    let log = get(&f, &format!("/runs/{id}/jobs/deploy"), &s).await.body;
    assert!(log.contains("id=\"approval-notice\""));
    assert!(log.contains(&format!("<span id=\"job-status\">{WAITING}</span>")));
    let live = get(&f, &format!("/ui/runs/{id}/status"), &s).await.body;
    let live: Value = serde_json::from_str(&live).unwrap();
    assert_eq!(live["state"], "waiting");
    assert_eq!(live["final"], false);
    assert_eq!(job_json(&live, "deploy")["state"], "waiting");

    // The form needs the CSRF token.
    let uri = format!("/runs/{id}/jobs/deploy/approve");
    let r = post(&f, &uri, &s, "csrf=nope").await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    assert_eq!(state_of(&f, id, "deploy").await, JobState::Waiting);
    let form = format!("csrf={}", csrf(&run_page));
    let r = post(&f, &uri, &s, &form).await;
    assert_eq!(r.status, StatusCode::SEE_OTHER, "{}", r.body);
    assert_eq!(r.location.unwrap(), format!("/runs/{id}"));
    assert_eq!(state_of(&f, id, "deploy").await, JobState::Queued);
    // Submitted twice (a double click): the same page, one log line.
    let r = post(&f, &uri, &s, &form).await;
    assert_eq!(r.status, StatusCode::SEE_OTHER);
    assert_eq!(
        log_of(&f, id, "deploy")
            .await
            .matches("approved by admin")
            .count(),
        1
    );
    // Rejecting it now is refused, as a page.
    let r = post(&f, &format!("/runs/{id}/jobs/deploy/reject"), &s, &form).await;
    assert_eq!(r.status, StatusCode::CONFLICT);
    assert!(r.body.contains("id=\"error-message\""), "{}", r.body);
    // The run page now says who approved it, and has no forms left.
    let run_page = get(&f, &format!("/runs/{id}"), &s).await.body;
    assert!(!run_page.contains("id=\"approve-form-deploy\""));
    assert!(run_page.contains("approved by admin at "), "{run_page}");
}

#[tokio::test]
async fn anonymous_readers_see_the_wait_but_no_buttons() {
    let f = Fixture::with(PIPE, |c| c.anonymous_read = true).await;
    let id = run_to_the_gate(&f).await;
    let r = request(&f, "GET", &format!("/runs/{id}"), None, None).await;
    assert_eq!(r.status, StatusCode::OK);
    assert!(r.body.contains("id=\"approvals\""));
    assert!(r.body.contains("class=\"muted approval-readonly\""));
    assert!(!r.body.contains("id=\"approve-form-deploy\""));
    let r = request(
        &f,
        "POST",
        &format!("/runs/{id}/jobs/deploy/approve"),
        None,
        Some("csrf="),
    )
    .await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    assert_eq!(state_of(&f, id, "deploy").await, JobState::Waiting);
}
