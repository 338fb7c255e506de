//! [`ApiError`]: every failure of an API call, answered as `{"error": "message"}` with a
//! fitting status. Internal failures (database, file system) are logged in full and
//! answered with a generic message, so the client learns nothing about the server's
//! insides.

use axum::Json;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use gantry_store::StoreError;

use crate::runs::RunError;

/// A failed API call.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// 400: the request is malformed.
    #[error("{0}")]
    BadRequest(String),
    /// 401: no or an unknown token.
    #[error("{0}")]
    Unauthorized(String),
    /// 403: the token may not do this.
    #[error("{0}")]
    Forbidden(String),
    /// 404: no such thing.
    #[error("{0}")]
    NotFound(String),
    /// 409: it exists already / the state does not allow it.
    #[error("{0}")]
    Conflict(String),
    /// 413: the body is too large.
    #[error("{0}")]
    TooLarge(String),
    /// 416: a byte range outside the file.
    #[error("{0}")]
    RangeNotSatisfiable(String),
    /// 422: well-formed, but not acceptable (invalid params).
    #[error("{0}")]
    Unprocessable(String),
    /// 502: a repository could not be reached.
    #[error("{0}")]
    BadGateway(String),
    /// 500: logged, not shown.
    #[error("internal error")]
    Internal(String),
}

impl ApiError {
    /// The status code.
    pub fn status(&self) -> StatusCode {
        match self {
            ApiError::BadRequest(_) => StatusCode::BAD_REQUEST,
            ApiError::Unauthorized(_) => StatusCode::UNAUTHORIZED,
            ApiError::Forbidden(_) => StatusCode::FORBIDDEN,
            ApiError::NotFound(_) => StatusCode::NOT_FOUND,
            ApiError::Conflict(_) => StatusCode::CONFLICT,
            ApiError::TooLarge(_) => StatusCode::PAYLOAD_TOO_LARGE,
            ApiError::RangeNotSatisfiable(_) => StatusCode::RANGE_NOT_SATISFIABLE,
            ApiError::Unprocessable(_) => StatusCode::UNPROCESSABLE_ENTITY,
            ApiError::BadGateway(_) => StatusCode::BAD_GATEWAY,
            ApiError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    /// Wraps an unexpected failure.
    pub fn internal(e: impl std::fmt::Display) -> ApiError {
        ApiError::Internal(e.to_string())
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status = self.status();
        if let ApiError::Internal(detail) = &self {
            tracing::error!("internal error answering an API call: {detail}");
        }
        let mut resp = (
            status,
            Json(serde_json::json!({ "error": self.to_string() })),
        )
            .into_response();
        if status == StatusCode::UNAUTHORIZED {
            resp.headers_mut().insert(
                axum::http::header::WWW_AUTHENTICATE,
                axum::http::HeaderValue::from_static("Bearer"),
            );
        }
        resp
    }
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> ApiError {
        match e {
            StoreError::NotFound(what) => ApiError::NotFound(format!("{what} not found")),
            StoreError::Conflict(what) => ApiError::Conflict(format!("{what} already exists")),
            e => ApiError::internal(e),
        }
    }
}

impl From<crate::approvals::ApprovalError> for ApiError {
    fn from(e: crate::approvals::ApprovalError) -> ApiError {
        match e {
            crate::approvals::ApprovalError::NotWaiting(m) => ApiError::Conflict(m),
            crate::approvals::ApprovalError::Store(e) => e.into(),
        }
    }
}

impl From<RunError> for ApiError {
    fn from(e: RunError) -> ApiError {
        match e {
            RunError::NotFound(m) => ApiError::NotFound(m),
            RunError::Invalid(m) => ApiError::Unprocessable(m),
            e @ RunError::Git { .. } => ApiError::BadGateway(e.to_string()),
            RunError::Store(e) => e.into(),
        }
    }
}
