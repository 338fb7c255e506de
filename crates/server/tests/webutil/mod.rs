//! What the web UI tests share: requests through the real router as a browser sends them
//! (cookies, urlencoded forms), the CSRF field of a page, and logging in with the admin
//! token.

#![allow(dead_code, clippy::unwrap_used)]

use axum::body::Body;
use axum::http::{Request, StatusCode};

pub mod seed;

use crate::common::Fixture;

/// A response, as a test looks at it.
pub struct Resp {
    pub status: StatusCode,
    pub location: Option<String>,
    pub cookies: Vec<String>,
    pub cache: Option<String>,
    pub content_type: Option<String>,
    pub body: String,
}

/// Sends `method uri` with an optional `Cookie` header and urlencoded form body.
pub async fn request(
    f: &Fixture,
    method: &str,
    uri: &str,
    cookie: Option<&str>,
    form: Option<&str>,
) -> Resp {
    use http_body_util::BodyExt;
    use tower::ServiceExt;
    let mut req = Request::builder().method(method).uri(uri);
    if let Some(c) = cookie {
        req = req.header("cookie", c);
    }
    let req = match form {
        Some(b) => req
            .header("content-type", "application/x-www-form-urlencoded")
            .body(Body::from(b.to_string()))
            .unwrap(),
        None => req.body(Body::empty()).unwrap(),
    };
    let app = gantry_server::api::router(f.server.state().clone());
    let resp = app.oneshot(req).await.unwrap();
    let status = resp.status();
    let h = resp.headers().clone();
    let bytes = resp.into_body().collect().await.unwrap().to_bytes();
    let header = |name: &str| h.get(name).map(|v| v.to_str().unwrap().to_string());
    Resp {
        status,
        location: header("location"),
        cookies: h
            .get_all("set-cookie")
            .iter()
            .map(|v| v.to_str().unwrap().to_string())
            .collect(),
        cache: header("cache-control"),
        content_type: header("content-type"),
        body: String::from_utf8_lossy(&bytes).into_owned(),
    }
}

/// `GET` with a session cookie.
pub async fn get(f: &Fixture, uri: &str, cookie: &str) -> Resp {
    request(f, "GET", uri, Some(cookie), None).await
}

/// `POST` of a form with a session cookie.
pub async fn post(f: &Fixture, uri: &str, cookie: &str, form: &str) -> Resp {
    request(f, "POST", uri, Some(cookie), Some(form)).await
}

/// The value of `name="csrf" value="…"` in a page.
pub fn csrf(body: &str) -> String {
    let at = body.find("name=\"csrf\" value=\"").expect("a csrf field");
    let rest = &body[at + "name=\"csrf\" value=\"".len()..];
    rest[..rest.find('"').unwrap()].to_string()
}

/// The value of cookie `name` among `Set-Cookie` headers.
pub fn cookie_value(cookies: &[String], name: &str) -> Option<String> {
    cookies.iter().find_map(|c| {
        let first = c.split(';').next()?;
        let (k, v) = first.split_once('=')?;
        (k == name && !v.is_empty()).then(|| v.to_string())
    })
}

/// Logs in with the admin token; returns the `Cookie` header value of the session.
pub async fn login(f: &Fixture) -> String {
    let page = request(f, "GET", "/login", None, None).await;
    assert_eq!(page.status, StatusCode::OK);
    let login_cookie = cookie_value(&page.cookies, "gantry_login").unwrap();
    let token = csrf(&page.body);
    let r = request(
        f,
        "POST",
        "/login",
        Some(&format!("gantry_login={login_cookie}")),
        Some(&format!("token={}&csrf={token}&next=%2F", f.token)),
    )
    .await;
    assert_eq!(r.status, StatusCode::SEE_OTHER, "{}", r.body);
    assert_eq!(r.location.as_deref(), Some("/"));
    let session = r
        .cookies
        .iter()
        .find(|c| c.starts_with("gantry_session="))
        .unwrap();
    assert!(session.contains("HttpOnly"), "{session}");
    assert!(session.contains("SameSite=Lax"), "{session}");
    format!(
        "gantry_session={}",
        cookie_value(&r.cookies, "gantry_session").unwrap()
    )
}

/// How often `needle` occurs in `hay`.
pub fn count(hay: &str, needle: &str) -> usize {
    hay.matches(needle).count()
}
