//! Table tests of the pure DAG rules.

use gantry_pipeline::{Plan, RunOn};

use super::*;
use crate::testutil::{job, plan};

/// Job states by short word: `wait`, `run`, `ok`, `allowed`, `failed`, `error`,
/// `skipped`, `cancelled`.
fn nodes(states: &[&str]) -> Vec<Node> {
    states
        .iter()
        .map(|s| match *s {
            "wait" => Node::Waiting,
            "run" => Node::Running,
            "ok" => Node::Done(Done::Succeeded),
            "allowed" => Node::Done(Done::AllowedFailure),
            "failed" => Node::Done(Done::Failed),
            "error" => Node::Done(Done::Errored),
            "skipped" => Node::Done(Done::Skipped),
            "cancelled" => Node::Done(Done::Cancelled),
            other => panic!("unknown state {other}"),
        })
        .collect()
}

/// `decide` on `plan` in these states gives these decisions (`name: start` or
/// `name: skip (reason)`).
fn check(plan: &Plan, states: &[&str], fail_fast: bool, expect: &[&str]) {
    assert_eq!(plan.jobs.len(), states.len(), "one state per job");
    let got: Vec<String> = decide(plan, &nodes(states), fail_fast)
        .into_iter()
        .map(|(j, d)| {
            let name = &plan.jobs[j].name;
            match d {
                Decision::Start => format!("{name}: start"),
                Decision::Skip(reason) => format!("{name}: skip ({reason})"),
                Decision::AwaitApproval => format!("{name}: await approval"),
            }
        })
        .collect();
    assert_eq!(got, expect, "states {states:?}, fail_fast {fail_fast}");
}

fn chain() -> Plan {
    plan(vec![
        job("build"),
        job("test").needs(&["build"]),
        job("package").needs(&["test"]),
        job("lint"),
    ])
}

#[test]
fn success_jobs_start_when_their_needs_succeeded() {
    let p = chain();
    check(
        &p,
        &["wait", "wait", "wait", "wait"],
        false,
        &["build: start", "lint: start"],
    );
    check(&p, &["run", "wait", "wait", "run"], false, &[]);
    check(&p, &["ok", "wait", "wait", "run"], false, &["test: start"]);
    check(&p, &["ok", "ok", "wait", "ok"], false, &["package: start"]);
    check(
        &p,
        &["allowed", "wait", "wait", "ok"],
        false,
        &["test: start"],
    );
    check(&p, &["ok", "ok", "ok", "ok"], false, &[]);
}

#[test]
fn skips_name_the_need_and_propagate_in_one_answer() {
    let p = chain();
    let skipped_test = "package: skip (needs \"test\", which was skipped)";
    for (state, why) in [
        ("failed", "failed"),
        ("error", "had an error"),
        ("skipped", "was skipped"),
        ("cancelled", "was cancelled"),
    ] {
        check(
            &p,
            &[state, "wait", "wait", "run"],
            false,
            &[
                &format!("test: skip (needs \"build\", which {why})"),
                skipped_test,
            ],
        );
    }
}

#[test]
fn always_jobs_run_whatever_happened() {
    let p = plan(vec![
        job("build"),
        job("report").needs(&["build"]).run_on(RunOn::Always),
        job("after").needs(&["report"]),
    ]);
    check(&p, &["run", "wait", "wait"], false, &[]);
    for state in ["ok", "failed", "error", "skipped", "cancelled"] {
        check(&p, &[state, "wait", "wait"], false, &["report: start"]);
    }
    check(&p, &["failed", "ok", "wait"], false, &["after: start"]);
}

#[test]
fn failure_jobs_wait_for_a_failure_or_for_everything_else() {
    let p = plan(vec![
        job("build"),
        job("test").needs(&["build"]),
        job("cleanup").run_on(RunOn::Failure),
        job("on-build-failure")
            .needs(&["build"])
            .run_on(RunOn::Failure),
    ]);
    let nothing = "skip (nothing failed (when: { status: failure }))";
    check(
        &p,
        &["wait", "wait", "wait", "wait"],
        false,
        &["build: start"],
    );
    check(&p, &["ok", "run", "wait", "wait"], false, &[]);
    check(
        &p,
        &["ok", "ok", "wait", "wait"],
        false,
        &[
            &format!("cleanup: {nothing}"),
            &format!("on-build-failure: {nothing}"),
        ],
    );
    check(
        &p,
        &["failed", "wait", "wait", "wait"],
        false,
        &[
            "test: skip (needs \"build\", which failed)",
            "cleanup: start",
            "on-build-failure: start",
        ],
    );
    // An allowed failure is not a failure.
    check(
        &p,
        &["allowed", "ok", "wait", "wait"],
        false,
        &[
            &format!("cleanup: {nothing}"),
            &format!("on-build-failure: {nothing}"),
        ],
    );
    // A failure anywhere counts, even in a job this one does not need.
    check(
        &p,
        &["ok", "error", "wait", "wait"],
        false,
        &["cleanup: start", "on-build-failure: start"],
    );
}

/// `job` with `environment: { name: production, approval: required }`.
fn gated(job: crate::testutil::JobB) -> crate::testutil::JobB {
    let mut job = job;
    job.job.environment = Some(gantry_pipeline::Environment {
        name: "production".into(),
        approval_required: true,
        url: None,
    });
    job
}

#[test]
fn jobs_that_need_approval_are_held_once_they_could_start() {
    let p = plan(vec![
        job("build"),
        gated(job("deploy").needs(&["build"])),
        job("smoke").needs(&["deploy"]),
        job("cleanup").run_on(RunOn::Failure),
        gated(job("rollback").run_on(RunOn::Failure)),
    ]);
    // Not before its needs allow it to start, and not when it would be skipped.
    check(
        &p,
        &["wait", "wait", "wait", "wait", "wait"],
        false,
        &["build: start"],
    );
    check(
        &p,
        &["failed", "wait", "wait", "wait", "wait"],
        false,
        &[
            "deploy: skip (needs \"build\", which failed)",
            "smoke: skip (needs \"deploy\", which was skipped)",
            "cleanup: start",
            "rollback: await approval",
        ],
    );
    check(
        &p,
        &["ok", "wait", "wait", "wait", "wait"],
        false,
        &["deploy: await approval"],
    );
    // Held ("run" from here on), it keeps `status: failure` jobs waiting: it may still
    // fail once approved.
    check(&p, &["ok", "run", "wait", "wait", "wait"], false, &[]);
    // Rejected (failed): what needs it is skipped, failure jobs go on.
    check(
        &p,
        &["ok", "failed", "wait", "wait", "wait"],
        false,
        &[
            "smoke: skip (needs \"deploy\", which failed)",
            "cleanup: start",
            "rollback: await approval",
        ],
    );
}

#[test]
fn failure_jobs_that_others_need_do_not_deadlock() {
    let p = plan(vec![
        job("a"),
        job("notify").run_on(RunOn::Failure),
        job("after-notify").needs(&["notify"]).run_on(RunOn::Always),
        job("b").needs(&["after-notify"]),
    ]);
    check(&p, &["wait", "wait", "wait", "wait"], false, &["a: start"]);
    check(
        &p,
        &["ok", "wait", "wait", "wait"],
        false,
        &[
            "notify: skip (nothing failed (when: { status: failure }))",
            "after-notify: start",
        ],
    );
    // Two failure jobs each waiting on a success job that needs the other: nothing runs,
    // so both give up.
    let p = plan(vec![
        job("f1").run_on(RunOn::Failure),
        job("f2").run_on(RunOn::Failure),
        job("s1").needs(&["f2"]),
        job("s2").needs(&["f1"]),
    ]);
    check(
        &p,
        &["wait", "wait", "wait", "wait"],
        false,
        &[
            "f1: skip (nothing failed (when: { status: failure }))",
            "f2: skip (nothing failed (when: { status: failure }))",
            "s1: skip (needs \"f2\", which was skipped)",
            "s2: skip (needs \"f1\", which was skipped)",
        ],
    );
}

#[test]
fn excluded_jobs_are_skipped_with_the_planners_reason_and_take_dependents_along() {
    let p = plan(vec![
        job("build"),
        job("deploy")
            .needs(&["build"])
            .excluded("when: branch \"feature\" is not \"main\""),
        job("smoke").needs(&["deploy"]),
        job("report").needs(&["deploy"]).run_on(RunOn::Always),
    ]);
    check(
        &p,
        &["wait", "wait", "wait", "wait"],
        false,
        &[
            "build: start",
            "deploy: skip (when: branch \"feature\" is not \"main\")",
            "smoke: skip (needs \"deploy\", which was skipped)",
            "report: start",
        ],
    );
}

#[test]
fn fail_fast_skips_unstarted_success_jobs_only() {
    let p = plan(vec![
        job("fails"),
        job("long"),
        job("after-long").needs(&["long"]),
        job("cleanup").run_on(RunOn::Failure),
        job("report").needs(&["long"]).run_on(RunOn::Always),
        job("later"),
    ]);
    let stopped = "skip (not started: --fail-fast stopped the run after \"fails\" failed)";
    check(
        &p,
        &["failed", "run", "wait", "wait", "wait", "wait"],
        true,
        &[
            &format!("after-long: {stopped}"),
            "cleanup: start",
            &format!("later: {stopped}"),
        ],
    );
    // Without --fail-fast, independent jobs carry on.
    check(
        &p,
        &["failed", "run", "wait", "wait", "wait", "wait"],
        false,
        &["cleanup: start", "later: start"],
    );
    // Running success jobs are cancelled; always and failure jobs are not.
    let nodes = nodes(&["failed", "run", "wait", "run", "run", "run"]);
    assert_eq!(fail_fast_cancels(&p, &nodes, true), [1, 5]);
    assert_eq!(fail_fast_cancels(&p, &nodes, false), Vec::<usize>::new());
    let before = self::nodes(&["run", "run", "wait", "wait", "wait", "run"]);
    assert_eq!(fail_fast_cancels(&p, &before, true), Vec::<usize>::new());
}

#[test]
fn run_outcome_once_every_job_is_done() {
    let check = |states: &[&str], expect: Option<RunStatus>| {
        assert_eq!(run_outcome(&nodes(states)), expect, "{states:?}");
    };
    check(&["ok", "run"], None);
    check(&["failed", "wait"], None);
    check(&["ok", "allowed", "skipped"], Some(RunStatus::Succeeded));
    check(&["ok", "cancelled"], Some(RunStatus::Succeeded));
    check(&["ok", "failed"], Some(RunStatus::Failed));
    check(&["error", "skipped"], Some(RunStatus::Failed));
    check(&[], Some(RunStatus::Succeeded));
}

#[test]
fn all_needs_are_transitive_in_plan_order() {
    let p = plan(vec![
        job("a"),
        job("b"),
        job("c").needs(&["b"]),
        job("d").needs(&["c", "a"]),
        job("e").needs(&["d"]),
    ]);
    assert_eq!(all_needs(&p, 4), [0, 1, 2, 3]);
    assert_eq!(all_needs(&p, 2), [1]);
    assert_eq!(all_needs(&p, 0), Vec::<usize>::new());
}

#[test]
fn done_from_job_status() {
    use gantry_backend::Outcome;
    let failed = |allowed| JobStatus::Failed {
        outcome: Outcome::Failed { exit_code: 1 },
        allowed,
    };
    let check = |status: JobStatus, expect: Done| assert_eq!(Done::from(&status), expect);
    check(JobStatus::Succeeded, Done::Succeeded);
    check(failed(true), Done::AllowedFailure);
    check(failed(false), Done::Failed);
    check(
        JobStatus::Errored {
            message: "x".into(),
        },
        Done::Errored,
    );
    check(JobStatus::Skipped { reason: "x".into() }, Done::Skipped);
    check(JobStatus::Cancelled, Done::Cancelled);
}
