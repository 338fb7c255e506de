//! The HTTP binding of the executor contract: the routes under [`AGENT_API`], their
//! request and answer bodies, and how a [`LeaseError`] travels as a status code plus a
//! JSON body (`{"error": CODE, "message": TEXT, …}`) and back.
//!
//! | route | body | answer |
//! |---|---|---|
//! | `POST {AGENT_API}/hello` | [`AgentHello`] | [`ServerHello`] |
//! | `POST {AGENT_API}/lease` | [`LeaseRequest`] | `200` [`Lease`](crate::Lease), `204` none came |
//! | `POST {AGENT_API}/leases/{lease}/heartbeat` | — | [`LeaseState`](crate::LeaseState) |
//! | `POST {AGENT_API}/leases/{lease}/logs` | [`LogChunk`](crate::LogChunk) | `204` |
//! | `PUT {AGENT_API}/leases/{lease}/artifacts/{sha256}` | the blob | `204` |
//! | `GET {AGENT_API}/leases/{lease}/artifacts/{sha256}` | — | the blob |
//! | `GET {AGENT_API}/leases/{lease}/caches/{key}` | — | `200` a [`Manifest`](gantry_engine::artifacts::Manifest), `204` no entry |
//! | `PUT {AGENT_API}/leases/{lease}/caches/{key}` | a [`Manifest`](gantry_engine::artifacts::Manifest) | `201` saved, `200` an entry was there and is kept |
//! | `POST {AGENT_API}/leases/{lease}/finish` | [`Finish`](crate::Finish) | `204` |
//!
//! A cache key is one percent-encoded path segment (`/` becomes `%2F`), checked by
//! [`check_cache_key`] on both sides.
//!
//! Both sides use these types, so the server and the agent cannot disagree on a field
//! name or a status code.

use serde::{Deserialize, Serialize};

use crate::lease::{ExecutorInfo, LeaseError, LeaseId, PROTOCOL_VERSION};

/// Where the agent routes live on a server.
pub const AGENT_API: &str = "/api/agent/v1";

/// Longest a lease request waits on the server for work, whatever the agent asks: a
/// long poll that outlives proxies' idle timeouts would be cut without an answer.
pub const MAX_LEASE_WAIT_MS: u64 = 30_000;

/// The gantry version these types were built with (server and agent are the same
/// binary, so this is also the version of whoever sends them).
pub const GANTRY_VERSION: &str = env!("CARGO_PKG_VERSION");

/// Longest cache key, in bytes. Keys are names (`deps-` and a hash), not data; a longer
/// one is a mistake in the pipeline.
pub const MAX_CACHE_KEY_BYTES: usize = 512;

/// Checks a resolved cache key: not empty, at most [`MAX_CACHE_KEY_BYTES`], no control
/// characters (it is shown in logs and tables).
pub fn check_cache_key(key: &str) -> Result<(), LeaseError> {
    if key.trim().is_empty() {
        return Err(LeaseError::Invalid("the cache key is empty".into()));
    }
    if key.len() > MAX_CACHE_KEY_BYTES {
        return Err(LeaseError::Invalid(format!(
            "the cache key is {} bytes long; at most {MAX_CACHE_KEY_BYTES} are allowed (put \
             a hash of the inputs in it, not the inputs)",
            key.len()
        )));
    }
    if key.chars().any(char::is_control) {
        return Err(LeaseError::Invalid(format!(
            "the cache key {:?} contains control characters",
            key.chars().take(100).collect::<String>()
        )));
    }
    Ok(())
}

/// Body of `POST {AGENT_API}/hello`: who the agent is (the fields of [`ExecutorInfo`],
/// at the top level) and what an earlier run of it left unfinished.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AgentHello {
    /// Who it is.
    #[serde(flatten)]
    pub executor: ExecutorInfo,
    /// Leases an earlier run of this agent (the same work directory) still held when it
    /// ended — it was killed, or stopped while jobs ran — from its own records. The
    /// server expires at once those that are still current and held under this agent's
    /// name and token, instead of waiting out their time to live: their jobs run again
    /// as a new attempt. Only the agent that was handed a lease knows its id, so no
    /// other agent's leases can be named here, whatever its name.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub abandoned: Vec<LeaseId>,
}

/// The server's answer to `hello`: what it speaks and the limits it enforces.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ServerHello {
    /// The server's [`PROTOCOL_VERSION`].
    pub protocol: u32,
    /// The server's gantry version.
    pub server_version: String,
    /// Seconds a lease lives without a heartbeat.
    pub lease_ttl_secs: u64,
    /// Longest a lease request waits for work on the server, in milliseconds.
    pub max_lease_wait_ms: u64,
    /// Largest artifact blob the server accepts, in bytes.
    pub max_artifact_bytes: u64,
    /// Largest log batch (the JSON body of one `logs` call) the server accepts, in bytes.
    pub max_log_batch_bytes: u64,
    /// How many of the hello's [`AgentHello::abandoned`] leases the server expired now.
    #[serde(default)]
    pub expired_leases: u32,
}

/// Body of `POST {AGENT_API}/lease`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LeaseRequest {
    /// Who asks.
    pub executor: ExecutorInfo,
    /// How long to wait for work, in milliseconds (capped at [`MAX_LEASE_WAIT_MS`]).
    #[serde(default)]
    pub wait_ms: u64,
}

/// The JSON body of a refused agent call. `error` is a stable code
/// ([`LeaseError::code`]); the other fields carry the variant's details.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErrorBody {
    /// `stale`, `unauthorized`, `incompatible`, `invalid`, `too_large` or `unavailable`.
    pub error: String,
    /// The refusal in words, for people (for `stale` and `incompatible` the whole
    /// sentence; for the others the detail, the code saying what kind of refusal it is).
    #[serde(default)]
    pub message: String,
    /// For `stale`: the lease.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lease: Option<String>,
    /// For `stale`: why the lease is no longer valid.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// For `incompatible`: the protocol version the executor sent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub executor: Option<u32>,
    /// For `incompatible`: what the server speaks, in words.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub supported: Option<String>,
}

impl LeaseError {
    /// The refusal of an executor that speaks protocol `executor`, naming what this
    /// build speaks.
    pub fn incompatible(executor: u32) -> LeaseError {
        LeaseError::Incompatible {
            executor,
            supported: format!("protocol {PROTOCOL_VERSION} (gantry {GANTRY_VERSION})"),
        }
    }

    /// The stable code of the error on the wire.
    pub fn code(&self) -> &'static str {
        match self {
            LeaseError::Stale { .. } => "stale",
            LeaseError::Unauthorized(_) => "unauthorized",
            LeaseError::Incompatible { .. } => "incompatible",
            LeaseError::Invalid(_) => "invalid",
            LeaseError::TooLarge(_) => "too_large",
            LeaseError::Unavailable(_) => "unavailable",
        }
    }

    /// The HTTP status the error is answered with.
    pub fn status(&self) -> u16 {
        match self {
            LeaseError::Stale { .. } => 409,
            LeaseError::Unauthorized(_) => 401,
            LeaseError::Incompatible { .. } => 426,
            LeaseError::Invalid(_) => 400,
            LeaseError::TooLarge(_) => 413,
            LeaseError::Unavailable(_) => 503,
        }
    }

    /// The JSON body the error is answered with.
    pub fn body(&self) -> ErrorBody {
        // Variants that are only words carry them as they are (the code says what kind
        // of refusal it is), so that mapping back gives the same error, not one whose
        // words start with the kind twice.
        let message = match self {
            LeaseError::Unauthorized(m)
            | LeaseError::Invalid(m)
            | LeaseError::TooLarge(m)
            | LeaseError::Unavailable(m) => m.clone(),
            LeaseError::Stale { .. } | LeaseError::Incompatible { .. } => self.to_string(),
        };
        let mut body = ErrorBody {
            error: self.code().to_owned(),
            message,
            lease: None,
            reason: None,
            executor: None,
            supported: None,
        };
        match self {
            LeaseError::Stale { lease, reason } => {
                body.lease = Some(lease.clone());
                body.reason = Some(reason.clone());
            }
            LeaseError::Incompatible {
                executor,
                supported,
            } => {
                body.executor = Some(*executor);
                body.supported = Some(supported.clone());
            }
            _ => {}
        }
        body
    }

    /// The error a refused call stands for, from its status and body. A body that is
    /// not an [`ErrorBody`] (a proxy's error page, an older server) is judged by the
    /// status alone, with the body's text as the message.
    pub fn from_response(status: u16, body: &[u8]) -> LeaseError {
        match serde_json::from_slice::<ErrorBody>(body) {
            Ok(b) => b.into_error(status),
            Err(_) => {
                let text = String::from_utf8_lossy(body);
                let text = text.trim();
                let message = if text.is_empty() {
                    format!("HTTP status {status}")
                } else {
                    format!(
                        "HTTP status {status}: {}",
                        text.chars().take(300).collect::<String>()
                    )
                };
                by_status(status, message, None)
            }
        }
    }
}

impl ErrorBody {
    /// The error this body describes (`status` decides when the code is unknown).
    pub fn into_error(self, status: u16) -> LeaseError {
        let ErrorBody {
            error,
            message,
            lease,
            reason,
            executor,
            supported,
        } = self;
        match error.as_str() {
            "stale" => LeaseError::Stale {
                lease: lease.unwrap_or_default(),
                reason: reason.unwrap_or(message),
            },
            "unauthorized" => LeaseError::Unauthorized(message),
            "incompatible" => LeaseError::Incompatible {
                executor: executor.unwrap_or(PROTOCOL_VERSION),
                supported: supported.unwrap_or(message),
            },
            "invalid" => LeaseError::Invalid(message),
            "too_large" => LeaseError::TooLarge(message),
            "unavailable" => LeaseError::Unavailable(message),
            // The server's general API answers `{"error": "message"}`.
            _ if message.is_empty() => by_status(status, error, None),
            _ => by_status(status, message, None),
        }
    }
}

/// The error an HTTP status stands for when the body does not say.
fn by_status(status: u16, message: String, lease: Option<String>) -> LeaseError {
    match status {
        401 | 403 => LeaseError::Unauthorized(message),
        409 | 410 => LeaseError::Stale {
            lease: lease.unwrap_or_default(),
            reason: message,
        },
        413 => LeaseError::TooLarge(message),
        426 => LeaseError::Incompatible {
            executor: PROTOCOL_VERSION,
            supported: message,
        },
        408 | 429 | 500..=599 => LeaseError::Unavailable(message),
        _ => LeaseError::Invalid(message),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errors_round_trip_through_status_and_body() {
        let errors = [
            LeaseError::Stale {
                lease: "ab12".into(),
                reason: "re-leased as attempt 2".into(),
            },
            LeaseError::Unauthorized("invalid or revoked token".into()),
            LeaseError::incompatible(7),
            LeaseError::Invalid("invalid digest \"../x\"".into()),
            LeaseError::TooLarge("blob is 9 bytes, more than the limit of 8".into()),
            LeaseError::Unavailable("database busy".into()),
        ];
        for e in errors {
            let body = serde_json::to_vec(&e.body()).expect("serialize");
            assert_eq!(LeaseError::from_response(e.status(), &body), e, "{e}");
        }
    }

    #[test]
    fn foreign_bodies_are_judged_by_status() {
        let check = |status: u16, body: &str, expect: LeaseError| {
            assert_eq!(
                LeaseError::from_response(status, body.as_bytes()),
                expect,
                "{status} {body}"
            );
        };
        check(
            502,
            "<html>bad gateway</html>",
            LeaseError::Unavailable("HTTP status 502: <html>bad gateway</html>".into()),
        );
        check(
            401,
            r#"{"error": "invalid or revoked token"}"#,
            LeaseError::Unauthorized("invalid or revoked token".into()),
        );
        check(
            404,
            r#"{"error": "no such route: /api/agent/v1/hello"}"#,
            LeaseError::Invalid("no such route: /api/agent/v1/hello".into()),
        );
        check(413, "", LeaseError::TooLarge("HTTP status 413".into()));
    }

    #[test]
    fn cache_keys() {
        let check = |key: &str, ok: bool| {
            assert_eq!(check_cache_key(key).is_ok(), ok, "{key:?}");
        };
        check("deps-0123abcd", true);
        check("a/b c:é", true);
        check(&"k".repeat(MAX_CACHE_KEY_BYTES), true);
        check(&"k".repeat(MAX_CACHE_KEY_BYTES + 1), false);
        check("", false);
        check("  ", false);
        check("line\nbreak", false);
    }

    #[test]
    fn incompatible_names_both_versions() {
        let e = LeaseError::incompatible(2);
        assert_eq!(
            e.to_string(),
            format!(
                "agent speaks protocol 2; this server speaks protocol {PROTOCOL_VERSION} \
                 (gantry {GANTRY_VERSION}) — run an agent of the same gantry version"
            )
        );
    }

    #[test]
    fn a_hello_is_executor_info_plus_what_an_earlier_run_left() {
        let info = ExecutorInfo {
            name: "build-2".into(),
            labels: [("os".to_owned(), "linux".to_owned())].into(),
            capacity: 2,
            protocol: PROTOCOL_VERSION,
        };
        let bare = serde_json::to_value(&info).expect("encode");
        let hello: AgentHello = serde_json::from_value(bare.clone()).expect("decode");
        assert_eq!(
            hello,
            AgentHello {
                executor: info.clone(),
                abandoned: Vec::new()
            }
        );
        assert_eq!(serde_json::to_value(&hello).expect("encode"), bare);
        let with = AgentHello {
            executor: info,
            abandoned: vec![LeaseId("9f86d081".into())],
        };
        let json = serde_json::to_value(&with).expect("encode");
        assert_eq!(json["name"], "build-2");
        assert_eq!(json["abandoned"], serde_json::json!(["9f86d081"]));
        assert_eq!(
            serde_json::from_value::<AgentHello>(json).expect("decode"),
            with
        );
    }
}
