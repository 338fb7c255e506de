//! The typed, validated pipeline file: what `gantry.yml` says, with where it says it.
//!
//! A [`Spec`] only exists for a file that passed validation, so every value in it is
//! well-formed (durations parsed, globs compiled, `${…}` syntax checked, names resolved).
//! What still depends on the run — which branch, which params — is decided by
//! [`Spec::plan`](crate::Spec::plan). The spans let later checks and front ends
//! (`gantry lint`, the server's UI) point back into the file.

use std::sync::Arc;
use std::time::Duration;

use crate::diagnostic::Source;
use crate::glob::GlobPattern;
use crate::plan_types::{Event, RunOn};
use crate::span::Spanned;
use crate::template::Template;

/// A whole pipeline file.
#[derive(Debug, Clone)]
pub struct Spec {
    /// Pipeline name (`name:`, or a default derived from the file's path).
    pub name: Spanned<String>,
    /// What starts a run on the server.
    pub on: Triggers,
    /// Typed run parameters, in file order.
    pub params: Vec<Param>,
    /// Variables for every job, in file order.
    pub env: Vec<EnvVar>,
    /// Job keys applied to every job that does not set them.
    pub defaults: Defaults,
    /// Jobs, in file order.
    pub jobs: Vec<Job>,
    /// Notifications by outcome.
    pub notify: Vec<Notify>,
    /// Downstream pipelines to trigger.
    pub after: Vec<After>,
    /// How many runs of a group may run at once.
    pub concurrency: Option<Concurrency>,
    /// The file, for diagnostics found while planning.
    pub(crate) source: Arc<Source>,
}

impl Spec {
    /// The pipeline's name.
    pub fn name(&self) -> &str {
        &self.name.value
    }

    /// The declared params (for `--help`-style listings and the UI's form).
    pub fn params(&self) -> &[Param] {
        &self.params
    }

    /// The jobs as written (before matrix expansion).
    pub fn jobs(&self) -> &[Job] {
        &self.jobs
    }

    /// A job by its key.
    pub fn job(&self, name: &str) -> Option<&Job> {
        self.jobs.iter().find(|j| j.name.value == name)
    }

    /// The path the file was parsed under.
    pub fn path(&self) -> &str {
        &self.source.path
    }
}

/// `on:` — triggers. Nothing here affects `gantry run`; the server reads it.
#[derive(Debug, Clone, Default)]
pub struct Triggers {
    /// Branch globs whose pushes start a run (empty: pushes do not).
    pub push: Vec<Spanned<GlobPattern>>,
    /// Tag globs whose creation starts a run.
    pub tag: Vec<Spanned<GlobPattern>>,
    /// Poll the remote at this interval.
    pub poll: Option<Spanned<Duration>>,
    /// Cron expressions (5 fields, UTC).
    pub schedule: Vec<Spanned<String>>,
    /// Whether people may start runs by hand; `None` when not written (allowed).
    pub manual: Option<Spanned<bool>>,
    /// Target-branch globs of pull requests that start a run.
    pub pull_request: Vec<Spanned<GlobPattern>>,
}

impl Triggers {
    /// Whether manual runs are allowed (the default).
    pub fn manual(&self) -> bool {
        self.manual.as_ref().is_none_or(|m| m.value)
    }

    /// Whether a push to `branch` starts a run.
    pub fn push_matches(&self, branch: &str) -> bool {
        self.push.iter().any(|g| g.is_match(branch))
    }

    /// Whether a new tag starts a run.
    pub fn tag_matches(&self, tag: &str) -> bool {
        self.tag.iter().any(|g| g.is_match(tag))
    }

    /// Whether a pull request into `target` starts a run.
    pub fn pull_request_matches(&self, target: &str) -> bool {
        self.pull_request.iter().any(|g| g.is_match(target))
    }
}

/// The type of a param.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ParamType {
    /// Free text (default `""`).
    String,
    /// `true` or `false` (default `false`).
    Bool,
    /// One of `choices` (default: the first).
    Choice,
    /// A branch or tag (default: the ref that triggered the run).
    Ref,
}

impl ParamType {
    /// The spelling in gantry.yml.
    pub fn as_str(self) -> &'static str {
        match self {
            ParamType::String => "string",
            ParamType::Bool => "bool",
            ParamType::Choice => "choice",
            ParamType::Ref => "ref",
        }
    }

    /// All types, in the order the docs list them.
    pub const ALL: [ParamType; 4] = [
        ParamType::String,
        ParamType::Bool,
        ParamType::Choice,
        ParamType::Ref,
    ];
}

/// One entry of `params:`.
#[derive(Debug, Clone)]
pub struct Param {
    /// Name; also the env var it becomes.
    pub name: Spanned<String>,
    /// Type.
    pub kind: Spanned<ParamType>,
    /// Default value, normalized (`true`/`false` for bools).
    pub default: Option<Spanned<String>>,
    /// Allowed values of a `choice`.
    pub choices: Vec<Spanned<String>>,
    /// For `ref`: which refs the UI offers.
    pub pattern: Option<Spanned<GlobPattern>>,
    /// Help text.
    pub description: Option<Spanned<String>>,
}

impl Param {
    /// A string param without default (used to keep a param whose declaration had errors).
    pub(crate) fn untyped(name: &Spanned<String>) -> Param {
        Param {
            name: name.clone(),
            kind: Spanned::unspanned(ParamType::String),
            default: None,
            choices: Vec::new(),
            pattern: None,
            description: None,
        }
    }
}

/// The value of an `env` entry.
#[derive(Debug, Clone, PartialEq)]
pub enum EnvSource {
    /// A value (interpolated at plan time).
    Plain(Template),
    /// `{ secret: NAME }`: looked up when the job runs.
    Secret(String),
}

/// One `NAME: value` of an `env` map.
#[derive(Debug, Clone)]
pub struct EnvVar {
    /// Variable name.
    pub name: Spanned<String>,
    /// Value.
    pub value: Spanned<EnvSource>,
}

/// `defaults:`.
#[derive(Debug, Clone, Default)]
pub struct Defaults {
    /// Image for jobs without one.
    pub image: Option<Spanned<Template>>,
    /// Timeout for jobs without one.
    pub timeout: Option<Spanned<Duration>>,
    /// Retries for jobs without a `retry`.
    pub retry: Option<Spanned<u32>>,
    /// Container workspace for jobs without one.
    pub workspace: Option<Spanned<Template>>,
}

/// One entry of `jobs:`.
#[derive(Debug, Clone)]
pub struct Job {
    /// The job's key.
    pub name: Spanned<String>,
    /// Jobs that must succeed first.
    pub needs: Vec<Spanned<String>>,
    /// Conditions.
    pub when: When,
    /// Container image.
    pub image: Option<Spanned<Template>>,
    /// Where the checkout is mounted in the container.
    pub workspace: Option<Spanned<Template>>,
    /// Variables.
    pub env: Vec<EnvVar>,
    /// Commands (not interpolated).
    pub script: Vec<Spanned<String>>,
    /// Service containers.
    pub services: Vec<ServiceSpec>,
    /// Artifact globs.
    pub artifacts: Vec<Spanned<Template>>,
    /// Cache.
    pub cache: Option<CacheSpec>,
    /// Matrix axes, in file order.
    pub matrix: Vec<MatrixAxis>,
    /// Executor labels.
    pub runs_on: Vec<(Spanned<String>, Spanned<Template>)>,
    /// Per-attempt time limit.
    pub timeout: Option<Spanned<Duration>>,
    /// Extra attempts.
    pub retry: Option<Spanned<u32>>,
    /// Failure does not fail the run.
    pub allow_failure: Option<Spanned<bool>>,
    /// Image build.
    pub image_build: Option<ImageBuildSpec>,
    /// Deployment environment.
    pub environment: Option<EnvironmentSpec>,
    /// Deployment.
    pub deploy: Option<Spanned<DeploySpec>>,
}

/// `when:` of a job. Keys are ANDed; the values of one key are ORed.
#[derive(Debug, Clone, Default)]
pub struct When {
    /// Branch globs.
    pub branch: Option<Vec<Spanned<GlobPattern>>>,
    /// Tag globs.
    pub tag: Option<Vec<Spanned<GlobPattern>>>,
    /// Events.
    pub event: Option<Vec<Spanned<Event>>>,
    /// Changed-path globs.
    pub changed: Option<Vec<Spanned<GlobPattern>>>,
    /// Param name → value globs.
    pub param: Vec<(Spanned<String>, Vec<Spanned<GlobPattern>>)>,
    /// When relative to failures.
    pub status: Option<Spanned<RunOn>>,
}

/// A service container of a job.
#[derive(Debug, Clone)]
pub struct ServiceSpec {
    /// Name (a valid hostname).
    pub name: Spanned<String>,
    /// Image.
    pub image: Spanned<Template>,
    /// Variables.
    pub env: Vec<EnvVar>,
    /// Arguments replacing the image's command.
    pub command: Option<Vec<Spanned<Template>>>,
    /// Readiness probe.
    pub ready: Option<ReadySpec>,
}

/// `ready:` of a service.
#[derive(Debug, Clone)]
pub struct ReadySpec {
    /// What to check.
    pub probe: Spanned<crate::plan_types::Probe>,
    /// How long to wait.
    pub timeout: Option<Spanned<Duration>>,
}

/// `cache:`.
#[derive(Debug, Clone)]
pub struct CacheSpec {
    /// Key (may contain `${hash:FILE}`).
    pub key: Spanned<Template>,
    /// Paths.
    pub paths: Vec<Spanned<Template>>,
}

/// One axis of `matrix:`.
#[derive(Debug, Clone)]
pub struct MatrixAxis {
    /// Variable name.
    pub name: Spanned<String>,
    /// Values, in order.
    pub values: Vec<Spanned<String>>,
}

/// `image_build:`.
#[derive(Debug, Clone)]
pub struct ImageBuildSpec {
    /// Build context.
    pub context: Option<Spanned<Template>>,
    /// Dockerfile, relative to the context.
    pub dockerfile: Option<Spanned<Template>>,
    /// Tags.
    pub tags: Vec<Spanned<Template>>,
    /// Build args.
    pub args: Vec<(Spanned<String>, Spanned<Template>)>,
    /// Push after building.
    pub push: Option<Spanned<bool>>,
}

/// `environment:`.
#[derive(Debug, Clone)]
pub struct EnvironmentSpec {
    /// Name.
    pub name: Spanned<Template>,
    /// `approval: required`.
    pub approval_required: bool,
    /// URL.
    pub url: Option<Spanned<Template>>,
}

/// `deploy:`.
#[derive(Debug, Clone)]
pub enum DeploySpec {
    /// `compose: FILE`.
    Compose {
        /// Compose file.
        file: Spanned<Template>,
    },
    /// `kubernetes: { manifests, namespace }`.
    Kubernetes {
        /// Manifests directory or file.
        manifests: Spanned<Template>,
        /// Namespace.
        namespace: Option<Spanned<Template>>,
    },
}

/// An outcome a notification or downstream trigger reacts to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OutcomeFilter {
    /// The run failed.
    Failure,
    /// The run succeeded.
    Success,
    /// The run succeeded after the previous one failed.
    Fixed,
    /// Any outcome.
    Always,
}

impl OutcomeFilter {
    /// The spelling in gantry.yml.
    pub fn as_str(self) -> &'static str {
        match self {
            OutcomeFilter::Failure => "failure",
            OutcomeFilter::Success => "success",
            OutcomeFilter::Fixed => "fixed",
            OutcomeFilter::Always => "always",
        }
    }

    /// All values.
    pub const ALL: [OutcomeFilter; 4] = [
        OutcomeFilter::Failure,
        OutcomeFilter::Success,
        OutcomeFilter::Fixed,
        OutcomeFilter::Always,
    ];
}

/// One entry of `notify:`. `${VARS}` here are resolved by the server when it sends the
/// notification, where secrets are in scope too.
#[derive(Debug, Clone)]
pub struct Notify {
    /// Outcomes that send it.
    pub on: Vec<Spanned<OutcomeFilter>>,
    /// Slack-compatible webhook URL.
    pub webhook: Option<Spanned<Template>>,
    /// Email recipients.
    pub email: Vec<Spanned<Template>>,
}

/// One entry of `after:`.
#[derive(Debug, Clone)]
pub struct After {
    /// Name of the pipeline to trigger.
    pub trigger: Spanned<String>,
    /// Params to pass.
    pub params: Vec<(Spanned<String>, Spanned<Template>)>,
    /// Outcomes that trigger it (default: success).
    pub on: Vec<Spanned<OutcomeFilter>>,
}

/// `concurrency:`.
#[derive(Debug, Clone)]
pub struct Concurrency {
    /// Group name (interpolated at plan time).
    pub group: Spanned<Template>,
    /// How many runs of the group at once.
    pub limit: Spanned<u32>,
}
