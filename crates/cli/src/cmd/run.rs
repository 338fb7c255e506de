//! `gantry run [DIR]`: plan the pipeline of a working tree, run it with the engine on a
//! backend, render the events, and keep logs, artifacts and a summary under
//! `DIR/.gantry/runs/<n>/`; jobs' caches live in `DIR/.gantry/cache/` (unless
//! `--no-cache`).
//!
//! Everything that can be wrong with the input (the file, `--param`, `--job`, secrets) is
//! checked before the run directory is created: bad input changes nothing.

use std::collections::BTreeMap;
use std::io::IsTerminal;
use std::path::PathBuf;
use std::sync::Arc;

use anyhow::Context as _;
use gantry_backend::CancellationToken;
use gantry_engine::cache::{CacheStore, DirCaches};
use gantry_engine::{Backends, RunConfig, RunEvent, RunStatus, Source};
use gantry_pipeline::{EnvValue, Event, Plan, PlanContext};
use time::UtcOffset;

use crate::args::{ColorChoice, RunArgs};
use crate::backends;
use crate::discover;
use crate::error::{CliError, Exit};
use crate::inputs;
use crate::logs::LogFiles;
use crate::mask::Masker;
use crate::paint::Paint;
use crate::render::format::{SummaryInfo, summary};
use crate::render::{Live, Plain, Reporter};
use crate::run_dir::{self, RunDir};
use crate::signals::Signals;
use crate::state::RunState;
use crate::summary::{self as summary_json, RunFacts};

/// Runs `gantry run`.
pub fn run(args: RunArgs, color: ColorChoice, offset: UtcOffset) -> Result<Exit, CliError> {
    let paint = Paint::stderr(color);
    let dir = args.dir.clone().unwrap_or_else(|| PathBuf::from("."));
    if !dir.is_dir() {
        return Err(CliError::invalid(format!(
            "error: {} is not a directory",
            dir.display()
        )));
    }
    let file = discover::resolve(args.file.as_deref(), &dir)?;
    let spec = super::load(&file, paint)?;

    let params = inputs::parse_pairs("--param", &args.params)?;
    super::check_declared(spec.params().iter().map(|p| p.name.as_str()), &params)?;
    let secrets = inputs::secrets(&args.secrets, &args.secrets_file)?;

    let source = Source::from_dir(&dir)
        .with_context(|| format!("cannot read the working tree {}", dir.display()))?;
    let info = source.info().clone();
    // A tag build is not a branch build: --tag alone clears the branch.
    let branch = match (&args.branch, &args.tag) {
        (Some(b), _) => Some(b.clone()),
        (None, Some(_)) => None,
        (None, None) => info.branch.clone(),
    };
    let event = Event::parse(&args.event).unwrap_or(Event::Manual);
    let run_id = run_dir::new_run_id();
    let plan_for = |number: u64| -> Result<Plan, CliError> {
        let ctx = PlanContext {
            event: Some(event),
            branch: branch.clone(),
            tag: args.tag.clone(),
            commit: info.commit.clone(),
            changed: None,
            params: params.clone(),
            run_id: run_id.clone(),
            run_number: number,
        };
        let plan = spec
            .plan(&ctx)
            .map_err(|d| super::invalid_pipeline(&d, paint))?;
        select(plan, &args.jobs)
    };

    // Plan with the number this run will most likely get, so that every input error is
    // reported before anything is created; re-plan in the rare case another run took it.
    let runs = run_dir::runs_root(&dir);
    let predicted = run_dir::predict_next(&runs);
    let mut plan = plan_for(predicted)?;
    check_secrets(&plan, &secrets)?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    let needs_containers = plan
        .jobs
        .iter()
        .any(|j| j.excluded.is_none() && !j.container_needs().is_empty());
    let chosen = runtime.block_on(backends::choose(args.backend, needs_containers))?;
    let backends = chosen.backends;

    // Orphans of jobs are then re-parented to gantry and reaped. Without it jobs still
    // run and are still killed as process groups, so a failure here is not fatal.
    let _ = gantry_backend_local::become_subreaper();

    let run_dir = RunDir::create(&runs)?;
    if run_dir.number != predicted {
        plan = plan_for(run_dir.number)?;
    }

    let facts = RunFacts {
        number: run_dir.number,
        event: event.as_str().to_owned(),
        branch,
        tag: args.tag.clone(),
        commit: info.commit.clone(),
        params: plan.params.clone(),
    };
    let config = RunConfig {
        run_id,
        run_dir: run_dir.path.clone(),
        source,
        parallelism: args
            .parallelism
            .map(|n| n.get())
            .or_else(|| std::thread::available_parallelism().ok().map(|n| n.get()))
            .unwrap_or(1),
        fail_fast: args.fail_fast,
        secrets: secrets.clone(),
        keep_workspaces: args.keep_workspaces,
        caches: (!args.no_cache).then(|| {
            Arc::new(DirCaches::new(super::cache::cache_root(&dir))) as Arc<dyn CacheStore>
        }),
    };

    let live = std::io::stderr().is_terminal() && std::env::var("TERM").is_ok_and(|t| t != "dumb");
    let reporter = if live {
        Reporter::Live(Live::new(paint))
    } else {
        // One write per line: CI log collectors see whole lines, never fragments.
        Reporter::Plain(Plain::new(
            Box::new(std::io::LineWriter::new(std::io::stderr())),
            paint,
        ))
    };
    let mut session = Session {
        reporter,
        logs: LogFiles::new(&run_dir.path.join("logs"), offset),
        masker: Masker::new(&secrets),
        state: RunState::default(),
        header: String::new(),
        number: run_dir.number,
        dir: super::shown(&run_dir.path),
    };
    for notice in &chosen.notices {
        session.reporter.notice(&paint.yellow(notice));
    }
    let result = runtime.block_on(drive(plan, backends, config, session));
    let mut session = match result {
        Ok(session) => session,
        Err(err) => {
            run_dir.finish();
            return Err(err);
        }
    };

    let json = summary_json::to_json(&session.state, &facts, session.logs.names());
    if let Err(e) = summary_json::write(&run_dir.path, &json) {
        session
            .reporter
            .notice(&paint.yellow(format!("warning: {e:#}")));
    }
    if let Some(e) = session.logs.error() {
        session
            .reporter
            .notice(&paint.yellow(format!("warning: {e}")));
    }
    run_dir.finish();
    let pruned = run_dir::prune(&runs, args.keep, run_dir.number);
    let info = SummaryInfo {
        number: run_dir.number,
        dir: Some(super::shown(&run_dir.path)),
        pruned,
    };
    session
        .reporter
        .finish(&summary(&session.state, &info, paint));

    Ok(match session.state.status {
        Some(RunStatus::Succeeded) => Exit::Success,
        Some(RunStatus::Failed) | None => Exit::Failure,
        Some(RunStatus::Cancelled) => Exit::Cancelled,
    })
}

/// Narrows the plan to `--job` selections and what they need; an unknown name gets the
/// list of jobs and a suggestion.
fn select(plan: Plan, wanted: &[String]) -> Result<Plan, CliError> {
    if wanted.is_empty() {
        return Ok(plan);
    }
    plan.select(wanted).map_err(|e| {
        let mut msg = String::new();
        for (name, suggestion) in &e.unknown {
            msg.push_str(&format!(
                "error: --job {name}: the pipeline has no job \"{name}\"\n"
            ));
            if let Some(s) = suggestion {
                msg.push_str(&format!("  help: did you mean \"{s}\"?\n"));
            }
        }
        msg.push_str(&format!("  note: jobs: {}", e.jobs.join(", ")));
        CliError::Invalid(msg)
    })
}

/// Every secret a job that may run refers to (`env: { X: { secret: NAME } }`) must be
/// given: finding out when the job starts would waste the run up to there.
fn check_secrets(plan: &Plan, secrets: &BTreeMap<String, String>) -> Result<(), CliError> {
    let mut msg = String::new();
    for job in plan.jobs.iter().filter(|j| j.excluded.is_none()) {
        let envs = job
            .env
            .iter()
            .chain(job.services.iter().flat_map(|s| s.env.iter()));
        let mut missing: Vec<&str> = envs
            .filter_map(|(_, value)| match value {
                EnvValue::Secret(name) if !secrets.contains_key(name) => Some(name.as_str()),
                _ => None,
            })
            .collect();
        missing.sort_unstable();
        missing.dedup();
        for name in missing {
            msg.push_str(&format!(
                "error: job \"{}\" needs the secret \"{name}\", which was not given\n",
                job.name
            ));
        }
    }
    if msg.is_empty() {
        return Ok(());
    }
    msg.push_str(
        "  help: give secrets with --secret NAME=VALUE, --secret NAME (from the environment) \
         or --secrets-file FILE",
    );
    Err(CliError::Invalid(msg))
}

/// What the event loop owns.
struct Session {
    reporter: Reporter,
    logs: LogFiles,
    masker: Masker,
    state: RunState,
    header: String,
    number: u64,
    /// The run directory as shown to the user.
    dir: String,
}

impl Session {
    fn handle(&mut self, mut event: RunEvent) {
        self.masker.event(&mut event);
        self.state.apply(&event);
        if let RunEvent::RunStarted { pipeline, jobs, .. } = &event {
            self.header = format!(
                "▶ {pipeline}: run {}, {} job{}",
                self.number,
                jobs.len(),
                if jobs.len() == 1 { "" } else { "s" }
            );
        }
        self.logs.event(&event);
        if let (RunEvent::RunStarted { .. }, Reporter::Live(live)) = (&event, &mut self.reporter) {
            live.set_log_paths(
                self.logs
                    .names()
                    .iter()
                    .map(|n| format!("{}/logs/{n}", self.dir))
                    .collect(),
            );
        }
        self.reporter.event(&self.state, &event, &self.header);
    }
}

/// Runs the engine and consumes its events until it is done.
async fn drive(
    plan: Plan,
    backends: Backends,
    config: RunConfig,
    mut session: Session,
) -> Result<Session, CliError> {
    let signals = Signals::install().context("cannot install signal handlers")?;
    let cancel = CancellationToken::new();
    let (notice_tx, mut notices) = tokio::sync::mpsc::unbounded_channel();
    signals.watch(cancel.clone(), notice_tx);

    let (tx, mut events) = tokio::sync::mpsc::unbounded_channel();
    let engine = tokio::spawn({
        let cancel = cancel.clone();
        async move { gantry_engine::run(&plan, &backends, config, tx, cancel).await }
    });

    loop {
        tokio::select! {
            // Notices first: "cancelling" must come before the jobs it cancels.
            biased;
            Some(text) = notices.recv() => session.reporter.notice(&text),
            event = events.recv() => {
                let Some(event) = event else { break };
                session.handle(event);
                // Drain what is queued (notices still first), then flush the logs while
                // the stream is quiet.
                loop {
                    while let Ok(text) = notices.try_recv() {
                        session.reporter.notice(&text);
                    }
                    match events.try_recv() {
                        Ok(event) => session.handle(event),
                        Err(_) => break,
                    }
                }
                session.logs.flush();
            }
        }
    }
    session.logs.flush();
    match engine.await {
        Ok(_summary) => Ok(session),
        Err(e) => Err(CliError::Failed(anyhow::anyhow!(
            "the engine stopped unexpectedly: {e}"
        ))),
    }
}
