//! Creating runs: from a repository at a ref (SCM triggers, manual triggers, schedules,
//! downstream `after:` triggers) and from an earlier run (rerun, rerun-failed).
//!
//! A run is planned from the pipeline file at its commit, read from the repository's
//! git mirror. A file that does not parse or plan still gets a run — created `Errored`,
//! with the rendered diagnostics as its error and as its log — so the people who pushed
//! it see why nothing ran. Manual runs are different: their params come from a person
//! who is waiting for an answer, so invalid params are refused with an error that names
//! the param, and nothing is created.
//!
//! Runs from SCM events carry an idempotency key (`ref:<ref>@<commit>`, `delivery:<id>`,
//! `schedule:<minute>`), so the same push seen by a poll and a webhook, or twice across
//! a restart, starts one run.

use std::collections::BTreeMap;

use gantry_engine::job_keys;
use gantry_pipeline::{Diagnostics, Event, ParamType, PlanContext, Spec};
use gantry_store::{JobState, NewJob, NewRun, Repo, Run, RunState, StoreError};

use crate::git::{GitError, Mirror, RemoteRef};
use crate::logs::RUN_LOG;
use crate::scheduler;
use crate::state::{State, now_ms};

/// Why runs could not be started.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    /// A repository, pipeline, ref or run that does not exist.
    #[error("{0}")]
    NotFound(String),
    /// The request cannot be honoured (invalid params, manual runs disabled).
    #[error("{0}")]
    Invalid(String),
    /// The repository could not be read.
    #[error("repository {repo}: {source}")]
    Git {
        /// Repository name.
        repo: String,
        /// Cause.
        #[source]
        source: GitError,
    },
    /// The database failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// What starts runs of a repository.
#[derive(Debug, Clone)]
pub struct RunRequest {
    /// The event.
    pub event: Event,
    /// Ref to build: full (`refs/heads/x`) or short (`x`, `v1.0`); `None` = the ref
    /// param's value, else the default branch.
    pub git_ref: Option<String>,
    /// The commit, when the trigger knows it (webhook, poll); else the ref's head.
    pub commit: Option<String>,
    /// For changed-path conditions: the commit the ref pointed at before.
    pub before: Option<String>,
    /// Why, in words.
    pub cause: String,
    /// Parameters given.
    pub params: BTreeMap<String, String>,
    /// Only this pipeline (by name); `None` = every pipeline the event starts.
    pub pipeline: Option<String>,
    /// Idempotency key (see the module docs).
    pub dedup_key: Option<String>,
    /// Fetch the mirror first (false when the caller just did).
    pub fetch: bool,
}

impl RunRequest {
    /// A request with no params, no pipeline filter, no dedup key, fetching first.
    pub fn new(event: Event, cause: impl Into<String>) -> RunRequest {
        RunRequest {
            event,
            git_ref: None,
            commit: None,
            before: None,
            cause: cause.into(),
            params: BTreeMap::new(),
            pipeline: None,
            dedup_key: None,
            fetch: true,
        }
    }
}

/// Starts the runs `req` asks for in repository `repo`: one per pipeline file at the
/// commit whose triggers match the event (for manual and downstream events: the named
/// pipeline, or every pipeline that allows it). Returns the runs created (none when
/// the dedup key was seen before).
pub async fn start_runs(state: &State, repo: &Repo, req: RunRequest) -> Result<Vec<Run>, RunError> {
    let mirror = state.mirror(repo);
    let git = |source| RunError::Git {
        repo: repo.name.clone(),
        source,
    };
    if req.fetch {
        mirror.fetch().await.map_err(git)?;
    }
    let mut target = match (&req.commit, &req.git_ref) {
        (Some(c), Some(r)) => (
            full_ref(&mirror, r)
                .await
                .map_err(git)?
                .unwrap_or(r.clone()),
            c.clone(),
        ),
        (_, Some(r)) => resolve(&mirror, r).await.map_err(git)?,
        (Some(c), None) => (String::new(), c.clone()),
        (None, None) => default_branch(&mirror).await.map_err(git)?,
    };
    let mut files = read_files(&mirror, &repo.name, &target.1)
        .await
        .map_err(git)?;
    // A manual run without a ref builds what its ref param names.
    if req.git_ref.is_none() && req.commit.is_none() {
        let chosen = files.iter().find_map(|(_, _, spec)| {
            let spec = spec.as_ref().ok()?;
            if req.pipeline.as_deref().is_some_and(|p| p != spec.name()) {
                return None;
            }
            spec.params()
                .iter()
                .find(|p| p.kind.value == ParamType::Ref)
                .and_then(|p| req.params.get(p.name.as_str()))
                .cloned()
        });
        if let Some(r) = chosen {
            let t = resolve(&mirror, &r).await.map_err(git)?;
            if t != target {
                target = t;
                files = read_files(&mirror, &repo.name, &target.1)
                    .await
                    .map_err(git)?;
            }
        }
    }
    let (git_ref, commit) = target;
    if files.is_empty() {
        return Err(RunError::NotFound(format!(
            "repository {} has no pipeline file (gantry.yml, .gantry.yml or .gantry/*.yml) at {}",
            repo.name,
            short(&commit)
        )));
    }
    let branch = git_ref.strip_prefix("refs/heads/").map(str::to_string);
    let tag = git_ref.strip_prefix("refs/tags/").map(str::to_string);
    // Changed paths cost three git processes; only `when: { changed: … }` reads them.
    let wants_changed = files.iter().any(|(_, _, parsed)| {
        parsed
            .as_ref()
            .is_ok_and(|spec| spec.jobs.iter().any(|j| j.when.changed.is_some()))
    });
    let changed = match &req.before {
        Some(b) if wants_changed && !b.bytes().all(|c| c == b'0') => {
            mirror.changed_paths(b, &commit).await.ok()
        }
        _ => None,
    };
    let manual = matches!(req.event, Event::Manual);
    let mut created = Vec::new();
    let mut refused = Vec::new();
    for (path, text, parsed) in files {
        let name = match &parsed {
            Ok(spec) => spec.name().to_string(),
            Err(_) => default_name(&repo.name, &path),
        };
        if req.pipeline.as_deref().is_some_and(|p| p != name) {
            continue;
        }
        let spec = match parsed {
            Ok(spec) => spec,
            Err(diags) => {
                // A file that does not parse cannot say whether it wanted this event; the
                // people who pushed it must see why nothing ran.
                let run = create_errored(
                    state,
                    repo,
                    FileAt {
                        name: &name,
                        path: &path,
                        text: &text,
                        git_ref: &git_ref,
                        commit: &commit,
                    },
                    &req,
                    &diags,
                )
                .await?;
                created.extend(run);
                continue;
            }
        };
        if !wants(
            &spec,
            req.event,
            branch.as_deref(),
            tag.as_deref(),
            req.pipeline.is_some(),
        ) {
            if manual && req.pipeline.is_some() {
                refused.push(format!(
                    "pipeline {name:?} does not allow manual runs (on.manual: false)"
                ));
            }
            continue;
        }
        let mut params = req.params.clone();
        // An SCM run builds the ref that fired: its ref params say so.
        if !manual && matches!(req.event, Event::Push | Event::Tag | Event::Poll) {
            let fired = tag.clone().or_else(|| branch.clone());
            for p in spec.params() {
                if p.kind.value == ParamType::Ref
                    && let Some(f) = &fired
                {
                    params
                        .entry(p.name.value.clone())
                        .or_insert_with(|| f.clone());
                }
            }
        }
        let pipeline = state.store.ensure_pipeline(repo.id, &name, &path).await?;
        let _creating = state.creating.lock().await;
        let number = next_number(state, &repo.name, &name).await?;
        let ctx = PlanContext {
            event: Some(req.event),
            branch: branch.clone(),
            tag: tag.clone(),
            commit: Some(commit.clone()),
            changed: changed.clone(),
            params,
            run_id: String::new(),
            run_number: number as u64,
        };
        let new =
            match spec.plan(&ctx) {
                Ok(plan) => {
                    let concurrency = match &spec.concurrency {
                        Some(c) => {
                            let lookup = |n: &str| lookup_var(&plan, &ctx, n);
                            let group = crate::interp::render(&c.group.value, lookup)
                                .unwrap_or_else(|_| c.group.value.as_str().to_string());
                            Some((group, c.limit.value))
                        }
                        None => None,
                    };
                    let keys = job_keys(&plan);
                    let jobs = plan
                        .jobs
                        .iter()
                        .enumerate()
                        .map(|(i, j)| NewJob {
                            idx: i as i64,
                            name: j.name.clone(),
                            key: keys[i].clone(),
                            needs: j.needs.iter().map(|n| *n as i64).collect(),
                            runs_on: j.runs_on.clone(),
                            state: JobState::Pending,
                            message: None,
                            manifest_json: None,
                        })
                        .collect();
                    NewRun {
                        pipeline_id: pipeline.id,
                        state: RunState::Queued,
                        event: req.event.as_str().to_string(),
                        git_ref: git_ref.clone(),
                        commit: commit.clone(),
                        cause: req.cause.clone(),
                        params: plan.params.clone(),
                        plan_json: Some(serde_json::to_string(&plan).map_err(|e| {
                            RunError::Invalid(format!("plan cannot be stored: {e}"))
                        })?),
                        pipeline_file: Some((path.clone(), text.clone())),
                        error: None,
                        concurrency,
                        rerun_of: None,
                        dedup_key: req.dedup_key.clone(),
                        jobs,
                    }
                }
                Err(diags) if manual => {
                    refused.push(render_diagnostics(&diags));
                    continue;
                }
                Err(diags) => {
                    drop(_creating);
                    let run = create_errored(
                        state,
                        repo,
                        FileAt {
                            name: &name,
                            path: &path,
                            text: &text,
                            git_ref: &git_ref,
                            commit: &commit,
                        },
                        &req,
                        &diags,
                    )
                    .await?;
                    created.extend(run);
                    continue;
                }
            };
        if let Some(run) = state.store.create_run(new, now_ms()).await? {
            drop(_creating);
            scheduler::advance(state, run.id).await?;
            created.push(state.store.run(run.id).await?);
        }
    }
    if created.is_empty() && !refused.is_empty() {
        return Err(RunError::Invalid(refused.join("\n\n")));
    }
    if created.is_empty()
        && let Some(p) = &req.pipeline
        && manual
    {
        return Err(RunError::NotFound(format!(
            "repository {} has no pipeline {p:?} at {}",
            repo.name,
            short(&commit)
        )));
    }
    Ok(created)
}

/// Whether a pipeline starts a run for this event.
fn wants(spec: &Spec, event: Event, branch: Option<&str>, tag: Option<&str>, named: bool) -> bool {
    let on = &spec.on;
    match event {
        Event::Manual => on.manual(),
        Event::Push | Event::Poll => match (branch, tag) {
            (Some(b), _) => on.push_matches(b),
            (_, Some(t)) => on.tag_matches(t),
            _ => false,
        },
        Event::Tag => tag.is_some_and(|t| on.tag_matches(t)),
        Event::Schedule => !on.schedule.is_empty(),
        Event::PullRequest => false,
        // Downstream triggers name their pipeline; nothing else fires them.
        Event::Trigger => named,
    }
}

/// A pipeline file at a commit, for [`create_errored`].
struct FileAt<'a> {
    name: &'a str,
    path: &'a str,
    text: &'a str,
    git_ref: &'a str,
    commit: &'a str,
}

async fn create_errored(
    state: &State,
    repo: &Repo,
    file: FileAt<'_>,
    req: &RunRequest,
    diags: &Diagnostics,
) -> Result<Option<Run>, RunError> {
    let FileAt {
        name,
        path,
        text,
        git_ref,
        commit,
    } = file;
    let error = render_diagnostics(diags);
    let pipeline = state.store.ensure_pipeline(repo.id, name, path).await?;
    let new = NewRun {
        pipeline_id: pipeline.id,
        state: RunState::Errored,
        event: req.event.as_str().to_string(),
        git_ref: git_ref.to_string(),
        commit: commit.to_string(),
        cause: req.cause.clone(),
        params: req.params.clone(),
        plan_json: None,
        pipeline_file: Some((path.to_string(), text.to_string())),
        error: Some(error.clone()),
        concurrency: None,
        rerun_of: None,
        dedup_key: req.dedup_key.clone(),
        jobs: Vec::new(),
    };
    let Some(run) = state.store.create_run(new, now_ms()).await? else {
        return Ok(None);
    };
    let now = now_ms();
    state
        .logs
        .system(
            run.id,
            RUN_LOG,
            now,
            &format!("{path} at {} cannot be run:", short(commit)),
        )
        .await;
    state.logs.system(run.id, RUN_LOG, now, &error).await;
    let run = state.store.run(run.id).await?;
    let st = state.clone();
    let finished = run.clone();
    tokio::spawn(async move { crate::finish::run_finished(&st, finished).await });
    Ok(Some(run))
}

/// Diagnostics as a person reads them (`error: … --> file:line:col …`).
pub fn render_diagnostics(diags: &Diagnostics) -> String {
    diags.to_string()
}

/// A built-in or param value of a planned run, for `${…}` outside the plan.
pub(crate) fn lookup_var(
    plan: &gantry_pipeline::Plan,
    ctx: &PlanContext,
    name: &str,
) -> Option<String> {
    if let Some(v) = plan.params.get(name) {
        return Some(v.clone());
    }
    let refname = ctx.tag.clone().or_else(|| ctx.branch.clone());
    match name {
        "CI" => Some("true".into()),
        "GANTRY_PIPELINE" => Some(plan.pipeline.clone()),
        "GANTRY_RUN_NUMBER" => Some(ctx.run_number.to_string()),
        "GANTRY_EVENT" => Some(ctx.event.unwrap_or(Event::Manual).as_str().into()),
        "GANTRY_COMMIT" => ctx.commit.clone(),
        "GANTRY_REF" => refname,
        "GANTRY_BRANCH" => Some(ctx.branch.clone().unwrap_or_default()),
        "GANTRY_TAG" => Some(ctx.tag.clone().unwrap_or_default()),
        _ => None,
    }
}

/// The number the next run of a pipeline will get, so the plan's `GANTRY_RUN_NUMBER`
/// matches it (run creation is serialized by [`Shared::creating`](crate::state::Shared)).
async fn next_number(state: &State, repo: &str, pipeline: &str) -> Result<i64, StoreError> {
    let latest = state
        .store
        .list_runs(&gantry_store::RunFilter {
            repo: Some(repo.to_string()),
            pipeline: Some(pipeline.to_string()),
            limit: 1,
            ..Default::default()
        })
        .await?;
    Ok(latest.first().map_or(1, |r| r.number + 1))
}

/// Pipeline files at a commit, parsed.
async fn read_files(
    mirror: &Mirror,
    repo: &str,
    commit: &str,
) -> Result<Vec<(String, String, Result<Spec, Diagnostics>)>, GitError> {
    let files = mirror.pipeline_files(commit).await?;
    Ok(files
        .into_iter()
        .map(|(path, text)| {
            let parsed = gantry_pipeline::parse_named(&path, &default_name(repo, &path), &text);
            (path, text, parsed)
        })
        .collect())
}

/// The default name of the pipeline in `path` of repository `repo`: the repository's
/// name for a root file, the file's stem for `.gantry/NAME.yml`.
pub fn default_name(repo: &str, path: &str) -> String {
    if gantry_pipeline::PIPELINE_FILE_NAMES.contains(&path) {
        repo.to_string()
    } else {
        gantry_pipeline::default_pipeline_name(path)
    }
}

/// The full name of `r` among the mirror's refs (`develop` → `refs/heads/develop`); a
/// name that is already full is taken as it is (webhooks and polls name refs fully,
/// and listing every ref would cost them two git processes).
async fn full_ref(mirror: &Mirror, r: &str) -> Result<Option<String>, GitError> {
    if r.starts_with("refs/heads/") || r.starts_with("refs/tags/") {
        return Ok(Some(r.to_string()));
    }
    Ok(find_ref(mirror, r).await?.map(|x| x.name))
}

async fn find_ref(mirror: &Mirror, r: &str) -> Result<Option<RemoteRef>, GitError> {
    let mut all = mirror.branches().await?;
    all.extend(mirror.tags().await?);
    let candidates = [
        r.to_string(),
        format!("refs/heads/{r}"),
        format!("refs/tags/{r}"),
    ];
    Ok(candidates
        .iter()
        .find_map(|c| all.iter().find(|x| &x.name == c))
        .cloned())
}

/// `(full ref, commit)` of a ref name.
async fn resolve(mirror: &Mirror, r: &str) -> Result<(String, String), GitError> {
    match find_ref(mirror, r).await? {
        Some(x) => Ok((x.name, x.commit)),
        None => Err(GitError::UnknownCommit(format!(
            "no branch or tag named {r:?}"
        ))),
    }
}

/// The branch a run without a ref builds: `main`, `master` or `develop` if present,
/// else the first branch.
async fn default_branch(mirror: &Mirror) -> Result<(String, String), GitError> {
    let branches = mirror.branches().await?;
    for name in ["main", "master", "develop"] {
        let full = format!("refs/heads/{name}");
        if let Some(b) = branches.iter().find(|b| b.name == full) {
            return Ok((b.name.clone(), b.commit.clone()));
        }
    }
    branches
        .first()
        .map(|b| (b.name.clone(), b.commit.clone()))
        .ok_or_else(|| GitError::UnknownCommit("the repository has no branches".into()))
}

fn short(commit: &str) -> &str {
    &commit[..commit.len().min(12)]
}

/// Starts a new run of the same pipeline, commit, ref and params as `run` (rerun). With
/// `failed_only`, jobs that succeeded are copied as succeeded with their artifacts, so
/// only the others run again.
pub async fn rerun(state: &State, run: &Run, failed_only: bool, by: &str) -> Result<Run, RunError> {
    let Some(plan_json) = &run.plan_json else {
        return Err(RunError::Invalid(format!(
            "run #{} could not be planned, so it cannot be rerun: push a fixed pipeline file",
            run.number
        )));
    };
    if !run.state.is_final() {
        return Err(RunError::Invalid(format!(
            "run #{} is still {}; cancel it or wait for it to finish",
            run.number,
            run.state.as_str()
        )));
    }
    let plan: gantry_pipeline::Plan = serde_json::from_str(plan_json).map_err(|e| {
        RunError::Invalid(format!(
            "the plan of run #{} cannot be read: {e}",
            run.number
        ))
    })?;
    let old_jobs = state.store.jobs(run.id).await?;
    let keys = job_keys(&plan);
    let mut jobs = Vec::new();
    for (i, j) in plan.jobs.iter().enumerate() {
        let old = old_jobs.iter().find(|o| o.idx == i as i64);
        let reuse = failed_only && old.is_some_and(|o| o.state == JobState::Succeeded);
        jobs.push(NewJob {
            idx: i as i64,
            name: j.name.clone(),
            key: keys[i].clone(),
            needs: j.needs.iter().map(|n| *n as i64).collect(),
            runs_on: j.runs_on.clone(),
            state: if reuse {
                JobState::Succeeded
            } else {
                JobState::Pending
            },
            message: reuse.then(|| format!("reused from run #{}", run.number)),
            manifest_json: if reuse {
                old.and_then(|o| o.manifest_json.clone())
            } else {
                None
            },
        });
    }
    let what = if failed_only {
        "Rerun of failed jobs of"
    } else {
        "Rerun of"
    };
    let new = NewRun {
        pipeline_id: run.pipeline_id,
        state: RunState::Queued,
        event: run.event.clone(),
        git_ref: run.git_ref.clone(),
        commit: run.commit.clone(),
        cause: format!("{what} #{} by {by}", run.number),
        params: run.params.clone(),
        plan_json: Some(plan_json.clone()),
        pipeline_file: run.pipeline_file.clone(),
        error: None,
        concurrency: run.concurrency.clone(),
        rerun_of: Some(run.id),
        dedup_key: None,
        jobs,
    };
    let created = {
        let _creating = state.creating.lock().await;
        state.store.create_run(new, now_ms()).await?
    };
    let created = created.ok_or_else(|| RunError::Invalid("the rerun was not created".into()))?;
    // The reused jobs' artifacts belong to the new run too (listing, download).
    let reused: Vec<gantry_store::ArtifactRow> = state
        .store
        .artifacts(run.id)
        .await?
        .into_iter()
        .filter(|a| {
            failed_only
                && old_jobs
                    .iter()
                    .any(|o| o.idx == a.job_idx && o.state == JobState::Succeeded)
        })
        .map(|mut a| {
            a.run_id = created.id;
            a
        })
        .collect();
    if !reused.is_empty() {
        state.store.add_artifacts(&reused).await?;
    }
    for o in old_jobs
        .iter()
        .filter(|o| failed_only && o.state == JobState::Succeeded)
    {
        state
            .logs
            .system(
                created.id,
                &o.key,
                now_ms(),
                &format!("reused from run #{} (succeeded there)", run.number),
            )
            .await;
    }
    scheduler::advance(state, created.id).await?;
    Ok(state.store.run(created.id).await?)
}
