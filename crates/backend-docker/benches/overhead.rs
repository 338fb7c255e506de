//! What the Docker backend costs per job, against the docker CLI doing the same.
//!
//! Measures, as medians of interleaved runs after a warm-up (interleaving spreads any
//! drift of the daemon over both sides):
//! - the baseline: `docker run --rm gantry-test/tools:latest sh -c :` (the CLI process,
//!   create, attach, start, wait, remove);
//! - a whole job on [`DockerBackend`]: `prepare` + `start_services` + `run_script` of a
//!   one-line `:` script + `teardown`, with the workspace bind-mounted (what every job
//!   gets), on a multi-threaded tokio runtime;
//! - the setup of a job with two services (network, two containers, two readiness probes
//!   from inside the network): `start_services` of services that are ready the moment
//!   they run (busybox httpd), so their own start time is ~0 and what is measured is
//!   gantry's setup. Teardown is measured separately.
//!
//! Needs a running daemon and `cargo xtask images`. Run with
//! `cargo bench -p gantry-backend-docker --bench overhead`.
#![allow(clippy::print_stdout, reason = "a benchmark reports on stdout")]

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use gantry_backend::{
    Backend, CancellationToken, JobSpec, LogSink, Outcome, ReadySpec, ServiceSpec,
};
use gantry_backend_docker::DockerBackend;

const IMAGE: &str = "gantry-test/tools:latest";
const RUNS: usize = 20;
const WARMUP: usize = 3;

fn median(mut samples: Vec<Duration>) -> Duration {
    samples.sort();
    samples[samples.len() / 2]
}

fn raw_docker_run() -> Duration {
    let start = Instant::now();
    let status = Command::new("docker")
        .args(["run", "--rm", IMAGE, "sh", "-c", ":"])
        .stdout(Stdio::null())
        .status()
        .expect("docker CLI");
    assert!(status.success(), "docker run failed");
    start.elapsed()
}

fn spec(ws: &std::path::Path, n: usize, services: Vec<ServiceSpec>) -> JobSpec {
    let run_id = format!("bench-{}-{n}", std::process::id());
    JobSpec {
        run_id: run_id.clone(),
        job_name: "bench".into(),
        job_key: "bench".into(),
        attempt: 1,
        workspace_dir: ws.to_path_buf(),
        container_workdir: "/workspace".into(),
        image: Some(IMAGE.into()),
        script: vec![":".into()],
        services,
        timeout: Duration::from_secs(120),
        labels: vec![
            ("gantry.run".into(), run_id),
            ("gantry.job".into(), "bench".into()),
        ],
        ..JobSpec::default()
    }
}

/// One whole job; returns (total, start_services, teardown).
async fn job(backend: &DockerBackend, spec: &JobSpec) -> (Duration, Duration, Duration) {
    let start = Instant::now();
    let mut env = backend.prepare(spec).await.expect("prepare");
    let (sink, mut rx) = LogSink::channel();
    let services_start = Instant::now();
    env.start_services(sink.clone()).await.expect("services");
    let services = services_start.elapsed();
    let outcome = env
        .run_script(sink, CancellationToken::new())
        .await
        .expect("run");
    assert_eq!(outcome, Outcome::Success);
    let teardown_start = Instant::now();
    env.teardown().await.expect("teardown");
    let teardown = teardown_start.elapsed();
    while rx.try_recv().is_ok() {}
    (start.elapsed(), services, teardown)
}

fn web(name: &str, http: bool) -> ServiceSpec {
    ServiceSpec {
        name: name.into(),
        image: IMAGE.into(),
        env: vec![],
        command: Some(vec![
            "sh".into(),
            "-c".into(),
            "mkdir -p /www && echo ok > /www/health && exec busybox httpd -f -p 8080 -h /www"
                .into(),
        ]),
        ready: Some(ReadySpec {
            port: 8080,
            http_path: http.then(|| "/health".into()),
            timeout: Duration::from_secs(60),
        }),
    }
}

fn main() {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let backend = runtime
        .block_on(DockerBackend::connect())
        .expect("a running Docker daemon");
    let ws = tempfile::tempdir().expect("temp dir");

    let mut raw = Vec::new();
    let mut ours = Vec::new();
    for i in 0..WARMUP + RUNS {
        let r = raw_docker_run();
        let (j, _, _) = runtime.block_on(job(&backend, &spec(ws.path(), i, vec![])));
        if i >= WARMUP {
            raw.push(r);
            ours.push(j);
        }
    }
    let (raw, ours) = (median(raw), median(ours));

    let mut setup = Vec::new();
    let mut teardown = Vec::new();
    let mut total = Vec::new();
    for i in 0..WARMUP + RUNS / 2 {
        let services = vec![web("web", true), web("db", false)];
        let (t, s, d) = runtime.block_on(job(&backend, &spec(ws.path(), 1000 + i, services)));
        if i >= WARMUP {
            total.push(t);
            setup.push(s);
            teardown.push(d);
        }
    }

    println!("per-job overhead, median of {RUNS} interleaved runs:");
    println!("  docker run --rm {IMAGE} sh -c :       {raw:>10.3?}");
    println!("  DockerBackend job (prepare..teardown)           {ours:>10.3?}");
    println!(
        "  ratio (target <= 1.15)                          {:>10.2}",
        ours.as_secs_f64() / raw.as_secs_f64()
    );
    println!("job with two services, median of {} runs:", RUNS / 2);
    println!(
        "  setup: network + 2 containers + 2 ready probes {:>10.3?}",
        median(setup)
    );
    println!(
        "  teardown                                        {:>10.3?}",
        median(teardown)
    );
    println!(
        "  whole job                                       {:>10.3?}",
        median(total)
    );
}
