//! `/repos/{repo}/pipelines/{pipeline}/run`: "run with parameters". The form is made
//! from the pipeline's `params` as the API reports them (`ref` params offer the matching
//! tags and the branches, the default preselected; choices are a select, booleans a
//! checkbox, strings a text field, each with its description). The POST checks each
//! value, shows what is wrong next to its field, and starts the run through the same
//! code as `POST /api/repos/{repo}/trigger`.

use std::collections::BTreeMap;

use askama::Template;
use axum::extract::{Path, Query, State as Ax};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use gantry_pipeline::Event;

use crate::api::ApiError;
use crate::api::extract::Reader;
use crate::api::json::ParamJson;
use crate::runs::{RunError, RunRequest, start_runs};
use crate::state::State;
use crate::web::session::Viewer;
use crate::web::urlencoded::{self, encode_segment};
use crate::web::view::{self, Nav};

/// One `<option>`.
#[derive(Debug, Clone)]
pub struct Opt {
    value: String,
    selected: bool,
}

/// One form field.
#[derive(Debug)]
pub struct Field {
    name: String,
    /// `string`, `bool`, `choice`, `ref`.
    kind: &'static str,
    description: Option<String>,
    value: String,
    checked: bool,
    options: Vec<Opt>,
    error: Option<String>,
}

/// The page.
#[derive(Template)]
#[template(path = "form.html")]
pub struct FormPage {
    nav: Nav,
    repo: String,
    pipeline: String,
    action: String,
    pipeline_href: String,
    fields: Vec<Field>,
    /// A separate ref picker, when no param chooses the ref.
    refs: Option<Vec<Opt>>,
    ref_error: Option<String>,
    form_error: Option<String>,
}

fn options(values: &[String], selected: &str) -> Vec<Opt> {
    let mut out: Vec<Opt> = values
        .iter()
        .map(|v| Opt {
            value: v.clone(),
            selected: v == selected,
        })
        .collect();
    if !selected.is_empty() && !out.iter().any(|o| o.selected) {
        // A default that is not among the allowed values is still offered (and will
        // be refused with a reason), rather than silently replaced.
        out.insert(
            0,
            Opt {
                value: selected.to_string(),
                selected: true,
            },
        );
    }
    out
}

/// Fields for `params` with `given` values (else the defaults).
fn fields(params: &[ParamJson], given: &BTreeMap<String, String>) -> Vec<Field> {
    params
        .iter()
        .map(|p| {
            let value = given
                .get(&p.name)
                .cloned()
                .or_else(|| p.default.clone())
                .unwrap_or_default();
            let opts = match p.kind {
                "choice" => options(&p.choices, &value),
                "ref" => options(p.allowed.as_deref().unwrap_or_default(), &value),
                _ => Vec::new(),
            };
            Field {
                name: p.name.clone(),
                kind: p.kind,
                description: p.description.clone(),
                checked: value == "true",
                value,
                options: opts,
                error: None,
            }
        })
        .collect()
}

/// What is wrong with `value` for `p`, if anything.
fn check(p: &ParamJson, value: &str) -> Option<String> {
    match p.kind {
        "bool" if value != "true" && value != "false" => {
            Some(format!("{value:?} is not true or false"))
        }
        "choice" if !p.choices.iter().any(|c| c == value) => {
            Some(format!("{value:?} is not one of: {}", p.choices.join(", ")))
        }
        "ref" if value.is_empty() => Some("choose a branch or tag".into()),
        "ref"
            if p.allowed
                .as_ref()
                .is_some_and(|a| !a.iter().any(|r| r == value)) =>
        {
            Some(format!(
                "{value:?} is not a branch or a tag matching {}",
                p.pattern.as_deref().unwrap_or("*")
            ))
        }
        _ => None,
    }
}

struct Context {
    params: Vec<ParamJson>,
    /// Branches then tags (short names), and the default branch.
    refs: Option<(Vec<String>, String)>,
}

async fn context(
    state: &State,
    viewer: &Viewer,
    repo: &str,
    pipeline: &str,
) -> Result<Context, ApiError> {
    let reader = Reader(viewer.caller());
    let axum::Json(params) = crate::api::repos::params(
        Ax(state.clone()),
        reader,
        Path((repo.to_string(), pipeline.to_string())),
        Query(BTreeMap::new()),
    )
    .await?;
    let refs = if params.iter().any(|p| p.kind == "ref") {
        None
    } else {
        // The params call fetched the mirror just now.
        let r = state.store.repo_by_name(repo).await?;
        let mirror = state.mirror(&r);
        let bad = |e: crate::git::GitError| ApiError::BadGateway(format!("repository {repo}: {e}"));
        let branches = mirror.branches().await.map_err(bad)?;
        let tags = mirror.tags().await.map_err(bad)?;
        let short: Vec<String> = branches
            .iter()
            .chain(tags.iter().rev())
            .map(|r| view::short_ref(&r.name).to_string())
            .collect();
        let default = ["main", "master", "develop"]
            .iter()
            .find(|b| branches.iter().any(|r| r.name == format!("refs/heads/{b}")))
            .map(|b| b.to_string())
            .or_else(|| short.first().cloned())
            .unwrap_or_default();
        Some((short, default))
    };
    Ok(Context { params, refs })
}

fn page_of(
    viewer: &Viewer,
    repo: &str,
    pipeline: &str,
    ctx: &Context,
    given: &BTreeMap<String, String>,
    chosen_ref: Option<&str>,
) -> FormPage {
    let base = format!(
        "/repos/{}/pipelines/{}",
        encode_segment(repo),
        encode_segment(pipeline)
    );
    FormPage {
        nav: Nav::new(viewer),
        repo: repo.to_string(),
        pipeline: pipeline.to_string(),
        action: format!("{base}/run"),
        pipeline_href: base,
        fields: fields(&ctx.params, given),
        refs: ctx
            .refs
            .as_ref()
            .map(|(all, default)| options(all, chosen_ref.unwrap_or(default))),
        ref_error: None,
        form_error: None,
    }
}

/// `GET /repos/{repo}/pipelines/{pipeline}/run`.
pub async fn page(
    Ax(state): Ax<State>,
    viewer: Viewer,
    Path((repo, pipeline)): Path<(String, String)>,
) -> Response {
    match context(&state, &viewer, &repo, &pipeline).await {
        Ok(ctx) => view::html(&page_of(
            &viewer,
            &repo,
            &pipeline,
            &ctx,
            &BTreeMap::new(),
            None,
        )),
        Err(e) => view::api_error(&viewer, e),
    }
}

/// `POST /repos/{repo}/pipelines/{pipeline}/run` (fields `csrf`, `ref`, `param.NAME`).
pub async fn submit(
    Ax(state): Ax<State>,
    viewer: Viewer,
    Path((repo, pipeline)): Path<(String, String)>,
    body: axum::body::Bytes,
) -> Response {
    let form = urlencoded::parse(&body);
    if !viewer.csrf_ok(urlencoded::last(&form, "csrf")) {
        return view::error(
            &viewer,
            StatusCode::FORBIDDEN,
            "This form expired or came from another site (CSRF check failed). Reload the page and try again.",
        );
    }
    if !viewer.is_admin() {
        return view::error(
            &viewer,
            StatusCode::FORBIDDEN,
            "Only an admin may start runs.",
        );
    }
    let ctx = match context(&state, &viewer, &repo, &pipeline).await {
        Ok(c) => c,
        Err(e) => return view::api_error(&viewer, e),
    };
    let mut given = BTreeMap::new();
    for p in &ctx.params {
        if let Some(v) = urlencoded::last(&form, &format!("param.{}", p.name)) {
            given.insert(p.name.clone(), v.trim().to_string());
        } else if p.kind == "bool" {
            // An unchecked checkbox sends nothing.
            given.insert(p.name.clone(), "false".to_string());
        }
    }
    let chosen_ref = urlencoded::last(&form, "ref")
        .map(str::trim)
        .filter(|r| !r.is_empty());
    let mut page = page_of(&viewer, &repo, &pipeline, &ctx, &given, chosen_ref);
    let mut bad = false;
    for (f, p) in page.fields.iter_mut().zip(&ctx.params) {
        let value = given.get(&p.name).map_or("", String::as_str);
        if given.contains_key(&p.name)
            && let Some(e) = check(p, value)
        {
            f.error = Some(e);
            bad = true;
        }
    }
    if let (Some((all, _)), Some(r)) = (&ctx.refs, chosen_ref)
        && !all.iter().any(|a| a == r)
    {
        page.ref_error = Some(format!("{r:?} is not a branch or tag of {repo}"));
        bad = true;
    }
    if bad {
        page.form_error = Some("Some values are not valid; see the fields below.".into());
        return view::html_status(StatusCode::UNPROCESSABLE_ENTITY, &page);
    }
    let r = match state.store.repo_by_name(&repo).await {
        Ok(r) => r,
        Err(e) => return view::api_error(&viewer, e.into()),
    };
    let mut req = RunRequest::new(
        Event::Manual,
        format!("Started manually by {}", viewer.name()),
    );
    req.pipeline = Some(pipeline.clone());
    req.git_ref = if ctx.refs.is_some() {
        chosen_ref.map(str::to_string)
    } else {
        None
    };
    req.params = given;
    match start_runs(&state, &r, req).await {
        Ok(runs) => match runs.first() {
            Some(run) => Redirect::to(&format!("/runs/{}", run.id)).into_response(),
            None => {
                page.form_error = Some(format!(
                    "Pipeline {pipeline} does not allow manual runs (on: manual)."
                ));
                view::html_status(StatusCode::UNPROCESSABLE_ENTITY, &page)
            }
        },
        Err(RunError::Invalid(msg)) => {
            // The message names the param it is about ("… param \"NAME\" …").
            match page
                .fields
                .iter_mut()
                .find(|f| msg.contains(&format!("\"{}\"", f.name)))
            {
                Some(f) => f.error = Some(msg),
                None => page.form_error = Some(msg),
            }
            if page.form_error.is_none() {
                page.form_error = Some("Some values are not valid; see the fields below.".into());
            }
            view::html_status(StatusCode::UNPROCESSABLE_ENTITY, &page)
        }
        Err(e) => {
            let e: ApiError = e.into();
            page.form_error = Some(e.to_string());
            view::html_status(e.status(), &page)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn param(kind: &'static str, choices: &[&str], allowed: Option<&[&str]>) -> ParamJson {
        ParamJson {
            name: "P".into(),
            kind,
            default: None,
            choices: choices.iter().map(|c| c.to_string()).collect(),
            description: None,
            pattern: Some("v*".into()),
            allowed: allowed.map(|a| a.iter().map(|c| c.to_string()).collect()),
        }
    }

    #[test]
    fn values_are_checked_by_type() {
        let cases: &[(ParamJson, &str, bool)] = &[
            (param("bool", &[], None), "true", true),
            (param("bool", &[], None), "yes", false),
            (param("choice", &["a", "b"], None), "b", true),
            (param("choice", &["a", "b"], None), "c", false),
            (param("ref", &[], Some(&["v1", "main"])), "main", true),
            (param("ref", &[], Some(&["v1", "main"])), "v2", false),
            (param("ref", &[], Some(&["v1"])), "", false),
            (param("string", &[], None), "<anything>", true),
        ];
        for (p, value, ok) in cases {
            assert_eq!(check(p, value).is_none(), *ok, "{} {value:?}", p.kind);
        }
    }

    #[test]
    fn unknown_defaults_stay_selected() {
        let o = options(&["a".into(), "b".into()], "z");
        assert_eq!(o[0].value, "z");
        assert!(o[0].selected);
        let o = options(&["a".into(), "b".into()], "b");
        assert!(o[1].selected && !o[0].selected);
    }
}
