//! The client side of the server's REST API: one [`Api`] value per command, requests with
//! the bearer token, and every failure worded for a person (which server could not be
//! reached, what to do about a 401, the server's own message for a refused request).
//!
//! The response types are the client's view of the JSON: only the fields the commands
//! show, each defaulted, so that a server adding fields never breaks an older CLI.

use std::collections::BTreeMap;
use std::time::Duration;

use reqwest::{Method, RequestBuilder, Response, StatusCode, Url};
use serde::Deserialize;
use serde::de::DeserializeOwned;

use crate::args::ServerArgs;
use crate::error::CliError;

/// How long a connection attempt may take before the server counts as unreachable.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// A server, its token and an HTTP client.
pub struct Api {
    base: Url,
    token: Option<String>,
    http: reqwest::Client,
}

/// A run, as `GET /api/runs` and `GET /api/runs/{id}` return it.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct Run {
    /// Server-wide id (what `gantry logs RUN` takes).
    pub id: i64,
    /// Repository name.
    pub repo: String,
    /// Pipeline name.
    pub pipeline: String,
    /// Number within the pipeline.
    pub number: i64,
    /// `queued`, `running`, `succeeded`, `failed`, `cancelled`, `errored`.
    pub state: String,
    /// `push`, `tag`, `poll`, `manual`, …
    pub event: String,
    /// Full ref.
    #[serde(rename = "ref")]
    pub git_ref: String,
    /// Full commit id.
    pub commit: String,
    /// Why it started, in words.
    pub cause: String,
    /// Why it errored.
    pub error: Option<String>,
    /// RFC 3339.
    pub created_at: Option<String>,
    /// RFC 3339.
    pub started_at: Option<String>,
    /// RFC 3339.
    pub finished_at: Option<String>,
    /// Wall time once finished.
    pub duration_ms: Option<i64>,
    /// The run this one re-runs.
    pub rerun_of: Option<i64>,
    /// Jobs (only in `GET /api/runs/{id}`).
    pub jobs: Vec<Job>,
}

impl Run {
    /// True once the run can change no more.
    pub fn is_final(&self) -> bool {
        !matches!(self.state.as_str(), "queued" | "running" | "")
    }

    /// `go-auth #12`.
    pub fn title(&self) -> String {
        format!("{} #{}", self.pipeline, self.number)
    }
}

/// A job of a run.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct Job {
    /// Plan index.
    pub idx: i64,
    /// Key (safe for paths and URLs).
    pub key: String,
    /// Display name.
    pub name: String,
    /// `pending`, `queued`, `running`, `succeeded`, …
    pub state: String,
    /// Attempts so far.
    pub attempt: u32,
    /// Reason, outcome or error in words.
    pub message: Option<String>,
}

/// A registered repository.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct Repo {
    /// Name.
    pub name: String,
    /// Clone URL or path.
    pub url: String,
    /// The last error reaching it.
    pub last_error: Option<String>,
    /// RFC 3339.
    pub last_polled_at: Option<String>,
}

/// `GET /api/runs`.
#[derive(Debug, Deserialize)]
pub struct RunPage {
    /// The runs, newest first (kept as JSON for `--json`).
    pub runs: Vec<serde_json::Value>,
}

impl Api {
    /// The server `--server`/`GANTRY_SERVER` names, with `--token`/`GANTRY_TOKEN`.
    pub fn new(args: &ServerArgs) -> Result<Api, CliError> {
        let mut text = args.server.trim().to_owned();
        if !text.contains("://") {
            text = format!("http://{text}");
        }
        let base = Url::parse(&text).map_err(|e| {
            CliError::invalid(format!(
                "error: --server {}: not a URL ({e})\n  help: for example --server http://127.0.0.1:8080",
                args.server
            ))
        })?;
        if !matches!(base.scheme(), "http" | "https") || base.cannot_be_a_base() {
            return Err(CliError::invalid(format!(
                "error: --server {}: expected an http:// or https:// URL",
                args.server
            )));
        }
        let http = reqwest::Client::builder()
            .connect_timeout(CONNECT_TIMEOUT)
            .user_agent(concat!("gantry/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| CliError::Failed(anyhow::anyhow!("cannot set up HTTP: {e}")))?;
        let token = args.token.clone().filter(|t| !t.trim().is_empty());
        Ok(Api { base, token, http })
    }

    /// The server's base URL as the user gave it (for messages and links).
    pub fn base(&self) -> &str {
        self.base.as_str().trim_end_matches('/')
    }

    /// The URL of `segments` under the base, each segment percent-encoded (repository
    /// names and job keys are user data).
    pub fn url(&self, segments: &[&str]) -> Url {
        let mut url = self.base.clone();
        if let Ok(mut path) = url.path_segments_mut() {
            path.pop_if_empty();
            path.extend(segments);
        }
        url
    }

    /// A request to `segments`, with the token.
    pub fn request(&self, method: Method, segments: &[&str]) -> RequestBuilder {
        let mut req = self.http.request(method, self.url(segments));
        if let Some(token) = &self.token {
            req = req.bearer_auth(token);
        }
        req
    }

    /// Sends a request; a response with an error status becomes a worded error.
    pub async fn send(&self, req: RequestBuilder) -> Result<Response, CliError> {
        let resp = req.send().await.map_err(|e| self.transport(&e))?;
        if resp.status().is_success() {
            return Ok(resp);
        }
        Err(self.refused(resp).await)
    }

    /// `GET` returning JSON.
    pub async fn get<T: DeserializeOwned>(
        &self,
        segments: &[&str],
        query: &[(&str, String)],
    ) -> Result<T, CliError> {
        let resp = self
            .send(self.request(Method::GET, segments).query(query))
            .await?;
        self.json(resp).await
    }

    /// `POST` of a JSON body returning JSON.
    pub async fn post<T: DeserializeOwned>(
        &self,
        segments: &[&str],
        body: &serde_json::Value,
    ) -> Result<T, CliError> {
        let resp = self
            .send(self.request(Method::POST, segments).json(body))
            .await?;
        self.json(resp).await
    }

    /// A run with its jobs.
    pub async fn run(&self, id: i64) -> Result<Run, CliError> {
        self.get(&["api", "runs", &id.to_string()], &[]).await
    }

    async fn json<T: DeserializeOwned>(&self, resp: Response) -> Result<T, CliError> {
        let url = resp.url().clone();
        let bytes = resp.bytes().await.map_err(|e| self.transport(&e))?;
        serde_json::from_slice(&bytes).map_err(|e| {
            CliError::Failed(anyhow::anyhow!(
                "unexpected answer from {url}: {e}\n  note: is {} a gantry server of the same \
                 version as this CLI?",
                self.base()
            ))
        })
    }

    /// A failure to talk to the server at all.
    pub fn transport(&self, err: &reqwest::Error) -> CliError {
        if err.is_connect() || err.is_timeout() {
            return CliError::Failed(anyhow::anyhow!(
                "cannot reach the gantry server at {}: {}\n  help: start one with `gantry serve`, \
                 or point --server (or GANTRY_SERVER) at yours",
                self.base(),
                root_cause(err)
            ));
        }
        CliError::Failed(anyhow::anyhow!(
            "request to {} failed: {}",
            self.base(),
            cause_chain(err)
        ))
    }

    /// An error status, with the server's `{"error": …}` message when it sent one.
    pub async fn refused(&self, resp: Response) -> CliError {
        let status = resp.status();
        let text = resp.text().await.unwrap_or_default();
        let message = serde_json::from_str::<BTreeMap<String, serde_json::Value>>(&text)
            .ok()
            .and_then(|m| m.get("error").and_then(|v| v.as_str()).map(str::to_owned))
            .unwrap_or_else(|| text.trim().to_owned());
        refusal(status, &message, self.base(), self.token.is_some())
    }
}

/// The words for an error status. Requests the server refused as invalid (400, 404, 409,
/// 422) are exit 2 like any invalid input; the others mean gantry could not do its work.
pub fn refusal(status: StatusCode, message: &str, base: &str, has_token: bool) -> CliError {
    let message = if message.is_empty() {
        status
            .canonical_reason()
            .unwrap_or("no reason given")
            .to_lowercase()
    } else {
        message.to_owned()
    };
    match status {
        StatusCode::UNAUTHORIZED => {
            let help = if has_token {
                "the token given (--token or GANTRY_TOKEN) is not valid on this server; \
                 `gantry token rotate --data DIR` on the server makes a new admin token"
            } else {
                "set GANTRY_TOKEN (or --token) to a token of this server: `gantry serve` \
                 prints the admin token on its first start"
            };
            CliError::Failed(anyhow::anyhow!(
                "{base} refused the request: not authorized ({message})\n  help: {help}"
            ))
        }
        StatusCode::FORBIDDEN => CliError::Failed(anyhow::anyhow!(
            "{base} refused the request: forbidden ({message})\n  help: this token may not do \
             this; use an admin token"
        )),
        // Diagnostics from the server (an invalid parameter) already start with `error:`.
        s if s.is_client_error() && message.starts_with("error") => CliError::invalid(message),
        s if s.is_client_error() => CliError::invalid(format!("error: {message}")),
        s => CliError::Failed(anyhow::anyhow!(
            "{base} failed: {message} (HTTP {})",
            s.as_u16()
        )),
    }
}

/// `a: b: c` for an error and its sources (reqwest's top-level message alone says little).
fn cause_chain(err: &(dyn std::error::Error + 'static)) -> String {
    let mut text = err.to_string();
    let mut source = err.source();
    while let Some(s) = source {
        let more = s.to_string();
        if !text.contains(&more) {
            text.push_str(": ");
            text.push_str(&more);
        }
        source = s.source();
    }
    text
}

/// The innermost error ("Connection refused (os error 111)"): for a connection that
/// failed, the layers above it only repeat the URL.
fn root_cause(err: &(dyn std::error::Error + 'static)) -> String {
    let mut last = err;
    while let Some(next) = last.source() {
        last = next;
    }
    last.to_string()
}

/// A current-thread runtime for one client command.
pub fn block_on<T>(
    fut: impl std::future::Future<Output = Result<T, CliError>>,
) -> Result<T, CliError> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| CliError::Failed(anyhow::anyhow!("cannot start the async runtime: {e}")))?;
    runtime.block_on(fut)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn api(server: &str) -> Result<Api, CliError> {
        Api::new(&ServerArgs {
            server: server.to_owned(),
            token: None,
        })
    }

    #[test]
    fn urls_encode_segments_and_keep_prefixes() {
        for (server, segments, want) in [
            (
                "http://127.0.0.1:8080",
                &["api", "repos", "go-auth"][..],
                "http://127.0.0.1:8080/api/repos/go-auth",
            ),
            (
                "localhost:9000/",
                &["api", "runs", "3", "jobs", "build (GO=1.18)", "log"],
                "http://localhost:9000/api/runs/3/jobs/build%20(GO=1.18)/log",
            ),
            (
                "https://ci.example.com/gantry/",
                &["api", "repos", "a/b"],
                "https://ci.example.com/gantry/api/repos/a%2Fb",
            ),
        ] {
            let api = api(server).expect("valid");
            assert_eq!(api.url(segments).as_str(), want, "{server}");
        }
    }

    #[test]
    fn bad_server_urls_are_usage_errors() {
        for server in ["ftp://x", "http://", "::"] {
            let err = api(server).err().expect("invalid");
            assert_eq!(err.code(), 2, "{server}");
        }
    }

    #[test]
    fn refusals_say_what_to_do() {
        let base = "http://127.0.0.1:8080";
        let check = |status: u16, message: &str, token: bool, code: u8, want: &str| {
            let status = StatusCode::from_u16(status).expect("status");
            let err = refusal(status, message, base, token);
            assert_eq!(err.code(), code, "{status}");
            let text = err.to_string();
            assert!(text.contains(want), "{status}: {text}");
        };
        check(401, "missing token", false, 1, "set GANTRY_TOKEN");
        check(401, "bad token", true, 1, "gantry token rotate");
        check(
            422,
            "unknown parameter \"X\"",
            true,
            2,
            "error: unknown parameter",
        );
        check(404, "", true, 2, "error: not found");
        check(
            422,
            "error: bad param\n --> gantry.yml:3:1",
            true,
            2,
            "error: bad param\n",
        );
        check(
            500,
            "database error",
            true,
            1,
            "failed: database error (HTTP 500)",
        );
    }

    #[test]
    fn runs_parse_with_missing_fields() {
        let run: Run = serde_json::from_str(
            r#"{"id":3,"pipeline":"p","number":2,"state":"running","ref":"refs/heads/x",
                "future_field":1,"jobs":[{"idx":0,"key":"a","name":"a","state":"queued"}]}"#,
        )
        .expect("parses");
        assert_eq!(run.git_ref, "refs/heads/x");
        assert_eq!(run.title(), "p #2");
        assert!(!run.is_final());
        assert_eq!(run.jobs[0].key, "a");
    }
}
