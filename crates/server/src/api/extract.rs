//! Request extractors that answer failures in the API's JSON error shape: the caller's
//! token or web session ([`Reader`], [`Writer`]) and JSON bodies ([`Body`]).

use axum::extract::rejection::JsonRejection;
use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::StatusCode;
use axum::http::request::Parts;
use gantry_store::{Role, Token, User};
use serde::de::DeserializeOwned;

use crate::api::error::ApiError;
use crate::auth::check_token;
use crate::state::State;

/// Who is calling: a token, a user account (through a web session), or nobody
/// (anonymous). At most one of the two is set.
#[derive(Debug, Clone, Default)]
pub struct Caller {
    /// The token, when one was presented.
    pub token: Option<Token>,
    /// The user account, for a logged-in user's web session.
    pub user: Option<User>,
}

impl Caller {
    /// A caller with a token.
    pub fn token(token: Token) -> Caller {
        Caller {
            token: Some(token),
            user: None,
        }
    }

    /// A logged-in user.
    pub fn user(user: User) -> Caller {
        Caller {
            token: None,
            user: Some(user),
        }
    }

    /// Name for causes ("Started manually by alice"): the user's, the token's, or
    /// `anonymous`.
    pub fn name(&self) -> &str {
        match (&self.user, &self.token) {
            (Some(u), _) => u.name.as_str(),
            (None, Some(t)) => t.name.as_str(),
            (None, None) => "anonymous",
        }
    }

    /// Whether the caller may change things: an admin token, or a user with the admin
    /// role.
    pub fn is_admin(&self) -> bool {
        match (&self.user, &self.token) {
            (Some(u), _) => u.role == Role::Admin,
            (None, Some(t)) => t.kind == "admin",
            (None, None) => false,
        }
    }
}

/// A caller allowed to read: any valid token, or nobody when anonymous read is on.
#[derive(Debug, Clone)]
pub struct Reader(pub Caller);

/// A caller allowed to change things: an admin token (or an admin user's web session,
/// which authenticates only `GET`s).
#[derive(Debug, Clone)]
pub struct Writer(pub Caller);

async fn caller(parts: &Parts, state: &State) -> Result<Option<Caller>, ApiError> {
    let Some(value) = parts.headers.get(axum::http::header::AUTHORIZATION) else {
        // The web UI's session cookie counts for reading (log streams, downloads).
        return Ok(crate::web::session::cookie_caller(parts, state).await);
    };
    let text = value
        .to_str()
        .map_err(|_| ApiError::Unauthorized("invalid Authorization header".into()))?;
    let token = text
        .strip_prefix("Bearer ")
        .or_else(|| text.strip_prefix("bearer "))
        .map(str::trim)
        .filter(|t| !t.is_empty())
        .ok_or_else(|| {
            ApiError::Unauthorized("the Authorization header must be \"Bearer <token>\"".into())
        })?;
    match check_token(state.store.as_ref(), token).await? {
        Some(t) => Ok(Some(Caller::token(t))),
        None => Err(ApiError::Unauthorized("invalid or revoked token".into())),
    }
}

impl FromRequestParts<State> for Reader {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &State) -> Result<Self, ApiError> {
        match caller(parts, state).await? {
            Some(caller) => Ok(Reader(caller)),
            None if state.config.anonymous_read => Ok(Reader(Caller::default())),
            None => Err(ApiError::Unauthorized(
                "authentication required: send \"Authorization: Bearer <token>\"".into(),
            )),
        }
    }
}

impl FromRequestParts<State> for Writer {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &State) -> Result<Self, ApiError> {
        match caller(parts, state).await? {
            Some(caller) if caller.is_admin() => Ok(Writer(caller)),
            Some(caller) => Err(ApiError::Forbidden(format!(
                "{} {:?} may not change anything",
                if caller.user.is_some() {
                    "user"
                } else {
                    "token"
                },
                caller.name()
            ))),
            None => Err(ApiError::Unauthorized(
                "authentication required: send \"Authorization: Bearer <token>\"".into(),
            )),
        }
    }
}

/// A JSON body; malformed JSON is a 400 and an oversized body a 413, both as JSON errors.
#[derive(Debug)]
pub struct Body<T>(pub T);

impl<T: DeserializeOwned, S: Send + Sync> FromRequest<S> for Body<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, ApiError> {
        match axum::Json::<T>::from_request(req, state).await {
            Ok(axum::Json(v)) => Ok(Body(v)),
            Err(e) => Err(json_rejection(e)),
        }
    }
}

fn json_rejection(e: JsonRejection) -> ApiError {
    if e.status() == StatusCode::PAYLOAD_TOO_LARGE {
        return ApiError::TooLarge("request body is too large".into());
    }
    match e {
        JsonRejection::MissingJsonContentType(_) => {
            ApiError::BadRequest("expected a JSON body (Content-Type: application/json)".into())
        }
        e => ApiError::BadRequest(format!("invalid JSON body: {}", e.body_text())),
    }
}

/// A JSON body that may also be empty (then `T::default()`), for calls whose body is
/// all optional (`rerun`, `trigger`).
#[derive(Debug)]
pub struct OptionalBody<T>(pub T);

impl<T: DeserializeOwned + Default, S: Send + Sync> FromRequest<S> for OptionalBody<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, ApiError> {
        let bytes = match axum::body::Bytes::from_request(req, state).await {
            Ok(b) => b,
            Err(e) if e.status() == StatusCode::PAYLOAD_TOO_LARGE => {
                return Err(ApiError::TooLarge("request body is too large".into()));
            }
            Err(e) => return Err(ApiError::BadRequest(e.body_text())),
        };
        if bytes.iter().all(u8::is_ascii_whitespace) {
            return Ok(OptionalBody(T::default()));
        }
        serde_json::from_slice(&bytes)
            .map(OptionalBody)
            .map_err(|e| ApiError::BadRequest(format!("invalid JSON body: {e}")))
    }
}

/// The raw body (webhooks verify signatures over the exact bytes); an oversized body is
/// a 413 JSON error.
#[derive(Debug)]
pub struct RawBody(pub axum::body::Bytes);

impl<S: Send + Sync> FromRequest<S> for RawBody {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, ApiError> {
        match axum::body::Bytes::from_request(req, state).await {
            Ok(b) => Ok(RawBody(b)),
            Err(e) if e.status() == StatusCode::PAYLOAD_TOO_LARGE => Err(ApiError::TooLarge(
                "request body is larger than the limit".into(),
            )),
            Err(e) => Err(ApiError::BadRequest(e.body_text())),
        }
    }
}
