//! Admin routes for agents: their tokens (`/api/agent-tokens`) and who is online
//! (`/api/agents`).
//!
//! An agent token is made by the admin, shown once in plaintext (only its sha256 is
//! kept), and named; a name is unique among live tokens. Revoking it refuses it at
//! once: the agent's next call — a lease request, or a heartbeat in the middle of a job —
//! gets `401`.

use std::collections::BTreeMap;

use axum::Json;
use axum::extract::{Path, State as Ax};
use axum::http::StatusCode;
use serde::{Deserialize, Serialize};

use crate::api::error::ApiError;
use crate::api::extract::{Body, Reader, Writer};
use crate::api::json::rfc3339;
use crate::auth::{ADMIN_TOKEN_NAME, hash_token, new_token};
use crate::state::{State, now_ms};

/// The kind of an agent token in the store.
pub const AGENT_KIND: &str = "agent";

/// `POST /api/agent-tokens` body.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewAgentToken {
    /// The token's name (`build-2`).
    pub name: String,
}

/// A token just made: the only time its secret is shown.
#[derive(Debug, Serialize)]
pub struct CreatedToken {
    /// Its name.
    pub name: String,
    /// The secret, in plaintext.
    pub token: String,
    /// When it was made.
    pub created_at: String,
}

/// An agent token as listed (no secret).
#[derive(Debug, Serialize)]
pub struct AgentTokenJson {
    /// Its name.
    pub name: String,
    /// When it was made.
    pub created_at: String,
    /// Online executors using it now, by name.
    pub agents: Vec<String>,
}

/// An online executor.
#[derive(Debug, Serialize)]
pub struct AgentJson {
    /// Its name (`builtin` for the server's own).
    pub name: String,
    /// Its labels.
    pub labels: BTreeMap<String, String>,
    /// Jobs it runs at once.
    pub capacity: u32,
    /// Jobs it runs now.
    pub running: usize,
    /// When it was last heard from.
    pub last_seen: String,
    /// Its protocol version.
    pub protocol: u32,
    /// The token it uses (`null` for the built-in executor).
    pub token: Option<String>,
    /// Whether it is the server's built-in executor.
    pub builtin: bool,
}

fn valid_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 64
        && !name.starts_with('.')
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
}

/// `POST /api/agent-tokens`: makes a token; `201` with its plaintext (shown only now).
pub async fn create(
    Ax(state): Ax<State>,
    _: Writer,
    Body(body): Body<NewAgentToken>,
) -> Result<(StatusCode, Json<CreatedToken>), ApiError> {
    if !valid_name(&body.name) {
        return Err(ApiError::BadRequest(format!(
            "invalid token name {:?}: use letters, digits, '-', '_' and '.' (not first), at most 64",
            body.name
        )));
    }
    if body.name == ADMIN_TOKEN_NAME {
        return Err(ApiError::BadRequest(format!(
            "{ADMIN_TOKEN_NAME:?} is the admin token's name; choose another"
        )));
    }
    let token = new_token();
    let made = state
        .store
        .create_token(&body.name, AGENT_KIND, &hash_token(&token), now_ms())
        .await
        .map_err(|e| match e {
            gantry_store::StoreError::Conflict(_) => ApiError::Conflict(format!(
                "a token named {:?} exists already; revoke it first or choose another name",
                body.name
            )),
            e => e.into(),
        })?;
    Ok((
        StatusCode::CREATED,
        Json(CreatedToken {
            name: made.name,
            token,
            created_at: rfc3339(made.created_at),
        }),
    ))
}

/// `GET /api/agent-tokens`: the live agent tokens, without secrets.
pub async fn list(Ax(state): Ax<State>, _: Writer) -> Result<Json<Vec<AgentTokenJson>>, ApiError> {
    let tokens = state.store.list_tokens().await?;
    let online = state.agents.online(now_ms(), ttl_ms(&state));
    Ok(Json(
        tokens
            .into_iter()
            .filter(|t| t.kind == AGENT_KIND && t.revoked_at.is_none())
            .map(|t| AgentTokenJson {
                agents: online
                    .iter()
                    .filter(|o| o.token.as_deref() == Some(t.name.as_str()))
                    .map(|o| o.name.clone())
                    .collect(),
                name: t.name,
                created_at: rfc3339(t.created_at),
            })
            .collect(),
    ))
}

/// `DELETE /api/agent-tokens/{name}`: revokes an agent token; `204`. Agents using it are
/// refused from their next call on.
pub async fn revoke(
    Ax(state): Ax<State>,
    _: Writer,
    Path(name): Path<String>,
) -> Result<StatusCode, ApiError> {
    let tokens = state.store.list_tokens().await?;
    let live = tokens
        .iter()
        .find(|t| t.name == name && t.revoked_at.is_none());
    match live {
        Some(t) if t.kind == AGENT_KIND => {}
        Some(_) => {
            return Err(ApiError::BadRequest(format!(
                "{name:?} is not an agent token (the admin token is replaced with `gantry token rotate`)"
            )));
        }
        None => return Err(ApiError::NotFound(format!("no agent token named {name:?}"))),
    }
    state.store.revoke_token(&name, now_ms()).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// `GET /api/agents`: the executors online now (seen within the lease ttl or waiting
/// for work), the built-in one included.
pub async fn agents(Ax(state): Ax<State>, _: Reader) -> Result<Json<Vec<AgentJson>>, ApiError> {
    let online = state.agents.online(now_ms(), ttl_ms(&state));
    Ok(Json(
        online
            .into_iter()
            .map(|o| AgentJson {
                builtin: o.name == crate::server::BUILTIN_EXECUTOR && o.token.is_none(),
                name: o.name,
                labels: o.labels,
                capacity: o.capacity,
                running: o.running,
                last_seen: rfc3339(o.last_seen),
                protocol: o.protocol,
                token: o.token,
            })
            .collect(),
    ))
}

fn ttl_ms(state: &State) -> i64 {
    state.config.lease_ttl.as_millis() as i64
}
