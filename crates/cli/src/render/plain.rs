//! The renderer for pipes and CI logs: every line printed once, prefixed with its job's
//! name (`[build] + make`), no cursor movement and no ANSI codes unless asked for.

use std::io::Write;

use gantry_backend::Stream;
use gantry_engine::RunEvent;

use super::format::{sanitize, size, status_line};
use crate::paint::Paint;
use crate::state::RunState;

/// Writes plain lines to `W`.
pub struct Plain<W: Write> {
    out: W,
    paint: Paint,
}

impl<W: Write> Plain<W> {
    /// A renderer writing to `out`.
    pub fn new(out: W, paint: Paint) -> Plain<W> {
        Plain { out, paint }
    }

    /// Gives the writer back (tests read what was written).
    #[cfg(test)]
    pub fn into_inner(self) -> W {
        self.out
    }

    fn line(&mut self, text: &str) {
        // A closed pipe must not stop the run; the logs still go to files.
        let _ = writeln!(self.out, "{text}");
    }

    /// Renders one event; `state` already includes it.
    pub fn event(&mut self, state: &RunState, event: &RunEvent, header: &str) {
        match event {
            RunEvent::RunStarted { .. } => self.line(header),
            RunEvent::JobStarted { job, attempt, .. } => {
                let prefix = self.paint.dim(format!("[{}]", state.name(*job)));
                if *attempt > 1 {
                    self.line(&format!("{prefix} retrying: attempt {attempt}"));
                } else {
                    self.line(&format!("{prefix} started"));
                }
            }
            RunEvent::JobLog { job, line } => {
                let name = state.name(*job);
                let prefix = match (&line.stream, &line.source) {
                    (Stream::Service, Some(service)) => format!("[{name}/{service}]"),
                    _ => format!("[{name}]"),
                };
                let text = sanitize(&line.text);
                let text = match line.stream {
                    Stream::Stderr => self.paint.yellow(text),
                    Stream::System => self.paint.cyan(text),
                    _ => text,
                };
                self.line(&format!("{} {text}", self.paint.dim(prefix)));
            }
            RunEvent::ArtifactStored {
                job,
                path,
                size: bytes,
                ..
            } => {
                let prefix = self.paint.dim(format!("[{}]", state.name(*job)));
                self.line(&format!(
                    "{prefix} stored artifact {path} ({})",
                    size(*bytes)
                ));
            }
            RunEvent::JobFinished { job, .. } => {
                if let Some(j) = state.jobs.get(*job) {
                    let text = status_line(j, self.paint);
                    self.line(&text);
                }
            }
            RunEvent::RunFinished { .. } => {}
        }
    }

    /// A message from the CLI itself (e.g. "cancelling").
    pub fn notice(&mut self, text: &str) {
        self.line(text);
    }

    /// Prints the closing summary.
    pub fn finish(&mut self, summary: &str) {
        let _ = write!(self.out, "{summary}");
        let _ = self.out.flush();
    }
}
