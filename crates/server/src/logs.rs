//! Job logs as files: `DATA/logs/<run_id>/<job_key>.log`, one line per log line,
//! `<unix_ms> <stream> <text>\n`, stream ∈ `o` (stdout), `e` (stderr), `s` (gantry),
//! `v:<service>` (a service).
//!
//! Files are only ever appended to, so a byte offset names a position for good: the
//! SSE stream uses the offset after each line as its event id, and a client that
//! reconnects with `Last-Event-ID` continues exactly where it stopped. Every append (and
//! every job state change, see [`LogStore::touch`]) bumps a generation counter that
//! followers wait on, so live following needs no polling. A crash loses at most the
//! batch being written; everything appended before stays readable.
//!
//! The run-level log ([`RUN_LOG`]) holds what concerns the run rather than a job: the
//! diagnostics of a pipeline file that could not be planned.

use std::io;
use std::path::PathBuf;

use gantry_protocol::{LogStream, WireLogLine};
use tokio::io::AsyncWriteExt;
use tokio::sync::{Mutex, watch};

/// The key of the run-level log (job keys are `[a-z0-9-]`, so it never collides).
pub const RUN_LOG: &str = "_run";

/// The log files of every run.
#[derive(Debug)]
pub struct LogStore {
    root: PathBuf,
    /// Serializes appends so that lines of two writers never interleave mid-line.
    write: Mutex<()>,
    generation: watch::Sender<u64>,
}

/// Why a log could not be named or read.
#[derive(Debug, thiserror::Error)]
pub enum LogError {
    /// The job key is not a plain name (path traversal, empty).
    #[error("invalid log name {0:?}")]
    BadKey(String),
    /// Reading or writing failed.
    #[error("log file {path}: {source}")]
    Io {
        /// Which file.
        path: String,
        /// Cause.
        #[source]
        source: io::Error,
    },
}

/// Whether `key` may name a log file: a job key (`[a-z0-9-]`, no leading dot) or
/// [`RUN_LOG`].
pub fn valid_key(key: &str) -> bool {
    key == RUN_LOG
        || (!key.is_empty()
            && key.len() <= 64
            && key
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-'))
}

/// One stored line for `line`; text with line breaks becomes several stored lines.
pub fn format_lines(line: &WireLogLine, out: &mut String) {
    let stream = match line.stream {
        LogStream::Stdout => "o".to_string(),
        LogStream::Stderr => "e".to_string(),
        LogStream::System => "s".to_string(),
        LogStream::Service => format!(
            "v:{}",
            line.source
                .as_deref()
                .unwrap_or("service")
                .replace(|c: char| c.is_whitespace(), "_")
        ),
    };
    for part in line.text.split('\n') {
        let part = part.strip_suffix('\r').unwrap_or(part);
        out.push_str(&line.at_ms.to_string());
        out.push(' ');
        out.push_str(&stream);
        out.push(' ');
        out.push_str(part);
        out.push('\n');
    }
}

/// The text of stored log lines without their time and stream fields (what a person
/// reads). Lines that do not have the stored shape are kept as they are.
pub fn strip_fields(stored: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(stored.len());
    for line in stored.split_inclusive(|b| *b == b'\n') {
        let mut rest = line;
        for _ in 0..2 {
            match rest.iter().position(|b| *b == b' ') {
                Some(i) => rest = &rest[i + 1..],
                None => {
                    rest = line;
                    break;
                }
            }
        }
        out.extend_from_slice(rest);
    }
    out
}

impl LogStore {
    /// Logs under `root` (created on first write).
    pub fn new(root: impl Into<PathBuf>) -> LogStore {
        LogStore {
            root: root.into(),
            write: Mutex::new(()),
            generation: watch::Sender::new(0),
        }
    }

    /// The file of one job's log.
    pub fn path(&self, run_id: i64, key: &str) -> Result<PathBuf, LogError> {
        if !valid_key(key) {
            return Err(LogError::BadKey(key.to_string()));
        }
        Ok(self
            .root
            .join(run_id.to_string())
            .join(format!("{key}.log")))
    }

    /// Appends lines to a job's log.
    pub async fn append(
        &self,
        run_id: i64,
        key: &str,
        lines: &[WireLogLine],
    ) -> Result<(), LogError> {
        if lines.is_empty() {
            return Ok(());
        }
        let mut text = String::new();
        for line in lines {
            format_lines(line, &mut text);
        }
        self.append_raw(run_id, key, text.as_bytes()).await
    }

    /// Appends one gantry (system) line.
    pub async fn system(&self, run_id: i64, key: &str, at_ms: i64, text: &str) {
        let line = WireLogLine {
            at_ms: at_ms.max(0) as u64,
            stream: LogStream::System,
            source: None,
            text: text.to_string(),
        };
        if let Err(e) = self.append(run_id, key, &[line]).await {
            tracing::warn!("cannot write to the log of run {run_id}: {e}");
        }
    }

    async fn append_raw(&self, run_id: i64, key: &str, bytes: &[u8]) -> Result<(), LogError> {
        let path = self.path(run_id, key)?;
        let io_err = |source| LogError::Io {
            path: path.display().to_string(),
            source,
        };
        {
            let _guard = self.write.lock().await;
            if let Some(dir) = path.parent() {
                tokio::fs::create_dir_all(dir).await.map_err(io_err)?;
            }
            let mut file = tokio::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(&path)
                .await
                .map_err(io_err)?;
            file.write_all(bytes).await.map_err(io_err)?;
            file.flush().await.map_err(io_err)?;
        }
        self.touch();
        Ok(())
    }

    /// Wakes every follower (a job changed state, so a stream may need to end).
    pub fn touch(&self) {
        self.generation.send_modify(|g| *g = g.wrapping_add(1));
    }

    /// A receiver that changes whenever any log grows or a job changes state.
    pub fn subscribe(&self) -> watch::Receiver<u64> {
        self.generation.subscribe()
    }

    /// The whole stored log from byte `from`, or empty when there is none yet.
    pub async fn read_from(&self, run_id: i64, key: &str, from: u64) -> Result<Vec<u8>, LogError> {
        let path = self.path(run_id, key)?;
        match tokio::fs::read(&path).await {
            Ok(bytes) => {
                let from = (from as usize).min(bytes.len());
                Ok(bytes[from..].to_vec())
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(Vec::new()),
            Err(source) => Err(LogError::Io {
                path: path.display().to_string(),
                source,
            }),
        }
    }

    /// Whether a log file exists.
    pub async fn exists(&self, run_id: i64, key: &str) -> bool {
        match self.path(run_id, key) {
            Ok(p) => tokio::fs::try_exists(p).await.unwrap_or(false),
            Err(_) => false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn line(stream: LogStream, source: Option<&str>, text: &str) -> WireLogLine {
        WireLogLine {
            at_ms: 1700,
            stream,
            source: source.map(str::to_string),
            text: text.to_string(),
        }
    }

    #[test]
    fn formats_and_strips() {
        let cases = [
            (line(LogStream::Stdout, None, "hello"), "1700 o hello\n"),
            (line(LogStream::Stderr, None, "a b"), "1700 e a b\n"),
            (
                line(LogStream::System, None, "x\ny\r"),
                "1700 s x\n1700 s y\n",
            ),
            (line(LogStream::Service, Some("db"), ""), "1700 v:db \n"),
        ];
        for (input, expect) in cases {
            let mut out = String::new();
            format_lines(&input, &mut out);
            assert_eq!(out, expect);
        }
        assert_eq!(
            strip_fields(b"1 o hello world\n2 v:db ready\n3 e \n"),
            b"hello world\nready\n\n"
        );
    }

    #[test]
    fn keys() {
        for (key, ok) in [
            ("build", true),
            ("build-go-1-18", true),
            (RUN_LOG, true),
            ("../x", false),
            ("", false),
            ("a/b", false),
            ("Build", false),
            (".hidden", false),
        ] {
            assert_eq!(valid_key(key), ok, "{key}");
        }
    }
}
