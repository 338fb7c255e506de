//! `gantry user` end to end: the built `gantry` binary as the server and as the client.
//! An account made with `gantry user add --password-stdin` logs in to the web UI (the
//! real login form over HTTP), and its session reads the API; `passwd`, `disable` and
//! `remove` take effect on the running server.

mod support;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::process::{Command, Output, Stdio};
use std::time::Duration;

use support::{Server, code, stderr, stdout};

/// `gantry ARGS` with the admin token, `input` on standard input, and no controlling
/// terminal (started through util-linux's `setsid`, so that a password prompt fails
/// instead of waiting for a person at the terminal the tests run in).
fn gantry(server: &Server, args: &[&str], input: &str) -> Output {
    let mut cmd = Command::new("setsid");
    cmd.arg("--wait")
        .arg(env!("CARGO_BIN_EXE_gantry"))
        .args(args)
        .env("GANTRY_SERVER", &server.url)
        .env("GANTRY_TOKEN", &server.token)
        .env("NO_COLOR", "1")
        .env_remove("TERM")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = cmd.spawn().expect("run setsid gantry");
    // A refused command may exit before reading its input: a broken pipe is no failure.
    let _ = child
        .stdin
        .take()
        .expect("stdin")
        .write_all(input.as_bytes());
    child.wait_with_output().expect("wait for gantry")
}

/// One HTTP/1.1 exchange; returns the status, the `Set-Cookie` name=value pairs and the
/// body.
fn exchange(
    server: &Server,
    method: &str,
    path: &str,
    cookie: &str,
    form: &str,
) -> (u16, Vec<String>, String) {
    let host = server.url.trim_start_matches("http://");
    let mut stream = TcpStream::connect(host).expect("connect");
    stream
        .set_read_timeout(Some(Duration::from_secs(60)))
        .expect("timeout");
    let req = format!(
        "{method} {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\nCookie: {cookie}\r\n\
         Content-Type: application/x-www-form-urlencoded\r\nContent-Length: {}\r\n\r\n{form}",
        form.len()
    );
    stream.write_all(req.as_bytes()).expect("send");
    let mut text = String::new();
    stream.read_to_string(&mut text).expect("read");
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .expect("a status");
    let cookies = head
        .lines()
        .filter_map(|l| l.strip_prefix("set-cookie: "))
        .filter_map(|c| c.split(';').next())
        .map(str::to_owned)
        .collect();
    (status, cookies, body.to_owned())
}

/// Logs in through the web form; returns the status and the session cookie, if any.
fn web_login(server: &Server, name: &str, password: &str) -> (u16, Option<String>) {
    let (status, cookies, page) = exchange(server, "GET", "/login", "", "");
    assert_eq!(status, 200, "{page}");
    let login_cookie = cookies
        .iter()
        .find(|c| c.starts_with("gantry_login="))
        .expect("a login cookie")
        .clone();
    let marker = "name=\"csrf\" value=\"";
    let at = page.find(marker).expect("a csrf field") + marker.len();
    let csrf = &page[at..at + page[at..].find('"').expect("end of value")];
    let form = format!(
        "username={name}&password={}&csrf={csrf}&next=%2F",
        password.replace(' ', "+")
    );
    let (status, cookies, _) = exchange(server, "POST", "/login", &login_cookie, &form);
    let session = cookies
        .into_iter()
        .find(|c| c.starts_with("gantry_session=") && c.len() > "gantry_session=".len());
    (status, session)
}

#[test]
fn user_accounts_made_with_the_cli_log_in_to_the_web_ui() {
    let data = tempfile::tempdir().expect("tempdir");
    let server = Server::start(data.path(), None, &[]);

    let out = gantry(
        &server,
        &[
            "user",
            "add",
            "alice",
            "--role",
            "admin",
            "--password-stdin",
        ],
        "correct horse\n",
    );
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    assert!(
        stdout(&out).contains("created user alice (admin)"),
        "{}",
        stdout(&out)
    );
    let listed = stdout(&gantry(&server, &["user", "list"], ""));
    let row = listed
        .lines()
        .find(|l| l.starts_with("alice"))
        .unwrap_or_else(|| panic!("{listed}"));
    assert!(row.contains("admin") && row.contains("active"), "{listed}");
    let json: serde_json::Value =
        serde_json::from_str(&stdout(&gantry(&server, &["user", "list", "--json"], "")))
            .expect("JSON");
    assert_eq!(json[0]["name"], "alice");
    assert!(!json.to_string().contains("argon2"), "{json}");

    // The final newline is not part of the password; the session reads the API.
    let (status, session) = web_login(&server, "alice", "correct horse");
    assert_eq!(status, 303);
    let session = session.expect("a session cookie");
    let (status, _, body) = exchange(&server, "GET", "/api/runs", &session, "");
    assert_eq!(status, 200, "{body}");
    let (status, _, page) = exchange(&server, "GET", "/", &session, "");
    assert_eq!(status, 200);
    assert!(
        page.contains("signed in as <strong>alice</strong>"),
        "{page}"
    );

    // A new password ends the session and replaces the old one.
    let out = gantry(
        &server,
        &["user", "passwd", "alice", "--password-stdin"],
        "battery staple",
    );
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    assert_eq!(exchange(&server, "GET", "/", &session, "").0, 303);
    assert_eq!(web_login(&server, "alice", "correct horse").0, 401);
    assert_eq!(web_login(&server, "alice", "battery staple").0, 303);

    // Disabled: refused; enabled again: fine; removed: gone.
    let out = gantry(&server, &["user", "disable", "alice"], "");
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    assert_eq!(web_login(&server, "alice", "battery staple").0, 403);
    let out = gantry(&server, &["user", "enable", "alice"], "");
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    assert_eq!(web_login(&server, "alice", "battery staple").0, 303);
    let out = gantry(&server, &["user", "remove", "alice"], "");
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    assert_eq!(web_login(&server, "alice", "battery staple").0, 401);
    let listed = stdout(&gantry(&server, &["user", "list"], ""));
    assert!(listed.starts_with("no users"), "{listed}");

    // Mistakes are usage errors (exit 2) that say what is wrong.
    let check = |args: &[&str], input: &str, want: &str| {
        let out = gantry(&server, args, input);
        assert_eq!(code(&out), 2, "{args:?}: {}", stderr(&out));
        assert!(stderr(&out).contains(want), "{args:?}: {}", stderr(&out));
    };
    check(
        &["user", "add", "Alice", "--password-stdin"],
        "long enough",
        "invalid user name \"Alice\"",
    );
    check(
        &["user", "add", "bob", "--password-stdin"],
        "short",
        "at least 8 characters",
    );
    check(
        &["user", "add", "bob", "--password-stdin"],
        "\n",
        "the password is empty",
    );
    check(&["user", "add", "bob"], "", "--password-stdin");
    check(&["user", "remove", "nobody"], "", "user nobody not found");
    check(
        &["user", "add", "bob", "--role", "root"],
        "",
        "invalid value 'root'",
    );
}
