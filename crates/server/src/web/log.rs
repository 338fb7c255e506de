//! `/runs/{id}/jobs/{job}`: a job's log, rendered on the server — numbered lines with
//! `#L<n>` anchors, ANSI colours as spans, timestamps on demand, the failing command
//! (the last `+ cmd` line of a failed job) highlighted — and followed live by `log.js`
//! over the API's Server-Sent Events stream, starting at the byte offset the page was
//! rendered from, so no line is shown twice or missed.
//!
//! A long log renders only its last [`TAIL`] lines (with links to all of them and to
//! earlier windows, `?from=N`), so a 100,000-line log opens at once; the failing command
//! is shown even when it is older. [`crate::web::search`] finds lines in the whole log
//! and links each to the window that shows it.

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

/// Whether a line's text is a command the shell echoed (`+ cmd`), colours aside.
fn is_command(text: &str) -> bool {
    if text.contains('\x1b') {
        ansi::strip(text).starts_with("+ ")
    } else {
        text.starts_with("+ ")
    }
}

/// The index of the failing command: the last line that is an echoed command (`+ cmd`).
pub fn failing_command(lines: &[LogLine<'_>]) -> Option<usize> {
    lines.iter().rposition(|l| is_command(l.text))
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
    waiting: bool,
    lines_html: String,
    total: usize,
    first_shown: usize,
    last_shown: usize,
    failing: Option<usize>,
    failing_href: String,
    failing_html: Option<String>,
    offset: usize,
    raw_href: String,
    stream_href: String,
    search_href: String,
    all_href: String,
    end_href: Option<String>,
    earlier_href: Option<String>,
    later_href: Option<String>,
}

/// Query of the page.
#[derive(Debug, Deserialize)]
pub struct LogQuery {
    /// Render every line.
    pub all: Option<String>,
    /// Render [`TAIL`] lines from this line number on (links from search results).
    pub from: Option<String>,
}

/// Which lines a page shows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Window {
    /// The last [`TAIL`] lines (the default).
    Tail,
    /// Every line (`?all=1`).
    All,
    /// [`TAIL`] lines from line `n` on, counted from 1 (`?from=n`).
    From(usize),
}

impl Window {
    /// The window a query asks for (an unreadable `from` is the tail).
    pub fn of(q: &LogQuery) -> Window {
        if q.all.as_deref().is_some_and(|v| v != "0") {
            return Window::All;
        }
        match q.from.as_deref().map(str::parse::<usize>) {
            Some(Ok(n)) => Window::From(n.max(1)),
            _ => Window::Tail,
        }
    }

    /// The line indices (from 0) shown of a log of `total` lines.
    pub fn range(self, total: usize) -> std::ops::Range<usize> {
        match self {
            Window::Tail => total.saturating_sub(TAIL)..total,
            Window::All => 0..total,
            Window::From(n) => {
                let start = (n - 1).min(total.saturating_sub(1));
                start..(start + TAIL).min(total)
            }
        }
    }
}

/// Where line `n` (from 1) of a log of `total` lines can be seen: `#L<n>` on the
/// default page when it is in the tail, else a window that starts a little above it.
pub fn line_href(base: &str, n: usize, total: usize) -> String {
    /// Lines of context above a line opened in a window.
    const ABOVE: usize = 20;
    if Window::Tail.range(total).contains(&(n - 1)) {
        format!("{base}#L{n}")
    } else {
        format!("{base}?from={}#L{n}", n.saturating_sub(ABOVE).max(1))
    }
}

/// Builds the page from a stored log.
pub fn build(nav: Nav, run: &Run, job: &Job, stored: &str, window: Window) -> LogPage {
    let (raw, offset) = split_stored(stored);
    let total = raw.len();
    let range = window.range(total);
    let failed = matches!(
        job.state,
        JobState::Failed | JobState::Errored | JobState::AllowedFailure
    );
    // Only the shown lines are parsed, and those from the end back to the failing
    // command of a failed job (usually a few).
    let failing = if failed {
        raw.iter().rposition(|l| is_command(parse_line(l).text))
    } else {
        None
    };
    let mut html = String::with_capacity(
        raw[range.clone()]
            .iter()
            .map(|l| l.len() + 160)
            .sum::<usize>(),
    );
    for i in range.clone() {
        line_html(i + 1, &parse_line(raw[i]), failing == Some(i), &mut html);
    }
    let failing_html = failing.filter(|f| !range.contains(f)).map(|f| {
        let mut s = String::new();
        line_html(f + 1, &parse_line(raw[f]), true, &mut s);
        // Its id must stay unique: the pinned copy is not the anchor.
        s.replacen(&format!("id=\"L{}\"", f + 1), "", 1)
    });
    let base = format!("/runs/{}/jobs/{}", run.id, encode_segment(&job.key));
    let at_end = range.end == total;
    let href_from = |n: usize| format!("{base}?from={n}");
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
        // A window that stops before the end cannot be followed: the stream continues
        // from the end of the log.
        live: !job.state.is_final() && at_end,
        waiting: job.state == JobState::Waiting,
        lines_html: html,
        total,
        first_shown: range.start + 1,
        last_shown: range.end,
        failing: failing.map(|f| f + 1),
        failing_href: match failing {
            Some(f) if range.contains(&f) => format!("#L{}", f + 1),
            Some(f) => line_href(&base, f + 1, total),
            None => String::new(),
        },
        failing_html,
        offset,
        raw_href: format!("/api{base}/log"),
        stream_href: format!("/api{base}/log/stream"),
        search_href: format!("{base}/search"),
        all_href: format!("{base}?all=1"),
        end_href: (!at_end).then(|| base.clone()),
        earlier_href: (range.start > 0).then(|| href_from(range.start.saturating_sub(TAIL) + 1)),
        later_href: (!at_end).then(|| href_from(range.end + 1)),
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
    let mut job = match job_by_path(&state, run.id, &job).await {
        Ok(j) => j,
        Err(e) => return view::api_error(&viewer, e),
    };
    state.annotate_waiting(std::slice::from_mut(&mut job));
    let stored = match state.logs.read_from(run.id, &job.key, 0).await {
        Ok(b) => b,
        Err(e) => return view::api_error(&viewer, crate::api::ApiError::internal(e)),
    };
    let text = String::from_utf8_lossy(&stored);
    view::html(&build(Nav::new(&viewer), &run, &job, &text, Window::of(&q)))
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
