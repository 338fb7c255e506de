//! `/api/repos…`: registering repositories, their pipelines and params, and manual
//! triggers.

use std::collections::BTreeMap;

use axum::Json;
use axum::extract::{Path, State as Ax};
use axum::http::StatusCode;
use gantry_pipeline::{Event, ParamType};
use gantry_store::NewRepo;
use serde::Deserialize;

use crate::api::error::ApiError;
use crate::api::extract::{Body, OptionalBody, Reader, Writer};
use crate::api::json::{ParamJson, PipelineJson, RepoJson, RunJson};
use crate::runs::{RunRequest, default_name, start_runs};
use crate::state::State;
use crate::triggers::refs::ref_choices;

/// `POST /api/repos` body.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AddRepo {
    /// Unique name.
    pub name: String,
    /// Clone URL or path.
    pub url: String,
    /// Webhook secret.
    #[serde(default)]
    pub webhook_secret: Option<String>,
}

/// Whether a repository name is usable in URLs and paths.
fn valid_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 100
        && !name.starts_with('.')
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
}

/// `GET /api/repos`.
pub async fn list(Ax(state): Ax<State>, _: Reader) -> Result<Json<Vec<RepoJson>>, ApiError> {
    let repos = state.store.list_repos().await?;
    Ok(Json(repos.iter().map(RepoJson::new).collect()))
}

/// `POST /api/repos`.
pub async fn add(
    Ax(state): Ax<State>,
    _: Writer,
    Body(body): Body<AddRepo>,
) -> Result<(StatusCode, Json<RepoJson>), ApiError> {
    if !valid_name(&body.name) {
        return Err(ApiError::BadRequest(format!(
            "invalid repository name {:?}: use letters, digits, '-', '_' and '.' (not first), at most 100",
            body.name
        )));
    }
    let url = body.url.trim();
    if url.is_empty() || url.starts_with('-') {
        return Err(ApiError::BadRequest(format!(
            "invalid repository url {:?}",
            body.url
        )));
    }
    let repo = state
        .store
        .create_repo(NewRepo {
            name: body.name.clone(),
            url: url.to_string(),
            webhook_secret: body.webhook_secret.filter(|s| !s.is_empty()),
        })
        .await?;
    // Learn its refs now rather than at the next poll tick, so the first push after
    // registering is seen as a change (and an unreachable URL shows its error soon).
    let st = state.clone();
    let r = repo.clone();
    tokio::spawn(async move { crate::loops::poll_repo(&st, &r).await });
    Ok((StatusCode::CREATED, Json(RepoJson::new(&repo))))
}

/// `GET /api/repos/{repo}`.
pub async fn get(
    Ax(state): Ax<State>,
    _: Reader,
    Path(name): Path<String>,
) -> Result<Json<RepoJson>, ApiError> {
    let repo = state.store.repo_by_name(&name).await?;
    let pipelines = state.store.list_pipelines(Some(repo.id)).await?;
    let mut json = RepoJson::new(&repo);
    json.pipelines = Some(pipelines.iter().map(PipelineJson::new).collect());
    Ok(Json(json))
}

/// `GET /api/repos/{repo}/pipelines/{pipeline}/params`: the params of the pipeline as
/// its file says at the default branch (or `?ref=`), with the allowed refs of `ref`
/// params.
pub async fn params(
    Ax(state): Ax<State>,
    _: Reader,
    Path((name, pipeline)): Path<(String, String)>,
    axum::extract::Query(q): axum::extract::Query<BTreeMap<String, String>>,
) -> Result<Json<Vec<ParamJson>>, ApiError> {
    let repo = state.store.repo_by_name(&name).await?;
    let mirror = state.mirror(&repo);
    let bad =
        |e: crate::git::GitError| ApiError::BadGateway(format!("repository {}: {e}", repo.name));
    mirror.fetch().await.map_err(bad)?;
    let mut refs = mirror.branches().await.map_err(bad)?;
    refs.extend(mirror.tags().await.map_err(bad)?);
    let wanted = q.get("ref").cloned();
    let pick = |n: &str| refs.iter().find(|r| r.name == n).cloned();
    let target = match &wanted {
        Some(r) => pick(r)
            .or_else(|| pick(&format!("refs/heads/{r}")))
            .or_else(|| pick(&format!("refs/tags/{r}")))
            .ok_or_else(|| ApiError::NotFound(format!("no branch or tag named {r:?}")))?,
        None => ["main", "master", "develop"]
            .iter()
            .find_map(|b| pick(&format!("refs/heads/{b}")))
            .or_else(|| refs.iter().find(|r| r.branch().is_some()).cloned())
            .ok_or_else(|| ApiError::NotFound("the repository has no branches".into()))?,
    };
    let files = mirror.pipeline_files(&target.commit).await.map_err(bad)?;
    for (path, text) in files {
        let Ok(spec) = gantry_pipeline::parse_named(&path, &default_name(&repo.name, &path), &text)
        else {
            continue;
        };
        if spec.name() != pipeline {
            continue;
        }
        let out = spec
            .params()
            .iter()
            .map(|p| ParamJson {
                name: p.name.value.clone(),
                kind: p.kind.value.as_str(),
                default: p.default.as_ref().map(|d| d.value.clone()),
                choices: p.choices.iter().map(|c| c.value.clone()).collect(),
                description: p.description.as_ref().map(|d| d.value.clone()),
                pattern: p.pattern.as_ref().map(|g| g.value.as_str().to_string()),
                allowed: (p.kind.value == ParamType::Ref)
                    .then(|| ref_choices(&refs, p.pattern.as_ref().map(|g| &g.value))),
            })
            .collect();
        return Ok(Json(out));
    }
    Err(ApiError::NotFound(format!(
        "repository {} has no valid pipeline {pipeline:?} at {}",
        repo.name, target.name
    )))
}

/// `POST /api/repos/{repo}/trigger` body.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Trigger {
    /// Only this pipeline.
    #[serde(default)]
    pub pipeline: Option<String>,
    /// Branch or tag (short or full); default: the ref param, else the default branch.
    #[serde(default, rename = "ref")]
    pub git_ref: Option<String>,
    /// Param values.
    #[serde(default)]
    pub params: BTreeMap<String, String>,
}

/// `POST /api/repos/{repo}/trigger`: starts a manual run of each (or the named)
/// pipeline.
pub async fn trigger(
    Ax(state): Ax<State>,
    Writer(caller): Writer,
    Path(name): Path<String>,
    OptionalBody(body): OptionalBody<Trigger>,
) -> Result<(StatusCode, Json<Vec<RunJson>>), ApiError> {
    let repo = state.store.repo_by_name(&name).await?;
    let mut req = RunRequest::new(
        Event::Manual,
        format!("Started manually by {}", caller.name()),
    );
    req.pipeline = body.pipeline;
    req.git_ref = body.git_ref;
    req.params = body.params;
    let runs = start_runs(&state, &repo, req).await?;
    if runs.is_empty() {
        return Err(ApiError::Unprocessable(format!(
            "no pipeline of repository {} allows manual runs",
            repo.name
        )));
    }
    Ok((
        StatusCode::CREATED,
        Json(runs.iter().map(RunJson::new).collect()),
    ))
}
