//! End-to-end tests of `gantry serve` and its clients, with real processes: the built
//! `gantry` binary as the server (SQLite and files in a temporary data directory, the
//! built-in executor on the local backend), real bare git repositories pushed to by the
//! test, and the `gantry` CLI (`repo add`, `runs`, `trigger`, `logs`) as the client.
//!
//! Nothing here asserts timing: every wait polls for a state with a generous deadline,
//! and a deadline that passes fails the test with the server's output attached.

mod support;

use std::io::{BufRead, BufReader, Read};
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};

use serde_json::Value;
use sha2::{Digest, Sha256};
use support::{
    Repo, Server, client, client_command, code, http, is_final, processes_with_arg, stderr, stdout,
};

/// HMAC-SHA256 (RFC 2104), as GitHub signs webhook bodies.
fn hmac_sha256(key: &[u8], message: &[u8]) -> [u8; 32] {
    let mut block = [0u8; 64];
    if key.len() > 64 {
        block[..32].copy_from_slice(&Sha256::digest(key));
    } else {
        block[..key.len()].copy_from_slice(key);
    }
    let mut inner = Sha256::new();
    inner.update(block.map(|b| b ^ 0x36));
    inner.update(message);
    let mut outer = Sha256::new();
    outer.update(block.map(|b| b ^ 0x5c));
    outer.update(inner.finalize());
    outer.finalize().into()
}

#[test]
fn hmac_matches_rfc_4231() {
    // Test case 2 of RFC 4231.
    let mac = hmac_sha256(b"Jefe", b"what do ya want for nothing?");
    assert_eq!(
        hex::encode(mac),
        "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
    );
}

// --- the tests -----------------------------------------------------------------------

const POLLED: &str = r#"
name: app
on:
  push: [develop]
  poll: 1s
jobs:
  hello:
    script:
      - echo "hello from gantry at $GANTRY_COMMIT"
"#;

/// (a) A repository registered with `gantry repo add` is polled; a pushed commit starts
/// exactly one run, which succeeds, is listed, and has its log; no new commit, no run.
#[test]
fn poll_starts_one_run_per_new_commit() {
    let repo = Repo::new(POLLED);
    let data = tempfile::tempdir().expect("tempdir");
    let server = Server::start(data.path(), None, &["--poll-interval", "1s", "--jobs", "2"]);

    let added = server.ok(&["repo", "add", "app", &repo.url()]);
    assert!(added.contains("registered repository app"), "{added}");
    let listed = server.ok(&["repo", "list"]);
    assert!(
        listed.contains("app") && listed.contains(&repo.url()),
        "{listed}"
    );

    // Let the server see the repository as it is before pushing.
    wait_polls(&server, "app", 1);
    let before = server.runs("app");

    let commit = repo.commit("README.md", "second\n", "second commit");
    let run = server.wait_for("the run of the pushed commit to finish", || {
        let runs = server.runs("app");
        let mine: Vec<&Value> = runs
            .iter()
            .filter(|r| r["commit"] == commit.as_str())
            .collect();
        assert!(mine.len() <= 1, "more than one run for {commit}: {runs:#?}");
        mine.first()
            .filter(|r| is_final(&r["state"]))
            .map(|r| (*r).clone())
    });
    assert_eq!(run["state"], "succeeded", "{run:#}\n{}", server.output());
    assert_eq!(run["ref"], "refs/heads/develop", "{run:#}");
    let cause = run["cause"].as_str().unwrap_or("");
    assert!(cause.to_lowercase().contains("poll"), "cause: {cause}");

    // Earlier runs can only be of the commit that was there before the push.
    for r in &before {
        assert_ne!(r["commit"], commit.as_str(), "{r:#}");
    }

    let id = run["id"].as_i64().expect("id");
    let logs = server.ok(&["logs", &id.to_string()]);
    assert!(
        logs.contains(&format!("hello from gantry at {commit}")),
        "{logs}"
    );
    let job_log = server.ok(&["logs", &id.to_string(), "hello"]);
    assert!(job_log.contains("hello from gantry"), "{job_log}");
    // Following a finished job prints its log and ends.
    let followed = server.ok(&["logs", &id.to_string(), "hello", "-f"]);
    assert!(followed.contains("hello from gantry"), "{followed}");

    let table = server.ok(&["runs", "app"]);
    assert!(
        table.contains("succeeded") && table.contains("develop"),
        "{table}"
    );

    // Nothing new pushed: several more polls start nothing.
    let count = server.runs("app").len();
    wait_polls(&server, "app", 3);
    let after = server.runs("app");
    assert_eq!(
        after.len(),
        count,
        "a poll without a new commit started a run: {after:#?}"
    );
}

/// Waits until the repository was polled `n` more times (its `last_polled_at` changed
/// `n` times).
fn wait_polls(server: &Server, repo: &str, n: usize) {
    let polled_at = || -> Option<String> {
        let text = server.ok(&["repo", "list", "--json"]);
        let repos: Vec<Value> = serde_json::from_str(&text).expect("repo list --json");
        let r = repos.iter().find(|r| r["name"] == repo)?;
        r["last_polled_at"].as_str().map(str::to_owned)
    };
    let mut last = polled_at();
    for i in 0..n {
        last = Some(server.wait_for(&format!("poll {} of {repo}", i + 1), || {
            let now = polled_at()?;
            (Some(&now) != last.as_ref()).then_some(now)
        }));
    }
}

const SLOW: &str = r#"
name: slow
on:
  manual: true
jobs:
  nap:
    script:
      - echo "before the crash"
      - sleep 6
      - echo "after the nap"
"#;

/// (b) `kill -9` while a job runs and runs are queued: after a restart on the same data
/// directory every run is there, the interrupted job ran again as attempt 2, the queued
/// runs ran, the log written before the crash is readable, and nothing ran twice.
#[test]
fn kill_9_loses_no_run() {
    let repo = Repo::new(SLOW);
    let data = tempfile::tempdir().expect("tempdir");
    // One job at a time: the first run's job runs while the others wait in the queue.
    let mut server = Server::start(data.path(), None, &["--jobs", "1", "--poll-interval", "1h"]);
    server.ok(&["repo", "add", "slow", &repo.url()]);
    let mut ids = Vec::new();
    for _ in 0..3 {
        let out = server.ok(&["trigger", "slow"]);
        let id = out
            .split("(run ")
            .nth(1)
            .and_then(|s| s.split(')').next())
            .and_then(|s| s.parse::<i64>().ok())
            .unwrap_or_else(|| panic!("no run id in: {out}"));
        ids.push(id);
    }
    let first = ids[0];
    server.wait_for("the first job to have logged before the crash", || {
        let run = server.run(first);
        let running = run["jobs"][0]["state"] == "running";
        let log = server.ok(&["logs", &first.to_string(), "nap"]);
        (running && log.contains("before the crash")).then_some(())
    });

    // A follower of the interrupted job's log, across the crash: it reconnects to the
    // restarted server (same address) and resumes where it stopped.
    let mut follower = client_command(
        &server.url,
        Some(&server.token),
        &["logs", &first.to_string(), "nap", "-f"],
    )
    .stdout(Stdio::piped())
    .stderr(Stdio::piped())
    .spawn()
    .expect("start gantry logs -f");
    let followed = Arc::new(Mutex::new(String::new()));
    let reader = {
        let followed = followed.clone();
        let out = follower.stdout.take().expect("stdout");
        std::thread::spawn(move || {
            for line in BufReader::new(out).lines() {
                let Ok(line) = line else { break };
                let mut f = followed.lock().expect("lock");
                f.push_str(&line);
                f.push('\n');
            }
        })
    };
    server.wait_for("the follower to print the first lines", || {
        let f = followed.lock().expect("lock");
        f.lines().any(|l| l == "before the crash").then_some(())
    });

    server.kill9();
    let token = server.token.clone();
    let data_dir = server.data.clone();
    let listen = server.url.trim_start_matches("http://").to_owned();
    drop(server);
    let server = Server::start_on(
        &listen,
        &data_dir,
        Some(&token),
        &["--jobs", "1", "--poll-interval", "1h"],
    );

    let runs = server.wait_final("slow", 3);
    // The interrupted job's directory (and any of its processes still alive) is cleaned
    // up before the built-in executor starts again.
    assert!(
        server
            .output()
            .contains("removed 1 job directory left by an earlier run of the built-in executor"),
        "{}",
        server.output()
    );
    let mut numbers: Vec<i64> = runs
        .iter()
        .map(|r| r["number"].as_i64().expect("n"))
        .collect();
    numbers.sort_unstable();
    assert_eq!(numbers, [1, 2, 3], "{runs:#?}");
    for id in &ids {
        let run = server.run(*id);
        assert_eq!(run["state"], "succeeded", "{run:#}\n{}", server.output());
        let job = &run["jobs"][0];
        let attempt = job["attempt"].as_i64().expect("attempt");
        let log = server.ok(&["logs", &id.to_string(), "nap"]);
        // Whole lines: the echoed commands (`+ echo "…"`) contain the words too.
        let before = log.lines().filter(|l| *l == "before the crash").count();
        let after = log.lines().filter(|l| *l == "after the nap").count();
        if *id == first {
            assert_eq!(
                attempt, 2,
                "the interrupted job runs again as attempt 2: {run:#}"
            );
            assert_eq!(
                before, 2,
                "attempt 1's line is kept, attempt 2 adds one:\n{log}"
            );
        } else {
            assert_eq!(attempt, 1, "{run:#}");
            assert_eq!(before, 1, "{log}");
        }
        assert_eq!(after, 1, "the job finished exactly once:\n{log}");
    }

    // The follower ended by itself when the job did, and printed every line of the
    // stored log once: nothing lost and nothing repeated by the reconnect.
    let status = server.wait_for("gantry logs -f to end", || {
        follower.try_wait().ok().flatten()
    });
    reader.join().expect("reader");
    let mut err = String::new();
    if let Some(mut e) = follower.stderr.take() {
        let _ = e.read_to_string(&mut err);
    }
    assert!(status.success(), "gantry logs -f failed: {err}");
    let log = server.ok(&["logs", &first.to_string(), "nap"]);
    let followed = followed.lock().expect("lock").clone();
    assert_eq!(
        followed, log,
        "the followed lines differ from the stored log"
    );
}

const HOOKED: &str = r#"
name: hooked
on:
  push: [develop]
jobs:
  build:
    script:
      - echo "built by a webhook"
"#;

/// (c) A GitHub push webhook with a correct signature starts a run; a forged or unsigned
/// one gets 401 and starts nothing; the same delivery twice starts one run.
#[test]
fn webhooks_are_verified_and_deduplicated() {
    let repo = Repo::new(HOOKED);
    let data = tempfile::tempdir().expect("tempdir");
    // No polling to speak of: only the webhook can start the run of the new commit.
    let server = Server::start(data.path(), None, &["--poll-interval", "1h"]);
    let secret = "It's a Secret to Everybody";
    server.ok(&[
        "repo",
        "add",
        "hooked",
        &repo.url(),
        "--webhook-secret",
        secret,
    ]);
    let before = repo.commit("README.md", "base\n", "base");
    let commit = repo.commit("README.md", "hooked\n", "change");
    let body = serde_json::json!({
        "ref": "refs/heads/develop",
        "before": before,
        "after": commit,
        "created": false,
        "deleted": false,
        "repository": { "name": "hooked", "full_name": "team/hooked", "clone_url": repo.url() },
        "pusher": { "name": "alice", "email": "alice@example.com" },
        "sender": { "login": "alice" },
        "head_commit": { "id": commit, "message": "change" },
    })
    .to_string();
    let signature = format!(
        "sha256={}",
        hex::encode(hmac_sha256(secret.as_bytes(), body.as_bytes()))
    );
    let forged = format!(
        "sha256={}",
        hex::encode(hmac_sha256(b"wrong secret", body.as_bytes()))
    );
    let post = |delivery: &str, signature: Option<&str>| {
        let mut headers = vec![
            ("Content-Type", "application/json"),
            ("X-GitHub-Event", "push"),
            ("X-GitHub-Delivery", delivery),
            ("User-Agent", "GitHub-Hookshot/test"),
        ];
        if let Some(s) = signature {
            headers.push(("X-Hub-Signature-256", s));
        }
        http(
            &server.url,
            "POST",
            "/hooks/hooked",
            &headers,
            body.as_bytes(),
        )
    };
    let runs_of_commit = || {
        server
            .runs("hooked")
            .into_iter()
            .filter(|r| r["commit"] == commit.as_str())
            .count()
    };

    for (delivery, sig) in [("forged-1", Some(forged.as_str())), ("unsigned-1", None)] {
        let (status, text) = post(delivery, sig);
        assert_eq!(status, 401, "{delivery}: {text}");
    }
    assert_eq!(runs_of_commit(), 0, "a refused webhook started a run");

    let (status, text) = post("delivery-1", Some(&signature));
    assert!(
        (200..300).contains(&status),
        "valid webhook: {status} {text}\n{}",
        server.output()
    );
    let run = server.wait_for("the webhook's run to finish", || {
        let runs = server.runs("hooked");
        runs.into_iter()
            .find(|r| r["commit"] == commit.as_str() && is_final(&r["state"]))
    });
    assert_eq!(run["state"], "succeeded", "{run:#}\n{}", server.output());
    let cause = run["cause"].as_str().unwrap_or("").to_lowercase();
    assert!(cause.contains("webhook"), "cause: {cause}");

    let (status, text) = post("delivery-1", Some(&signature));
    assert!(
        (200..300).contains(&status),
        "a redelivery is accepted: {status} {text}"
    );
    assert_eq!(
        runs_of_commit(),
        1,
        "the same delivery twice started a second run"
    );
    let (status, _) = post("forged-2", Some(&forged));
    assert_eq!(status, 401);
    assert_eq!(runs_of_commit(), 1);
}

const PARAMS: &str = r#"
name: params
on:
  manual: true
params:
  GREETING: { type: string, default: hi }
  LOUD: { type: bool, default: false }
jobs:
  greet:
    script:
      - echo "greeting=$GREETING loud=$LOUD"
"#;

/// (d) `gantry trigger --param` with an unknown name or a bad bool is refused with a clear
/// message and creates nothing; good parameters reach the job.
#[test]
fn trigger_validates_params() {
    let repo = Repo::new(PARAMS);
    let data = tempfile::tempdir().expect("tempdir");
    let server = Server::start(data.path(), None, &["--poll-interval", "1h"]);
    server.ok(&["repo", "add", "params", &repo.url()]);

    for (args, names) in [
        (&["--param", "GREETNG=yo"][..], "GREETNG"),
        (&["--param", "LOUD=maybe"], "LOUD"),
        (&["--pipeline", "params", "--param", "NOPE=1"], "NOPE"),
    ] {
        let mut argv = vec!["trigger", "params"];
        argv.extend_from_slice(args);
        let out = server.gantry(&argv);
        assert_eq!(code(&out), 2, "{argv:?}: {}{}", stdout(&out), stderr(&out));
        let err = stderr(&out);
        assert!(
            err.contains("error:") && err.contains(names),
            "{argv:?}: {err}"
        );
        assert!(err.contains("nothing was started"), "{err}");
    }
    // A malformed pair never reaches the server.
    let out = server.gantry(&["trigger", "params", "--param", "LOUD"]);
    assert_eq!(code(&out), 2);
    assert!(
        stderr(&out).contains("expected NAME=VALUE"),
        "{}",
        stderr(&out)
    );
    assert!(
        server.runs("params").is_empty(),
        "a refused trigger created a run"
    );

    let out = server.gantry(&[
        "trigger",
        "params",
        "--param",
        "GREETING=hello",
        "--param",
        "LOUD=true",
        "--wait",
    ]);
    assert_eq!(
        code(&out),
        0,
        "{}{}\n{}",
        stdout(&out),
        stderr(&out),
        server.output()
    );
    let text = stdout(&out);
    assert!(text.contains("started params #1"), "{text}");
    assert!(text.contains("succeeded"), "{text}");
    let runs = server.runs("params");
    assert_eq!(runs.len(), 1, "{runs:#?}");
    assert_eq!(
        runs[0]["cause"].as_str().map(|c| c.contains("manually")),
        Some(true),
        "{:#}",
        runs[0]
    );
    let id = runs[0]["id"].as_i64().expect("id").to_string();
    let logs = server.ok(&["logs", &id]);
    assert!(logs.contains("greeting=hello loud=true"), "{logs}");
}

/// Without a token the server refuses, and the CLI says to set GANTRY_TOKEN; an
/// unreachable server is named, with what to do.
#[test]
fn clients_explain_auth_and_unreachable_servers() {
    let data = tempfile::tempdir().expect("tempdir");
    let server = Server::start(data.path(), None, &["--poll-interval", "1h"]);
    let out = client(&server.url, None, &["runs"]);
    assert_eq!(code(&out), 1, "{}", stderr(&out));
    assert!(
        stderr(&out).contains("set GANTRY_TOKEN"),
        "{}",
        stderr(&out)
    );
    let out = client(&server.url, Some("gantry_not_a_token"), &["repo", "list"]);
    assert_eq!(code(&out), 1, "{}", stderr(&out));
    assert!(stderr(&out).contains("not authorized"), "{}", stderr(&out));

    // Nothing listens on a port taken and released again.
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        l.local_addr().expect("addr").port()
    };
    let url = format!("http://127.0.0.1:{port}");
    let out = client(&url, Some("x"), &["runs"]);
    assert_eq!(code(&out), 1);
    let err = stderr(&out);
    assert!(
        err.contains(&format!("cannot reach the gantry server at {url}")),
        "{err}"
    );
    assert!(
        err.contains("gantry serve") && err.contains("--server"),
        "{err}"
    );
}

/// `gantry token rotate` revokes the admin token and prints a new one that works.
#[test]
fn token_rotate_replaces_the_admin_token() {
    let data = tempfile::tempdir().expect("tempdir");
    let old = {
        let server = Server::start(data.path(), None, &["--poll-interval", "1h"]);
        server.ok(&["repo", "list"]);
        server.token.clone()
    };
    let out = Command::new(env!("CARGO_BIN_EXE_gantry"))
        .args(["token", "rotate", "--data"])
        .arg(data.path())
        .env_remove("GANTRY_DATABASE")
        .output()
        .expect("run gantry token rotate");
    assert!(out.status.success(), "{}", stderr(&out));
    let new = stdout(&out)
        .split_whitespace()
        .find(|w| w.starts_with("gantry_"))
        .unwrap_or_else(|| panic!("no token printed: {}", stdout(&out)))
        .to_owned();
    assert_ne!(new, old);
    let server = Server::start(data.path(), Some(&new), &["--poll-interval", "1h"]);
    server.ok(&["repo", "list"]);
    let out = client(&server.url, Some(&old), &["repo", "list"]);
    assert_eq!(code(&out), 1, "the old token still works");
}

/// SIGTERM stops the server cleanly: it exits with 0 and leaves no job process behind;
/// the job that was running runs again as a new attempt at the next start.
#[test]
fn sigterm_stops_jobs_and_resumes_them_at_the_next_start() {
    let marks = tempfile::tempdir().expect("tempdir");
    let flag = marks.path().join("first-attempt");
    // The first attempt sleeps (until stopped); the second finds the flag and ends.
    let pipeline = format!(
        r#"
name: resumable
on:
  manual: true
jobs:
  work:
    script:
      - if [ -e {flag} ]; then echo "second attempt"; else touch {flag}; echo "first attempt"; exec sleep 86399; fi
"#,
        flag = flag.display()
    );
    let repo = Repo::new(&pipeline);
    let data = tempfile::tempdir().expect("tempdir");
    let mut server = Server::start(data.path(), None, &["--poll-interval", "1h"]);
    server.ok(&["repo", "add", "resumable", &repo.url()]);
    server.ok(&["trigger", "resumable"]);
    let id = server.wait_for("the first attempt to run", || {
        let runs = server.runs("resumable");
        let id = runs.first()?["id"].as_i64()?;
        let log = server.ok(&["logs", &id.to_string(), "work"]);
        log.lines().any(|l| l == "first attempt").then_some(id)
    });
    let sleeper = server.wait_for("the job's sleep process", || {
        processes_with_arg("86399").into_iter().next()
    });

    let mut child = server.child.take().expect("child");
    let pid = nix::unistd::Pid::from_raw(child.id() as i32);
    nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM).expect("SIGTERM");
    let status = server.wait_for("gantry serve to exit after SIGTERM", || {
        child.try_wait().ok().flatten()
    });
    assert_eq!(status.code(), Some(0), "{}", server.output());
    assert!(
        server.output().contains("gantry serve: stopped"),
        "{}",
        server.output()
    );
    assert!(
        !std::path::Path::new(&format!("/proc/{sleeper}")).exists()
            || std::fs::read_to_string(format!("/proc/{sleeper}/stat"))
                .is_ok_and(|s| s.contains(") Z ")),
        "the job's process {sleeper} outlived the server"
    );

    let token = server.token.clone();
    drop(server);
    let server = Server::start(data.path(), Some(&token), &["--poll-interval", "1h"]);
    let runs = server.wait_final("resumable", 1);
    assert_eq!(runs[0]["state"], "succeeded", "{:#}", runs[0]);
    let run = server.run(id);
    assert_eq!(run["jobs"][0]["attempt"], 2, "{run:#}");
    let log = server.ok(&["logs", &id.to_string(), "work"]);
    assert!(log.lines().any(|l| l == "first attempt"), "{log}");
    assert!(log.lines().any(|l| l == "second attempt"), "{log}");
}
