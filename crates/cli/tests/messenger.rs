//! The messenger example end to end: `gantry run` on a copy of `examples/messenger`
//! builds both services in the Rust builder image, packages them into images and runs
//! the integration test twice side by side against MariaDB — for real, in Docker.
//!
//! Needs a Docker daemon and the images of `cargo xtask images` (which `cargo xtask test`
//! runs), and crates.io reachable from a container (the build job fetches crates). It
//! takes several minutes (3 to 7 on 2 cores, nearly all of it compiling in the build job).
//!
//! After the run it also checks, with the auth image the run built, that auth survives
//! its database going away and a fresh one coming back (503 meanwhile, then 200).

use std::path::Path;
use std::process::{Command, Stdio};

const BUILDER: &str = "gantry-test/rust:1.95";

/// Copies the example as git would see it: without run directories, build output and
/// binaries a local build may have left.
fn copy_example(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).expect("mkdir");
    for entry in std::fs::read_dir(from).expect("read example") {
        let entry = entry.expect("entry");
        let name = entry.file_name();
        if [".gantry", "target", "dist"].iter().any(|n| name == *n) {
            continue;
        }
        let (src, dst) = (entry.path(), to.join(&name));
        if entry.file_type().expect("file type").is_dir() {
            copy_example(&src, &dst);
        } else {
            std::fs::copy(&src, &dst).expect("copy");
        }
    }
}

#[test]
fn the_messenger_pipeline_builds_packages_and_passes_its_integration_tests() {
    let ready = Command::new("docker")
        .args(["image", "inspect", BUILDER, "gantry-test/mariadb:latest"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    assert!(
        ready,
        "this test needs a Docker daemon and the images of `cargo xtask images` \
         ({BUILDER}, gantry-test/mariadb, gantry-test/tools)"
    );

    let example = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/messenger");
    let tmp = tempfile::tempdir().expect("tempdir");
    let project = tmp.path().join("messenger");
    copy_example(&example, &project);

    // A version of its own, so the images cannot clash with another run's.
    let version = format!("test-{}", std::process::id());
    let out = Command::new(env!("CARGO_BIN_EXE_gantry"))
        .current_dir(&project)
        .args(["run", "--backend", "docker", "--param"])
        .arg(format!("VERSION={version}"))
        .env_remove("TERM")
        .env("NO_COLOR", "1")
        .stdin(Stdio::null())
        .output()
        .expect("run gantry");
    let reconnect = (out.status.code() == Some(0)).then(|| auth_reconnects(&version));
    for service in ["auth", "session"] {
        let _ = Command::new("docker")
            .args(["rmi", "-f", &format!("messenger/{service}:{version}")])
            .output();
    }
    let output = format!(
        "stdout:\n{}\nstderr:\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(out.status.code(), Some(0), "{output}");

    let summary: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(project.join(".gantry/runs/1/summary.json"))
            .expect("summary.json"),
    )
    .expect("summary.json is JSON");
    assert_eq!(summary["status"], "succeeded", "{summary:#}");
    assert_eq!(summary["params"]["VERSION"], version.as_str());
    let jobs: Vec<(&str, &str)> = summary["jobs"]
        .as_array()
        .expect("jobs")
        .iter()
        .map(|j| {
            (
                j["name"].as_str().expect("name"),
                j["status"].as_str().expect("status"),
            )
        })
        .collect();
    assert_eq!(
        jobs,
        [
            ("build", "success"),
            ("package-auth", "success"),
            ("package-session", "success"),
            ("integration (ENV=one)", "success"),
            ("integration (ENV=two)", "success"),
        ],
        "{output}"
    );
    let artifacts: Vec<&str> = summary["jobs"][0]["artifacts"]
        .as_array()
        .expect("artifacts")
        .iter()
        .map(|a| a["path"].as_str().expect("path"))
        .collect();
    assert_eq!(artifacts, ["auth/dist/auth", "session/dist/session"]);

    // Both environments really ran the checks, each against its own services.
    for env in ["one", "two"] {
        let log = std::fs::read_to_string(
            project.join(format!(".gantry/runs/1/logs/integration_ENV={env}.log")),
        )
        .expect("integration log");
        for expect in [
            "ok   - first registration (200)",
            "ok   - second registration of the same user (409)",
            "ok   - token verifies (200)",
            "ok   - token with a wrong password (400)",
            "ok   - bob receives alice's message",
            "# all checks passed",
            "Connecting to database db:3306",
        ] {
            assert!(log.contains(expect), "ENV={env}: no {expect:?} in\n{log}");
        }
        assert!(!log.contains("FAIL -"), "ENV={env}:\n{log}");
    }
    if let Some(Err(e)) = reconnect {
        panic!("auth did not survive its database going away: {e}");
    }
}

/// Removes the named containers and network however the check ends.
struct Cleanup {
    containers: Vec<String>,
    network: String,
}

impl Drop for Cleanup {
    fn drop(&mut self) {
        for c in &self.containers {
            let _ = Command::new("docker").args(["rm", "-f", "-v", c]).output();
        }
        let _ = Command::new("docker")
            .args(["network", "rm", &self.network])
            .output();
    }
}

fn docker(args: &[&str]) -> Result<String, String> {
    let out = Command::new("docker")
        .args(args)
        .stdin(Stdio::null())
        .output()
        .map_err(|e| format!("docker: {e}"))?;
    let stdout = String::from_utf8_lossy(&out.stdout).trim().to_owned();
    if out.status.success() {
        Ok(stdout)
    } else {
        Err(format!(
            "docker {args:?}: {stdout} {}",
            String::from_utf8_lossy(&out.stderr)
        ))
    }
}

/// The database goes away and a fresh one comes back: the auth image the pipeline just
/// built answers 503 meanwhile, then reconnects, recreates its tables and serves again.
/// Everything runs in containers on a network of its own (curl from the tools image).
fn auth_reconnects(version: &str) -> Result<(), String> {
    let p = format!("messenger-test-{}", std::process::id());
    let (db, auth) = (format!("{p}-db"), format!("{p}-auth"));
    let _cleanup = Cleanup {
        containers: vec![auth.clone(), db.clone()],
        network: p.clone(),
    };
    docker(&["network", "create", &p])?;
    let start_db = || {
        docker(&[
            "run",
            "-d",
            "--name",
            &db,
            "--network",
            &p,
            "--network-alias",
            "db",
            "-e",
            "MYSQL_ROOT_PASSWORD=rootpass",
            "-e",
            "MYSQL_DATABASE=messenger",
            "gantry-test/mariadb:latest",
        ])
    };
    start_db()?;
    let image = format!("messenger/auth:{version}");
    docker(&[
        "run",
        "-d",
        "--name",
        &auth,
        "--network",
        &p,
        &image,
        "-l",
        "debug",
        "run",
        "--db-host",
        "db",
        "-p",
        "9000",
    ])?;
    let url = format!("http://{auth}:9000/user");
    let register = |user: &str| {
        docker(&[
            "run",
            "--rm",
            "--network",
            &p,
            "gantry-test/tools:latest",
            "curl",
            "-s",
            "-o",
            "/dev/null",
            "-w",
            "%{http_code}",
            "-X",
            "PUT",
            "-d",
            &format!("userid={user}"),
            "-d",
            "password=pw",
            &url,
        ])
        .unwrap_or_else(|e| e)
    };
    // Generous deadlines: MariaDB initialises in seconds, but CI machines are busy.
    let until_200 = |user: &str| -> Result<(), String> {
        let mut last = String::new();
        for _ in 0..120 {
            last = register(user);
            if last == "200" {
                return Ok(());
            }
            std::thread::sleep(std::time::Duration::from_secs(1));
        }
        Err(format!("registering {user} never got 200 (last: {last})"))
    };
    until_200("before")?;
    docker(&["rm", "-f", "-v", &db])?;
    let gone = register("while-gone");
    if gone != "503" {
        return Err(format!("with the database gone: want 503, got {gone}"));
    }
    start_db()?;
    until_200("after")?;
    let logs = Command::new("docker")
        .args(["logs", &auth])
        .output()
        .map_err(|e| e.to_string())?;
    let logs = String::from_utf8_lossy(&logs.stderr);
    if !logs.contains("reconnected to the database") {
        return Err(format!("no reconnect in the auth log:\n{logs}"));
    }
    Ok(())
}
