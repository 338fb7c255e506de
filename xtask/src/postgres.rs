//! The PostgreSQL the store tests run against: Debian's `postgresql` package, a cluster
//! answering on 127.0.0.1:5432, and a `gantry` role owning a `gantry_test` database.
//! [`URL`] is handed to the tests as `GANTRY_TEST_POSTGRES`; each test makes its own
//! schema in that database, so they run in parallel.

use std::process::Stdio;

use anyhow::{Context, Result, bail};

use crate::process::{self, command, is_root, say};

/// The test database, as the store tests find it in `GANTRY_TEST_POSTGRES`.
pub const URL: &str = "postgres://gantry:gantry@127.0.0.1:5432/gantry_test";

/// The port the tests connect to.
const PORT: &str = "5432";

/// One line of `pg_lsclusters --no-header`: version, name, port, status.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cluster {
    /// Major version (`15`).
    pub version: String,
    /// Cluster name (`main`).
    pub name: String,
    /// Port it is configured for.
    pub port: String,
    /// `online`, `down`, …
    pub status: String,
}

/// Parses `pg_lsclusters --no-header` output.
pub fn parse_clusters(text: &str) -> Vec<Cluster> {
    text.lines()
        .filter_map(|line| {
            let mut f = line.split_whitespace();
            Some(Cluster {
                version: f.next()?.to_owned(),
                name: f.next()?.to_owned(),
                port: f.next()?.to_owned(),
                status: f.next()?.to_owned(),
            })
        })
        .collect()
}

/// Starts the cluster configured for port 5432, creating one with the newest installed
/// version when there is none (Debian creates `main` when the package is installed, but
/// a machine may have dropped it). Runs as root: `pg_ctlcluster` switches to `postgres`.
pub fn start() -> Result<()> {
    if !is_root() {
        bail!("starting PostgreSQL needs root; start a cluster on 127.0.0.1:{PORT} yourself");
    }
    let out = command("pg_lsclusters")
        .arg("--no-header")
        .stdin(Stdio::null())
        .output()
        .context("failed to run pg_lsclusters")?;
    let clusters = parse_clusters(&String::from_utf8_lossy(&out.stdout));
    let mut cmd = match clusters.iter().find(|c| c.port == PORT) {
        Some(c) => {
            let mut cmd = command("pg_ctlcluster");
            cmd.args([&c.version, &c.name, "start"]);
            cmd
        }
        None => {
            let version = newest_version()?;
            let mut cmd = command("pg_createcluster");
            cmd.args(["--port", PORT, "--start", &version, "gantry"]);
            cmd
        }
    };
    let status = process::run(cmd.stdin(Stdio::null()))?;
    if !status.success() {
        bail!("`{}` failed ({status})", process::display(&cmd));
    }
    Ok(())
}

/// The newest PostgreSQL major version installed (`/usr/lib/postgresql/<version>`).
fn newest_version() -> Result<String> {
    let dir = std::path::Path::new("/usr/lib/postgresql");
    let mut versions: Vec<u32> = std::fs::read_dir(dir)
        .with_context(|| format!("cannot read {}", dir.display()))?
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse().ok())
        .collect();
    versions.sort_unstable();
    match versions.last() {
        Some(v) => Ok(v.to_string()),
        None => bail!("no PostgreSQL server under {}", dir.display()),
    }
}

/// Creates the `gantry` role and the `gantry_test` database if missing (as the
/// `postgres` superuser over the local socket).
pub fn create_role() -> Result<()> {
    if !is_root() {
        bail!(
            "creating the test role needs root; create it yourself: \
             CREATE ROLE gantry LOGIN PASSWORD 'gantry' CREATEDB; \
             CREATE DATABASE gantry_test OWNER gantry"
        );
    }
    psql(
        "DO $$ BEGIN \
           IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'gantry') THEN \
             CREATE ROLE gantry LOGIN PASSWORD 'gantry' CREATEDB; \
           END IF; \
         END $$",
    )?;
    // A throwaway test database: commits need not wait for the disk, which makes the
    // suite several times faster on slow disks. Production settings are not touched.
    psql("ALTER ROLE gantry SET synchronous_commit TO off")?;
    let exists = command("runuser")
        .current_dir("/")
        .args(["-u", "postgres", "--", "psql", "-tAc"])
        .arg("SELECT 1 FROM pg_database WHERE datname = 'gantry_test'")
        .stdin(Stdio::null())
        .output()
        .context("failed to run psql")?;
    if String::from_utf8_lossy(&exists.stdout).trim() != "1" {
        psql("CREATE DATABASE gantry_test OWNER gantry")?;
    }
    say("PostgreSQL role gantry and database gantry_test are ready");
    Ok(())
}

fn psql(sql: &str) -> Result<()> {
    let mut cmd = command("runuser");
    // From `/`: psql complains when the postgres user cannot enter the current folder.
    cmd.current_dir("/")
        .args([
            "-u",
            "postgres",
            "--",
            "psql",
            "-v",
            "ON_ERROR_STOP=1",
            "-qc",
            sql,
        ])
        .stdin(Stdio::null());
    let status = process::run(&mut cmd)?;
    if !status.success() {
        bail!("`{}` failed ({status})", process::display(&cmd));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_pg_lsclusters() {
        let text = "15  main    5432 down   postgres /var/lib/postgresql/15/main /var/log/postgresql/postgresql-15-main.log\n\
                    16  gantry  5433 online postgres /var/lib/postgresql/16/gantry /var/log/x.log\n\
                    \n";
        let got: Vec<_> = parse_clusters(text)
            .into_iter()
            .map(|c| format!("{} {} {} {}", c.version, c.name, c.port, c.status))
            .collect();
        assert_eq!(got, ["15 main 5432 down", "16 gantry 5433 online"]);
    }
}
