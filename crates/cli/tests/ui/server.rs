//! The real `gantry serve` process the browser tests look at, and the bare git
//! repositories it builds: started like a user starts it (a temporary data directory, a
//! free loopback port, the local backend), with its output kept for failure messages.

use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex, mpsc};
use std::time::{Duration, Instant};

use gantry_test_support::{TempTree, git};
use serde_json::Value;

/// Long enough for a loaded two-core machine; a deadline is a hang, not a measurement.
pub const DEADLINE: Duration = Duration::from_secs(180);

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
        let output = Arc::new(Mutex::new(Vec::new()));
        let (tx, rx) = mpsc::channel::<String>();
        // Both pipes are drained for the server's whole life so that it never blocks.
        for stream in [
            Box::new(child.stdout.take().expect("stdout")) as Box<dyn Read + Send>,
            Box::new(child.stderr.take().expect("stderr")),
        ] {
            let output = output.clone();
            let tx = tx.clone();
            std::thread::spawn(move || {
                for line in BufReader::new(stream).lines() {
                    let Ok(line) = line else { break };
                    output.lock().expect("lock").push(line.clone());
                    let _ = tx.send(line);
                }
            });
        }
        drop(tx);
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
        let out = Command::new(env!("CARGO_BIN_EXE_gantry"))
            .args(args)
            .env("GANTRY_SERVER", &self.url)
            .env("GANTRY_TOKEN", &self.token)
            .env("NO_COLOR", "1")
            .env_remove("TERM")
            .stdin(Stdio::null())
            .output()
            .expect("run gantry");
        assert!(
            out.status.success(),
            "gantry {args:?} failed ({:?}):\nstdout: {}\nstderr: {}\nserver:\n{}",
            out.status,
            text(&out.stdout),
            text(&out.stderr),
            self.output()
        );
        text(&out.stdout)
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
        let Some(mut child) = self.child.take() else {
            return;
        };
        // SIGTERM first: the server cancels its jobs and leaves nothing running.
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
}

/// The token on the line `gantry serve` prints it on (`admin token …: gantry_…`).
fn admin_token(line: &str) -> Option<String> {
    let rest = line.split("admin token").nth(1)?;
    rest.split_whitespace()
        .find(|w| w.starts_with("gantry_"))
        .map(str::to_owned)
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// A bare repository (what the server is given) and a clone the test commits in.
pub struct Repo {
    _tmp: TempTree,
    bare: PathBuf,
    work: PathBuf,
}

impl Repo {
    /// A bare repository whose `develop` has one commit with `gantry.yml`.
    pub fn new(pipeline: &str) -> Repo {
        let tmp = TempTree::new();
        let bare = tmp.join("origin.git");
        let work = tmp.join("work");
        for dir in [&bare, &work] {
            std::fs::create_dir_all(dir).expect("mkdir");
        }
        git(&bare, &["init", "-q", "--bare", "-b", "develop"]);
        git(&work, &["init", "-q", "-b", "develop"]);
        git(&work, &["remote", "add", "origin", &path(&bare)]);
        let repo = Repo {
            _tmp: tmp,
            bare,
            work,
        };
        repo.commit("gantry.yml", pipeline, "pipeline");
        repo
    }

    /// Commits `file` on `develop` and pushes it; returns the commit id.
    pub fn commit(&self, file: &str, text: &str, message: &str) -> String {
        std::fs::write(self.work.join(file), text).expect("write");
        git(&self.work, &["add", "-A"]);
        git(&self.work, &["commit", "-q", "-m", message]);
        git(&self.work, &["push", "-q", "origin", "develop"]);
        self.head()
    }

    /// The commit `develop` is at.
    pub fn head(&self) -> String {
        git(&self.work, &["rev-parse", "HEAD"]).trim().to_owned()
    }

    /// Tags the current commit and pushes the tag.
    pub fn tag(&self, name: &str) {
        git(&self.work, &["tag", name]);
        git(&self.work, &["push", "-q", "origin", name]);
    }

    /// What the server is given to fetch.
    pub fn url(&self) -> String {
        path(&self.bare)
    }
}

fn path(p: &Path) -> String {
    p.display().to_string()
}
