//! The renderers against hand-made event sequences.

use std::time::{Duration, SystemTime};

use gantry_backend::{LogLine, Outcome, Stream};
use gantry_engine::{JobStatus, RunEvent, RunStatus};

use super::Plain;
use super::format::{SummaryInfo, status_line, summary};
use crate::paint::Paint;
use crate::state::RunState;

fn at(ms: u64) -> SystemTime {
    SystemTime::UNIX_EPOCH + Duration::from_millis(1_700_000_000_000 + ms)
}

fn log(job: usize, stream: Stream, text: &str) -> RunEvent {
    RunEvent::JobLog {
        job,
        line: LogLine {
            at: at(0),
            stream,
            source: (stream == Stream::Service).then(|| "db".to_owned()),
            text: text.to_owned(),
        },
    }
}

fn finished(job: usize, status: JobStatus, ms: u64, attempts: u32) -> RunEvent {
    RunEvent::JobFinished {
        job,
        status,
        duration: Duration::from_millis(ms),
        attempts,
    }
}

/// A failing run: build succeeds with an artifact, one matrix test fails, one is retried
/// and passes, lint may fail, package is skipped, notify runs on failure.
fn failing_run() -> Vec<RunEvent> {
    vec![
        RunEvent::RunStarted {
            run_id: "r1".to_owned(),
            pipeline: "hello".to_owned(),
            jobs: [
                "build",
                "test (SHELL=sh)",
                "test (SHELL=bash)",
                "lint",
                "package",
                "notify",
            ]
            .map(String::from)
            .to_vec(),
            at: at(0),
        },
        RunEvent::JobStarted {
            job: 0,
            attempt: 1,
            at: at(1),
        },
        log(0, Stream::Stdout, "+ ./build.sh"),
        log(0, Stream::Stderr, "warning: \x1b[33mcolored\x1b[0m\tthing"),
        RunEvent::ArtifactStored {
            job: 0,
            path: "dist/hello".to_owned(),
            digest: "ab".repeat(32),
            size: 2048,
        },
        finished(0, JobStatus::Succeeded, 1234, 1),
        RunEvent::JobStarted {
            job: 1,
            attempt: 1,
            at: at(2),
        },
        RunEvent::JobStarted {
            job: 2,
            attempt: 1,
            at: at(2),
        },
        RunEvent::JobStarted {
            job: 3,
            attempt: 1,
            at: at(2),
        },
        log(1, Stream::Stdout, "+ ./test.sh"),
        log(2, Stream::System, "starting"),
        log(2, Stream::Service, "db ready"),
        log(1, Stream::Stdout, "not ok 1 greets"),
        finished(
            1,
            JobStatus::Failed {
                outcome: Outcome::Failed { exit_code: 1 },
                allowed: false,
            },
            300,
            1,
        ),
        RunEvent::JobStarted {
            job: 2,
            attempt: 2,
            at: at(3),
        },
        finished(2, JobStatus::Succeeded, 65_000, 2),
        finished(
            3,
            JobStatus::Failed {
                outcome: Outcome::TimedOut,
                allowed: true,
            },
            100,
            1,
        ),
        finished(
            4,
            JobStatus::Skipped {
                reason: "needs \"test (SHELL=sh)\", which failed".to_owned(),
            },
            0,
            0,
        ),
        RunEvent::JobStarted {
            job: 5,
            attempt: 1,
            at: at(4),
        },
        finished(
            5,
            JobStatus::Errored {
                message: "backend unavailable".to_owned(),
            },
            10,
            1,
        ),
        RunEvent::RunFinished {
            status: RunStatus::Failed,
            duration: Duration::from_millis(67_890),
            dir: None,
        },
    ]
}

fn render_plain(events: &[RunEvent], info: &SummaryInfo) -> String {
    let mut state = RunState::default();
    let mut plain = Plain::new(Vec::new(), Paint::PLAIN);
    for e in events {
        state.apply(e);
        plain.event(&state, e, "▶ hello: run 7, 6 jobs");
    }
    plain.notice("a notice");
    plain.finish(&summary(&state, info, Paint::PLAIN));
    String::from_utf8(plain.into_inner()).expect("utf-8")
}

#[test]
fn plain_failing_run() {
    let info = SummaryInfo {
        number: 7,
        dir: Some(".gantry/runs/7".to_owned()),
        pruned: vec![1, 2],
    };
    insta::assert_snapshot!(render_plain(&failing_run(), &info));
}

#[test]
fn plain_output_has_no_ansi_codes() {
    let out = render_plain(&failing_run(), &SummaryInfo::default());
    assert!(!out.contains('\x1b'), "{out}");
}

#[test]
fn cancelled_and_succeeded_totals() {
    let check = |status: RunStatus, want: &str| {
        let mut events = failing_run();
        events.pop();
        events.push(RunEvent::RunFinished {
            status,
            duration: Duration::from_secs(2),
            dir: None,
        });
        let out = render_plain(
            &events,
            &SummaryInfo {
                number: 3,
                ..SummaryInfo::default()
            },
        );
        assert!(out.contains(want), "{want:?} not in:\n{out}");
    };
    check(RunStatus::Cancelled, "✗ run 3 cancelled after 2.0s");
    check(RunStatus::Succeeded, "✓ run 3 succeeded in 2.0s");
    check(
        RunStatus::Failed,
        "✗ run 3 failed in 2.0s: 2 succeeded, 1 failed, 1 allowed to fail, 1 errored, 1 skipped",
    );
}

#[test]
fn status_lines() {
    let mut state = RunState::default();
    let events = failing_run();
    for e in &events {
        state.apply(e);
    }
    let lines: Vec<String> = state
        .jobs
        .iter()
        .map(|j| status_line(j, Paint::PLAIN))
        .collect();
    assert_eq!(
        lines,
        [
            "✓ build  1.2s",
            "✗ test (SHELL=sh)  failed with exit code 1  0.3s",
            "✓ test (SHELL=bash)  1m05s (2 attempts)",
            "! lint  timed out (allowed to fail)  0.1s",
            "- package  skipped: needs \"test (SHELL=sh)\", which failed",
            "✗ notify  error: backend unavailable  0.0s",
        ]
    );
}

#[test]
fn state_keeps_a_bounded_tail() {
    let mut state = RunState::default();
    state.apply(&failing_run()[0]);
    for i in 0..100 {
        state.apply(&log(0, Stream::Stdout, &format!("line {i}")));
    }
    let tail: Vec<&str> = state.jobs[0].tail.iter().map(String::as_str).collect();
    assert_eq!(tail.len(), crate::state::TAIL_LINES);
    assert_eq!(tail.first(), Some(&"line 80"));
    assert_eq!(tail.last(), Some(&"line 99"));
}
