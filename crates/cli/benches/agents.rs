//! Benchmark of remote agents as users run them: the real `gantry serve --jobs 0` (no
//! built-in executor) on SQLite in a temporary data directory, real `gantry agent`
//! processes on the local backend, each with its own work directory, and a real bare git
//! repository. It shares its process helpers with the end-to-end tests
//! (`tests/support`, `tests/agents/agent.rs`).
//!
//! `cargo bench -p gantry --bench agents` prints, as lines:
//! - the lease-to-running latency of a job on an idle agent (one agent waiting in its long
//!   poll; one run at a time): from the job being queued (its `queued_at`) to the server
//!   handing it out (`started_at`), and to the first command of its script running on
//!   the agent (the script prints the time), median and p90 over 30 runs;
//! - jobs per second one server hands out to 8 agents (one job at a time each) running
//!   trivial jobs: one run of 240 independent `true` jobs, from the trigger to the run's
//!   end, with a check that every job succeeded in exactly one attempt;
//! - the cancel latency on an agent: from the cancel request (`POST /api/runs/{id}/cancel`)
//!   to the job's process being gone on the agent (the cancel travels in the answer to the
//!   job's next heartbeat, sent at least every 2 s), median and p90 over 10 runs whose
//!   cancels fall at points spread over the heartbeat period;
//! - the agent's idle RSS after it connected, and again when idle after the work above
//!   (target: under 15 MB), with its anonymous part (most of the rest are the pages of the
//!   one `gantry` binary it shares with the server and the CLI).
#![allow(
    clippy::print_stdout,
    clippy::print_stderr,
    clippy::unwrap_used,
    reason = "a benchmark reports on stdout and may abort"
)]

#[path = "../tests/support/mod.rs"]
mod support;

#[path = "../tests/agents/agent.rs"]
#[allow(
    dead_code,
    reason = "the tests use more of the agent helper than the bench"
)]
mod agent;

use std::time::{Duration, Instant};

use agent::Agent;
use serde_json::Value;
use support::{Repo, Server, http};

const LATENCY_RUNS: usize = 30;
const CANCEL_RUNS: usize = 10;
const AGENTS: usize = 8;
const WIDE_JOBS: usize = 240;

const ONE: &str = r#"
name: one
on:
  manual: true
jobs:
  one:
    script:
      - echo "t=$(date +%s%3N)"
"#;

/// A job that starts a long `sleep`, records its pid where the agent's `PIDFILE` says,
/// and waits for it.
const HOLD: &str = r#"
name: hold
on:
  manual: true
jobs:
  hold:
    script:
      - sleep 86461 & echo $! > "$PIDFILE.tmp" && mv "$PIDFILE.tmp" "$PIDFILE"
      - wait
"#;

/// A pipeline of `n` independent jobs that do nothing.
fn wide(n: usize) -> String {
    let mut text = String::from("name: wide\non:\n  manual: true\njobs:\n");
    for i in 0..n {
        text.push_str(&format!("  j{i}:\n    script: [\"true\"]\n"));
    }
    text
}

fn main() {
    if std::env::args().any(|a| a == "--list") {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let server = Server::start(
        &tmp.path().join("data"),
        None,
        &["--jobs", "0", "--poll-interval", "1h"],
    );
    let one = Repo::new(ONE);
    let wide_repo = Repo::new(&wide(WIDE_JOBS));
    let hold = Repo::new(HOLD);
    server.ok(&["repo", "add", "one", &one.url()]);
    server.ok(&["repo", "add", "wide", &wide_repo.url()]);
    server.ok(&["repo", "add", "hold", &hold.url()]);
    let token = server
        .ok(&["agent-token", "create", "bench"])
        .trim()
        .to_owned();

    // Lease-to-running on an idle agent.
    let pidfile = tmp.path().join("hold.pid");
    let first = Agent::spawn(
        &server.url,
        &token,
        "bench-0",
        &tmp.path().join("agents/bench-0"),
        &[],
        &[("PIDFILE", pidfile.to_str().unwrap())],
    );
    first.wait_line("connected", |l| l.contains("agent bench-0 connected"));
    std::thread::sleep(Duration::from_secs(3));
    let idle_start = memory(first.pid());
    // One warm-up run: the agent's first job makes its git mirror.
    run_and_wait(&server, "one");
    let mut to_leased = Vec::new();
    let mut to_running = Vec::new();
    for _ in 0..LATENCY_RUNS {
        // Let the agent settle back into its long poll.
        std::thread::sleep(Duration::from_millis(200));
        let run = run_and_wait(&server, "one");
        let job = &run["jobs"][0];
        assert_eq!(job["state"], "succeeded", "{run:#}");
        let queued = parse_ms(&job["queued_at"]).unwrap();
        let leased = parse_ms(&job["started_at"]).unwrap();
        let log = get_text(
            &server,
            &format!("/api/runs/{}/jobs/one/log", run["id"].as_i64().unwrap()),
        );
        let script: i64 = log
            .lines()
            .find_map(|l| l.strip_prefix("t="))
            .and_then(|t| t.trim().parse().ok())
            .unwrap_or_else(|| panic!("no time in the log:\n{log}"));
        to_leased.push((leased - queued) as f64);
        to_running.push((script - queued) as f64);
    }
    for v in [&mut to_leased, &mut to_running] {
        v.sort_by(f64::total_cmp);
    }
    println!(
        "job queued → leased to an idle agent ({LATENCY_RUNS} runs): median {:.0} ms, p90 {:.0} ms",
        percentile(&to_leased, 0.5),
        percentile(&to_leased, 0.9)
    );
    println!(
        "job queued → its script running on the agent (checkout, workspace, spawn; \
         {LATENCY_RUNS} runs): median {:.0} ms, p90 {:.0} ms",
        percentile(&to_running, 0.5),
        percentile(&to_running, 0.9)
    );

    // Cancel on an agent: from the request to the job's process being gone.
    let mut cancel_to_gone = Vec::new();
    for i in 0..CANCEL_RUNS {
        let _ = std::fs::remove_file(&pidfile);
        let id = trigger(&server, "hold");
        let deadline = Instant::now() + Duration::from_secs(120);
        let pid: i32 = loop {
            if let Some(pid) = std::fs::read_to_string(&pidfile)
                .ok()
                .and_then(|t| t.trim().parse().ok())
            {
                break pid;
            }
            assert!(Instant::now() < deadline, "the hold job never started");
            std::thread::sleep(Duration::from_millis(10));
        };
        // At a different point between two heartbeats each time (they come every 2 s
        // from the lease on), as people's cancels would.
        std::thread::sleep(Duration::from_millis(100 + 200 * i as u64));
        let asked = Instant::now();
        let (status, body) = http(
            &server.url,
            "POST",
            &format!("/api/runs/{id}/cancel"),
            &[
                ("Authorization", &format!("Bearer {}", server.token)),
                ("Content-Type", "application/json"),
            ],
            b"{}",
        );
        assert!((200..300).contains(&status), "cancel: {status} {body}");
        while !gone(pid) {
            assert!(asked.elapsed() < Duration::from_secs(120), "{pid} lives on");
            std::thread::sleep(Duration::from_millis(1));
        }
        cancel_to_gone.push(asked.elapsed().as_secs_f64() * 1000.0);
        wait_final(&server, id);
    }
    cancel_to_gone.sort_by(f64::total_cmp);
    println!(
        "cancel request → the job's process gone on the agent ({CANCEL_RUNS} runs; heartbeats \
         every 2 s): median {:.0} ms, p90 {:.0} ms, max {:.0} ms",
        percentile(&cancel_to_gone, 0.5),
        percentile(&cancel_to_gone, 0.9),
        cancel_to_gone.last().copied().unwrap_or(0.0)
    );

    // Jobs per second to 8 agents.
    let mut agents = vec![first];
    for i in 1..AGENTS {
        let name = format!("bench-{i}");
        agents.push(Agent::start(
            &server.url,
            &token,
            &name,
            &tmp.path().join("agents").join(&name),
            &[],
        ));
    }
    // Warm-up: every agent makes its git mirror of the wide repository.
    run_and_wait(&server, "wide");
    let started = Instant::now();
    let run = run_and_wait(&server, "wide");
    let took = started.elapsed();
    let jobs = run["jobs"].as_array().unwrap();
    let once = jobs
        .iter()
        .filter(|j| j["state"] == "succeeded" && j["attempt"] == 1)
        .count();
    let mut per_agent = std::collections::BTreeMap::<String, usize>::new();
    for j in jobs {
        *per_agent
            .entry(j["executor"].as_str().unwrap_or("?").to_owned())
            .or_default() += 1;
    }
    println!(
        "{WIDE_JOBS} trivial jobs handed out to {AGENTS} agents (1 job at a time each): run \
         took {:.1} s, {:.1} jobs/s; {once} succeeded in exactly one attempt; jobs per agent \
         {:?}",
        took.as_secs_f64(),
        WIDE_JOBS as f64 / took.as_secs_f64(),
        per_agent.values().collect::<Vec<_>>()
    );
    assert_eq!(once, WIDE_JOBS, "{run:#}");

    std::thread::sleep(Duration::from_secs(3));
    let idle_after = memory(agents[0].pid());
    let mb = |kib: u64| kib as f64 / 1024.0;
    println!(
        "idle RSS of gantry agent: {:.1} MB after connecting ({:.1} MB anonymous), {:.1} MB \
         after {} jobs ({:.1} MB anonymous; the rest are pages of the gantry binary, shared \
         with other gantry processes and reclaimable)",
        mb(idle_start.rss),
        mb(idle_start.anon),
        mb(idle_after.rss),
        LATENCY_RUNS + 1 + per_agent.get("bench-0").copied().unwrap_or(0),
        mb(idle_after.anon),
    );
}

/// Triggers the repository's pipeline through the API; the run's id.
fn trigger(server: &Server, repo: &str) -> i64 {
    let (status, body) = http(
        &server.url,
        "POST",
        &format!("/api/repos/{repo}/trigger"),
        &[
            ("Authorization", &format!("Bearer {}", server.token)),
            ("Content-Type", "application/json"),
        ],
        b"{}",
    );
    assert!(
        (200..300).contains(&status),
        "trigger {repo}: {status} {body}"
    );
    let runs: Value = serde_json::from_str(&body).unwrap();
    runs[0]["id"]
        .as_i64()
        .or_else(|| runs["runs"][0]["id"].as_i64())
        .unwrap()
}

/// Waits for run `id` to end; the run.
fn wait_final(server: &Server, id: i64) -> Value {
    let deadline = Instant::now() + Duration::from_secs(600);
    loop {
        let run: Value =
            serde_json::from_str(&get_text(server, &format!("/api/runs/{id}"))).unwrap();
        if support::is_final(&run["state"]) {
            return run;
        }
        assert!(Instant::now() < deadline, "run {id} did not finish");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Whether process `pid` is gone (a zombie runs nothing any more).
fn gone(pid: i32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat")).map_or(true, |s| s.contains(") Z "))
}

/// Triggers the repository's pipeline through the API and waits for the run to end.
fn run_and_wait(server: &Server, repo: &str) -> Value {
    let run = wait_final(server, trigger(server, repo));
    assert_eq!(run["state"], "succeeded", "{run:#}");
    run
}

fn get_text(server: &Server, path: &str) -> String {
    let (status, body) = http(
        &server.url,
        "GET",
        path,
        &[("Authorization", &format!("Bearer {}", server.token))],
        b"",
    );
    assert_eq!(status, 200, "GET {path}: {body}");
    body
}

/// Resident memory of a process, in KiB: all of it, and its anonymous part (heap,
/// stacks: what the process costs beyond the pages of its executable).
struct Memory {
    rss: u64,
    anon: u64,
}

fn memory(pid: u32) -> Memory {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let field = |name: &str| -> u64 {
        status
            .lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|v| v.split_whitespace().next())
            .and_then(|v| v.parse().ok())
            .unwrap()
    };
    Memory {
        rss: field("VmRSS:"),
        anon: field("RssAnon:"),
    }
}

fn parse_ms(v: &Value) -> Option<i64> {
    let t =
        time::OffsetDateTime::parse(v.as_str()?, &time::format_description::well_known::Rfc3339)
            .ok()?;
    Some((t.unix_timestamp_nanos() / 1_000_000) as i64)
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}
