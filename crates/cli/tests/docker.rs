//! End-to-end tests of `gantry run` on Docker: a pipeline mixing host and container jobs
//! with services, two runs of a matrix pipeline at once, `kill -9` mid-job followed by
//! `gantry gc` or the next `gantry run`, and a daemon that is not there; and agents on
//! the Docker backend (`docker/agents.rs`).
//!
//! They need a running Docker daemon and the images of `cargo xtask images` (`cargo xtask
//! test` sets both up). Leftovers are counted with the `docker` CLI by the owner label
//! (`gantry.pid` = `<pid of gantry>@<start time>`), so parallel tests never count each
//! other's resources.

mod support;

#[path = "agents/agent.rs"]
#[allow(dead_code, reason = "the agent tests use more of the agent helper")]
mod agent;

// Agents on the Docker backend: cancel, and the sweep at an agent's start.
#[path = "docker/agents.rs"]
mod agents;

use std::path::Path;
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

const TOOLS: &str = "gantry-test/tools:latest";

struct Project {
    dir: tempfile::TempDir,
}

impl Project {
    fn new(pipeline: &str) -> Project {
        let dir = tempfile::tempdir().expect("tempdir");
        std::fs::write(dir.path().join("gantry.yml"), pipeline).expect("write gantry.yml");
        Project { dir }
    }

    fn path(&self) -> &Path {
        self.dir.path()
    }

    fn gantry(&self, args: &[&str]) -> Command {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_gantry"));
        cmd.current_dir(self.path())
            .args(args)
            .env_remove("TERM")
            .env("NO_COLOR", "1")
            .stdin(Stdio::null());
        cmd
    }

    /// Starts gantry with its output captured, e.g. to run several at once.
    fn spawn(&self, args: &[&str]) -> Child {
        self.gantry(args)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("gantry")
    }

    /// Runs gantry to the end; its pid says which Docker resources it owned.
    fn run_owned(&self, args: &[&str]) -> (u32, Output) {
        let child = self.spawn(args);
        let pid = child.id();
        (pid, child.wait_with_output().expect("gantry ran"))
    }

    fn log(&self, run: u64, job: &str) -> String {
        let dir = self.path().join(format!(".gantry/runs/{run}/logs"));
        let entries = std::fs::read_dir(&dir).expect("logs dir");
        for e in entries.flatten() {
            let name = e.file_name().to_string_lossy().into_owned();
            if name.starts_with(job) {
                return std::fs::read_to_string(e.path()).expect("log");
            }
        }
        panic!("no log for {job} in {}", dir.display());
    }
}

fn text(out: &Output) -> String {
    format!(
        "stdout:\n{}\nstderr:\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

fn docker(args: &[&str]) -> String {
    let out = Command::new("docker")
        .args(args)
        .output()
        .expect("docker CLI");
    assert!(out.status.success(), "docker {args:?}: {}", text(&out));
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn needs_docker() {
    let up = Command::new("docker")
        .args(["image", "inspect", TOOLS])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    assert!(
        up,
        "these tests need a Docker daemon and the test images: run `cargo xtask test` (or \
         `dockerd &` and `cargo xtask images`)"
    );
}

/// Containers, networks and volumes owned by gantry process `pid`, as `kind role` lines.
fn owned_by(pid: u32) -> Vec<String> {
    let pid = pid.to_string();
    let mut found = Vec::new();
    for (kind, args) in [
        (
            "container",
            &["ps", "-a", "--filter", "label=gantry.pid", "--format"][..],
        ),
        (
            "network",
            &["network", "ls", "--filter", "label=gantry.pid", "--format"][..],
        ),
        (
            "volume",
            &["volume", "ls", "--filter", "label=gantry.pid", "--format"][..],
        ),
    ] {
        let mut args = args.to_vec();
        args.push("{{.Label \"gantry.pid\"}} {{.Label \"gantry.role\"}}");
        for line in docker(&args).lines() {
            let (owner, role) = line.split_once(' ').unwrap_or((line, ""));
            if owner.split('@').next() == Some(pid.as_str()) {
                found.push(format!("{kind} {role}"));
            }
        }
    }
    found
}

const MIXED: &str = r#"
name: mixed
jobs:
  build:
    script:
      - mkdir -p out && echo built-on-the-host > out/msg.txt
    artifacts: [out/]
  integration:
    needs: [build]
    image: gantry-test/tools:latest
    services:
      web:
        image: gantry-test/tools:latest
        env: { GREETING: hello-from-web }
        command: [sh, -c, 'mkdir -p /www && echo "$GREETING" > /www/health && exec busybox httpd -f -v -p 8080 -h /www']
        ready: { http: /health, port: 8080, timeout: 60s }
    script:
      - cat out/msg.txt
      - curl -fsS http://web:8080/health
      - echo made-in-a-container > out/result.txt
    artifacts: [out/result.txt]
  check:
    needs: [integration]
    script:
      - grep -q made-in-a-container out/result.txt
"#;

#[test]
fn a_mixed_pipeline_runs_host_and_container_jobs_with_services() {
    needs_docker();
    let project = Project::new(MIXED);
    let (pid, out) = project.run_owned(&["run"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let log = project.log(1, "integration");
    for want in [
        "built-on-the-host",
        "hello-from-web",
        "+ curl -fsS http://web:8080/health",
    ] {
        assert!(
            log.contains(want),
            "{want:?} not in the integration log:\n{log}"
        );
    }
    assert_eq!(
        owned_by(pid),
        Vec::<String>::new(),
        "nothing is left behind"
    );
}

const MATRIX: &str = r#"
name: matrix
jobs:
  test:
    matrix: { N: [one, two] }
    image: gantry-test/tools:latest
    services:
      db:
        image: gantry-test/tools:latest
        env: { TOKEN: "${N}" }
        command: [sh, -c, 'mkdir -p /www && echo "$TOKEN" > /www/health && exec busybox httpd -f -p 8080 -h /www']
        ready: { tcp: 8080, timeout: 60s }
    script:
      - test "$(curl -fsS http://db:8080/health)" = "$N"
"#;

/// Two runs of the same pipeline at once, each with two matrix instances starting the
/// same service on the same port: four `db`s, each job sees its own.
#[test]
fn concurrent_runs_and_matrix_instances_with_the_same_services() {
    needs_docker();
    let project = Project::new(MATRIX);
    let children: Vec<_> = (0..2).map(|_| project.spawn(&["run"])).collect();
    for child in children {
        let pid = child.id();
        let out = child.wait_with_output().expect("gantry ran");
        assert_eq!(out.status.code(), Some(0), "{}", text(&out));
        assert_eq!(owned_by(pid), Vec::<String>::new());
    }
}

const SLOW: &str = r#"
name: slow
jobs:
  stuck:
    image: gantry-test/tools:latest
    services:
      web:
        image: gantry-test/tools:latest
        command: [sh, -c, 'mkdir -p /www && exec busybox httpd -f -p 8080 -h /www']
        ready: { tcp: 8080 }
    script:
      - echo started
      - sleep 600
"#;

/// `kill -9` of gantry while its job runs leaves the job's containers and network; the
/// next `gantry gc`, or the next `gantry run`, removes them.
#[test]
fn leftovers_of_a_killed_run_are_swept() {
    needs_docker();
    for cleaner in [&["gc"][..], &["run", "--job", "quick"][..]] {
        let project = Project::new(&format!("{SLOW}  quick:\n    script: [\"true\"]\n"));
        let mut child = project
            .gantry(&["run", "--job", "stuck"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("gantry");
        let pid = child.id();
        // Wait until the job's own container exists: then the service, the network and
        // the job container are all there.
        let deadline = Instant::now() + Duration::from_secs(120);
        while !owned_by(pid).iter().any(|r| r == "container job") {
            assert!(
                Instant::now() < deadline,
                "the job container never appeared: {:?}",
                owned_by(pid)
            );
            if let Ok(Some(status)) = child.try_wait() {
                panic!("gantry ended early: {status}");
            }
            std::thread::sleep(Duration::from_millis(200));
        }
        child.kill().expect("kill -9");
        child.wait().expect("reaped");
        let left = owned_by(pid);
        assert!(
            left.contains(&"network network".to_owned())
                && left.contains(&"container service".to_owned()),
            "a killed gantry leaves its resources: {left:?}"
        );

        let out = project.gantry(cleaner).output().expect("cleaner");
        assert_eq!(out.status.code(), Some(0), "{cleaner:?}: {}", text(&out));
        assert_eq!(owned_by(pid), Vec::<String>::new(), "after {cleaner:?}");
    }
}

/// The seed pipeline's shape: a host job makes the program, `image_build` packages it
/// (with the artifact restored into its workspace), and the next job runs it as a service.
#[test]
fn a_built_image_serves_the_next_job() {
    needs_docker();
    let tag = format!("gantry-test/e2e-app-{}:1", std::process::id());
    let project = Project::new(&format!(
        r#"
name: package
jobs:
  build:
    script:
      - mkdir -p app && printf 'mkdir -p /www && echo "$1" > /www/health && exec busybox httpd -f -p 9000 -h /www\n' > app/serve.sh
    artifacts: [app/serve.sh]
  package:
    needs: [build]
    image_build:
      context: app
      tag: {tag}
  integration:
    needs: [package]
    image: gantry-test/tools:latest
    services:
      app:
        image: {tag}
        command: [sh, /serve.sh, served-by-the-built-image]
        ready: {{ http: /health, port: 9000, timeout: 60s }}
    script:
      - curl -fsS http://app:9000/health
"#
    ));
    std::fs::create_dir_all(project.path().join("app")).expect("mkdir");
    std::fs::write(
        project.path().join("app/Dockerfile"),
        "FROM gantry-test/tools:latest\nCOPY serve.sh /serve.sh\n",
    )
    .expect("Dockerfile");
    let (pid, out) = project.run_owned(&["run"]);
    let _ = Command::new("docker").args(["rmi", "-f", &tag]).output();
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let log = project.log(1, "package");
    assert!(log.contains("Successfully tagged"), "{log}");
    let log = project.log(1, "integration");
    assert!(log.contains("served-by-the-built-image"), "{log}");
    assert_eq!(owned_by(pid), Vec::<String>::new());
}

#[test]
fn gc_says_when_there_is_nothing_to_do_or_docker_is_missing() {
    needs_docker();
    let project = Project::new(MIXED);
    let out = project
        .gantry(&["gc"])
        .env("DOCKER_HOST", "unix:///nonexistent/docker.sock")
        .output()
        .expect("gc");
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("the Docker daemon is not running") && err.contains("dockerd"),
        "{err}"
    );
}

#[test]
fn without_a_daemon_docker_is_an_error_and_auto_falls_back_to_the_host() {
    needs_docker();
    let project = Project::new(MIXED);
    let out = project
        .gantry(&["run", "--backend", "docker"])
        .env("DOCKER_HOST", "unix:///nonexistent/docker.sock")
        .output()
        .expect("run");
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("error: docker backend unavailable: the Docker daemon is not running")
            && err.contains("start it with `dockerd &`"),
        "{err}"
    );
    assert!(
        !project.path().join(".gantry/runs/1").exists(),
        "nothing ran, so no run directory"
    );

    // Under auto, host jobs still run; the container job fails with a clear error.
    let out = project
        .gantry(&["run"])
        .env("DOCKER_HOST", "unix:///nonexistent/docker.sock")
        .output()
        .expect("run");
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("warning: jobs that need containers will fail: docker backend unavailable"),
        "{err}"
    );
    assert!(
        err.contains("needs a container") && err.contains("no container backend is available"),
        "{err}"
    );
}
