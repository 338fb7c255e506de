//! `/runs/{id}/jobs/{job}/search?q=`: finds lines in a job's whole log, not just the tail
//! its page renders. Each hit links to the page window that shows it (`?from=N#LN`, or
//! `#LN` when it is in the tail). Answers JSON for `log.js` (`?format=json`, or `Accept:
//! application/json`) and an HTML list of results without JavaScript.
//!
//! The search reads the log file line by line and matches the text people see (ANSI
//! colours stripped), ignoring case. At most [`MAX_HITS`] hits are listed; all are
//! counted.

use askama::Template;
use axum::Json;
use axum::extract::{Path, Query, State as Ax};
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};
use std::io::BufRead;

use crate::api::logs::job_by_path;
use crate::api::runs::run_by_path;
use crate::state::State;
use crate::web::ansi;
use crate::web::log::{line_href, parse_line};
use crate::web::session::Viewer;
use crate::web::urlencoded::encode_segment;
use crate::web::view::{self, Nav, Status};

/// Hits listed at most (the rest are counted).
pub const MAX_HITS: usize = 200;
/// Queries longer than this (in characters) are cut.
pub const MAX_QUERY: usize = 200;
/// Hit text longer than this (in characters) is cut.
const MAX_TEXT: usize = 300;

/// Query of the route.
#[derive(Debug, Deserialize)]
pub struct SearchQuery {
    /// What to find.
    pub q: Option<String>,
    /// `json` for JSON.
    pub format: Option<String>,
}

/// One matching line.
#[derive(Debug, Clone, Serialize)]
pub struct Hit {
    /// Line number, from 1 (as on the page).
    pub n: usize,
    /// The line's text without colours (cut at 300 characters).
    pub text: String,
    /// Where the page shows it.
    pub href: String,
    /// The text before, of and after the first match (for highlighting).
    #[serde(skip)]
    pub parts: (String, String, String),
}

/// What a search found.
#[derive(Debug, Clone, Serialize)]
pub struct Found {
    /// The query as used.
    pub q: String,
    /// Lines in the log.
    pub lines: usize,
    /// Lines that match.
    pub count: usize,
    /// The first [`MAX_HITS`] of them.
    pub hits: Vec<Hit>,
    /// Whether more matched than are listed.
    pub truncated: bool,
}

/// Where `needle` (already lowercase) first occurs in `hay`, ignoring case, as a byte
/// range of `hay`.
pub fn find_ci(hay: &str, needle: &str) -> Option<std::ops::Range<usize>> {
    if needle.is_empty() {
        return None;
    }
    if needle.is_ascii() {
        // ASCII case folding changes no length and moves no char boundary, so a match in
        // the folded copy is at the same bytes of `hay` (and `str::find` is fast).
        return hay
            .to_ascii_lowercase()
            .find(needle)
            .map(|at| at..at + needle.len());
    }
    // Lowercasing can change lengths: compare char by char from each start in the
    // original, so the range found is one of `hay`.
    let needle: Vec<char> = needle.chars().collect();
    for (at, _) in hay.char_indices() {
        let mut matched = 0;
        for (off, c) in hay[at..].char_indices() {
            for lc in c.to_lowercase() {
                if needle.get(matched) != Some(&lc) {
                    matched = usize::MAX;
                    break;
                }
                matched += 1;
            }
            if matched == usize::MAX {
                break;
            }
            if matched == needle.len() {
                return Some(at..at + off + c.len_utf8());
            }
        }
    }
    None
}

fn cut(s: &str, max: usize) -> &str {
    match s.char_indices().nth(max) {
        Some((at, _)) => &s[..at],
        None => s,
    }
}

/// Searches the stored log lines read from `lines` (in order) for `q`; hits link under
/// `base` (`/runs/ID/jobs/KEY`). Blocking reads: call it off the async workers.
pub fn search(mut lines: impl BufRead, q: &str, base: &str) -> std::io::Result<Found> {
    let q = cut(q.trim(), MAX_QUERY).to_string();
    let needle = q.to_lowercase();
    // The usual case, an ASCII query, folds each line into one reused buffer.
    let ascii = needle.is_ascii() && !needle.is_empty();
    let mut folded = String::new();
    let mut hits = Vec::new();
    let mut count = 0;
    let mut n = 0;
    let mut buf = Vec::new();
    loop {
        buf.clear();
        if lines.read_until(b'\n', &mut buf)? == 0 || buf.last() != Some(&b'\n') {
            // End, or a partial line still being written (the page does not show it
            // either).
            break;
        }
        n += 1;
        let line = String::from_utf8_lossy(&buf[..buf.len() - 1]);
        let text = parse_line(&line).text;
        // Colour codes are not part of what people search for.
        let plain;
        let text = if text.contains('\x1b') {
            plain = ansi::strip(text);
            plain.as_str()
        } else {
            text
        };
        let found = if ascii {
            folded.clear();
            folded.push_str(text);
            folded.make_ascii_lowercase();
            folded.find(&needle).map(|at| at..at + needle.len())
        } else {
            find_ci(text, &needle)
        };
        let Some(at) = found else {
            continue;
        };
        count += 1;
        if hits.len() < MAX_HITS {
            // Some context before the match, at most 60 characters.
            let before = &text[..at.start];
            let from = before.char_indices().rev().nth(59).map_or(0, |(i, _)| i);
            let after = cut(&text[at.end..], MAX_TEXT);
            hits.push(Hit {
                n,
                text: cut(text, MAX_TEXT).to_string(),
                href: String::new(),
                parts: (
                    format!("{}{}", if from > 0 { "…" } else { "" }, &before[from..]),
                    text[at.clone()].to_string(),
                    after.to_string(),
                ),
            });
        }
    }
    for h in &mut hits {
        h.href = line_href(base, h.n, n);
    }
    Ok(Found {
        q,
        lines: n,
        count,
        truncated: count > hits.len(),
        hits,
    })
}

/// The HTML results.
#[derive(Template)]
#[template(path = "search.html")]
pub struct SearchPage {
    nav: Nav,
    run_id: i64,
    run_title: String,
    job_name: String,
    status: Status,
    log_href: String,
    action: String,
    found: Found,
}

/// `GET /runs/{id}/jobs/{job}/search?q=`.
pub async fn page(
    Ax(state): Ax<State>,
    viewer: Viewer,
    Path((id, job)): Path<(String, String)>,
    Query(query): Query<SearchQuery>,
    headers: HeaderMap,
) -> Response {
    let json = query.format.as_deref() == Some("json")
        || headers
            .get(axum::http::header::ACCEPT)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|a| a.starts_with("application/json"));
    let found = async {
        let run = run_by_path(&state, &id).await?;
        let job = job_by_path(&state, run.id, &job).await?;
        let base = format!("/runs/{}/jobs/{}", run.id, encode_segment(&job.key));
        let q = query.q.as_deref().unwrap_or("");
        let path = state
            .logs
            .path(run.id, &job.key)
            .map_err(crate::api::ApiError::internal)?;
        // A whole log is read in big blocking reads on a blocking thread: line by line
        // through async reads it took several times longer.
        let (q, at) = (q.to_string(), base.clone());
        let found = tokio::task::spawn_blocking(move || match std::fs::File::open(&path) {
            Ok(file) => search(std::io::BufReader::with_capacity(1 << 20, file), &q, &at),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => search(&b""[..], &q, &at),
            Err(e) => Err(e),
        })
        .await
        .map_err(crate::api::ApiError::internal)?
        .map_err(crate::api::ApiError::internal)?;
        Ok::<_, crate::api::ApiError>((run, job, base, found))
    };
    let (run, job, base, found) = match found.await {
        Ok(f) => f,
        Err(e) if json => return e.into_response(),
        Err(e) => return view::api_error(&viewer, e),
    };
    if json {
        return Json(found).into_response();
    }
    view::html(&SearchPage {
        nav: Nav::new(&viewer),
        run_id: run.id,
        run_title: format!("{} #{}", run.pipeline, run.number),
        job_name: job.name.clone(),
        status: view::status(job.state.as_str()),
        action: format!("{base}/search"),
        log_href: base,
        found,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_ignoring_case() {
        let check = |hay: &str, needle: &str, expect: Option<&str>| {
            let got = find_ci(hay, &needle.to_lowercase()).map(|r| &hay[r]);
            assert_eq!(got, expect, "{hay:?} / {needle:?}");
        };
        check("Error: boom", "error", Some("Error"));
        check("an ERROR here", "Error", Some("ERROR"));
        check("nothing", "error", None);
        check("", "x", None);
        check("x", "", None);
        check("Grüße aus KÖLN", "köln", Some("KÖLN"));
        check("ÄÖÜ", "öü", Some("ÖÜ"));
        check("straße", "STRASSE", None);
        check("日本語のログ", "ログ", Some("ログ"));
    }

    #[test]
    fn search_counts_all_and_lists_the_first() {
        let mut log = String::new();
        for i in 1..=300 {
            log.push_str(&format!("1 o line {i} \x1b[31mError\x1b[0m here\n"));
        }
        log.push_str("1 o the last line, not complete");
        let found = search(log.as_bytes(), "error HERE", "/runs/1/jobs/b").expect("search");
        assert_eq!((found.lines, found.count), (300, 300));
        assert_eq!(found.hits.len(), MAX_HITS);
        assert!(found.truncated);
        assert_eq!(found.hits[0].n, 1);
        assert_eq!(found.hits[0].text, "line 1 Error here");
        assert_eq!(
            found.hits[0].parts,
            ("line 1 ".into(), "Error here".into(), String::new())
        );
        // 300 lines fit the default tail: hits link to its anchors.
        assert_eq!(found.hits[0].href, "/runs/1/jobs/b#L1");
        let none = search(log.as_bytes(), "  ", "/x").expect("search");
        assert_eq!((none.count, none.q.as_str()), (0, ""));
    }
}
