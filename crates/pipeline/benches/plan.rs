//! Benchmark: parse+validate and plan a generated 2,000-job pipeline.
//!
//! `cargo bench -p gantry-pipeline` — plain `std::time::Instant`, a few warm-up runs, then
//! the median of N runs. The generated file has 2,000 jobs, each needing up to three
//! earlier ones, with env entries and `${…}` interpolations everywhere, and every 200th job
//! a 2×2 matrix. Target (issue 2): planning under 50 ms.
#![allow(
    clippy::print_stdout,
    clippy::unwrap_used,
    reason = "a benchmark reports on stdout and may abort"
)]

use std::fmt::Write as _;
use std::hint::black_box;
use std::time::{Duration, Instant};

use gantry_pipeline::{Event, PlanContext, parse};

const JOBS: usize = 2_000;
const WARMUP: usize = 3;
const RUNS: usize = 20;

fn generate() -> String {
    let mut s = String::with_capacity(JOBS * 400);
    s.push_str("name: bench\n");
    s.push_str("on: { push: [main, 'release/*'], schedule: '0 3 * * *' }\n");
    s.push_str("params:\n  VERSION: { default: '1.0' }\n  DEPLOY: { type: bool }\n");
    s.push_str("  TARGET: { type: choice, choices: [staging, production] }\n");
    s.push_str("env:\n  REGISTRY: registry.local\n  IMAGE: ${REGISTRY}/app:${VERSION}\n  WHO: ${GANTRY_JOB}\n");
    s.push_str("defaults: { image: '${REGISTRY}/builder:${VERSION}', timeout: 10m, retry: 1 }\n");
    s.push_str("jobs:\n");
    for i in 0..JOBS {
        writeln!(s, "  job-{i}:").unwrap();
        if i > 0 {
            // Up to three needs, spread so the graph is wide and deep.
            let mut needs = vec![i - 1];
            if i > 7 {
                needs.push(i / 2);
            }
            if i > 50 && i % 3 == 0 {
                needs.push(i - 50);
            }
            needs.sort_unstable();
            needs.dedup();
            let list: Vec<String> = needs.iter().map(|n| format!("job-{n}")).collect();
            writeln!(s, "    needs: [{}]", list.join(", ")).unwrap();
        }
        if i % 200 == 0 {
            s.push_str("    matrix: { GO: ['1.21', '1.22'], OS: [linux, mac] }\n");
            s.push_str("    image: golang:${GO}-${OS}\n");
        }
        if i % 10 == 0 {
            s.push_str(
                "    when: { branch: [main, 'release/*'], changed: ['src/**', Cargo.lock] }\n",
            );
        }
        s.push_str("    env:\n");
        writeln!(s, "      STEP: \"{i}\"").unwrap();
        s.push_str("      OUT: ${GANTRY_WORKSPACE}/out/${STEP}\n");
        s.push_str("      TAG: ${IMAGE}-${GANTRY_RUN_NUMBER}\n");
        s.push_str("    script:\n      - echo building $STEP\n      - make -C src all\n");
        s.push_str("    artifacts: ['out/${STEP}/**']\n");
        if i % 25 == 0 {
            s.push_str(
                "    cache: { key: 'deps-${hash:Cargo.lock}-${VERSION}', paths: [target] }\n",
            );
            s.push_str("    services:\n      db:\n        image: postgres:16\n        env: { POSTGRES_PASSWORD: pw }\n");
            s.push_str("        ready: { tcp: 5432, timeout: 30s }\n");
        }
    }
    s
}

fn median(mut samples: Vec<Duration>) -> Duration {
    samples.sort_unstable();
    samples[samples.len() / 2]
}

/// Median time of `f`, not counting the time to drop what it returns.
fn measure<T>(mut f: impl FnMut() -> T) -> Duration {
    for _ in 0..WARMUP {
        black_box(f());
    }
    let samples = (0..RUNS)
        .map(|_| {
            let t = Instant::now();
            let out = black_box(f());
            let elapsed = t.elapsed();
            drop(out);
            elapsed
        })
        .collect();
    median(samples)
}

fn ms(d: Duration) -> String {
    format!("{:.1} ms", d.as_secs_f64() * 1000.0)
}

fn main() {
    let text = generate();
    let ctx = PlanContext {
        event: Some(Event::Push),
        branch: Some("main".into()),
        commit: Some("0123456789abcdef".into()),
        changed: Some(vec!["src/main.rs".into(), "README.md".into()]),
        run_id: "bench".into(),
        run_number: 42,
        ..PlanContext::default()
    };
    let spec = parse("gantry.yml", &text)
        .unwrap_or_else(|d| panic!("generated pipeline is invalid:\n{d}"));
    let plan = spec
        .plan(&ctx)
        .unwrap_or_else(|d| panic!("generated pipeline does not plan:\n{d}"));
    let edges: usize = plan.jobs.iter().map(|j| j.needs.len()).sum();
    println!(
        "pipeline: {} jobs in the file, {} planned jobs, {edges} needs edges, {} KiB of YAML",
        spec.jobs.len(),
        plan.jobs.len(),
        text.len() / 1024
    );
    let parse_time = measure(|| parse("gantry.yml", &text).unwrap());
    println!(
        "parse+validate {JOBS} jobs: median {} (n={RUNS})",
        ms(parse_time)
    );
    let plan_time = measure(|| spec.plan(&ctx).unwrap());
    println!("plan {JOBS} jobs: median {} (n={RUNS})", ms(plan_time));
}
