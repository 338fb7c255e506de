//! What the local backend costs per job beyond starting a shell.
//!
//! Measures, as the median of 200 runs after a warm-up:
//! - the baseline: `/bin/sh -c :` spawned and waited for with `std::process::Command`;
//! - a whole job on [`LocalBackend`]: `prepare` + `run_script` of a one-line `true`
//!   script + `teardown`, on a multi-threaded tokio runtime, with gantry a subreaper as
//!   the CLI makes it.
//!
//! Run with `cargo bench -p gantry-backend-local --bench spawn`. With
//! `GANTRY_BENCH_NO_SUBREAPER=1` gantry is not made a subreaper, which shows the cost of
//! the slower search for escaped processes (a scan of all of `/proc`) used then.
#![allow(clippy::print_stdout, reason = "a benchmark reports on stdout")]

use std::process::Command;
use std::time::{Duration, Instant};

use gantry_backend::{Backend, CancellationToken, JobSpec, LogSink, Outcome};
use gantry_backend_local::LocalBackend;

const RUNS: usize = 200;
const WARMUP: usize = 20;

fn median(mut samples: Vec<Duration>) -> Duration {
    samples.sort();
    samples[samples.len() / 2]
}

fn sample(mut f: impl FnMut()) -> Duration {
    for _ in 0..WARMUP {
        f();
    }
    median(
        (0..RUNS)
            .map(|_| {
                let start = Instant::now();
                f();
                start.elapsed()
            })
            .collect(),
    )
}

fn main() {
    let subreaper = std::env::var_os("GANTRY_BENCH_NO_SUBREAPER").is_none();
    if subreaper {
        gantry_backend_local::become_subreaper().expect("become subreaper");
    }
    let ws = tempfile::tempdir().expect("temp dir");

    let raw = sample(|| {
        let status = Command::new("/bin/sh")
            .args(["-c", ":"])
            .status()
            .expect("spawn sh");
        assert!(status.success());
    });

    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let backend = LocalBackend::new();
    let spec = JobSpec {
        run_id: "bench".into(),
        job_name: "bench".into(),
        job_key: "bench".into(),
        attempt: 1,
        workspace_dir: ws.path().to_path_buf(),
        script: vec!["true".into()],
        timeout: Duration::from_secs(60),
        ..JobSpec::default()
    };
    let job = sample(|| {
        runtime.block_on(async {
            let mut env = backend.prepare(&spec).await.expect("prepare");
            let (sink, mut rx) = LogSink::channel();
            let outcome = env
                .run_script(sink, CancellationToken::new())
                .await
                .expect("run");
            assert_eq!(outcome, Outcome::Success);
            env.teardown().await.expect("teardown");
            while rx.try_recv().is_ok() {}
        });
    });

    println!("median of {RUNS} runs (subreaper: {subreaper}):");
    println!("  sh -c : (std::process::Command)         {raw:>10.3?}");
    println!("  LocalBackend prepare+run_script+teardown {job:>10.3?}");
    println!(
        "  overhead per job                         {:>10.3?}",
        job.saturating_sub(raw)
    );
}
