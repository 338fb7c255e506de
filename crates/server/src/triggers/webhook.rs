//! `POST /hooks/{repo}`: checking that a push notification really comes from the forge
//! that knows the repository's webhook secret, and reading what was pushed.
//!
//! Supported: GitHub (`X-GitHub-Event: push`, `X-Hub-Signature-256: sha256=<hex HMAC>`),
//! Gitea and Forgejo (`X-Gitea-Event`/`X-Forgejo-Event: push`, `X-Gitea-Signature`/
//! `X-Forgejo-Signature: <hex HMAC>`), and GitLab (`X-Gitlab-Event: Push Hook` or
//! `Tag Push Hook`, `X-Gitlab-Token: <secret>`). HMACs are SHA-256 over the raw body and
//! every comparison is constant-time. The signature is checked before anything else in the
//! request is believed, so an unsigned request learns nothing but "unauthorized".
//!
//! Replays are not detected here: a signature covers the body, not the delivery, so the
//! server deduplicates by [`PushEvent::delivery`] and by ref + commit.

use hmac::{Hmac, Mac};
use http::{HeaderMap, StatusCode};
use serde::Deserialize;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

/// Bodies larger than this are refused without being read further (GitHub caps payloads
/// at 25 MB but push payloads of normal pushes are a few kB; a limit keeps a flood of
/// huge forged bodies from costing more than a hash each).
pub const MAX_BODY_BYTES: usize = 5 * 1024 * 1024;

/// The forge that sent a webhook.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Provider {
    /// github.com or GitHub Enterprise.
    GitHub,
    /// Gitea.
    Gitea,
    /// Forgejo (a Gitea fork; sends Gitea's headers too).
    Forgejo,
    /// gitlab.com or a self-hosted GitLab.
    GitLab,
}

impl Provider {
    /// The forge's name as people write it.
    pub fn as_str(self) -> &'static str {
        match self {
            Provider::GitHub => "GitHub",
            Provider::Gitea => "Gitea",
            Provider::Forgejo => "Forgejo",
            Provider::GitLab => "GitLab",
        }
    }
}

impl std::fmt::Display for Provider {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A verified push of a branch or a tag.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PushEvent {
    /// Who sent it.
    pub provider: Provider,
    /// The forge's delivery id (the same for a redelivery), for deduplication.
    pub delivery: Option<String>,
    /// The full ref pushed: `refs/heads/X` or `refs/tags/Y`.
    pub git_ref: String,
    /// The commit the ref points at now (all zeros when deleted).
    pub after: String,
    /// The commit it pointed at before (all zeros when created).
    pub before: String,
    /// The ref was deleted (nothing to build).
    pub deleted: bool,
    /// Who pushed (login or name; `unknown` when the payload does not say).
    pub pusher: String,
    /// The repository's clone URL, when the payload names one.
    pub repo_url: Option<String>,
}

impl PushEvent {
    /// The branch, for a push to `refs/heads/…`.
    pub fn branch(&self) -> Option<&str> {
        self.git_ref.strip_prefix("refs/heads/")
    }

    /// The tag, for a push of `refs/tags/…`.
    pub fn tag(&self) -> Option<&str> {
        self.git_ref.strip_prefix("refs/tags/")
    }
}

/// Why a webhook request starts nothing.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum WebhookError {
    /// No header of a supported forge names the event.
    #[error(
        "not a webhook from a supported forge (expected X-GitHub-Event, X-Gitea-Event, X-Forgejo-Event or X-Gitlab-Event)"
    )]
    UnknownProvider,
    /// The repository has no webhook secret, so no request can be verified.
    #[error("no webhook secret is configured for this repository")]
    NoSecret,
    /// The request carries no signature or token.
    #[error("missing {header} header")]
    MissingSignature {
        /// The forge.
        provider: Provider,
        /// The header that should have carried it.
        header: &'static str,
    },
    /// The signature or token does not match the repository's secret.
    #[error("{provider} webhook signature does not match the repository's secret")]
    BadSignature {
        /// The forge.
        provider: Provider,
    },
    /// A verified request for an event that starts nothing (`ping`, issues, …): answer
    /// success so the forge does not retry it.
    #[error("ignored {provider} event {event:?}")]
    Ignored {
        /// The forge.
        provider: Provider,
        /// The event as the forge named it.
        event: String,
    },
    /// A verified request whose body is not a push payload.
    #[error("malformed {provider} push payload: {message}")]
    Malformed {
        /// The forge.
        provider: Provider,
        /// What is wrong.
        message: String,
    },
    /// The body is larger than [`MAX_BODY_BYTES`].
    #[error("webhook body of {size} bytes is larger than the limit of {limit} bytes")]
    TooLarge {
        /// The body's size.
        size: usize,
        /// The limit.
        limit: usize,
    },
}

impl WebhookError {
    /// The HTTP status to answer with: 202 for an ignored event, 401 for a missing or bad
    /// signature, 403 when the repository has no secret, 413 for a huge body, else 400.
    pub fn status(&self) -> StatusCode {
        match self {
            WebhookError::Ignored { .. } => StatusCode::ACCEPTED,
            WebhookError::MissingSignature { .. } | WebhookError::BadSignature { .. } => {
                StatusCode::UNAUTHORIZED
            }
            WebhookError::NoSecret => StatusCode::FORBIDDEN,
            WebhookError::TooLarge { .. } => StatusCode::PAYLOAD_TOO_LARGE,
            WebhookError::UnknownProvider | WebhookError::Malformed { .. } => {
                StatusCode::BAD_REQUEST
            }
        }
    }
}

/// Checks a webhook request against the repository's `secret` and reads the push it
/// reports. See the module docs for the headers of each forge.
pub fn verify_and_parse(
    headers: &HeaderMap,
    body: &[u8],
    secret: Option<&str>,
) -> Result<PushEvent, WebhookError> {
    if body.len() > MAX_BODY_BYTES {
        return Err(WebhookError::TooLarge {
            size: body.len(),
            limit: MAX_BODY_BYTES,
        });
    }
    let (provider, event) = detect(headers)?;
    let secret = secret
        .filter(|s| !s.is_empty())
        .ok_or(WebhookError::NoSecret)?;
    verify(provider, headers, body, secret)?;
    let is_push = match provider {
        Provider::GitLab => event == "Push Hook" || event == "Tag Push Hook",
        _ => event == "push",
    };
    if !is_push {
        return Err(WebhookError::Ignored { provider, event });
    }
    let delivery_header = match provider {
        Provider::GitHub => "x-github-delivery",
        Provider::Gitea => "x-gitea-delivery",
        Provider::Forgejo => "x-forgejo-delivery",
        Provider::GitLab => "x-gitlab-event-uuid",
    };
    let delivery = header(headers, delivery_header)
        .or_else(|| (provider == Provider::Forgejo).then(|| header(headers, "x-gitea-delivery"))?)
        .map(str::to_string);
    parse_payload(provider, body, delivery)
}

/// The first non-empty, visible-ASCII value of `name`.
fn header<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get(name)
        .and_then(|v| v.to_str().ok())
        .map(str::trim)
        .filter(|v| !v.is_empty())
}

/// Which forge sent the request and the event it names. Forgejo sends Gitea's headers as
/// well and Gitea sends GitHub's, so the most specific header wins.
fn detect(headers: &HeaderMap) -> Result<(Provider, String), WebhookError> {
    let order = [
        ("x-forgejo-event", Provider::Forgejo),
        ("x-gitea-event", Provider::Gitea),
        ("x-gitlab-event", Provider::GitLab),
        ("x-github-event", Provider::GitHub),
    ];
    order
        .iter()
        .find_map(|(name, p)| header(headers, name).map(|e| (*p, e.to_string())))
        .ok_or(WebhookError::UnknownProvider)
}

fn verify(
    provider: Provider,
    headers: &HeaderMap,
    body: &[u8],
    secret: &str,
) -> Result<(), WebhookError> {
    let bad = WebhookError::BadSignature { provider };
    match provider {
        Provider::GitHub => {
            let sig =
                header(headers, "x-hub-signature-256").ok_or(WebhookError::MissingSignature {
                    provider,
                    header: "X-Hub-Signature-256",
                })?;
            let hex_sig = sig.strip_prefix("sha256=").ok_or(bad.clone())?;
            check_hmac(secret, body, hex_sig).then_some(()).ok_or(bad)
        }
        Provider::Gitea | Provider::Forgejo => {
            let own = if provider == Provider::Forgejo {
                header(headers, "x-forgejo-signature")
                    .or_else(|| header(headers, "x-gitea-signature"))
            } else {
                header(headers, "x-gitea-signature")
            };
            // Gitea also sends GitHub's header; accept it when its own is absent.
            let hex_sig = match own {
                Some(sig) => sig,
                None => match header(headers, "x-hub-signature-256") {
                    Some(sig) => sig.strip_prefix("sha256=").ok_or(bad.clone())?,
                    None => {
                        return Err(WebhookError::MissingSignature {
                            provider,
                            header: if provider == Provider::Forgejo {
                                "X-Forgejo-Signature"
                            } else {
                                "X-Gitea-Signature"
                            },
                        });
                    }
                },
            };
            check_hmac(secret, body, hex_sig).then_some(()).ok_or(bad)
        }
        Provider::GitLab => {
            let token =
                header(headers, "x-gitlab-token").ok_or(WebhookError::MissingSignature {
                    provider,
                    header: "X-Gitlab-Token",
                })?;
            // Hash both sides first so the comparison takes the same time whatever the
            // lengths are.
            let same: bool = Sha256::digest(token.as_bytes())
                .ct_eq(&Sha256::digest(secret.as_bytes()))
                .into();
            same.then_some(()).ok_or(bad)
        }
    }
}

/// Whether `hex_sig` is the hex HMAC-SHA256 of `body` under `secret` (constant-time).
fn check_hmac(secret: &str, body: &[u8], hex_sig: &str) -> bool {
    let Ok(sig) = hex::decode(hex_sig) else {
        return false;
    };
    let Ok(mut mac) = Hmac::<Sha256>::new_from_slice(secret.as_bytes()) else {
        return false;
    };
    mac.update(body);
    mac.verify_slice(&sig).is_ok()
}

/// The fields gantry reads, as GitHub, Gitea/Forgejo and GitLab name them.
#[derive(Debug, Deserialize)]
struct Payload {
    #[serde(rename = "ref")]
    git_ref: Option<String>,
    before: Option<String>,
    after: Option<String>,
    /// GitHub only.
    deleted: Option<bool>,
    /// GitHub: `{name, email}`; Gitea: `{login, username, full_name}`.
    pusher: Option<Person>,
    /// GitHub and Gitea.
    sender: Option<Person>,
    /// GitLab.
    user_username: Option<String>,
    /// GitLab.
    user_name: Option<String>,
    repository: Option<Repository>,
    /// GitLab.
    project: Option<Repository>,
}

#[derive(Debug, Deserialize)]
struct Person {
    login: Option<String>,
    username: Option<String>,
    name: Option<String>,
}

#[derive(Debug, Deserialize)]
struct Repository {
    /// GitHub and Gitea.
    clone_url: Option<String>,
    /// GitLab.
    git_http_url: Option<String>,
}

fn is_commit_id(s: &str) -> bool {
    matches!(s.len(), 40 | 64) && s.bytes().all(|b| b.is_ascii_hexdigit())
}

fn parse_payload(
    provider: Provider,
    body: &[u8],
    delivery: Option<String>,
) -> Result<PushEvent, WebhookError> {
    let malformed = |message: String| WebhookError::Malformed { provider, message };
    let p: Payload = serde_json::from_slice(body).map_err(|e| malformed(e.to_string()))?;
    let git_ref = p.git_ref.ok_or_else(|| malformed("no \"ref\"".into()))?;
    if !(git_ref.starts_with("refs/heads/") || git_ref.starts_with("refs/tags/"))
        || git_ref.ends_with('/')
    {
        return Err(malformed(format!(
            "\"ref\" {git_ref:?} is not a branch or tag"
        )));
    }
    let commit = |field: &str, v: Option<String>| {
        let v = v.ok_or_else(|| malformed(format!("no {field:?}")))?;
        if is_commit_id(&v) {
            Ok(v.to_ascii_lowercase())
        } else {
            Err(malformed(format!("{field:?} {v:?} is not a commit id")))
        }
    };
    let after = commit("after", p.after)?;
    let before = commit("before", p.before)?;
    let zero = after.bytes().all(|b| b == b'0');
    let deleted = p.deleted.unwrap_or(false) || zero;
    let person = |p: Option<Person>| p.and_then(|p| p.login.or(p.username).or(p.name));
    let pusher = match provider {
        Provider::GitLab => p.user_username.or(p.user_name),
        _ => person(p.pusher).or_else(|| person(p.sender)),
    }
    .filter(|s| !s.is_empty())
    .unwrap_or_else(|| "unknown".into());
    let repo_url = [p.repository, p.project]
        .into_iter()
        .flatten()
        .find_map(|r| r.clone_url.or(r.git_http_url));
    Ok(PushEvent {
        provider,
        delivery,
        git_ref,
        after,
        before,
        deleted,
        pusher,
        repo_url,
    })
}
