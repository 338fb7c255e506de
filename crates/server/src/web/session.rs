//! Who is looking at a page: sessions made by logging in with a token or a user account,
//! and the CSRF token every form of a session carries.
//!
//! A session is a random id in an `HttpOnly`, `SameSite=Lax` cookie; the server keeps, per
//! id, what logged in (the token's hash, or the user's id and password hash at that time)
//! and the session's CSRF token. Both are looked up again on every request, so revoking
//! (rotating) a token, disabling or deleting a user, or changing a user's password ends
//! their sessions at once, and a new role counts from the next request. Sessions live in
//! memory: a restart logs everyone out, which costs one login and keeps no login secret
//! on disk.

use std::collections::HashMap;
use std::sync::{LazyLock, Mutex};

use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use axum::http::{HeaderMap, Method};
use axum::response::{IntoResponse, Redirect, Response};
use gantry_store::{StoreError, Token, User};
use subtle::ConstantTimeEq;

use crate::api::extract::Caller;
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

/// What logged a session in.
#[derive(Debug, Clone)]
enum Login {
    /// A token, by its hash.
    Token(String),
    /// A user account, with its password hash at login (a new password ends the session;
    /// the id tells a deleted and re-made account with the same name apart).
    User {
        id: i64,
        name: String,
        password_hash: String,
    },
}

#[derive(Debug, Clone)]
struct Session {
    login: Login,
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
    insert(Login::Token(token_hash.to_string()))
}

/// Starts a session for a user account; returns its id.
pub fn create_for_user(user: &User) -> String {
    insert(Login::User {
        id: user.id,
        name: user.name.clone(),
        password_hash: user.password_hash.clone(),
    })
}

fn insert(login: Login) -> String {
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
            login,
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

/// The session named by the request's cookie and who it belongs to, if that token or
/// user is still valid.
async fn lookup(headers: &HeaderMap, state: &State) -> Option<(String, Session, Caller)> {
    let id = cookie(headers, SESSION_COOKIE)?;
    let session = sessions().get(id).cloned()?;
    if now_ms() - session.created_ms >= SESSION_TTL_MS {
        destroy(id);
        return None;
    }
    let found = match &session.login {
        Login::Token(hash) => match state.store.token_by_hash(hash).await {
            Ok(Some(t)) if t.revoked_at.is_none() => Ok(Some(Caller::token(t))),
            Ok(_) => Ok(None),
            Err(e) => Err(e),
        },
        Login::User {
            id,
            name,
            password_hash,
        } => match state.store.user_by_name(name).await {
            Ok(u)
                if u.id == *id && u.password_hash == *password_hash && u.disabled_at.is_none() =>
            {
                Ok(Some(Caller::user(u)))
            }
            Ok(_) | Err(StoreError::NotFound(_)) => Ok(None),
            Err(e) => Err(e),
        },
    };
    match found {
        Ok(Some(caller)) => Some((id.to_string(), session, caller)),
        Ok(None) => {
            // Revoked, rotated, disabled, deleted or a new password: the session ends.
            destroy(id);
            None
        }
        // The database failed: no login this time, but the session stays.
        Err(_) => None,
    }
}

/// Who is behind the session cookie of a `GET`/`HEAD` request, for the API (so the
/// pages' live parts and download links work without a bearer token). Other methods
/// never authenticate by cookie: a cross-site form cannot change anything.
pub async fn cookie_caller(parts: &Parts, state: &State) -> Option<Caller> {
    if parts.method != Method::GET && parts.method != Method::HEAD {
        return None;
    }
    lookup(&parts.headers, state).await.map(|(_, _, c)| c)
}

/// Whoever looks at a page: a logged-in token or user, or an anonymous visitor when the
/// server allows anonymous reading. Without any, the page redirects to `/login`.
#[derive(Debug, Clone)]
pub struct Viewer {
    /// The session's token (`None` for a user's session).
    pub token: Option<Token>,
    /// The session's user account (`None` for a token's session).
    pub user: Option<User>,
    /// Session id and its CSRF token.
    session: Option<(String, String)>,
}

impl Viewer {
    /// The same identity as an API caller (for handlers shared with the API).
    pub fn caller(&self) -> Caller {
        Caller {
            token: self.token.clone(),
            user: self.user.clone(),
        }
    }

    /// Whether this viewer may start, cancel, rerun and approve runs: an admin token or
    /// a user with the admin role.
    pub fn is_admin(&self) -> bool {
        self.caller().is_admin()
    }

    /// Name for causes ("Started manually by alice"): the user's, the token's, or
    /// `anonymous`.
    pub fn name(&self) -> &str {
        self.who().unwrap_or("anonymous")
    }

    /// The logged-in user's or token's name (for the header); `None` when anonymous.
    pub fn who(&self) -> Option<&str> {
        match (&self.user, &self.token) {
            (Some(u), _) => Some(u.name.as_str()),
            (None, Some(t)) => Some(t.name.as_str()),
            (None, None) => None,
        }
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
        if let Some((id, session, caller)) = lookup(&parts.headers, state).await {
            return Ok(Viewer {
                token: caller.token,
                user: caller.user,
                session: Some((id, session.csrf)),
            });
        }
        if state.config.anonymous_read {
            return Ok(Viewer {
                token: None,
                user: None,
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
