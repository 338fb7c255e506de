//! Log lines flowing from a backend to the engine.

use std::time::SystemTime;
use tokio::sync::mpsc;

/// Which stream a line came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Stream {
    /// The script's standard output.
    Stdout,
    /// The script's standard error.
    Stderr,
    /// A line written by gantry itself (e.g. `+ cmd` echoes are script output; this is
    /// for "starting service db", "pulling image …").
    System,
    /// Output of a named service.
    Service,
}

/// One line of job output, without its trailing newline.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogLine {
    /// When gantry read it.
    pub at: SystemTime,
    /// Where it came from.
    pub stream: Stream,
    /// For [`Stream::Service`]: the service name.
    pub source: Option<String>,
    /// The text (lossy UTF-8, no trailing newline).
    pub text: String,
}

/// Where a backend pushes log lines. Cheap to clone; never blocks; a closed receiver just
/// drops lines.
#[derive(Debug, Clone)]
pub struct LogSink {
    tx: mpsc::UnboundedSender<LogLine>,
}

impl LogSink {
    /// A sink and the receiver that reads from it.
    pub fn channel() -> (LogSink, mpsc::UnboundedReceiver<LogLine>) {
        let (tx, rx) = mpsc::unbounded_channel();
        (LogSink { tx }, rx)
    }

    /// Pushes one line.
    pub fn line(&self, stream: Stream, text: impl Into<String>) {
        let _ = self.tx.send(LogLine {
            at: SystemTime::now(),
            stream,
            source: None,
            text: text.into(),
        });
    }

    /// Pushes one line of a service's output.
    pub fn service_line(&self, service: &str, text: impl Into<String>) {
        let _ = self.tx.send(LogLine {
            at: SystemTime::now(),
            stream: Stream::Service,
            source: Some(service.to_owned()),
            text: text.into(),
        });
    }

    /// Pushes a line written by gantry itself.
    pub fn system(&self, text: impl Into<String>) {
        self.line(Stream::System, text);
    }
}
