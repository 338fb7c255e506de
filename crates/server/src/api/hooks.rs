//! `POST /hooks/{repo}`: push and tag webhooks from GitHub, Gitea/Forgejo and GitLab.
//!
//! The signature is verified against the repository's secret before anything in the
//! request is believed ([`crate::triggers::webhook`]); a bad or missing one is answered
//! 401, logged, and starts nothing. Runs are keyed by ref and commit, so a redelivery —
//! or a poll that saw the same push — starts nothing new.

use axum::Json;
use axum::extract::{Path, State as Ax};
use axum::http::{HeaderMap, StatusCode};
use gantry_pipeline::Event;
use serde_json::json;

use crate::api::error::ApiError;
use crate::api::extract::RawBody;
use crate::api::json::RunJson;
use crate::runs::{RunError, RunRequest, start_runs};
use crate::state::State;
use crate::triggers::webhook::{WebhookError, verify_and_parse};

/// `POST /hooks/{repo}`.
pub async fn receive(
    Ax(state): Ax<State>,
    Path(name): Path<String>,
    headers: HeaderMap,
    RawBody(body): RawBody,
) -> Result<(StatusCode, Json<serde_json::Value>), ApiError> {
    let repo = match state.store.repo_by_name(&name).await {
        Ok(r) => r,
        Err(gantry_store::StoreError::NotFound(_)) => {
            tracing::warn!(repo = %name, "webhook for an unknown repository refused");
            return Err(ApiError::NotFound(format!("repository {name:?} not found")));
        }
        Err(e) => return Err(e.into()),
    };
    let push = match verify_and_parse(&headers, &body, repo.webhook_secret.as_deref()) {
        Ok(p) => p,
        Err(e @ WebhookError::Ignored { .. }) => {
            return Ok((
                StatusCode::ACCEPTED,
                Json(json!({ "ignored": e.to_string(), "runs": [] })),
            ));
        }
        Err(e) => {
            tracing::warn!(repo = %repo.name, "webhook refused: {e}");
            let msg = e.to_string();
            return Err(match e.status() {
                StatusCode::UNAUTHORIZED => ApiError::Unauthorized(msg),
                StatusCode::FORBIDDEN => ApiError::Forbidden(msg),
                StatusCode::PAYLOAD_TOO_LARGE => ApiError::TooLarge(msg),
                _ => ApiError::BadRequest(msg),
            });
        }
    };
    if push.deleted || push.after.bytes().all(|b| b == b'0') {
        return Ok((
            StatusCode::ACCEPTED,
            Json(json!({ "ignored": format!("{} was deleted", push.git_ref), "runs": [] })),
        ));
    }
    let event = if push.tag().is_some() {
        Event::Tag
    } else {
        Event::Push
    };
    let what = if event == Event::Tag {
        "tag push"
    } else {
        "push"
    };
    let mut req = RunRequest::new(
        event,
        format!("Started by {what} webhook from {}", push.pusher),
    );
    req.git_ref = Some(push.git_ref.clone());
    req.commit = Some(push.after.clone());
    req.before = Some(push.before.clone());
    req.dedup_key = Some(format!("ref:{}@{}", push.git_ref, push.after));
    let runs = match start_runs(&state, &repo, req).await {
        Ok(runs) => runs,
        // A push of a commit without a pipeline file is not the forge's problem.
        Err(RunError::NotFound(m)) => {
            return Ok((
                StatusCode::ACCEPTED,
                Json(json!({ "ignored": m, "runs": [] })),
            ));
        }
        Err(e) => return Err(e.into()),
    };
    // The poller would see the same change; it is now known.
    if let Err(e) = state
        .store
        .set_ref_head(repo.id, &push.git_ref, &push.after)
        .await
    {
        tracing::warn!(repo = %repo.name, "cannot record ref head: {e}");
    }
    let runs: Vec<RunJson> = runs.iter().map(RunJson::new).collect();
    let status = if runs.is_empty() {
        StatusCode::ACCEPTED
    } else {
        StatusCode::CREATED
    };
    Ok((status, Json(json!({ "runs": runs }))))
}
