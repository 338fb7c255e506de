//! Notification webhooks with a Slack-compatible JSON body (Slack incoming webhooks,
//! Mattermost, Rocket.Chat, Discord's `/slack` endpoint, or any receiver that reads JSON).
//!
//! The body has a plain `text` line for receivers that read nothing else, and one
//! `attachments` entry with a colour, a title linking to the run and the details as fields.

use std::time::Duration;

use gantry_store::RunState;
use serde_json::{Value, json};

use super::message::{NotifyError, NotifyMessage};

/// How long one webhook request may take, connection included.
pub const TIMEOUT: Duration = Duration::from_secs(15);

/// The JSON body posted for `msg`.
pub fn body(msg: &NotifyMessage) -> Value {
    let color = match msg.state {
        RunState::Succeeded => "#2eb67d",
        RunState::Failed | RunState::Errored => "#e01e5a",
        _ => "#9e9e9e",
    };
    let headline = escape(&msg.headline());
    let mut fields = vec![
        field("Repository", &msg.repo, true),
        field("Pipeline", &msg.pipeline, true),
        field("Ref", msg.short_ref(), true),
        field("Commit", msg.short_commit(), true),
        field("Cause", &msg.cause, false),
    ];
    if !msg.failed_jobs.is_empty() {
        fields.push(field("Failed jobs", &msg.failed_jobs.join(", "), false));
    }
    // Receivers that show only `text` still get the essentials on one line.
    let failed = if msg.failed_jobs.is_empty() {
        String::new()
    } else {
        format!(" — failed: {}", escape(&msg.failed_jobs.join(", ")))
    };
    json!({
        "text": format!("{headline}{failed} <{}|details>", msg.link),
        "attachments": [{
            "fallback": format!("{headline}: {}", msg.link),
            "color": color,
            "title": headline,
            "title_link": msg.link,
            "fields": fields,
        }],
    })
}

fn field(title: &str, value: &str, short: bool) -> Value {
    json!({ "title": title, "value": escape(value), "short": short })
}

/// Slack's three control characters in message text.
fn escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

/// The URL without path or query: Slack-style webhook URLs carry their secret in the
/// path, so errors and logs name only the host.
pub fn display_url(url: &str) -> String {
    match url.split_once("://") {
        Some((scheme, rest)) => {
            let host = rest.split(['/', '?', '#']).next().unwrap_or("");
            let host = host.rsplit('@').next().unwrap_or(host);
            format!("{scheme}://{host}/…")
        }
        None => "(invalid url)".to_string(),
    }
}

/// Posts `msg` to `url`. Any 2xx answer is success; a receiver that answers otherwise
/// fails with the status and the start of its answer, one that takes longer than
/// [`TIMEOUT`] with [`NotifyError::Timeout`].
pub async fn send(
    client: &reqwest::Client,
    url: &str,
    msg: &NotifyMessage,
) -> Result<(), NotifyError> {
    send_with_timeout(client, url, msg, TIMEOUT).await
}

/// [`send`] with another time limit.
pub async fn send_with_timeout(
    client: &reqwest::Client,
    url: &str,
    msg: &NotifyMessage,
    timeout: Duration,
) -> Result<(), NotifyError> {
    let shown = display_url(url);
    let http = |e: reqwest::Error| NotifyError::Http {
        url: shown.clone(),
        source: e.without_url(),
    };
    let request = async {
        let response = client
            .post(url)
            .timeout(timeout)
            .json(&body(msg))
            .send()
            .await
            .map_err(http)?;
        let status = response.status();
        if status.is_success() {
            return Ok(());
        }
        let text = response.text().await.unwrap_or_default();
        Err(NotifyError::Status {
            url: shown.clone(),
            status: status.as_u16(),
            body: text
                .chars()
                .take(200)
                .collect::<String>()
                .trim()
                .to_string(),
        })
    };
    // reqwest's own timeout covers the request; this one also bounds reading the error
    // body, and reports both the same way.
    let timed_out = || NotifyError::Timeout {
        target: shown.clone(),
        timeout,
    };
    match tokio::time::timeout(timeout, request).await {
        Ok(Err(NotifyError::Http { source, .. })) if source.is_timeout() => Err(timed_out()),
        Ok(result) => result,
        Err(_) => Err(timed_out()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_are_shown_without_secrets() {
        let check = |url: &str, expect: &str| assert_eq!(display_url(url), expect, "{url}");
        check(
            "https://hooks.slack.com/services/T0/B0/secret",
            "https://hooks.slack.com/…",
        );
        check(
            "http://user:pw@127.0.0.1:8080/x?token=1",
            "http://127.0.0.1:8080/…",
        );
        check("http://host", "http://host/…");
        check("nonsense", "(invalid url)");
    }

    #[test]
    fn escapes_slack_control_characters() {
        assert_eq!(escape("a <b> & c"), "a &lt;b&gt; &amp; c");
    }
}
