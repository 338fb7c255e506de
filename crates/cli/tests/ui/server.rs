//! The real `gantry serve` process the browser tests look at: started like a user starts
//! it (a temporary data directory, a free loopback port, the local backend), with its
//! output kept for failure messages. The git repositories, the CLI as client and the way
//! a server is stopped are the other end-to-end tests' (`tests/support`).

use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::Value;

pub use crate::support::DEADLINE;
use crate::support::procs::capture;
use crate::support::server::stop;
use crate::support::{admin_token, client, stderr, stdout};

/// A running `gantry serve`, stopped with SIGTERM when dropped.
pub struct Server {
    child: Option<Child>,
    /// `http://127.0.0.1:PORT`.
    pub url: String,
    /// The admin token printed on the first start.
    pub token: String,
    _data: tempfile::TempDir,
    output: Arc<Mutex<Vec<String>>>,
}

impl Server {
    /// Starts `gantry serve` on a new data directory with `extra` flags and waits until it
    /// listens.
    pub fn start(extra: &[&str]) -> Server {
        let data = tempfile::tempdir().expect("tempdir");
        let mut child = Command::new(env!("CARGO_BIN_EXE_gantry"))
            .arg("serve")
            .arg("--data")
            .arg(data.path())
            .args(["--listen", "127.0.0.1:0", "--backend", "local"])
            .args(extra)
            .env("NO_COLOR", "1")
            .env_remove("GANTRY_TOKEN")
            .env_remove("GANTRY_SERVER")
            .env_remove("GANTRY_DATABASE")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start gantry serve");
        let (output, rx) = capture(&mut child);
        let started = Instant::now();
        let mut url = None;
        while url.is_none() {
            match rx.recv_timeout(DEADLINE.saturating_sub(started.elapsed())) {
                Ok(line) => {
                    if let Some(rest) = line.split("listening on ").nth(1) {
                        url = rest.split_whitespace().next().map(str::to_owned);
                    }
                }
                Err(_) => {
                    let _ = child.kill();
                    let _ = child.wait();
                    panic!(
                        "gantry serve did not start listening:\n{}",
                        output.lock().expect("lock").join("\n")
                    );
                }
            }
        }
        // The token is printed before the address, maybe on the other stream.
        let token = output
            .lock()
            .expect("lock")
            .iter()
            .find_map(|l| admin_token(l))
            .unwrap_or_else(|| panic!("gantry serve printed no admin token"));
        Server {
            child: Some(child),
            url: url.expect("url"),
            token,
            _data: data,
            output,
        }
    }

    /// Everything the server printed so far.
    pub fn output(&self) -> String {
        self.output.lock().expect("lock").join("\n")
    }

    /// The server's output as it grows, for failure messages of the browser.
    pub fn output_handle(&self) -> Arc<Mutex<Vec<String>>> {
        self.output.clone()
    }

    /// `gantry ARGS` against this server with the admin token; must succeed; its stdout.
    pub fn ok(&self, args: &[&str]) -> String {
        let out = client(&self.url, Some(&self.token), args);
        assert!(
            out.status.success(),
            "gantry {args:?} failed ({:?}):\nstdout: {}\nstderr: {}\nserver:\n{}",
            out.status,
            stdout(&out),
            stderr(&out),
            self.output()
        );
        stdout(&out)
    }

    /// `gantry runs REPO --json`.
    pub fn runs(&self, repo: &str) -> Vec<Value> {
        let json = self.ok(&["runs", repo, "--json", "--limit", "100"]);
        serde_json::from_str(&json).unwrap_or_else(|e| panic!("runs --json: {e}: {json}"))
    }

    /// Polls `done` until it returns `Some`; fails with `what` and the server's output
    /// when the deadline passes.
    pub fn wait_for<T>(&self, what: &str, mut done: impl FnMut() -> Option<T>) -> T {
        let started = Instant::now();
        loop {
            if let Some(value) = done() {
                return value;
            }
            assert!(
                started.elapsed() < DEADLINE,
                "timed out waiting for {what}; server output:\n{}",
                self.output()
            );
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    /// Waits until the server has polled `repo` once (the first poll starts nothing: it
    /// learns where the branches are).
    pub fn wait_polled(&self, repo: &str) {
        self.wait_for(&format!("a poll of {repo}"), || {
            let json = self.ok(&["repo", "list", "--json"]);
            let repos: Vec<Value> = serde_json::from_str(&json).expect("repo list --json");
            repos
                .iter()
                .find(|r| r["name"] == repo)
                .and_then(|r| r["last_polled_at"].as_str())
                .map(|_| ())
        })
    }

    /// Starts a manual run with `gantry trigger`; returns its id.
    pub fn trigger(&self, args: &[&str]) -> i64 {
        let mut all = vec!["trigger"];
        all.extend_from_slice(args);
        let out = self.ok(&all);
        out.split("(run ")
            .nth(1)
            .and_then(|s| s.split(')').next())
            .and_then(|s| s.parse().ok())
            .unwrap_or_else(|| panic!("no run id in: {out}"))
    }

    /// Waits until run `id` of `repo` is final; returns it.
    pub fn wait_final(&self, repo: &str, id: i64) -> Value {
        self.wait_for(&format!("run {id} to finish"), || {
            self.runs(repo).into_iter().find(|r| {
                r["id"] == id && !matches!(r["state"].as_str(), Some("queued" | "running"))
            })
        })
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            stop(&mut child);
        }
    }
}
