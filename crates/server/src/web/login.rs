//! `/login` and `/logout`: a user name and password, or a token pasted into a form,
//! becomes a session cookie.
//!
//! The login form has no session yet, so its CSRF token is a random value in a
//! short-lived cookie of its own, which the POST must repeat in a hidden field (a
//! cross-site page can send the cookie but cannot read it to fill the field).
//!
//! A password login that fails answers the same for an unknown name and a wrong
//! password, after a fixed pause; [`throttle`](crate::web::throttle) refuses further
//! tries for a name or an address that failed too often. A disabled account is told so
//! only when its password was right.

use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use askama::Template;
use axum::extract::{ConnectInfo, Query, State as Ax};
use axum::http::{Extensions, HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use serde::Deserialize;
use subtle::ConstantTimeEq;

use crate::auth::{Login, authenticate, check_token, random_hex};
use crate::state::{State, now_ms};
use crate::web::session::{
    self, LOGIN_COOKIE, SESSION_COOKIE, Viewer, cookie, safe_next, set_cookie,
};
use crate::web::throttle::LOGINS;
use crate::web::urlencoded;
use crate::web::view::{self, Nav};

/// How long a failed password login waits before answering: a person hardly notices,
/// a guesser on one connection is held to a few tries a second.
const FAILED_LOGIN_PAUSE: Duration = Duration::from_millis(500);

/// The one answer for an unknown name and a wrong password.
const REFUSED: &str = "Unknown user name or wrong password.";

/// Which form an error belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Form {
    /// User name and password.
    Password,
    /// Token.
    Token,
}

/// The login page.
#[derive(Template)]
#[template(path = "login.html")]
pub struct LoginPage {
    nav: Nav,
    csrf: String,
    next: String,
    /// The error and the form it belongs to.
    error: Option<(Form, String)>,
    /// The user name to fill in again after a failed login.
    username: String,
}

impl LoginPage {
    /// The error of `form`, if the last attempt used it.
    fn error_of(&self, form: &Form) -> Option<&str> {
        match &self.error {
            Some((f, e)) if f == form => Some(e.as_str()),
            _ => None,
        }
    }

    fn password_error(&self) -> Option<&str> {
        self.error_of(&Form::Password)
    }

    fn token_error(&self) -> Option<&str> {
        self.error_of(&Form::Token)
    }
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

fn login_page(
    state: &State,
    code: StatusCode,
    next: String,
    error: Option<(Form, String)>,
    username: &str,
) -> Response {
    let csrf = random_hex(24);
    let page = LoginPage {
        nav: anonymous_nav(),
        csrf: csrf.clone(),
        next,
        error,
        username: username.to_string(),
    };
    let mut r = view::html_status(code, &page);
    if let Ok(v) = HeaderValue::from_str(&set_cookie(state, LOGIN_COOKIE, &csrf, Some(3600))) {
        r.headers_mut().append(header::SET_COOKIE, v);
    }
    r
}

/// `GET /login`.
pub async fn form(Ax(state): Ax<State>, Query(q): Query<LoginQuery>) -> Response {
    login_page(
        &state,
        StatusCode::OK,
        safe_next(q.next.as_deref()),
        None,
        "",
    )
}

/// `POST /login`: fields `username` and `password`, or `token`; and `csrf`, `next`.
pub async fn submit(
    Ax(state): Ax<State>,
    headers: HeaderMap,
    ext: Extensions,
    body: axum::body::Bytes,
) -> Response {
    let fields = urlencoded::parse(&body);
    let next = safe_next(urlencoded::last(&fields, "next"));
    let username = urlencoded::last(&fields, "username").map(str::trim);
    let form = if username.is_some() {
        Form::Password
    } else {
        Form::Token
    };
    let given = urlencoded::last(&fields, "csrf").unwrap_or_default();
    let expected = cookie(&headers, LOGIN_COOKIE).unwrap_or_default();
    if expected.is_empty() || !bool::from(expected.as_bytes().ct_eq(given.as_bytes())) {
        return login_page(
            &state,
            StatusCode::FORBIDDEN,
            next,
            Some((
                form,
                "The form expired or came from another site; please log in again.".into(),
            )),
            username.unwrap_or_default(),
        );
    }
    let id = match username {
        Some(name) => {
            let password = urlencoded::last(&fields, "password").unwrap_or_default();
            let addr = ext.get::<ConnectInfo<SocketAddr>>().map(|c| c.0.ip());
            match password_login(&state, name, password, addr).await {
                Ok(id) => id,
                Err((code, message)) => {
                    return login_page(&state, code, next, Some((form, message)), name);
                }
            }
        }
        None => match token_login(&state, &fields).await {
            Ok(id) => id,
            Err((code, message)) => {
                return login_page(&state, code, next, Some((form, message)), "");
            }
        },
    };
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

/// A failed login: the status and the words for the form.
type Refusal = (StatusCode, String);

/// Checks a token; returns a new session id.
async fn token_login(state: &State, fields: &[(String, String)]) -> Result<String, Refusal> {
    let token = urlencoded::last(fields, "token").unwrap_or_default().trim();
    let found = if token.is_empty() {
        None
    } else {
        match check_token(state.store.as_ref(), token).await {
            Ok(t) => t.filter(|t| t.revoked_at.is_none()),
            Err(e) => {
                tracing::error!("looking up a token at login: {e}");
                return Err((
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "The server could not check the token; try again.".into(),
                ));
            }
        }
    };
    match found {
        Some(token) => Ok(session::create(&token.hash)),
        None => Err((
            StatusCode::UNAUTHORIZED,
            "That token is not valid (or was revoked).".into(),
        )),
    }
}

/// Checks a user name and password (throttled); returns a new session id.
async fn password_login(
    state: &State,
    name: &str,
    password: &str,
    addr: Option<IpAddr>,
) -> Result<String, Refusal> {
    if name.is_empty() || password.is_empty() {
        return Err((
            StatusCode::UNAUTHORIZED,
            "Enter a user name and a password.".into(),
        ));
    }
    // Counted under the name as typed, so an unknown name is throttled like a real one.
    if !LOGINS.allowed(name, addr, now_ms()) {
        return Err((
            StatusCode::TOO_MANY_REQUESTS,
            "Too many failed logins; wait a quarter of an hour and try again.".into(),
        ));
    }
    let outcome = if password.len() > crate::auth::MAX_PASSWORD_BYTES {
        // Not worth hashing: no stored password is that long.
        Login::Refused
    } else {
        match authenticate(state.store.as_ref(), name, password).await {
            Ok(o) => o,
            Err(e) => {
                tracing::error!("looking up a user at login: {e}");
                return Err((
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "The server could not check the password; try again.".into(),
                ));
            }
        }
    };
    match outcome {
        Login::Ok(user) => {
            LOGINS.succeeded(name);
            tracing::info!(user = %user.name, "user logged in");
            Ok(session::create_for_user(&user))
        }
        Login::Disabled => Err((
            StatusCode::FORBIDDEN,
            "This account is disabled; ask an admin to enable it.".into(),
        )),
        Login::Refused => {
            LOGINS.failed(name, addr, now_ms());
            // Without the name: people type their password into it by mistake.
            tracing::warn!(
                addr = %addr.map_or_else(|| "unknown".to_string(), |a| a.to_string()),
                "failed password login"
            );
            tokio::time::sleep(FAILED_LOGIN_PAUSE).await;
            Err((StatusCode::UNAUTHORIZED, REFUSED.into()))
        }
    }
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
