//! `gantry serve` as a real process: started on a free port (or a given one) with a data
//! directory, its output kept for failure messages, and the `gantry` CLI as its client.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::Value;

use super::DEADLINE;
use super::http::http;
use super::procs::capture;

/// A running `gantry serve`.
pub struct Server {
    /// The process (`None` once killed).
    pub child: Option<Child>,
    /// `http://127.0.0.1:PORT`.
    pub url: String,
    /// The admin token (printed on the first start of a data directory).
    pub token: String,
    /// The data directory.
    pub data: PathBuf,
    /// Everything it printed, for failure messages.
    pub output: Arc<Mutex<Vec<String>>>,
}

impl Server {
    /// Starts `gantry serve` on `data` on a free port, with the local backend and `extra`
    /// flags, and waits until it listens. `token` is the admin token from an earlier
    /// start of the same data directory (a restart prints none).
    pub fn start(data: &Path, token: Option<&str>, extra: &[&str]) -> Server {
        Server::start_on("127.0.0.1:0", data, token, extra)
    }

    /// [`Server::start`] on a given address.
    pub fn start_on(listen: &str, data: &Path, token: Option<&str>, extra: &[&str]) -> Server {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_gantry"));
        cmd.arg("serve")
            .arg("--data")
            .arg(data)
            .args(["--listen", listen, "--backend", "local"])
            .args(extra)
            .env("NO_COLOR", "1")
            .env_remove("GANTRY_TOKEN")
            .env_remove("GANTRY_SERVER")
            .env_remove("GANTRY_DATABASE")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut child = cmd.spawn().expect("start gantry serve");
        let (output, rx) = capture(&mut child);
        let started = Instant::now();
        let mut url = None;
        let mut printed_token = None;
        while url.is_none() {
            let left = DEADLINE.saturating_sub(started.elapsed());
            match rx.recv_timeout(left) {
                Ok(line) => {
                    if let Some(rest) = line.split("listening on ").nth(1) {
                        url = Some(rest.split_whitespace().next().unwrap_or("").to_owned());
                    }
                    if let Some(t) = admin_token(&line) {
                        printed_token = Some(t);
                    }
                }
                Err(_) => {
                    let status = child.try_wait().ok().flatten();
                    let _ = child.kill();
                    let _ = child.wait();
                    panic!(
                        "gantry serve did not start listening (exit: {status:?}):\n{}",
                        output.lock().expect("lock").join("\n")
                    );
                }
            }
        }
        // The token is printed before the address; look again in case the reader threads
        // interleaved stdout and stderr.
        let printed_token = printed_token.or_else(|| {
            output
                .lock()
                .expect("lock")
                .iter()
                .find_map(|l| admin_token(l))
        });
        let token = match (printed_token, token) {
            (Some(t), None) => t,
            (None, Some(t)) => t.to_owned(),
            (Some(t), Some(_)) => panic!("a restart printed a new admin token {t}"),
            (None, None) => panic!(
                "the first start printed no admin token:\n{}",
                output.lock().expect("lock").join("\n")
            ),
        };
        Server {
            child: Some(child),
            url: url.expect("url"),
            token,
            data: data.to_path_buf(),
            output,
        }
    }

    /// The server's output so far.
    pub fn output(&self) -> String {
        self.output.lock().expect("lock").join("\n")
    }

    /// `gantry ARGS` against this server, with the admin token.
    pub fn gantry(&self, args: &[&str]) -> Output {
        client(&self.url, Some(&self.token), args)
    }

    /// `gantry ARGS` that must succeed; its stdout.
    pub fn ok(&self, args: &[&str]) -> String {
        let out = self.gantry(args);
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

    /// `gantry runs --json` for a repository.
    pub fn runs(&self, repo: &str) -> Vec<Value> {
        let text = self.ok(&["runs", repo, "--json", "--limit", "100"]);
        serde_json::from_str(&text).unwrap_or_else(|e| panic!("runs --json: {e}: {text}"))
    }

    /// A run with its jobs, from the API.
    pub fn run(&self, id: i64) -> Value {
        let (status, body) = http(
            &self.url,
            "GET",
            &format!("/api/runs/{id}"),
            &[("Authorization", &format!("Bearer {}", self.token))],
            b"",
        );
        assert_eq!(status, 200, "GET /api/runs/{id}: {body}");
        serde_json::from_str(&body).expect("run JSON")
    }

    /// Polls until `done` returns `Some`, failing with `what` and the server's output
    /// after the deadline.
    pub fn wait_for<T>(&self, what: &str, mut done: impl FnMut() -> Option<T>) -> T {
        let started = Instant::now();
        loop {
            if let Some(value) = done() {
                return value;
            }
            if started.elapsed() > DEADLINE {
                panic!(
                    "timed out waiting for {what}; server output:\n{}",
                    self.output()
                );
            }
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    /// Waits until every listed run of `repo` is final and there are `count` of them.
    pub fn wait_final(&self, repo: &str, count: usize) -> Vec<Value> {
        self.wait_for(&format!("{count} finished runs of {repo}"), || {
            let runs = self.runs(repo);
            let done = runs.len() == count && runs.iter().all(|r| is_final(&r["state"]));
            done.then_some(runs)
        })
    }

    /// `kill -9`.
    pub fn kill9(&mut self) {
        if let Some(mut child) = self.child.take() {
            child.kill().expect("kill -9 the server");
            child.wait().expect("reap the server");
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            stop(&mut child);
        }
    }
}

/// Stops a `gantry serve` process: SIGTERM first, so that the server cancels its jobs and
/// leaves nothing running behind; SIGKILL if it has not exited within 30 s.
pub fn stop(child: &mut Child) {
    let pid = nix::unistd::Pid::from_raw(child.id() as i32);
    let _ = nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM);
    let started = Instant::now();
    while started.elapsed() < Duration::from_secs(30) {
        if let Ok(Some(_)) = child.try_wait() {
            return;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let _ = child.kill();
    let _ = child.wait();
}

/// The token on the line `gantry serve` prints it on (`admin token …: gantry_…`).
pub fn admin_token(line: &str) -> Option<String> {
    let rest = line.split("admin token").nth(1)?;
    rest.split_whitespace()
        .find(|w| w.starts_with("gantry_"))
        .map(str::to_owned)
}

pub fn is_final(state: &Value) -> bool {
    !matches!(state.as_str(), Some("queued" | "running") | None)
}

/// The `gantry` CLI against `url`.
pub fn client(url: &str, token: Option<&str>, args: &[&str]) -> Output {
    client_command(url, token, args)
        .output()
        .expect("run gantry")
}

/// The `gantry` CLI against `url`, not started yet.
pub fn client_command(url: &str, token: Option<&str>, args: &[&str]) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_gantry"));
    cmd.args(args)
        .env("GANTRY_SERVER", url)
        .env("NO_COLOR", "1")
        .env_remove("TERM")
        .env_remove("GANTRY_TOKEN")
        .stdin(Stdio::null());
    if let Some(token) = token {
        cmd.env("GANTRY_TOKEN", token);
    }
    cmd
}

pub fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

pub fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

pub fn code(out: &Output) -> i32 {
    out.status.code().expect("exited, not killed by a signal")
}
