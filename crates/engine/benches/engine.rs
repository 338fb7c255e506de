//! What the engine costs per job, and what a pristine workspace costs.
//!
//! (a) A generated 300-job DAG (each job needs 1–3 earlier jobs) whose scripts are all
//!     `true`, run with `--jobs 2` on the real local backend, against the cost of
//!     spawning `/bin/sh -c :` 300 times one after another. The difference per job is
//!     what gantry adds: scheduling, events, a workspace per job (the source is one
//!     file, so this measures the engine, not the copy), the backend's `sh -e` wrapper,
//!     process-group handling and teardown. The same DAG on the fake backend shows the
//!     engine's part alone. Each figure is the best of 5 runs; `--jobs 1`
//!     is shown too, since the baseline is serial.
//! (b) Preparing a pristine workspace from a generated 10,000-file source tree (small
//!     files in nested directories): time per workspace, files per second, and which copy
//!     method the file system allowed (reflink or copy), with 1, 2 and 4 copying threads,
//!     against `cp -a` of the same tree. Median of 5.
//!
//! Trees live in `GANTRY_BENCH_DIR` if set, else in the target directory (inside the
//! checkout, as a run's `.gantry/runs/` is): creating files is what a workspace costs, and
//! its price depends on where.
//!
//! Run with `cargo bench -p gantry-engine --bench engine` (or `cargo xtask bench`).
#![allow(clippy::print_stdout, reason = "a benchmark reports on stdout")]

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant};

use gantry_backend::{Backend, CancellationToken};
use gantry_backend_local::LocalBackend;
use gantry_engine::artifacts::ArtifactStore;
use gantry_engine::workspace;
use gantry_engine::{Backends, RunConfig, RunStatus, Source};
use gantry_pipeline::{Plan, PlanContext};
use gantry_test_support::{FakeBackend, TempTree, generate_tree};

const DAG_JOBS: usize = 300;
const TREE_FILES: usize = 10_000;

fn main() {
    let _ = gantry_backend_local::become_subreaper();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("a tokio runtime");
    dag(&runtime);
    workspaces();
}

/// A 300-job DAG in gantry.yml form: job `jN` needs 1–3 of the jobs before it, picked by
/// a fixed linear congruential generator so every run benchmarks the same graph.
fn dag_plan() -> Plan {
    let mut yml = String::from("jobs:\n");
    let mut seed: u64 = 0x9e37_79b9_7f4a_7c15;
    let mut next = |bound: u64| {
        seed = seed.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1);
        (seed >> 33) % bound
    };
    for i in 0..DAG_JOBS {
        let _ = writeln!(yml, "  j{i}:\n    script: [\"true\"]");
        if i > 0 {
            let count = 1 + next(3) as usize;
            let mut needs: Vec<usize> = (0..count).map(|_| next(i as u64) as usize).collect();
            needs.sort_unstable();
            needs.dedup();
            let names: Vec<String> = needs.iter().map(|n| format!("j{n}")).collect();
            let _ = writeln!(yml, "    needs: [{}]", names.join(", "));
        }
    }
    gantry_pipeline::parse("bench.yml", &yml)
        .expect("the generated pipeline parses")
        .plan(&PlanContext::default())
        .expect("the generated pipeline plans")
}

fn run_once(
    runtime: &tokio::runtime::Runtime,
    plan: &Plan,
    host: Arc<dyn Backend>,
    parallelism: usize,
) -> Duration {
    let source = TempTree::new_in(&bench_dir());
    source.file("README.md", "one file\n");
    let run_dir = TempTree::new_in(&bench_dir());
    let config = RunConfig {
        run_id: "bench".into(),
        run_dir: run_dir.path().to_path_buf(),
        source: Source::from_dir(source.path()).expect("list the source"),
        parallelism,
        fail_fast: false,
        secrets: BTreeMap::new(),
        keep_workspaces: false,
        caches: None,
    };
    let backends = Backends {
        host,
        containers: None,
    };
    runtime.block_on(async {
        let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
        // A consumer, as the CLI has one.
        let drain = tokio::spawn(async move { while rx.recv().await.is_some() {} });
        let start = Instant::now();
        let summary =
            gantry_engine::run(plan, &backends, config, tx, CancellationToken::new()).await;
        let elapsed = start.elapsed();
        let _ = drain.await;
        assert_eq!(
            summary.status,
            RunStatus::Succeeded,
            "the bench DAG must pass"
        );
        elapsed
    })
}

fn dag(runtime: &tokio::runtime::Runtime) {
    let plan = dag_plan();
    let n = DAG_JOBS as f64;
    let best = |f: &mut dyn FnMut() -> Duration| (0..5).map(|_| f()).min().unwrap_or_default();

    let spawn = best(&mut || {
        let start = Instant::now();
        for _ in 0..DAG_JOBS {
            let status = Command::new("/bin/sh")
                .args(["-c", ":"])
                .status()
                .expect("spawn sh");
            assert!(status.success());
        }
        start.elapsed()
    });
    let local = best(&mut || run_once(runtime, &plan, Arc::new(LocalBackend::new()), 2));
    let serial = best(&mut || run_once(runtime, &plan, Arc::new(LocalBackend::new()), 1));
    let fake = best(&mut || run_once(runtime, &plan, Arc::new(FakeBackend::new()), 2));

    let ms = |d: Duration| d.as_secs_f64() * 1000.0;
    println!(
        "dag: {DAG_JOBS} jobs of `true`, --jobs 2, local backend, run dir in {}: {:.0} ms total, {:.2} ms/job",
        bench_dir().display(),
        ms(local),
        ms(local) / n
    );
    println!(
        "dag: baseline `sh -c :` x{DAG_JOBS}, one after another: {:.0} ms total, {:.2} ms/spawn",
        ms(spawn),
        ms(spawn) / n
    );
    println!(
        "dag: engine overhead beyond spawning sh, --jobs 2: {:.2} ms/job (target < 3 ms)",
        (ms(local) - ms(spawn)) / n
    );
    println!(
        "dag: the same with --jobs 1 (as serial as the baseline): {:.2} ms/job, overhead {:.2} ms/job",
        ms(serial) / n,
        (ms(serial) - ms(spawn)) / n
    );
    println!(
        "dag: same DAG on the fake backend (engine alone, no processes), --jobs 2: {:.2} ms/job",
        ms(fake) / n
    );
}

fn workspaces() {
    let base = bench_dir();
    let tree = TempTree::new_in(&base);
    generate_tree(tree.path(), TREE_FILES);
    let started = Instant::now();
    let source = Source::from_dir(tree.path()).expect("list the tree");
    let listed = started.elapsed();
    assert_eq!(source.entries().len(), TREE_FILES);
    let run = TempTree::new_in(&base);
    let store = ArtifactStore::new(run.join("artifacts"));
    let median = |mut v: Vec<Duration>| {
        v.sort();
        v[v.len() / 2]
    };
    let ms = |d: Duration| d.as_secs_f64() * 1000.0;

    // What the file system charges for the same copy, done by `cp -a`.
    let cp = median(
        (0..5)
            .map(|i| {
                let dest = run.join(&format!("cp{i}"));
                let start = Instant::now();
                let status = Command::new("cp")
                    .arg("-a")
                    .arg(tree.path())
                    .arg(&dest)
                    .status()
                    .expect("run cp");
                let elapsed = start.elapsed();
                assert!(status.success());
                workspace::remove(&dest).expect("remove");
                elapsed
            })
            .collect(),
    );

    let mut lines = Vec::new();
    for threads in [1, 2, 4] {
        let mut prepare = Vec::new();
        let mut remove = Vec::new();
        let mut method = None;
        for i in 0..5 {
            let dir = run.join(&format!("work/t{threads}-{i}"));
            let start = Instant::now();
            let stats = workspace::materialize_with(&source, &dir, threads).expect("copy");
            prepare.push(start.elapsed());
            let start = Instant::now();
            workspace::remove(&dir).expect("remove");
            remove.push(start.elapsed());
            method = Some(stats.method);
        }
        lines.push((threads, median(prepare), median(remove), method));
    }
    // What the engine does per attempt (its own choice of threads, plus removing first).
    let mut default = Vec::new();
    let mut stats = None;
    for i in 0..5 {
        let dir = run.join(&format!("work/default-{i}"));
        let start = Instant::now();
        stats = Some(workspace::prepare(&source, &dir, &store, &[]).expect("prepare"));
        default.push(start.elapsed());
        workspace::remove(&dir).expect("remove");
    }
    let stats = stats.expect("five workspaces");
    let default = median(default);
    println!(
        "workspace: {TREE_FILES} files ({} KiB) in {}: {:.0} ms per pristine workspace, {:.0} files/s, method {}, {} threads",
        stats.bytes / 1024,
        base.display(),
        ms(default),
        TREE_FILES as f64 / default.as_secs_f64(),
        stats.method,
        stats.threads
    );
    for (threads, prepare, remove, method) in lines {
        println!(
            "workspace: with {threads} thread(s): {:.0} ms ({:.0} files/s, {}), removing it: {:.0} ms",
            ms(prepare),
            TREE_FILES as f64 / prepare.as_secs_f64(),
            method.map_or("none".to_string(), |m| m.to_string()),
            ms(remove)
        );
    }
    println!(
        "workspace: baseline `cp -a` of the same tree: {:.0} ms; listing the source (walk): {:.1} ms",
        ms(cp),
        ms(listed)
    );
    git_listing(tree.path());
}

/// Where the benchmark's trees live: `GANTRY_BENCH_DIR`, else cargo's temporary directory
/// for benches inside the target directory, i.e. inside the checkout, like the
/// `.gantry/runs/` that `gantry run` uses. File creation costs differ a lot between file
/// systems (on this project's VMs even between directories of one file system: `/tmp`
/// is several times slower than the checkout), so the location is printed with the results.
fn bench_dir() -> PathBuf {
    std::env::var_os("GANTRY_BENCH_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_TARGET_TMPDIR")).join("engine-bench"))
}

/// The same tree as a git repository: what listing it with `git ls-files` costs.
fn git_listing(root: &Path) {
    gantry_test_support::git(root, &["init", "-q"]);
    gantry_test_support::git(root, &["add", "-A"]);
    let start = Instant::now();
    let source = Source::from_dir(root).expect("list the repository");
    let listed = start.elapsed();
    assert_eq!(source.entries().len(), TREE_FILES);
    println!(
        "workspace: listing the same tree as a git work tree (git ls-files): {:.1} ms",
        listed.as_secs_f64() * 1000.0
    );
}
