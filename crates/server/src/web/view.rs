//! What every page shares: status words and icons, durations and times as people read
//! them, the header's view of who is logged in, and turning a template into a response.

use askama::Template;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};

use gantry_store::{Job, JobState, Run};

use crate::web::session::Viewer;

/// A status as shown: CSS state, icon and word (never the colour alone).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Status {
    /// The store's state word (`succeeded`), used as `data-state` and CSS class suffix.
    pub state: &'static str,
    /// A glyph.
    pub icon: &'static str,
    /// The word people read.
    pub word: &'static str,
}

/// Icon and word of a run or job state word.
pub fn status(state: &'static str) -> Status {
    let (icon, word) = match state {
        "pending" => ("○", "pending"),
        "queued" => ("◔", "queued"),
        "waiting" => ("⚑", "waiting for approval"),
        "running" => ("▶", "running"),
        "succeeded" => ("✔", "passed"),
        "failed" => ("✘", "failed"),
        "allowed_failure" => ("⚠", "failed (allowed)"),
        "errored" => ("⚠", "errored"),
        "skipped" => ("⤼", "skipped"),
        "cancelled" => ("⊘", "cancelled"),
        _ => ("?", "unknown"),
    };
    Status { state, icon, word }
}

/// A duration in ms as `850ms`, `4.2s`, `1m03s`, `2h05m`.
pub fn duration(ms: i64) -> String {
    let ms = ms.max(0);
    if ms < 1000 {
        format!("{ms}ms")
    } else if ms < 60_000 {
        format!("{:.1}s", ms as f64 / 1000.0)
    } else if ms < 3_600_000 {
        format!("{}m{:02}s", ms / 60_000, (ms / 1000) % 60)
    } else {
        format!("{}h{:02}m", ms / 3_600_000, (ms / 60_000) % 60)
    }
}

/// The state a run is shown with: its stored state, except that a run whose unfinished
/// jobs all wait for approval (nothing queued or running) shows as `waiting` — the run
/// itself stays `running` (or `queued`) in the store and the API.
pub fn run_state(run: &Run, jobs: &[Job]) -> &'static str {
    let waiting = !run.state.is_final()
        && jobs.iter().any(|j| j.state == JobState::Waiting)
        && !jobs
            .iter()
            .any(|j| matches!(j.state, JobState::Queued | JobState::Running));
    if waiting {
        "waiting"
    } else {
        run.state.as_str()
    }
}

/// Duration from `start` to `end` (or to `now` while running, marked with `…`).
pub fn span(start: Option<i64>, end: Option<i64>, now: i64) -> String {
    match (start, end) {
        (Some(s), Some(e)) => duration(e - s),
        (Some(s), None) => format!("{}…", duration(now - s)),
        _ => String::new(),
    }
}

/// A time in ms as `2026-11-29 19:34 UTC`.
pub fn time(ms: i64) -> String {
    let s = crate::api::json::rfc3339(ms);
    match s.get(..16) {
        Some(p) => format!("{} UTC", p.replace('T', " ")),
        None => s,
    }
}

/// A time as RFC 3339 (for `<time datetime>`).
pub fn iso(ms: i64) -> String {
    crate::api::json::rfc3339(ms)
}

/// `refs/heads/main` → `main`, `refs/tags/v1` → `v1`.
pub fn short_ref(r: &str) -> &str {
    r.strip_prefix("refs/heads/")
        .or_else(|| r.strip_prefix("refs/tags/"))
        .unwrap_or(r)
}

/// The first 10 characters of a commit id.
pub fn short_commit(c: &str) -> &str {
    c.get(..10).unwrap_or(c)
}

/// What the page header shows about the viewer.
#[derive(Debug, Clone)]
pub struct Nav {
    /// Name of the logged-in user or token, if any.
    pub who: Option<String>,
    /// The CSRF token for the logout form.
    pub csrf: String,
    /// May start, cancel and rerun runs.
    pub admin: bool,
    /// Asset version for cache busting.
    pub v: &'static str,
}

impl Nav {
    /// The header for `viewer`.
    pub fn new(viewer: &Viewer) -> Nav {
        Nav {
            who: viewer.who().map(str::to_owned),
            csrf: viewer.csrf().unwrap_or_default().to_string(),
            admin: viewer.is_admin(),
            v: env!("CARGO_PKG_VERSION"),
        }
    }
}

/// A rendered page (or a plain error when the template fails).
pub fn html<T: Template>(t: &T) -> Response {
    html_status(StatusCode::OK, t)
}

/// A rendered page with a status code.
pub fn html_status<T: Template>(code: StatusCode, t: &T) -> Response {
    match t.render() {
        Ok(body) => {
            let mut r = (code, body).into_response();
            r.headers_mut().insert(
                header::CONTENT_TYPE,
                HeaderValue::from_static("text/html; charset=utf-8"),
            );
            r.headers_mut()
                .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
            r
        }
        Err(e) => (
            StatusCode::INTERNAL_SERVER_ERROR,
            format!("could not render the page: {e}"),
        )
            .into_response(),
    }
}

/// The error page.
#[derive(Template)]
#[template(path = "error.html")]
pub struct ErrorPage {
    /// Header.
    pub nav: Nav,
    /// Title.
    pub title: String,
    /// What went wrong.
    pub message: String,
}

/// An error page with status `code`.
pub fn error(viewer: &Viewer, code: StatusCode, message: impl Into<String>) -> Response {
    let page = ErrorPage {
        nav: Nav::new(viewer),
        title: code.canonical_reason().unwrap_or("Error").to_string(),
        message: message.into(),
    };
    html_status(code, &page)
}

/// An API error as an error page.
pub fn api_error(viewer: &Viewer, e: crate::api::ApiError) -> Response {
    if let crate::api::ApiError::Internal(detail) = &e {
        // The page says only "internal error"; the operator needs the cause.
        tracing::error!("internal error rendering a page: {detail}");
    }
    let code = e.status();
    error(viewer, code, e.to_string())
}

/// The status as HTML: `<span class="status status-STATE" data-state="STATE">` with its
/// icon and word. Every part is a fixed string, so templates output it with `|safe`.
impl std::fmt::Display for Status {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "<span class=\"status status-{s}\" data-state=\"{s}\"><span class=\"icon\" aria-hidden=\"true\">{i}</span> <span class=\"word\">{w}</span></span>",
            s = self.state,
            i = self.icon,
            w = self.word
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_read_naturally() {
        let check = |ms: i64, expect: &str| assert_eq!(duration(ms), expect);
        check(0, "0ms");
        check(850, "850ms");
        check(4200, "4.2s");
        check(63_000, "1m03s");
        check(7_500_000, "2h05m");
        check(-5, "0ms");
    }

    #[test]
    fn every_state_has_an_icon_and_a_word() {
        for s in [
            "pending",
            "queued",
            "waiting",
            "running",
            "succeeded",
            "failed",
            "allowed_failure",
            "errored",
            "skipped",
            "cancelled",
        ] {
            let st = status(s);
            assert_ne!(st.word, "unknown", "{s}");
            assert!(!st.icon.is_empty());
        }
    }
}
