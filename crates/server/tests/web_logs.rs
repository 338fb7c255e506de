//! Long job logs in the web UI: the page renders the tail, search covers the whole log
//! file (JSON for the page's script, an HTML list without it), and every hit links to a
//! window of the page (`?from=N#LN`) that shows it.

#![allow(clippy::unwrap_used)]

mod common;
mod webutil;

use axum::http::StatusCode;
use common::Fixture;
use serde_json::{Value, json};
use webutil::{count, get, login};

const PIPE: &str = "\
on:
  manual: true
jobs:
  build:
    script: [make]
";

/// A running job whose log is the server's "leased" line and then `lines`; returns the
/// run id and the job key.
async fn job_with_log(f: &Fixture, lines: &[String]) -> (i64, String) {
    let id = f.trigger(json!({})).await["id"].as_i64().unwrap();
    let lease = f.lease().await;
    for (seq, batch) in lines.chunks(2000).enumerate() {
        let batch: Vec<&str> = batch.iter().map(String::as_str).collect();
        f.log(&lease.id, seq as u64, &batch).await;
    }
    (id, lease.job_key)
}

#[tokio::test]
async fn search_finds_lines_outside_the_rendered_tail() {
    let f = Fixture::new(PIPE).await;
    // 12,000 lines of output: page line n is output line n - 1.
    let lines: Vec<String> = (1..=12_000)
        .map(|i| match i {
            99 => "\x1b[31mERROR\x1b[0m: disk <full>".to_string(),
            11_000 => "error again".to_string(),
            _ => format!("line {i}"),
        })
        .collect();
    let (id, key) = job_with_log(&f, &lines).await;
    let s = login(&f).await;
    let base = format!("/runs/{id}/jobs/{key}");

    // The default page: the last 5,000 lines, followed live.
    let r = get(&f, &base, &s).await;
    assert!(r.body.contains("id=\"L12001\""));
    assert!(!r.body.contains("id=\"L7001\""));
    assert!(r.body.contains("data-live=\"1\""));
    assert!(r.body.contains(&format!(
        "<form id=\"log-search-form\" method=\"get\" action=\"{base}/search\""
    )));
    assert!(r.body.contains(&format!(
        "<a id=\"show-earlier\" href=\"{base}?from=2002\">"
    )));

    // JSON: every match counted, each linked to where it can be seen.
    let r = get(&f, &format!("{base}/search?q=Error&format=json"), &s).await;
    assert_eq!(r.status, StatusCode::OK);
    assert!(r.content_type.unwrap().starts_with("application/json"));
    let v: Value = serde_json::from_str(&r.body).unwrap();
    assert_eq!(v["lines"], 12_001);
    assert_eq!(v["count"], 2);
    assert_eq!(v["truncated"], false);
    assert_eq!(v["hits"][0]["n"], 100);
    assert_eq!(v["hits"][0]["text"], "ERROR: disk <full>");
    assert_eq!(v["hits"][0]["href"], format!("{base}?from=80#L100"));
    // In the tail: its anchor on the default page.
    assert_eq!(v["hits"][1]["n"], 11_001);
    assert_eq!(v["hits"][1]["href"], format!("{base}#L11001"));

    // Without JavaScript: the same as a list, escaped, the match marked.
    let r = get(&f, &format!("{base}/search?q=disk+%3Cfull"), &s).await;
    assert_eq!(r.status, StatusCode::OK);
    assert!(r.body.contains("id=\"search-summary\""));
    assert_eq!(count(&r.body, "<li class=\"search-hit\""), 1);
    assert!(r.body.contains(&format!(
        "<li class=\"search-hit\" data-n=\"100\"><a href=\"{base}?from=80#L100\">line 100</a> <code class=\"hit-text\">ERROR: <mark>disk &#60;full</mark>&#62;</code></li>"
    )), "{}", r.body);
    let r = get(&f, &format!("{base}/search?q=nowhere"), &s).await;
    assert!(r.body.contains("No line of 12001 contains"));

    // The window a hit links to: 5,000 lines from line 80, not followed (it stops
    // before the end), with links on.
    let r = get(&f, &format!("{base}?from=80"), &s).await;
    assert_eq!(r.status, StatusCode::OK);
    assert!(r.body.contains("id=\"L80\""));
    assert!(r.body.contains("id=\"L5079\""));
    assert!(!r.body.contains("id=\"L79\""));
    assert!(!r.body.contains("id=\"L5080\""));
    assert!(
        r.body
            .contains("<span class=\"fg-1\">ERROR</span>: disk &lt;full&gt;")
    );
    assert!(r.body.contains("Showing lines 80–5079 of 12001."));
    assert!(!r.body.contains("data-live=\"1\""));
    assert!(
        r.body
            .contains(&format!("<a id=\"show-later\" href=\"{base}?from=5080\">"))
    );
    assert!(
        r.body
            .contains(&format!("<a id=\"show-earlier\" href=\"{base}?from=1\">"))
    );
    assert!(
        r.body
            .contains(&format!("<a id=\"show-end\" href=\"{base}\">"))
    );
    // A window past the end shows the last line; nonsense is the default page.
    let r = get(&f, &format!("{base}?from=99999"), &s).await;
    assert!(r.body.contains("id=\"L12001\""));
    assert_eq!(count(&r.body, "<div class=\"line "), 1);
    let r = get(&f, &format!("{base}?from=x"), &s).await;
    assert_eq!(count(&r.body, "<div class=\"line "), 5000);
}

#[tokio::test]
async fn search_lists_at_most_200_hits_and_needs_a_login() {
    let f = Fixture::new(PIPE).await;
    let lines: Vec<String> = (1..=500).map(|i| format!("match {i}")).collect();
    let (id, key) = job_with_log(&f, &lines).await;
    let uri = format!("/runs/{id}/jobs/{key}/search?q=MATCH&format=json");
    // Anonymous: the page sends to the login, JSON is refused as the API would.
    let r = webutil::request(&f, "GET", &uri, None, None).await;
    assert_eq!(r.status, StatusCode::SEE_OTHER);
    let s = login(&f).await;
    let v: Value = serde_json::from_str(&get(&f, &uri, &s).await.body).unwrap();
    assert_eq!(v["count"], 500);
    assert_eq!(v["hits"].as_array().unwrap().len(), 200);
    assert_eq!(v["truncated"], true);
    let r = get(
        &f,
        &format!("/runs/{id}/jobs/nope/search?q=x&format=json"),
        &s,
    )
    .await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
    let r = get(&f, &format!("/runs/{id}/jobs/{key}/search?q=MATCH"), &s).await;
    assert!(
        r.body
            .contains("500 of 501 lines contain “MATCH”; the first 200 are listed.")
    );
}
