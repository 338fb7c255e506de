//! The notification itself: what a finished run tells people, when it is sent, and how a
//! `notify:` target with `${VARS}` becomes a URL or an address.

use std::time::Duration;

use gantry_pipeline::{OutcomeFilter, Template, format_duration};
use gantry_store::RunState;

/// Why a notification could not be sent.
#[derive(Debug, thiserror::Error)]
pub enum NotifyError {
    /// The target names a variable that has no value.
    #[error("notify target {template:?} uses ${{{name}}}, which is not set")]
    UnknownVar {
        /// The target as written.
        template: String,
        /// The variable.
        name: String,
    },
    /// The target resolved to nothing usable.
    #[error("notify target {template:?} resolved to an empty value")]
    EmptyTarget {
        /// The target as written.
        template: String,
    },
    /// The webhook request could not be made (connection, TLS, bad URL).
    #[error("webhook request to {url} failed")]
    Http {
        /// Where it went (without query string, which may hold a token).
        url: String,
        /// The cause.
        #[source]
        source: reqwest::Error,
    },
    /// The webhook answered with an error status.
    #[error("webhook {url} answered {status}: {body}")]
    Status {
        /// Where it went.
        url: String,
        /// The HTTP status.
        status: u16,
        /// The start of the answer's body.
        body: String,
    },
    /// Sending took too long and was abandoned.
    #[error("sending to {target} did not finish within {}s", timeout.as_secs())]
    Timeout {
        /// URL or mail server.
        target: String,
        /// The limit.
        timeout: Duration,
    },
    /// An email address does not parse.
    #[error("invalid email address {address:?}: {message}")]
    Address {
        /// The address.
        address: String,
        /// Why.
        message: String,
    },
    /// The email could not be built.
    #[error("failed to build the email")]
    Email(#[source] lettre::error::Error),
    /// The SMTP conversation failed.
    #[error("smtp server {server} refused or failed")]
    Smtp {
        /// `host:port`.
        server: String,
        /// The cause.
        #[source]
        source: lettre::transport::smtp::Error,
    },
}

/// What a notification says about a finished run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NotifyMessage {
    /// Repository name.
    pub repo: String,
    /// Pipeline name.
    pub pipeline: String,
    /// Run number within the pipeline.
    pub run_number: i64,
    /// The ref built (`refs/heads/develop`, or a short name).
    pub git_ref: String,
    /// The commit built.
    pub commit: String,
    /// Why the run started, in words ("Started by push webhook from GitHub (alice)").
    pub cause: String,
    /// How it ended.
    pub state: RunState,
    /// Names of the jobs that failed or errored, in plan order.
    pub failed_jobs: Vec<String>,
    /// Where to see the run.
    pub link: String,
    /// How long it took, when known.
    pub duration: Option<Duration>,
}

impl NotifyMessage {
    /// The ref without `refs/heads/` or `refs/tags/`.
    pub fn short_ref(&self) -> &str {
        self.git_ref
            .strip_prefix("refs/heads/")
            .or_else(|| self.git_ref.strip_prefix("refs/tags/"))
            .unwrap_or(&self.git_ref)
    }

    /// The commit's first 12 characters.
    pub fn short_commit(&self) -> &str {
        self.commit.get(..12).unwrap_or(&self.commit)
    }

    /// One line: `go-auth #12 failed on develop (1m30s)`.
    pub fn headline(&self) -> String {
        let mut line = format!(
            "{} #{} {} on {}",
            self.pipeline,
            self.run_number,
            self.state.as_str(),
            self.short_ref()
        );
        if let Some(d) = self.duration {
            line.push_str(&format!(" ({})", format_duration(round_to_seconds(d))));
        }
        line
    }

    /// The email subject.
    pub fn subject(&self) -> String {
        format!("[gantry] {}/{}", self.repo, self.headline())
    }

    /// A plain-text body naming the pipeline, run, ref, commit, cause, failed jobs and the
    /// link.
    pub fn text(&self) -> String {
        let mut out = format!("{}\n\n", self.headline());
        let mut field = |name: &str, value: &str| out.push_str(&format!("{name:<12} {value}\n"));
        field("Repository:", &self.repo);
        field("Pipeline:", &self.pipeline);
        field("Run:", &format!("#{}", self.run_number));
        field("State:", self.state.as_str());
        field("Ref:", self.short_ref());
        field("Commit:", &self.commit);
        field("Cause:", &self.cause);
        if !self.failed_jobs.is_empty() {
            field("Failed jobs:", &self.failed_jobs.join(", "));
        }
        if let Some(d) = self.duration {
            field("Duration:", &format_duration(round_to_seconds(d)));
        }
        out.push_str(&format!("\n{}\n", self.link));
        out
    }
}

/// Durations in messages are whole seconds; milliseconds are noise to a reader.
fn round_to_seconds(d: Duration) -> Duration {
    if d < Duration::from_secs(1) {
        d
    } else {
        Duration::from_secs(d.as_secs() + u64::from(d.subsec_millis() >= 500))
    }
}

/// Whether a `notify:` entry with these `on:` outcomes fires for a run that ended in
/// `state`, given how the pipeline's previous finished run ended.
///
/// `failure`: failed or errored. `success`: succeeded. `fixed`: succeeded after a failed
/// or errored previous run. `always`: any final state, cancelled included. A run that is
/// not final notifies nobody.
/// `on` is a `notify:` entry's list (`entry.on.iter().map(|o| &o.value)`) or a slice.
pub fn should_notify<'a>(
    on: impl IntoIterator<Item = &'a OutcomeFilter>,
    state: RunState,
    previous: Option<RunState>,
) -> bool {
    if !state.is_final() {
        return false;
    }
    let failed = |s: RunState| matches!(s, RunState::Failed | RunState::Errored);
    on.into_iter().any(|filter| match filter {
        OutcomeFilter::Failure => failed(state),
        OutcomeFilter::Success => state == RunState::Succeeded,
        OutcomeFilter::Fixed => state == RunState::Succeeded && previous.is_some_and(failed),
        OutcomeFilter::Always => true,
    })
}

/// Expands a `notify:` target (`${SLACK_WEBHOOK_URL}`, `${TEAM:-dev}@example.com`) with
/// `lookup` (params, env, secrets — the caller decides the order). `${NAME:-default}`
/// takes the default when NAME is unset or empty; `$$` is a literal `$`. An unset name
/// without default, or an empty result, is an error: a notification must not silently go
/// nowhere.
pub fn resolve_target<F>(template: &Template, lookup: F) -> Result<String, NotifyError>
where
    F: Fn(&str) -> Option<String>,
{
    let chars: Vec<char> = template.as_str().chars().collect();
    let mut refs: Vec<_> = template.vars().collect();
    refs.sort_by_key(|r| r.offset);
    let mut refs = refs.into_iter().peekable();
    let mut out = String::new();
    let mut i = 0;
    while i < chars.len() {
        if let Some(var) = refs.next_if(|r| r.offset == i) {
            let value = lookup(&var.name).filter(|v| !v.is_empty());
            match (value, &var.default) {
                (Some(v), _) => out.push_str(&v),
                (None, Some(default)) => out.push_str(default),
                (None, None) => {
                    return Err(NotifyError::UnknownVar {
                        template: template.as_str().to_string(),
                        name: var.name.clone(),
                    });
                }
            }
            i += var.len.max(1);
        } else if chars[i] == '$' && chars.get(i + 1) == Some(&'$') {
            out.push('$');
            i += 2;
        } else {
            out.push(chars[i]);
            i += 1;
        }
    }
    let out = out.trim().to_string();
    if out.is_empty() {
        return Err(NotifyError::EmptyTarget {
            template: template.as_str().to_string(),
        });
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    use OutcomeFilter::*;
    use RunState::*;

    #[test]
    fn when_to_notify() {
        let check = |on: &[OutcomeFilter], state: RunState, prev, expect: bool| {
            assert_eq!(
                should_notify(on, state, prev),
                expect,
                "on {on:?}, {state:?} after {prev:?}"
            );
        };
        check(&[Failure], Failed, None, true);
        check(&[Failure], Errored, Some(Succeeded), true);
        check(&[Failure], Succeeded, Some(Failed), false);
        check(&[Failure], Cancelled, None, false);
        check(&[Success], Succeeded, None, true);
        check(&[Success], Failed, None, false);
        check(&[Fixed], Succeeded, Some(Failed), true);
        check(&[Fixed], Succeeded, Some(Errored), true);
        check(&[Fixed], Succeeded, Some(Succeeded), false);
        check(&[Fixed], Succeeded, Some(Cancelled), false);
        check(&[Fixed], Succeeded, None, false);
        check(&[Fixed], Failed, Some(Failed), false);
        check(&[Failure, Fixed], Succeeded, Some(Failed), true);
        check(&[Failure, Fixed], Failed, Some(Failed), true);
        check(&[Failure, Fixed], Succeeded, Some(Succeeded), false);
        check(&[Always], Cancelled, None, true);
        check(&[Always], Succeeded, None, true);
        check(&[Always], Running, None, false);
        check(&[Always], Queued, None, false);
        check(&[], Failed, None, false);
    }

    fn resolve(text: &str) -> Result<String, String> {
        let vars: BTreeMap<&str, &str> = [
            (
                "SLACK_WEBHOOK_URL",
                "https://hooks.slack.com/services/T0/B0/x",
            ),
            ("TEAM", "core"),
            ("EMPTY", ""),
        ]
        .into_iter()
        .collect();
        let t = Template::parse(text, false).map_err(|e| e.message)?;
        resolve_target(&t, |n| vars.get(n).map(|v| v.to_string())).map_err(|e| e.to_string())
    }

    #[test]
    fn targets() {
        let check = |text: &str, expect: Result<&str, &str>| {
            assert_eq!(
                resolve(text),
                expect.map(str::to_string).map_err(str::to_string),
                "{text}"
            );
        };
        check(
            "${SLACK_WEBHOOK_URL}",
            Ok("https://hooks.slack.com/services/T0/B0/x"),
        );
        check("${TEAM}@example.com", Ok("core@example.com"));
        check("${MISSING:-ops}@example.com", Ok("ops@example.com"));
        check("${EMPTY:-ops}@example.com", Ok("ops@example.com"));
        check("plain@example.com", Ok("plain@example.com"));
        check("pay$$${TEAM}", Ok("pay$core"));
        check("a$b", Ok("a$b"));
        check("é${TEAM}é", Ok("écoreé"));
        check(
            "${MISSING}",
            Err("notify target \"${MISSING}\" uses ${MISSING}, which is not set"),
        );
        check(
            "${EMPTY}",
            Err("notify target \"${EMPTY}\" uses ${EMPTY}, which is not set"),
        );
        check(
            "${EMPTY:-}",
            Err("notify target \"${EMPTY:-}\" resolved to an empty value"),
        );
    }

    #[test]
    fn message_text() {
        let msg = NotifyMessage {
            repo: "messenger".into(),
            pipeline: "go-auth".into(),
            run_number: 12,
            git_ref: "refs/heads/develop".into(),
            commit: "0123456789abcdef0123456789abcdef01234567".into(),
            cause: "Started by push webhook from GitHub (alice)".into(),
            state: Failed,
            failed_jobs: vec!["build".into(), "integration".into()],
            link: "http://ci.example.com/runs/42".into(),
            duration: Some(Duration::from_millis(83_600)),
        };
        assert_eq!(
            msg.subject(),
            "[gantry] messenger/go-auth #12 failed on develop (1m24s)"
        );
        insta::assert_snapshot!(msg.text());
    }
}
