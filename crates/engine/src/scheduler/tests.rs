//! Scheduler and runner tests on the [`gantry_test_support::FakeBackend`].

use std::time::Duration;

use gantry_backend::Outcome;
use gantry_pipeline::RunOn;

use crate::testutil::{Opts, job, plan, run_plan, run_with};
use crate::{JobStatus, RunEvent, RunStatus};

#[tokio::test]
async fn a_job_starts_when_its_needs_finish_not_when_a_stage_does() {
    let p = plan(vec![
        job("slow").env("FAKE_SLEEP", "1s"),
        job("quick"),
        job("after-quick").needs(&["quick"]),
        job("after-slow").needs(&["slow"]),
    ]);
    let ran = run_plan(&p).await;
    assert_eq!(ran.summary.status, RunStatus::Succeeded);
    let fake = &ran.fake;
    assert!(fake.started_before_finished("after-quick", "slow"));
    assert!(fake.finished_before_started("quick", "after-quick"));
    assert!(fake.finished_before_started("slow", "after-slow"));
}

#[tokio::test]
async fn the_parallelism_limit_is_respected() {
    for limit in [1, 3] {
        let jobs = (0..6)
            .map(|i| job(&format!("j{i}")).env("FAKE_SLEEP", "150ms"))
            .collect();
        let ran = run_with(
            &plan(jobs),
            Opts {
                parallelism: limit,
                ..Opts::default()
            },
        )
        .await;
        assert_eq!(ran.fake.max_concurrency(), limit);
        assert_eq!(ran.summary.status, RunStatus::Succeeded);
    }
}

#[tokio::test]
async fn a_failure_skips_its_dependents_and_only_them() {
    let p = plan(vec![
        job("build").env("FAKE_EXIT", "2"),
        job("test").needs(&["build"]),
        job("package").needs(&["test"]),
        job("lint"),
        job("docs").needs(&["lint"]),
    ]);
    let ran = run_plan(&p).await;
    assert_eq!(
        ran.statuses(),
        [
            "build: failed",
            "test: skipped",
            "package: skipped",
            "lint: success",
            "docs: success"
        ]
    );
    assert_eq!(ran.reason("test"), "needs \"build\", which failed");
    assert_eq!(ran.reason("package"), "needs \"test\", which was skipped");
    assert_eq!(ran.summary.status, RunStatus::Failed);
    assert_eq!(
        ran.job("build").status,
        JobStatus::Failed {
            outcome: Outcome::Failed { exit_code: 2 },
            allowed: false
        }
    );
    assert_eq!(ran.fake.script_runs("test"), 0);
    assert_eq!(ran.job("test").attempts, 0);
}

#[tokio::test]
async fn allowed_failures_let_dependents_run_and_the_run_pass() {
    let p = plan(vec![
        job("flaky").env("FAKE_EXIT", "1").allow_failure(),
        job("next").needs(&["flaky"]),
    ]);
    let ran = run_plan(&p).await;
    assert_eq!(ran.statuses(), ["flaky: allowed-failure", "next: success"]);
    assert_eq!(ran.summary.status, RunStatus::Succeeded);
}

#[tokio::test]
async fn retries_rerun_failed_attempts_up_to_the_limit() {
    let p = plan(vec![
        job("recovers").env("FAKE_FAIL_ATTEMPTS", "2").retry(2),
        job("gives-up").env("FAKE_FAIL_ATTEMPTS", "2").retry(1),
        job("once").env("FAKE_EXIT", "1"),
    ]);
    let ran = run_plan(&p).await;
    assert_eq!(
        ran.statuses(),
        ["recovers: success", "gives-up: failed", "once: failed"]
    );
    let attempts: Vec<u32> = ran.summary.jobs.iter().map(|j| j.attempts).collect();
    assert_eq!(attempts, [3, 2, 1]);
    assert_eq!(ran.fake.script_runs("recovers"), 3);
    let started: Vec<u32> = ran
        .events
        .iter()
        .filter_map(|e| match e {
            RunEvent::JobStarted {
                job: 0, attempt, ..
            } => Some(*attempt),
            _ => None,
        })
        .collect();
    assert_eq!(started, [1, 2, 3]);
    let logs = ran.logs("recovers");
    assert!(
        logs.iter()
            .any(|l| l == "attempt 1 failed with exit code 1; retrying (1 retry left)"),
        "{logs:?}"
    );
}

#[tokio::test]
async fn each_attempt_starts_from_a_pristine_workspace() {
    let p = plan(vec![
        job("dirty")
            .env("FAKE_FAIL_ATTEMPTS", "1")
            .env("FAKE_WRITE", "scratch.txt=from an attempt")
            .retry(1),
    ]);
    let ran = run_plan(&p).await;
    assert_eq!(ran.statuses(), ["dirty: success"]);
    let seen = ran
        .fake
        .seen_files("dirty")
        .expect("the second attempt ran");
    assert!(!seen.contains_key("scratch.txt"), "{seen:?}");
    assert!(seen.contains_key("src/main.c"));
}

#[tokio::test]
async fn infrastructure_errors_are_retried_once() {
    let p = plan(vec![
        job("blip").env("FAKE_START_FAIL_ATTEMPTS", "1"),
        job("down").env("FAKE_START_FAIL", "1").retry(5),
        job("broken-runner").env("FAKE_SCRIPT_ERR", "1"),
    ]);
    let ran = run_plan(&p).await;
    assert_eq!(
        ran.statuses(),
        ["blip: success", "down: error", "broken-runner: error"]
    );
    // The infrastructure budget is one retry, whatever `retry` says.
    assert_eq!(ran.job("down").attempts, 2);
    assert_eq!(ran.fake.prepares("down"), 2);
    assert!(
        ran.reason("down").starts_with("fake: prepare failed"),
        "{}",
        ran.reason("down")
    );
    assert_eq!(ran.summary.status, RunStatus::Failed);
}

#[tokio::test]
async fn timeouts_end_as_timed_out_and_are_retried() {
    let p = plan(vec![
        job("stuck")
            .env("FAKE_SLEEP", "30s")
            .timeout(Duration::from_millis(50))
            .retry(1),
    ]);
    let ran = run_plan(&p).await;
    assert_eq!(
        ran.job("stuck").status,
        JobStatus::Failed {
            outcome: Outcome::TimedOut,
            allowed: false
        }
    );
    assert_eq!(ran.job("stuck").attempts, 2);
    assert_eq!(ran.fake.teardowns("stuck"), 2);
}

#[tokio::test]
async fn fail_fast_cancels_running_jobs_and_starts_no_new_ones() {
    let p = plan(vec![
        job("fails")
            .env("FAKE_SLEEP", "100ms")
            .env("FAKE_EXIT", "1"),
        job("long").env("FAKE_SLEEP", "30s"),
        job("after-long").needs(&["long"]),
        job("cleanup").run_on(RunOn::Failure),
        job("report").needs(&["long"]).run_on(RunOn::Always),
    ]);
    let opts = Opts {
        fail_fast: true,
        ..Opts::default()
    };
    let ran = run_with(&p, opts).await;
    assert_eq!(
        ran.statuses(),
        [
            "fails: failed",
            "long: cancelled",
            "after-long: skipped",
            "cleanup: success",
            "report: success"
        ]
    );
    assert_eq!(
        ran.reason("after-long"),
        "not started: --fail-fast stopped the run after \"fails\" failed"
    );
    assert_eq!(ran.summary.status, RunStatus::Failed);
    assert_eq!(ran.fake.teardowns("long"), 1);
}

#[tokio::test]
async fn without_fail_fast_independent_jobs_continue() {
    let p = plan(vec![
        job("fails").env("FAKE_EXIT", "1"),
        job("long").env("FAKE_SLEEP", "200ms"),
        job("after-long").needs(&["long"]),
    ]);
    let ran = run_plan(&p).await;
    assert_eq!(
        ran.statuses(),
        ["fails: failed", "long: success", "after-long: success"]
    );
}

#[tokio::test]
async fn failure_and_always_jobs_when_everything_passes() {
    let p = plan(vec![
        job("build"),
        job("on-failure").needs(&["build"]).run_on(RunOn::Failure),
        job("always").needs(&["build"]).run_on(RunOn::Always),
        job("cleanup").run_on(RunOn::Failure),
    ]);
    let ran = run_plan(&p).await;
    assert_eq!(
        ran.statuses(),
        [
            "build: success",
            "on-failure: skipped",
            "always: success",
            "cleanup: skipped"
        ]
    );
    assert_eq!(
        ran.reason("cleanup"),
        "nothing failed (when: { status: failure })"
    );
    assert_eq!(ran.summary.status, RunStatus::Succeeded);
}

#[tokio::test]
async fn failure_and_always_jobs_after_a_failure() {
    let p = plan(vec![
        job("build")
            .env("FAKE_SLEEP", "200ms")
            .env("FAKE_EXIT", "1"),
        job("test").needs(&["build"]),
        job("on-failure").needs(&["build"]).run_on(RunOn::Failure),
        job("always").needs(&["test"]).run_on(RunOn::Always),
        job("cleanup").run_on(RunOn::Failure),
    ]);
    let ran = run_plan(&p).await;
    assert_eq!(
        ran.statuses(),
        [
            "build: failed",
            "test: skipped",
            "on-failure: success",
            "always: success",
            "cleanup: success"
        ]
    );
    // With no needs, a failure job still waits for the failure it reacts to.
    assert!(ran.fake.finished_before_started("build", "cleanup"));
    assert_eq!(ran.summary.status, RunStatus::Failed);
}

#[tokio::test]
async fn a_failure_job_that_others_need_does_not_deadlock() {
    let p = plan(vec![
        job("a"),
        job("notify").run_on(RunOn::Failure),
        job("after-notify").needs(&["notify"]).run_on(RunOn::Always),
        job("b").needs(&["after-notify"]),
    ]);
    let ran = run_plan(&p).await;
    assert_eq!(
        ran.statuses(),
        [
            "a: success",
            "notify: skipped",
            "after-notify: success",
            "b: success"
        ]
    );
}

#[tokio::test]
async fn excluded_jobs_are_skipped_with_their_dependents() {
    let p = plan(vec![
        job("build"),
        job("deploy")
            .needs(&["build"])
            .excluded("when: branch \"feature\" is not \"main\""),
        job("smoke").needs(&["deploy"]),
        job("report").needs(&["deploy"]).run_on(RunOn::Always),
    ]);
    let ran = run_plan(&p).await;
    assert_eq!(
        ran.statuses(),
        [
            "build: success",
            "deploy: skipped",
            "smoke: skipped",
            "report: success"
        ]
    );
    assert_eq!(
        ran.reason("deploy"),
        "when: branch \"feature\" is not \"main\""
    );
    assert_eq!(ran.reason("smoke"), "needs \"deploy\", which was skipped");
    assert_eq!(ran.summary.status, RunStatus::Succeeded);
}

#[tokio::test]
async fn cancelling_kills_running_jobs_tears_down_and_cancels_the_rest() {
    let p = plan(vec![
        job("long").env("FAKE_SLEEP", "30s"),
        job("next").needs(&["long"]),
        job("always").needs(&["long"]).run_on(RunOn::Always),
    ]);
    let opts = Opts {
        cancel_after_start_of: Some("long".into()),
        ..Opts::default()
    };
    let ran = run_with(&p, opts).await;
    assert_eq!(
        ran.statuses(),
        ["long: cancelled", "next: cancelled", "always: cancelled"]
    );
    assert_eq!(ran.summary.status, RunStatus::Cancelled);
    assert_eq!(ran.fake.teardowns("long"), 1);
    assert!(matches!(
        ran.events.last(),
        Some(RunEvent::RunFinished {
            status: RunStatus::Cancelled,
            ..
        })
    ));
}

#[tokio::test]
async fn dropping_the_run_still_cancels_and_tears_down_its_jobs() {
    use std::sync::Arc;
    let fake = gantry_test_support::FakeBackend::new();
    let source = crate::testutil::source_tree();
    let run_dir = gantry_test_support::TempTree::new();
    let p = plan(vec![job("long").env("FAKE_SLEEP", "30s")]);
    let backends = crate::Backends {
        host: Arc::new(fake.clone()),
        containers: None,
    };
    let config = crate::RunConfig {
        run_id: "r".into(),
        run_dir: run_dir.path().to_path_buf(),
        source: crate::Source::from_dir(source.path()).expect("list"),
        parallelism: 1,
        fail_fast: false,
        secrets: Default::default(),
        keep_workspaces: false,
        caches: None,
    };
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    let task =
        tokio::spawn(
            async move { crate::run(&p, &backends, config, tx, Default::default()).await },
        );
    // Wait until the script runs, then drop the run's future.
    while let Some(event) = rx.recv().await {
        if let RunEvent::JobLog { line, .. } = event
            && line.text.starts_with("+ ")
        {
            break;
        }
    }
    task.abort();
    assert!(task.await.is_err_and(|e| e.is_cancelled()));
    // The detached job sees the cancel and tears down by itself.
    for _ in 0..500 {
        if fake.teardowns("long") == 1 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(fake.teardowns("long"), 1);
    assert_eq!(fake.open_envs(), 0);
    let finished = fake.records().into_iter().find_map(|r| match r.phase {
        gantry_test_support::Phase::ScriptFinished(outcome) => outcome,
        _ => None,
    });
    assert_eq!(finished, Some(Outcome::Cancelled));
}

#[tokio::test]
async fn teardown_runs_after_a_service_fails_and_the_job_errors() {
    let p = plan(vec![
        job("integration")
            .image("tools")
            .service("db", &[("FAKE_LOG", "db booting")])
            .env("FAKE_SERVICE_FAIL", "db"),
    ]);
    let ran = run_plan(&p).await;
    assert_eq!(ran.statuses(), ["integration: error"]);
    assert_eq!(
        ran.reason("integration"),
        "service \"db\" did not become ready (fake)"
    );
    assert_eq!(ran.fake.teardowns("integration"), 1);
    assert_eq!(ran.fake.script_runs("integration"), 0);
    let logs = ran.logs("integration");
    assert!(logs.contains(&"db booting".to_string()), "{logs:?}");
    assert!(
        logs.contains(&"db: fake last words".to_string()),
        "{logs:?}"
    );
}

#[tokio::test]
async fn container_jobs_without_a_container_backend_error_clearly() {
    let p = plan(vec![
        job("integration").image("test-tools").service("db", &[]),
        job("unit"),
        job("after").needs(&["integration"]),
    ]);
    let opts = Opts {
        host_only: true,
        ..Opts::default()
    };
    let ran = run_with(&p, opts).await;
    assert_eq!(
        ran.statuses(),
        ["integration: error", "unit: success", "after: skipped"]
    );
    assert_eq!(
        ran.reason("integration"),
        "job \"integration\" needs a container (image: test-tools, services: db) but no \
         container backend is available; start Docker (`dockerd`) and use --backend auto or docker"
    );
    assert_eq!(ran.job("integration").attempts, 1, "not retried");
    assert_eq!(ran.fake.prepares("integration"), 0);
    assert_eq!(
        ran.reason("after"),
        "needs \"integration\", which had an error"
    );
}

#[tokio::test]
async fn container_jobs_go_to_the_container_backend_with_their_settings() {
    let mut build = job("package");
    build.job.image_build = Some(gantry_pipeline::ImageBuild {
        context: "app".into(),
        dockerfile: "Dockerfile".into(),
        tags: vec!["app:1".into()],
        args: Default::default(),
        push: false,
    });
    let p = plan(vec![
        job("integration").image("test-tools").service("db", &[]),
        build,
        job("host"),
    ]);
    let ran = run_plan(&p).await;
    assert_eq!(
        ran.statuses(),
        ["integration: success", "package: success", "host: success"]
    );
    let spec = ran.fake.spec("integration").expect("prepared");
    assert_eq!(spec.image.as_deref(), Some("test-tools"));
    assert_eq!(spec.services[0].name, "db");
    let var = |spec: &gantry_backend::JobSpec, name: &str| {
        spec.env
            .iter()
            .rev()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.clone())
    };
    assert_eq!(
        var(&spec, "GANTRY_WORKSPACE").as_deref(),
        Some("/workspace")
    );
    let package = ran.fake.spec("package").expect("prepared");
    assert_eq!(
        package.image_build.map(|b| b.tags),
        Some(vec!["app:1".to_string()])
    );
    let host = ran.fake.spec("host").expect("prepared");
    assert_eq!(
        var(&host, "GANTRY_WORKSPACE").map(std::path::PathBuf::from),
        Some(host.workspace_dir.clone())
    );
    assert!(
        host.workspace_dir
            .starts_with(ran.run_dir.path().join("work"))
    );
    assert!(host.labels.contains(&("gantry.run".into(), "run-1".into())));
}

#[tokio::test]
async fn secrets_reach_the_job_and_are_masked_everywhere() {
    let p = plan(vec![
        job("deploy")
            .secret("TOKEN", "deploy-token")
            .env("FAKE_LOG", "using s3cr3t-value now\neven xy goes")
            .service("api", &[("FAKE_LOG", "api got s3cr3t-value")])
            .image("tools"),
        job("forgot").secret("KEY", "missing-one"),
    ]);
    let opts = Opts {
        secrets: [
            ("deploy-token".to_string(), "s3cr3t-value".to_string()),
            ("tiny".to_string(), "xy".to_string()),
        ]
        .into(),
        ..Opts::default()
    };
    let ran = run_with(&p, opts).await;
    assert_eq!(ran.statuses(), ["deploy: success", "forgot: error"]);
    let spec = ran.fake.spec("deploy").expect("prepared");
    assert!(spec.env.contains(&("TOKEN".into(), "s3cr3t-value".into())));
    let logs = ran.logs("deploy");
    assert!(logs.contains(&"using *** now".to_string()), "{logs:?}");
    assert!(logs.contains(&"api got ***".to_string()), "{logs:?}");
    assert!(logs.contains(&"even *** goes".to_string()), "{logs:?}");
    assert!(!logs.iter().any(|l| l.contains("s3cr3t-value")));
    assert_eq!(
        ran.reason("forgot"),
        "secret \"missing-one\" is not set; pass --secret missing-one=VALUE or a secrets file"
    );
}

#[tokio::test]
async fn a_job_sees_the_artifacts_of_its_needs_but_never_their_scratch_files() {
    let p = plan(vec![
        job("build")
            .env(
                "FAKE_WRITE",
                "out/app=binary;scratch.o=temp;src/main.c=edited",
            )
            .artifacts(&["out"]),
        job("test")
            .needs(&["build"])
            .env("FAKE_WRITE", "report.xml=ok")
            .artifacts(&["report.xml"]),
        job("package").needs(&["test"]),
        job("unrelated"),
    ]);
    let ran = run_plan(&p).await;
    assert!(ran.statuses().iter().all(|s| s.ends_with("success")));
    let seen = |name: &str| ran.fake.seen_files(name).expect("ran");
    let test = seen("test");
    assert_eq!(test.get("out/app").map(String::as_str), Some("binary"));
    assert!(!test.contains_key("scratch.o"));
    // An in-place edit of a source file is the job's own business.
    assert_eq!(
        test.get("src/main.c").map(String::as_str),
        Some("int main() {}\n")
    );
    // Transitive needs' artifacts are restored too.
    let package = seen("package");
    assert!(package.contains_key("out/app") && package.contains_key("report.xml"));
    let unrelated = seen("unrelated");
    assert!(!unrelated.contains_key("out/app"));
    assert_eq!(
        unrelated.get("build.sh").map(String::as_str),
        Some("#!/bin/sh\n")
    );
}

#[tokio::test]
async fn artifacts_are_stored_listed_and_deduplicated() {
    let p = plan(vec![
        job("a")
            .env("FAKE_WRITE", "dist/x.txt=same;dist/y.txt=other")
            .artifacts(&["dist/*.txt", "nothing/*"]),
        job("b")
            .env("FAKE_WRITE", "copy.txt=same")
            .artifacts(&["copy.txt"]),
    ]);
    let ran = run_plan(&p).await;
    let listed: Vec<(usize, &str, u64)> = ran
        .summary
        .artifacts
        .iter()
        .map(|a| (a.job, a.path.as_str(), a.size))
        .collect();
    assert_eq!(
        listed,
        [
            (0, "dist/x.txt", 4),
            (0, "dist/y.txt", 5),
            (1, "copy.txt", 4)
        ]
    );
    assert_eq!(
        ran.summary.artifacts[0].digest,
        ran.summary.artifacts[2].digest
    );
    let stored = ran
        .events
        .iter()
        .filter(|e| matches!(e, RunEvent::ArtifactStored { .. }))
        .count();
    assert_eq!(stored, 3);
    let objects = ran.run_dir.join("artifacts/objects");
    let count = std::fs::read_dir(&objects)
        .expect("objects")
        .flatten()
        .filter(|d| d.path().is_dir())
        .map(|d| std::fs::read_dir(d.path()).expect("dir").count())
        .sum::<usize>();
    assert_eq!(count, 2, "equal content is stored once");
    assert!(ran.run_dir.join("artifacts/a.json").is_file());
    assert!(
        ran.logs("a").contains(
            &"warning: artifact pattern \"nothing/*\" matched no file; nothing stored for it"
                .to_string()
        )
    );
}

#[tokio::test]
async fn workspaces_are_removed_unless_kept() {
    let p = plan(vec![job("a")]);
    let ran = run_plan(&p).await;
    assert!(!ran.run_dir.join("work").exists());
    assert!(!ran.run_dir.join("source").exists());

    let ran = run_with(
        &p,
        Opts {
            keep_workspaces: true,
            ..Opts::default()
        },
    )
    .await;
    assert!(ran.run_dir.join("work/a/src/main.c").is_file());
}

#[test]
fn job_keys_are_safe_and_unique() {
    let p = plan(vec![
        job("build (GO=1.18)"),
        job("Build (go 1.18)"),
        job("!!!"),
        job("deploy-staging"),
    ]);
    assert_eq!(
        crate::job_keys(&p),
        ["build-go-1-18", "build-go-1-18-1", "job", "deploy-staging"]
    );
}
