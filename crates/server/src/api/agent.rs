//! The agent protocol over HTTP (`/api/agent/v1/…`, see [`gantry_protocol::AGENT_API`]):
//! remote agents reach the same [`ServerJobSource`] the built-in executor uses in-process,
//! so there is one code path for handing out and recording jobs.
//!
//! - Every call carries `Authorization: Bearer` with an agent token (kind `agent`) or the
//!   admin token. The token is looked up on every call, so a revoked token is refused at
//!   once, also in the middle of a job.
//! - Refusals are [`LeaseError`]s answered with their status (stale 409, unauthorized
//!   401, incompatible 426, invalid 400, too large 413, unavailable 503) and an
//!   [`ErrorBody`](gantry_protocol::ErrorBody) `{"error": CODE, "message": …}`, which the
//!   agent's client maps back to the same `LeaseError`.
//! - A report under a lease the caller does not hold — expired, superseded, or taken with
//!   another token — is refused as stale and changes nothing.
//!
//! Artifact uploads and downloads stream; they are in [`super::agent_artifacts`].

use axum::Json;
use axum::extract::rejection::{JsonRejection, PathRejection};
use axum::extract::{FromRequest, FromRequestParts, Path, Request, State as Ax};
use axum::http::StatusCode;
use axum::http::request::Parts;
use axum::response::{IntoResponse, Response};
use gantry_protocol::{
    AgentHello, ExecutorInfo, Finish, GANTRY_VERSION, JobSource, LeaseError, LeaseId, LeaseRequest,
    LeaseState, LogChunk, MAX_LEASE_WAIT_MS, PROTOCOL_VERSION, ServerHello,
};
use gantry_store::{Job, LeaseCheck, StoreError, Token};
use serde::de::DeserializeOwned;

use crate::agents::Holder;
use crate::auth::check_token;
use crate::executor::ServerJobSource;
use crate::state::{State, now_ms};

/// A refused agent call (see the module docs for the answer's shape).
#[derive(Debug)]
pub struct AgentError(pub LeaseError);

impl From<LeaseError> for AgentError {
    fn from(e: LeaseError) -> AgentError {
        AgentError(e)
    }
}

impl IntoResponse for AgentError {
    fn into_response(self) -> Response {
        let e = match self.0 {
            // The detail (a database error) is for the server's log, not for the agent.
            LeaseError::Unavailable(detail) => {
                tracing::warn!("an agent call failed: {detail}");
                LeaseError::Unavailable("the server cannot answer right now; try again".into())
            }
            e => e,
        };
        let status = StatusCode::from_u16(e.status()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        let mut resp = (status, Json(e.body())).into_response();
        if status == StatusCode::UNAUTHORIZED {
            resp.headers_mut().insert(
                axum::http::header::WWW_AUTHENTICATE,
                axum::http::HeaderValue::from_static("Bearer"),
            );
        }
        resp
    }
}

/// The caller of an agent route: an agent token or the admin token.
#[derive(Debug, Clone)]
pub struct AgentCaller(pub Token);

impl FromRequestParts<State> for AgentCaller {
    type Rejection = AgentError;

    async fn from_request_parts(parts: &mut Parts, state: &State) -> Result<Self, AgentError> {
        let unauthorized = |m: &str| AgentError(LeaseError::Unauthorized(m.into()));
        let value = parts
            .headers
            .get(axum::http::header::AUTHORIZATION)
            .ok_or_else(|| {
                unauthorized("an agent token is required: send \"Authorization: Bearer <token>\"")
            })?;
        let token = value
            .to_str()
            .ok()
            .and_then(|t| {
                t.strip_prefix("Bearer ")
                    .or_else(|| t.strip_prefix("bearer "))
            })
            .map(str::trim)
            .filter(|t| !t.is_empty())
            .ok_or_else(|| unauthorized("the Authorization header must be \"Bearer <token>\""))?;
        let found = check_token(state.store.as_ref(), token)
            .await
            .map_err(|e| AgentError(LeaseError::Unavailable(e.to_string())))?;
        match found {
            Some(t) if t.kind == "agent" || t.kind == "admin" => Ok(AgentCaller(t)),
            Some(t) => Err(unauthorized(&format!(
                "token {:?} is not an agent token",
                t.name
            ))),
            None => Err(unauthorized("invalid or revoked token")),
        }
    }
}

/// A JSON body of an agent call; malformed JSON is `invalid` (400) with the parser's
/// words, an oversized body `too_large` (413).
#[derive(Debug)]
pub struct AgentJson<T>(pub T);

impl<T: DeserializeOwned, S: Send + Sync> FromRequest<S> for AgentJson<T> {
    type Rejection = AgentError;

    async fn from_request(req: Request, state: &S) -> Result<Self, AgentError> {
        match Json::<T>::from_request(req, state).await {
            Ok(Json(v)) => Ok(AgentJson(v)),
            Err(e) => Err(AgentError(json_rejection(e))),
        }
    }
}

fn json_rejection(e: JsonRejection) -> LeaseError {
    if e.status() == StatusCode::PAYLOAD_TOO_LARGE {
        return LeaseError::TooLarge("the request body is larger than the server accepts".into());
    }
    match e {
        JsonRejection::MissingJsonContentType(_) => {
            LeaseError::Invalid("expected a JSON body (Content-Type: application/json)".into())
        }
        e => LeaseError::Invalid(format!("invalid JSON body: {}", e.body_text())),
    }
}

/// The `{lease}` of a lease route.
#[derive(Debug)]
pub struct LeasePath(pub LeaseId);

impl FromRequestParts<State> for LeasePath {
    type Rejection = AgentError;

    async fn from_request_parts(parts: &mut Parts, state: &State) -> Result<Self, AgentError> {
        let Path(lease) = Path::<String>::from_request_parts(parts, state)
            .await
            .map_err(path_rejection)?;
        Ok(LeasePath(LeaseId(lease)))
    }
}

/// A path that cannot be read (bad percent-encoding) is `invalid`.
pub(crate) fn path_rejection(e: PathRejection) -> AgentError {
    AgentError(LeaseError::Invalid(format!(
        "invalid path: {}",
        e.body_text()
    )))
}

/// Checks an executor's self-description: a name that fits in logs and URLs, sane
/// labels.
fn check_info(info: &ExecutorInfo) -> Result<(), LeaseError> {
    let ok_word = |w: &str| {
        !w.is_empty()
            && w.len() <= 64
            && !w.starts_with('.')
            && w.chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.' | ':'))
    };
    if !ok_word(&info.name) {
        return Err(LeaseError::Invalid(format!(
            "invalid executor name {:?}: use 1 to 64 of A-Z a-z 0-9 - _ . : (not . first)",
            info.name
        )));
    }
    // Label keys may be namespaced (`kubernetes.io/arch`); values are free text.
    let ok_key = |k: &str| k.split('/').all(ok_word);
    if let Some((k, v)) = info
        .labels
        .iter()
        .find(|(k, v)| !ok_key(k) || v.len() > 128 || v.chars().any(char::is_control))
    {
        return Err(LeaseError::Invalid(format!("invalid label {k:?}={v:?}")));
    }
    if info.labels.len() > 64 {
        return Err(LeaseError::Invalid("more than 64 labels".into()));
    }
    Ok(())
}

/// Most leases one hello may name as abandoned: far more than any agent runs at once.
const MAX_ABANDONED: usize = 1024;

/// `POST /api/agent/v1/hello`: the handshake. An executor of another protocol version is
/// refused (`incompatible`, naming both versions); a compatible one learns the limits.
/// The leases an earlier run of the agent left ([`AgentHello::abandoned`]) are expired
/// at once ([`give_up`]).
pub async fn hello(
    Ax(state): Ax<State>,
    AgentCaller(token): AgentCaller,
    AgentJson(hello): AgentJson<AgentHello>,
) -> Result<Json<ServerHello>, AgentError> {
    let info = &hello.executor;
    if info.protocol != PROTOCOL_VERSION {
        return Err(LeaseError::incompatible(info.protocol).into());
    }
    check_info(info)?;
    if hello.abandoned.len() > MAX_ABANDONED {
        return Err(LeaseError::Invalid(format!(
            "{} abandoned leases named; at most {MAX_ABANDONED} are accepted",
            hello.abandoned.len()
        ))
        .into());
    }
    state.agents.seen(info, Some(&token.name), now_ms());
    let expired_leases = give_up(&state, &token, &info.name, &hello.abandoned).await?;
    Ok(Json(ServerHello {
        protocol: PROTOCOL_VERSION,
        server_version: GANTRY_VERSION.to_owned(),
        lease_ttl_secs: state.config.lease_ttl.as_secs().max(1),
        max_lease_wait_ms: MAX_LEASE_WAIT_MS,
        max_artifact_bytes: state.blobs.limit(),
        max_log_batch_bytes: state.config.max_log_batch_bytes as u64,
        expired_leases,
    }))
}

/// Expires now the leases an agent's earlier run left, as its hello names them: each one
/// that is still current, held by an executor called `name`, and (when this server
/// handed it out) taken with the caller's token; the others are skipped without a word
/// (they ended, or are not the caller's). Their jobs go the way of any expired lease:
/// queued again as the next attempt, or ended as their attempts and a cancel say. How
/// many were expired.
///
/// Naming a lease proves having held it: lease ids are unguessable and only ever sent to
/// the executor they were handed to. So an agent can give up only its own leases, never
/// those of another agent that shares its name.
async fn give_up(
    state: &State,
    token: &Token,
    name: &str,
    leases: &[LeaseId],
) -> Result<u32, LeaseError> {
    let unavailable = |e: StoreError| LeaseError::Unavailable(e.to_string());
    let now = now_ms();
    let mut jobs = std::collections::BTreeSet::new();
    for lease in leases {
        if state
            .agents
            .holder(&lease.0)
            .is_some_and(|h| h.token_id != Some(token.id))
        {
            continue;
        }
        let job = match state.store.job_by_lease(&lease.0).await {
            Ok(job) => job,
            Err(StoreError::StaleLease(_) | StoreError::NotFound(_)) => continue,
            Err(e) => return Err(unavailable(e)),
        };
        if job.executor.as_deref() != Some(name) {
            continue;
        }
        // A deadline in the past: the expiry below then takes the lease as it takes any
        // overdue one, with the same bookkeeping (attempts, cancels, deploy jobs).
        let check = state
            .store
            .heartbeat(&lease.0, now, -1)
            .await
            .map_err(unavailable)?;
        if check != LeaseCheck::Lost {
            jobs.insert((job.run_id, job.idx));
        }
    }
    if jobs.is_empty() {
        return Ok(0);
    }
    tracing::info!(
        agent = name,
        leases = jobs.len(),
        "expiring the leases an earlier run of the agent left"
    );
    crate::loops::expire_restarted(state, &jobs)
        .await
        .map_err(unavailable)?;
    Ok(u32::try_from(jobs.len()).unwrap_or(u32::MAX))
}

/// `POST /api/agent/v1/lease`: waits up to `wait_ms` (at most
/// [`MAX_LEASE_WAIT_MS`]) for a job the executor can take: `200` with the lease, or
/// `204` when none came.
pub async fn lease(
    Ax(state): Ax<State>,
    AgentCaller(token): AgentCaller,
    AgentJson(req): AgentJson<LeaseRequest>,
) -> Result<Response, AgentError> {
    if req.executor.protocol != PROTOCOL_VERSION {
        return Err(LeaseError::incompatible(req.executor.protocol).into());
    }
    check_info(&req.executor)?;
    let wait = std::time::Duration::from_millis(req.wait_ms.min(MAX_LEASE_WAIT_MS));
    let source = ServerJobSource::new(state.clone());
    let leased = source
        .lease_with_token(&req.executor, wait, Some(token.id), Some(&token.name))
        .await?;
    Ok(match leased {
        Some(lease) => Json(lease).into_response(),
        None => StatusCode::NO_CONTENT.into_response(),
    })
}

/// The job under `lease`, once it is sure the caller holds it: the lease is current and
/// was taken with the caller's token. A lease this server process did not hand out (it
/// restarted since) is adopted by the first token that reports under it.
pub(crate) async fn held(state: &State, token: &Token, lease: &LeaseId) -> Result<Job, LeaseError> {
    let source = ServerJobSource::new(state.clone());
    let holder = state.agents.holder(&lease.0);
    if let Some(h) = &holder
        && h.token_id != Some(token.id)
    {
        return Err(LeaseError::Stale {
            lease: lease.0.clone(),
            reason: format!("held by executor {}, under another token", h.executor),
        });
    }
    let job = source.current(lease).await?;
    if holder.is_none() {
        state.agents.hold(
            &lease.0,
            Holder {
                executor: job.executor.clone().unwrap_or_default(),
                token_id: Some(token.id),
                job: (job.run_id, job.idx),
                since: now_ms(),
            },
        );
    }
    Ok(job)
}

/// `POST /api/agent/v1/leases/{lease}/heartbeat`: extends the lease; answers `ok`,
/// `cancelled` (stop the job and finish it `cancelled`) or `lost`.
pub async fn heartbeat(
    Ax(state): Ax<State>,
    AgentCaller(token): AgentCaller,
    LeasePath(lease): LeasePath,
) -> Result<Json<LeaseState>, AgentError> {
    match held(&state, &token, &lease).await {
        Ok(_) => {}
        // Not current any more: the agent stops the job either way.
        Err(LeaseError::Stale { .. }) if state.agents.holder(&lease.0).is_none() => {
            return Ok(Json(LeaseState::Lost));
        }
        Err(e) => return Err(e.into()),
    }
    let source = ServerJobSource::new(state.clone());
    Ok(Json(source.heartbeat(&lease).await?))
}

/// `POST /api/agent/v1/leases/{lease}/logs`: appends a batch of log lines; a batch sent
/// again (same `seq`) is stored once.
pub async fn logs(
    Ax(state): Ax<State>,
    AgentCaller(token): AgentCaller,
    LeasePath(lease): LeasePath,
    AgentJson(chunk): AgentJson<LogChunk>,
) -> Result<StatusCode, AgentError> {
    held(&state, &token, &lease).await?;
    let source = ServerJobSource::new(state.clone());
    source.append_log(&lease, chunk).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// `POST /api/agent/v1/leases/{lease}/finish`: ends the lease with the job's result.
pub async fn finish(
    Ax(state): Ax<State>,
    AgentCaller(token): AgentCaller,
    LeasePath(lease): LeasePath,
    AgentJson(finish): AgentJson<Finish>,
) -> Result<StatusCode, AgentError> {
    held(&state, &token, &lease).await?;
    let source = ServerJobSource::new(state.clone());
    source.finish(&lease, finish).await?;
    Ok(StatusCode::NO_CONTENT)
}
