//! End-to-end fixtures: `fixtures/NN_name.yml` is parsed, planned and run by the engine on
//! the real local backend (real `sh`), and the job statuses must equal
//! `fixtures/NN_name.expected`.
//!
//! `.expected` holds `job-name: status-word` lines (`JobStatus::word`), optionally a
//! `run: success|failed|cancelled` line, and `#` comments. In the `.yml`, `@TMP@` is
//! replaced by a scratch directory outside every workspace (for counters and handshakes
//! between jobs), and a first-lines comment `# gantry-test: KEY=VALUE ...` sets the
//! context: `branch=`, `tag=`, `event=`, `param.NAME=`, `jobs=N`, and the flag
//! `fail-fast`. Every source tree holds `README.md` ("original"), the pipeline as
//! `gantry.yml`, and a `.gantry/` directory that must never reach a job.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use gantry_backend::CancellationToken;
use gantry_backend_local::LocalBackend;
use gantry_engine::{Backends, RunConfig, RunStatus, Source};
use gantry_pipeline::{Event, PlanContext};
use gantry_test_support::TempTree;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fixtures() {
    // As `gantry` itself does: reap whatever the jobs' scripts orphan.
    let _ = gantry_backend_local::become_subreaper();
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures");
    let mut names: Vec<PathBuf> = std::fs::read_dir(&dir)
        .expect("the fixtures directory")
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|e| e == "yml"))
        .collect();
    names.sort();
    assert!(names.len() >= 10, "fixtures found: {names:?}");

    let mut failures = Vec::new();
    for yml in &names {
        let expected_path = yml.with_extension("expected");
        let expected = std::fs::read_to_string(&expected_path)
            .unwrap_or_else(|e| panic!("{}: {e}", expected_path.display()));
        let (got, logs) = check_fixture(yml).await;
        let want: Vec<String> = expected
            .lines()
            .map(str::trim)
            .filter(|l| !l.is_empty() && !l.starts_with('#'))
            .map(str::to_owned)
            .collect();
        // The `run:` line is checked only where the fixture states one.
        let got: Vec<String> = got
            .into_iter()
            .filter(|l| !l.starts_with("run: ") || want.iter().any(|w| w.starts_with("run: ")))
            .collect();
        if got != want {
            failures.push(format!(
                "{}:\n  expected: {want:?}\n  got:      {got:?}\n  logs:\n{}",
                yml.file_name().unwrap_or_default().to_string_lossy(),
                logs.join("\n")
            ));
        }
    }
    assert!(
        failures.is_empty(),
        "fixtures failed:\n{}",
        failures.join("\n")
    );
}

/// Runs one fixture and returns its `job: word` lines followed by `run: word`, and the
/// log lines of its jobs (to explain a failure).
async fn check_fixture(yml: &Path) -> (Vec<String>, Vec<String>) {
    let scratch = TempTree::new();
    let text = std::fs::read_to_string(yml)
        .expect("read the fixture")
        .replace("@TMP@", &scratch.path().to_string_lossy());
    let (ctx, parallelism, fail_fast) = context(&text);
    let name = yml
        .file_name()
        .unwrap_or_default()
        .to_string_lossy()
        .into_owned();
    let spec = gantry_pipeline::parse(&name, &text)
        .unwrap_or_else(|d| panic!("{name} does not parse:\n{d}"));
    let plan = spec
        .plan(&ctx)
        .unwrap_or_else(|d| panic!("{name} does not plan:\n{d}"));

    let source_dir = TempTree::new();
    source_dir
        .file("README.md", "original\n")
        .file("gantry.yml", &text);
    let run_dir = source_dir.join(".gantry/runs/1");
    std::fs::create_dir_all(&run_dir).expect("run dir");
    let config = RunConfig {
        run_id: "fixture".into(),
        run_dir,
        source: Source::from_dir(source_dir.path()).expect("list the source"),
        parallelism,
        fail_fast,
        secrets: BTreeMap::new(),
        keep_workspaces: false,
        caches: None,
    };
    let backends = Backends {
        host: Arc::new(LocalBackend::new()),
        containers: None,
    };
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    let drain = tokio::spawn(async move {
        let mut logs = Vec::new();
        while let Some(event) = rx.recv().await {
            if let gantry_engine::RunEvent::JobLog { job, line } = event {
                logs.push(format!("    [{job}] {}", line.text));
            }
        }
        logs
    });
    let summary = tokio::time::timeout(
        Duration::from_secs(120),
        gantry_engine::run(&plan, &backends, config, tx, CancellationToken::new()),
    )
    .await
    .unwrap_or_else(|_| panic!("{name} did not finish"));
    let logs = drain.await.unwrap_or_default();

    let mut lines: Vec<String> = summary
        .jobs
        .iter()
        .map(|j| format!("{}: {}", j.name, j.status.word()))
        .collect();
    lines.push(format!(
        "run: {}",
        match summary.status {
            RunStatus::Succeeded => "success",
            RunStatus::Failed => "failed",
            RunStatus::Cancelled => "cancelled",
        }
    ));
    (lines, logs)
}

/// Reads the `# gantry-test:` header.
fn context(text: &str) -> (PlanContext, usize, bool) {
    let mut ctx = PlanContext {
        run_id: "fixture".into(),
        run_number: 1,
        ..PlanContext::default()
    };
    let (mut parallelism, mut fail_fast) = (4, false);
    let header = text
        .lines()
        .take_while(|l| l.starts_with('#'))
        .filter_map(|l| l.strip_prefix("# gantry-test:"));
    for word in header.flat_map(str::split_whitespace) {
        match word.split_once('=') {
            Some(("branch", v)) => ctx.branch = Some(v.to_owned()),
            Some(("tag", v)) => ctx.tag = Some(v.to_owned()),
            Some(("event", v)) => ctx.event = Some(Event::parse(v).expect("an event")),
            Some(("jobs", v)) => parallelism = v.parse().expect("a number"),
            Some((k, v)) if k.starts_with("param.") => {
                ctx.params
                    .insert(k["param.".len()..].to_owned(), v.to_owned());
            }
            None if word == "fail-fast" => fail_fast = true,
            _ => panic!("unknown gantry-test setting {word:?}"),
        }
    }
    (ctx, parallelism, fail_fast)
}
