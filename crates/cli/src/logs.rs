//! Per-job log files: `<run dir>/logs/<job>.log`, written from `JobLog` events.
//!
//! Each line is `HH:MM:SS.mmm [out|err|sys|svc:NAME] text` in local time. Files are
//! flushed whenever the event stream goes quiet, so a crash loses at most the last burst.

use std::collections::HashSet;
use std::fs::File;
use std::io::{self, BufWriter, Write};
use std::path::{Path, PathBuf};
use std::time::SystemTime;

use gantry_backend::{LogLine, Stream};
use gantry_engine::RunEvent;
use time::{OffsetDateTime, UtcOffset};

use crate::render::format::duration;

/// File names (`build.log`, `test_SHELL=sh.log`) for job names, distinct from one
/// another and safe on any filesystem: no separators, no leading dot, no spaces.
pub fn file_names(jobs: &[String]) -> Vec<String> {
    let mut seen = HashSet::new();
    jobs.iter()
        .map(|name| {
            let base = safe_stem(name);
            let mut candidate = format!("{base}.log");
            let mut n = 2;
            while !seen.insert(candidate.clone()) {
                candidate = format!("{base}-{n}.log");
                n += 1;
            }
            candidate
        })
        .collect()
}

fn safe_stem(name: &str) -> String {
    let mut out = String::new();
    for c in name.chars() {
        if c.is_ascii_alphanumeric() || matches!(c, '-' | '=' | '.' | '_') {
            out.push(c);
        } else if !out.ends_with('_') {
            out.push('_');
        }
    }
    // Leading dots would hide the file or, as `..`, escape the directory.
    let out = out.trim_start_matches(['.', '_']).trim_end_matches('_');
    if out.is_empty() {
        "job".to_owned()
    } else {
        out.to_owned()
    }
}

/// `HH:MM:SS.mmm` in the given offset.
pub fn clock(at: SystemTime, offset: UtcOffset) -> String {
    let t = OffsetDateTime::from(at).to_offset(offset);
    format!(
        "{:02}:{:02}:{:02}.{:03}",
        t.hour(),
        t.minute(),
        t.second(),
        t.millisecond()
    )
}

/// The stream tag of a log line.
fn tag(line: &LogLine) -> String {
    match line.stream {
        Stream::Stdout => "out".to_owned(),
        Stream::Stderr => "err".to_owned(),
        Stream::System => "sys".to_owned(),
        Stream::Service => format!("svc:{}", line.source.as_deref().unwrap_or("?")),
    }
}

/// The open log files of one run.
pub struct LogFiles {
    dir: PathBuf,
    offset: UtcOffset,
    names: Vec<String>,
    files: Vec<Option<BufWriter<File>>>,
    /// The first write error, reported once at the end rather than failing the run.
    error: Option<(PathBuf, io::Error)>,
}

impl LogFiles {
    /// Log files under `dir` (which exists), timestamps in `offset`.
    pub fn new(dir: &Path, offset: UtcOffset) -> LogFiles {
        LogFiles {
            dir: dir.to_path_buf(),
            offset,
            names: Vec::new(),
            files: Vec::new(),
            error: None,
        }
    }

    /// File name of each job's log, by index (known after `RunStarted`).
    pub fn names(&self) -> &[String] {
        &self.names
    }

    /// Writes what `event` adds to the logs.
    pub fn event(&mut self, event: &RunEvent) {
        match event {
            RunEvent::RunStarted { jobs, .. } => {
                self.names = file_names(jobs);
                self.files = (0..jobs.len()).map(|_| None).collect();
            }
            RunEvent::JobStarted { job, attempt, at } => {
                let text = format!(
                    "{} [sys] gantry: attempt {attempt} started",
                    clock(*at, self.offset)
                );
                self.write(*job, &text);
            }
            RunEvent::JobLog { job, line } => {
                let text = format!(
                    "{} [{}] {}",
                    clock(line.at, self.offset),
                    tag(line),
                    line.text
                );
                self.write(*job, &text);
            }
            RunEvent::ArtifactStored {
                job,
                path,
                digest,
                size,
            } => {
                let text = format!(
                    "{} [sys] gantry: stored artifact {path} ({size} bytes, sha256:{digest})",
                    clock(SystemTime::now(), self.offset)
                );
                self.write(*job, &text);
            }
            RunEvent::JobFinished {
                job,
                status,
                duration: took,
                attempts,
            } => {
                // Skipped jobs never started: they get no file.
                if *attempts == 0 && self.files.get(*job).is_none_or(Option::is_none) {
                    return;
                }
                let detail = match status {
                    gantry_engine::JobStatus::Failed { outcome, .. } => format!(" ({outcome})"),
                    gantry_engine::JobStatus::Errored { message } => format!(" ({message})"),
                    _ => String::new(),
                };
                let text = format!(
                    "{} [sys] gantry: {}{detail} after {}",
                    clock(SystemTime::now(), self.offset),
                    status.word(),
                    duration(*took)
                );
                self.write(*job, &text);
                if let Some(Some(f)) = self.files.get_mut(*job)
                    && let Err(e) = f.flush()
                {
                    let path = self.dir.join(&self.names[*job]);
                    self.error.get_or_insert((path, e));
                }
            }
            RunEvent::RunFinished { .. } => self.flush(),
        }
    }

    fn write(&mut self, job: usize, text: &str) {
        let Some(slot) = self.files.get_mut(job) else {
            return;
        };
        let path = self.dir.join(&self.names[job]);
        if slot.is_none() {
            match File::options().create(true).append(true).open(&path) {
                Ok(f) => *slot = Some(BufWriter::new(f)),
                Err(e) => {
                    self.error.get_or_insert((path, e));
                    return;
                }
            }
        }
        if let Some(f) = slot
            && let Err(e) = writeln!(f, "{text}")
        {
            self.error.get_or_insert((path, e));
        }
    }

    /// Flushes every open file.
    pub fn flush(&mut self) {
        for (i, f) in self.files.iter_mut().enumerate() {
            if let Some(f) = f
                && let Err(e) = f.flush()
            {
                self.error.get_or_insert((self.dir.join(&self.names[i]), e));
            }
        }
    }

    /// The first write error, if any, worded for the user.
    pub fn error(&self) -> Option<String> {
        self.error
            .as_ref()
            .map(|(p, e)| format!("could not write log {}: {e}", p.display()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn file_names_are_safe_and_distinct() {
        let names: Vec<String> = [
            "build",
            "test (SHELL=sh, X=1)",
            "test (SHELL=sh; X=1)",
            "../etc/passwd",
            "..",
            "",
            "déjà vu",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        assert_eq!(
            file_names(&names),
            [
                "build.log",
                "test_SHELL=sh_X=1.log",
                "test_SHELL=sh_X=1-2.log",
                "etc_passwd.log",
                "job.log",
                "job-2.log",
                "d_j_vu.log",
            ]
        );
    }

    #[test]
    fn clock_format() {
        let at = SystemTime::UNIX_EPOCH + std::time::Duration::from_millis(3_723_045);
        assert_eq!(clock(at, UtcOffset::UTC), "01:02:03.045");
    }
}
