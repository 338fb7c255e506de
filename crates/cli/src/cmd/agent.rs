//! `gantry agent`: runs a server's jobs on this machine.
//!
//! The executor loop is the one `gantry serve` runs in-process ([`crate::executor`]),
//! here over HTTP ([`gantry_agent::HttpJobSource`]) and watched ([`crate::watch`]) so
//! that the operator sees what the agent does. In order:
//!
//! 1. settings: the name (default: the host name), labels (`--label` plus the automatic
//!    backend/os/arch), the work directory (default: one per name under the user's cache
//!    directory), locked so that two agents never share one;
//! 2. leftovers of an earlier run of this agent (killed, so it could not clean up) are
//!    removed: the processes its host jobs left running (found by their workspace inside
//!    this work directory, see [`gantry_backend_local::stop_leftovers`]), its job
//!    directories, and what dead gantry processes left in Docker (the sweep every Docker
//!    user runs, which spares the resources of live ones, other agents included);
//! 3. the handshake, retried with a growing pause while the server cannot be reached; a
//!    bad token or another protocol version ends the agent with an error. It names the
//!    leases the earlier run still held ([`gantry_agent::earlier_leases`]), which the
//!    server expires at once rather than after their time to live;
//! 4. the loop, until a signal: the first drains the executor (no new jobs; the running
//!    ones finish and report), the second cancels them (unreported, so the server runs
//!    them again elsewhere), the third exits at once.

use std::collections::BTreeMap;
use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use gantry_agent::{ExecutorError, HttpJobSource};
use gantry_backend::CancellationToken;
use gantry_protocol::{ExecutorInfo, LeaseError, ServerHello};

use crate::args::{AgentArgs, ColorChoice};
use crate::error::{CliError, Exit};
use crate::executor::{self, AUTOMATIC_LABELS};
use crate::paint::{self, Paint};
use crate::signals::Signals;
use crate::watch::Watched;

/// How long one lease request waits for work on the server (the server caps it).
const POLL_WAIT: Duration = Duration::from_secs(25);

/// Longest pause between two attempts to reach a server that does not answer.
const MAX_RETRY_PAUSE: Duration = Duration::from_secs(30);

/// How long stopping waits for cancelled jobs to be killed and torn down.
const STOP_JOBS_FOR: Duration = Duration::from_secs(30);

/// How long the processes an earlier run left get after SIGTERM, before SIGKILL (the
/// local backend's own grace).
const LEFTOVER_GRACE: Duration = Duration::from_secs(2);

/// The variable the engine sets, in every host job's environment, to the job's workspace
/// (`WORK_DIR/jobs/…/work/…` on an agent): it tells this agent's jobs from others'.
const WORKSPACE_VAR: &str = "GANTRY_WORKSPACE";

/// What `gantry agent` was told, checked.
#[derive(Debug)]
struct Settings {
    server: String,
    name: String,
    /// `--label` only; the automatic ones are added once the backend is known.
    extra_labels: BTreeMap<String, String>,
    work_dir: PathBuf,
}

/// Runs `gantry agent`.
pub fn agent(args: AgentArgs, color: ColorChoice) -> Result<Exit, CliError> {
    let settings = settings(&args)?;
    super::serve::init_logging(color);
    crate::memory::limit_arenas();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    runtime.block_on(run(args, settings, Paint::stderr(color)))
}

async fn run(args: AgentArgs, settings: Settings, paint: Paint) -> Result<Exit, CliError> {
    // Handlers first: a signal during startup must not kill the process half-way.
    let mut signals = Signals::install().context("cannot install signal handlers")?;
    tokio::spawn(crate::memory::trim_while_idle());
    let name = settings.name.clone();
    let _lock = lock_work_dir(&settings.work_dir, &name)?;
    clean_up_earlier_run(&settings.work_dir, &format!("agent {name}"), &paint).await?;
    // Orphans of jobs are re-parented to the agent and reaped; without it jobs still run
    // and are killed as process groups, so a failure is not fatal.
    let _ = gantry_backend_local::become_subreaper();
    let chosen = executor::backends(args.backend).await?;
    for notice in &chosen.notices {
        paint::err(&format!("{}\n", paint.yellow(notice)));
    }
    let labels = executor::labels(chosen.kind, &settings.extra_labels);
    let exec = executor::Settings {
        name: name.clone(),
        labels,
        capacity: args.jobs.get(),
        work_dir: settings.work_dir.clone(),
        poll_wait: POLL_WAIT,
    };
    let info = exec.info();
    let source = HttpJobSource::new(&settings.server, args.token.clone())
        .map_err(|e| CliError::invalid(format!("error: --server {}: {e}", settings.server)))?;
    source.abandon_at_hello(gantry_agent::earlier_leases(&settings.work_dir));

    let hello = tokio::select! {
        hello = connect(&source, &info, paint) => hello?,
        what = signals.next() => {
            paint::err(&format!("{what}: stopped before connecting\n"));
            return Ok(Exit::Cancelled);
        }
    };
    paint::err(&format!(
        "{}\n",
        connected_line(&info, source.server_url(), &hello)
    ));
    if hello.expired_leases > 0 {
        let n = hello.expired_leases;
        paint::err(&format!(
            "the server gave up {n} job{} an earlier run of agent {name} left unfinished; \
             {} again as a new attempt\n",
            if n == 1 { "" } else { "s" },
            if n == 1 { "it runs" } else { "they run" }
        ));
    }

    let watched = Arc::new(Watched::new(Arc::new(source)));
    let stop = CancellationToken::new();
    let executor = executor::new(
        watched as Arc<dyn gantry_protocol::JobSource>,
        chosen.backends,
        exec,
    );
    let handle = executor.handle();
    let mut running = tokio::spawn({
        let stop = stop.clone();
        async move { executor.run(stop).await }
    });

    let what = tokio::select! {
        ended = &mut running => return ended_by_itself(ended, &name),
        what = signals.next() => what,
    };
    handle.drain();
    let jobs = handle.running();
    if jobs > 0 {
        paint::err(&format!(
            "{what}: taking no new jobs; waiting for {jobs} running job{} to finish (press \
             Ctrl-C again to cancel {})\n",
            if jobs == 1 { "" } else { "s" },
            if jobs == 1 { "it" } else { "them" }
        ));
    } else {
        paint::err(&format!("{what}: stopping\n"));
    }
    tokio::select! {
        // Drained: the running jobs are over and reported.
        ended = &mut running => {
            if let Ok(Ok(())) = ended {
                paint::err(&format!("agent {name} stopped\n"));
            }
            return ended_by_itself(ended, &name);
        }
        what = signals.next() => {
            paint::err(&format!(
                "{what} again: cancelling the running jobs (the server runs them again \
                 elsewhere); press Ctrl-C again to exit at once\n"
            ));
        }
    }
    // A further signal while stopping kills everything and exits.
    tokio::spawn(async move {
        let what = signals.next().await;
        crate::signals::kill_children();
        paint::err(&format!("{what} again: killed running jobs, exiting\n"));
        std::process::exit(130);
    });
    stop.cancel();
    match tokio::time::timeout(STOP_JOBS_FOR, running).await {
        Ok(Ok(Ok(()))) => {}
        Ok(Ok(Err(e))) => paint::err(&format!("warning: {}\n", chain(&e))),
        Ok(Err(e)) => paint::err(&format!("warning: the executor stopped: {e}\n")),
        Err(_) => {
            paint::err("warning: jobs did not stop in time; killing them\n");
            crate::signals::kill_children();
        }
    }
    paint::err(&format!("agent {name} stopped\n"));
    Ok(Exit::Cancelled)
}

/// The handshake, retried with a growing pause while the server cannot be reached.
async fn connect(
    source: &HttpJobSource,
    info: &ExecutorInfo,
    paint: Paint,
) -> Result<ServerHello, CliError> {
    let url = source.server_url().to_owned();
    let mut pause = Duration::from_secs(1);
    loop {
        match source.hello(info).await {
            Ok(hello) => return Ok(hello),
            Err(LeaseError::Unavailable(why)) => {
                paint::err(&format!(
                    "{}\n",
                    paint.yellow(format!(
                        "cannot reach the gantry server at {url} ({why}); retrying in {}s",
                        pause.as_secs()
                    ))
                ));
                tokio::time::sleep(pause).await;
                pause = (pause * 2).min(MAX_RETRY_PAUSE);
            }
            Err(e) => return Err(refused(&url, &info.name, &e)),
        }
    }
}

/// `agent build-2 connected to http://ci:8080 (protocol 1, labels backend=local, …, 4 jobs)`.
fn connected_line(info: &ExecutorInfo, url: &str, hello: &ServerHello) -> String {
    format!(
        "agent {} connected to {url} (protocol {}, labels {}, {} job{})",
        info.name,
        hello.protocol,
        executor::shown_labels(&info.labels),
        info.capacity,
        if info.capacity == 1 { "" } else { "s" }
    )
}

/// A refusal by the server, worded with what to do.
fn refused(url: &str, name: &str, e: &LeaseError) -> CliError {
    let help = match e {
        LeaseError::Unauthorized(_) => {
            "\n  help: the token (--token or GANTRY_AGENT_TOKEN) is wrong or was revoked; an \
             admin makes a new one with `gantry agent-token create NAME`"
        }
        LeaseError::Incompatible { .. } => {
            "\n  help: run `gantry agent` of the same gantry version as the server"
        }
        _ => "",
    };
    CliError::Failed(anyhow::anyhow!("{url} refused agent {name}: {e}{help}"))
}

/// The executor ended without being asked to: the server refused it, or its work
/// directory failed.
fn ended_by_itself(
    ended: Result<Result<(), ExecutorError>, tokio::task::JoinError>,
    name: &str,
) -> Result<Exit, CliError> {
    match ended {
        Ok(Ok(())) => Ok(Exit::Success),
        Ok(Err(ExecutorError::Refused(e))) => {
            let help = match &e {
                LeaseError::Unauthorized(_) => {
                    "\n  help: the agent's token was revoked or is wrong; its jobs run again \
                     elsewhere. Start the agent with a valid token (`gantry agent-token \
                     create NAME`)"
                }
                _ => "",
            };
            Err(CliError::Failed(anyhow::anyhow!(
                "the server refused agent {name}: {e}{help}"
            )))
        }
        Ok(Err(e)) => Err(CliError::Failed(anyhow::anyhow!("{}", chain(&e)))),
        Err(e) => Err(CliError::Failed(anyhow::anyhow!(
            "the executor stopped: {e}"
        ))),
    }
}

/// `a: b: c` for an error and its sources.
fn chain(err: &(dyn std::error::Error + 'static)) -> String {
    let mut text = err.to_string();
    let mut source = err.source();
    while let Some(s) = source {
        text.push_str(": ");
        text.push_str(&s.to_string());
        source = s.source();
    }
    text
}

/// The flags, checked; every bad value is a usage error before anything starts.
fn settings(args: &AgentArgs) -> Result<Settings, CliError> {
    let mut server = args.server.trim().to_owned();
    if server.is_empty() {
        return Err(CliError::invalid(
            "error: --server (or GANTRY_SERVER) is empty\n  help: the URL of a `gantry serve`, \
             e.g. --server http://ci.example.com:8080",
        ));
    }
    if !server.contains("://") {
        server = format!("http://{server}");
    }
    if args.token.trim().is_empty() {
        return Err(CliError::invalid(
            "error: --token (or GANTRY_AGENT_TOKEN) is empty\n  help: an admin makes one with \
             `gantry agent-token create NAME`",
        ));
    }
    let name = match &args.name {
        Some(name) => name.clone(),
        None => host_name().ok_or_else(|| {
            CliError::invalid("error: cannot read this machine's host name; give --name NAME")
        })?,
    };
    if !valid_name(&name) {
        return Err(CliError::invalid(format!(
            "error: {} {name:?} is not a valid agent name: use letters, digits, '-', '_' and \
             '.' (not first), at most 64{}",
            if args.name.is_some() {
                "--name"
            } else {
                "the host name"
            },
            if args.name.is_some() {
                ""
            } else {
                "\n  help: give --name NAME"
            }
        )));
    }
    let extra_labels = parse_labels(&args.labels)?;
    let work_dir = match &args.work_dir {
        Some(dir) => absolute(dir)?,
        None => default_work_dir(&name).ok_or_else(|| {
            CliError::invalid(
                "error: neither XDG_CACHE_HOME nor HOME is set, so there is no default work \
                 directory; give --work-dir DIR",
            )
        })?,
    };
    Ok(Settings {
        server,
        name,
        extra_labels,
        work_dir,
    })
}

/// `KEY=VALUE` pairs; the automatic labels and duplicates are refused.
fn parse_labels(given: &[String]) -> Result<BTreeMap<String, String>, CliError> {
    let mut labels = BTreeMap::new();
    for pair in given {
        let Some((key, value)) = pair.split_once('=') else {
            return Err(CliError::invalid(format!(
                "error: --label {pair}: expected KEY=VALUE, e.g. --label pool=gpu"
            )));
        };
        let (key, value) = (key.trim(), value.trim());
        let ok = |s: &str| {
            !s.is_empty()
                && s.len() <= 64
                && s.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'/'))
        };
        if !ok(key) || !ok(value) {
            return Err(CliError::invalid(format!(
                "error: --label {pair}: keys and values are letters, digits, '-', '_', '.' \
                 and '/', at most 64 each"
            )));
        }
        if AUTOMATIC_LABELS.contains(&key) {
            return Err(CliError::invalid(format!(
                "error: --label {pair}: \"{key}\" is set by the agent itself ({}); choose \
                 another key",
                AUTOMATIC_LABELS.join(", ")
            )));
        }
        if labels.insert(key.to_owned(), value.to_owned()).is_some() {
            return Err(CliError::invalid(format!(
                "error: --label {key} is given twice"
            )));
        }
    }
    Ok(labels)
}

/// Agent names: as token names on the server, so a name is usable in URLs and paths.
fn valid_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 64
        && !name.starts_with('.')
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
}

/// This machine's host name, without a domain.
fn host_name() -> Option<String> {
    let full = nix::unistd::gethostname().ok()?.into_string().ok()?;
    let short = full.split('.').next().unwrap_or(&full).trim().to_owned();
    (!short.is_empty()).then_some(short)
}

/// `$XDG_CACHE_HOME/gantry/agents/NAME`, else `~/.cache/gantry/agents/NAME`: mirrors and
/// job directories can always be made again, which is what a cache directory is for.
fn default_work_dir(name: &str) -> Option<PathBuf> {
    let var = |k: &str| {
        std::env::var_os(k)
            .filter(|v| !v.is_empty())
            .map(PathBuf::from)
            .filter(|p| p.is_absolute())
    };
    let cache = var("XDG_CACHE_HOME").or_else(|| var("HOME").map(|h| h.join(".cache")))?;
    Some(cache.join("gantry").join("agents").join(name))
}

fn absolute(dir: &Path) -> Result<PathBuf, CliError> {
    if dir.is_absolute() {
        return Ok(dir.to_path_buf());
    }
    let cwd = std::env::current_dir().context("cannot read the current directory")?;
    Ok(cwd.join(dir))
}

/// Takes the work directory's lock file for the life of the agent: two agents in one
/// directory would remove each other's jobs at start.
fn lock_work_dir(dir: &Path, name: &str) -> Result<nix::fcntl::Flock<File>, CliError> {
    std::fs::create_dir_all(dir)
        .with_context(|| format!("cannot create the work directory {}", dir.display()))?;
    let path = dir.join("agent.lock");
    let file = File::options()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .with_context(|| format!("cannot open {}", path.display()))?;
    nix::fcntl::Flock::lock(file, nix::fcntl::FlockArg::LockExclusiveNonblock).map_err(
        |(_, errno)| {
            if errno == nix::errno::Errno::EWOULDBLOCK {
                CliError::Failed(anyhow::anyhow!(
                    "another agent is running in {} (its lock file {} is taken)\n  help: give \
                     each agent on a machine its own --name (or --work-dir); agent {name} may \
                     already be running",
                    dir.display(),
                    path.display()
                ))
            } else {
                CliError::Failed(anyhow::anyhow!("cannot lock {}: {errno}", path.display()))
            }
        },
    )
}

/// Before an executor starts on `work_dir`: stops the processes and removes the job
/// directories that an earlier run of it (`who`: "agent a1", "the built-in executor") left
/// when it was killed, and says what it did.
pub(crate) async fn clean_up_earlier_run(
    work_dir: &Path,
    who: &str,
    paint: &Paint,
) -> Result<(), CliError> {
    // Processes first: they may still be writing into the job directories.
    let leftovers = stop_leftover_processes(work_dir).await;
    if leftovers.stopped > 0 {
        paint::err(&format!(
            "stopped {} process{} that the jobs of an earlier run of {who} left running\n",
            leftovers.stopped,
            if leftovers.stopped == 1 { "" } else { "es" },
        ));
    }
    if leftovers.survivors > 0 {
        paint::err(&format!(
            "{}\n",
            paint.yellow(format!(
                "warning: {} process{} left by an earlier run of {who} did not exit \
                 after SIGKILL",
                leftovers.survivors,
                if leftovers.survivors == 1 { "" } else { "es" },
            ))
        ));
    }
    let swept = sweep_job_dirs(work_dir)?;
    if swept > 0 {
        paint::err(&format!(
            "removed {swept} job director{} left by an earlier run of {who} in {}\n",
            if swept == 1 { "y" } else { "ies" },
            work_dir.display()
        ));
    }
    Ok(())
}

/// Stops the processes the host jobs of an earlier run of this agent left running (it was
/// killed while they ran: their leases expire, or are given up at hello, and the server
/// runs them elsewhere). Only processes whose workspace lies in this work directory are
/// touched: the lock file makes sure no job of this directory runs legitimately now, and
/// other agents on this machine have other directories.
async fn stop_leftover_processes(work_dir: &Path) -> gantry_backend_local::Leftovers {
    let jobs = work_dir.join("jobs");
    tokio::task::spawn_blocking(move || {
        gantry_backend_local::stop_leftovers(WORKSPACE_VAR, &jobs, LEFTOVER_GRACE)
    })
    .await
    .unwrap_or_default()
}

/// Removes the job directories an earlier run of this agent left (it was killed while
/// they ran: their leases expired and the server ran the jobs elsewhere); how many.
fn sweep_job_dirs(work_dir: &Path) -> Result<usize, CliError> {
    let jobs = work_dir.join("jobs");
    let entries = match std::fs::read_dir(&jobs) {
        Ok(entries) => entries,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(0),
        Err(e) => {
            return Err(CliError::Failed(
                anyhow::Error::new(e).context(format!("cannot read {}", jobs.display())),
            ));
        }
    };
    let mut removed = 0;
    for entry in entries {
        let path = entry
            .with_context(|| format!("cannot read {}", jobs.display()))?
            .path();
        gantry_engine::workspace::remove(&path)
            .with_context(|| format!("cannot remove the leftover {}", path.display()))?;
        removed += 1;
    }
    Ok(removed)
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser as _;

    fn parse(argv: &[&str]) -> Result<Settings, CliError> {
        let mut full = vec!["gantry", "agent", "--server", "ci:8080", "--token", "t"];
        full.extend_from_slice(argv);
        let cli = crate::args::Cli::try_parse_from(full).expect("parses");
        let crate::args::Command::Agent(args) = cli.command else {
            panic!("not agent")
        };
        settings(&args)
    }

    #[test]
    fn flags_become_settings() {
        let s = parse(&[
            "--name",
            "build-2",
            "--label",
            "pool=gpu",
            "--label",
            "zone = eu/west",
            "--work-dir",
            "/srv/agent",
        ])
        .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(s.server, "http://ci:8080");
        assert_eq!(s.name, "build-2");
        assert_eq!(
            s.extra_labels,
            [("pool", "gpu"), ("zone", "eu/west")]
                .into_iter()
                .map(|(k, v)| (k.to_owned(), v.to_owned()))
                .collect::<BTreeMap<_, _>>()
        );
        assert_eq!(s.work_dir, PathBuf::from("/srv/agent"));
        let s = parse(&["--name", "x"]).unwrap_or_else(|e| panic!("{e}"));
        assert!(
            s.work_dir.ends_with("gantry/agents/x"),
            "{}",
            s.work_dir.display()
        );
    }

    #[test]
    fn bad_flags_are_usage_errors() {
        for (argv, want) in [
            (&["--label", "pool"][..], "expected KEY=VALUE"),
            (&["--label", "backend=docker"], "set by the agent itself"),
            (&["--label", "a=1", "--label", "a=2"], "given twice"),
            (&["--label", "a b=1"], "keys and values are"),
            (&["--name", "../x"], "not a valid agent name"),
            (&["--name", ""], "not a valid agent name"),
        ] {
            let err = parse(argv)
                .err()
                .unwrap_or_else(|| panic!("{argv:?} accepted"));
            assert_eq!(err.code(), 2, "{argv:?}");
            assert!(err.to_string().contains(want), "{argv:?}: {err}");
        }
    }

    #[test]
    fn the_connected_line() {
        let info = ExecutorInfo {
            name: "build-2".into(),
            labels: executor::labels("docker", &parse_labels(&["pool=gpu".into()]).expect("ok")),
            capacity: 4,
            protocol: 1,
        };
        let hello = ServerHello {
            protocol: 1,
            server_version: "0.1.0".into(),
            lease_ttl_secs: 30,
            max_lease_wait_ms: 30_000,
            max_artifact_bytes: 1 << 30,
            max_log_batch_bytes: 1 << 20,
            expired_leases: 0,
        };
        assert_eq!(
            connected_line(&info, "http://ci:8080", &hello),
            format!(
                "agent build-2 connected to http://ci:8080 (protocol 1, labels backend=docker, \
                 os={}, arch={}, pool=gpu, 4 jobs)",
                std::env::consts::OS,
                std::env::consts::ARCH
            )
        );
    }

    #[test]
    fn refusals_say_what_to_do() {
        let check = |e: LeaseError, want: &[&str]| {
            let err = refused("http://ci:8080", "build-2", &e);
            assert_eq!(err.code(), 1);
            let text = err.to_string();
            for w in want {
                assert!(text.contains(w), "{text}");
            }
        };
        check(
            LeaseError::Unauthorized("invalid or revoked token".into()),
            &[
                "http://ci:8080 refused agent build-2: not authorized: invalid or revoked token",
                "gantry agent-token create NAME",
            ],
        );
        check(
            LeaseError::incompatible(2),
            &[
                "agent speaks protocol 2; this server speaks protocol 1",
                "run `gantry agent` of the same gantry version",
            ],
        );
        check(
            LeaseError::Invalid("no such route".into()),
            &["refused agent build-2: invalid request: no such route"],
        );
    }

    #[test]
    fn leftover_job_dirs_are_swept() {
        let dir = tempfile::tempdir().expect("tempdir");
        assert_eq!(sweep_job_dirs(dir.path()).expect("sweep"), 0);
        let job = dir.path().join("jobs/12-build-1-1/src");
        std::fs::create_dir_all(&job).expect("mkdir");
        std::fs::write(job.join("file"), "x").expect("write");
        std::fs::create_dir_all(dir.path().join("jobs/13-test-2-2")).expect("mkdir");
        std::fs::create_dir_all(dir.path().join("git/mirror")).expect("mkdir");
        assert_eq!(sweep_job_dirs(dir.path()).expect("sweep"), 2);
        assert!(
            std::fs::read_dir(dir.path().join("jobs"))
                .expect("jobs")
                .next()
                .is_none()
        );
        assert!(dir.path().join("git/mirror").exists(), "mirrors are kept");
    }

    #[test]
    fn one_agent_per_work_dir() {
        let dir = tempfile::tempdir().expect("tempdir");
        let first = lock_work_dir(dir.path(), "a").expect("first lock");
        let err = lock_work_dir(dir.path(), "a").expect_err("second lock");
        assert!(
            err.to_string().contains("another agent is running in"),
            "{err}"
        );
        drop(first);
        lock_work_dir(dir.path(), "a").expect("free again");
    }
}
