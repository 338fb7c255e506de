//! Runs through the server: creation from a real repository, invalid pipelines, DAG
//! progression through leases, fencing, lease expiry, concurrency groups, cancel and
//! rerun-failed — with a real SQLite store and the in-process job source driven by hand.

#![allow(clippy::unwrap_used)]

mod common;

use std::collections::BTreeMap;
use std::time::Duration;

use axum::http::StatusCode;
use common::{Fixture, executor, failed, finish};
use gantry_engine::artifacts::{Manifest, ManifestEntry};
use gantry_protocol::{Finish, JobReport, LeaseError, LeaseState};
use gantry_store::{JobState, RunState};
use serde_json::json;
use sha2::{Digest, Sha256};

const DAG: &str = "\
on:
  push: [main]
params:
  WHAT:
    type: ref
    default: main
  DEBUG:
    type: bool
jobs:
  build:
    script: [make]
    artifacts: [out/app]
  test:
    needs: [build]
    script: [make test]
  deploy:
    needs: [test]
    script: [deploy]
  cleanup:
    when: { status: failure }
    script: [cleanup]
";

#[tokio::test]
async fn manual_run_from_a_real_commit() {
    let f = Fixture::new(DAG).await;
    let run = f.trigger(json!({ "params": { "DEBUG": "true" } })).await;
    assert_eq!(run["repo"], "app");
    assert_eq!(run["pipeline"], "app");
    assert_eq!(run["number"], 1);
    assert_eq!(run["ref"], "refs/heads/main");
    assert_eq!(run["commit"], f.head());
    assert_eq!(run["event"], "manual");
    assert_eq!(run["cause"], "Started manually by admin");
    assert_eq!(run["params"], json!({ "DEBUG": "true", "WHAT": "main" }));
    let id = run["id"].as_i64().unwrap();
    let states = f.states(id).await;
    assert_eq!(states["build"], JobState::Queued);
    assert_eq!(states["test"], JobState::Pending);
    assert_eq!(states["cleanup"], JobState::Pending);
    // The lease carries the plan, the source and the job.
    let lease = f.lease().await;
    assert_eq!(lease.run_id, id);
    assert_eq!(lease.plan.jobs[lease.job_index].name, "build");
    assert_eq!(lease.job_key, "build");
    assert_eq!(lease.attempt, 1);
    assert_eq!(lease.source.commit, f.head());
    assert_eq!(lease.source.git_ref, "refs/heads/main");
    assert_eq!(f.run(id).await.state, RunState::Running);
    // A second manual run gets the next number.
    let second = f.trigger(json!({})).await;
    assert_eq!(second["number"], 2);
}

#[tokio::test]
async fn manual_params_are_validated_naming_the_param() {
    let f = Fixture::new(DAG).await;
    let check = |params: serde_json::Value, needle: &'static str| {
        let f = &f;
        async move {
            let (status, body) = f
                .call(
                    "POST",
                    "/api/repos/app/trigger",
                    Some(json!({ "params": params })),
                )
                .await;
            assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
            let msg = body["error"].as_str().unwrap();
            assert!(msg.contains(needle), "{msg}");
        }
    };
    check(json!({ "DEBUG": "maybe" }), "\"DEBUG\"").await;
    check(json!({ "NOPE": "1" }), "unknown param \"NOPE\"").await;
    // Nothing was created.
    let (_, page) = f.call("GET", "/api/runs", None).await;
    assert_eq!(page["runs"], json!([]));
}

#[tokio::test]
async fn invalid_pipeline_makes_an_errored_run_with_diagnostics() {
    let f = Fixture::new(DAG).await;
    f.commit_pipeline("jobs:\n  build:\n    scrip: [make]\n");
    let run = f.trigger(json!({})).await;
    assert_eq!(run["state"], "errored");
    let error = run["error"].as_str().unwrap();
    assert!(error.contains("unknown key \"scrip\""), "{error}");
    assert!(error.contains("gantry.yml:3:5"), "{error}");
    let id = run["id"].as_i64().unwrap();
    let (status, log) = f.call("GET", &format!("/api/runs/{id}/log"), None).await;
    assert_eq!(status, StatusCode::OK);
    let log = log.as_str().unwrap();
    assert!(log.contains("cannot be run"), "{log}");
    assert!(log.contains("unknown key \"scrip\""), "{log}");
    assert!(f.try_lease().await.is_none());
}

#[tokio::test]
async fn dag_progresses_through_leases_and_skips_propagate() {
    let f = Fixture::new(DAG).await;
    let id = f.trigger(json!({})).await["id"].as_i64().unwrap();
    let build = f.lease().await;
    assert_eq!(build.job_key, "build");
    // Nothing else is ready while build runs.
    assert!(f.try_lease().await.is_none());
    f.finish(&build, failed()).await;
    let jobs = f.jobs(id).await;
    let by = |n: &str| jobs.iter().find(|j| j.name == n).unwrap().clone();
    assert_eq!(by("build").state, JobState::Failed);
    assert_eq!(by("build").exit_code, Some(3));
    assert_eq!(by("test").state, JobState::Skipped);
    assert!(by("test").message.unwrap().contains("build"));
    assert_eq!(by("deploy").state, JobState::Skipped);
    assert_eq!(by("cleanup").state, JobState::Queued);
    let cleanup = f.lease().await;
    assert_eq!(cleanup.job_key, "cleanup");
    // Cleanup gets the artifacts of nothing: it needs nothing.
    assert!(cleanup.restore.is_empty());
    f.finish(&cleanup, JobReport::Succeeded).await;
    let run = f.run(id).await;
    assert_eq!(run.state, RunState::Failed);
    assert!(run.finished_at.is_some());
}

#[tokio::test]
async fn success_path_runs_every_job_in_order() {
    let f = Fixture::new(DAG).await;
    let id = f.trigger(json!({})).await["id"].as_i64().unwrap();
    for expect in ["build", "test", "deploy"] {
        let lease = f.lease().await;
        assert_eq!(lease.job_key, expect);
        f.finish(&lease, JobReport::Succeeded).await;
    }
    let states = f.states(id).await;
    assert_eq!(states["cleanup"], JobState::Skipped);
    assert_eq!(f.run(id).await.state, RunState::Succeeded);
}

#[tokio::test]
async fn fencing_refuses_an_expired_lease_and_changes_nothing() {
    let f = Fixture::new(DAG).await;
    let id = f.trigger(json!({})).await["id"].as_i64().unwrap();
    let old = f.lease_as("exec-a").await;
    // exec-a is declared dead: its lease expires and the job is queued again.
    let n = gantry_server::loops::expire(f.server.state(), Some("exec-a"))
        .await
        .unwrap();
    assert_eq!(n, 1);
    let build = f
        .jobs(id)
        .await
        .into_iter()
        .find(|j| j.name == "build")
        .unwrap();
    assert_eq!(build.state, JobState::Queued);
    // Every call under the old lease is refused.
    let stale =
        |r: Result<(), LeaseError>| assert!(matches!(r, Err(LeaseError::Stale { .. })), "{r:?}");
    stale(f.source.finish(&old.id, finish(JobReport::Succeeded)).await);
    stale(
        f.source
            .append_log(
                &old.id,
                gantry_protocol::LogChunk {
                    seq: 0,
                    lines: vec![],
                },
            )
            .await,
    );
    let hb = f.source.heartbeat(&old.id).await;
    assert!(
        matches!(hb, Ok(LeaseState::Lost) | Err(LeaseError::Stale { .. })),
        "{hb:?}"
    );
    let after = f
        .jobs(id)
        .await
        .into_iter()
        .find(|j| j.name == "build")
        .unwrap();
    assert_eq!(after, build, "a stale report changed the job");
    // The job runs again as attempt 2.
    let new = f.lease_as("exec-b").await;
    assert_eq!(new.job_key, "build");
    assert_eq!(new.attempt, 2);
    assert_ne!(new.id, old.id);
    f.finish(&new, JobReport::Succeeded).await;
    let (_, log) = f
        .call("GET", &format!("/api/runs/{id}/jobs/build/log"), None)
        .await;
    let log = log.as_str().unwrap();
    assert!(
        log.contains("agent exec-a was lost (its lease expired) during attempt 1"),
        "{log}"
    );
    assert!(log.contains("attempt 2 on exec-b"), "{log}");
}

#[tokio::test]
async fn leases_run_out_of_attempts() {
    let f = Fixture::with(DAG, |c| c.max_attempts = 2).await;
    let id = f.trigger(json!({})).await["id"].as_i64().unwrap();
    for _ in 0..2 {
        f.lease_as("dies").await;
        gantry_server::loops::expire(f.server.state(), Some("dies"))
            .await
            .unwrap();
    }
    let states = f.states(id).await;
    assert_eq!(states["build"], JobState::Errored);
    assert_eq!(states["test"], JobState::Skipped);
    // The failure lets the cleanup job run.
    assert_eq!(states["cleanup"], JobState::Queued);
}

#[tokio::test]
async fn builtin_leases_are_requeued_at_start() {
    let f = Fixture::new(DAG).await;
    let id = f.trigger(json!({})).await["id"].as_i64().unwrap();
    let lease = f.lease_as("builtin").await;
    // What a restart does with the leases of the executor that died with the process.
    gantry_server::server::recover(f.server.state())
        .await
        .unwrap();
    let build = f
        .jobs(id)
        .await
        .into_iter()
        .find(|j| j.name == "build")
        .unwrap();
    assert_eq!(build.state, JobState::Queued);
    let again = f.lease_as("builtin").await;
    assert_eq!(again.attempt, 2);
    assert!(
        f.source
            .finish(&lease.id, finish(JobReport::Succeeded))
            .await
            .is_err()
    );
}

const GROUPED: &str = "\
concurrency: { group: deploy, limit: 1 }
jobs:
  ship:
    script: [ship]
";

#[tokio::test]
async fn concurrency_group_admits_runs_in_order() {
    let f = Fixture::new(GROUPED).await;
    let mut ids = Vec::new();
    for _ in 0..3 {
        ids.push(f.trigger(json!({})).await["id"].as_i64().unwrap());
    }
    assert_eq!(f.states(ids[1]).await["ship"], JobState::Pending);
    for &id in &ids {
        let lease = f.lease().await;
        assert_eq!(
            lease.run_id, id,
            "runs of the group run first come first served"
        );
        // The next run waits while this one holds the group's only slot.
        assert!(f.try_lease().await.is_none());
        f.finish(&lease, JobReport::Succeeded).await;
        assert_eq!(f.run(id).await.state, RunState::Succeeded);
    }
}

const TWO: &str = "\
jobs:
  a:
    script: [a]
  b:
    needs: [a]
    script: [b]
";

#[tokio::test]
async fn cancel_stops_running_and_waiting_jobs() {
    let f = Fixture::new(TWO).await;
    let id = f.trigger(json!({})).await["id"].as_i64().unwrap();
    let a = f.lease().await;
    let (status, run) = f
        .call("POST", &format!("/api/runs/{id}/cancel"), None)
        .await;
    assert_eq!(status, StatusCode::OK, "{run}");
    assert_eq!(run["cancel_requested"], true);
    assert_eq!(f.states(id).await["b"], JobState::Cancelled);
    // The running job learns at its heartbeat.
    assert_eq!(
        f.source.heartbeat(&a.id).await.unwrap(),
        LeaseState::Cancelled
    );
    f.finish(&a, JobReport::Cancelled).await;
    assert_eq!(f.run(id).await.state, RunState::Cancelled);
    assert!(f.try_lease().await.is_none());

    // A run cancelled before anything started ends at once.
    let id = f.trigger(json!({})).await["id"].as_i64().unwrap();
    let (_, run) = f
        .call("POST", &format!("/api/runs/{id}/cancel"), None)
        .await;
    assert_eq!(run["state"], "cancelled");
    assert!(f.try_lease().await.is_none());
}

#[tokio::test]
async fn rerun_failed_reuses_artifacts_of_succeeded_jobs() {
    let f = Fixture::new(TWO).await;
    let id = f.trigger(json!({})).await["id"].as_i64().unwrap();
    let a = f.lease().await;
    // a uploads one artifact and succeeds.
    let content = b"binary\n";
    let digest = hex::encode(Sha256::digest(content));
    let file = f.data.path().join("upload");
    std::fs::write(&file, content).unwrap();
    f.source.put_artifact(&a.id, &digest, &file).await.unwrap();
    let manifest = Manifest {
        job: "a".into(),
        files: BTreeMap::from([(
            "out/app".to_string(),
            ManifestEntry {
                digest: digest.clone(),
                size: content.len() as u64,
                mode: 0o755,
            },
        )]),
    };
    f.source
        .finish(
            &a.id,
            Finish {
                report: JobReport::Succeeded,
                attempts: 1,
                duration_ms: 1,
                manifest: Some(manifest.clone()),
            },
        )
        .await
        .unwrap();
    let b = f.lease().await;
    assert_eq!(b.restore, vec![manifest.clone()]);
    f.finish(&b, failed()).await;
    assert_eq!(f.run(id).await.state, RunState::Failed);

    let (status, rerun) = f
        .call(
            "POST",
            &format!("/api/runs/{id}/rerun"),
            Some(json!({ "failed_only": true })),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{rerun}");
    assert_eq!(rerun["rerun_of"], id);
    assert_eq!(rerun["cause"], "Rerun of failed jobs of #1 by admin");
    let new_id = rerun["id"].as_i64().unwrap();
    let jobs = f.jobs(new_id).await;
    assert_eq!(jobs[0].state, JobState::Succeeded);
    assert!(
        jobs[0]
            .message
            .as_deref()
            .unwrap()
            .contains("reused from run #1")
    );
    // Only b runs again, with a's artifacts from the first run.
    let b2 = f.lease().await;
    assert_eq!(b2.run_id, new_id);
    assert_eq!(b2.job_key, "b");
    assert_eq!(b2.restore, vec![manifest]);
    let dest = f.data.path().join("restored/app");
    f.source.get_artifact(&b2.id, &digest, &dest).await.unwrap();
    assert_eq!(std::fs::read(&dest).unwrap(), content);
    f.finish(&b2, JobReport::Succeeded).await;
    assert_eq!(f.run(new_id).await.state, RunState::Succeeded);
    let (_, list) = f
        .call("GET", &format!("/api/runs/{new_id}/artifacts"), None)
        .await;
    assert_eq!(list[0]["path"], "out/app");
    assert_eq!(list[0]["digest"], digest.as_str());
    let (status, body) = f
        .raw(
            axum::http::Request::get(format!("/api/runs/{new_id}/artifacts/a/out/app"))
                .header("authorization", format!("Bearer {}", f.token))
                .body(axum::body::Body::empty())
                .unwrap(),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body, content);

    // A full rerun runs every job again.
    let (status, full) = f
        .call("POST", &format!("/api/runs/{new_id}/rerun"), None)
        .await;
    assert_eq!(status, StatusCode::CREATED, "{full}");
    assert_eq!(
        f.states(full["id"].as_i64().unwrap()).await["a"],
        JobState::Queued
    );
}

#[tokio::test]
async fn artifacts_must_match_their_digest_and_be_uploaded() {
    let f = Fixture::new(TWO).await;
    let id = f.trigger(json!({})).await["id"].as_i64().unwrap();
    let a = f.lease().await;
    let file = f.data.path().join("upload");
    std::fs::write(&file, b"real").unwrap();
    let wrong = hex::encode(Sha256::digest(b"other"));
    let err = f
        .source
        .put_artifact(&a.id, &wrong, &file)
        .await
        .unwrap_err();
    assert!(matches!(err, LeaseError::Invalid(_)), "{err:?}");
    // Finishing with a manifest naming a blob never uploaded errors the job.
    let manifest = Manifest {
        job: "a".into(),
        files: BTreeMap::from([(
            "x".to_string(),
            ManifestEntry {
                digest: wrong,
                size: 4,
                mode: 0o644,
            },
        )]),
    };
    f.source
        .finish(
            &a.id,
            Finish {
                report: JobReport::Succeeded,
                attempts: 1,
                duration_ms: 1,
                manifest: Some(manifest),
            },
        )
        .await
        .unwrap();
    let job = f.jobs(id).await.remove(0);
    assert_eq!(job.state, JobState::Errored);
    assert!(job.message.unwrap().contains("not uploaded"));
}

#[tokio::test]
async fn lease_waits_for_work_and_refuses_other_protocols() {
    let f = Fixture::new(TWO).await;
    let source = f.source.clone();
    // A lease asked for before any run exists is handed the job once it is queued.
    let waiting =
        tokio::spawn(async move { source.lease(&executor("w"), Duration::from_secs(60)).await });
    let id = f.trigger(json!({})).await["id"].as_i64().unwrap();
    let lease = waiting.await.unwrap().unwrap().unwrap();
    assert_eq!(lease.run_id, id);
    let mut old = executor("old");
    old.protocol = 0;
    let err = f.source.lease(&old, Duration::ZERO).await.unwrap_err();
    assert!(matches!(err, LeaseError::Incompatible { .. }), "{err:?}");
}

#[tokio::test]
async fn concurrency_limit_two_lets_two_runs_in() {
    let f = Fixture::new(&GROUPED.replace("limit: 1", "limit: 2")).await;
    let mut ids = Vec::new();
    for _ in 0..3 {
        ids.push(f.trigger(json!({})).await["id"].as_i64().unwrap());
    }
    let first = f.lease().await;
    let second = f.lease().await;
    assert_eq!((first.run_id, second.run_id), (ids[0], ids[1]));
    assert!(f.try_lease().await.is_none());
    f.finish(&second, JobReport::Succeeded).await;
    let third = f.lease().await;
    assert_eq!(third.run_id, ids[2]);
}

#[tokio::test]
async fn a_restart_keeps_runs_and_logs_and_requeues_builtin_jobs() {
    let f = Fixture::new(TWO).await;
    let id = f.trigger(json!({})).await["id"].as_i64().unwrap();
    let queued = f.trigger(json!({})).await["id"].as_i64().unwrap();
    let lease = f.lease_as(gantry_server::BUILTIN_EXECUTOR).await;
    f.log(&lease.id, 0, &["before the crash"]).await;
    let Fixture {
        data,
        repo: _repo,
        server,
        pg,
        ..
    } = f;
    server.shutdown().await;

    let server = common::start_server(common::config(data.path()), &pg).await;
    assert_eq!(server.admin_token(), None, "the admin token is made once");
    let store = &server.state().store;
    let jobs = store.jobs(id).await.unwrap();
    assert_eq!(jobs[0].state, JobState::Queued);
    assert_eq!(store.run(queued).await.unwrap().state, RunState::Queued);
    // The job runs again as a new attempt; the old lease is dead.
    let source = server.job_source();
    let again = source
        .lease(
            &executor(gantry_server::BUILTIN_EXECUTOR),
            Duration::from_secs(60),
        )
        .await
        .unwrap()
        .unwrap();
    assert_eq!((again.run_id, again.attempt), (id, 2));
    assert!(
        source
            .finish(&lease.id, finish(JobReport::Succeeded))
            .await
            .is_err()
    );
    // The log written before the restart is still there, with what happened since.
    let log = server.state().logs.read_from(id, "a", 0).await.unwrap();
    let log = String::from_utf8(log).unwrap();
    assert!(log.contains("before the crash"), "{log}");
    assert!(log.contains("was lost"), "{log}");
    server.shutdown().await;
}

const DEPLOYS: &str = "\
jobs:
  ship:
    environment: staging
    deploy:
      compose: deploy/docker-compose.yml
";

#[tokio::test]
async fn a_deploy_job_cut_off_by_a_crash_is_errored_not_repeated() {
    let f = Fixture::new(DEPLOYS).await;
    let id = f.trigger(json!({})).await["id"].as_i64().unwrap();
    let lease = f.lease_as(gantry_server::BUILTIN_EXECUTOR).await;
    gantry_server::server::recover(f.server.state())
        .await
        .unwrap();
    let ship = f.jobs(id).await.into_iter().next().unwrap();
    assert_eq!(ship.state, JobState::Errored);
    let message = ship.message.unwrap_or_default();
    assert!(message.contains("not repeated automatically"), "{message}");
    assert_eq!(f.run(id).await.state, RunState::Failed);
    assert!(
        f.try_lease().await.is_none(),
        "the deployment was handed out again"
    );
    assert!(
        f.source
            .finish(&lease.id, finish(JobReport::Succeeded))
            .await
            .is_err()
    );
}
