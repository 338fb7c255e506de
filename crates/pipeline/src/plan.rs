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
use crate::span::Spanned;
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
        let mut p = Planner { spec: self, ctx, diags: Vec::new() };
        let params = p.params();
        if !p.diags.is_empty() {
            return Diagnostics::from(p.diags).into_result(Plan { pipeline: String::new(), jobs: Vec::new(), params });
        }
        let jobs = p.jobs(&params);
        let plan = Plan { pipeline: self.name.value.clone(), jobs, params };
        Diagnostics::from(p.diags).into_result(plan)
    }
}

struct Planner<'a> {
    spec: &'a Spec,
    ctx: &'a PlanContext,
    diags: Vec<Diagnostic>,
}

/// Variables of one job as they accumulate: an ordered list (later entries win) and an
/// index of the latest entry per name, for interpolation.
#[derive(Clone, Default)]
struct Vars {
    list: Vec<(String, EnvValue)>,
    index: HashMap<String, usize>,
}

impl Vars {
    fn set(&mut self, name: &str, value: EnvValue) {
        self.index.insert(name.to_string(), self.list.len());
        self.list.push((name.to_string(), value));
    }

    /// Changes the value of an existing entry in place (keeping its position), or adds it.
    fn replace(&mut self, name: &str, value: EnvValue) {
        match self.index.get(name) {
            Some(&i) => self.list[i].1 = value,
            None => self.set(name, value),
        }
    }

    fn resolve(&self, name: &str) -> Resolved<'_> {
        match self.index.get(name).map(|&i| &self.list[i].1) {
            Some(EnvValue::Plain(s)) => Resolved::Value(s),
            Some(EnvValue::Secret(_)) => Resolved::Secret,
            None => Resolved::Unknown,
        }
    }

    /// The list without entries overridden by later ones.
    fn into_env(self) -> Vec<(String, EnvValue)> {
        let Vars { list, index } = self;
        list.into_iter().enumerate().filter(|(i, (name, _))| index.get(name) == Some(i)).map(|(_, e)| e).collect()
    }
}

/// The event as the `when.event` condition and `GANTRY_EVENT` see it.
fn event_of(ctx: &PlanContext) -> Event {
    ctx.event.unwrap_or(Event::Manual)
}

impl<'a> Planner<'a> {
    fn error(&mut self, span: crate::span::Span, message: impl Into<String>) -> &mut Diagnostic {
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
            let mut d = Diagnostic::new(format!("unknown param {name:?}: {} does not declare it", spec.source.path));
            d.help = Some(if spec.params.is_empty() {
                "this pipeline declares no params".into()
            } else {
                let list: Vec<String> =
                    spec.params.iter().map(|p| format!("{} ({})", p.name.value, p.kind.value.as_str())).collect();
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
                Some(v) => match p.kind.value {
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
                            let help = match did_you_mean(v, p.choices.iter().map(|c| c.as_str())) {
                                Some(s) => format!("did you mean {s:?}? the choices are {choices}"),
                                None => format!("the choices are {choices}"),
                            };
                            self.error(p.name.span, format!("invalid value {v:?} for param {name:?}: not one of its choices"))
                                .help = Some(help);
                            None
                        }
                    }
                },
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
            ParamType::Ref => match from_ref.or_else(|| p.default.as_ref().map(|d| d.value.clone())) {
                Some(v) => Some(v),
                None => match ctx.tag.clone().or_else(|| ctx.branch.clone()) {
                    Some(v) => Some(v),
                    None => {
                        self.error(p.name.span, format!("param {:?} needs a value: it has no default and this run has no branch or tag", p.name.value))
                            .help = Some(format!("pass it with --param {}=REF", p.name.value));
                        None
                    }
                },
            },
            ParamType::String => Some(p.default.as_ref().map_or_else(String::new, |d| d.value.clone())),
            ParamType::Bool => Some(p.default.as_ref().map_or_else(|| "false".to_string(), |d| d.value.clone())),
            ParamType::Choice => p.default.as_ref().or(p.choices.first()).map(|d| d.value.clone()),
        }
    }

    // --- jobs -------------------------------------------------------------------------

    fn jobs(&mut self, params: &BTreeMap<String, String>) -> Vec<PlannedJob> {
        let spec = self.spec;
        let ctx = self.ctx;
        let event = event_of(ctx);
        let refname = ctx.tag.clone().or_else(|| ctx.branch.clone()).unwrap_or_default();
        // Variables shared by every job: the run-wide built-ins and the params.
        let mut base = Vars::default();
        let plain = |s: &str| EnvValue::Plain(s.to_string());
        base.set("CI", plain("true"));
        base.set("GANTRY_RUN_ID", plain(&ctx.run_id));
        base.set("GANTRY_RUN_NUMBER", plain(&ctx.run_number.to_string()));
        base.set("GANTRY_PIPELINE", plain(&spec.name.value));
        // Per-job values, filled in for each job (placeholders keep the documented order).
        base.set("GANTRY_JOB", plain(""));
        base.set("GANTRY_EVENT", plain(event.as_str()));
        base.set("GANTRY_COMMIT", plain(ctx.commit.as_deref().unwrap_or("")));
        base.set("GANTRY_REF", plain(&refname));
        base.set("GANTRY_BRANCH", plain(ctx.branch.as_deref().unwrap_or("")));
        base.set("GANTRY_TAG", plain(ctx.tag.as_deref().unwrap_or("")));
        base.set("GANTRY_WORKSPACE", plain(""));
        for (k, v) in params {
            base.set(k, plain(v));
        }

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
            let n: Vec<usize> = job_needs[j].iter().flat_map(|&d| instances[d].iter().copied()).collect();
            for _ in idx {
                needs.push(n.clone());
            }
        }
        let order = match toposort(&needs) {
            Ok(o) => o,
            Err(_) => {
                // Validation refuses cycles, so this cannot happen for a parsed Spec.
                self.diags.push(Diagnostic::new("dependency cycle between jobs"));
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
        base: &Vars,
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
        let mut vars = base.clone();
        vars.replace("GANTRY_JOB", EnvValue::Plain(name.clone()));
        // The workspace is resolved first: it sees built-ins, params and the matrix, but
        // not env, whose values may refer to GANTRY_WORKSPACE.
        let workspace = match job.workspace.as_ref().or(spec.defaults.workspace.as_ref()) {
            Some(t) => {
                let mut ws_vars = vars.clone();
                for (k, v) in &combo {
                    ws_vars.set(k, EnvValue::Plain(v.to_string()));
                }
                let w = self.render(t, &ws_vars, "workspace", &jctx);
                if !w.starts_with('/') || w.split('/').any(|c| c == "..") {
                    self.error(t.span, format!("\"workspace\" of {jctx} is {w:?}, which is not an absolute path without `..`"));
                }
                w
            }
            None => DEFAULT_WORKSPACE.to_string(),
        };
        vars.replace("GANTRY_WORKSPACE", EnvValue::Plain(workspace.clone()));
        self.render_env(&spec.env, &mut vars, "the top-level env");
        // The job's env sees the matrix variables; they are set again after it, so that
        // a matrix value wins over an env entry of the same name, as in the env order.
        for (k, v) in &combo {
            vars.set(k, EnvValue::Plain(v.to_string()));
        }
        self.render_env(&job.env, &mut vars, &jctx);
        for (k, v) in &combo {
            vars.set(k, EnvValue::Plain(v.to_string()));
        }
        let scope = &vars;
        let r = |p: &mut Self, t: &Spanned<Template>, field: &str| p.render(t, scope, field, &jctx);
        let image = job.image.as_ref().or(spec.defaults.image.as_ref()).map(|t| r(self, t, "image"));
        let artifacts = job.artifacts.iter().map(|t| self.path(t, scope, "artifacts", &jctx)).collect();
        let cache = job.cache.as_ref().map(|c| Cache {
            key: r(self, &c.key, "cache.key"),
            paths: c.paths.iter().map(|t| self.path(t, scope, "cache.paths", &jctx)).collect(),
        });
        let services = job
            .services
            .iter()
            .map(|s| {
                let sctx = format!("service {:?} of {jctx}", s.name.value);
                let mut svars = scope.clone();
                let entries = self.render_env(&s.env, &mut svars, &sctx);
                let mut own = Vars::default();
                for (k, v) in entries {
                    own.set(&k, v);
                }
                let env = own.into_env();
                Service {
                    name: s.name.value.clone(),
                    image: self.render(&s.image, scope, "image", &sctx),
                    env,
                    command: s.command.as_ref().map(|c| c.iter().map(|a| self.render(a, scope, "command", &sctx)).collect()),
                    ready: s.ready.as_ref().map(|rd| Ready {
                        probe: rd.probe.value.clone(),
                        timeout: rd.timeout.as_ref().map_or(DEFAULT_READY_TIMEOUT, |t| t.value),
                    }),
                }
            })
            .collect();
        let image_build = job.image_build.as_ref().map(|b| ImageBuild {
            context: b.context.as_ref().map_or_else(|| ".".to_string(), |t| self.path(t, scope, "image_build.context", &jctx)),
            dockerfile: b
                .dockerfile
                .as_ref()
                .map_or_else(|| "Dockerfile".to_string(), |t| self.path(t, scope, "image_build.dockerfile", &jctx)),
            tags: b.tags.iter().map(|t| r(self, t, "image_build.tag")).collect(),
            args: b.args.iter().map(|(k, v)| (k.value.clone(), r(self, v, "image_build.args"))).collect(),
            push: b.push.as_ref().is_some_and(|p| p.value),
        });
        let environment = job.environment.as_ref().map(|e| Environment {
            name: r(self, &e.name, "environment.name"),
            approval_required: e.approval_required,
            url: e.url.as_ref().map(|u| r(self, u, "environment.url")),
        });
        let deploy = job.deploy.as_ref().map(|d| match &d.value {
            DeploySpec::Compose { file } => Deploy::Compose { file: self.path(file, scope, "deploy.compose", &jctx) },
            DeploySpec::Kubernetes { manifests, namespace } => Deploy::Kubernetes {
                manifests: self.path(manifests, scope, "deploy.kubernetes.manifests", &jctx),
                namespace: namespace.as_ref().map(|n| r(self, n, "deploy.kubernetes.namespace")),
            },
        });
        let runs_on = job.runs_on.iter().map(|(k, v)| (k.value.clone(), r(self, v, "runs_on"))).collect();
        PlannedJob {
            name,
            base: job.name.value.clone(),
            matrix: combo.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect(),
            needs: Vec::new(),
            excluded,
            run_on: job.when.status.as_ref().map_or(RunOn::Success, |s| s.value),
            image,
            workspace,
            env: vars.into_env(),
            script: job.script.iter().map(|s| s.value.clone()).collect(),
            services,
            artifacts,
            cache,
            timeout: job.timeout.as_ref().or(spec.defaults.timeout.as_ref()).map_or(DEFAULT_TIMEOUT, |t| t.value),
            retry: job.retry.as_ref().or(spec.defaults.retry.as_ref()).map_or(0, |r| r.value),
            allow_failure: job.allow_failure.as_ref().is_some_and(|a| a.value),
            image_build,
            environment,
            deploy,
            runs_on,
        }
    }

    /// Interpolates env entries in order, each seeing the ones before it, adds them to
    /// `vars` and returns them.
    fn render_env(&mut self, env: &[EnvVar], vars: &mut Vars, ctx: &str) -> Vec<(String, EnvValue)> {
        let mut out = Vec::with_capacity(env.len());
        for var in env {
            let value = match &var.value.value {
                EnvSource::Plain(t) => {
                    let t = Spanned::new(t.clone(), var.value.span);
                    EnvValue::Plain(self.render(&t, vars, var.name.as_str(), ctx))
                }
                EnvSource::Secret(name) => EnvValue::Secret(name.clone()),
            };
            vars.set(var.name.as_str(), value.clone());
            out.push((var.name.value.clone(), value));
        }
        out
    }

    fn render(&mut self, t: &Spanned<Template>, vars: &Vars, field: &str, ctx: &str) -> String {
        match t.render(|name| vars.resolve(name)) {
            Ok(s) => s,
            Err(e) => {
                // Validation rules these out for a parsed Spec; reported, never panicked on.
                let what = if e.secret { "is a secret and cannot be interpolated" } else { "is not defined" };
                self.error(t.span, format!("variable {:?} in {field:?} of {ctx} {what}", e.var.name));
                String::new()
            }
        }
    }

    /// Interpolates a workspace-relative path and checks it still stays inside.
    fn path(&mut self, t: &Spanned<Template>, vars: &Vars, field: &str, ctx: &str) -> String {
        let p = self.render(t, vars, field, ctx);
        if let Err(why) = check_relative(&p) {
            self.error(t.span, format!("{field:?} of {ctx} is {p:?} after interpolation, which {why}")).help =
                Some("paths are relative to the workspace root and stay inside it".into());
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
                Some(b) => reasons.push(format!("branch {b:?} does not match {}", globs_text(globs))),
                None => reasons.push(format!("not a branch build (when.branch: {})", globs_text(globs))),
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
                reasons.push(format!("event {:?} is not {}", e.as_str(), list.join(" or ")));
            }
        }
        if let (Some(globs), Some(changed)) = (&w.changed, &ctx.changed) {
            if !changed.iter().any(|path| any_match(globs, path)) {
                reasons.push(format!("no changed path matches {}", globs_text(globs)));
            }
        }
        for (name, globs) in &w.param {
            let value = params.get(name.as_str()).map_or("", String::as_str);
            if !any_match(globs, value) {
                reasons.push(format!("param {} is {value:?}, not {}", name.value, globs_text(globs)));
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
