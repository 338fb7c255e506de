//! End-to-end tests of remote agents, with real processes: `gantry serve --jobs 0` (no
//! built-in executor, so every job runs on an agent) on a temporary data directory,
//! several `gantry agent` processes each with its own work directory, real bare git
//! repositories, the `gantry` CLI as the admin's client, and — for a network cut — a TCP
//! proxy between one agent and the server that the test drops and restores.
//!
//! Jobs run on the agents' local backend and inherit the agent's environment: `AGENT_ID`
//! (the agent's name) lets a job's log say where it ran, and `NAP` how long a job sleeps
//! on that agent, so that a test can keep one attempt running while another finishes.
//!
//! Nothing here asserts timing: every wait polls the API (or an agent's output) for a
//! state, with a generous deadline whose passing fails the test with the output attached.

mod support;

#[path = "agents/agent.rs"]
mod agent;
#[path = "agents/caches.rs"]
mod caches;

use std::collections::BTreeSet;
use std::path::Path;

use agent::Agent;
use gantry_test_support::TcpProxy;
use serde_json::Value;
use support::{Repo, Server, code, http, processes_with_arg, stderr};

/// Short leases, so that a lost agent's job is re-queued within seconds.
const TTL: &str = "3s";

/// A server for agents: no built-in executor, no polling to speak of, `extra` flags.
fn serve(data: &Path, extra: &[&str]) -> Server {
    let mut flags = vec!["--jobs", "0", "--poll-interval", "1h"];
    flags.extend_from_slice(extra);
    Server::start(data, None, &flags)
}

/// `gantry agent-token create NAME`: the token (alone on stdout).
fn agent_token(server: &Server, name: &str) -> String {
    let token = server
        .ok(&["agent-token", "create", name])
        .trim()
        .to_owned();
    assert!(!token.is_empty() && !token.contains(' '), "{token:?}");
    token
}

/// `gantry trigger REPO`: the id of the run it started.
fn trigger(server: &Server, repo: &str) -> i64 {
    let out = server.ok(&["trigger", repo]);
    out.split("(run ")
        .nth(1)
        .and_then(|s| s.split(')').next())
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("no run id in: {out}"))
}

/// Waits until the run is final; returns it with its jobs.
fn wait_run(server: &Server, id: i64) -> Value {
    server.wait_for(&format!("run {id} to finish"), || {
        let run = server.run(id);
        support::is_final(&run["state"]).then_some(run)
    })
}

/// The job called `key` in a run.
fn job<'a>(run: &'a Value, key: &str) -> &'a Value {
    run["jobs"]
        .as_array()
        .and_then(|jobs| jobs.iter().find(|j| j["key"] == key))
        .unwrap_or_else(|| panic!("no job {key} in {run:#}"))
}

/// The log of one job.
fn log(server: &Server, id: i64, key: &str) -> String {
    server.ok(&["logs", &id.to_string(), key])
}

/// How many lines of `log` are exactly `line`.
fn count(log: &str, line: &str) -> usize {
    log.lines().filter(|l| *l == line).count()
}

/// The names of the agents `gantry agents --json` lists.
fn online(server: &Server) -> BTreeSet<String> {
    let text = server.ok(&["agents", "--json"]);
    let agents: Vec<Value> = serde_json::from_str(&text).expect("agents --json");
    agents
        .iter()
        .filter_map(|a| a["name"].as_str().map(str::to_owned))
        .collect()
}

fn wait_online(server: &Server, names: &[&str]) {
    server.wait_for(&format!("agents {names:?} to be online"), || {
        let online = online(server);
        names.iter().all(|n| online.contains(*n)).then_some(())
    });
}

/// Waits until the job `key` of run `id` runs on `agent` and has logged `line`.
fn wait_running_on(server: &Server, id: i64, key: &str, agent: &str, line: &str) {
    server.wait_for(&format!("{key} of run {id} to run on {agent}"), || {
        let run = server.run(id);
        let j = job(&run, key);
        let there = j["state"] == "running" && j["executor"] == agent;
        (there && log(server, id, key).lines().any(|l| l == line)).then_some(())
    });
}

const SPREAD: &str = r#"
name: spread
on:
  manual: true
jobs:
  p1:
    script: ["echo p1 on $AGENT_ID", "sleep 3"]
  p2:
    script: ["echo p2 on $AGENT_ID", "sleep 3"]
  p3:
    script: ["echo p3 on $AGENT_ID", "sleep 3"]
  p4:
    script: ["echo p4 on $AGENT_ID", "sleep 3"]
  p5:
    script: ["echo p5 on $AGENT_ID", "sleep 3"]
  p6:
    script: ["echo p6 on $AGENT_ID", "sleep 3"]
  build:
    runs_on: { pool: x }
    script:
      - mkdir -p out
      - echo "made on $AGENT_ID" > out/msg.txt
    artifacts: [out/msg.txt]
  check:
    needs: [build]
    runs_on: { pool: y }
    script:
      - cat out/msg.txt
      - echo "checked on $AGENT_ID"
  late:
    runs_on: { pool: z }
    script: ["echo late on $AGENT_ID"]
"#;

/// (a) Three agents as separate processes: parallel jobs spread over all of them, a DAG
/// whose jobs run on different agents (by `runs_on`) passes its artifact, a job no online
/// agent can take says so and runs once such an agent comes; `gantry agents` and
/// `gantry agent-token list` show who is online.
#[test]
fn jobs_spread_over_agents_and_follow_runs_on() {
    let repo = Repo::new(SPREAD);
    let data = tempfile::tempdir().expect("tempdir");
    let dirs = tempfile::tempdir().expect("tempdir");
    let server = serve(data.path(), &[]);
    server.ok(&["repo", "add", "spread", &repo.url()]);
    let token = agent_token(&server, "pool");
    let start = |name: &str, labels: &[&str]| {
        let mut extra = Vec::new();
        for l in labels {
            extra.extend(["--label", l]);
        }
        Agent::start(&server.url, &token, name, &dirs.path().join(name), &extra)
    };
    let a1 = start("a1", &["pool=y"]);
    let _a2 = start("a2", &[]);
    let _a3 = start("a3", &["pool=x", "zone=eu"]);
    for needle in ["labels backend=local, os=", "pool=y, 1 job)"] {
        assert!(a1.output().contains(needle), "{}", a1.output());
    }
    wait_online(&server, &["a1", "a2", "a3"]);
    let table = server.ok(&["agents"]);
    assert!(
        table.contains("a3") && table.contains("pool=x, zone=eu") && table.contains("0/1"),
        "{table}"
    );
    let tokens = server.ok(&["agent-token", "list"]);
    assert!(
        tokens.contains("pool") && tokens.contains("a1, a2, a3"),
        "{tokens}"
    );

    let id = trigger(&server, "spread");
    let waiting = server.wait_for("late to say why it waits", || {
        let run = server.run(id);
        let message = job(&run, "late")["message"].as_str()?.to_owned();
        message.contains("pool=z").then_some(message)
    });
    assert_eq!(
        waiting,
        "waiting: no agent with label pool=z online",
        "{}",
        server.output()
    );
    server.wait_for("every job but late to finish", || {
        let run = server.run(id);
        run["jobs"]
            .as_array()?
            .iter()
            .filter(|j| j["key"] != "late")
            .all(|j| support::is_final(&j["state"]))
            .then_some(())
    });
    let run = server.run(id);
    assert_eq!(job(&run, "late")["state"], "queued", "{run:#}");

    let _a4 = start("a4", &["pool=z"]);
    let run = wait_run(&server, id);
    assert_eq!(run["state"], "succeeded", "{run:#}\n{}", server.output());

    let executor = |key: &str| job(&run, key)["executor"].as_str().unwrap_or("").to_owned();
    let spread: BTreeSet<String> = ["p1", "p2", "p3", "p4", "p5", "p6"]
        .iter()
        .map(|k| executor(k))
        .collect();
    for name in ["a1", "a2", "a3"] {
        assert!(spread.contains(name), "{name} ran none of p1..p6: {run:#}");
    }
    for (key, agent) in [("build", "a3"), ("check", "a1"), ("late", "a4")] {
        assert_eq!(executor(key), agent, "{key}: {run:#}");
        assert_eq!(job(&run, key)["attempt"], 1, "{key}: {run:#}");
    }
    for key in ["p1", "p2", "p3", "p4", "p5", "p6"] {
        let text = log(&server, id, key);
        let line = format!("{key} on {}", executor(key));
        assert_eq!(count(&text, &line), 1, "{key}:\n{text}");
    }
    // check ran on a1 with the artifact build made on a3.
    let checked = log(&server, id, "check");
    assert_eq!(count(&checked, "made on a3"), 1, "{checked}");
    assert_eq!(count(&checked, "checked on a1"), 1, "{checked}");
    let late = log(&server, id, "late");
    assert_eq!(count(&late, "late on a4"), 1, "{late}");
}

const NAP: &str = r#"
name: nap
on:
  manual: true
jobs:
  nap:
    script:
      - echo "start on $AGENT_ID"
      - sleep $NAP
      - echo "done on $AGENT_ID"
"#;

/// Whether process `pid` is gone (a zombie counts: it runs nothing any more).
fn gone(pid: i32) -> bool {
    !Path::new(&format!("/proc/{pid}")).exists()
        || std::fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|s| s.contains(") Z "))
}

/// The one process running `sleep ARG`, once there is one.
fn sleeper(server: &Server, arg: &str) -> i32 {
    server.wait_for(&format!("a job to run `sleep {arg}`"), || {
        processes_with_arg(arg).into_iter().next()
    })
}

/// Kills the sleeps of abandoned attempts (`sleep ARG`), which outlive a killed agent.
struct Sleepers(&'static str);

impl Drop for Sleepers {
    fn drop(&mut self) {
        for pid in processes_with_arg(self.0) {
            let _ = nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(pid),
                nix::sys::signal::Signal::SIGKILL,
            );
        }
    }
}

/// (b) `kill -9` of an agent mid-job: after the lease expires the job runs again on
/// another agent as attempt 2 and succeeds once; the run says what happened; the killed
/// agent, started again, stops the process its job left running and removes the job
/// directory it left.
#[test]
fn a_killed_agents_job_runs_again_elsewhere() {
    let _sleepers = Sleepers("86417");
    let repo = Repo::new(NAP);
    let data = tempfile::tempdir().expect("tempdir");
    let dirs = tempfile::tempdir().expect("tempdir");
    let server = serve(data.path(), &["--lease-ttl", TTL]);
    server.ok(&["repo", "add", "nap", &repo.url()]);
    let token = agent_token(&server, "nap");
    let a1_dir = dirs.path().join("a1");
    // a1 alone first, so that attempt 1 is a1's, with a sleep that never ends by itself.
    let mut a1 = Agent::spawn(&server.url, &token, "a1", &a1_dir, &[], &[("NAP", "86417")]);
    a1.wait_line("connected", |l| l.contains("agent a1 connected"));
    let id = trigger(&server, "nap");
    wait_running_on(&server, id, "nap", "a1", "start on a1");
    let a2 = Agent::spawn(
        &server.url,
        &token,
        "a2",
        &dirs.path().join("a2"),
        &[],
        &[("NAP", "1")],
    );
    a2.wait_line("connected", |l| l.contains("agent a2 connected"));

    assert_eq!(a1.job_dirs().len(), 1, "a1 has its job's directory");
    let copy = sleeper(&server, "86417");
    a1.kill9();
    let run = wait_run(&server, id);
    assert_eq!(run["state"], "succeeded", "{run:#}\n{}", server.output());
    let nap = job(&run, "nap");
    assert_eq!(nap["attempt"], 2, "{run:#}");
    assert_eq!(nap["executor"], "a2", "{run:#}");
    let text = log(&server, id, "nap");
    assert_eq!(count(&text, "start on a1"), 1, "{text}");
    assert_eq!(count(&text, "done on a2"), 1, "{text}");
    assert_eq!(count(&text, "done on a1"), 0, "{text}");
    assert!(
        text.contains("a1 was lost") && text.contains("attempt 2"),
        "the log says what happened:\n{text}"
    );

    // Started again, a1 removes what its killed run left.
    assert_eq!(
        a1.job_dirs().len(),
        1,
        "the killed agent left its job directory"
    );
    assert!(!gone(copy), "the killed agent's job still sleeps");
    let a1 = Agent::start(&server.url, &token, "a1", &a1_dir, &[]);
    let out = a1.output();
    for said in [
        "that the jobs of an earlier run of agent a1 left running",
        "removed 1 job directory left by an earlier run of agent a1",
    ] {
        assert!(out.contains(said), "{out}");
    }
    // Its lease had expired already: nothing for the server to give up.
    assert!(!out.contains("the server gave up"), "{out}");
    assert!(gone(copy), "the leftover sleep {copy} runs on:\n{out}");
    assert!(a1.job_dirs().is_empty(), "{:?}", a1.job_dirs());
}

/// (b) An agent killed mid-job and started again at once, with a lease time to live of an
/// hour: its hello names the lease its killed run held and the server gives the job up
/// at once — attempt 2 runs (here on the restarted agent itself) without waiting out the
/// ttl — and the leftover process of attempt 1 is stopped. Another agent of the same
/// name on the same machine (its own work directory) keeps its running job and its
/// process, both when it says hello and when the first one restarts.
#[test]
fn a_restarted_agent_gives_up_its_earlier_lease_at_once() {
    let _sleepers = Sleepers("86431");
    let _twin_sleepers = Sleepers("86432");
    let repo = Repo::new(NAP);
    let data = tempfile::tempdir().expect("tempdir");
    let dirs = tempfile::tempdir().expect("tempdir");
    let server = serve(data.path(), &["--lease-ttl", "1h"]);
    server.ok(&["repo", "add", "nap", &repo.url()]);
    let token = agent_token(&server, "same");
    let first_dir = dirs.path().join("first");
    let spawn = |dir: &Path, id: &str, nap: &str| {
        let agent = Agent::spawn(
            &server.url,
            &token,
            "same",
            dir,
            &[],
            &[("AGENT_ID", id), ("NAP", nap)],
        );
        agent.wait_line("connected", |l| l.contains("agent same connected"));
        agent
    };
    let mut first = spawn(&first_dir, "first", "86431");
    let id1 = trigger(&server, "nap");
    wait_running_on(&server, id1, "nap", "same", "start on first");
    let copy = sleeper(&server, "86431");
    // A second agent called `same`: its hello leaves the first one's lease alone, and it
    // takes the next job since the first one is busy.
    let twin = spawn(&dirs.path().join("twin"), "twin", "86432");
    let id2 = trigger(&server, "nap");
    wait_running_on(&server, id2, "nap", "same", "start on twin");
    let twins = sleeper(&server, "86432");
    let run = server.run(id1);
    assert_eq!(
        (
            job(&run, "nap")["state"].clone(),
            job(&run, "nap")["attempt"].clone()
        ),
        (Value::from("running"), Value::from(1)),
        "{run:#}"
    );

    first.kill9();
    let again = spawn(&first_dir, "again", "1");
    let out = again.output();
    for said in [
        "that the jobs of an earlier run of agent same left running",
        "the server gave up 1 job an earlier run of agent same left unfinished; it runs \
         again as a new attempt",
    ] {
        assert!(out.contains(said), "{out}");
    }
    assert!(gone(copy), "the leftover sleep {copy} runs on:\n{out}");
    assert!(!gone(twins), "the other agent's job was stopped:\n{out}");

    let run = wait_run(&server, id1);
    assert_eq!(run["state"], "succeeded", "{run:#}\n{}", server.output());
    assert_eq!(job(&run, "nap")["attempt"], 2, "{run:#}");
    let text = log(&server, id1, "nap");
    assert!(
        text.contains(
            "agent same was lost (it restarted) during attempt 1; the job is queued again for \
             attempt 2"
        ),
        "{text}"
    );
    assert_eq!(count(&text, "start on first"), 1, "{text}");
    assert_eq!(count(&text, "done on again"), 1, "{text}");
    assert_eq!(count(&text, "done on first"), 0, "{text}");

    // The twin's job runs on, still under its first lease.
    let run = server.run(id2);
    let nap = job(&run, "nap");
    assert_eq!(
        (nap["state"].clone(), nap["attempt"].clone()),
        (Value::from("running"), Value::from(1)),
        "{run:#}"
    );
    assert!(!gone(twins), "the other agent's job was stopped");
    assert!(!twin.output().contains("lease lost"), "{}", twin.output());
}

const HOLD: &str = r#"
name: hold
on:
  manual: true
jobs:
  hold:
    script:
      - sleep 86441 & echo $! > "$PIDFILE"
      - echo "holding on $AGENT_ID"
      - wait
"#;

/// A cancel reaches the agent running the job: the job ends `cancelled`, its process is
/// gone, and the agent goes on taking jobs.
#[test]
fn a_cancel_stops_the_job_on_its_agent() {
    let _sleepers = Sleepers("86441");
    let repo = Repo::new(HOLD);
    let data = tempfile::tempdir().expect("tempdir");
    let dirs = tempfile::tempdir().expect("tempdir");
    let server = serve(data.path(), &[]);
    server.ok(&["repo", "add", "hold", &repo.url()]);
    let token = agent_token(&server, "hold");
    let pidfile = dirs.path().join("sleep.pid");
    let pidfile = pidfile.to_str().expect("utf-8 path");
    let agent = Agent::spawn(
        &server.url,
        &token,
        "c1",
        &dirs.path().join("c1"),
        &[],
        &[("PIDFILE", pidfile)],
    );
    agent.wait_line("connected", |l| l.contains("agent c1 connected"));
    let id = trigger(&server, "hold");
    wait_running_on(&server, id, "hold", "c1", "holding on c1");
    let pid: i32 = std::fs::read_to_string(pidfile)
        .expect("the job wrote its pid")
        .trim()
        .parse()
        .expect("a pid");
    assert!(!gone(pid));

    let said = server.ok(&["cancel", &id.to_string()]);
    assert!(said.contains("cancelling"), "{said}");
    let run = wait_run(&server, id);
    assert_eq!(run["state"], "cancelled", "{run:#}\n{}", agent.output());
    assert_eq!(job(&run, "hold")["state"], "cancelled", "{run:#}");
    server.wait_for("the job's process to be gone", || gone(pid).then_some(()));
    agent.wait_line("the job cancelled", |l| l.contains("job hold: cancelled"));
    assert!(
        agent
            .output()
            .contains("cancelled on the server; stopping it"),
        "{}",
        agent.output()
    );

    // The agent takes the next job as usual.
    std::fs::remove_file(pidfile).expect("remove the pid file");
    let id = trigger(&server, "hold");
    wait_running_on(&server, id, "hold", "c1", "holding on c1");
    server.ok(&["cancel", &id.to_string()]);
    assert_eq!(wait_run(&server, id)["state"], "cancelled");
}

/// (c) A network cut between one agent and the server (a TCP proxy the test drops): the
/// job's lease expires and it runs again on another agent; when the link comes back the
/// cut-off agent's reports for it are refused as stale, it kills its copy, and the job
/// succeeded exactly once.
///
/// The cut-off agent is also stopped (SIGSTOP) for as long as the cut lasts. Left
/// running, it would stop its copy of the job by its own clock once no heartbeat got
/// through for a lease time to live (what an agent that stays cut off does, and
/// rightly), so whether it came back before noticing — the case fenced here — would
/// depend on the test's steps being quicker than that on a slow machine. Stopped, it
/// notices nothing until the link is back: then its first heartbeat meets the server,
/// which has moved on, however long the cut took.
#[test]
fn a_cut_off_agent_is_fenced_when_it_returns() {
    let _sleepers = Sleepers("86423");
    let repo = Repo::new(NAP);
    let data = tempfile::tempdir().expect("tempdir");
    let dirs = tempfile::tempdir().expect("tempdir");
    let server = serve(data.path(), &["--lease-ttl", TTL]);
    server.ok(&["repo", "add", "nap", &repo.url()]);
    let token = agent_token(&server, "cut");
    let proxy = TcpProxy::start(server.url.trim_start_matches("http://"));
    let a1 = Agent::spawn(
        &proxy.url(),
        &token,
        "a1",
        &dirs.path().join("a1"),
        &[],
        &[("NAP", "86423")],
    );
    a1.wait_line("connected", |l| l.contains("agent a1 connected"));
    let id = trigger(&server, "nap");
    wait_running_on(&server, id, "nap", "a1", "start on a1");
    let copy = sleeper(&server, "86423");
    let _a2 = Agent::spawn(
        &server.url,
        &token,
        "a2",
        &dirs.path().join("a2"),
        &[],
        &[("NAP", "1")],
    );

    proxy.cut();
    a1.signal(nix::sys::signal::Signal::SIGSTOP);
    server.wait_for("the job to run again on a2", || {
        let run = server.run(id);
        let j = job(&run, "nap");
        (j["attempt"] == 2 && j["executor"] == "a2").then_some(())
    });
    // The link first: a request the agent had in flight is answered before it runs again.
    proxy.restore();
    a1.signal(nix::sys::signal::Signal::SIGCONT);

    a1.wait_line("its lease refused as stale", |l| {
        l.contains("run ") && (l.contains("lease lost") || l.contains("refused: the lease"))
    });
    server.wait_for("a1 to kill its copy of the job", || {
        gone(copy).then_some(())
    });
    let run = wait_run(&server, id);
    assert_eq!(run["state"], "succeeded", "{run:#}\n{}", server.output());
    let nap = job(&run, "nap");
    assert_eq!(nap["attempt"], 2, "{run:#}");
    assert_eq!(nap["executor"], "a2", "{run:#}");
    let text = log(&server, id, "nap");
    assert_eq!(count(&text, "done on a2"), 1, "{text}");
    assert_eq!(count(&text, "done on a1"), 0, "{text}");
    // The run's one success is a2's: a stale finish from a1 changed nothing.
    let again = server.run(id);
    assert_eq!(
        again["jobs"], run["jobs"],
        "the run changed after it finished"
    );
}

const PAIR: &str = r#"
name: pair
on:
  manual: true
jobs:
  left:
    script: ["echo start left on $AGENT_ID", "sleep 6", "echo done left"]
  right:
    script: ["echo start right on $AGENT_ID", "sleep 6", "echo done right"]
  join:
    needs: [left, right]
    script: ["echo joined on $AGENT_ID"]
"#;

/// (d) The server is killed (`kill -9`) and started again on the same data directory and
/// port while agents run jobs: the agents reconnect, their running jobs finish and are
/// recorded under their first attempt, and the rest of the run goes on.
#[test]
fn agents_carry_on_across_a_server_restart() {
    let repo = Repo::new(PAIR);
    let data = tempfile::tempdir().expect("tempdir");
    let dirs = tempfile::tempdir().expect("tempdir");
    let mut server = serve(data.path(), &[]);
    server.ok(&["repo", "add", "pair", &repo.url()]);
    let token = agent_token(&server, "pair");
    let a1 = Agent::start(&server.url, &token, "a1", &dirs.path().join("a1"), &[]);
    let a2 = Agent::start(&server.url, &token, "a2", &dirs.path().join("a2"), &[]);
    wait_online(&server, &["a1", "a2"]);
    let id = trigger(&server, "pair");
    server.wait_for("left and right to run on the two agents", || {
        let run = server.run(id);
        let running = ["left", "right"]
            .iter()
            .all(|k| job(&run, k)["state"] == "running");
        let logged = log(&server, id, "left").contains("start left on")
            && log(&server, id, "right").contains("start right on");
        (running && logged).then_some(())
    });

    server.kill9();
    let admin = server.token.clone();
    let listen = server.url.trim_start_matches("http://").to_owned();
    drop(server);
    let server = Server::start_on(
        &listen,
        data.path(),
        Some(&admin),
        &["--jobs", "0", "--poll-interval", "1h"],
    );

    let run = wait_run(&server, id);
    assert_eq!(
        run["state"],
        "succeeded",
        "{run:#}\n{}\na1:\n{}\na2:\n{}",
        server.output(),
        a1.output(),
        a2.output()
    );
    for key in ["left", "right"] {
        assert_eq!(job(&run, key)["attempt"], 1, "{key}: {run:#}");
        let text = log(&server, id, key);
        assert_eq!(count(&text, &format!("done {key}")), 1, "{text}");
    }
    let joined = log(&server, id, "join");
    assert!(joined.contains("joined on a"), "{joined}");
}

/// (e) A wrong token is refused at start with what to do; a token revoked while its agent
/// runs stops the agent, and it cannot come back with it.
#[test]
fn wrong_and_revoked_tokens_are_refused() {
    let data = tempfile::tempdir().expect("tempdir");
    let dirs = tempfile::tempdir().expect("tempdir");
    let server = serve(data.path(), &[]);

    let mut wrong = Agent::spawn(
        &server.url,
        "gantry_not_a_token",
        "w",
        &dirs.path().join("w"),
        &[],
        &[],
    );
    let status = wrong.wait_exit();
    assert_eq!(status.code(), Some(1), "{}", wrong.output());
    let text = wrong.output();
    assert!(
        text.contains("refused agent w") && text.contains("not authorized"),
        "{text}"
    );
    assert!(text.contains("gantry agent-token create"), "{text}");

    let token = agent_token(&server, "temp");
    let mut agent = Agent::start(&server.url, &token, "t1", &dirs.path().join("t1"), &[]);
    let revoked = server.ok(&["agent-token", "revoke", "temp"]);
    assert!(revoked.contains("revoked agent token temp"), "{revoked}");
    let status = agent.wait_exit();
    assert_eq!(status.code(), Some(1), "{}", agent.output());
    assert!(
        agent.output().contains("the server refused agent t1"),
        "{}",
        agent.output()
    );
    assert!(
        !server.ok(&["agent-token", "list"]).contains("temp"),
        "a revoked token is still listed"
    );
    let mut again = Agent::spawn(&server.url, &token, "t1", &dirs.path().join("t1"), &[], &[]);
    assert_eq!(again.wait_exit().code(), Some(1), "{}", again.output());

    // Revoking what does not exist is a usage error.
    let out = server.gantry(&["agent-token", "revoke", "temp"]);
    assert_eq!(code(&out), 2, "{}", stderr(&out));
}

/// (e) Requests no agent of this version sends: another protocol version (refused with
/// both versions named), a malformed lease request, reports for a lease nobody holds.
#[test]
fn bad_agent_requests_are_refused() {
    let data = tempfile::tempdir().expect("tempdir");
    let server = serve(data.path(), &[]);
    let token = agent_token(&server, "raw");
    let auth = format!("Bearer {token}");
    let post = |path: &str, body: &str| {
        http(
            &server.url,
            "POST",
            &format!("/api/agent/v1/{path}"),
            &[
                ("Authorization", &auth),
                ("Content-Type", "application/json"),
            ],
            body.as_bytes(),
        )
    };
    let me = |protocol: u32| {
        serde_json::json!({
            "name": "raw", "labels": {}, "capacity": 1, "protocol": protocol
        })
        .to_string()
    };
    let (status, body) = post("hello", &me(99));
    assert_eq!(status, 426, "{body}");
    assert!(
        body.contains("protocol 99") && body.contains("protocol 1"),
        "both versions are named: {body}"
    );
    let (status, body) = post("hello", &me(1));
    assert_eq!(status, 200, "{body}");

    for (path, body, statuses) in [
        ("lease", r#"{"executor": 5}"#, &[400, 422][..]),
        ("lease", "not json", &[400, 415, 422]),
        (
            "leases/no-such-lease/finish",
            r#"{"report":{"status":"succeeded"},"attempts":1,"duration_ms":1,"manifest":null}"#,
            &[404, 409],
        ),
        (
            "leases/no-such-lease/logs",
            r#"{"seq":0,"lines":[]}"#,
            &[404, 409],
        ),
    ] {
        let (status, text) = post(path, body);
        assert!(
            statuses.contains(&status),
            "POST {path} {body}: {status} {text}"
        );
        let refusal: Value = serde_json::from_str(&text)
            .unwrap_or_else(|e| panic!("POST {path}: not JSON ({e}): {text}"));
        assert!(refusal["error"].is_string(), "{text}");
    }
    // A heartbeat for a lease nobody holds tells the agent to stop that job.
    let (status, text) = post("leases/no-such-lease/heartbeat", "");
    assert!(
        (status == 200 && text.trim() == "\"lost\"") || status == 409,
        "heartbeat of an unknown lease: {status} {text}"
    );
    // Without a token nothing is answered at all.
    let (status, _) = http(
        &server.url,
        "POST",
        "/api/agent/v1/hello",
        &[("Content-Type", "application/json")],
        me(1).as_bytes(),
    );
    assert_eq!(status, 401);
}

const BIG: &str = r#"
name: big
on:
  manual: true
jobs:
  big:
    script:
      - head -c 65536 /dev/zero > big.bin
    artifacts: [big.bin]
"#;

/// (e) An artifact larger than the server's limit is refused: the job ends errored with
/// the reason and nothing is stored.
#[test]
fn artifacts_over_the_limit_are_refused() {
    let repo = Repo::new(BIG);
    let data = tempfile::tempdir().expect("tempdir");
    let dirs = tempfile::tempdir().expect("tempdir");
    let server = serve(data.path(), &["--max-artifact-size", "1KiB"]);
    server.ok(&["repo", "add", "big", &repo.url()]);
    let token = agent_token(&server, "big");
    let _agent = Agent::start(&server.url, &token, "a1", &dirs.path().join("a1"), &[]);
    let id = trigger(&server, "big");
    let run = wait_run(&server, id);
    let big = job(&run, "big");
    assert_eq!(big["state"], "errored", "{run:#}\n{}", server.output());
    let message = big["message"].as_str().unwrap_or("");
    assert!(
        message.contains("1024") || message.contains("limit"),
        "the reason names the limit: {message}"
    );
    let (status, body) = http(
        &server.url,
        "GET",
        &format!("/api/runs/{id}/artifacts"),
        &[("Authorization", &format!("Bearer {}", server.token))],
        b"",
    );
    assert_eq!(status, 200, "{body}");
    let listed: Vec<Value> = serde_json::from_str(&body).expect("artifacts JSON");
    assert!(listed.is_empty(), "{listed:#?}");
}

const QUICK: &str = r#"
name: quick
on:
  manual: true
jobs:
  quick:
    script: ["echo quick on $AGENT_ID"]
"#;

/// An agent started while the server is down says so and keeps trying; it connects when
/// the server comes up and runs its jobs.
#[test]
fn an_agent_waits_for_its_server() {
    let repo = Repo::new(QUICK);
    let data = tempfile::tempdir().expect("tempdir");
    let dirs = tempfile::tempdir().expect("tempdir");
    let (admin, token, listen) = {
        let server = serve(data.path(), &[]);
        server.ok(&["repo", "add", "quick", &repo.url()]);
        let token = agent_token(&server, "early");
        let listen = server.url.trim_start_matches("http://").to_owned();
        (server.token.clone(), token, listen)
    };
    let url = format!("http://{listen}");
    let agent = Agent::spawn(&url, &token, "early", &dirs.path().join("early"), &[], &[]);
    agent.wait_line("that the server cannot be reached", |l| {
        l.contains(&format!("cannot reach the gantry server at {url}")) && l.contains("retrying in")
    });
    let server = Server::start_on(
        &listen,
        data.path(),
        Some(&admin),
        &["--jobs", "0", "--poll-interval", "1h"],
    );
    agent.wait_line("connected", |l| l.contains("agent early connected"));
    let id = trigger(&server, "quick");
    let run = wait_run(&server, id);
    assert_eq!(run["state"], "succeeded", "{run:#}");
    assert_eq!(count(&log(&server, id, "quick"), "quick on early"), 1);
}

/// SIGTERM stops an agent from taking new jobs but lets its running job finish; the
/// agent then exits with 0, and a second agent in the same work directory is refused
/// while the first one runs.
#[test]
fn sigterm_lets_the_running_job_finish() {
    let repo = Repo::new(NAP);
    let data = tempfile::tempdir().expect("tempdir");
    let dirs = tempfile::tempdir().expect("tempdir");
    let server = serve(data.path(), &[]);
    server.ok(&["repo", "add", "nap", &repo.url()]);
    let token = agent_token(&server, "drain");
    let dir = dirs.path().join("d1");
    let mut agent = Agent::spawn(&server.url, &token, "d1", &dir, &[], &[("NAP", "4")]);
    agent.wait_line("connected", |l| l.contains("agent d1 connected"));
    let mut twin = Agent::spawn(&server.url, &token, "d1", &dir, &[], &[]);
    assert_eq!(twin.wait_exit().code(), Some(1), "{}", twin.output());
    assert!(
        twin.output().contains("another agent is running in"),
        "{}",
        twin.output()
    );

    let id = trigger(&server, "nap");
    wait_running_on(&server, id, "nap", "d1", "start on d1");
    agent.signal(nix::sys::signal::Signal::SIGTERM);
    agent.wait_line("that it waits for its job", |l| {
        l.contains("taking no new jobs; waiting for 1 running job to finish")
    });
    let status = agent.wait_exit();
    assert_eq!(status.code(), Some(0), "{}", agent.output());
    let run = wait_run(&server, id);
    assert_eq!(run["state"], "succeeded", "{run:#}");
    assert_eq!(job(&run, "nap")["attempt"], 1, "{run:#}");
    assert_eq!(count(&log(&server, id, "nap"), "done on d1"), 1);
    let out = agent.output();
    assert!(out.contains("job nap: succeeded"), "{out}");
    assert!(out.contains("agent d1 stopped"), "{out}");
}
