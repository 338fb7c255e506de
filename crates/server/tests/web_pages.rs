//! The web UI through the real router: login and CSRF, anonymous access, every page of
//! a seeded run (a real repository, SQLite store and in-process job source), the SVG
//! graph, the log page (ANSI, the failing command, escaping), the run form and its
//! validation errors.

#![allow(clippy::unwrap_used)]

mod common;
mod webutil;

use std::collections::BTreeMap;

use axum::http::StatusCode;
use common::Fixture;
use gantry_engine::artifacts::{Manifest, ManifestEntry};
use gantry_protocol::{Finish, JobReport};
use serde_json::json;
use sha2::{Digest, Sha256};
use webutil::{cookie_value, count, csrf, get, login, post, request};

/// A matrix job (with a value that looks like HTML), a job after it and one after that.
const PIPE: &str = "\
on:
  push: [main]
  manual: true
jobs:
  build:
    matrix:
      V: [\"1\", \"<b>x</b>\"]
    script: [make]
    artifacts: [out/app]
  test:
    needs: [build]
    script: [make test]
  deploy:
    needs: [test]
    script: [deploy]
";

const PARAMS: &str = "\
on:
  manual: true
params:
  VERSION:
    type: ref
    pattern: \"v*\"
    default: main
    description: What to release
  MODE:
    type: choice
    choices: [fast, full]
    default: fast
  LOUD:
    type: bool
    default: false
  NOTE:
    type: string
    default: hello
jobs:
  build:
    script: [make]
";

#[tokio::test]
async fn anonymous_visitors_are_sent_to_login() {
    let f = Fixture::new(PIPE).await;
    for uri in ["/", "/runs/1", "/repos/app/pipelines/app"] {
        let r = request(&f, "GET", uri, None, None).await;
        assert_eq!(r.status, StatusCode::SEE_OTHER, "{uri}");
        let loc = r.location.unwrap();
        assert!(loc.starts_with("/login?next=/"), "{uri}: {loc}");
    }
    // A bogus session cookie is no login either.
    let r = request(&f, "GET", "/", Some("gantry_session=forged"), None).await;
    assert_eq!(r.status, StatusCode::SEE_OTHER);
    // Assets need no login and are cached for long.
    let r = request(&f, "GET", "/assets/gantry.css", None, None).await;
    assert_eq!(r.status, StatusCode::OK);
    assert!(r.cache.unwrap().contains("max-age=31536000"));
    assert!(r.body.contains(".status"));
}

#[tokio::test]
async fn anonymous_read_shows_pages_without_buttons() {
    let f = Fixture::with(PIPE, |c| c.anonymous_read = true).await;
    let id = f.trigger(json!({})).await["id"].as_i64().unwrap();
    let r = request(&f, "GET", "/", None, None).await;
    assert_eq!(r.status, StatusCode::OK);
    assert!(r.body.contains("id=\"login-link\""));
    let r = request(&f, "GET", &format!("/runs/{id}"), None, None).await;
    assert_eq!(r.status, StatusCode::OK);
    assert!(!r.body.contains("id=\"cancel-form\""), "{}", r.body);
    // Anonymous visitors cannot act even with a well-formed form.
    let r = request(
        &f,
        "POST",
        &format!("/runs/{id}/cancel"),
        None,
        Some("csrf="),
    )
    .await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
}

#[tokio::test]
async fn login_checks_csrf_and_token_and_logout_ends_the_session() {
    let f = Fixture::new(PIPE).await;
    let page = request(&f, "GET", "/login", None, None).await;
    let login_cookie = cookie_value(&page.cookies, "gantry_login").unwrap();
    let good = csrf(&page.body);
    // No or a wrong CSRF token: refused, no session.
    for (cookie, field) in [
        (None, good.clone()),
        (
            Some(format!("gantry_login={login_cookie}")),
            "wrong".to_string(),
        ),
    ] {
        let r = request(
            &f,
            "POST",
            "/login",
            cookie.as_deref(),
            Some(&format!("token={}&csrf={field}", f.token)),
        )
        .await;
        assert_eq!(r.status, StatusCode::FORBIDDEN);
        assert!(cookie_value(&r.cookies, "gantry_session").is_none());
    }
    // A wrong token: the form again, with an error.
    let r = request(
        &f,
        "POST",
        "/login",
        Some(&format!("gantry_login={login_cookie}")),
        Some(&format!("token=gantry_nope&csrf={good}")),
    )
    .await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);
    assert!(r.body.contains("id=\"login-error\""));
    // An open redirect is not followed.
    let r = request(
        &f,
        "POST",
        "/login",
        Some(&format!("gantry_login={login_cookie}")),
        Some(&format!(
            "token={}&csrf={good}&next=%2F%2Fevil.example",
            f.token
        )),
    )
    .await;
    assert_eq!(r.location.as_deref(), Some("/"));

    let session = login(&f).await;
    let home = get(&f, "/", &session).await;
    assert_eq!(home.status, StatusCode::OK);
    assert!(home.body.contains("signed in as <strong>admin</strong>"));
    // Logout without the CSRF token is refused; with it, the session ends.
    let r = post(&f, "/logout", &session, "csrf=bad").await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    assert_eq!(get(&f, "/", &session).await.status, StatusCode::OK);
    let r = post(
        &f,
        "/logout",
        &session,
        &format!("csrf={}", csrf(&home.body)),
    )
    .await;
    assert_eq!(r.status, StatusCode::SEE_OTHER);
    assert_eq!(get(&f, "/", &session).await.status, StatusCode::SEE_OTHER);
}

#[tokio::test]
async fn rotating_the_token_ends_its_sessions() {
    let f = Fixture::new(PIPE).await;
    let session = login(&f).await;
    assert_eq!(get(&f, "/", &session).await.status, StatusCode::OK);
    gantry_server::rotate_admin_token(f.server.state().store.as_ref())
        .await
        .unwrap();
    assert_eq!(get(&f, "/", &session).await.status, StatusCode::SEE_OTHER);
}

/// Runs PIPE once: build (V=1) succeeds with an artifact, build (V=<b>x</b>) fails
/// after `+ make` with a coloured error that looks like HTML. Returns the run id.
async fn seeded_run(f: &Fixture) -> (i64, String, String) {
    let id = f.trigger(json!({ "pipeline": "app" })).await["id"]
        .as_i64()
        .unwrap();
    let a = f.lease().await;
    let content = b"binary\n";
    let digest = hex::encode(Sha256::digest(content));
    let file = f.data.path().join("upload");
    std::fs::write(&file, content).unwrap();
    f.source.put_artifact(&a.id, &digest, &file).await.unwrap();
    f.log(&a.id, 0, &["+ make", "built"]).await;
    f.source
        .finish(
            &a.id,
            Finish {
                report: JobReport::Succeeded,
                attempts: 1,
                duration_ms: 1,
                manifest: Some(Manifest {
                    job: a.plan.jobs[a.job_index].name.clone(),
                    files: BTreeMap::from([(
                        "out/app".to_string(),
                        ManifestEntry {
                            digest,
                            size: content.len() as u64,
                            mode: 0o755,
                        },
                    )]),
                }),
            },
        )
        .await
        .unwrap();
    let b = f.lease().await;
    f.log(
        &b.id,
        0,
        &[
            "+ echo start",
            "start",
            "+ make",
            "\x1b[31merror: <script>alert(1)</script>\x1b[0m",
        ],
    )
    .await;
    f.finish(&b, common::failed()).await;
    (id, a.job_key, b.job_key)
}

#[tokio::test]
async fn pages_of_a_seeded_run() {
    let f = Fixture::new(PIPE).await;
    let (id, ok_key, bad_key) = seeded_run(&f).await;
    let s = login(&f).await;

    // Dashboard: the pipeline with its last run and history.
    let r = get(&f, "/", &s).await;
    assert_eq!(r.status, StatusCode::OK);
    assert!(
        r.body.contains("data-repo=\"app\" data-pipeline=\"app\""),
        "{}",
        r.body
    );
    assert!(r.body.contains("class=\"last-ref\">main<"));
    assert_eq!(count(&r.body, "class=\"history-item"), 1);
    assert!(r.body.contains("data-state=\"failed\""));

    // Pipeline view: a column per job in DAG order, the row's cells.
    let r = get(&f, "/repos/app/pipelines/app", &s).await;
    assert_eq!(r.status, StatusCode::OK);
    let cols: Vec<usize> = [
        &ok_key,
        &bad_key,
        &"test".to_string(),
        &"deploy".to_string(),
    ]
    .iter()
    .map(|k| {
        r.body
            .find(&format!("class=\"job-col\" data-job=\"{k}\""))
            .unwrap()
    })
    .collect();
    assert!(cols.windows(2).all(|w| w[0] < w[1]), "{cols:?}");
    assert!(r.body.contains(&format!("data-run-id=\"{id}\"")));
    assert!(r.body.contains(&format!(
        "class=\"job-cell status-failed\" data-job=\"{bad_key}\" data-state=\"failed\""
    )));
    assert!(r.body.contains(&format!(
        "class=\"job-cell status-succeeded\" data-job=\"{ok_key}\" data-state=\"succeeded\""
    )));
    // Status as icon and word, and the job name with HTML in it escaped.
    assert!(r.body.contains("<span class=\"word\">failed</span>"));
    // askama escapes with numeric entities.
    assert!(r.body.contains("&#60;b&#62;x&#60;/b&#62;"));
    assert!(!r.body.contains("<b>x</b>"));
    // The run is over: no live row.
    assert!(!r.body.contains("data-live=\"1\""));

    // Run page: one node per job, edges, the matrix group, artifacts, buttons.
    let r = get(&f, &format!("/runs/{id}"), &s).await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(count(&r.body, "<g class=\"node "), 4);
    assert_eq!(count(&r.body, "<path class=\"edge\""), 3);
    assert!(
        r.body
            .contains(&format!("data-from=\"{ok_key}\" data-to=\"test\""))
    );
    assert!(r.body.contains("data-from=\"test\" data-to=\"deploy\""));
    assert_eq!(
        count(&r.body, "<g class=\"matrix-group\" data-base=\"build\""),
        1
    );
    assert!(r.body.contains(&format!(
        "href=\"/api/runs/{id}/artifacts/{ok_key}/out/app\""
    )));
    assert!(
        r.body
            .contains("id=\"run-cause\">Started manually by admin")
    );
    assert!(r.body.contains("id=\"rerun-failed-form\""));
    assert!(!r.body.contains("id=\"cancel-form\""));
    assert!(!r.body.contains("<b>x</b>"));

    // The artifact link works with the session cookie (GET), not for writes.
    let r = get(
        &f,
        &format!("/api/runs/{id}/artifacts/{ok_key}/out/app"),
        &s,
    )
    .await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(r.body, "binary\n");
    let r = post(&f, &format!("/api/runs/{id}/rerun"), &s, "").await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);

    // Log page: ANSI rendered, HTML escaped, the failing command highlighted.
    let r = get(&f, &format!("/runs/{id}/jobs/{bad_key}"), &s).await;
    assert_eq!(r.status, StatusCode::OK);
    assert!(
        r.body
            .contains("<span class=\"fg-1\">error: &lt;script&gt;alert(1)&lt;/script&gt;</span>")
    );
    assert!(!r.body.contains("<script>alert"));
    // Line 1 is the server's "leased to executor" line.
    let failing = r
        .body
        .find("failing-cmd\" id=\"L4\"")
        .expect("line 4 is highlighted");
    assert!(r.body[failing..].contains("+ make"));
    assert_eq!(count(&r.body, "class=\"line stream-o failing-cmd\""), 1);
    assert!(r.body.contains("href=\"#L4\""));
    assert!(r.body.contains("id=\"goto-failing\""));
    assert!(
        r.body
            .contains(&format!("href=\"/api/runs/{id}/jobs/{bad_key}/log\""))
    );
    assert!(!r.body.contains("data-live=\"1\""));
    // A succeeded job highlights nothing.
    let r = get(&f, &format!("/runs/{id}/jobs/{ok_key}"), &s).await;
    assert!(!r.body.contains("failing-cmd"));

    // Live status JSON.
    let r = get(&f, &format!("/ui/runs/{id}/status"), &s).await;
    let v: serde_json::Value = serde_json::from_str(&r.body).unwrap();
    assert_eq!(v["state"], "failed");
    assert_eq!(v["final"], true);
    assert_eq!(v["jobs"].as_array().unwrap().len(), 4);

    // Unknown things are 404 pages.
    for uri in [
        "/runs/999".to_string(),
        format!("/runs/{id}/jobs/nope"),
        "/repos/app/pipelines/nope".to_string(),
    ] {
        let r = get(&f, &uri, &s).await;
        assert_eq!(r.status, StatusCode::NOT_FOUND, "{uri}");
        assert!(r.body.contains("id=\"error-message\""));
    }
}

#[tokio::test]
async fn run_actions_need_the_csrf_token() {
    let f = Fixture::new(PIPE).await;
    let (id, _, _) = seeded_run(&f).await;
    let s = login(&f).await;
    let page = get(&f, &format!("/runs/{id}"), &s).await;
    let token = csrf(&page.body);
    for form in ["", "csrf=", "csrf=nope"] {
        let r = post(&f, &format!("/runs/{id}/rerun-failed"), &s, form).await;
        assert_eq!(r.status, StatusCode::FORBIDDEN, "{form}");
    }
    // The same token without the session cookie is refused too.
    let r = request(
        &f,
        "POST",
        &format!("/runs/{id}/rerun"),
        None,
        Some(&format!("csrf={token}")),
    )
    .await;
    assert_eq!(r.status, StatusCode::SEE_OTHER);
    assert!(r.location.unwrap().starts_with("/login"));
    let before = f
        .server
        .state()
        .store
        .list_runs(&Default::default())
        .await
        .unwrap()
        .len();
    assert_eq!(before, 1);
    let r = post(
        &f,
        &format!("/runs/{id}/rerun-failed"),
        &s,
        &format!("csrf={token}"),
    )
    .await;
    assert_eq!(r.status, StatusCode::SEE_OTHER, "{}", r.body);
    let new_id: i64 = r
        .location
        .unwrap()
        .trim_start_matches("/runs/")
        .parse()
        .unwrap();
    assert_ne!(new_id, id);
    let new = f.run(new_id).await;
    assert_eq!(new.rerun_of, Some(id));
    // The new run is live and can be cancelled from its page.
    let page = get(&f, &format!("/runs/{new_id}"), &s).await;
    assert!(page.body.contains("data-live=\"1\""));
    assert!(page.body.contains("id=\"cancel-form\""));
    let r = post(
        &f,
        &format!("/runs/{new_id}/cancel"),
        &s,
        &format!("csrf={token}"),
    )
    .await;
    assert_eq!(r.status, StatusCode::SEE_OTHER);
    assert!(f.run(new_id).await.cancel_requested);
}

#[tokio::test]
async fn long_logs_render_their_tail_with_a_link_to_all() {
    let f = Fixture::new(PIPE).await;
    let id = f.trigger(json!({})).await["id"].as_i64().unwrap();
    let a = f.lease().await;
    let lines: Vec<String> = (1..=6000).map(|i| format!("line {i}")).collect();
    let refs: Vec<&str> = lines.iter().map(String::as_str).collect();
    f.log(&a.id, 0, &refs).await;
    let s = login(&f).await;
    let uri = format!("/runs/{id}/jobs/{}", a.job_key);
    let r = get(&f, &uri, &s).await;
    assert_eq!(r.status, StatusCode::OK);
    assert!(r.body.contains("id=\"log-truncated\""));
    assert!(r.body.contains("id=\"show-all\""));
    // 6,001 lines with the server's "leased" line: the last 5,000 are shown.
    assert!(r.body.contains("id=\"L6001\""));
    assert!(r.body.contains("id=\"L1002\""));
    assert!(!r.body.contains("id=\"L1001\""));
    // The job still runs: the page follows from the end of what it showed.
    assert!(r.body.contains("data-live=\"1\""));
    assert!(r.body.contains("id=\"follow-toggle\""));
    let stored = std::fs::metadata(f.data.path().join(format!("logs/{id}/{}.log", a.job_key)))
        .map(|m| m.len())
        .ok();
    if let Some(len) = stored {
        assert!(r.body.contains(&format!("data-offset=\"{len}\"")));
    }
    let r = get(&f, &format!("{uri}?all=1"), &s).await;
    assert!(r.body.contains("id=\"L1\""));
    assert!(!r.body.contains("id=\"log-truncated\""));
}

#[tokio::test]
async fn run_form_offers_params_and_shows_errors() {
    let f = Fixture::new(PARAMS).await;
    gantry_test_support::git(f.repo.path(), &["tag", "v1.0"]);
    gantry_test_support::git(f.repo.path(), &["tag", "other"]);
    // The pipeline exists once it has a run.
    f.trigger(json!({})).await;
    let s = login(&f).await;
    let r = get(&f, "/repos/app/pipelines/app/run", &s).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    let b = &r.body;
    assert!(b.contains("<select id=\"param-VERSION\" name=\"param.VERSION\""));
    assert!(b.contains("<option value=\"v1.0\">v1.0</option>"));
    assert!(b.contains("<option value=\"main\" selected>main</option>"));
    assert!(
        !b.contains("<option value=\"other\""),
        "tags must match the pattern"
    );
    assert!(b.contains("<option value=\"fast\" selected>fast</option>"));
    assert!(b.contains("id=\"param-LOUD\" name=\"param.LOUD\" type=\"checkbox\""));
    assert!(b.contains("id=\"param-NOTE\" name=\"param.NOTE\" type=\"text\" value=\"hello\""));
    assert!(b.contains("id=\"desc-VERSION\">What to release<"));
    // With a ref param there is no separate ref picker.
    assert!(!b.contains("id=\"ref\""));
    let token = csrf(b);

    // Bad values: shown next to their fields, nothing started.
    let r = post(
        &f,
        "/repos/app/pipelines/app/run",
        &s,
        &format!(
            "csrf={token}&param.VERSION=nope&param.MODE=slow&param.LOUD=false&param.NOTE=%3Cx%3E"
        ),
    )
    .await;
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(r.body.contains("id=\"error-MODE\""), "{}", r.body);
    assert!(r.body.contains("id=\"error-VERSION\""));
    assert!(!r.body.contains("id=\"error-NOTE\""));
    assert!(r.body.contains("id=\"form-error\""));
    assert!(
        r.body.contains("value=\"&#60;x&#62;\""),
        "the value is kept, escaped"
    );
    assert_eq!(
        f.server
            .state()
            .store
            .list_runs(&Default::default())
            .await
            .unwrap()
            .len(),
        1
    );

    // Without the CSRF token: refused.
    let r = post(&f, "/repos/app/pipelines/app/run", &s, "param.MODE=full").await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);

    // Good values: a run, and the browser goes to its page.
    let r = post(
        &f,
        "/repos/app/pipelines/app/run",
        &s,
        &format!("csrf={token}&param.VERSION=v1.0&param.MODE=full&param.LOUD=false&param.LOUD=true&param.NOTE=hi+there"),
    )
    .await;
    assert_eq!(r.status, StatusCode::SEE_OTHER, "{}", r.body);
    let id: i64 = r
        .location
        .unwrap()
        .trim_start_matches("/runs/")
        .parse()
        .unwrap();
    let run = f.run(id).await;
    assert_eq!(run.git_ref, "refs/tags/v1.0");
    assert_eq!(run.params["MODE"], "full");
    assert_eq!(run.params["LOUD"], "true");
    assert_eq!(run.params["NOTE"], "hi there");
    assert_eq!(run.cause, "Started manually by admin");
}

#[tokio::test]
async fn run_form_without_a_ref_param_offers_branches_and_tags() {
    let f = Fixture::new(PIPE).await;
    gantry_test_support::git(f.repo.path(), &["tag", "v2"]);
    gantry_test_support::git(f.repo.path(), &["branch", "develop"]);
    f.trigger(json!({})).await;
    let s = login(&f).await;
    let r = get(&f, "/repos/app/pipelines/app/run", &s).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert!(r.body.contains("<select id=\"ref\" name=\"ref\""));
    assert!(
        r.body
            .contains("<option value=\"main\" selected>main</option>")
    );
    assert!(
        r.body
            .contains("<option value=\"develop\">develop</option>")
    );
    assert!(r.body.contains("<option value=\"v2\">v2</option>"));
    let token = csrf(&r.body);
    let r = post(
        &f,
        "/repos/app/pipelines/app/run",
        &s,
        &format!("csrf={token}&ref=nope"),
    )
    .await;
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(r.body.contains("id=\"error-ref\""));
    let r = post(
        &f,
        "/repos/app/pipelines/app/run",
        &s,
        &format!("csrf={token}&ref=develop"),
    )
    .await;
    assert_eq!(r.status, StatusCode::SEE_OTHER, "{}", r.body);
    let id: i64 = r
        .location
        .unwrap()
        .trim_start_matches("/runs/")
        .parse()
        .unwrap();
    assert_eq!(f.run(id).await.git_ref, "refs/heads/develop");
}
