//! Notification webhooks against a local HTTP receiver (a plain tokio listener that
//! records each request and answers with a chosen status).

use std::time::Duration;

use gantry_pipeline::{OutcomeFilter, Template};
use gantry_server::notify::webhook::{send, send_with_timeout};
use gantry_server::notify::{NotifyError, NotifyMessage, resolve_target, should_notify};
use gantry_store::RunState;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;
use tokio::sync::mpsc;

/// One request as the receiver saw it.
#[derive(Debug)]
struct Request {
    method: String,
    path: String,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

impl Request {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body).expect("the body is JSON")
    }
}

/// Starts a receiver on 127.0.0.1 that answers every request with `status` and `reply`
/// (or never answers, for `None`). Returns its base URL and the requests it got.
async fn receiver(
    status: Option<u16>,
    reply: &'static str,
) -> (String, mpsc::UnboundedReceiver<Request>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let url = format!("http://{}", listener.local_addr().expect("addr"));
    let (tx, rx) = mpsc::unbounded_channel();
    tokio::spawn(async move {
        while let Ok((mut sock, _)) = listener.accept().await {
            let tx = tx.clone();
            tokio::spawn(async move {
                let Some(req) = read_request(&mut sock).await else {
                    return;
                };
                let _ = tx.send(req);
                match status {
                    Some(status) => {
                        let answer = format!(
                            "HTTP/1.1 {status} X\r\ncontent-type: text/plain\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{reply}",
                            reply.len()
                        );
                        let _ = sock.write_all(answer.as_bytes()).await;
                        let _ = sock.shutdown().await;
                    }
                    None => {
                        // Hold the connection open without answering.
                        tokio::time::sleep(Duration::from_secs(60)).await;
                    }
                }
            });
        }
    });
    (url, rx)
}

async fn read_request(sock: &mut tokio::net::TcpStream) -> Option<Request> {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    let head_end = loop {
        if let Some(pos) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break pos;
        }
        let n = sock.read(&mut chunk).await.ok()?;
        if n == 0 {
            return None;
        }
        buf.extend_from_slice(&chunk[..n]);
    };
    let head = String::from_utf8_lossy(&buf[..head_end]).into_owned();
    let mut lines = head.split("\r\n");
    let mut first = lines.next()?.split(' ');
    let (method, path) = (first.next()?.to_string(), first.next()?.to_string());
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(n, v)| (n.trim().to_string(), v.trim().to_string()))
        .collect();
    let len: usize = headers
        .iter()
        .find(|(n, _)| n.eq_ignore_ascii_case("content-length"))
        .and_then(|(_, v)| v.parse().ok())
        .unwrap_or(0);
    let mut body = buf[head_end + 4..].to_vec();
    while body.len() < len {
        let n = sock.read(&mut chunk).await.ok()?;
        if n == 0 {
            break;
        }
        body.extend_from_slice(&chunk[..n]);
    }
    Some(Request {
        method,
        path,
        headers,
        body,
    })
}

fn message(state: RunState, failed: &[&str]) -> NotifyMessage {
    NotifyMessage {
        repo: "messenger".into(),
        pipeline: "go-auth".into(),
        run_number: 12,
        git_ref: "refs/tags/v1.4.0".into(),
        commit: "3f786850e387550fdab836ed7e6dc881de23001b".into(),
        cause: "Started by push webhook from GitHub <alice>".into(),
        state,
        failed_jobs: failed.iter().map(|s| s.to_string()).collect(),
        link: "http://ci.example.com/runs/42".into(),
        duration: Some(Duration::from_millis(61_400)),
    }
}

#[tokio::test]
async fn posts_a_slack_compatible_body() {
    let (base, mut requests) = receiver(Some(200), "ok").await;
    // The URL comes from `webhook: ${SLACK_WEBHOOK_URL}` with the variable set.
    let template = Template::parse("${SLACK_WEBHOOK_URL}", false).expect("template");
    let url = resolve_target(&template, |name| {
        (name == "SLACK_WEBHOOK_URL").then(|| format!("{base}/services/T000/B000/XXXX"))
    })
    .expect("resolved");
    let client = reqwest::Client::new();
    send(
        &client,
        &url,
        &message(RunState::Failed, &["build", "integration"]),
    )
    .await
    .expect("sent");
    let req = requests.recv().await.expect("one request");
    assert_eq!(req.method, "POST");
    assert_eq!(req.path, "/services/T000/B000/XXXX");
    assert_eq!(req.header("content-type"), Some("application/json"));
    insta::assert_snapshot!(serde_json::to_string_pretty(&req.json()).expect("json"));
}

#[tokio::test]
async fn a_success_names_no_failed_jobs() {
    let (base, mut requests) = receiver(Some(204), "").await;
    let client = reqwest::Client::new();
    send(
        &client,
        &format!("{base}/hook"),
        &message(RunState::Succeeded, &[]),
    )
    .await
    .expect("204 is success");
    let body = requests.recv().await.expect("request").json();
    assert_eq!(
        body["text"],
        "go-auth #12 succeeded on v1.4.0 (1m1s) <http://ci.example.com/runs/42|details>"
    );
    assert_eq!(body["attachments"][0]["color"], "#2eb67d");
    let titles: Vec<&str> = body["attachments"][0]["fields"]
        .as_array()
        .expect("fields")
        .iter()
        .map(|f| f["title"].as_str().expect("title"))
        .collect();
    assert_eq!(titles, ["Repository", "Pipeline", "Ref", "Commit", "Cause"]);
}

#[tokio::test]
async fn error_answers_are_reported_with_their_status_and_no_secret() {
    let (base, mut requests) = receiver(Some(404), "no_service").await;
    let client = reqwest::Client::new();
    let url = format!("{base}/services/T000/B000/SECRETPATH");
    let err = send(&client, &url, &message(RunState::Failed, &["build"]))
        .await
        .expect_err("404");
    assert!(
        matches!(err, NotifyError::Status { status: 404, .. }),
        "{err}"
    );
    let text = err.to_string();
    assert_eq!(text, format!("webhook {base}/… answered 404: no_service"));
    assert!(requests.recv().await.is_some());

    // Nothing listens on a port that was just closed.
    let closed = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = closed.local_addr().expect("addr").port();
    drop(closed);
    let err = send(
        &client,
        &format!("http://127.0.0.1:{port}/services/SECRETPATH"),
        &message(RunState::Failed, &[]),
    )
    .await
    .expect_err("refused");
    assert!(matches!(err, NotifyError::Http { .. }), "{err}");
    let mut chain = String::new();
    let mut source: Option<&dyn std::error::Error> = Some(&err);
    while let Some(e) = source {
        chain.push_str(&format!("{e}: "));
        source = e.source();
    }
    assert!(!chain.contains("SECRETPATH"), "{chain}");

    let err = send(&client, "not a url", &message(RunState::Failed, &[]))
        .await
        .expect_err("bad url");
    assert!(matches!(err, NotifyError::Http { .. }), "{err}");
}

#[tokio::test]
async fn a_receiver_that_never_answers_times_out() {
    let (base, mut requests) = receiver(None, "").await;
    let client = reqwest::Client::new();
    let err = send_with_timeout(
        &client,
        &format!("{base}/hook"),
        &message(RunState::Failed, &[]),
        Duration::from_secs(1),
    )
    .await
    .expect_err("timeout");
    assert!(matches!(err, NotifyError::Timeout { .. }), "{err}");
    assert_eq!(
        err.to_string(),
        format!("sending to {base}/… did not finish within 1s")
    );
    assert!(requests.recv().await.is_some(), "the request did arrive");
}

#[test]
fn notify_entries_from_a_pipeline_file() {
    // The seed pipeline's notify: block, read through gantry_pipeline's types.
    let spec = gantry_pipeline::parse(
        "gantry.yml",
        "jobs:\n  a:\n    script: [true]\nnotify:\n  - on: [failure, fixed]\n    webhook: ${SLACK_WEBHOOK_URL}\n  - email: [team@example.com, \"${OWNER:-ops}@example.com\"]\n",
    )
    .expect("valid");
    let [chat, mail] = &spec.notify[..] else {
        panic!("two entries: {:?}", spec.notify)
    };
    let on = |n: &gantry_pipeline::Notify| n.on.iter().map(|o| o.value).collect::<Vec<_>>();
    assert_eq!(on(chat), [OutcomeFilter::Failure, OutcomeFilter::Fixed]);
    // `on` defaults to failure.
    assert_eq!(on(mail), [OutcomeFilter::Failure]);
    let fires = |n: &gantry_pipeline::Notify, state, prev| {
        should_notify(n.on.iter().map(|o| &o.value), state, prev)
    };
    assert!(fires(chat, RunState::Succeeded, Some(RunState::Failed)));
    assert!(!fires(mail, RunState::Succeeded, Some(RunState::Failed)));
    assert!(fires(mail, RunState::Errored, None));
    let addresses: Vec<String> = mail
        .email
        .iter()
        .map(|t| resolve_target(t, |_| None).expect("resolves"))
        .collect();
    assert_eq!(addresses, ["team@example.com", "ops@example.com"]);
    let err = resolve_target(chat.webhook.as_ref().expect("webhook"), |_| None).expect_err("unset");
    assert_eq!(
        err.to_string(),
        "notify target \"${SLACK_WEBHOOK_URL}\" uses ${SLACK_WEBHOOK_URL}, which is not set"
    );
}
