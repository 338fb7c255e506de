//! Jobs in containers: the script, its workspace, environment, output and outcomes,
//! ownership of the files it makes, timeouts and cancels, and bad input.

mod common;

use std::os::unix::fs::MetadataExt;
use std::time::Duration;

use common::*;
use gantry_backend::{Backend, BackendError, Outcome, Stream};
use gantry_backend_docker::{DockerBackend, DockerSettings};

#[tokio::test]
async fn a_script_runs_in_the_image_with_its_workspace_and_env() {
    let backend = backend().await;
    let (mut spec, ws) = job(
        "basics",
        &[
            "pwd",
            "echo \"hello $GREETING\"",
            "cat seed.txt",
            "echo to-stderr >&2",
            "echo made > out.txt",
            "test -x /usr/bin/curl",
        ],
    );
    spec.env.push(("GREETING".into(), "from gantry".into()));
    std::fs::write(ws.path().join("seed.txt"), "seeded by the host\n").expect("seed");
    let ran = run(&backend, &spec).await;
    assert_eq!(ran.outcome(), &Outcome::Success, "{}", ran.log());
    assert_eq!(
        ran.texts(Stream::Stdout),
        [
            "+ pwd",
            "/workspace",
            "+ echo \"hello $GREETING\"",
            "hello from gantry",
            "+ cat seed.txt",
            "seeded by the host",
            "+ echo to-stderr >&2",
            "+ echo made > out.txt",
            "+ test -x /usr/bin/curl",
        ]
    );
    assert_eq!(ran.texts(Stream::Stderr), ["to-stderr"]);
    assert_eq!(
        std::fs::read_to_string(ws.path().join("out.txt")).expect("made by the job"),
        "made\n"
    );
    ran.teardown.expect("teardown");
    assert_eq!(leftovers(&spec.run_id), Vec::<String>::new());
}

#[tokio::test]
async fn exit_codes_and_the_first_failing_command() {
    let backend = backend().await;
    for (script, expect, last) in [
        (
            &["exit 3"][..],
            Outcome::Failed { exit_code: 3 },
            "+ exit 3",
        ),
        (
            &["echo a", "false", "echo never"],
            Outcome::Failed { exit_code: 1 },
            "+ false",
        ),
        (&["true"], Outcome::Success, "+ true"),
    ] {
        let (spec, _ws) = job("exit-codes", script);
        let ran = run(&backend, &spec).await;
        assert_eq!(ran.outcome(), &expect, "{script:?}\n{}", ran.log());
        assert_eq!(
            ran.texts(Stream::Stdout).last().map(String::as_str),
            Some(last),
            "{script:?}"
        );
        assert_eq!(leftovers(&spec.run_id), Vec::<String>::new());
    }
}

#[tokio::test]
async fn going_over_the_memory_limit_is_an_oom_outcome() {
    let backend = backend_with(DockerSettings {
        memory_limit: Some(32 * 1024 * 1024),
        ..DockerSettings::default()
    })
    .await;
    // `tail` keeps the whole "line" (no newline in /dev/zero) in memory.
    let (spec, _ws) = job("oom", &["head -c 512m /dev/zero | tail -n 1 >/dev/null"]);
    let ran = run(&backend, &spec).await;
    assert_eq!(ran.outcome(), &Outcome::OutOfMemory, "{}", ran.log());
    assert_eq!(leftovers(&spec.run_id), Vec::<String>::new());
}

#[tokio::test]
async fn timeout_and_cancel_stop_and_remove_the_container() {
    let backend = backend().await;
    for (timeout, cancel_after, expect, said) in [
        (
            Duration::from_secs(1),
            None,
            Outcome::TimedOut,
            "timed out after 1s: stopping the job's container",
        ),
        (
            Duration::from_secs(600),
            Some(Duration::from_millis(1500)),
            Outcome::Cancelled,
            "cancelled: stopping the job's container",
        ),
    ] {
        let (mut spec, _ws) = job("stop", &["echo started", "sleep 600"]);
        spec.timeout = timeout;
        let ran = run_with(&backend, &spec, cancel_after).await;
        assert_eq!(ran.outcome(), &expect, "{}", ran.log());
        assert!(
            ran.texts(Stream::Stdout).contains(&"started".to_owned()),
            "{}",
            ran.log()
        );
        assert!(
            ran.texts(Stream::System).contains(&said.to_owned()),
            "{}",
            ran.log()
        );
        ran.teardown.expect("teardown");
        assert_eq!(leftovers(&spec.run_id), Vec::<String>::new());
    }
}

/// As root, files stay root's (nothing to do); for another host user, the files the job
/// makes become theirs — after a normal end and after a timeout alike.
#[tokio::test]
async fn files_made_in_the_workspace_belong_to_the_host_user() {
    let root = nix::unistd::geteuid().is_root();
    for (owner, timeout, expect_uid) in [
        (None, 60, 0),
        (Some((4321, 4322)), 60, 4321),
        // The timeout must leave the script time to make its files even on a loaded
        // machine (with 1s, a slow container start made none and the test failed).
        (Some((4321, 4322)), 8, 4321),
    ] {
        if owner.is_none() && !root {
            continue;
        }
        let backend = backend_with(DockerSettings {
            file_owner: owner,
            ..DockerSettings::default()
        })
        .await;
        let (mut spec, ws) = job(
            "owner",
            &["mkdir -p out/deep", "echo x > out/deep/file", "sleep 30"],
        );
        spec.timeout = Duration::from_secs(timeout);
        if timeout == 60 {
            spec.script.pop();
        }
        let ran = run(&backend, &spec).await;
        let want = if timeout == 8 {
            Outcome::TimedOut
        } else {
            Outcome::Success
        };
        assert_eq!(ran.outcome(), &want, "{}", ran.log());
        for path in ["out", "out/deep", "out/deep/file"] {
            let meta = std::fs::metadata(ws.path().join(path)).expect(path);
            assert_eq!(meta.uid(), expect_uid, "{path} with owner {owner:?}");
            if let Some((_, gid)) = owner {
                assert_eq!(meta.gid(), gid, "{path}");
            }
        }
        assert_eq!(leftovers(&spec.run_id), Vec::<String>::new());
    }
}

#[tokio::test]
async fn a_missing_image_says_which_and_what_to_do() {
    let backend = backend().await;
    let (mut spec, _ws) = job("missing", &["true"]);
    spec.image = Some("gantry-test/no-such-image:1".into());
    let err = match backend.prepare(&spec).await {
        Ok(_) => panic!("prepare must fail"),
        Err(e) => e,
    };
    assert!(matches!(err, BackendError::Unsupported { .. }), "{err:?}");
    let msg = err.to_string();
    for part in [
        "job \"missing\" needs image gantry-test/no-such-image:1",
        "is not present locally and pulling it failed: ",
        "build it with `image_build`",
        "check the image name",
    ] {
        assert!(msg.contains(part), "{part:?} not in: {msg}");
    }
    assert_eq!(leftovers(&spec.run_id), Vec::<String>::new());
}

#[tokio::test]
async fn a_daemon_that_is_not_running_is_named_with_how_to_start_it() {
    let err = DockerBackend::connect_at(
        Some("unix:///nonexistent/gantry-test/docker.sock"),
        DockerSettings::default(),
    )
    .await
    .expect_err("no daemon there");
    assert!(matches!(err, BackendError::Unavailable { .. }), "{err:?}");
    assert_eq!(
        err.to_string(),
        "docker backend unavailable: the Docker daemon is not running or not reachable at \
         unix:///nonexistent/gantry-test/docker.sock (no socket at \
         /nonexistent/gantry-test/docker.sock); start it with `dockerd &` (as root) or \
         `systemctl start docker`, or run with --backend local"
    );
}

#[tokio::test]
async fn an_image_without_a_shell_is_a_clear_error() {
    let backend = backend().await;
    // An image made of one file and no shell: imported from a tar with a single file.
    let image = "gantry-test/no-shell:latest";
    if docker(&["image", "inspect", image]).is_none() {
        let dir = tempfile::tempdir().expect("tempdir");
        std::fs::write(dir.path().join("hello.txt"), "hi\n").expect("write");
        let status = std::process::Command::new("sh")
            .arg("-c")
            .arg(format!(
                "tar -C {} -c hello.txt | docker import - {image} >/dev/null",
                dir.path().display()
            ))
            .status()
            .expect("sh");
        assert!(status.success(), "docker import");
    }
    let (mut spec, _ws) = job("no-shell", &["true"]);
    spec.image = Some(image.into());
    let ran = run(&backend, &spec).await;
    let common::Ended::Script(err) = &ran.ended else {
        panic!("expected an error, got {:?}", ran.ended);
    };
    let msg = err.to_string();
    assert!(
        msg.starts_with(&format!("cannot start the job container (image {image}): "))
            && msg.ends_with("; the image must contain /bin/sh"),
        "{msg}"
    );
    ran.teardown.expect("teardown");
    assert_eq!(leftovers(&spec.run_id), Vec::<String>::new());
}

#[tokio::test]
async fn probe_names_the_engine() {
    let backend = backend().await;
    let info = backend.probe().await.expect("probe");
    assert_eq!(info.name, "docker");
    assert!(info.containers);
    assert!(
        info.version.starts_with("Docker Engine "),
        "{}",
        info.version
    );
}
