//! From the engine's words to the protocol's: job statuses and log lines.

use std::time::{SystemTime, UNIX_EPOCH};

use gantry_backend::{LogLine, Outcome, Stream};
use gantry_engine::JobStatus;
use gantry_protocol::{JobReport, LogStream, WireLogLine};

/// The report of a job that ended with `status`.
pub(crate) fn job_report(status: &JobStatus) -> JobReport {
    match status {
        JobStatus::Succeeded => JobReport::Succeeded,
        JobStatus::Failed { outcome, allowed } => JobReport::Failed {
            exit_code: match outcome {
                Outcome::Failed { exit_code } => Some(*exit_code),
                _ => None,
            },
            outcome: outcome.to_string(),
            allowed: *allowed,
        },
        JobStatus::Errored { message } => JobReport::Errored {
            message: message.clone(),
        },
        JobStatus::Cancelled => JobReport::Cancelled,
        // The runner never skips a job it was handed; should it ever, say so.
        JobStatus::Skipped { reason } => JobReport::Errored {
            message: format!("the executor skipped the job: {reason}"),
        },
    }
}

/// A log line on the wire.
pub(crate) fn wire_line(line: LogLine) -> WireLogLine {
    let at_ms = line
        .at
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX));
    WireLogLine {
        at_ms,
        stream: match line.stream {
            Stream::Stdout => LogStream::Stdout,
            Stream::Stderr => LogStream::Stderr,
            Stream::System => LogStream::System,
            Stream::Service => LogStream::Service,
        },
        source: line.source,
        text: line.text,
    }
}

/// A line of the executor's own, for the job's log.
pub(crate) fn system_line(text: String) -> LogLine {
    LogLine {
        at: SystemTime::now(),
        stream: Stream::System,
        source: None,
        text,
    }
}

pub(crate) use gantry_engine::error_chain as chain;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statuses_map_to_reports() {
        let check = |status: JobStatus, expect: JobReport| {
            assert_eq!(job_report(&status), expect, "{status:?}");
        };
        check(JobStatus::Succeeded, JobReport::Succeeded);
        check(
            JobStatus::Failed {
                outcome: Outcome::Failed { exit_code: 3 },
                allowed: false,
            },
            JobReport::Failed {
                exit_code: Some(3),
                outcome: "failed with exit code 3".into(),
                allowed: false,
            },
        );
        check(
            JobStatus::Failed {
                outcome: Outcome::TimedOut,
                allowed: true,
            },
            JobReport::Failed {
                exit_code: None,
                outcome: "timed out".into(),
                allowed: true,
            },
        );
        check(
            JobStatus::Errored {
                message: "no docker".into(),
            },
            JobReport::Errored {
                message: "no docker".into(),
            },
        );
        check(JobStatus::Cancelled, JobReport::Cancelled);
        check(
            JobStatus::Skipped {
                reason: "why".into(),
            },
            JobReport::Errored {
                message: "the executor skipped the job: why".into(),
            },
        );
    }

    #[test]
    fn lines_keep_stream_source_and_time() {
        let line = LogLine {
            at: UNIX_EPOCH + std::time::Duration::from_millis(1_700_000_000_123),
            stream: Stream::Service,
            source: Some("db".into()),
            text: "ready".into(),
        };
        assert_eq!(
            wire_line(line),
            WireLogLine {
                at_ms: 1_700_000_000_123,
                stream: LogStream::Service,
                source: Some("db".into()),
                text: "ready".into(),
            }
        );
    }
}
