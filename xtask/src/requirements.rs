//! What the test suite needs on the machine, and how to get it on a fresh Debian machine
//! where we are root and only package registries are reachable.
//!
//! Each [`Requirement`] is one line of data: a probe command that exits 0 when it is met,
//! and a [`Fix`] (install Debian packages, build a tool from crates.io, start a daemon,
//! or fall back to something else). The groups of [`DEFAULT_GROUPS`] are always set up;
//! others are opt-in (`cargo xtask test --with GROUP`) until the tests that need them
//! land; enabling one for everybody is moving its rows to `base`.

use std::fs::{self, File};
use std::path::PathBuf;
use std::process::{Child, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};

use crate::process::{self, command, is_root, say, succeeds};

/// The group that is always checked.
pub const BASE: &str = "base";

/// The groups every `cargo xtask test` sets up. `docker` is one since the Docker backend's
/// tests landed: Docker, debootstrap (for the test images) and a registry on loopback.
/// `postgres` since the store's tests run against PostgreSQL as well as SQLite.
pub const DEFAULT_GROUPS: &[&str] = &[BASE, "docker", "postgres"];

/// One thing the tests need.
#[derive(Debug, Clone, Copy)]
pub struct Requirement {
    /// Shown in progress lines and errors.
    pub name: &'static str,
    /// [`BASE`], or a group enabled with `--with GROUP`.
    pub group: &'static str,
    /// A command that exits 0 (within [`PROBE_TIMEOUT`]) when the requirement is met.
    pub probe: &'static [&'static str],
    /// How to meet it when the probe fails.
    pub fix: Fix,
}

/// How to meet a requirement whose probe failed.
#[derive(Debug, Clone, Copy)]
pub enum Fix {
    /// Install these Debian packages with apt-get.
    Apt(&'static [&'static str]),
    /// Run this function (e.g. start a daemon); the probe is retried afterwards.
    Start(fn() -> Result<()>),
    /// Not fatal: carry on without it; the text says what happens instead.
    Fallback(&'static str),
    /// Build this crate's binaries from crates.io with `cargo install --locked` at this
    /// exact version, into [`cargo_home`](process::cargo_home) (see [`cargo_install`]).
    Cargo {
        /// The crate on crates.io.
        krate: &'static str,
        /// Its pinned version.
        version: &'static str,
    },
}

/// Name of the requirement that a Docker daemon answers; the test images are built
/// when it is selected.
pub const DOCKER_DAEMON: &str = "docker daemon";

/// How long a probe may take before it counts as failed (a daemon that never answers).
pub const PROBE_TIMEOUT: Duration = Duration::from_secs(30);

/// Everything the tests may need, in the order it is set up (packages before the daemons
/// they contain).
pub const REQUIREMENTS: &[Requirement] = &[
    Requirement {
        name: "sh",
        group: BASE,
        probe: &["sh", "-c", ":"],
        fix: Fix::Apt(&["dash"]),
    },
    Requirement {
        name: "git",
        group: BASE,
        probe: &["git", "--version"],
        fix: Fix::Apt(&["git"]),
    },
    Requirement {
        name: "python3-aiosmtpd",
        group: BASE,
        // The SMTP server of the notification tests (crates/server/tests/notify_email.rs).
        // Debian's interpreter by path: a python3 earlier on PATH (pyenv) lacks the module.
        probe: &["/usr/bin/python3", "-c", "import aiosmtpd"],
        fix: Fix::Apt(&["python3-aiosmtpd"]),
    },
    Requirement {
        name: "chromium",
        group: BASE,
        // The browser of the web UI tests (crates/cli/tests/ui.rs); probed without
        // starting it.
        probe: &["sh", "-c", "command -v chromium"],
        fix: Fix::Apt(&["chromium"]),
    },
    Requirement {
        name: "chromium-driver",
        group: BASE,
        // chromedriver, which the web UI tests start on a free loopback port.
        probe: &["chromedriver", "--version"],
        fix: Fix::Apt(&["chromium", "chromium-driver"]),
    },
    Requirement {
        name: "firefox-esr",
        group: BASE,
        // The second browser of the web UI tests; probed without starting it. A `firefox`
        // of the user's own would do as well (the tests look for either).
        probe: &["sh", "-c", "command -v firefox-esr || command -v firefox"],
        fix: Fix::Apt(&["firefox-esr"]),
    },
    Requirement {
        name: "geckodriver",
        group: BASE,
        // Firefox's WebDriver server. Debian has no package of it and nothing but the
        // package registries is reachable, so it is built from crates.io: once per
        // machine, kept in CARGO_HOME's bin like any `cargo install`.
        probe: &["geckodriver", "--version"],
        fix: Fix::Cargo {
            krate: "geckodriver",
            version: GECKODRIVER_VERSION,
        },
    },
    Requirement {
        name: "cargo-nextest",
        group: BASE,
        probe: &["cargo", "nextest", "--version"],
        // Nothing outside the package registries can be fetched, and building nextest from
        // crates.io would take longer than the tests: plain `cargo test` runs them too.
        fix: Fix::Fallback("running the tests with `cargo test --workspace` instead"),
    },
    Requirement {
        name: "docker.io",
        group: "docker",
        probe: &["dockerd", "--version"],
        fix: Fix::Apt(&["docker.io"]),
    },
    Requirement {
        name: DOCKER_DAEMON,
        group: "docker",
        probe: &["docker", "info"],
        fix: Fix::Start(start_dockerd),
    },
    Requirement {
        name: "debootstrap",
        group: "docker",
        probe: &["debootstrap", "--version"],
        fix: Fix::Apt(&["debootstrap"]),
    },
    Requirement {
        name: "docker-registry",
        group: "docker",
        probe: &["sh", "-c", "command -v docker-registry"],
        fix: Fix::Apt(&["docker-registry"]),
    },
    Requirement {
        name: REGISTRY,
        group: "docker",
        // bash for /dev/tcp: curl is not on every fresh machine, bash is.
        probe: &["bash", "-c", "exec 3<>/dev/tcp/127.0.0.1/5000"],
        fix: Fix::Start(start_registry),
    },
    Requirement {
        name: "postgresql",
        group: "postgres",
        probe: &["sh", "-c", "ls /usr/lib/postgresql/*/bin/postgres"],
        fix: Fix::Apt(&["postgresql"]),
    },
    Requirement {
        name: POSTGRES_SERVER,
        group: "postgres",
        probe: &["bash", "-c", "exec 3<>/dev/tcp/127.0.0.1/5432"],
        fix: Fix::Start(crate::postgres::start),
    },
    Requirement {
        name: POSTGRES_DATABASE,
        group: "postgres",
        probe: &["psql", crate::postgres::URL, "-c", "SELECT 1"],
        fix: Fix::Start(crate::postgres::create_role),
    },
];

/// The geckodriver that `cargo xtask test` installs when there is none (a version that
/// supports the Firefox ESR of Debian's bookworm).
pub const GECKODRIVER_VERSION: &str = "0.37.1";

/// Name of the requirement that a registry listens on 127.0.0.1:5000 (push/pull tests).
pub const REGISTRY: &str = "registry on 127.0.0.1:5000";

/// Name of the requirement that PostgreSQL answers on 127.0.0.1:5432.
pub const POSTGRES_SERVER: &str = "postgresql on 127.0.0.1:5432";

/// Name of the requirement that the store tests' database exists; when it is selected,
/// the tests get [`crate::postgres::URL`] as `GANTRY_TEST_POSTGRES`.
pub const POSTGRES_DATABASE: &str = "postgresql database gantry_test";

/// The registry's configuration: loopback only, no auth, storage in a scratch folder.
const REGISTRY_CONFIG: &str = "\
version: 0.1
log:
  level: warn
storage:
  filesystem:
    rootdirectory: STORAGE
  delete:
    enabled: true
http:
  addr: 127.0.0.1:5000
";

/// The groups that exist, for `--with` validation.
pub fn groups() -> Vec<&'static str> {
    let mut groups: Vec<_> = REQUIREMENTS.iter().map(|r| r.group).collect();
    groups.dedup();
    groups
}

/// The requirements of the [`DEFAULT_GROUPS`] plus the `extra` groups, in table order.
pub fn selected(extra: &[String]) -> Vec<&'static Requirement> {
    REQUIREMENTS
        .iter()
        .filter(|r| DEFAULT_GROUPS.contains(&r.group) || extra.iter().any(|g| g == r.group))
        .collect()
}

/// Meets every requirement in `reqs`, in order. Returns the fallbacks taken (by name);
/// fails naming the first requirement that could not be met.
pub fn ensure(reqs: &[&Requirement]) -> Result<Vec<&'static str>> {
    let mut apt_updated = false;
    let mut fallbacks = Vec::new();
    for req in reqs {
        if succeeds(req.probe, PROBE_TIMEOUT) {
            continue;
        }
        say(&format!(
            "{} is missing (`{}` failed)",
            req.name,
            req.probe.join(" ")
        ));
        match req.fix {
            Fix::Fallback(instead) => {
                say(&format!("{}: {instead}", req.name));
                fallbacks.push(req.name);
                continue;
            }
            Fix::Apt(packages) => apt_install(packages, &mut apt_updated)
                .with_context(|| format!("could not install {}", req.name))?,
            Fix::Start(start) => {
                start().with_context(|| format!("could not start {}", req.name))?
            }
            Fix::Cargo { krate, version } => cargo_install(krate, version)
                .with_context(|| format!("could not install {}", req.name))?,
        }
        if !succeeds(req.probe, PROBE_TIMEOUT) {
            bail!(
                "{} is still missing after setting it up: `{}` fails",
                req.name,
                req.probe.join(" ")
            );
        }
        say(&format!("{} is ready", req.name));
    }
    Ok(fallbacks)
}

/// `apt-get install` of `packages`, after one `apt-get update` per xtask run.
fn apt_install(packages: &[&str], updated: &mut bool) -> Result<()> {
    if !is_root() {
        bail!(
            "installing needs root; run as root or install them yourself: \
             apt-get install {}",
            packages.join(" ")
        );
    }
    let apt = |args: &[&str]| -> Result<()> {
        let mut cmd = command("apt-get");
        cmd.args(args)
            .env("DEBIAN_FRONTEND", "noninteractive")
            .stdin(Stdio::null());
        let status = process::run(&mut cmd)?;
        if !status.success() {
            bail!("`{}` failed ({status})", process::display(&cmd));
        }
        Ok(())
    };
    if !*updated {
        apt(&["update"])?;
        *updated = true;
    }
    let mut args = vec!["install", "-y", "--no-install-recommends"];
    args.extend(packages);
    apt(&args)
}

/// `cargo install --locked KRATE@VERSION` into [`cargo_home`](process::cargo_home), whose
/// `bin` is on the [search path](process::search_path) of the probes and the tests, and
/// which outlives the checkout and its target dir: the build (minutes on two cores)
/// happens once per machine. The build's own target dir is cargo's temporary one,
/// deleted afterwards.
pub fn cargo_install(krate: &str, version: &str) -> Result<()> {
    let root = process::cargo_home();
    say(&format!(
        "building {krate} {version} from crates.io into {} (once per machine; a few \
         minutes on two cores)",
        root.join("bin").display()
    ));
    let started = Instant::now();
    let mut cmd = command(&crate::metadata::cargo());
    cmd.args(["install", "--locked", "--version", version, "--root"])
        .arg(&root)
        .arg(krate)
        // Outside the workspace, so that nothing of its config applies, and with cargo's
        // own temporary target dir rather than the caller's.
        .current_dir(std::env::temp_dir())
        .env_remove("CARGO_TARGET_DIR")
        .env_remove("CARGO_BUILD_TARGET_DIR")
        .stdin(Stdio::null());
    let status = process::run(&mut cmd)?;
    if !status.success() {
        bail!("`{}` failed ({status})", process::display(&cmd));
    }
    say(&format!(
        "{krate} {version} built and installed in {}s",
        started.elapsed().as_secs()
    ));
    Ok(())
}

/// Where the daemons started by the test setup log.
pub fn daemon_log(name: &str) -> PathBuf {
    std::env::temp_dir().join(format!("gantry-{name}.log"))
}

/// Starts `dockerd` in the background (it outlives xtask: the tests use it) and waits until
/// `docker info` answers. Debian's docker.io needs no flags on these machines: overlay2,
/// iptables and user-defined bridge networks worked with the defaults in a probe.
fn start_dockerd() -> Result<()> {
    let log_path = daemon_log("dockerd");
    let log =
        File::create(&log_path).with_context(|| format!("cannot create {}", log_path.display()))?;
    let mut cmd = command("dockerd");
    cmd.stdin(Stdio::null())
        .stdout(log.try_clone()?)
        .stderr(log);
    // Its own process group, so a Ctrl-C meant for the tests does not stop the daemon.
    #[cfg(unix)]
    std::os::unix::process::CommandExt::process_group(&mut cmd, 0);
    say(&format!(
        "$ {} (log: {})",
        process::display(&cmd),
        log_path.display()
    ));
    let child = cmd.spawn().context("failed to start dockerd")?;
    wait_until_answers(
        child,
        &["docker", "info"],
        Duration::from_secs(60),
        &log_path,
    )
}

/// Starts Debian's `docker-registry` on 127.0.0.1:5000 in the background (it outlives
/// xtask, like dockerd), with a config of our own: the packaged one wants htpasswd auth
/// and listens on every address.
fn start_registry() -> Result<()> {
    let dir = std::env::temp_dir().join("gantry-registry");
    fs::create_dir_all(dir.join("storage"))
        .with_context(|| format!("cannot create {}", dir.display()))?;
    let config = dir.join("config.yml");
    let storage = dir.join("storage");
    fs::write(
        &config,
        REGISTRY_CONFIG.replace("STORAGE", &storage.to_string_lossy()),
    )
    .with_context(|| format!("cannot write {}", config.display()))?;
    let log_path = daemon_log("registry");
    let log =
        File::create(&log_path).with_context(|| format!("cannot create {}", log_path.display()))?;
    let mut cmd = command("docker-registry");
    cmd.arg("serve")
        .arg(&config)
        .stdin(Stdio::null())
        .stdout(log.try_clone()?)
        .stderr(log);
    #[cfg(unix)]
    std::os::unix::process::CommandExt::process_group(&mut cmd, 0);
    say(&format!(
        "$ {} (log: {})",
        process::display(&cmd),
        log_path.display()
    ));
    let child = cmd.spawn().context("failed to start docker-registry")?;
    wait_until_answers(
        child,
        &["bash", "-c", "exec 3<>/dev/tcp/127.0.0.1/5000"],
        Duration::from_secs(30),
        &log_path,
    )
}

/// Polls `probe` until it succeeds; fails early if `daemon` exits, quoting its log.
fn wait_until_answers(
    mut daemon: Child,
    probe: &[&str],
    timeout: Duration,
    log: &std::path::Path,
) -> Result<()> {
    let deadline = Instant::now() + timeout;
    loop {
        if succeeds(probe, Duration::from_secs(10)) {
            return Ok(());
        }
        let tail = || {
            let text = fs::read_to_string(log).unwrap_or_default();
            let lines: Vec<&str> = text.lines().collect();
            lines[lines.len().saturating_sub(20)..].join("\n")
        };
        if let Some(status) = daemon.try_wait()? {
            bail!(
                "the daemon exited ({status}); last lines of {}:\n{}",
                log.display(),
                tail()
            );
        }
        if Instant::now() >= deadline {
            bail!(
                "`{}` did not answer within {}s; last lines of {}:\n{}",
                probe.join(" "),
                timeout.as_secs(),
                log.display(),
                tail()
            );
        }
        thread::sleep(Duration::from_millis(250));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn docker_group_is_set_up_by_default() {
        let names = |extra: &[&str]| -> Vec<&str> {
            let extra: Vec<String> = extra.iter().map(|s| (*s).to_owned()).collect();
            selected(&extra).iter().map(|r| r.name).collect()
        };
        assert_eq!(
            names(&[]),
            names(&["docker"]),
            "--with docker changes nothing"
        );
        assert_eq!(
            names(&[]),
            [
                "sh",
                "git",
                "python3-aiosmtpd",
                "chromium",
                "chromium-driver",
                "firefox-esr",
                "geckodriver",
                "cargo-nextest",
                "docker.io",
                "docker daemon",
                "debootstrap",
                "docker-registry",
                REGISTRY,
                "postgresql",
                POSTGRES_SERVER,
                POSTGRES_DATABASE,
            ]
        );
        assert_eq!(groups(), [BASE, "docker", "postgres"]);
    }

    #[test]
    fn met_requirements_need_no_fix() {
        // `sh` and `git` are on every machine that builds gantry: nothing to install, and
        // nothing is run through apt-get.
        let base: Vec<_> = selected(&[])
            .into_iter()
            .filter(|r| r.group == BASE && matches!(r.fix, Fix::Apt(_)))
            // Only what every build machine has; python3-aiosmtpd may still be missing.
            .filter(|r| ["sh", "git"].contains(&r.name))
            .collect();
        assert_eq!(
            ensure(&base).expect("sh and git are present"),
            Vec::<&str>::new()
        );
    }

    #[test]
    fn a_missing_requirement_takes_its_fallback() {
        const MISSING: Requirement = Requirement {
            name: "gantry-missing-tool",
            group: BASE,
            probe: &["gantry-no-such-program-xyz"],
            fix: Fix::Fallback("doing without"),
        };
        assert_eq!(
            ensure(&[&MISSING]).expect("a fallback is not an error"),
            ["gantry-missing-tool"]
        );
    }

    #[test]
    fn a_start_that_does_not_help_is_an_error() {
        const NEVER: Requirement = Requirement {
            name: "never-ready",
            group: BASE,
            probe: &["sh", "-c", "exit 1"],
            fix: Fix::Start(|| Ok(())),
        };
        let err = ensure(&[&NEVER]).expect_err("the probe still fails");
        assert_eq!(
            err.to_string(),
            "never-ready is still missing after setting it up: `sh -c exit 1` fails"
        );
    }
}
