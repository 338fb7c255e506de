//! `gantry serve`: the CI server and its built-in executor in one process.
//!
//! The server (`gantry_server`) links no backend; this command gives the built-in
//! executor (`gantry_agent`) the same backends `gantry run` would choose, and connects
//! it to the server through the lease interface a remote agent uses. The process becomes
//! a child subreaper so that orphans of killed jobs are reaped here.
//!
//! Shutdown: the first SIGINT/SIGTERM stops taking new jobs, stops the running ones and
//! closes the server; their runs stay in the database and the jobs run again as a new
//! attempt at the next start. A second signal kills what is left and exits with 130.

use std::net::{SocketAddr, ToSocketAddrs as _};
use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context as _;
use gantry_backend::CancellationToken;
use gantry_server::{Server, ServerConfig, SmtpSettings, SmtpTls};

use crate::args::{ColorChoice, ServeArgs, SmtpTlsChoice};
use crate::error::{CliError, Exit};
use crate::executor;
use crate::paint::{self, Paint};
use crate::signals::Signals;

/// How long a clean shutdown waits for running jobs to be stopped and torn down.
const STOP_JOBS_FOR: Duration = Duration::from_secs(30);

/// How long one lease call of the built-in executor waits for work. In-process the wait
/// ends the moment a job is queued, so this only bounds how often an idle executor asks
/// again.
const BUILTIN_POLL_WAIT: Duration = Duration::from_secs(30);

/// Runs `gantry serve`.
pub fn serve(args: ServeArgs, color: ColorChoice) -> Result<Exit, CliError> {
    let config = config(&args)?;
    let capacity = match args.jobs {
        Some(n) => n,
        None => std::thread::available_parallelism()
            .map(|n| n.get() as u32)
            .unwrap_or(1),
    };
    init_logging(color);
    crate::memory::limit_arenas();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    runtime.block_on(run(args, config, capacity, Paint::stderr(color)))
}

async fn run(
    args: ServeArgs,
    config: ServerConfig,
    capacity: u32,
    paint: Paint,
) -> Result<Exit, CliError> {
    // Handlers first: a signal during startup must not kill the process half-way.
    let mut signals = Signals::install().context("cannot install signal handlers")?;
    tokio::spawn(crate::memory::trim_while_idle());
    let data = config.data_dir.clone();
    let database = config.database_url.clone();
    let server = Server::start(config)
        .await
        .map_err(|e| CliError::Failed(anyhow::Error::new(e)))?;

    // Orphans of jobs are re-parented to gantry and reaped; without it jobs still run
    // and are killed as process groups, so a failure is not fatal.
    let _ = gantry_backend_local::become_subreaper();

    let mut text = String::new();
    if let Some(token) = server.admin_token() {
        text.push_str(&format!(
            "{}\n  admin token (shown only this once; only its hash is kept): {token}\n  \
             use it with: export GANTRY_TOKEN={token}\n  lost it? `gantry token rotate --data {}{}` \
             makes a new one\n",
            paint.yellow("first start: an admin token was created"),
            data.display(),
            database
                .as_deref()
                .map(|d| format!(" --database {}", super::token::shown_url(d)))
                .unwrap_or_default()
        ));
    }

    let executor_stop = CancellationToken::new();
    let executor = if capacity > 0 {
        // Its jobs died with the previous process (killed, or the machine went down);
        // their processes may still run.
        super::agent::clean_up_earlier_run(&data.join("executor"), "the built-in executor", &paint)
            .await?;
        let chosen = executor::backends(args.backend).await?;
        for notice in &chosen.notices {
            text.push_str(&format!("{}\n", paint.yellow(notice)));
        }
        let kind = chosen.kind;
        text.push_str(&format!(
            "built-in executor: up to {capacity} job{} at once, backend={kind}\n",
            if capacity == 1 { "" } else { "s" }
        ));
        // Named `builtin`: the server expires its leases at every start, since they died
        // with the previous process.
        let settings = executor::Settings {
            name: gantry_server::server::BUILTIN_EXECUTOR.to_owned(),
            labels: executor::labels(kind, &Default::default()),
            capacity,
            work_dir: data.join("executor"),
            poll_wait: BUILTIN_POLL_WAIT,
        };
        Some(tokio::spawn(executor::run(
            server.job_source(),
            chosen.backends,
            settings,
            executor_stop.clone(),
        )))
    } else {
        text.push_str("built-in executor: off (--jobs 0); jobs wait for agents\n");
        None
    };
    text.push_str(&format!(
        "gantry serve: listening on http://{} (data in {})\n",
        server.addr(),
        data.display()
    ));
    paint::err(&text);

    let what = signals.next().await;
    paint::err(&format!(
        "{what}: stopping (running jobs are stopped and run again at the next start); \
         press Ctrl-C again to exit at once\n"
    ));
    // A second signal while stopping kills everything and exits.
    tokio::spawn(async move {
        let what = signals.next().await;
        crate::signals::kill_children();
        paint::err(&format!("{what} again: killed running jobs, exiting\n"));
        std::process::exit(130);
    });
    executor_stop.cancel();
    if let Some(executor) = executor {
        match tokio::time::timeout(STOP_JOBS_FOR, executor).await {
            Ok(Ok(Ok(()))) => {}
            Ok(Ok(Err(e))) => paint::err(&format!("warning: the built-in executor: {e}\n")),
            Ok(Err(e)) => paint::err(&format!("warning: the built-in executor stopped: {e}\n")),
            Err(_) => {
                paint::err("warning: jobs did not stop in time; killing them\n");
                crate::signals::kill_children();
            }
        }
    }
    server.shutdown().await;
    paint::err("gantry serve: stopped\n");
    Ok(Exit::Success)
}

/// The server's settings from the flags; every bad value is a usage error before
/// anything starts.
fn config(args: &ServeArgs) -> Result<ServerConfig, CliError> {
    let mut config = ServerConfig::new(absolute(&args.data)?);
    config.listen = listen_addr(&args.listen)?;
    config.database_url = args.database.clone();
    config.anonymous_read = args.anonymous_read;
    if let Some(text) = &args.poll_interval {
        let interval = gantry_pipeline::parse_duration(text)
            .map_err(|e| CliError::invalid(format!("error: --poll-interval {text}: {e}")))?;
        if interval.is_zero() {
            return Err(CliError::invalid(format!(
                "error: --poll-interval {text}: must be more than 0"
            )));
        }
        config.default_poll_interval = interval;
    }
    if let Some(text) = &args.lease_ttl {
        let ttl = gantry_pipeline::parse_duration(text)
            .map_err(|e| CliError::invalid(format!("error: --lease-ttl {text}: {e}")))?;
        if ttl < Duration::from_secs(1) {
            return Err(CliError::invalid(format!(
                "error: --lease-ttl {text}: must be at least 1s (executors heartbeat every \
                 third of it)"
            )));
        }
        config.lease_ttl = ttl;
    }
    if let Some(n) = args.max_attempts {
        config.max_attempts = n.get();
    }
    if let Some(text) = &args.max_artifact_size {
        config.max_artifact_bytes = parse_size(text)
            .map_err(|e| CliError::invalid(format!("error: --max-artifact-size {text}: {e}")))?;
    }
    if let Some(text) = &args.cache_max_size {
        config.cache_max_bytes = parse_size(text)
            .map_err(|e| CliError::invalid(format!("error: --cache-max-size {text}: {e}")))?;
    }
    if let Some(url) = &args.public_url {
        if !(url.starts_with("http://") || url.starts_with("https://")) {
            return Err(CliError::invalid(format!(
                "error: --public-url {url}: expected an http:// or https:// URL"
            )));
        }
        config.public_url = Some(url.clone());
    }
    if let Some(host) = &args.smtp_host {
        let Some(from) = args.smtp_from.clone() else {
            return Err(CliError::invalid(
                "error: --smtp-host needs --smtp-from (the sender address of notifications)",
            ));
        };
        let (tls, port) = match args.smtp_tls {
            SmtpTlsChoice::None => (SmtpTls::None, 25),
            SmtpTlsChoice::Starttls => (SmtpTls::Starttls, 587),
            SmtpTlsChoice::Tls => (SmtpTls::Tls, 465),
        };
        config.smtp = Some(SmtpSettings {
            host: host.clone(),
            port: args.smtp_port.unwrap_or(port),
            from,
            username: args.smtp_username.clone(),
            password: std::env::var("GANTRY_SMTP_PASSWORD").ok(),
            tls,
        });
    }
    Ok(config)
}

/// `512KiB`, `200MB`, `1GiB`, `1000` (bytes): binary units with `i`, decimal without.
fn parse_size(text: &str) -> Result<u64, String> {
    let t = text.trim();
    let digits = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
    let (number, unit) = t.split_at(digits);
    let number: u64 = number
        .parse()
        .map_err(|_| "expected a size such as 512KiB, 200MB or 1GiB".to_owned())?;
    let factor: u64 = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 1,
        "k" | "kb" => 1_000,
        "kib" => 1 << 10,
        "m" | "mb" => 1_000_000,
        "mib" => 1 << 20,
        "g" | "gb" => 1_000_000_000,
        "gib" => 1 << 30,
        other => {
            return Err(format!(
                "unknown unit \"{other}\" (use B, KB, KiB, MB, MiB, GB or GiB)"
            ));
        }
    };
    let bytes = number
        .checked_mul(factor)
        .ok_or_else(|| "too large".to_owned())?;
    if bytes == 0 {
        return Err("must be more than 0".to_owned());
    }
    Ok(bytes)
}

/// `HOST:PORT` (a name is resolved; the first address wins).
fn listen_addr(text: &str) -> Result<SocketAddr, CliError> {
    if let Ok(addr) = text.parse() {
        return Ok(addr);
    }
    text.to_socket_addrs()
        .ok()
        .and_then(|mut a| a.next())
        .ok_or_else(|| {
            CliError::invalid(format!(
                "error: --listen {text}: expected HOST:PORT, e.g. 127.0.0.1:8080 or 0.0.0.0:8080"
            ))
        })
}

/// The data directory as an absolute path: jobs and git run in other directories.
fn absolute(dir: &std::path::Path) -> Result<PathBuf, CliError> {
    if dir.is_absolute() {
        return Ok(dir.to_path_buf());
    }
    let cwd = std::env::current_dir().context("cannot read the current directory")?;
    Ok(cwd.join(dir))
}

/// The SQLite file of a data directory (as the server's default database URL names it).
pub fn sqlite_file(config: &ServerConfig) -> PathBuf {
    let url = config.database_url();
    let path = url
        .strip_prefix("sqlite://")
        .unwrap_or(&url)
        .split('?')
        .next()
        .unwrap_or_default()
        .to_owned();
    PathBuf::from(path)
}

/// Server logs on stderr: `GANTRY_LOG` (e.g. `debug`, `gantry_server=debug`), default
/// `info`.
pub fn init_logging(color: ColorChoice) {
    let filter = tracing_subscriber::EnvFilter::try_from_env("GANTRY_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(Paint::stderr(color).enabled())
        .with_target(false)
        .try_init();
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser as _;

    fn parse(argv: &[&str]) -> Result<ServerConfig, CliError> {
        let mut full = vec!["gantry", "serve", "--data", "/srv/gantry"];
        full.extend_from_slice(argv);
        let cli = crate::args::Cli::try_parse_from(full).expect("parses");
        let crate::args::Command::Serve(args) = cli.command else {
            panic!("not serve")
        };
        config(&args)
    }

    #[test]
    fn flags_become_config() {
        let c = parse(&[
            "--listen",
            "0.0.0.0:9000",
            "--poll-interval",
            "30s",
            "--anonymous-read",
            "--public-url",
            "https://ci.example.com",
            "--smtp-host",
            "mail",
            "--smtp-port",
            "2525",
            "--smtp-from",
            "ci@example.com",
        ])
        .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(c.listen.to_string(), "0.0.0.0:9000");
        assert_eq!(c.default_poll_interval, Duration::from_secs(30));
        assert!(c.anonymous_read);
        assert_eq!(c.public_url.as_deref(), Some("https://ci.example.com"));
        let smtp = c.smtp.expect("smtp");
        assert_eq!((smtp.host.as_str(), smtp.port), ("mail", 2525));
        assert_eq!(smtp.tls, SmtpTls::Starttls);
        let plain = parse(&[
            "--smtp-host",
            "localhost",
            "--smtp-from",
            "ci@x",
            "--smtp-tls",
            "none",
        ])
        .unwrap_or_else(|e| panic!("{e}"));
        let smtp = plain.smtp.expect("smtp");
        assert_eq!((smtp.port, smtp.tls), (25, SmtpTls::None));
        assert_eq!(
            sqlite_file(&ServerConfig::new("/srv/gantry")),
            PathBuf::from("/srv/gantry/gantry.sqlite")
        );
    }

    #[test]
    fn agent_flags_become_config() {
        let c = parse(&[
            "--lease-ttl",
            "3s",
            "--max-attempts",
            "5",
            "--max-artifact-size",
            "64KiB",
            "--cache-max-size",
            "2GiB",
        ])
        .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(c.lease_ttl, Duration::from_secs(3));
        assert_eq!(c.max_attempts, 5);
        assert_eq!(c.max_artifact_bytes, 64 * 1024);
        assert_eq!(c.cache_max_bytes, 2 << 30);
        assert_eq!(parse(&[]).expect("defaults").cache_max_bytes, 10 << 30);
    }

    #[test]
    fn sizes() {
        for (text, want) in [
            ("1000", Ok(1000)),
            ("512KiB", Ok(512 * 1024)),
            ("200MB", Ok(200_000_000)),
            ("1 GiB", Ok(1 << 30)),
            ("2g", Ok(2_000_000_000)),
            ("0", Err("must be more than 0")),
            (
                "12 parsecs",
                Err("unknown unit \"parsecs\" (use B, KB, KiB, MB, MiB, GB or GiB)"),
            ),
            ("lots", Err("expected a size such as 512KiB, 200MB or 1GiB")),
        ] {
            assert_eq!(parse_size(text), want.map_err(str::to_owned), "{text}");
        }
    }

    #[test]
    fn bad_flags_are_usage_errors() {
        for argv in [
            &["--listen", "nowhere"][..],
            &["--poll-interval", "soon"],
            &["--poll-interval", "0s"],
            &["--public-url", "ci.example.com"],
            &["--smtp-host", "mail"],
            &["--lease-ttl", "500ms"],
            &["--lease-ttl", "soon"],
            &["--max-artifact-size", "1TB?"],
            &["--cache-max-size", "0"],
        ] {
            let err = parse(argv)
                .err()
                .unwrap_or_else(|| panic!("{argv:?} accepted"));
            assert_eq!(err.code(), 2, "{argv:?}");
        }
    }
}
