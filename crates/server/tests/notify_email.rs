//! Notification email against a real SMTP server on loopback: Python's aiosmtpd (Debian
//! package `python3-aiosmtpd`, set up by `cargo xtask test`), with a small handler that
//! stores each message it accepts as a JSON file the test reads.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use gantry_server::notify::email::{SmtpSettings, SmtpTls, send, send_with_timeout};
use gantry_server::notify::{NotifyError, NotifyMessage};
use gantry_store::RunState;

/// The SMTP server: binds 127.0.0.1 on a free port, prints the port, and writes every
/// message it accepts to OUTDIR/<n>.json. Logins are checked against USER/PASSWORD
/// (offered without TLS, which only a loopback test may do).
const SERVER_PY: &str = r#"
import asyncio, json, os, sys, warnings
warnings.simplefilter("ignore", DeprecationWarning)
from aiosmtpd.smtp import SMTP, AuthResult, LoginPassword

outdir, user, password = sys.argv[1], sys.argv[2].encode(), sys.argv[3].encode()
count = 0

def authenticator(server, session, envelope, mechanism, auth_data):
    ok = isinstance(auth_data, LoginPassword) and auth_data.login == user and auth_data.password == password
    # handled=False: let aiosmtpd answer 535 itself on a failure.
    return AuthResult(success=ok, handled=False, auth_data=auth_data)

class Handler:
    async def handle_DATA(self, server, session, envelope):
        global count
        count += 1
        login = session.auth_data.login.decode() if isinstance(session.auth_data, LoginPassword) else None
        record = {
            "mail_from": envelope.mail_from,
            "rcpt_tos": envelope.rcpt_tos,
            "login": login,
            "content": envelope.content.decode("utf-8", "replace"),
        }
        tmp = os.path.join(outdir, f".{count}.tmp")
        with open(tmp, "w") as f:
            json.dump(record, f)
        os.rename(tmp, os.path.join(outdir, f"{count}.json"))
        return "250 Message accepted for delivery"

async def main():
    loop = asyncio.get_running_loop()
    server = await loop.create_server(
        lambda: SMTP(Handler(), authenticator=authenticator, auth_require_tls=False),
        "127.0.0.1", 0)
    print(server.sockets[0].getsockname()[1], flush=True)
    await server.serve_forever()

asyncio.run(main())
"#;

/// Debian's interpreter: aiosmtpd is installed for it, not for a python found earlier on
/// PATH (pyenv). `GANTRY_TEST_PYTHON` overrides.
fn python() -> String {
    std::env::var("GANTRY_TEST_PYTHON").unwrap_or_else(|_| {
        if Path::new("/usr/bin/python3").exists() {
            "/usr/bin/python3".into()
        } else {
            "python3".into()
        }
    })
}

struct SmtpServer {
    child: Child,
    port: u16,
    outdir: PathBuf,
    _tmp: tempfile::TempDir,
}

impl SmtpServer {
    fn start() -> SmtpServer {
        let tmp = tempfile::tempdir().expect("tempdir");
        let script = tmp.path().join("smtp_server.py");
        std::fs::write(&script, SERVER_PY).expect("write script");
        let outdir = tmp.path().join("out");
        std::fs::create_dir(&outdir).expect("mkdir");
        let mut child = Command::new(python())
            .arg(&script)
            .args([outdir.to_str().expect("utf-8"), "ci-bot", "pa55word"])
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("start python3 (apt-get install python3-aiosmtpd)");
        let mut line = String::new();
        BufReader::new(child.stdout.take().expect("stdout"))
            .read_line(&mut line)
            .expect("read port");
        let port = line.trim().parse().unwrap_or_else(|_| {
            let status = child.wait().expect("wait");
            panic!(
                "the SMTP server did not start ({status}); is python3-aiosmtpd installed? \
                 `cargo xtask test` installs it"
            )
        });
        SmtpServer {
            child,
            port,
            outdir,
            _tmp: tmp,
        }
    }

    fn settings(&self) -> SmtpSettings {
        SmtpSettings {
            host: "127.0.0.1".into(),
            port: self.port,
            from: "gantry <ci@example.com>".into(),
            username: None,
            password: None,
            tls: SmtpTls::None,
        }
    }

    /// The messages received so far, in order.
    fn received(&self) -> Vec<serde_json::Value> {
        let mut files: Vec<_> = std::fs::read_dir(&self.outdir)
            .expect("read outdir")
            .map(|e| e.expect("entry").path())
            .filter(|p| p.extension().is_some_and(|x| x == "json"))
            .collect();
        files.sort_by_key(|p| {
            p.file_stem()
                .and_then(|s| s.to_str())
                .and_then(|s| s.parse::<u32>().ok())
        });
        files
            .iter()
            .map(|p| {
                serde_json::from_str(&std::fs::read_to_string(p).expect("read")).expect("json")
            })
            .collect()
    }
}

impl Drop for SmtpServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn message(state: RunState) -> NotifyMessage {
    NotifyMessage {
        repo: "messenger".into(),
        pipeline: "go-auth".into(),
        run_number: 12,
        git_ref: "refs/heads/develop".into(),
        commit: "3f786850e387550fdab836ed7e6dc881de23001b".into(),
        cause: "Started by push webhook from GitHub (alice)".into(),
        state,
        failed_jobs: vec!["build".into(), "integration".into()],
        link: "http://ci.example.com/runs/42".into(),
        duration: Some(Duration::from_secs(95)),
    }
}

/// The body of an email as received (after the headers), with line endings unfolded.
fn body(content: &str) -> String {
    let (_, body) = content
        .split_once("\r\n\r\n")
        .or_else(|| content.split_once("\n\n"))
        .expect("headers and body");
    body.replace("\r\n", "\n")
}

fn header<'a>(content: &'a str, name: &str) -> Option<&'a str> {
    content
        .lines()
        .take_while(|l| !l.trim().is_empty())
        .find_map(|l| {
            l.split_once(": ")
                .filter(|(n, _)| n.eq_ignore_ascii_case(name))
        })
        .map(|(_, v)| v.trim())
}

#[tokio::test]
async fn failure_email_reaches_every_recipient() {
    let server = SmtpServer::start();
    let to = [
        "team@example.com".to_string(),
        "Lead <lead@example.com>".to_string(),
    ];
    send(&server.settings(), &to, &message(RunState::Failed))
        .await
        .expect("sent");
    let got = server.received();
    assert_eq!(got.len(), 1, "{got:?}");
    let mail = &got[0];
    assert_eq!(mail["mail_from"], "ci@example.com");
    assert_eq!(
        mail["rcpt_tos"],
        serde_json::json!(["team@example.com", "lead@example.com"])
    );
    assert_eq!(mail["login"], serde_json::Value::Null);
    let content = mail["content"].as_str().expect("content");
    assert_eq!(
        header(content, "Subject"),
        Some("[gantry] messenger/go-auth #12 failed on develop (1m35s)")
    );
    assert_eq!(header(content, "From"), Some("gantry <ci@example.com>"));
    assert!(
        header(content, "Content-Type").is_some_and(|v| v.starts_with("text/plain")),
        "{content}"
    );
    let text = body(content);
    for part in [
        "Pipeline:    go-auth",
        "Run:         #12",
        "Ref:         develop",
        "Cause:       Started by push webhook from GitHub (alice)",
        "Failed jobs: build, integration",
        "http://ci.example.com/runs/42",
    ] {
        assert!(text.contains(part), "{part:?} missing from:\n{text}");
    }
}

#[tokio::test]
async fn login_is_used_and_a_wrong_password_sends_nothing() {
    let server = SmtpServer::start();
    let mut settings = server.settings();
    settings.username = Some("ci-bot".into());
    settings.password = Some("pa55word".into());
    let to = ["team@example.com".to_string()];
    send(&settings, &to, &message(RunState::Succeeded))
        .await
        .expect("sent with login");
    let got = server.received();
    assert_eq!(got.len(), 1);
    assert_eq!(got[0]["login"], "ci-bot");
    assert!(body(got[0]["content"].as_str().expect("content")).contains("State:       succeeded"));

    settings.password = Some("wrong".into());
    let err = send(&settings, &to, &message(RunState::Failed))
        .await
        .expect_err("refused");
    assert!(matches!(err, NotifyError::Smtp { .. }), "{err}");
    assert_eq!(
        err.to_string(),
        format!("smtp server 127.0.0.1:{} refused or failed", server.port)
    );
    assert_eq!(server.received().len(), 1, "nothing more was delivered");
}

#[tokio::test]
async fn starttls_is_required_when_configured() {
    // aiosmtpd without a certificate does not offer STARTTLS: the mail must not go out in
    // plain text.
    let server = SmtpServer::start();
    let mut settings = server.settings();
    settings.tls = SmtpTls::Starttls;
    let err = send(
        &settings,
        &["team@example.com".into()],
        &message(RunState::Failed),
    )
    .await
    .expect_err("no starttls");
    assert!(matches!(err, NotifyError::Smtp { .. }), "{err}");
    assert!(server.received().is_empty());
}

#[tokio::test]
async fn bad_addresses_and_unreachable_servers() {
    let server = SmtpServer::start();
    let msg = message(RunState::Failed);
    let err = send(&server.settings(), &["not an address".into()], &msg)
        .await
        .expect_err("bad address");
    assert!(
        err.to_string()
            .starts_with("invalid email address \"not an address\""),
        "{err}"
    );
    let err = send(&server.settings(), &[], &msg)
        .await
        .expect_err("nobody");
    assert!(err.to_string().contains("no recipients"), "{err}");
    let mut settings = server.settings();
    settings.from = "gantry".into();
    let err = send(&settings, &["team@example.com".into()], &msg)
        .await
        .expect_err("bad sender");
    assert!(matches!(err, NotifyError::Address { .. }), "{err}");
    assert!(server.received().is_empty());

    // Nothing listens on a port that was just closed.
    let closed = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = closed.local_addr().expect("addr").port();
    drop(closed);
    let mut settings = server.settings();
    settings.port = port;
    let err = send(&settings, &["team@example.com".into()], &msg)
        .await
        .expect_err("connection refused");
    assert!(matches!(err, NotifyError::Smtp { .. }), "{err}");
}

#[tokio::test]
async fn a_server_that_never_answers_times_out() {
    // Accepts the connection and never sends the greeting.
    let silent = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let port = silent.local_addr().expect("addr").port();
    let hold = tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((sock, _)) = silent.accept().await {
            held.push(sock);
        }
    });
    let settings = SmtpSettings {
        host: "127.0.0.1".into(),
        port,
        from: "ci@example.com".into(),
        username: None,
        password: None,
        tls: SmtpTls::None,
    };
    let err = send_with_timeout(
        &settings,
        &["team@example.com".into()],
        &message(RunState::Failed),
        Duration::from_secs(1),
    )
    .await
    .expect_err("timeout");
    assert!(matches!(err, NotifyError::Timeout { .. }), "{err}");
    assert_eq!(
        err.to_string(),
        format!("sending to 127.0.0.1:{port} did not finish within 1s")
    );
    hold.abort();
}
