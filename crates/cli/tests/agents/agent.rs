//! `gantry agent` as a real process: its own work directory, the local backend (unless
//! the test gives `--backend`), an `AGENT_ID` variable its host jobs inherit (so a job
//! can say where it ran), and its output kept for waiting on and for failure messages.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use nix::sys::signal::Signal;

use crate::support::DEADLINE;
use crate::support::procs::capture;

/// A `gantry agent` process.
pub struct Agent {
    /// Its `--name`.
    pub name: String,
    /// Its `--work-dir`.
    pub work_dir: PathBuf,
    child: Option<Child>,
    output: Arc<Mutex<Vec<String>>>,
}

impl Agent {
    /// Starts `gantry agent --name NAME` against `server` with `token` and waits until it
    /// says it is connected.
    pub fn start(server: &str, token: &str, name: &str, work_dir: &Path, extra: &[&str]) -> Agent {
        let agent = Agent::spawn(server, token, name, work_dir, extra, &[]);
        agent.wait_line("connect", |l| {
            l.contains(&format!("agent {name} connected to"))
        });
        agent
    }

    /// Starts `gantry agent` without waiting; `env` is given to it (and so to its host
    /// jobs) besides `AGENT_ID=NAME`.
    pub fn spawn(
        server: &str,
        token: &str,
        name: &str,
        work_dir: &Path,
        extra: &[&str],
        env: &[(&str, &str)],
    ) -> Agent {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_gantry"));
        cmd.args(["agent", "--server", server, "--name", name]);
        // The local backend unless the test chooses.
        if !extra.contains(&"--backend") {
            cmd.args(["--backend", "local"]);
        }
        cmd.arg("--work-dir")
            .arg(work_dir)
            .args(extra)
            .env("GANTRY_AGENT_TOKEN", token)
            .env("AGENT_ID", name)
            .env("NO_COLOR", "1")
            .env_remove("GANTRY_SERVER")
            .env_remove("GANTRY_TOKEN")
            .envs(env.iter().copied())
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut child = cmd.spawn().expect("start gantry agent");
        let (output, _lines) = capture(&mut child);
        Agent {
            name: name.to_owned(),
            work_dir: work_dir.to_path_buf(),
            child: Some(child),
            output,
        }
    }

    /// Everything it printed so far.
    pub fn output(&self) -> String {
        self.output.lock().expect("lock").join("\n")
    }

    /// Waits for a line of its output that `matches`; fails with its output if it exits
    /// first or the deadline passes.
    pub fn wait_line(&self, what: &str, matches: impl Fn(&str) -> bool) -> String {
        let started = Instant::now();
        loop {
            if let Some(line) = self
                .output
                .lock()
                .expect("lock")
                .iter()
                .find(|l| matches(l))
            {
                return line.clone();
            }
            let exited = self.child.as_ref().is_none()
                || started.elapsed() > DEADLINE
                || std::fs::read_to_string(format!("/proc/{}/stat", self.pid()))
                    .map(|s| s.contains(") Z "))
                    .unwrap_or(true);
            if exited {
                // The last lines may still be on their way through the pipe.
                std::thread::sleep(Duration::from_millis(300));
                if let Some(line) = self
                    .output
                    .lock()
                    .expect("lock")
                    .iter()
                    .find(|l| matches(l))
                {
                    return line.clone();
                }
                panic!(
                    "agent {} never printed {what} (it exited, or the deadline passed):\n{}",
                    self.name,
                    self.output()
                );
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// Its pid (0 once killed).
    pub fn pid(&self) -> u32 {
        self.child.as_ref().map(Child::id).unwrap_or(0)
    }

    /// Sends `signal`.
    pub fn signal(&self, signal: Signal) {
        let pid = nix::unistd::Pid::from_raw(self.pid() as i32);
        nix::sys::signal::kill(pid, signal).expect("signal the agent");
    }

    /// `kill -9`: its jobs' processes are left running, as after a crash.
    pub fn kill9(&mut self) {
        if let Some(mut child) = self.child.take() {
            child.kill().expect("kill -9 the agent");
            child.wait().expect("reap the agent");
        }
    }

    /// Waits for it to exit (it was told to, or refused).
    pub fn wait_exit(&mut self) -> ExitStatus {
        let child = self.child.as_mut().expect("running");
        let started = Instant::now();
        loop {
            if let Some(status) = child.try_wait().expect("wait") {
                self.child = None;
                // Let the reader threads take the last lines.
                std::thread::sleep(Duration::from_millis(200));
                return status;
            }
            assert!(
                started.elapsed() < DEADLINE,
                "agent {} did not exit:\n{}",
                self.name,
                self.output()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// The job directories under its work directory.
    pub fn job_dirs(&self) -> Vec<PathBuf> {
        match std::fs::read_dir(self.work_dir.join("jobs")) {
            Ok(entries) => entries.filter_map(Result::ok).map(|e| e.path()).collect(),
            Err(_) => Vec::new(),
        }
    }
}

impl Drop for Agent {
    fn drop(&mut self) {
        let Some(mut child) = self.child.take() else {
            return;
        };
        // SIGTERM stops leasing; a second one cancels running jobs, so that nothing the
        // agent started outlives the test. A test that failed while the agent was stopped
        // (SIGSTOP) must not leave it so.
        let pid = nix::unistd::Pid::from_raw(child.id() as i32);
        let _ = nix::sys::signal::kill(pid, Signal::SIGCONT);
        let started = Instant::now();
        let mut sent = 0;
        while started.elapsed() < Duration::from_secs(30) {
            if let Ok(Some(_)) = child.try_wait() {
                return;
            }
            let due = match sent {
                0 => true,
                1 => started.elapsed() > Duration::from_secs(1),
                _ => false,
            };
            if due {
                let _ = nix::sys::signal::kill(pid, Signal::SIGTERM);
                sent += 1;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = child.kill();
        let _ = child.wait();
    }
}
