//! Who is looking at a page: sessions made by logging in with a token, and the CSRF token
//! every form of a session carries.
//!
//! A session is a random id in an `HttpOnly`, `SameSite=Lax` cookie; the server keeps, per
//! id, the hash of the token that logged in and the session's CSRF token. The token is
//! looked up again on every request, so revoking (rotating) it ends its sessions at once.
//! Sessions live in memory: a restart logs everyone out, which costs one paste of the
//! token and keeps no login secret on disk.

use std::collections::HashMap;
use std::sync::{LazyLock, Mutex};

use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use axum::http::{HeaderMap, Method};
use axum::response::{IntoResponse, Redirect, Response};
use gantry_store::Token;
use subtle::ConstantTimeEq;

use crate::auth::random_hex;
use crate::state::{State, now_ms};
use crate::web::urlencoded::encode;

/// Name of the session cookie.
pub const SESSION_COOKIE: &str = "gantry_session";

/// Name of the cookie that carries the CSRF token of the login form (before a session
/// exists, the form's token is checked against this cookie).
pub const LOGIN_COOKIE: &str = "gantry_login";

/// How long a session lasts (ms): a working week.
const SESSION_TTL_MS: i64 = 7 * 24 * 3600 * 1000;

/// At most this many sessions are kept; the oldest go first.
const MAX_SESSIONS: usize = 10_000;

#[derive(Debug, Clone)]
struct Session {
    token_hash: String,
    csrf: String,
    created_ms: i64,
}

static SESSIONS: LazyLock<Mutex<HashMap<String, Session>>> =
    LazyLock::new(|| Mutex::new(HashMap::new()));

fn sessions() -> std::sync::MutexGuard<'static, HashMap<String, Session>> {
    SESSIONS.lock().unwrap_or_else(|e| e.into_inner())
}

/// Starts a session for the token with this hash; returns its id.
pub fn create(token_hash: &str) -> String {
    let id = random_hex(32);
    let mut all = sessions();
    if all.len() >= MAX_SESSIONS {
        let now = now_ms();
        all.retain(|_, s| now - s.created_ms < SESSION_TTL_MS);
        if all.len() >= MAX_SESSIONS
            && let Some(oldest) = all
                .iter()
                .min_by_key(|(_, s)| s.created_ms)
                .map(|(k, _)| k.clone())
        {
            all.remove(&oldest);
        }
    }
    all.insert(
        id.clone(),
        Session {
            token_hash: token_hash.to_string(),
            csrf: random_hex(24),
            created_ms: now_ms(),
        },
    );
    id
}

/// Ends a session.
pub fn destroy(id: &str) {
    sessions().remove(id);
}

/// The value of cookie `name` in the request headers.
pub fn cookie<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get_all(axum::http::header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|kv| kv.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v.trim())
}

/// The `Set-Cookie` value for a cookie (HttpOnly, SameSite=Lax, Path=/; `Secure` when
/// the server's public URL is https).
pub fn set_cookie(state: &State, name: &str, value: &str, max_age: Option<i64>) -> String {
    let mut c = format!("{name}={value}; Path=/; HttpOnly; SameSite=Lax");
    if let Some(age) = max_age {
        c.push_str(&format!("; Max-Age={age}"));
    }
    if state
        .config
        .public_url
        .as_deref()
        .is_some_and(|u| u.starts_with("https://"))
    {
        c.push_str("; Secure");
    }
    c
}

/// The session named by the request's cookie and its (still valid) token.
async fn lookup(headers: &HeaderMap, state: &State) -> Option<(String, Session, Token)> {
    let id = cookie(headers, SESSION_COOKIE)?;
    let session = sessions().get(id).cloned()?;
    if now_ms() - session.created_ms >= SESSION_TTL_MS {
        destroy(id);
        return None;
    }
    match state.store.token_by_hash(&session.token_hash).await {
        Ok(Some(t)) if t.revoked_at.is_none() => Some((id.to_string(), session, t)),
        Ok(_) => {
            // Revoked or rotated: the session ends with its token.
            destroy(id);
            None
        }
        Err(_) => None,
    }
}

/// The token behind the session cookie of a `GET`/`HEAD` request, for the API (so the
/// pages' live parts and download links work without a bearer token). Other methods
/// never authenticate by cookie: a cross-site form cannot change anything.
pub async fn cookie_token(parts: &Parts, state: &State) -> Option<Token> {
    if parts.method != Method::GET && parts.method != Method::HEAD {
        return None;
    }
    lookup(&parts.headers, state).await.map(|(_, _, t)| t)
}

/// Whoever looks at a page: a logged-in token, or an anonymous visitor when the server
/// allows anonymous reading. Without either, the page redirects to `/login`.
#[derive(Debug, Clone)]
pub struct Viewer {
    /// The session's token.
    pub token: Option<Token>,
    /// Session id and its CSRF token.
    session: Option<(String, String)>,
}

impl Viewer {
    /// Whether this viewer may start, cancel and rerun runs.
    pub fn is_admin(&self) -> bool {
        self.token.as_ref().is_some_and(|t| t.kind == "admin")
    }

    /// Name for causes ("Started manually by admin").
    pub fn name(&self) -> &str {
        self.token.as_ref().map_or("anonymous", |t| t.name.as_str())
    }

    /// The CSRF token the session's forms carry.
    pub fn csrf(&self) -> Option<&str> {
        self.session.as_ref().map(|(_, c)| c.as_str())
    }

    /// The session id.
    pub fn session_id(&self) -> Option<&str> {
        self.session.as_ref().map(|(id, _)| id.as_str())
    }

    /// Whether `given` is this session's CSRF token.
    pub fn csrf_ok(&self, given: Option<&str>) -> bool {
        match (self.csrf(), given) {
            (Some(want), Some(got)) => want.as_bytes().ct_eq(got.as_bytes()).into(),
            _ => false,
        }
    }
}

/// Where to send someone who must log in first, coming back to `path` afterwards.
pub fn to_login(path: &str) -> Response {
    Redirect::to(&format!("/login?next={}", encode(path))).into_response()
}

impl FromRequestParts<State> for Viewer {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, state: &State) -> Result<Self, Response> {
        if let Some((id, session, token)) = lookup(&parts.headers, state).await {
            return Ok(Viewer {
                token: Some(token),
                session: Some((id, session.csrf)),
            });
        }
        if state.config.anonymous_read {
            return Ok(Viewer {
                token: None,
                session: None,
            });
        }
        let path = parts
            .uri
            .path_and_query()
            .map_or("/", |p| p.as_str())
            .to_string();
        Err(to_login(&path))
    }
}

/// A `next=` target that stays on this server (a path, not `//host` or a URL).
pub fn safe_next(next: Option<&str>) -> String {
    match next {
        Some(n) if n.starts_with('/') && !n.starts_with("//") && !n.contains('\\') => n.to_string(),
        _ => "/".to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn next_targets_stay_on_the_server() {
        let check = |input: Option<&str>, expect: &str| assert_eq!(safe_next(input), expect);
        check(None, "/");
        check(Some("/runs/3"), "/runs/3");
        check(Some("//evil.example/x"), "/");
        check(Some("https://evil.example/"), "/");
        check(Some("/\\evil"), "/");
    }

    #[test]
    fn cookies_are_found_by_name() {
        let mut h = HeaderMap::new();
        h.insert(
            axum::http::header::COOKIE,
            "a=1; gantry_session=abc ; b=2"
                .parse()
                .unwrap_or_else(|_| unreachable!()),
        );
        assert_eq!(cookie(&h, SESSION_COOKIE), Some("abc"));
        assert_eq!(cookie(&h, "b"), Some("2"));
        assert_eq!(cookie(&h, "c"), None);
    }
}
