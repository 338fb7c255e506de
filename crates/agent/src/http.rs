//! [`HttpJobSource`]: the executor contract over HTTP — how a remote agent leases jobs
//! from a `gantry serve` and reports back, through the routes of
//! [`gantry_protocol::AGENT_API`].
//!
//! - Every call carries the agent token (`Authorization: Bearer`).
//! - Refusals come back as the same [`LeaseError`] the server's job source raised (the
//!   status and `{"error": CODE, …}` body are mapped back by
//!   [`LeaseError::from_response`]); a server that cannot be reached, times out or
//!   answers 5xx is [`LeaseError::Unavailable`], which the executor loop retries with a
//!   growing pause.
//! - The first `lease` says hello first (once): an agent of another protocol version is
//!   refused there with a message naming both versions, and the server's limits are
//!   learnt (largest artifact, largest log batch). The hello also names the leases an
//!   earlier run of the agent left ([`HttpJobSource::abandon_at_hello`]).
//! - Artifact blobs stream from and to files; nothing is held whole in memory. Cache
//!   entries are manifests (JSON) whose blobs travel as artifacts; the key is one
//!   percent-encoded path segment.
//!
//! Timeouts: 10 s to connect; a lease request waits up to the long-poll time plus 30 s;
//! other JSON calls 30 s (heartbeats 10 s); transfers of blobs stop when no byte moved for
//! 60 s, and uploads when they take longer than a minute plus 2 s per MiB.

use std::path::Path;
use std::sync::Mutex;
use std::time::Duration;

use gantry_engine::artifacts::Manifest;
use gantry_protocol::{
    AGENT_API, AgentHello, ExecutorInfo, Finish, GANTRY_VERSION, JobSource, Lease, LeaseError,
    LeaseId, LeaseRequest, LeaseState, LogChunk, MAX_LEASE_WAIT_MS, ServerHello, check_cache_key,
};
use reqwest::header::{AUTHORIZATION, CONTENT_LENGTH, CONTENT_TYPE, HeaderValue};
use reqwest::{Method, RequestBuilder, Response, StatusCode, Url};
use tokio::io::AsyncWriteExt;

const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// Longest a transfer may go without moving a byte (also bounds a long poll's silence).
const READ_TIMEOUT: Duration = Duration::from_secs(60);
const CALL_TIMEOUT: Duration = Duration::from_secs(30);
const HEARTBEAT_TIMEOUT: Duration = Duration::from_secs(10);
/// Added to the long-poll wait for a lease request's timeout.
const LEASE_GRACE: Duration = Duration::from_secs(30);

/// A [`JobSource`] on a remote server, over HTTP (see the module docs).
#[derive(Debug)]
pub struct HttpJobSource {
    http: reqwest::Client,
    base: Url,
    auth: HeaderValue,
    hello: Mutex<Option<ServerHello>>,
    /// Leases of an earlier run, for the next hello.
    abandoned: Mutex<Vec<LeaseId>>,
}

impl HttpJobSource {
    /// A source on the server at `server_url` (`http://ci.example.com:8080`), using the
    /// agent token `token`. Nothing is sent yet. An URL that is not `http(s)://…` or a
    /// token that cannot be a header value is [`LeaseError::Invalid`].
    pub fn new(server_url: &str, token: String) -> Result<HttpJobSource, LeaseError> {
        let base = Url::parse(server_url.trim())
            .map_err(|e| LeaseError::Invalid(format!("server URL {server_url:?}: {e}")))?;
        if !matches!(base.scheme(), "http" | "https") || base.cannot_be_a_base() {
            return Err(LeaseError::Invalid(format!(
                "server URL {server_url:?}: expected an http:// or https:// URL"
            )));
        }
        let mut auth =
            HeaderValue::from_str(&format!("Bearer {}", token.trim())).map_err(|_| {
                LeaseError::Invalid("the token contains characters a header cannot carry".into())
            })?;
        auth.set_sensitive(true);
        let http = reqwest::Client::builder()
            .connect_timeout(CONNECT_TIMEOUT)
            .read_timeout(READ_TIMEOUT)
            .user_agent(format!("gantry-agent/{GANTRY_VERSION}"))
            .build()
            .map_err(|e| LeaseError::Unavailable(format!("cannot set up HTTP: {}", chain(&e))))?;
        Ok(HttpJobSource {
            http,
            base,
            auth,
            hello: Mutex::new(None),
            abandoned: Mutex::new(Vec::new()),
        })
    }

    /// The server's base URL.
    pub fn server_url(&self) -> &str {
        self.base.as_str().trim_end_matches('/')
    }

    /// The handshake: tells the server who this executor is and learns its protocol
    /// version and limits. An executor of another protocol version is refused with
    /// [`LeaseError::Incompatible`], whose message names both versions; a bad or revoked
    /// token with [`LeaseError::Unauthorized`]. The answer is kept for later calls.
    pub async fn hello(&self, me: &ExecutorInfo) -> Result<ServerHello, LeaseError> {
        let body = AgentHello {
            executor: me.clone(),
            abandoned: self
                .abandoned
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .clone(),
        };
        let resp = self
            .send(
                self.request(Method::POST, &["hello"])
                    .timeout(CALL_TIMEOUT)
                    .json(&body),
            )
            .await?;
        // A server without the agent routes (too old, or not gantry) answers 404.
        if resp.status() == StatusCode::NOT_FOUND {
            return Err(LeaseError::Incompatible {
                executor: me.protocol,
                supported: format!(
                    "no agent protocol ({} answers 404 to {AGENT_API}/hello)",
                    self.server_url()
                ),
            });
        }
        let resp = self.check(resp).await?;
        let hello: ServerHello = self.json(resp).await?;
        *self.hello.lock().unwrap_or_else(|e| e.into_inner()) = Some(hello.clone());
        // Said once is enough: the server has dealt with them.
        self.abandoned
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clear();
        Ok(hello)
    }

    /// Leases an earlier run of this agent left unfinished ([`crate::earlier_leases`]),
    /// to be named in the next hello so that the server expires them at once
    /// ([`AgentHello::abandoned`]).
    pub fn abandon_at_hello(&self, leases: Vec<LeaseId>) {
        *self.abandoned.lock().unwrap_or_else(|e| e.into_inner()) = leases;
    }

    /// What the last `hello` answered, if one was made.
    pub fn server_hello(&self) -> Option<ServerHello> {
        self.hello.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// `AGENT_API/segments…`, each segment percent-encoded.
    fn url(&self, segments: &[&str]) -> Url {
        let mut url = self.base.clone();
        if let Ok(mut path) = url.path_segments_mut() {
            path.pop_if_empty();
            path.extend(AGENT_API.split('/').filter(|s| !s.is_empty()));
            path.extend(segments);
        }
        url
    }

    fn request(&self, method: Method, segments: &[&str]) -> RequestBuilder {
        self.http
            .request(method, self.url(segments))
            .header(AUTHORIZATION, self.auth.clone())
    }

    fn lease_request(&self, method: Method, lease: &LeaseId, what: &[&str]) -> RequestBuilder {
        let mut segments = vec!["leases", lease.0.as_str()];
        segments.extend_from_slice(what);
        self.request(method, &segments)
    }

    async fn send(&self, req: RequestBuilder) -> Result<Response, LeaseError> {
        req.send().await.map_err(|e| self.transport(&e))
    }

    /// The response if it is a success, else the refusal it stands for.
    async fn check(&self, resp: Response) -> Result<Response, LeaseError> {
        if resp.status().is_success() {
            return Ok(resp);
        }
        let status = resp.status().as_u16();
        let body = resp.bytes().await.unwrap_or_default();
        Err(LeaseError::from_response(status, &body))
    }

    async fn json<T: serde::de::DeserializeOwned>(&self, resp: Response) -> Result<T, LeaseError> {
        let bytes = resp.bytes().await.map_err(|e| self.transport(&e))?;
        serde_json::from_slice(&bytes).map_err(|e| {
            LeaseError::Invalid(format!(
                "the server's answer cannot be read ({e}); is it the same gantry version?"
            ))
        })
    }

    /// A call that answers `204` (or any success) with nothing to read.
    async fn call(&self, req: RequestBuilder) -> Result<(), LeaseError> {
        let resp = self.send(req).await?;
        self.check(resp).await.map(drop)
    }

    fn transport(&self, e: &reqwest::Error) -> LeaseError {
        let what = if e.is_timeout() {
            "timed out"
        } else if e.is_connect() {
            "cannot connect"
        } else {
            "request failed"
        };
        LeaseError::Unavailable(format!("{} {what}: {}", self.server_url(), chain(e)))
    }

    /// The refusal of a server without the cache routes (a gantry from before them): the
    /// job runs without its cache.
    fn no_caches(&self) -> LeaseError {
        LeaseError::Invalid(format!(
            "{} keeps no caches for agents (it answers 404 to {AGENT_API}/leases/…/caches; \
             a gantry server older than this agent?)",
            self.server_url()
        ))
    }

    /// The log batch limit the server announced, if known.
    fn log_limit(&self) -> Option<usize> {
        self.server_hello()
            .map(|h| usize::try_from(h.max_log_batch_bytes).unwrap_or(usize::MAX))
    }
}

#[async_trait::async_trait]
impl JobSource for HttpJobSource {
    async fn lease(&self, me: &ExecutorInfo, wait: Duration) -> Result<Option<Lease>, LeaseError> {
        if self.server_hello().is_none() {
            self.hello(me).await?;
        }
        let wait_ms = u64::try_from(wait.as_millis())
            .unwrap_or(u64::MAX)
            .min(MAX_LEASE_WAIT_MS);
        let body = LeaseRequest {
            executor: me.clone(),
            wait_ms,
        };
        let req = self
            .request(Method::POST, &["lease"])
            .timeout(Duration::from_millis(wait_ms) + LEASE_GRACE)
            .json(&body);
        let resp = self.check(self.send(req).await?).await?;
        if resp.status() == StatusCode::NO_CONTENT {
            return Ok(None);
        }
        self.json(resp).await.map(Some)
    }

    async fn heartbeat(&self, lease: &LeaseId) -> Result<LeaseState, LeaseError> {
        let req = self
            .lease_request(Method::POST, lease, &["heartbeat"])
            .timeout(HEARTBEAT_TIMEOUT);
        let resp = self.check(self.send(req).await?).await?;
        self.json(resp).await
    }

    async fn append_log(&self, lease: &LeaseId, chunk: LogChunk) -> Result<(), LeaseError> {
        let body = fit_batch(chunk, self.log_limit())?;
        let req = self
            .lease_request(Method::POST, lease, &["logs"])
            .timeout(CALL_TIMEOUT)
            .header(CONTENT_TYPE, "application/json")
            .body(body);
        self.call(req).await
    }

    async fn put_artifact(
        &self,
        lease: &LeaseId,
        digest: &str,
        path: &Path,
    ) -> Result<(), LeaseError> {
        let file = tokio::fs::File::open(path)
            .await
            .map_err(|e| LeaseError::Invalid(format!("cannot read {}: {e}", path.display())))?;
        let size = file
            .metadata()
            .await
            .map_err(|e| LeaseError::Invalid(format!("cannot read {}: {e}", path.display())))?
            .len();
        if let Some(limit) = self.server_hello().map(|h| h.max_artifact_bytes)
            && size > limit
        {
            return Err(LeaseError::TooLarge(format!(
                "artifact blob {digest} is {size} bytes; the server accepts at most {limit}"
            )));
        }
        let req = self
            .lease_request(Method::PUT, lease, &["artifacts", digest])
            .timeout(Duration::from_secs(60) + Duration::from_secs(2 * (size >> 20)))
            .header(CONTENT_TYPE, "application/octet-stream")
            .header(CONTENT_LENGTH, size)
            .body(reqwest::Body::from(file));
        self.call(req).await
    }

    async fn get_artifact(
        &self,
        lease: &LeaseId,
        digest: &str,
        dest: &Path,
    ) -> Result<(), LeaseError> {
        let req = self.lease_request(Method::GET, lease, &["artifacts", digest]);
        let mut resp = self.check(self.send(req).await?).await?;
        let local = |e: std::io::Error| {
            LeaseError::Unavailable(format!("cannot write {}: {e}", dest.display()))
        };
        if let Some(dir) = dest.parent() {
            tokio::fs::create_dir_all(dir).await.map_err(local)?;
        }
        // Into a partial file first: `dest` exists only once the whole blob arrived.
        let mut partial = dest.as_os_str().to_owned();
        partial.push(".part");
        let partial = std::path::PathBuf::from(partial);
        let result = async {
            let mut file = tokio::fs::File::create(&partial).await.map_err(local)?;
            while let Some(bytes) = resp.chunk().await.map_err(|e| self.transport(&e))? {
                file.write_all(&bytes).await.map_err(local)?;
            }
            file.flush().await.map_err(local)?;
            drop(file);
            tokio::fs::rename(&partial, dest).await.map_err(local)
        }
        .await;
        if result.is_err() {
            let _ = tokio::fs::remove_file(&partial).await;
        }
        result
    }

    async fn get_cache(&self, lease: &LeaseId, key: &str) -> Result<Option<Manifest>, LeaseError> {
        check_cache_key(key)?;
        let req = self
            .lease_request(Method::GET, lease, &["caches", key])
            .timeout(CALL_TIMEOUT);
        let resp = self.send(req).await?;
        if resp.status() == StatusCode::NOT_FOUND {
            return Err(self.no_caches());
        }
        let resp = self.check(resp).await?;
        if resp.status() == StatusCode::NO_CONTENT {
            return Ok(None);
        }
        self.json(resp).await.map(Some)
    }

    async fn put_cache(
        &self,
        lease: &LeaseId,
        key: &str,
        manifest: Manifest,
    ) -> Result<bool, LeaseError> {
        check_cache_key(key)?;
        let req = self
            .lease_request(Method::PUT, lease, &["caches", key])
            .timeout(CALL_TIMEOUT)
            .json(&manifest);
        let resp = self.send(req).await?;
        if resp.status() == StatusCode::NOT_FOUND {
            return Err(self.no_caches());
        }
        let resp = self.check(resp).await?;
        Ok(resp.status() == StatusCode::CREATED)
    }

    async fn finish(&self, lease: &LeaseId, finish: Finish) -> Result<(), LeaseError> {
        let req = self
            .lease_request(Method::POST, lease, &["finish"])
            .timeout(CALL_TIMEOUT)
            .json(&finish);
        self.call(req).await
    }
}

/// The JSON of `chunk`, within `limit` bytes when one is known: lines of a batch that is
/// too large are shortened (each says so) rather than the batch being refused and lost.
fn fit_batch(mut chunk: LogChunk, limit: Option<usize>) -> Result<Vec<u8>, LeaseError> {
    let encode = |c: &LogChunk| {
        serde_json::to_vec(c).map_err(|e| LeaseError::Invalid(format!("log batch: {e}")))
    };
    let body = encode(&chunk)?;
    let Some(limit) = limit.filter(|l| body.len() > *l) else {
        return Ok(body);
    };
    // What one line may take: its share of the limit, less room for the JSON around it.
    let share = (limit / chunk.lines.len().max(1))
        .saturating_sub(256)
        .max(64);
    for line in &mut chunk.lines {
        if line.text.len() > share {
            let mut cut = share;
            while !line.text.is_char_boundary(cut) {
                cut -= 1;
            }
            line.text.truncate(cut);
            line.text
                .push_str(" … [line shortened: the log batch was over the server's limit]");
        }
    }
    encode(&chunk)
}

/// `e` and its causes, joined with `: `.
fn chain(e: &(dyn std::error::Error + 'static)) -> String {
    gantry_engine::error_chain(e)
}

#[cfg(test)]
mod tests {
    use super::*;
    use gantry_protocol::{LogStream, WireLogLine};

    fn line(text: &str) -> WireLogLine {
        WireLogLine {
            at_ms: 1,
            stream: LogStream::Stdout,
            source: None,
            text: text.into(),
        }
    }

    #[test]
    fn batches_over_the_limit_are_shortened_not_lost() {
        let chunk = LogChunk {
            seq: 3,
            lines: vec![line("short"), line(&"é".repeat(5000))],
        };
        let whole = fit_batch(chunk.clone(), None).expect("encode");
        assert_eq!(
            serde_json::from_slice::<LogChunk>(&whole).expect("decode"),
            chunk
        );
        let fitted = fit_batch(chunk, Some(2048)).expect("encode");
        assert!(fitted.len() <= 2048, "{}", fitted.len());
        let back: LogChunk = serde_json::from_slice(&fitted).expect("decode");
        assert_eq!(back.seq, 3);
        assert_eq!(back.lines[0].text, "short");
        assert!(back.lines[1].text.ends_with("over the server's limit]"));
    }

    #[test]
    fn urls_keep_a_base_path_and_encode_segments() {
        let check = |base: &str, expect: &str| {
            let s = HttpJobSource::new(base, "t".into()).expect("source");
            let url = s.url(&["leases", "a/b", "heartbeat"]);
            assert_eq!(url.as_str(), expect, "{base}");
        };
        check(
            "http://127.0.0.1:8080",
            "http://127.0.0.1:8080/api/agent/v1/leases/a%2Fb/heartbeat",
        );
        check(
            "https://ci.example.com/gantry/",
            "https://ci.example.com/gantry/api/agent/v1/leases/a%2Fb/heartbeat",
        );
    }

    #[test]
    fn bad_urls_and_tokens_are_invalid() {
        let check = |url: &str, token: &str| {
            let r = HttpJobSource::new(url, token.into());
            assert!(matches!(r, Err(LeaseError::Invalid(_))), "{url} {r:?}");
        };
        check("ftp://example.com", "t");
        check("not a url", "t");
        check("http://127.0.0.1:1", "line\nbreak");
    }
}
