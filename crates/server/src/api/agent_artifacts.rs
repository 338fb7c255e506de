//! Artifact blobs over the agent protocol, streamed both ways:
//!
//! - `PUT /api/agent/v1/leases/{lease}/artifacts/{sha256}` stores the body as it arrives
//!   in a temporary file, verifies its sha256 against the name, and renames it into the
//!   blob store. A body over the server's limit (`max_artifact_bytes`) is refused with
//!   `413` — at once when its `Content-Length` says so, else as soon as that much has
//!   arrived. A name that is not a sha256 (a path like `../../etc/passwd` included) or a
//!   body that hashes to something else is refused with `400`; nothing is stored.
//! - `GET /api/agent/v1/leases/{lease}/artifacts/{sha256}` streams a blob of the lease's
//!   own run (the artifacts of the job's needs) or of a cache entry of its repository: a
//!   lease is not a key to every blob.

use axum::body::Body;
use axum::extract::{FromRequestParts, Path, State as Ax};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use gantry_protocol::{LeaseError, LeaseId};

use crate::api::agent::{AgentCaller, AgentError, held, path_rejection};
use crate::blobs::BlobError;
use crate::executor::ServerJobSource;
use crate::state::State;

/// The `{lease}` and `{sha256}` of an artifact route, the digest checked.
#[derive(Debug)]
pub struct BlobPath {
    /// The lease.
    pub lease: LeaseId,
    /// 64 lowercase hex digits.
    pub digest: String,
}

impl FromRequestParts<State> for BlobPath {
    type Rejection = AgentError;

    async fn from_request_parts(
        parts: &mut axum::http::request::Parts,
        state: &State,
    ) -> Result<Self, AgentError> {
        let Path((lease, digest)) = Path::<(String, String)>::from_request_parts(parts, state)
            .await
            .map_err(path_rejection)?;
        let is_sha256 = digest.len() == 64
            && digest
                .bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b));
        if !is_sha256 {
            return Err(AgentError(LeaseError::Invalid(format!(
                "invalid digest {:?}: an artifact is named by the sha256 of its content \
                 (64 lowercase hex digits)",
                digest.chars().take(100).collect::<String>()
            ))));
        }
        Ok(BlobPath {
            lease: LeaseId(lease),
            digest,
        })
    }
}

fn blob_error(e: BlobError) -> LeaseError {
    match e {
        BlobError::TooLarge { .. } => LeaseError::TooLarge(e.to_string()),
        BlobError::Io(e) => LeaseError::Unavailable(e.to_string()),
        e @ (BlobError::BadDigest(_) | BlobError::Mismatch { .. } | BlobError::Missing(_)) => {
            LeaseError::Invalid(e.to_string())
        }
    }
}

/// `PUT …/artifacts/{sha256}`: stores one blob (see the module docs).
pub async fn put(
    Ax(state): Ax<State>,
    AgentCaller(token): AgentCaller,
    path: BlobPath,
    headers: HeaderMap,
    body: Body,
) -> Result<StatusCode, AgentError> {
    held(&state, &token, &path.lease).await?;
    let limit = state.blobs.limit();
    let declared = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if let Some(size) = declared.filter(|n| *n > limit) {
        return Err(AgentError(blob_error(BlobError::TooLarge { size, limit })));
    }
    state
        .blobs
        .put_stream(&path.digest, body.into_data_stream())
        .await
        .map_err(|e| AgentError(blob_error(e)))?;
    Ok(StatusCode::NO_CONTENT)
}

/// `GET …/artifacts/{sha256}`: streams one blob of the lease's run or its repository's
/// caches.
pub async fn get(
    Ax(state): Ax<State>,
    AgentCaller(token): AgentCaller,
    path: BlobPath,
) -> Result<Response, AgentError> {
    let job = held(&state, &token, &path.lease).await?;
    ServerJobSource::new(state.clone())
        .check_blob_access(&job, &path.digest)
        .await?;
    let file_path = state
        .blobs
        .path(&path.digest)
        .map_err(|e| AgentError(blob_error(e)))?;
    let file = match tokio::fs::File::open(&file_path).await {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Err(AgentError(blob_error(BlobError::Missing(path.digest))));
        }
        Err(e) => return Err(AgentError(blob_error(BlobError::Io(e)))),
    };
    let size = file
        .metadata()
        .await
        .map_err(|e| AgentError(blob_error(BlobError::Io(e))))?
        .len();
    let mut resp = Body::from_stream(tokio_util::io::ReaderStream::with_capacity(file, 64 * 1024))
        .into_response();
    let headers = resp.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/octet-stream"),
    );
    headers.insert(header::CONTENT_LENGTH, HeaderValue::from(size));
    Ok(resp)
}
