//! User accounts through the real router: managing them with the admin token
//! (`/api/users…`), logging in to the web UI with a name and a password, what a viewer
//! and an admin user may do, and what ends a user's session (disabling, a new password,
//! deleting). Runs on SQLite, or on PostgreSQL with `GANTRY_TEST_POSTGRES` set.

#![allow(clippy::unwrap_used)]

mod common;
mod webutil;

use axum::http::StatusCode;
use common::Fixture;
use gantry_server::auth::hash_token;
use gantry_server::web::throttle::MAX_FAILURES_PER_USER;
use serde_json::{Value, json};
use webutil::{Resp, cookie_value, csrf, request};

const PIPE: &str = "\
on:
  push: [main]
  manual: true
jobs:
  build:
    script: [make]
";

/// `a b&c` as a form value.
fn enc(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'a'..=b'z' | b'A'..=b'Z' | b'0'..=b'9' | b'-' | b'_' | b'.' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// Posts the password form; returns the answer.
async fn try_login(f: &Fixture, name: &str, password: &str) -> Resp {
    let page = request(f, "GET", "/login", None, None).await;
    assert_eq!(page.status, StatusCode::OK);
    let login_cookie = cookie_value(&page.cookies, "gantry_login").unwrap();
    request(
        f,
        "POST",
        "/login",
        Some(&format!("gantry_login={login_cookie}")),
        Some(&format!(
            "username={}&password={}&csrf={}&next=%2F",
            enc(name),
            enc(password),
            csrf(&page.body)
        )),
    )
    .await
}

/// Logs in as a user; returns the `Cookie` header value of the session.
async fn login(f: &Fixture, name: &str, password: &str) -> String {
    let r = try_login(f, name, password).await;
    assert_eq!(r.status, StatusCode::SEE_OTHER, "{}", r.body);
    assert_eq!(r.location.as_deref(), Some("/"));
    format!(
        "gantry_session={}",
        cookie_value(&r.cookies, "gantry_session").unwrap()
    )
}

async fn add_user(f: &Fixture, name: &str, password: &str, role: &str) -> Value {
    let (status, v) = f
        .call(
            "POST",
            "/api/users",
            Some(json!({ "name": name, "password": password, "role": role })),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{v}");
    v
}

async fn change_user(f: &Fixture, name: &str, change: Value) -> Value {
    let (status, v) = f
        .call("PATCH", &format!("/api/users/{name}"), Some(change))
        .await;
    assert_eq!(status, StatusCode::OK, "{v}");
    v
}

#[tokio::test]
async fn admins_manage_users_through_the_api() {
    let f = Fixture::new(PIPE).await;
    let v = add_user(&f, "alice", "correct horse", "admin").await;
    assert_eq!(
        (&v["name"], &v["role"], &v["disabled"], &v["disabled_at"]),
        (
            &json!("alice"),
            &json!("admin"),
            &json!(false),
            &Value::Null
        )
    );
    let text = v.to_string();
    assert!(
        !text.contains("argon2") && !text.contains("horse"),
        "{text}"
    );
    // The role defaults to viewer.
    let (status, v) = f
        .call(
            "POST",
            "/api/users",
            Some(json!({ "name": "bob", "password": "battery staple" })),
        )
        .await;
    assert_eq!(
        (status, &v["role"]),
        (StatusCode::CREATED, &json!("viewer"))
    );
    // Only the hash is stored.
    let stored = f.server.state().store.user_by_name("bob").await.unwrap();
    assert!(stored.password_hash.starts_with("$argon2id$"), "{stored:?}");

    // Refusals, each with its reason.
    let check = |body: Value, status: StatusCode, want: &'static str| {
        let f = &f;
        async move {
            let (got, v) = f.call("POST", "/api/users", Some(body.clone())).await;
            assert_eq!(got, status, "{body}: {v}");
            let msg = v["error"].as_str().unwrap_or_default().to_string();
            assert!(msg.contains(want), "{body}: {msg}");
        }
    };
    let bad = StatusCode::BAD_REQUEST;
    check(
        json!({ "name": "Carol", "password": "long enough" }),
        bad,
        "invalid user name \"Carol\": use 1 to 64 lowercase letters",
    )
    .await;
    check(
        json!({ "name": "", "password": "long enough" }),
        bad,
        "invalid user name",
    )
    .await;
    check(
        json!({ "name": "a".repeat(65), "password": "long enough" }),
        bad,
        "invalid user name",
    )
    .await;
    check(
        json!({ "name": "c/d", "password": "long enough" }),
        bad,
        "invalid user name",
    )
    .await;
    check(
        json!({ "name": "carol", "password": "short" }),
        bad,
        "at least 8 characters",
    )
    .await;
    check(
        json!({ "name": "carol", "password": "long enough", "role": "root" }),
        bad,
        "unknown role \"root\"",
    )
    .await;
    check(
        json!({ "name": "carol", "password": "long enough", "admin": true }),
        bad,
        "unknown field",
    )
    .await;
    check(
        json!({ "name": "alice", "password": "long enough" }),
        StatusCode::CONFLICT,
        "user alice already exists",
    )
    .await;

    let (status, v) = f.call("GET", "/api/users", None).await;
    assert_eq!(status, StatusCode::OK);
    let names: Vec<_> = v
        .as_array()
        .unwrap()
        .iter()
        .map(|u| (u["name"].as_str().unwrap(), u["role"].as_str().unwrap()))
        .collect();
    assert_eq!(names, [("alice", "admin"), ("bob", "viewer")]);

    let v = change_user(&f, "bob", json!({ "role": "admin", "disabled": true })).await;
    assert_eq!(
        (&v["role"], &v["disabled"]),
        (&json!("admin"), &json!(true))
    );
    assert!(v["disabled_at"].is_string(), "{v}");
    let v = change_user(&f, "bob", json!({ "disabled": false })).await;
    assert_eq!(v["disabled_at"], Value::Null);
    let (status, v) = f
        .call(
            "PATCH",
            "/api/users/bob",
            Some(json!({ "password": "short" })),
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{v}");
    let (status, _) = f
        .call(
            "PATCH",
            "/api/users/nobody",
            Some(json!({ "role": "viewer" })),
        )
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);

    let (status, _) = f.call("DELETE", "/api/users/bob", None).await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let (status, v) = f.call("GET", "/api/users/bob", None).await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{v}");
    assert_eq!(v["error"], "user bob not found");
    let (status, _) = f.call("DELETE", "/api/users/bob", None).await;
    assert_eq!(status, StatusCode::NOT_FOUND);

    // No token: 401; a token that is not an admin's: 403.
    let (status, _) = f.call_as(None, "GET", "/api/users", None).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    f.server
        .state()
        .store
        .create_token("bot", "agent", &hash_token("gantry_bot"), 0)
        .await
        .unwrap();
    let (status, _) = f
        .call_as(
            Some("gantry_bot"),
            "POST",
            "/api/users",
            Some(json!({ "name": "eve", "password": "long enough" })),
        )
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
}

#[tokio::test]
async fn a_user_logs_in_with_a_password_and_sees_their_name() {
    let f = Fixture::new(PIPE).await;
    add_user(&f, "alice", "correct horse", "admin").await;
    let page = request(&f, "GET", "/login", None, None).await;
    for selector in [
        "id=\"password-form\"",
        "id=\"username\"",
        "id=\"password\"",
        "id=\"password-submit\"",
        "id=\"login-form\"",
        "id=\"token\"",
        "id=\"login-submit\"",
    ] {
        assert!(page.body.contains(selector), "{selector}");
    }
    assert!(!page.body.contains("id=\"login-error\""));

    let session = login(&f, "alice", "correct horse").await;
    let home = request(&f, "GET", "/", Some(&session), None).await;
    assert_eq!(home.status, StatusCode::OK);
    assert!(
        home.body.contains("signed in as <strong>alice</strong>"),
        "{}",
        home.body
    );
    // The session reads the API too (GET only), as the pages' live parts do.
    let r = request(&f, "GET", "/api/runs", Some(&session), None).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    let r = request(&f, "GET", "/api/users", Some(&session), None).await;
    assert_eq!(r.status, StatusCode::OK, "an admin user may list users");
}

#[tokio::test]
async fn wrong_passwords_and_unknown_names_get_the_same_answer() {
    let f = Fixture::new(PIPE).await;
    add_user(&f, "alice", "correct horse", "admin").await;
    let wrong = try_login(&f, "alice", "correct horsE").await;
    let unknown = try_login(&f, "mallory", "correct horse").await;
    for r in [&wrong, &unknown] {
        assert_eq!(r.status, StatusCode::UNAUTHORIZED);
        assert!(cookie_value(&r.cookies, "gantry_session").is_none());
        assert!(
            r.body
                .contains("<p id=\"login-error\" class=\"field-error\" role=\"alert\">Unknown user name or wrong password.</p>"),
            "{}",
            r.body
        );
    }
    // The name is kept in the field; the password is not.
    assert!(wrong.body.contains("value=\"alice\""));
    assert!(!wrong.body.contains("horsE"));
    // A login form without the CSRF cookie is refused before any password check.
    let r = request(
        &f,
        "POST",
        "/login",
        None,
        Some("username=alice&password=correct+horse&csrf=x"),
    )
    .await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    assert!(cookie_value(&r.cookies, "gantry_session").is_none());
}

#[tokio::test]
async fn viewers_see_pages_but_may_not_act() {
    let f = Fixture::new(PIPE).await;
    add_user(&f, "vera", "just looking", "viewer").await;
    let run = f.trigger(json!({})).await;
    let id = run["id"].as_i64().unwrap();
    let pipeline = run["pipeline"].as_str().unwrap().to_string();
    let s = login(&f, "vera", "just looking").await;

    let page = request(&f, "GET", &format!("/runs/{id}"), Some(&s), None).await;
    assert_eq!(page.status, StatusCode::OK);
    assert!(page.body.contains("signed in as <strong>vera</strong>"));
    assert!(!page.body.contains("id=\"cancel-form\""), "{}", page.body);
    let form = request(
        &f,
        "GET",
        &format!("/repos/app/pipelines/{pipeline}/run"),
        Some(&s),
        None,
    )
    .await;
    assert_eq!(form.status, StatusCode::OK, "{}", form.body);
    let at = form
        .body
        .find("id=\"run-submit\"")
        .expect("a submit button");
    let tag = &form.body[at..at + form.body[at..].find('>').unwrap()];
    assert!(tag.contains("disabled"), "{tag}");

    // With a valid CSRF token, the server still refuses.
    let token = csrf(&page.body);
    let r = request(
        &f,
        "POST",
        &format!("/runs/{id}/cancel"),
        Some(&s),
        Some(&format!("csrf={token}")),
    )
    .await;
    assert_eq!(r.status, StatusCode::FORBIDDEN, "{}", r.body);
    let r = request(
        &f,
        "POST",
        &format!("/repos/app/pipelines/{pipeline}/run"),
        Some(&s),
        Some(&format!("csrf={token}&ref=main")),
    )
    .await;
    assert_eq!(r.status, StatusCode::FORBIDDEN, "{}", r.body);
    assert!(!f.run(id).await.cancel_requested);
    assert_eq!(
        f.call("GET", "/api/runs", None).await.1["runs"]
            .as_array()
            .unwrap()
            .len(),
        1
    );

    // Made an admin, the same session may act from its next request on.
    change_user(&f, "vera", json!({ "role": "admin" })).await;
    let page = request(&f, "GET", &format!("/runs/{id}"), Some(&s), None).await;
    assert!(page.body.contains("id=\"cancel-form\""), "{}", page.body);
}

#[tokio::test]
async fn admin_users_act_under_their_own_name() {
    let f = Fixture::new(PIPE).await;
    add_user(&f, "alice", "correct horse", "admin").await;
    let first = f.trigger(json!({})).await;
    let pipeline = first["pipeline"].as_str().unwrap().to_string();
    let s = login(&f, "alice", "correct horse").await;
    let form = request(
        &f,
        "GET",
        &format!("/repos/app/pipelines/{pipeline}/run"),
        Some(&s),
        None,
    )
    .await;
    let r = request(
        &f,
        "POST",
        &format!("/repos/app/pipelines/{pipeline}/run"),
        Some(&s),
        Some(&format!("csrf={}&ref=main", csrf(&form.body))),
    )
    .await;
    assert_eq!(r.status, StatusCode::SEE_OTHER, "{}", r.body);
    let id: i64 = r
        .location
        .unwrap()
        .strip_prefix("/runs/")
        .unwrap()
        .parse()
        .unwrap();
    assert_eq!(f.run(id).await.cause, "Started manually by alice");

    let page = request(&f, "GET", &format!("/runs/{id}"), Some(&s), None).await;
    let r = request(
        &f,
        "POST",
        &format!("/runs/{id}/cancel"),
        Some(&s),
        Some(&format!("csrf={}", csrf(&page.body))),
    )
    .await;
    assert_eq!(r.status, StatusCode::SEE_OTHER, "{}", r.body);
    assert!(f.run(id).await.cancel_requested);
}

#[tokio::test]
async fn disabling_deleting_or_a_new_password_ends_the_sessions() {
    let f = Fixture::new(PIPE).await;
    add_user(&f, "dora", "first password", "viewer").await;
    let home = |s: String| {
        let f = &f;
        async move { request(f, "GET", "/", Some(&s), None).await.status }
    };

    // Disabled: the session ends, and a login with the right password is refused
    // (told so, since the password was right); a wrong one gets the usual answer.
    let s = login(&f, "dora", "first password").await;
    assert_eq!(home(s.clone()).await, StatusCode::OK);
    change_user(&f, "dora", json!({ "disabled": true })).await;
    assert_eq!(home(s.clone()).await, StatusCode::SEE_OTHER);
    let r = try_login(&f, "dora", "first password").await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    assert!(r.body.contains("This account is disabled"), "{}", r.body);
    assert!(cookie_value(&r.cookies, "gantry_session").is_none());
    let r = try_login(&f, "dora", "not her password").await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);
    assert!(r.body.contains("Unknown user name or wrong password."));
    change_user(&f, "dora", json!({ "disabled": false })).await;
    assert_eq!(
        home(s).await,
        StatusCode::SEE_OTHER,
        "enabling brings no session back"
    );

    // A new password ends the sessions made with the old one.
    let s = login(&f, "dora", "first password").await;
    change_user(&f, "dora", json!({ "password": "second password" })).await;
    assert_eq!(home(s).await, StatusCode::SEE_OTHER);
    assert_eq!(
        try_login(&f, "dora", "first password").await.status,
        StatusCode::UNAUTHORIZED
    );

    // Deleted and made again under the same name: the old session does not carry over.
    let s = login(&f, "dora", "second password").await;
    let (status, _) = f.call("DELETE", "/api/users/dora", None).await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    assert_eq!(home(s.clone()).await, StatusCode::SEE_OTHER);
    add_user(&f, "dora", "second password", "viewer").await;
    assert_eq!(home(s).await, StatusCode::SEE_OTHER);
}

#[tokio::test]
async fn repeated_failures_lock_the_name_even_for_the_right_password() {
    let f = Fixture::new(PIPE).await;
    // A name of its own: the throttle is process-wide.
    add_user(&f, "throttled-user", "right password", "viewer").await;
    for i in 0..MAX_FAILURES_PER_USER {
        let r = try_login(&f, "throttled-user", &format!("guess {i}")).await;
        assert_eq!(r.status, StatusCode::UNAUTHORIZED, "guess {i}");
    }
    let r = try_login(&f, "throttled-user", "right password").await;
    assert_eq!(r.status, StatusCode::TOO_MANY_REQUESTS);
    assert!(r.body.contains("Too many failed logins"), "{}", r.body);
    assert!(cookie_value(&r.cookies, "gantry_session").is_none());
    // Other names are not affected.
    add_user(&f, "other-user", "right password", "viewer").await;
    login(&f, "other-user", "right password").await;
}
