//! Nothing is left behind: teardown after success, failure, timeout, cancel and a service
//! that never came up (containers, the network, and the services' anonymous volumes);
//! the sweeper for what dead gantry processes left; and a daemon that goes away mid-job.

mod common;

use std::path::PathBuf;
use std::time::Duration;

use common::*;
use gantry_backend::{Backend, BackendError, ReadySpec, ServiceSpec};
use gantry_backend_docker::{DockerBackend, DockerSettings};
use tokio::net::{UnixListener, UnixStream};
use tokio::task::JoinSet;

/// A service with an anonymous volume (the MariaDB image declares one, like the official
/// image), running `sleep` so it starts at once.
fn with_volume() -> ServiceSpec {
    ServiceSpec {
        name: "store".into(),
        image: MARIADB.into(),
        env: vec![],
        command: Some(vec!["sleep".into(), "600".into()]),
        ready: None,
    }
}

/// Volumes mounted by the containers of `run_id`.
fn volumes_of(run_id: &str) -> Vec<String> {
    let filter = format!("label=gantry.run={run_id}");
    let ids = docker(&["ps", "-aq", "--filter", &filter]).expect("docker ps");
    let mut volumes = Vec::new();
    for id in ids.lines() {
        let out = docker(&[
            "inspect",
            "--format",
            "{{range .Mounts}}{{if eq .Type \"volume\"}}{{.Name}} {{end}}{{end}}",
            id,
        ])
        .expect("inspect");
        volumes.extend(out.split_whitespace().map(str::to_owned));
    }
    volumes
}

#[tokio::test]
async fn teardown_leaves_nothing_whatever_the_end() {
    let backend = backend().await;
    struct Case {
        name: &'static str,
        script: &'static [&'static str],
        timeout: u64,
        cancel_after: Option<u64>,
        not_ready: bool,
        expect: &'static str,
    }
    let cases = [
        Case {
            name: "success",
            script: &["true"],
            timeout: 60,
            cancel_after: None,
            not_ready: false,
            expect: "Ran(Success)",
        },
        Case {
            name: "failure",
            script: &["exit 4"],
            timeout: 60,
            cancel_after: None,
            not_ready: false,
            expect: "Ran(Failed { exit_code: 4 })",
        },
        Case {
            name: "timeout",
            script: &["sleep 600"],
            timeout: 1,
            cancel_after: None,
            not_ready: false,
            expect: "Ran(TimedOut)",
        },
        Case {
            name: "cancel",
            script: &["sleep 600"],
            timeout: 60,
            cancel_after: Some(1),
            not_ready: false,
            expect: "Ran(Cancelled)",
        },
        Case {
            name: "not-ready",
            script: &["true"],
            timeout: 60,
            cancel_after: None,
            not_ready: true,
            expect: "Services",
        },
    ];
    for case in cases {
        let (mut spec, _ws) = job(case.name, case.script);
        spec.timeout = Duration::from_secs(case.timeout);
        let mut store = with_volume();
        if case.not_ready {
            store.ready = Some(ReadySpec {
                port: 3306,
                http_path: None,
                timeout: Duration::from_secs(1),
            });
        }
        spec.services = vec![store];

        // Look at the volumes while the job runs, then at what is left after teardown.
        let mut env = backend.prepare(&spec).await.expect("prepare");
        let (sink, _rx) = gantry_backend::LogSink::channel();
        let started = env.start_services(sink.clone()).await;
        let volumes = volumes_of(&spec.run_id);
        assert_eq!(
            volumes.len(),
            1,
            "{}: the service has its volume",
            case.name
        );
        let ended = match started {
            Err(_) => "Services".to_owned(),
            Ok(()) => {
                let cancel = gantry_backend::CancellationToken::new();
                if let Some(after) = case.cancel_after {
                    let c = cancel.clone();
                    tokio::spawn(async move {
                        tokio::time::sleep(Duration::from_secs(after)).await;
                        c.cancel();
                    });
                }
                format!(
                    "Ran({:?})",
                    env.run_script(sink, cancel).await.expect("ran")
                )
            }
        };
        assert_eq!(ended, case.expect, "{}", case.name);
        env.teardown().await.expect("teardown");
        assert_eq!(
            leftovers(&spec.run_id),
            Vec::<String>::new(),
            "{}",
            case.name
        );
        for v in volumes {
            assert!(
                docker(&["volume", "inspect", &v]).is_none(),
                "{}: volume {v} was removed",
                case.name
            );
        }
    }
}

/// Field 22 of /proc/self/stat, like the backend's owner label.
fn my_start_time() -> u64 {
    let stat = std::fs::read_to_string("/proc/self/stat").expect("stat");
    let after = &stat[stat.rfind(')').expect("comm") + 1..];
    after
        .split_whitespace()
        .nth(19)
        .expect("field 22")
        .parse()
        .expect("number")
}

#[tokio::test]
async fn the_sweeper_removes_what_dead_owners_left_and_keeps_the_rest() {
    let backend = backend().await;
    let run = unique_run_id("sweep");
    let boot = std::fs::read_to_string("/proc/sys/kernel/random/boot_id").expect("boot id");
    let boot = boot.trim();
    // A process that has exited: its pid is free (or reused with another start time).
    let mut child = std::process::Command::new("true").spawn().expect("true");
    let dead_pid = child.id();
    child.wait().expect("reaped");
    let dead = format!("{dead_pid}@1");
    let alive = format!("{}@{}", std::process::id(), my_start_time());
    let labels = |owner: &str, boot: &str, what: &str| {
        vec![
            "--label".to_owned(),
            format!("gantry.run={run}"),
            "--label".to_owned(),
            format!("gantry.pid={owner}"),
            "--label".to_owned(),
            format!("gantry.boot={boot}"),
            "--label".to_owned(),
            format!("gantry.role={what}"),
        ]
    };
    let create = |args: Vec<String>| {
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        docker(&args).unwrap_or_else(|| panic!("docker {args:?}"));
    };
    let c = |owner: &str, boot: &str, what: &str| {
        let mut args = vec!["create".to_owned()];
        args.extend(labels(owner, boot, what));
        args.extend([TOOLS.to_owned(), "sleep".to_owned(), "600".to_owned()]);
        create(args);
    };
    c(&dead, boot, "dead-owner");
    c(&alive, "another-boot", "earlier-boot");
    c(&alive, boot, "alive");
    let mut args = vec!["network".to_owned(), "create".to_owned()];
    args.extend(labels(&dead, boot, "network"));
    args.push(format!("gantry-sweep-test-{}", std::process::id()));
    create(args);
    let mut args = vec!["volume".to_owned(), "create".to_owned()];
    args.extend(labels(&dead, boot, "volume"));
    create(args);
    assert_eq!(leftovers(&run).len(), 5);

    let report = backend.sweep().await.expect("sweep");
    assert!(
        report.containers >= 2 && report.networks >= 1 && report.volumes >= 1,
        "{report:?}"
    );
    let filter = format!("label=gantry.run={run}");
    let kept = docker(&[
        "ps",
        "-a",
        "--filter",
        &filter,
        "--format",
        "{{.Label \"gantry.role\"}}",
    ])
    .expect("ps");
    assert_eq!(
        kept.trim(),
        "alive",
        "only the live owner's container stays"
    );
    assert_eq!(leftovers(&run).len(), 1);
    force_clean(&run);
    assert_eq!(leftovers(&run), Vec::<String>::new());
}

/// A unix socket that forwards to the real daemon until it is told to go away: the
/// daemon "stops" for the backend while the real one goes on for everybody else.
struct Proxy {
    path: PathBuf,
    tasks: JoinSet<()>,
    _dir: tempfile::TempDir,
}

impl Proxy {
    fn start() -> Proxy {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("docker.sock");
        let listener = UnixListener::bind(&path).expect("bind");
        let mut tasks = JoinSet::new();
        tasks.spawn(async move {
            let mut conns = JoinSet::new();
            while let Ok((mut client, _)) = listener.accept().await {
                conns.spawn(async move {
                    let Ok(mut daemon) = UnixStream::connect("/var/run/docker.sock").await else {
                        return;
                    };
                    let _ = tokio::io::copy_bidirectional(&mut client, &mut daemon).await;
                });
            }
        });
        Proxy {
            path,
            tasks,
            _dir: dir,
        }
    }

    /// Every connection through the proxy breaks, and new ones are refused.
    fn go_away(&mut self) {
        self.tasks.abort_all();
        let _ = std::fs::remove_file(&self.path);
    }
}

#[tokio::test]
async fn a_daemon_that_goes_away_mid_job_is_an_infrastructure_error() {
    let mut proxy = Proxy::start();
    let backend = DockerBackend::connect_at(
        Some(&format!("unix://{}", proxy.path.display())),
        DockerSettings::default(),
    )
    .await
    .expect("through the proxy");
    let (spec, _ws) = job("daemon-gone", &["echo running", "sleep 600"]);
    let mut env = backend.prepare(&spec).await.expect("prepare");
    let (sink, mut rx) = gantry_backend::LogSink::channel();
    env.start_services(sink.clone()).await.expect("no services");
    let run_id = spec.run_id.clone();
    let script = tokio::spawn(async move {
        let r = env
            .run_script(sink, gantry_backend::CancellationToken::new())
            .await;
        (r, env)
    });
    // Once the script prints, the daemon "goes away" (while gantry waits for the job).
    let started = tokio::time::timeout(Duration::from_secs(60), async {
        while let Some(line) = rx.recv().await {
            if line.text == "running" {
                return true;
            }
        }
        false
    })
    .await;
    assert_eq!(started, Ok(true), "the job never started");
    proxy.go_away();
    let (result, env) = tokio::time::timeout(Duration::from_secs(60), script)
        .await
        .expect("run_script returns promptly")
        .expect("no panic");
    let err = result.expect_err("the daemon is gone");
    assert!(matches!(err, BackendError::Unavailable { .. }), "{err:?}");
    let msg = err.to_string();
    assert!(
        msg.starts_with("docker backend unavailable: lost the Docker daemon while trying to ")
            && msg.contains("start it with `dockerd &`"),
        "{msg}"
    );
    let teardown = env.teardown().await;
    assert!(teardown.is_err(), "teardown cannot reach the daemon either");
    // What the job left is this test's to clean (the owner, this process, is alive).
    assert!(!leftovers(&run_id).is_empty());
    force_clean(&run_id);
    assert_eq!(leftovers(&run_id), Vec::<String>::new());
}
