//! The output of planning: what the engine executes.
//!
//! A [`Plan`] is fully resolved: matrices are expanded into named jobs, `when` conditions
//! are decided, `${VARS}` are interpolated, params are typed and defaulted, and built-in
//! variables are set. Nothing in here refers back to YAML.

use std::collections::BTreeMap;
use std::time::Duration;

/// A planned run of one pipeline.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Plan {
    /// The pipeline's name.
    pub pipeline: String,
    /// Jobs in a topological order: every job comes after all of its needs.
    pub jobs: Vec<PlannedJob>,
    /// Typed, defaulted parameter values, as strings (they become env vars).
    pub params: BTreeMap<String, String>,
}

impl Plan {
    /// Looks up a job by its full name (e.g. `build (GO=1.18)`).
    pub fn job(&self, name: &str) -> Option<&PlannedJob> {
        self.jobs.iter().find(|j| j.name == name)
    }
}

/// When a job is eligible to run relative to the outcome of the run so far.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RunOn {
    /// Default: runs when all its needs succeeded (or were allowed to fail).
    Success,
    /// Runs only if something in the run failed (cleanup, notifications).
    Failure,
    /// Runs whatever happened before it.
    Always,
}

/// One executable job after matrix expansion.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct PlannedJob {
    /// Unique display name, e.g. `build` or `build (GO=1.18)`.
    pub name: String,
    /// The job's key in the file, e.g. `build`.
    pub base: String,
    /// Matrix values of this instance (empty without a matrix).
    pub matrix: BTreeMap<String, String>,
    /// Indices into [`Plan::jobs`] of the jobs that must finish first (already expanded:
    /// `needs: [build]` lists every matrix instance of `build`).
    pub needs: Vec<usize>,
    /// `None` when the job runs in this plan; `Some(reason)` when its `when`
    /// conditions (branch, tag, event, changed, param) rule it out.
    pub excluded: Option<String>,
    /// The `status` part of `when`.
    pub run_on: RunOn,
    /// Container image; `None` runs on the host.
    pub image: Option<String>,
    /// Where the checkout is mounted inside a container (default `/workspace`).
    pub workspace: String,
    /// Environment, in order: built-ins, params, pipeline `env`, job `env`, matrix.
    /// Later entries win.
    pub env: Vec<(String, EnvValue)>,
    /// Commands run in one `sh -e` shell (not interpolated by gantry).
    pub script: Vec<String>,
    /// Services started before the script, by name.
    pub services: Vec<Service>,
    /// Artifact path globs, relative to the workspace root.
    pub artifacts: Vec<String>,
    /// Cache configuration.
    pub cache: Option<Cache>,
    /// Limit on one attempt.
    pub timeout: Duration,
    /// Extra attempts after a failure.
    pub retry: u32,
    /// A failure shows but does not fail the run or skip dependents.
    pub allow_failure: bool,
    /// Build an image instead of (or before) running a script.
    pub image_build: Option<ImageBuild>,
    /// Deployment environment marker.
    pub environment: Option<Environment>,
    /// What to deploy.
    pub deploy: Option<Deploy>,
    /// Labels an executor must have.
    pub runs_on: BTreeMap<String, String>,
}

impl PlannedJob {
    /// What this job needs that the host backend cannot give it, if anything:
    /// `image`, `services`, `image_build` or `deploy`.
    pub fn container_needs(&self) -> Vec<&'static str> {
        let mut v = Vec::new();
        if self.image.is_some() {
            v.push("image");
        }
        if !self.services.is_empty() {
            v.push("services");
        }
        if self.image_build.is_some() {
            v.push("image_build");
        }
        if self.deploy.is_some() {
            v.push("deploy");
        }
        v
    }
}

/// An environment value: literal, or the name of a secret resolved at run time.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EnvValue {
    /// A literal (already interpolated).
    Plain(String),
    /// `{ secret: NAME }`.
    Secret(String),
}

/// A service container of a job.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Service {
    /// Name, also its hostname on the job's network.
    pub name: String,
    /// Image.
    pub image: String,
    /// Environment.
    pub env: Vec<(String, EnvValue)>,
    /// Command (arguments to the image's entrypoint); `None` keeps the image's.
    pub command: Option<Vec<String>>,
    /// Readiness probe.
    pub ready: Option<Ready>,
}

/// A readiness probe for a service.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Ready {
    /// What to check.
    pub probe: Probe,
    /// How long to wait before giving up (default 60s).
    pub timeout: Duration,
}

/// The kind of readiness check.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Probe {
    /// A TCP connect to the port succeeds.
    Tcp {
        /// Port.
        port: u16,
    },
    /// An HTTP GET of the path on the port answers 2xx/3xx.
    Http {
        /// Path, starting with `/`.
        path: String,
        /// Port.
        port: u16,
    },
}

/// `cache: { key, paths }`.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Cache {
    /// Cache key; may contain `${hash:FILE}` placeholders the engine resolves.
    pub key: String,
    /// Paths relative to the workspace.
    pub paths: Vec<String>,
}

/// `image_build:`.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct ImageBuild {
    /// Build context, relative to the workspace (default `.`).
    pub context: String,
    /// Dockerfile path relative to the context (default `Dockerfile`).
    pub dockerfile: String,
    /// Tags, at least one.
    pub tags: Vec<String>,
    /// Build args.
    pub args: BTreeMap<String, String>,
    /// Push the tags after building.
    pub push: bool,
}

/// `environment:`.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Environment {
    /// Name, e.g. `staging`.
    pub name: String,
    /// A person must approve before the job runs.
    pub approval_required: bool,
    /// Where the deployed thing can be seen.
    pub url: Option<String>,
}

/// `deploy:`.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Deploy {
    /// A compose file on the Docker host.
    Compose {
        /// Path relative to the workspace.
        file: String,
    },
    /// Kubernetes manifests.
    Kubernetes {
        /// Directory or file relative to the workspace.
        manifests: String,
        /// Namespace.
        namespace: Option<String>,
    },
}

/// What triggered a run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Event {
    /// A push to a branch.
    Push,
    /// A tag was pushed.
    Tag,
    /// Started by a person (`gantry run` defaults to this).
    Manual,
    /// A cron schedule.
    Schedule,
    /// SCM polling found a new commit.
    Poll,
    /// A pull request.
    PullRequest,
    /// Triggered by another pipeline's `after`.
    Trigger,
}

impl Event {
    /// All events, for parsing and help texts.
    pub const ALL: [Event; 7] = [
        Event::Push,
        Event::Tag,
        Event::Manual,
        Event::Schedule,
        Event::Poll,
        Event::PullRequest,
        Event::Trigger,
    ];

    /// The spelling used in gantry.yml and on the command line.
    pub fn as_str(self) -> &'static str {
        match self {
            Event::Push => "push",
            Event::Tag => "tag",
            Event::Manual => "manual",
            Event::Schedule => "schedule",
            Event::Poll => "poll",
            Event::PullRequest => "pull_request",
            Event::Trigger => "trigger",
        }
    }

    /// Parses the spelling used in gantry.yml.
    pub fn parse(s: &str) -> Option<Event> {
        Event::ALL.into_iter().find(|e| e.as_str() == s)
    }
}

/// Everything planning needs to know about the run being planned.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct PlanContext {
    /// What started the run (`None` = manual).
    pub event: Option<Event>,
    /// The branch being built, if any.
    pub branch: Option<String>,
    /// The tag being built, if any.
    pub tag: Option<String>,
    /// The commit id, if known.
    pub commit: Option<String>,
    /// Paths changed since the previous run; `None` = unknown (every `changed` matches).
    pub changed: Option<Vec<String>>,
    /// Parameter values given by the user, as text; typed against `params`.
    pub params: BTreeMap<String, String>,
    /// Run id (for `GANTRY_RUN_ID`).
    pub run_id: String,
    /// Run number (for `GANTRY_RUN_NUMBER`).
    pub run_number: u64,
}
