//! `/login` and `/logout`: a token pasted into a form becomes a session cookie.
//!
//! The login form has no session yet, so its CSRF token is a random value in a
//! short-lived cookie of its own, which the POST must repeat in a hidden field (a
//! cross-site page can send the cookie but cannot read it to fill the field).

use askama::Template;
use axum::extract::{Query, State as Ax};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use serde::Deserialize;
use subtle::ConstantTimeEq;

use crate::auth::{check_token, random_hex};
use crate::state::State;
use crate::web::session::{
    self, LOGIN_COOKIE, SESSION_COOKIE, Viewer, cookie, safe_next, set_cookie,
};
use crate::web::urlencoded;
use crate::web::view::{self, Nav};

/// The login page.
#[derive(Template)]
#[template(path = "login.html")]
pub struct LoginPage {
    nav: Nav,
    csrf: String,
    next: String,
    error: Option<String>,
}

/// Query of `GET /login`.
#[derive(Debug, Deserialize)]
pub struct LoginQuery {
    /// Where to go afterwards.
    pub next: Option<String>,
}

fn anonymous_nav() -> Nav {
    Nav {
        who: None,
        csrf: String::new(),
        admin: false,
        v: env!("CARGO_PKG_VERSION"),
    }
}

fn login_page(state: &State, code: StatusCode, next: String, error: Option<String>) -> Response {
    let csrf = random_hex(24);
    let page = LoginPage {
        nav: anonymous_nav(),
        csrf: csrf.clone(),
        next,
        error,
    };
    let mut r = view::html_status(code, &page);
    if let Ok(v) = HeaderValue::from_str(&set_cookie(state, LOGIN_COOKIE, &csrf, Some(3600))) {
        r.headers_mut().append(header::SET_COOKIE, v);
    }
    r
}

/// `GET /login`.
pub async fn form(Ax(state): Ax<State>, Query(q): Query<LoginQuery>) -> Response {
    login_page(&state, StatusCode::OK, safe_next(q.next.as_deref()), None)
}

/// `POST /login` (fields `token`, `csrf`, `next`).
pub async fn submit(Ax(state): Ax<State>, headers: HeaderMap, body: axum::body::Bytes) -> Response {
    let fields = urlencoded::parse(&body);
    let next = safe_next(urlencoded::last(&fields, "next"));
    let given = urlencoded::last(&fields, "csrf").unwrap_or_default();
    let expected = cookie(&headers, LOGIN_COOKIE).unwrap_or_default();
    if expected.is_empty() || !bool::from(expected.as_bytes().ct_eq(given.as_bytes())) {
        return login_page(
            &state,
            StatusCode::FORBIDDEN,
            next,
            Some("The form expired or came from another site; please log in again.".into()),
        );
    }
    let token = urlencoded::last(&fields, "token")
        .unwrap_or_default()
        .trim();
    let found = if token.is_empty() {
        None
    } else {
        match check_token(state.store.as_ref(), token).await {
            Ok(t) => t.filter(|t| t.revoked_at.is_none()),
            Err(e) => {
                tracing::error!("looking up a token at login: {e}");
                return login_page(
                    &state,
                    StatusCode::INTERNAL_SERVER_ERROR,
                    next,
                    Some("The server could not check the token; try again.".into()),
                );
            }
        }
    };
    let Some(token) = found else {
        return login_page(
            &state,
            StatusCode::UNAUTHORIZED,
            next,
            Some("That token is not valid (or was revoked).".into()),
        );
    };
    let id = session::create(&token.hash);
    let mut r = Redirect::to(&next).into_response();
    let h = r.headers_mut();
    for c in [
        set_cookie(&state, SESSION_COOKIE, &id, None),
        set_cookie(&state, LOGIN_COOKIE, "", Some(0)),
    ] {
        if let Ok(v) = HeaderValue::from_str(&c) {
            h.append(header::SET_COOKIE, v);
        }
    }
    r
}

/// `POST /logout` (field `csrf`).
pub async fn logout(Ax(state): Ax<State>, viewer: Viewer, body: axum::body::Bytes) -> Response {
    let fields = urlencoded::parse(&body);
    if !viewer.csrf_ok(urlencoded::last(&fields, "csrf")) {
        return view::error(
            &viewer,
            StatusCode::FORBIDDEN,
            "This form expired or came from another site (CSRF check failed).",
        );
    }
    if let Some(id) = viewer.session_id() {
        session::destroy(id);
    }
    let mut r = Redirect::to("/login").into_response();
    if let Ok(v) = HeaderValue::from_str(&set_cookie(&state, SESSION_COOKIE, "", Some(0))) {
        r.headers_mut().append(header::SET_COOKIE, v);
    }
    r
}
