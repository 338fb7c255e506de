//! `/runs/{id}/jobs/{job}`: a job's log, rendered on the server — numbered lines with
//! `#L<n>` anchors, ANSI colours as spans, timestamps on demand, the failing command
//! (the last `+ cmd` line of a failed job) highlighted — and followed live by `log.js`
//! over the API's Server-Sent Events stream, starting at the byte offset the page was
//! rendered from, so no line is shown twice or missed.
//!
//! A long log renders only its last [`TAIL`] lines (with a link to all of them), so a
//! 100,000-line log opens at once; the failing command is shown even when it is older.

use askama::Template;
use axum::extract::{Path, Query, State as Ax};
use axum::response::Response;
use gantry_store::{Job, JobState, Run};
use serde::Deserialize;

use crate::api::logs::job_by_path;
use crate::api::runs::run_by_path;
use crate::state::{State, now_ms};
use crate::web::ansi;
use crate::web::session::Viewer;
use crate::web::urlencoded::encode_segment;
use crate::web::view::{self, Nav, Status};

/// Lines rendered when the whole log is not asked for.
pub const TAIL: usize = 5000;

/// One stored line, parsed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogLine<'a> {
    /// Unix ms (0 when the line has no stored fields).
    pub at_ms: i64,
    /// Stream: `o`, `e`, `s` or `v:<service>`.
    pub stream: &'a str,
    /// The text.
    pub text: &'a str,
}

/// Splits a stored line `<ms> <stream> <text>` (lines of another shape are all text).
pub fn parse_line(line: &str) -> LogLine<'_> {
    let mut parts = line.splitn(3, ' ');
    if let (Some(ms), Some(stream), text) = (parts.next(), parts.next(), parts.next())
        && let Ok(at_ms) = ms.parse::<i64>()
    {
        return LogLine {
            at_ms,
            stream,
            text: text.unwrap_or(""),
        };
    }
    LogLine {
        at_ms: 0,
        stream: "o",
        text: line,
    }
}

/// The complete lines of a stored log and the byte offset after the last of them.
pub fn split_stored(stored: &str) -> (Vec<&str>, usize) {
    let complete = stored.rfind('\n').map_or(0, |i| i + 1);
    let lines = stored[..complete].lines().collect();
    (lines, complete)
}

/// The index of the failing command: the last line that is an echoed command (`+ cmd`).
pub fn failing_command(lines: &[LogLine<'_>]) -> Option<usize> {
    lines
        .iter()
        .rposition(|l| ansi::strip(l.text).starts_with("+ "))
}

/// `HH:MM:SS.mmm` (UTC) of a time in ms.
pub fn clock(ms: i64) -> String {
    let day = ms.rem_euclid(86_400_000);
    format!(
        "{:02}:{:02}:{:02}.{:03}",
        day / 3_600_000,
        (day / 60_000) % 60,
        (day / 1000) % 60,
        day % 1000
    )
}

fn stream_class(stream: &str) -> &'static str {
    match stream {
        "e" => "stream-e",
        "s" => "stream-s",
        s if s.starts_with("v:") => "stream-v",
        _ => "stream-o",
    }
}

/// One line as HTML (`n` counts from 1).
pub fn line_html(n: usize, line: &LogLine<'_>, failing: bool, out: &mut String) {
    use std::fmt::Write;
    let _ = write!(
        out,
        "<div class=\"line {}{}\" id=\"L{n}\" data-n=\"{n}\"><a class=\"ln\" href=\"#L{n}\" aria-label=\"line {n}\">{n}</a><span class=\"ts\">{}</span>",
        stream_class(line.stream),
        if failing { " failing-cmd" } else { "" },
        clock(line.at_ms),
    );
    if let Some(svc) = line.stream.strip_prefix("v:") {
        out.push_str("<span class=\"svc\">[");
        for c in svc.chars() {
            ansi::escape_char(c, out);
        }
        out.push_str("]</span> ");
    }
    out.push_str("<span class=\"txt\">");
    out.push_str(&ansi::to_html(line.text));
    out.push_str("</span>");
    if failing {
        out.push_str(
            "<span class=\"fail-note\"><span aria-hidden=\"true\">✘</span> failing command</span>",
        );
    }
    out.push_str("</div>\n");
}

/// The job log page.
#[derive(Template)]
#[template(path = "log.html")]
pub struct LogPage {
    nav: Nav,
    run_id: i64,
    run_title: String,
    job_key: String,
    job_name: String,
    status: Status,
    duration: String,
    attempt: u32,
    executor: Option<String>,
    message: Option<String>,
    live: bool,
    lines_html: String,
    total: usize,
    first_shown: usize,
    failing: Option<usize>,
    failing_html: Option<String>,
    offset: usize,
    raw_href: String,
    stream_href: String,
    all_href: String,
}

/// Query of the page.
#[derive(Debug, Deserialize)]
pub struct LogQuery {
    /// Render every line.
    pub all: Option<String>,
}

/// Builds the page from a stored log.
pub fn build(nav: Nav, run: &Run, job: &Job, stored: &str, all: bool) -> LogPage {
    let (raw, offset) = split_stored(stored);
    let lines: Vec<LogLine<'_>> = raw.iter().map(|l| parse_line(l)).collect();
    let failed = matches!(
        job.state,
        JobState::Failed | JobState::Errored | JobState::AllowedFailure
    );
    let failing = if failed {
        failing_command(&lines)
    } else {
        None
    };
    let start = if all {
        0
    } else {
        lines.len().saturating_sub(TAIL)
    };
    let mut html =
        String::with_capacity(stored.len() - stored.len() / 4 + 64 * (lines.len() - start));
    for (i, l) in lines.iter().enumerate().skip(start) {
        line_html(i + 1, l, failing == Some(i), &mut html);
    }
    let failing_html = failing.filter(|&f| f < start).map(|f| {
        let mut s = String::new();
        line_html(f + 1, &lines[f], true, &mut s);
        // Its id must stay unique: the pinned copy is not the anchor.
        s.replacen(&format!("id=\"L{}\"", f + 1), "", 1)
    });
    let base = format!("/runs/{}/jobs/{}", run.id, encode_segment(&job.key));
    LogPage {
        nav,
        run_id: run.id,
        run_title: format!("{} #{}", run.pipeline, run.number),
        job_key: job.key.clone(),
        job_name: job.name.clone(),
        status: view::status(job.state.as_str()),
        duration: view::span(job.started_at, job.finished_at, now_ms()),
        attempt: job.attempt,
        executor: job.executor.clone(),
        message: job.message.clone(),
        live: !job.state.is_final(),
        lines_html: html,
        total: lines.len(),
        first_shown: start + 1,
        failing: failing.map(|f| f + 1),
        failing_html,
        offset,
        raw_href: format!("/api{base}/log"),
        stream_href: format!("/api{base}/log/stream"),
        all_href: format!("{base}?all=1"),
    }
}

/// `GET /runs/{id}/jobs/{job}`.
pub async fn page(
    Ax(state): Ax<State>,
    viewer: Viewer,
    Path((id, job)): Path<(String, String)>,
    Query(q): Query<LogQuery>,
) -> Response {
    let run = match run_by_path(&state, &id).await {
        Ok(r) => r,
        Err(e) => return view::api_error(&viewer, e),
    };
    let job = match job_by_path(&state, run.id, &job).await {
        Ok(j) => j,
        Err(e) => return view::api_error(&viewer, e),
    };
    let stored = match state.logs.read_from(run.id, &job.key, 0).await {
        Ok(b) => b,
        Err(e) => return view::api_error(&viewer, crate::api::ApiError::internal(e)),
    };
    let text = String::from_utf8_lossy(&stored);
    let all = q.all.as_deref().is_some_and(|v| v != "0");
    view::html(&build(Nav::new(&viewer), &run, &job, &text, all))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stored_lines_parse() {
        let check = |input: &str, expect: (i64, &str, &str)| {
            let l = parse_line(input);
            assert_eq!((l.at_ms, l.stream, l.text), expect, "{input:?}");
        };
        check(
            "1700000000123 o hello world",
            (1_700_000_000_123, "o", "hello world"),
        );
        check("5 e ", (5, "e", ""));
        check("5 s", (5, "s", ""));
        check("5 v:db ready", (5, "v:db", "ready"));
        check("not stored", (0, "o", "not stored"));
    }

    #[test]
    fn failing_command_is_the_last_echoed_one() {
        let lines: Vec<LogLine<'_>> = ["1 s + make", "1 o ok", "1 s + make test", "1 e boom"]
            .iter()
            .map(|l| parse_line(l))
            .collect();
        assert_eq!(failing_command(&lines), Some(2));
        assert_eq!(failing_command(&lines[..2]), Some(0));
        assert_eq!(failing_command(&lines[1..2]), None);
    }

    #[test]
    fn partial_last_line_waits_for_the_stream() {
        let (lines, off) = split_stored("1 o a\n1 o b\n1 o par");
        assert_eq!(lines, vec!["1 o a", "1 o b"]);
        assert_eq!(off, 12);
    }

    #[test]
    fn clock_reads_utc() {
        assert_eq!(clock(0), "00:00:00.000");
        assert_eq!(clock(1_700_000_000_123), "22:13:20.123");
    }

    #[test]
    fn line_html_escapes_and_marks() {
        let mut out = String::new();
        line_html(7, &parse_line("0 v:d<b> <i>x</i>"), true, &mut out);
        assert!(out.contains("id=\"L7\""), "{out}");
        assert!(out.contains("failing-cmd"), "{out}");
        assert!(out.contains("[d&lt;b&gt;]"), "{out}");
        assert!(out.contains("&lt;i&gt;x&lt;/i&gt;"), "{out}");
        assert!(!out.contains("<i>"), "{out}");
    }
}
