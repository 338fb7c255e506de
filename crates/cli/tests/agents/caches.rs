//! Pipeline caches across machines: a job's `cache:` saved by one agent is kept by the
//! server and restored by the next run's job on another agent (different labels, so
//! `runs_on` decides where each run goes), and `gantry repo caches` shows and clears it.

use super::agent::Agent;
use super::{agent_token, job, log, serve, wait_online, wait_run};
use crate::support::{Repo, Server};

/// One pipeline, two pools: `POOL` picks the agent; both runs name the same cache key
/// (a hash of `deps.lock`). A job that finds no cache makes the file and says where.
const CACHED: &str = r#"
name: cached
on:
  manual: true
params:
  POOL: { type: choice, choices: [a, b] }
jobs:
  build:
    runs_on: { pool: "${POOL}" }
    cache:
      key: deps-${hash:deps.lock}
      paths: [deps]
    script:
      - test -f deps/lib.txt || { mkdir -p deps; echo "made on $AGENT_ID" > deps/lib.txt; }
      - echo "cached says $(cat deps/lib.txt); ran on $AGENT_ID"
"#;

/// `gantry trigger cached --param POOL=…`: the id of the run it started.
fn trigger_on(server: &Server, pool: &str) -> i64 {
    let out = server.ok(&["trigger", "cached", "--param", &format!("POOL={pool}")]);
    out.split("(run ")
        .nth(1)
        .and_then(|s| s.split(')').next())
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("no run id in: {out}"))
}

/// (f) Run 1 on a1 saves the cache on the server; run 2 on a2 restores it: its script
/// sees the file a1 made, and the log says it was restored. The cache is listed for the
/// repository and, cleared, is made again by the next run.
#[test]
fn a_cache_saved_on_one_agent_is_restored_on_another() {
    let repo = Repo::new(CACHED);
    repo.commit("deps.lock", "lib 1.0\n", "lock");
    let data = tempfile::tempdir().expect("tempdir");
    let dirs = tempfile::tempdir().expect("tempdir");
    let server = serve(data.path(), &[]);
    server.ok(&["repo", "add", "cached", &repo.url()]);
    let token = agent_token(&server, "caches");
    let _a1 = Agent::start(
        &server.url,
        &token,
        "a1",
        &dirs.path().join("a1"),
        &["--label", "pool=a"],
    );
    let _a2 = Agent::start(
        &server.url,
        &token,
        "a2",
        &dirs.path().join("a2"),
        &["--label", "pool=b"],
    );
    wait_online(&server, &["a1", "a2"]);

    let first = trigger_on(&server, "a");
    let run = wait_run(&server, first);
    assert_eq!(run["state"], "succeeded", "{run:#}\n{}", server.output());
    assert_eq!(job(&run, "build")["executor"], "a1", "{run:#}");
    let saved = log(&server, first, "build");
    assert!(
        saved.contains("cached says made on a1; ran on a1"),
        "{saved}"
    );
    assert!(
        saved.contains("not found, will be saved if the job succeeds") && saved.contains("saved"),
        "{saved}"
    );

    let listed = server.ok(&["repo", "caches", "cached"]);
    assert!(
        listed.contains("deps-") && listed.contains(&format!("run {first}")),
        "{listed}"
    );

    let second = trigger_on(&server, "b");
    let run = wait_run(&server, second);
    assert_eq!(run["state"], "succeeded", "{run:#}\n{}", server.output());
    assert_eq!(job(&run, "build")["executor"], "a2", "{run:#}");
    let restored = log(&server, second, "build");
    assert!(
        restored.contains("cached says made on a1; ran on a2"),
        "a2 sees the file a1 made:\n{restored}"
    );
    assert!(
        restored.contains("restored 1 file") && restored.contains("exists, not saved again"),
        "{restored}"
    );

    // Cleared, the next run (on a2) finds nothing and makes the file itself.
    let cleared = server.ok(&["repo", "caches", "cached", "--clear"]);
    assert!(cleared.contains("removed 1 cache of cached"), "{cleared}");
    let third = trigger_on(&server, "b");
    let run = wait_run(&server, third);
    assert_eq!(run["state"], "succeeded", "{run:#}\n{}", server.output());
    let fresh = log(&server, third, "build");
    assert!(
        fresh.contains("cached says made on a2; ran on a2"),
        "{fresh}"
    );
}
