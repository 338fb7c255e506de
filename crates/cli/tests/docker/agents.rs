//! Agents on the Docker backend (`gantry agent --backend docker`) against `gantry serve
//! --jobs 0`: a cancel tears the job's container down on the agent that runs it, and the
//! Docker sweep an agent runs at start removes what a killed agent left but never the
//! containers of an agent that is alive on the same machine.

use std::path::Path;

use serde_json::Value;

use crate::agent::Agent;
use crate::support::{self, Repo, Server, processes_with_arg};
use crate::{TOOLS, needs_docker, owned_by};

/// A container job that sleeps until stopped (`sleep ARG`).
fn sleeping(arg: &str) -> String {
    format!(
        "name: hold\non:\n  manual: true\njobs:\n  hold:\n    image: {TOOLS}\n    script:\n      \
         - echo holding\n      - sleep {arg}\n"
    )
}

fn serve(data: &Path) -> Server {
    Server::start(data, None, &["--jobs", "0", "--poll-interval", "1h"])
}

fn agent_token(server: &Server) -> String {
    server
        .ok(&["agent-token", "create", "docker"])
        .trim()
        .to_owned()
}

fn docker_agent(server: &Server, token: &str, name: &str, dir: &Path) -> Agent {
    Agent::start(&server.url, token, name, dir, &["--backend", "docker"])
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

fn job_state(server: &Server, id: i64) -> (Value, Value) {
    let run = server.run(id);
    let job = &run["jobs"][0];
    (job["state"].clone(), job["executor"].clone())
}

/// Waits until the job of run `id` runs on `agent` in its container (`sleep ARG`).
fn wait_container(server: &Server, id: i64, agent: &Agent, arg: &str) -> i32 {
    server.wait_for(
        &format!("run {id} to run in a container of {}", agent.name),
        || {
            let (state, executor) = job_state(server, id);
            let there = state == "running"
                && executor == agent.name.as_str()
                && owned_by(agent.pid()).iter().any(|r| r == "container job");
            if !there {
                return None;
            }
            processes_with_arg(arg).into_iter().next()
        },
    )
}

fn gone(pid: i32) -> bool {
    !Path::new(&format!("/proc/{pid}")).exists()
        || std::fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|s| s.contains(") Z "))
}

/// A cancel reaches the agent: the job ends `cancelled`, and its container (with the
/// process in it) is gone.
#[test]
fn a_cancel_tears_down_the_container_of_an_agents_job() {
    needs_docker();
    let repo = Repo::new(&sleeping("86451"));
    let data = tempfile::tempdir().expect("tempdir");
    let dirs = tempfile::tempdir().expect("tempdir");
    let server = serve(data.path());
    server.ok(&["repo", "add", "hold", &repo.url()]);
    let token = agent_token(&server);
    let agent = docker_agent(&server, &token, "d1", &dirs.path().join("d1"));
    assert!(
        agent.output().contains("labels backend=docker"),
        "{}",
        agent.output()
    );
    let id = trigger(&server, "hold");
    let pid = wait_container(&server, id, &agent, "86451");

    server.ok(&["cancel", &id.to_string()]);
    let run = server.wait_for(&format!("run {id} to end"), || {
        let run = server.run(id);
        support::is_final(&run["state"]).then_some(run)
    });
    assert_eq!(run["state"], "cancelled", "{run:#}\n{}", agent.output());
    assert_eq!(run["jobs"][0]["state"], "cancelled", "{run:#}");
    server.wait_for("the job's container to be removed", || {
        owned_by(agent.pid()).is_empty().then_some(())
    });
    assert!(gone(pid), "the container's process {pid} runs on");
}

/// An agent starting next to a live one leaves that one's running container alone; a
/// killed agent's container stays until a sweep, and the killed agent started again
/// removes it.
#[test]
fn an_agents_docker_sweep_spares_live_agents_and_removes_a_killed_ones() {
    needs_docker();
    let repo = Repo::new(&sleeping("86452"));
    let data = tempfile::tempdir().expect("tempdir");
    let dirs = tempfile::tempdir().expect("tempdir");
    let server = serve(data.path());
    server.ok(&["repo", "add", "hold", &repo.url()]);
    let token = agent_token(&server);
    let live = docker_agent(&server, &token, "live", &dirs.path().join("live"));
    let id = trigger(&server, "hold");
    let live_sleep = wait_container(&server, id, &live, "86452");

    let killed_dir = dirs.path().join("killed");
    let mut killed = docker_agent(&server, &token, "killed", &killed_dir);
    let id2 = trigger(&server, "hold");
    let killed_pid = killed.pid();
    server.wait_for("the second job to run in a container of killed", || {
        let (state, executor) = job_state(&server, id2);
        let there = state == "running"
            && executor == "killed"
            && owned_by(killed_pid).iter().any(|r| r == "container job");
        there.then_some(())
    });
    assert_eq!(owned_by(live.pid()), ["container job"], "the live agent's");
    killed.kill9();
    assert_eq!(
        owned_by(killed_pid),
        ["container job"],
        "a killed agent leaves its container"
    );

    let again = docker_agent(&server, &token, "killed", &killed_dir);
    assert!(
        again
            .output()
            .contains("removed what killed gantry runs left in Docker: 1 container,"),
        "{}",
        again.output()
    );
    assert!(
        owned_by(killed_pid).is_empty(),
        "{:?}",
        owned_by(killed_pid)
    );
    assert_eq!(
        owned_by(live.pid()),
        ["container job"],
        "the live agent's container was swept"
    );
    assert!(!gone(live_sleep));
    let (state, executor) = job_state(&server, id);
    assert_eq!((state, executor), ("running".into(), "live".into()));
    for run in [id, id2] {
        server.ok(&["cancel", &run.to_string()]);
    }
    server.wait_for("both runs to end", || {
        [id, id2]
            .iter()
            .all(|&r| support::is_final(&server.run(r)["state"]))
            .then_some(())
    });
}
