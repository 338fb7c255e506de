//! Planning: a [`Spec`] plus a [`PlanContext`] → a [`Plan`].
//!
//! Params are typed and defaulted, matrices expanded into named instances
//! (`build (GO=1.18, OS=linux)`, axes in file order), `when` decided per job, built-in
//! variables set, every field except `script` interpolated, and the jobs put in a
//! topological order with `needs` as indices. A [`Spec`] is already validated, so the only
//! errors left are about the context (a param that is not declared, a value of the wrong
//! type) and values that go wrong only once interpolated (a path that leaves the
//! workspace).

use std::collections::{BTreeMap, HashMap};
use std::time::Duration;

use crate::decode::check_relative;
use crate::diagnostic::{Diagnostic, Diagnostics};
use crate::glob::GlobPattern;
use crate::graph::toposort;
use crate::plan_types::*;
use crate::span::{Span, Spanned};
use crate::spec::{DeploySpec, EnvSource, EnvVar, Job, ParamType, Spec};
use crate::suggest::{did_you_mean, quoted_list};
use crate::template::{Resolved, Template};
use crate::validate::resolve_needs;

/// A job's timeout when neither it nor `defaults` sets one.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(60 * 60);
/// Where the checkout is mounted in a container unless set otherwise.
pub const DEFAULT_WORKSPACE: &str = "/workspace";
/// How long a service's readiness probe waits unless set otherwise.
pub const DEFAULT_READY_TIMEOUT: Duration = Duration::from_secs(60);

impl Spec {
    /// Plans a run of this pipeline for `ctx`.
    pub fn plan(&self, ctx: &PlanContext) -> Result<Plan, Diagnostics> {
        let mut p = Planner {
            spec: self,
            ctx,
            diags: Vec::new(),
        };
        let params = p.params();
        if !p.diags.is_empty() {
            return Diagnostics::from(p.diags).into_result(Plan {
                pipeline: String::new(),
                jobs: Vec::new(),
                params,
            });
        }
        let jobs = p.jobs(&params);
        let plan = Plan {
            pipeline: self.name.value.clone(),
            jobs,
            params,
        };
        Diagnostics::from(p.diags).into_result(plan)
    }
}

struct Planner<'a> {
    spec: &'a Spec,
    ctx: &'a PlanContext,
    diags: Vec<Diagnostic>,
}

/// Variables that are the same for every job of the run: the run-wide built-ins and the
/// params, in env order. `GANTRY_JOB` and `GANTRY_WORKSPACE` hold their place in the
/// order with empty values; each job fills them in.
struct Base {
    list: Vec<(&'static str, String)>,
    params: Vec<(String, String)>,
    map: HashMap<String, String>,
}

/// The variables a job's fields are interpolated with: the run-wide ones plus the job's
/// own entries (later entries win). A job has few entries of its own, so they are searched
/// linearly instead of copying the run-wide map for every job.
struct Scope<'b> {
    base: &'b Base,
    local: Vec<(String, EnvValue)>,
}

impl Scope<'_> {
    fn push(&mut self, name: &str, value: EnvValue) {
        self.local.push((name.to_string(), value));
    }

    fn resolve(&self, name: &str) -> Resolved<'_> {
        match self.local.iter().rev().find(|(k, _)| k == name) {
            Some((_, EnvValue::Plain(s))) => Resolved::Value(s),
            Some((_, EnvValue::Secret(_))) => Resolved::Secret,
            None => match self.base.map.get(name) {
                Some(v) => Resolved::Value(v),
                None => Resolved::Unknown,
            },
        }
    }

    /// The job's env in the documented order (built-ins, params, top-level env, job env,
    /// matrix), without entries that a later one overrides.
    fn into_env(self, job_name: &str, workspace: &str) -> Vec<(String, EnvValue)> {
        let local = self.local;
        let overridden = |name: &str, after: usize| local[after..].iter().any(|(k, _)| k == name);
        let mut env =
            Vec::with_capacity(self.base.list.len() + self.base.params.len() + local.len());
        for (k, v) in &self.base.list {
            if overridden(k, 0) && *k != "GANTRY_JOB" && *k != "GANTRY_WORKSPACE" {
                continue;
            }
            let v = match *k {
                "GANTRY_JOB" => job_name,
                "GANTRY_WORKSPACE" => workspace,
                _ => v.as_str(),
            };
            env.push((k.to_string(), EnvValue::Plain(v.to_string())));
        }
        for (k, v) in &self.base.params {
            if !overridden(k, 0) {
                env.push((k.clone(), EnvValue::Plain(v.clone())));
            }
        }
        for (i, (k, v)) in local.iter().enumerate() {
            // GANTRY_JOB/GANTRY_WORKSPACE were placed with the built-ins above.
            if (k == "GANTRY_JOB" || k == "GANTRY_WORKSPACE") && i < 2 {
                continue;
            }
            if !overridden(k, i + 1) {
                env.push((k.clone(), v.clone()));
            }
        }
        env
    }
}

/// The event as the `when.event` condition and `GANTRY_EVENT` see it.
fn event_of(ctx: &PlanContext) -> Event {
    ctx.event.unwrap_or(Event::Manual)
}

impl<'a> Planner<'a> {
    fn error(&mut self, span: Span, message: impl Into<String>) -> &mut Diagnostic {
        self.diags.push(self.spec.source.error(span, message));
        self.diags.last_mut().expect("just pushed")
    }

    // --- params -----------------------------------------------------------------------

    fn params(&mut self) -> BTreeMap<String, String> {
        let spec = self.spec;
        let declared = || spec.params.iter().map(|p| p.name.as_str());
        for name in self.ctx.params.keys() {
            if spec.params.iter().any(|p| p.name.value == *name) {
                continue;
            }
            let mut d = Diagnostic::new(format!(
                "unknown param {name:?}: {} does not declare it",
                spec.source.path
            ));
            d.help = Some(if spec.params.is_empty() {
                "this pipeline declares no params".into()
            } else {
                let list: Vec<String> = spec
                    .params
                    .iter()
                    .map(|p| format!("{} ({})", p.name.value, p.kind.value.as_str()))
                    .collect();
                match did_you_mean(name, declared()) {
                    Some(s) => format!("did you mean {s:?}? the params are: {}", list.join(", ")),
                    None => format!("the params are: {}", list.join(", ")),
                }
            });
            self.diags.push(d);
        }
        let mut out = BTreeMap::new();
        for p in &spec.params {
            let name = p.name.as_str();
            let value = match self.ctx.params.get(name) {
                Some(v) => {
                    match p.kind.value {
                        ParamType::String | ParamType::Ref => Some(v.clone()),
                        ParamType::Bool => match v.to_ascii_lowercase().as_str() {
                            "true" => Some("true".to_string()),
                            "false" => Some("false".to_string()),
                            _ => {
                                self.error(p.name.span, format!("invalid value {v:?} for bool param {name:?}: expected true or false"));
                                None
                            }
                        },
                        ParamType::Choice => {
                            if p.choices.iter().any(|c| c.value == *v) {
                                Some(v.clone())
                            } else {
                                let choices = quoted_list(p.choices.iter().map(|c| c.as_str()));
                                let help =
                                    match did_you_mean(v, p.choices.iter().map(|c| c.as_str())) {
                                        Some(s) => {
                                            format!("did you mean {s:?}? the choices are {choices}")
                                        }
                                        None => format!("the choices are {choices}"),
                                    };
                                self.error(p.name.span, format!("invalid value {v:?} for param {name:?}: not one of its choices"))
                                .help = Some(help);
                                None
                            }
                        }
                    }
                }
                None => self.default_param(p),
            };
            if let Some(v) = value {
                out.insert(name.to_string(), v);
            }
        }
        out
    }

    fn default_param(&mut self, p: &crate::spec::Param) -> Option<String> {
        let ctx = self.ctx;
        let from_ref = match event_of(ctx) {
            Event::Push => ctx.branch.clone().or_else(|| ctx.tag.clone()),
            Event::Tag => ctx.tag.clone().or_else(|| ctx.branch.clone()),
            _ => None,
        };
        match p.kind.value {
            // An SCM-triggered run builds the ref that fired, whatever the default says.
            ParamType::Ref => {
                match from_ref.or_else(|| p.default.as_ref().map(|d| d.value.clone())) {
                    Some(v) => Some(v),
                    None => match ctx.tag.clone().or_else(|| ctx.branch.clone()) {
                        Some(v) => Some(v),
                        None => {
                            self.error(p.name.span, format!("param {:?} needs a value: it has no default and this run has no branch or tag", p.name.value))
                            .help = Some(format!("pass it with --param {}=REF", p.name.value));
                            None
                        }
                    },
                }
            }
            ParamType::String => Some(
                p.default
                    .as_ref()
                    .map_or_else(String::new, |d| d.value.clone()),
            ),
            ParamType::Bool => Some(
                p.default
                    .as_ref()
                    .map_or_else(|| "false".to_string(), |d| d.value.clone()),
            ),
            ParamType::Choice => p
                .default
                .as_ref()
                .or(p.choices.first())
                .map(|d| d.value.clone()),
        }
    }

    // --- jobs -------------------------------------------------------------------------

    fn jobs(&mut self, params: &BTreeMap<String, String>) -> Vec<PlannedJob> {
        let spec = self.spec;
        let ctx = self.ctx;
        let event = event_of(ctx);
        let refname = ctx
            .tag
            .clone()
            .or_else(|| ctx.branch.clone())
            .unwrap_or_default();
        // Variables shared by every job: the run-wide built-ins and the params.
        let list: Vec<(&'static str, String)> = vec![
            ("CI", "true".to_string()),
            ("GANTRY_RUN_ID", ctx.run_id.clone()),
            ("GANTRY_RUN_NUMBER", ctx.run_number.to_string()),
            ("GANTRY_PIPELINE", spec.name.value.clone()),
            ("GANTRY_JOB", String::new()),
            ("GANTRY_EVENT", event.as_str().to_string()),
            ("GANTRY_COMMIT", ctx.commit.clone().unwrap_or_default()),
            ("GANTRY_REF", refname),
            ("GANTRY_BRANCH", ctx.branch.clone().unwrap_or_default()),
            ("GANTRY_TAG", ctx.tag.clone().unwrap_or_default()),
            ("GANTRY_WORKSPACE", String::new()),
        ];
        let mut map: HashMap<String, String> = list
            .iter()
            .filter(|(k, _)| *k != "GANTRY_JOB" && *k != "GANTRY_WORKSPACE")
            .map(|(k, v)| (k.to_string(), v.clone()))
            .collect();
        for (k, v) in params {
            map.insert(k.clone(), v.clone());
        }
        let base = Base {
            list,
            params: params.iter().map(|(k, v)| (k.clone(), v.clone())).collect(),
            map,
        };

        let job_needs = resolve_needs(spec);
        let mut planned: Vec<PlannedJob> = Vec::new();
        // Instances of each job in `spec.jobs`, as indices into `planned`.
        let mut instances: Vec<Vec<usize>> = Vec::with_capacity(spec.jobs.len());
        for job in &spec.jobs {
            let excluded = self.decide_when(job, params);
            let mut idx = Vec::new();
            for combo in matrix_combinations(job) {
                idx.push(planned.len());
                let p = self.job(job, combo, &base, excluded.clone());
                planned.push(p);
            }
            instances.push(idx);
        }
        // Needs per instance, before reordering.
        let mut needs: Vec<Vec<usize>> = Vec::with_capacity(planned.len());
        for (j, idx) in instances.iter().enumerate() {
            let n: Vec<usize> = job_needs[j]
                .iter()
                .flat_map(|&d| instances[d].iter().copied())
                .collect();
            for _ in idx {
                needs.push(n.clone());
            }
        }
        let order = match toposort(&needs) {
            Ok(o) => o,
            Err(_) => {
                // Validation refuses cycles, so this cannot happen for a parsed Spec.
                self.diags
                    .push(Diagnostic::new("dependency cycle between jobs"));
                return Vec::new();
            }
        };
        let mut new_index = vec![0usize; planned.len()];
        for (new, &old) in order.iter().enumerate() {
            new_index[old] = new;
        }
        let mut slots: Vec<Option<PlannedJob>> = planned.into_iter().map(Some).collect();
        order
            .iter()
            .map(|&old| {
                let mut j = slots[old].take().expect("each job is placed once");
                j.needs = needs[old].iter().map(|&n| new_index[n]).collect();
                j
            })
            .collect()
    }

    fn job(
        &mut self,
        job: &Job,
        combo: Vec<(&str, &str)>,
        base: &Base,
        excluded: Option<String>,
    ) -> PlannedJob {
        let spec = self.spec;
        let name = if combo.is_empty() {
            job.name.value.clone()
        } else {
            let parts: Vec<String> = combo.iter().map(|(k, v)| format!("{k}={v}")).collect();
            format!("{} ({})", job.name.value, parts.join(", "))
        };
        let jctx = format!("job {name:?}");
        let mut scope = Scope {
            base,
            local: Vec::with_capacity(4 + spec.env.len() + job.env.len() + 2 * combo.len()),
        };
        scope.push("GANTRY_JOB", EnvValue::Plain(name.clone()));
        // The workspace is resolved first: it sees built-ins, params and the matrix, but
        // not env, whose values may refer to GANTRY_WORKSPACE.
        let workspace = match job.workspace.as_ref().or(spec.defaults.workspace.as_ref()) {
            Some(t) => {
                let matrix_at = scope.local.len();
                for (k, v) in &combo {
                    scope.push(k, EnvValue::Plain(v.to_string()));
                }
                let w = self.render(t, &scope, "workspace", &jctx);
                scope.local.truncate(matrix_at);
                if !w.starts_with('/') || w.split('/').any(|c| c == "..") {
                    self.error(t.span, format!("\"workspace\" of {jctx} is {w:?}, which is not an absolute path without `..`"));
                }
                w
            }
            None => DEFAULT_WORKSPACE.to_string(),
        };
        scope.push("GANTRY_WORKSPACE", EnvValue::Plain(workspace.clone()));
        self.render_env(&spec.env, &mut scope, "the top-level env");
        // The job's env sees the matrix variables; they are set again after it, so that
        // a matrix value wins over an env entry of the same name, as in the env order.
        for (k, v) in &combo {
            scope.push(k, EnvValue::Plain(v.to_string()));
        }
        self.render_env(&job.env, &mut scope, &jctx);
        for (k, v) in &combo {
            scope.push(k, EnvValue::Plain(v.to_string()));
        }
        let image = job
            .image
            .as_ref()
            .or(spec.defaults.image.as_ref())
            .map(|t| self.render(t, &scope, "image", &jctx));
        let artifacts = job
            .artifacts
            .iter()
            .map(|t| self.path(t, &scope, "artifacts", &jctx))
            .collect();
        let cache = job.cache.as_ref().map(|c| Cache {
            key: self.render(&c.key, &scope, "cache.key", &jctx),
            paths: c
                .paths
                .iter()
                .map(|t| self.path(t, &scope, "cache.paths", &jctx))
                .collect(),
        });
        let mut services = Vec::with_capacity(job.services.len());
        for s in &job.services {
            let sctx = format!("service {:?} of {jctx}", s.name.value);
            // Image and command see the job's variables; the service's env values also
            // see the service's own entries above them.
            let image = self.render(&s.image, &scope, "image", &sctx);
            let command = s.command.as_ref().map(|c| {
                c.iter()
                    .map(|a| self.render(a, &scope, "command", &sctx))
                    .collect()
            });
            let at = scope.local.len();
            let entries = self.render_env(&s.env, &mut scope, &sctx);
            scope.local.truncate(at);
            let env = entries
                .iter()
                .enumerate()
                .filter(|(i, (k, _))| !entries[i + 1..].iter().any(|(later, _)| later == k))
                .map(|(_, e)| e.clone())
                .collect();
            services.push(Service {
                name: s.name.value.clone(),
                image,
                env,
                command,
                ready: s.ready.as_ref().map(|rd| Ready {
                    probe: rd.probe.value.clone(),
                    timeout: rd
                        .timeout
                        .as_ref()
                        .map_or(DEFAULT_READY_TIMEOUT, |t| t.value),
                }),
            });
        }
        let r = |p: &mut Self, t: &Spanned<Template>, field: &str, scope: &Scope<'_>| {
            p.render(t, scope, field, &jctx)
        };
        let image_build = job.image_build.as_ref().map(|b| ImageBuild {
            context: b.context.as_ref().map_or_else(
                || ".".to_string(),
                |t| self.path(t, &scope, "image_build.context", &jctx),
            ),
            dockerfile: b.dockerfile.as_ref().map_or_else(
                || "Dockerfile".to_string(),
                |t| self.path(t, &scope, "image_build.dockerfile", &jctx),
            ),
            tags: b
                .tags
                .iter()
                .map(|t| r(self, t, "image_build.tag", &scope))
                .collect(),
            args: b
                .args
                .iter()
                .map(|(k, v)| (k.value.clone(), r(self, v, "image_build.args", &scope)))
                .collect(),
            push: b.push.as_ref().is_some_and(|p| p.value),
        });
        let environment = job.environment.as_ref().map(|e| Environment {
            name: r(self, &e.name, "environment.name", &scope),
            approval_required: e.approval_required,
            url: e
                .url
                .as_ref()
                .map(|u| r(self, u, "environment.url", &scope)),
        });
        let deploy = job.deploy.as_ref().map(|d| match &d.value {
            DeploySpec::Compose { file } => Deploy::Compose {
                file: self.path(file, &scope, "deploy.compose", &jctx),
            },
            DeploySpec::Kubernetes {
                manifests,
                namespace,
            } => Deploy::Kubernetes {
                manifests: self.path(manifests, &scope, "deploy.kubernetes.manifests", &jctx),
                namespace: namespace
                    .as_ref()
                    .map(|n| r(self, n, "deploy.kubernetes.namespace", &scope)),
            },
        });
        let runs_on = job
            .runs_on
            .iter()
            .map(|(k, v)| (k.value.clone(), r(self, v, "runs_on", &scope)))
            .collect();
        let env = scope.into_env(&name, &workspace);
        PlannedJob {
            name,
            base: job.name.value.clone(),
            matrix: combo
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            needs: Vec::new(),
            excluded,
            run_on: job.when.status.as_ref().map_or(RunOn::Success, |s| s.value),
            image,
            workspace,
            env,
            script: job.script.iter().map(|s| s.value.clone()).collect(),
            services,
            artifacts,
            cache,
            timeout: job
                .timeout
                .as_ref()
                .or(spec.defaults.timeout.as_ref())
                .map_or(DEFAULT_TIMEOUT, |t| t.value),
            retry: job
                .retry
                .as_ref()
                .or(spec.defaults.retry.as_ref())
                .map_or(0, |r| r.value),
            allow_failure: job.allow_failure.as_ref().is_some_and(|a| a.value),
            image_build,
            environment,
            deploy,
            runs_on,
        }
    }

    /// Interpolates env entries in order, each seeing the ones before it, adds them to
    /// the scope and returns them.
    fn render_env(
        &mut self,
        env: &[EnvVar],
        scope: &mut Scope<'_>,
        ctx: &str,
    ) -> Vec<(String, EnvValue)> {
        let mut out = Vec::with_capacity(env.len());
        for var in env {
            let value = match &var.value.value {
                EnvSource::Plain(t) => EnvValue::Plain(self.render_at(
                    t,
                    var.value.span,
                    scope,
                    var.name.as_str(),
                    ctx,
                )),
                EnvSource::Secret(name) => EnvValue::Secret(name.clone()),
            };
            scope.push(var.name.as_str(), value.clone());
            out.push((var.name.value.clone(), value));
        }
        out
    }

    fn render(
        &mut self,
        t: &Spanned<Template>,
        scope: &Scope<'_>,
        field: &str,
        ctx: &str,
    ) -> String {
        self.render_at(&t.value, t.span, scope, field, ctx)
    }

    fn render_at(
        &mut self,
        t: &Template,
        span: Span,
        scope: &Scope<'_>,
        field: &str,
        ctx: &str,
    ) -> String {
        match t.render(|name| scope.resolve(name)) {
            Ok(s) => s,
            Err(e) => {
                // Validation rules these out for a parsed Spec; reported, never panicked on.
                let what = if e.secret {
                    "is a secret and cannot be interpolated"
                } else {
                    "is not defined"
                };
                self.error(
                    span,
                    format!("variable {:?} in {field:?} of {ctx} {what}", e.var.name),
                );
                String::new()
            }
        }
    }

    /// Interpolates a workspace-relative path and checks it still stays inside.
    fn path(&mut self, t: &Spanned<Template>, scope: &Scope<'_>, field: &str, ctx: &str) -> String {
        let p = self.render(t, scope, field, ctx);
        if let Err(why) = check_relative(&p) {
            self.error(
                t.span,
                format!("{field:?} of {ctx} is {p:?} after interpolation, which {why}"),
            )
            .help = Some("paths are relative to the workspace root and stay inside it".into());
        }
        p
    }

    // --- when -------------------------------------------------------------------------

    /// `None` when the job runs; otherwise why not.
    fn decide_when(&self, job: &Job, params: &BTreeMap<String, String>) -> Option<String> {
        let ctx = self.ctx;
        let w = &job.when;
        let mut reasons = Vec::new();
        if let Some(globs) = &w.branch {
            match &ctx.branch {
                Some(b) if any_match(globs, b) => {}
                Some(b) => {
                    reasons.push(format!("branch {b:?} does not match {}", globs_text(globs)))
                }
                None => reasons.push(format!(
                    "not a branch build (when.branch: {})",
                    globs_text(globs)
                )),
            }
        }
        if let Some(globs) = &w.tag {
            match &ctx.tag {
                Some(t) if any_match(globs, t) => {}
                Some(t) => reasons.push(format!("tag {t:?} does not match {}", globs_text(globs))),
                None => reasons.push(format!("not a tag build (when.tag: {})", globs_text(globs))),
            }
        }
        if let Some(events) = &w.event {
            let e = event_of(ctx);
            if !events.iter().any(|x| x.value == e) {
                let list: Vec<&str> = events.iter().map(|x| x.as_str()).collect();
                reasons.push(format!(
                    "event {:?} is not {}",
                    e.as_str(),
                    list.join(" or ")
                ));
            }
        }
        if let (Some(globs), Some(changed)) = (&w.changed, &ctx.changed)
            && !changed.iter().any(|path| any_match(globs, path))
        {
            reasons.push(format!("no changed path matches {}", globs_text(globs)));
        }
        for (name, globs) in &w.param {
            let value = params.get(name.as_str()).map_or("", String::as_str);
            if !any_match(globs, value) {
                reasons.push(format!(
                    "param {} is {value:?}, not {}",
                    name.value,
                    globs_text(globs)
                ));
            }
        }
        (!reasons.is_empty()).then(|| reasons.join("; "))
    }
}

fn any_match(globs: &[Spanned<GlobPattern>], s: &str) -> bool {
    globs.iter().any(|g| g.is_match(s))
}

fn globs_text(globs: &[Spanned<GlobPattern>]) -> String {
    let list: Vec<String> = globs.iter().map(|g| format!("{:?}", g.as_str())).collect();
    match list.len() {
        1 => list.into_iter().next().unwrap_or_default(),
        _ => format!("any of {}", list.join(", ")),
    }
}

/// Every combination of matrix values, first axis outermost; one empty combination for a
/// job without a matrix.
fn matrix_combinations(job: &Job) -> Vec<Vec<(&str, &str)>> {
    let mut combos: Vec<Vec<(&str, &str)>> = vec![Vec::new()];
    for axis in &job.matrix {
        let mut next = Vec::with_capacity(combos.len() * axis.values.len());
        for c in &combos {
            for v in &axis.values {
                let mut c = c.clone();
                c.push((axis.name.as_str(), v.as_str()));
                next.push(c);
            }
        }
        combos = next;
    }
    combos
}
