//! Webhook verification and parsing against recorded-style payloads of each forge, signed
//! with real HMACs: what is accepted, and every way a request is refused.

use gantry_server::triggers::webhook::{
    MAX_BODY_BYTES, Provider, PushEvent, WebhookError, verify_and_parse,
};
use hmac::{Hmac, Mac};
use http::{HeaderMap, HeaderName, HeaderValue, StatusCode};
use sha2::Sha256;

const SECRET: &str = "s3cret-for-go-messenger";

/// A payload from `tests/triggers_fixtures/`.
macro_rules! fixture {
    ($name:literal) => {
        include_bytes!(concat!("triggers_fixtures/", $name)).to_vec()
    };
}

fn hmac_hex(secret: &str, body: &[u8]) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).expect("any key length");
    mac.update(body);
    hex::encode(mac.finalize().into_bytes())
}

fn headers(pairs: &[(&str, String)]) -> HeaderMap {
    let mut map = HeaderMap::new();
    for (name, value) in pairs {
        map.insert(
            HeaderName::from_bytes(name.as_bytes()).expect("header name"),
            HeaderValue::from_str(value).expect("header value"),
        );
    }
    map
}

/// What GitHub sends for `body` signed with `secret`.
fn github(event: &str, body: &[u8], secret: &str) -> HeaderMap {
    headers(&[
        ("X-GitHub-Event", event.into()),
        (
            "X-GitHub-Delivery",
            "72d3162e-cc78-11e3-81ab-4c9367dc0958".into(),
        ),
        ("X-GitHub-Hook-ID", "12345678".into()),
        (
            "X-Hub-Signature-256",
            format!("sha256={}", hmac_hex(secret, body)),
        ),
        ("Content-Type", "application/json".into()),
        ("User-Agent", "GitHub-Hookshot/044aadd".into()),
    ])
}

/// What Gitea sends: its own event and signature headers and GitHub's.
fn gitea(event: &str, body: &[u8], secret: &str) -> HeaderMap {
    let sig = hmac_hex(secret, body);
    headers(&[
        ("X-Gitea-Event", event.into()),
        (
            "X-Gitea-Delivery",
            "f6266f16-1bf3-46a5-9ea4-602e06ead473".into(),
        ),
        ("X-Gitea-Signature", sig.clone()),
        ("X-Gogs-Event", event.into()),
        ("X-GitHub-Event", event.into()),
        ("X-Hub-Signature-256", format!("sha256={sig}")),
    ])
}

/// What Forgejo sends: Forgejo's headers plus Gitea's.
fn forgejo(event: &str, body: &[u8], secret: &str) -> HeaderMap {
    let sig = hmac_hex(secret, body);
    headers(&[
        ("X-Forgejo-Event", event.into()),
        (
            "X-Forgejo-Delivery",
            "0b3b1a0e-5d1f-4c59-9a47-3c1b0f6d2e11".into(),
        ),
        ("X-Forgejo-Signature", sig.clone()),
        ("X-Gitea-Event", event.into()),
        ("X-Gitea-Signature", sig),
    ])
}

fn gitlab(event: &str, token: &str) -> HeaderMap {
    headers(&[
        ("X-Gitlab-Event", event.into()),
        ("X-Gitlab-Token", token.into()),
        (
            "X-Gitlab-Event-UUID",
            "13792a34-cac6-4fda-95a8-c58e00a3954e".into(),
        ),
        ("X-Gitlab-Instance", "https://gitlab.example.com".into()),
    ])
}

/// The accepted push, or the refusal with its HTTP status.
fn check(
    headers: &HeaderMap,
    body: &[u8],
    secret: Option<&str>,
    expect: Result<PushEvent, (WebhookError, StatusCode)>,
) {
    let got = verify_and_parse(headers, body, secret);
    match expect {
        Ok(event) => assert_eq!(got, Ok(event)),
        Err((err, status)) => {
            let got = got.expect_err("should be refused");
            assert_eq!(got, err);
            assert_eq!(got.status(), status, "{got}");
        }
    }
}

#[test]
fn github_docs_signature_example() {
    // The worked example from GitHub's "Validating webhook deliveries".
    assert_eq!(
        hmac_hex("It's a Secret to Everybody", b"Hello, World!"),
        "757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17"
    );
    let h = headers(&[
        ("X-GitHub-Event", "push".into()),
        (
            "X-Hub-Signature-256",
            "sha256=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17".into(),
        ),
    ]);
    // The signature is right, so the body is read (and is not JSON).
    let err = verify_and_parse(&h, b"Hello, World!", Some("It's a Secret to Everybody"))
        .expect_err("not a push payload");
    assert!(
        matches!(
            err,
            WebhookError::Malformed {
                provider: Provider::GitHub,
                ..
            }
        ),
        "{err}"
    );
}

#[test]
fn accepted_pushes() {
    let body = fixture!("github_push.json");
    check(
        &github("push", &body, SECRET),
        &body,
        Some(SECRET),
        Ok(PushEvent {
            provider: Provider::GitHub,
            delivery: Some("72d3162e-cc78-11e3-81ab-4c9367dc0958".into()),
            git_ref: "refs/heads/develop".into(),
            after: "3f786850e387550fdab836ed7e6dc881de23001b".into(),
            before: "9c4a6f0d2b8e1f3a5c7d9e0b1a2c3d4e5f6a7b8c".into(),
            deleted: false,
            pusher: "alice".into(),
            repo_url: Some("https://github.com/usmanismail/go-messenger.git".into()),
        }),
    );

    let body = fixture!("github_tag.json");
    let event = verify_and_parse(&github("push", &body, SECRET), &body, Some(SECRET)).expect("ok");
    assert_eq!(event.tag(), Some("v1.4.0"));
    assert_eq!(event.branch(), None);
    assert_eq!(event.before, "0".repeat(40));
    assert!(!event.deleted);
    assert_eq!(event.pusher, "release-bot");

    let body = fixture!("github_delete.json");
    let event = verify_and_parse(&github("push", &body, SECRET), &body, Some(SECRET)).expect("ok");
    assert!(event.deleted);
    assert_eq!(event.branch(), Some("feature/old"));

    let body = fixture!("gitea_push.json");
    let gitea_event = PushEvent {
        provider: Provider::Gitea,
        delivery: Some("f6266f16-1bf3-46a5-9ea4-602e06ead473".into()),
        git_ref: "refs/heads/develop".into(),
        after: "bffeb74224043ba2feb48d137756c8a9331c449a".into(),
        before: "28e1879d029cb852e4844d9c718537df08844e03".into(),
        deleted: false,
        pusher: "bob".into(),
        repo_url: Some("https://git.example.com/team/go-messenger.git".into()),
    };
    check(
        &gitea("push", &body, SECRET),
        &body,
        Some(SECRET),
        Ok(gitea_event.clone()),
    );
    check(
        &forgejo("push", &body, SECRET),
        &body,
        Some(SECRET),
        Ok(PushEvent {
            provider: Provider::Forgejo,
            delivery: Some("0b3b1a0e-5d1f-4c59-9a47-3c1b0f6d2e11".into()),
            ..gitea_event
        }),
    );

    let body = fixture!("gitlab_push.json");
    check(
        &gitlab("Push Hook", SECRET),
        &body,
        Some(SECRET),
        Ok(PushEvent {
            provider: Provider::GitLab,
            delivery: Some("13792a34-cac6-4fda-95a8-c58e00a3954e".into()),
            git_ref: "refs/heads/develop".into(),
            after: "da1560886d4f094c3e6c9ef40349f7d38b5d27d7".into(),
            before: "95790bf891e76fee5e1747ab589903a6a1f80f22".into(),
            deleted: false,
            pusher: "carol".into(),
            repo_url: Some("https://gitlab.example.com/team/go-messenger.git".into()),
        }),
    );
    let body = fixture!("gitlab_tag_push.json");
    let event =
        verify_and_parse(&gitlab("Tag Push Hook", SECRET), &body, Some(SECRET)).expect("ok");
    assert_eq!(event.tag(), Some("v1.0.0"));
    assert_eq!(event.pusher, "root");
}

#[test]
fn gitea_signature_only_in_githubs_header_is_accepted() {
    let body = fixture!("gitea_push.json");
    let h = headers(&[
        ("X-Gitea-Event", "push".into()),
        (
            "X-Hub-Signature-256",
            format!("sha256={}", hmac_hex(SECRET, &body)),
        ),
    ]);
    let event = verify_and_parse(&h, &body, Some(SECRET)).expect("accepted");
    assert_eq!(event.provider, Provider::Gitea);
    assert_eq!(event.delivery, None);
}

#[test]
fn forged_and_unsigned_requests_are_refused() {
    let body = fixture!("github_push.json");
    let bad = |provider| {
        (
            WebhookError::BadSignature { provider },
            StatusCode::UNAUTHORIZED,
        )
    };

    // Signed with another secret.
    check(
        &github("push", &body, "guessed"),
        &body,
        Some(SECRET),
        Err(bad(Provider::GitHub)),
    );
    // A correct signature of a different body (the attacker changed the ref).
    let forged = String::from_utf8(body.clone())
        .expect("utf-8")
        .replace("refs/heads/develop", "refs/heads/release");
    check(
        &github("push", &body, SECRET),
        forged.as_bytes(),
        Some(SECRET),
        Err(bad(Provider::GitHub)),
    );
    // Right signature, wrong shape of header.
    let mut h = github("push", &body, SECRET);
    let plain = hmac_hex(SECRET, &body);
    h.insert(
        "x-hub-signature-256",
        HeaderValue::from_str(&plain).expect("value"),
    );
    check(&h, &body, Some(SECRET), Err(bad(Provider::GitHub)));
    h.insert(
        "x-hub-signature-256",
        HeaderValue::from_static("sha256=not-hex"),
    );
    check(&h, &body, Some(SECRET), Err(bad(Provider::GitHub)));
    // Truncated signature: constant-time compare must still say no.
    h.insert(
        "x-hub-signature-256",
        HeaderValue::from_str(&format!("sha256={}", &plain[..32])).expect("value"),
    );
    check(&h, &body, Some(SECRET), Err(bad(Provider::GitHub)));
    // SHA-1 only (the legacy header) is not enough.
    let h = headers(&[
        ("X-GitHub-Event", "push".into()),
        (
            "X-Hub-Signature",
            "sha1=0000000000000000000000000000000000000000".into(),
        ),
    ]);
    check(
        &h,
        &body,
        Some(SECRET),
        Err((
            WebhookError::MissingSignature {
                provider: Provider::GitHub,
                header: "X-Hub-Signature-256",
            },
            StatusCode::UNAUTHORIZED,
        )),
    );

    let body = fixture!("gitea_push.json");
    check(
        &gitea("push", &body, "guessed"),
        &body,
        Some(SECRET),
        Err(bad(Provider::Gitea)),
    );
    check(
        &forgejo("push", &body, "guessed"),
        &body,
        Some(SECRET),
        Err(bad(Provider::Forgejo)),
    );
    check(
        &headers(&[("X-Gitea-Event", "push".into())]),
        &body,
        Some(SECRET),
        Err((
            WebhookError::MissingSignature {
                provider: Provider::Gitea,
                header: "X-Gitea-Signature",
            },
            StatusCode::UNAUTHORIZED,
        )),
    );

    let body = fixture!("gitlab_push.json");
    check(
        &gitlab("Push Hook", "guessed"),
        &body,
        Some(SECRET),
        Err(bad(Provider::GitLab)),
    );
    check(
        &gitlab("Push Hook", &SECRET[..5]),
        &body,
        Some(SECRET),
        Err(bad(Provider::GitLab)),
    );
    check(
        &headers(&[("X-Gitlab-Event", "Push Hook".into())]),
        &body,
        Some(SECRET),
        Err((
            WebhookError::MissingSignature {
                provider: Provider::GitLab,
                header: "X-Gitlab-Token",
            },
            StatusCode::UNAUTHORIZED,
        )),
    );
}

#[test]
fn repository_without_secret_accepts_nothing() {
    let body = fixture!("github_push.json");
    for secret in [None, Some("")] {
        check(
            &github("push", &body, ""),
            &body,
            secret,
            Err((WebhookError::NoSecret, StatusCode::FORBIDDEN)),
        );
    }
}

#[test]
fn non_push_events_are_ignored_after_verification() {
    let ping = fixture!("github_ping.json");
    check(
        &github("ping", &ping, SECRET),
        &ping,
        Some(SECRET),
        Err((
            WebhookError::Ignored {
                provider: Provider::GitHub,
                event: "ping".into(),
            },
            StatusCode::ACCEPTED,
        )),
    );
    // An unsigned ping is refused, not ignored: nothing is told to a stranger.
    check(
        &github("ping", &ping, "guessed"),
        &ping,
        Some(SECRET),
        Err((
            WebhookError::BadSignature {
                provider: Provider::GitHub,
            },
            StatusCode::UNAUTHORIZED,
        )),
    );
    // A signed push body replayed with another event header starts nothing.
    let body = fixture!("github_push.json");
    let mut h = github("push", &body, SECRET);
    h.insert("x-github-event", HeaderValue::from_static("issues"));
    check(
        &h,
        &body,
        Some(SECRET),
        Err((
            WebhookError::Ignored {
                provider: Provider::GitHub,
                event: "issues".into(),
            },
            StatusCode::ACCEPTED,
        )),
    );
    // The same signed GitHub body presented as a GitLab hook has no token.
    let mut h = github("push", &body, SECRET);
    h.insert("x-gitlab-event", HeaderValue::from_static("Push Hook"));
    check(
        &h,
        &body,
        Some(SECRET),
        Err((
            WebhookError::MissingSignature {
                provider: Provider::GitLab,
                header: "X-Gitlab-Token",
            },
            StatusCode::UNAUTHORIZED,
        )),
    );
    let gl = fixture!("gitlab_push.json");
    check(
        &gitlab("Merge Request Hook", SECRET),
        &gl,
        Some(SECRET),
        Err((
            WebhookError::Ignored {
                provider: Provider::GitLab,
                event: "Merge Request Hook".into(),
            },
            StatusCode::ACCEPTED,
        )),
    );
    let gt = fixture!("gitea_push.json");
    check(
        &gitea("create", &gt, SECRET),
        &gt,
        Some(SECRET),
        Err((
            WebhookError::Ignored {
                provider: Provider::Gitea,
                event: "create".into(),
            },
            StatusCode::ACCEPTED,
        )),
    );
}

#[test]
fn unknown_senders_are_refused() {
    let body = fixture!("github_push.json");
    let h = headers(&[(
        "X-Hub-Signature-256",
        format!("sha256={}", hmac_hex(SECRET, &body)),
    )]);
    check(
        &h,
        &body,
        Some(SECRET),
        Err((WebhookError::UnknownProvider, StatusCode::BAD_REQUEST)),
    );
    check(
        &HeaderMap::new(),
        b"",
        Some(SECRET),
        Err((WebhookError::UnknownProvider, StatusCode::BAD_REQUEST)),
    );
}

#[test]
fn malformed_payloads() {
    let check_body = |body: &[u8], contains: &str| {
        let err = verify_and_parse(&github("push", body, SECRET), body, Some(SECRET))
            .expect_err("malformed");
        assert_eq!(err.status(), StatusCode::BAD_REQUEST, "{err}");
        assert!(
            matches!(
                err,
                WebhookError::Malformed {
                    provider: Provider::GitHub,
                    ..
                }
            ),
            "{err}"
        );
        assert!(
            err.to_string().contains(contains),
            "{err} should contain {contains:?}"
        );
    };
    check_body(b"", "EOF while parsing");
    check_body(b"\x00\xff garbage", "expected value");
    check_body(b"[1, 2, 3]", "invalid type");
    check_body(b"{\"ref\": \"refs/heads/x\"", "EOF while parsing");
    check_body(b"{}", "no \"ref\"");
    // Deeply nested values are skipped without recursing: no stack overflow, just a
    // payload without what gantry needs.
    let deep = format!(
        r#"{{"repository":{}{{}}{}}}"#,
        "{\"a\":".repeat(100_000),
        "}".repeat(100_000)
    );
    check_body(deep.as_bytes(), "no \"ref\"");
    let deep = format!(
        r#"{{"commits":{}{}}}"#,
        "[".repeat(100_000),
        "]".repeat(100_000)
    );
    check_body(deep.as_bytes(), "no \"ref\"");
    let a = "a".repeat(40);
    check_body(
        format!(r#"{{"ref":"main","before":"{a}","after":"{a}"}}"#).as_bytes(),
        "is not a branch or tag",
    );
    check_body(
        format!(r#"{{"ref":"refs/heads/","before":"{a}","after":"{a}"}}"#).as_bytes(),
        "is not a branch or tag",
    );
    check_body(
        format!(r#"{{"ref":"refs/heads/main","before":"{a}","after":"HEAD; rm -rf /"}}"#)
            .as_bytes(),
        "\"after\" \"HEAD; rm -rf /\" is not a commit id",
    );
    check_body(
        format!(r#"{{"ref":"refs/heads/main","after":"{a}"}}"#).as_bytes(),
        "no \"before\"",
    );
    check_body(
        format!(r#"{{"ref":"refs/heads/main","before":"{a}","after":"{a}","pusher":"nobody"}}"#)
            .as_bytes(),
        "invalid type",
    );
    // SHA-256 repositories have 64-digit ids; upper case is normalized.
    let b = "B".repeat(64);
    let body = format!(r#"{{"ref":"refs/heads/main","before":"{b}","after":"{b}"}}"#);
    let event = verify_and_parse(
        &github("push", body.as_bytes(), SECRET),
        body.as_bytes(),
        Some(SECRET),
    )
    .expect("accepted");
    assert_eq!(event.after, "b".repeat(64));
    assert_eq!(event.pusher, "unknown");
    assert_eq!(event.repo_url, None);
}

#[test]
fn oversized_bodies_are_refused_before_anything_else() {
    let body = vec![b' '; MAX_BODY_BYTES + 1];
    let err = verify_and_parse(&HeaderMap::new(), &body, None).expect_err("too large");
    assert_eq!(
        err,
        WebhookError::TooLarge {
            size: MAX_BODY_BYTES + 1,
            limit: MAX_BODY_BYTES
        }
    );
    assert_eq!(err.status(), StatusCode::PAYLOAD_TOO_LARGE);
    // Exactly at the limit is read (and then judged on its merits).
    let body = vec![b' '; MAX_BODY_BYTES];
    let err = verify_and_parse(&github("push", &body, SECRET), &body, Some(SECRET))
        .expect_err("not json");
    assert!(matches!(err, WebhookError::Malformed { .. }), "{err}");
}

#[test]
fn error_messages() {
    let messages: Vec<String> = [
        WebhookError::UnknownProvider,
        WebhookError::NoSecret,
        WebhookError::MissingSignature {
            provider: Provider::GitHub,
            header: "X-Hub-Signature-256",
        },
        WebhookError::BadSignature {
            provider: Provider::Forgejo,
        },
        WebhookError::Ignored {
            provider: Provider::GitHub,
            event: "ping".into(),
        },
        WebhookError::Malformed {
            provider: Provider::GitLab,
            message: "no \"ref\"".into(),
        },
        WebhookError::TooLarge { size: 10, limit: 5 },
    ]
    .iter()
    .map(ToString::to_string)
    .collect();
    insta::assert_snapshot!(messages.join("\n"));
}
