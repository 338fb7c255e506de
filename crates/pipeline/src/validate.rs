//! Checks that need the whole file: `needs` that name no job, dependency cycles,
//! `${VARS}` that resolve to nothing (or to a secret), and `when.param` conditions that
//! can never hold.
//!
//! Variable scopes, which planning follows exactly:
//! - top-level `env` values see built-ins, params and the `env` entries above them;
//! - a job's `env` values also see the whole top-level `env`, the job's matrix variables
//!   and the job `env` entries above them;
//! - every other field of a job (and its services) sees all of the above;
//! - `concurrency.group` and `after.params` see built-ins (without the per-job ones),
//!   params and the top-level `env`;
//! - `notify` is resolved by the server when it sends, where secrets are in scope too, so
//!   only its syntax is checked here.

use std::collections::{HashMap, HashSet};

use crate::diagnostic::{Diagnostic, Source};
use crate::graph::toposort;
use crate::span::{Span, Spanned};
use crate::spec::{DeploySpec, EnvSource, EnvVar, Job, ParamType, Spec};
use crate::suggest::{did_you_mean, help_did_you_mean, quoted_list};
use crate::template::Template;

/// Variables gantry sets in every job.
pub const BUILTIN_VARS: &[&str] = &[
    "CI",
    "GANTRY_RUN_ID",
    "GANTRY_RUN_NUMBER",
    "GANTRY_PIPELINE",
    "GANTRY_JOB",
    "GANTRY_EVENT",
    "GANTRY_COMMIT",
    "GANTRY_REF",
    "GANTRY_BRANCH",
    "GANTRY_TAG",
    "GANTRY_WORKSPACE",
];

/// Built-ins that differ per job, so they are not in scope outside of jobs.
const PER_JOB_VARS: &[&str] = &["GANTRY_JOB", "GANTRY_WORKSPACE"];

/// Names in scope: `true` for secrets.
type Scope<'a> = HashMap<&'a str, bool>;

pub(crate) struct Validator<'s> {
    src: &'s Source,
    pub diags: Vec<Diagnostic>,
    /// (span, name) of unknown-variable reports already made, so a `defaults` field
    /// inherited by many jobs is reported once.
    reported: HashSet<(Span, String)>,
}

/// The needs of each job as indices into `spec.jobs`, unknown names left out.
pub(crate) fn resolve_needs(spec: &Spec) -> Vec<Vec<usize>> {
    let index: HashMap<&str, usize> = spec
        .jobs
        .iter()
        .enumerate()
        .map(|(i, j)| (j.name.as_str(), i))
        .collect();
    spec.jobs
        .iter()
        .map(|j| {
            let mut v: Vec<usize> = j
                .needs
                .iter()
                .filter_map(|n| index.get(n.as_str()).copied())
                .collect();
            v.sort_unstable();
            v.dedup();
            v
        })
        .collect()
}

impl<'s> Validator<'s> {
    pub fn new(src: &'s Source) -> Self {
        Validator {
            src,
            diags: Vec::new(),
            reported: HashSet::new(),
        }
    }

    fn error(&mut self, span: Span, message: impl Into<String>) -> &mut Diagnostic {
        self.diags.push(self.src.error(span, message));
        self.diags.last_mut().expect("just pushed")
    }

    pub fn validate(&mut self, spec: &Spec) {
        self.needs(spec);
        self.variables(spec);
        self.when_params(spec);
    }

    fn needs(&mut self, spec: &Spec) {
        let names: Vec<&str> = spec.jobs.iter().map(|j| j.name.as_str()).collect();
        let known: HashSet<&str> = names.iter().copied().collect();
        for job in &spec.jobs {
            for need in &job.needs {
                if known.contains(need.as_str()) {
                    continue;
                }
                let help = help_did_you_mean(need, names.iter().copied())
                    .unwrap_or_else(|| format!("the jobs are: {}", names.join(", ")));
                self.error(
                    need.span,
                    format!(
                        "job {:?} needs {:?}, which is not a job in this file",
                        job.name.value, need.value
                    ),
                )
                .help = Some(help);
            }
        }
        let needs = resolve_needs(spec);
        let Err(cycles) = toposort(&needs) else {
            return;
        };
        for cycle in cycles {
            let job = |k: usize| &spec.jobs[cycle[k % cycle.len()]];
            // `cycle[k]` needs `cycle[k + 1]`. Shown in run order (`a -> b`: a finishes
            // before b starts), starting and ending at the job that comes first in the file.
            let mut run_order: Vec<&str> = cycle
                .iter()
                .rev()
                .map(|&i| spec.jobs[i].name.as_str())
                .collect();
            run_order.rotate_right(1);
            run_order.push(run_order[0]);
            let need_span = |k: usize| {
                let (j, next) = (job(k), job(k + 1));
                j.needs
                    .iter()
                    .find(|n| n.value == next.name.value)
                    .map_or(j.name.span, |n| n.span)
            };
            let message = if cycle.len() == 1 {
                format!("job {:?} needs itself", job(0).name.value)
            } else {
                format!("dependency cycle: {}", run_order.join(" -> "))
            };
            let chain: Vec<String> = (0..cycle.len())
                .map(|k| {
                    format!(
                        "{:?} needs {:?} (line {})",
                        job(k).name.value,
                        job(k + 1).name.value,
                        need_span(k).line
                    )
                })
                .collect();
            let d = self.error(need_span(0), message);
            d.notes.push(chain.join(", "));
            d.help = Some("remove one of these needs to break the cycle".into());
        }
    }

    // --- variables --------------------------------------------------------------------

    fn variables(&mut self, spec: &Spec) {
        let mut top: Scope<'_> = BUILTIN_VARS.iter().map(|&b| (b, false)).collect();
        for p in &spec.params {
            top.insert(p.name.as_str(), false);
        }
        // Top-level env: each value sees the entries above it.
        self.env_entries(&spec.env, &mut top, "the top-level env");
        let pipeline_scope = {
            let mut s = top.clone();
            for v in PER_JOB_VARS {
                s.remove(v);
            }
            s
        };
        if let Some(c) = &spec.concurrency {
            self.check(&c.group, "group", "\"concurrency\"", &pipeline_scope, &[]);
        }
        for (i, a) in spec.after.iter().enumerate() {
            let ctx = format!("entry {} of \"after\"", i + 1);
            for (k, v) in &a.params {
                self.check(v, k.as_str(), &ctx, &pipeline_scope, &[]);
            }
        }
        // `workspace` is resolved before any env (env values may use GANTRY_WORKSPACE), so
        // it sees only built-ins, params and the matrix.
        let mut ws_base: Scope<'_> = BUILTIN_VARS
            .iter()
            .filter(|&&b| b != "GANTRY_WORKSPACE")
            .map(|&b| (b, false))
            .collect();
        for p in &spec.params {
            ws_base.insert(p.name.as_str(), false);
        }
        for job in &spec.jobs {
            let mut scope = top.clone();
            let mut ws_scope = ws_base.clone();
            for axis in &job.matrix {
                scope.insert(axis.name.as_str(), false);
                ws_scope.insert(axis.name.as_str(), false);
            }
            let ctx = format!("job {:?}", job.name.value);
            match (&job.workspace, &spec.defaults.workspace) {
                (Some(w), _) => self.check(w, "workspace", &ctx, &ws_scope, &[]),
                (None, Some(w)) => self.check(w, "workspace", "\"defaults\"", &ws_scope, &[]),
                (None, None) => {}
            }
            self.env_entries(&job.env, &mut scope, &format!("the env of {ctx}"));
            self.job_fields(spec, job, &scope, &ctx);
        }
    }

    /// Checks env values in order, adding each to the scope after its own value.
    fn env_entries<'a>(&mut self, env: &'a [EnvVar], scope: &mut Scope<'a>, ctx: &str) {
        for (i, var) in env.iter().enumerate() {
            if let EnvSource::Plain(t) = &var.value.value {
                let t = Spanned::new(t.clone(), var.value.span);
                self.check(&t, var.name.as_str(), ctx, scope, &env[i..]);
            }
            scope.insert(
                var.name.as_str(),
                matches!(var.value.value, EnvSource::Secret(_)),
            );
        }
    }

    fn job_fields(&mut self, spec: &Spec, job: &Job, scope: &Scope<'_>, ctx: &str) {
        match &job.image {
            Some(t) => self.check(t, "image", ctx, scope, &[]),
            None => {
                if let Some(t) = &spec.defaults.image {
                    self.check(t, "image", "\"defaults\"", scope, &[]);
                }
            }
        }
        for a in &job.artifacts {
            self.check(a, "artifacts", ctx, scope, &[]);
        }
        if let Some(c) = &job.cache {
            self.check(&c.key, "key", &format!("\"cache\" of {ctx}"), scope, &[]);
            for p in &c.paths {
                self.check(p, "paths", &format!("\"cache\" of {ctx}"), scope, &[]);
            }
        }
        for (k, v) in &job.runs_on {
            self.check(v, k.as_str(), &format!("\"runs_on\" of {ctx}"), scope, &[]);
        }
        if let (Some(first), None, None) = (job.services.first(), &job.image, &spec.defaults.image)
        {
            // Services live on a network private to the job; a host process cannot join it.
            self.error(
                first.name.span,
                format!("{ctx} has services but no \"image\""),
            )
            .help = Some(
                "services are reachable only from a job that runs in a container on their \
                 network: give the job an \"image\" (or set defaults.image)"
                    .into(),
            );
        }
        for s in &job.services {
            let sctx = format!("service {:?} of {ctx}", s.name.value);
            self.check(&s.image, "image", &sctx, scope, &[]);
            let mut sscope = scope.clone();
            self.env_entries(&s.env, &mut sscope, &format!("the env of {sctx}"));
            for arg in s.command.iter().flatten() {
                self.check(arg, "command", &sctx, scope, &[]);
            }
        }
        if let Some(b) = &job.image_build {
            let bctx = format!("\"image_build\" of {ctx}");
            for t in b.context.iter().chain(&b.dockerfile).chain(&b.tags) {
                self.check(t, "image_build", &bctx, scope, &[]);
            }
            for (k, v) in &b.args {
                self.check(v, k.as_str(), &bctx, scope, &[]);
            }
        }
        if let Some(e) = &job.environment {
            let ectx = format!("\"environment\" of {ctx}");
            self.check(&e.name, "name", &ectx, scope, &[]);
            if let Some(u) = &e.url {
                self.check(u, "url", &ectx, scope, &[]);
            }
        }
        if let Some(d) = &job.deploy {
            let dctx = format!("\"deploy\" of {ctx}");
            match &d.value {
                DeploySpec::Compose { file } => self.check(file, "compose", &dctx, scope, &[]),
                DeploySpec::Kubernetes {
                    manifests,
                    namespace,
                } => {
                    self.check(manifests, "manifests", &dctx, scope, &[]);
                    if let Some(n) = namespace {
                        self.check(n, "namespace", &dctx, scope, &[]);
                    }
                }
            }
        }
    }

    /// Reports references in `t` to names not in `scope` (unless they have a default) and
    /// to secrets. `later` holds the env entries from the one being checked onwards, to
    /// explain an ordering mistake.
    fn check(
        &mut self,
        t: &Spanned<Template>,
        field: &str,
        ctx: &str,
        scope: &Scope<'_>,
        later: &[EnvVar],
    ) {
        for var in t.vars() {
            let secret = match scope.get(var.name.as_str()) {
                Some(&secret) => secret,
                None if var.default.is_some() => continue,
                None => {
                    if !self.reported.insert((t.span, var.name.clone())) {
                        continue;
                    }
                    let span =
                        crate::decode::sub_span(self.src, t.span, t.as_str(), var.offset, var.len);
                    let help = if later.iter().skip(1).any(|e| e.name.value == var.name) {
                        format!(
                            "{:?} is defined further down in this env; move it above {field:?}",
                            var.name
                        )
                    } else if let Some(s) = did_you_mean(&var.name, scope.keys().copied()) {
                        format!("did you mean {s:?}?")
                    } else {
                        "variables come from params, env, matrix and gantry's built-ins; write `${NAME:-default}` for an optional one, or `$${` for a literal `${`".into()
                    };
                    self.error(
                        span,
                        format!("unknown variable {:?} in {field:?} of {ctx}", var.name),
                    )
                    .help = Some(help);
                    continue;
                }
            };
            if secret {
                let span =
                    crate::decode::sub_span(self.src, t.span, t.as_str(), var.offset, var.len);
                self.error(
                    span,
                    format!(
                        "{:?} is a secret and cannot be interpolated into {field:?} of {ctx}",
                        var.name
                    ),
                )
                .help = Some(format!(
                    "secrets reach jobs only as environment variables; use ${} in the script, where the shell expands it",
                    var.name
                ));
            }
        }
    }

    // --- when.param -------------------------------------------------------------------

    fn when_params(&mut self, spec: &Spec) {
        for job in &spec.jobs {
            for (name, values) in &job.when.param {
                let ctx = format!("\"when\" of job {:?}", job.name.value);
                let Some(param) = spec.params.iter().find(|p| p.name.value == name.value) else {
                    let help = help_did_you_mean(name, spec.params.iter().map(|p| p.name.as_str()))
                        .unwrap_or_else(|| {
                            if spec.params.is_empty() {
                                "this pipeline declares no params; add them under `params:`".into()
                            } else {
                                format!(
                                    "the params are {}",
                                    quoted_list(spec.params.iter().map(|p| p.name.as_str()))
                                )
                            }
                        });
                    self.error(
                        name.span,
                        format!("unknown param {:?} in {ctx}", name.value),
                    )
                    .help = Some(help);
                    continue;
                };
                for v in values {
                    let text = v.as_str();
                    match param.kind.value {
                        ParamType::Bool if text != "true" && text != "false" => {
                            self.error(
                                v.span,
                                format!(
                                    "param {:?} is a bool, so {text:?} in {ctx} never matches",
                                    name.value
                                ),
                            )
                            .help = Some("compare it with true or false".into());
                        }
                        ParamType::Choice
                            if !text.contains(['*', '?', '[', '{'])
                                && !param.choices.iter().any(|c| c.value == text) =>
                        {
                            self.error(v.span, format!("{text:?} is not a choice of param {:?}, so {ctx} never matches", name.value))
                                .help = Some(format!(
                                "the choices are {}",
                                quoted_list(param.choices.iter().map(|c| c.as_str()))
                            ));
                        }
                        _ => {}
                    }
                }
            }
        }
    }
}
