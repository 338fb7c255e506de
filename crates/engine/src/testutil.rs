//! Unit-test helpers: plans built in code, and a harness that runs one on a
//! [`FakeBackend`] and collects everything that came out.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use gantry_backend::CancellationToken;
use gantry_pipeline::{EnvValue, Plan, PlannedJob, RunOn, Service};
use gantry_test_support::{FakeBackend, TempTree};

use crate::{Backends, RunConfig, RunEvent, RunSummary, Source, run};

/// A job under construction; `needs` by name, resolved by [`plan`].
pub struct JobB {
    pub job: PlannedJob,
    needs: Vec<String>,
}

pub fn job(name: &str) -> JobB {
    JobB {
        job: PlannedJob {
            name: name.to_owned(),
            base: name.to_owned(),
            matrix: BTreeMap::new(),
            needs: Vec::new(),
            excluded: None,
            run_on: RunOn::Success,
            image: None,
            workspace: "/workspace".to_owned(),
            env: Vec::new(),
            script: vec![format!("echo {name}")],
            services: Vec::new(),
            artifacts: Vec::new(),
            cache: None,
            timeout: Duration::from_secs(60),
            retry: 0,
            allow_failure: false,
            image_build: None,
            environment: None,
            deploy: None,
            runs_on: BTreeMap::new(),
        },
        needs: Vec::new(),
    }
}

impl JobB {
    pub fn needs(mut self, names: &[&str]) -> JobB {
        self.needs = names.iter().map(|n| n.to_string()).collect();
        self
    }
    pub fn env(mut self, name: &str, value: &str) -> JobB {
        self.job
            .env
            .push((name.to_owned(), EnvValue::Plain(value.to_owned())));
        self
    }
    pub fn secret(mut self, name: &str, secret: &str) -> JobB {
        self.job
            .env
            .push((name.to_owned(), EnvValue::Secret(secret.to_owned())));
        self
    }
    pub fn run_on(mut self, run_on: RunOn) -> JobB {
        self.job.run_on = run_on;
        self
    }
    pub fn retry(mut self, n: u32) -> JobB {
        self.job.retry = n;
        self
    }
    pub fn allow_failure(mut self) -> JobB {
        self.job.allow_failure = true;
        self
    }
    pub fn timeout(mut self, t: Duration) -> JobB {
        self.job.timeout = t;
        self
    }
    pub fn excluded(mut self, reason: &str) -> JobB {
        self.job.excluded = Some(reason.to_owned());
        self
    }
    pub fn image(mut self, image: &str) -> JobB {
        self.job.image = Some(image.to_owned());
        self
    }
    pub fn service(mut self, name: &str, env: &[(&str, &str)]) -> JobB {
        self.job.services.push(Service {
            name: name.to_owned(),
            image: format!("{name}-image"),
            env: env
                .iter()
                .map(|(k, v)| (k.to_string(), EnvValue::Plain(v.to_string())))
                .collect(),
            command: None,
            ready: None,
        });
        self
    }
    pub fn cache(mut self, key: &str, paths: &[&str]) -> JobB {
        self.job.cache = Some(gantry_pipeline::Cache {
            key: key.to_owned(),
            paths: paths.iter().map(|p| p.to_string()).collect(),
        });
        self
    }
    pub fn artifacts(mut self, patterns: &[&str]) -> JobB {
        self.job.artifacts = patterns.iter().map(|p| p.to_string()).collect();
        self
    }
}

/// A plan of these jobs, in this (topological) order.
pub fn plan(jobs: Vec<JobB>) -> Plan {
    let names: Vec<String> = jobs.iter().map(|j| j.job.name.clone()).collect();
    let jobs = jobs
        .into_iter()
        .enumerate()
        .map(|(i, mut b)| {
            b.job.needs = b
                .needs
                .iter()
                .map(|n| {
                    let at = names.iter().position(|x| x == n).expect("known need");
                    assert!(at < i, "needs must come first: {n}");
                    at
                })
                .collect();
            b.job
        })
        .collect();
    Plan {
        pipeline: "test".to_owned(),
        jobs,
        params: BTreeMap::new(),
    }
}

/// What a run left behind.
pub struct Ran {
    pub summary: RunSummary,
    pub events: Vec<RunEvent>,
    pub fake: FakeBackend,
    pub run_dir: TempTree,
}

impl Ran {
    /// `name: word` per job, in plan order.
    pub fn statuses(&self) -> Vec<String> {
        self.summary
            .jobs
            .iter()
            .map(|j| format!("{}: {}", j.name, j.status.word()))
            .collect()
    }

    pub fn job(&self, name: &str) -> &crate::JobSummary {
        self.summary
            .jobs
            .iter()
            .find(|j| j.name == name)
            .expect("a job of the plan")
    }

    /// The skip reason of a job.
    pub fn reason(&self, name: &str) -> String {
        match &self.job(name).status {
            crate::JobStatus::Skipped { reason } => reason.clone(),
            crate::JobStatus::Errored { message } => message.clone(),
            other => format!("not skipped: {other:?}"),
        }
    }

    /// Log texts of a job, in order.
    pub fn logs(&self, name: &str) -> Vec<String> {
        let index = self
            .summary
            .jobs
            .iter()
            .position(|j| j.name == name)
            .expect("a job of the plan");
        self.events
            .iter()
            .filter_map(|e| match e {
                RunEvent::JobLog { job, line } if *job == index => Some(line.text.clone()),
                _ => None,
            })
            .collect()
    }
}

/// Options for [`run_with`].
pub struct Opts {
    pub parallelism: usize,
    pub fail_fast: bool,
    pub secrets: BTreeMap<String, String>,
    pub keep_workspaces: bool,
    /// Give the run no container backend (host-only fake).
    pub host_only: bool,
    /// Cancel the run once this job's script has started.
    pub cancel_after_start_of: Option<String>,
    /// Where `cache:` entries live (`None`: caches off).
    pub caches: Option<Arc<dyn crate::cache::CacheStore>>,
}

impl Default for Opts {
    fn default() -> Self {
        Opts {
            parallelism: 4,
            fail_fast: false,
            secrets: BTreeMap::new(),
            keep_workspaces: false,
            host_only: false,
            cancel_after_start_of: None,
            caches: None,
        }
    }
}

/// The source tree every harness run starts from.
pub fn source_tree() -> TempTree {
    let tree = TempTree::new();
    tree.file("src/main.c", "int main() {}\n")
        .exec("build.sh", "#!/bin/sh\n");
    tree
}

pub async fn run_plan(plan: &Plan) -> Ran {
    run_with(plan, Opts::default()).await
}

/// Runs `plan` on a fresh [`FakeBackend`] and checks the invariants every run must keep:
/// the event stream is well-formed and no prepared environment is left behind.
pub async fn run_with(plan: &Plan, opts: Opts) -> Ran {
    let source_dir = source_tree();
    let run_dir = TempTree::new();
    let fake = if opts.host_only {
        FakeBackend::host_only()
    } else {
        FakeBackend::new()
    };
    let backends = Backends {
        host: Arc::new(fake.clone()),
        containers: (!opts.host_only).then(|| Arc::new(fake.clone()) as _),
    };
    let config = RunConfig {
        run_id: "run-1".into(),
        run_dir: run_dir.path().to_path_buf(),
        source: Source::from_dir(source_dir.path()).expect("list the source"),
        parallelism: opts.parallelism,
        fail_fast: opts.fail_fast,
        secrets: opts.secrets,
        keep_workspaces: opts.keep_workspaces,
        caches: opts.caches,
    };
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    let cancel = CancellationToken::new();
    let running = {
        let plan = plan.clone();
        let cancel = cancel.clone();
        tokio::spawn(async move { run(&plan, &backends, config, tx, cancel).await })
    };
    let trigger = opts
        .cancel_after_start_of
        .map(|name| plan.jobs.iter().position(|j| j.name == name).expect("job"));
    let mut events = Vec::new();
    let collect = async {
        while let Some(event) = rx.recv().await {
            // The fake echoes `+ cmd` from inside run_script: the script is running.
            if let (Some(t), RunEvent::JobLog { job, line }) = (trigger, &event)
                && *job == t
                && line.text.starts_with("+ ")
            {
                cancel.cancel();
            }
            events.push(event);
        }
    };
    tokio::time::timeout(Duration::from_secs(60), collect)
        .await
        .expect("the run finishes");
    let summary = running.await.expect("the run task");
    check_events(plan, &events);
    assert_eq!(
        fake.open_envs(),
        0,
        "every prepared environment was torn down"
    );
    Ran {
        summary,
        events,
        fake,
        run_dir,
    }
}

/// RunStarted first, RunFinished last, one JobFinished per job, and nothing about a job
/// after its JobFinished.
fn check_events(plan: &Plan, events: &[RunEvent]) {
    assert!(matches!(events.first(), Some(RunEvent::RunStarted { .. })));
    assert!(matches!(events.last(), Some(RunEvent::RunFinished { .. })));
    let mut finished = vec![false; plan.jobs.len()];
    for event in events {
        let job = match event {
            RunEvent::JobStarted { job, .. }
            | RunEvent::JobLog { job, .. }
            | RunEvent::ArtifactStored { job, .. } => *job,
            RunEvent::JobFinished { job, .. } => {
                assert!(!finished[*job], "one JobFinished per job");
                finished[*job] = true;
                continue;
            }
            _ => continue,
        };
        assert!(!finished[job], "event after JobFinished: {event:?}");
    }
    assert!(finished.iter().all(|f| *f), "every job finished");
}
