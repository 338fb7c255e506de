//! The TCP server: one task per connection reading lines, one writing them (so messages
//! from other users and replies to our own commands never interleave mid-line).

use std::sync::Arc;

use tokio::io::{AsyncBufRead, AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc::unbounded_channel;

use crate::auth_client::TokenCheck;
use crate::hub::Hub;
use crate::log;
use crate::protocol::{self, GREETING, MAX_LINE, Request};

/// Listens on every interface at `port` and serves until the process is stopped.
pub async fn serve<A: TokenCheck>(auth: Arc<A>, port: u16) -> Result<(), String> {
    let listener = TcpListener::bind(("0.0.0.0", port))
        .await
        .map_err(|e| format!("cannot listen on port {port}: {e}"))?;
    log::info(&format!("Listening on port {port}"));
    run(listener, auth).await;
    Ok(())
}

/// Accepts connections on `listener` forever.
pub async fn run<A: TokenCheck>(listener: TcpListener, auth: Arc<A>) {
    let hub = Arc::new(Hub::default());
    let mut next_id = 0u64;
    loop {
        match listener.accept().await {
            Ok((stream, peer)) => {
                next_id += 1;
                log::debug(&format!("connection {next_id} from {peer}"));
                tokio::spawn(connection(stream, next_id, hub.clone(), auth.clone()));
            }
            Err(e) => log::warn(&format!("accept failed: {e}")),
        }
    }
}

/// What reading one line gave.
#[derive(Debug, PartialEq)]
enum Line {
    Text(String),
    TooLong,
    NotUtf8,
    /// The client closed; `partial` bytes of an unfinished line are dropped.
    Closed {
        partial: usize,
    },
}

async fn read_line<R: AsyncBufRead + Unpin>(r: &mut R) -> Line {
    let mut buf = Vec::new();
    let limit = MAX_LINE as u64 + 1; // the line and its newline
    if (&mut *r)
        .take(limit)
        .read_until(b'\n', &mut buf)
        .await
        .is_err()
    {
        return Line::Closed { partial: buf.len() };
    }
    if buf.last() == Some(&b'\n') {
        buf.pop();
        return String::from_utf8(buf).map_or(Line::NotUtf8, Line::Text);
    }
    if buf.len() <= MAX_LINE {
        // No newline and under the limit: the stream ended mid-line.
        return Line::Closed { partial: buf.len() };
    }
    // Too long: skip the rest of it, then say so.
    loop {
        let mut rest = Vec::new();
        match (&mut *r).take(64 * 1024).read_until(b'\n', &mut rest).await {
            Ok(0) | Err(_) => return Line::Closed { partial: buf.len() },
            Ok(_) if rest.last() == Some(&b'\n') => return Line::TooLong,
            Ok(_) => {} // still no newline: keep skipping
        }
    }
}

async fn connection<A: TokenCheck>(stream: TcpStream, id: u64, hub: Arc<Hub>, auth: Arc<A>) {
    let (read, mut write) = stream.into_split();
    let (outbox, mut lines) = unbounded_channel::<String>();
    let writer = tokio::spawn(async move {
        while let Some(line) = lines.recv().await {
            if write
                .write_all(format!("{line}\n").as_bytes())
                .await
                .is_err()
            {
                break;
            }
        }
        let _ = write.shutdown().await;
    });
    let say = |line: &str| {
        let _ = outbox.send(line.to_owned());
    };
    say(GREETING);
    let mut reader = BufReader::new(read);
    let mut me: Option<String> = None;
    loop {
        let text = match read_line(&mut reader).await {
            Line::Text(text) => text,
            Line::TooLong => {
                say(&format!("ERR line too long (at most {MAX_LINE} bytes)"));
                continue;
            }
            Line::NotUtf8 => {
                say("ERR line is not UTF-8");
                continue;
            }
            Line::Closed { partial } => {
                if partial > 0 {
                    log::debug(&format!(
                        "connection {id} closed mid-line; dropped {partial} bytes"
                    ));
                }
                break;
            }
        };
        match protocol::parse(&text) {
            Err(error) => say(&error),
            Ok(Request::Nothing) => {}
            Ok(Request::Ping) => say("PONG"),
            Ok(Request::Quit) => {
                say("BYE");
                break;
            }
            Ok(Request::Auth { userid, token }) => {
                if let Some(current) = &me {
                    say(&format!("ERR already authenticated as {current}"));
                    continue;
                }
                match auth.check(userid, token).await {
                    Ok(true) => {
                        hub.join(userid, id, outbox.clone());
                        me = Some(userid.to_owned());
                        log::info(&format!("{userid} connected (connection {id})"));
                        say(&format!("OK AUTH {userid}"));
                    }
                    Ok(false) => say("ERR bad token"),
                    Err(e) => {
                        log::warn(&e);
                        say("ERR auth service unavailable, try again");
                    }
                }
            }
            Ok(Request::Send { to, text }) => {
                let Some(from) = &me else {
                    say("ERR not authenticated (send AUTH <userid> <token> first)");
                    continue;
                };
                match hub.deliver(to, &format!("MSG {from} {text}")) {
                    0 => say(&format!("ERR unknown recipient {to}")),
                    n => {
                        log::debug(&format!("{from} -> {to}: {n} connection(s)"));
                        say(&format!("OK SENT {n}"));
                    }
                }
            }
        }
    }
    if let Some(userid) = &me {
        hub.leave(userid, id);
        log::info(&format!("{userid} disconnected (connection {id})"));
    }
    // The writer ends once every sender is gone: ours here, the hub's just above.
    drop(outbox);
    let _ = writer.await;
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
    use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};

    use super::*;

    /// Accepts `good-<userid>` as the token of `userid`; `down` is unreachable.
    struct FakeAuth;

    impl TokenCheck for FakeAuth {
        async fn check(&self, userid: &str, token: &str) -> Result<bool, String> {
            if userid == "down" {
                return Err("auth unreachable".into());
            }
            Ok(token == format!("good-{userid}"))
        }
    }

    struct Client {
        lines: tokio::io::Lines<BufReader<OwnedReadHalf>>,
        write: OwnedWriteHalf,
    }

    impl Client {
        async fn connect(port: u16) -> Client {
            let stream = TcpStream::connect(("127.0.0.1", port))
                .await
                .expect("connect");
            let (read, write) = stream.into_split();
            let mut c = Client {
                lines: BufReader::new(read).lines(),
                write,
            };
            assert_eq!(c.next().await.as_deref(), Some(GREETING));
            c
        }
        async fn send(&mut self, bytes: &[u8]) {
            self.write.write_all(bytes).await.expect("write");
        }
        /// The next line from the server; `None` once it closed. Generous timeout so a
        /// bug hangs no test.
        async fn next(&mut self) -> Option<String> {
            tokio::time::timeout(Duration::from_secs(10), self.lines.next_line())
                .await
                .expect("the server answers")
                .expect("read")
        }
        /// Sends a line and checks the reply.
        async fn check(&mut self, line: &str, expect: &str) {
            self.send(format!("{line}\n").as_bytes()).await;
            assert_eq!(self.next().await.as_deref(), Some(expect), "after {line:?}");
        }
    }

    async fn start() -> u16 {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let port = listener.local_addr().expect("addr").port();
        tokio::spawn(run(listener, Arc::new(FakeAuth)));
        port
    }

    #[tokio::test]
    async fn messages_reach_every_connection_of_the_recipient() {
        let port = start().await;
        let mut alice = Client::connect(port).await;
        let mut bob = Client::connect(port).await;
        let mut bob2 = Client::connect(port).await;
        alice.check("AUTH alice good-alice", "OK AUTH alice").await;
        bob.check("auth bob good-bob", "OK AUTH bob").await;
        bob2.check("AUTH bob good-bob", "OK AUTH bob").await;
        alice.check("SEND bob hello, bob!", "OK SENT 2").await;
        assert_eq!(bob.next().await.as_deref(), Some("MSG alice hello, bob!"));
        assert_eq!(bob2.next().await.as_deref(), Some("MSG alice hello, bob!"));
        bob.check("SEND alice hi", "OK SENT 1").await;
        assert_eq!(alice.next().await.as_deref(), Some("MSG bob hi"));

        // A closed connection no longer receives; the other one still does.
        bob2.check("QUIT", "BYE").await;
        assert_eq!(bob2.next().await, None);
        alice.check("SEND bob again", "OK SENT 1").await;
        assert_eq!(bob.next().await.as_deref(), Some("MSG alice again"));
        alice.check("PING", "PONG").await;
    }

    #[tokio::test]
    async fn errors_are_lines_not_hangups() {
        let port = start().await;
        let mut c = Client::connect(port).await;
        c.check(
            "SEND bob hi",
            "ERR not authenticated (send AUTH <userid> <token> first)",
        )
        .await;
        c.check("AUTH alice good-bob", "ERR bad token").await;
        c.check("AUTH alice", "ERR usage: AUTH <userid> <token>")
            .await;
        c.check("AUTH down x", "ERR auth service unavailable, try again")
            .await;
        c.check(
            "\u{1}\u{2}garbage",
            "ERR unknown command (expected AUTH, SEND, PING or QUIT)",
        )
        .await;
        c.send(b"\xff\xfe\n").await;
        assert_eq!(c.next().await.as_deref(), Some("ERR line is not UTF-8"));
        c.send(&vec![b'x'; MAX_LINE * 3]).await;
        c.send(b"\n").await;
        assert_eq!(
            c.next().await.as_deref(),
            Some("ERR line too long (at most 4096 bytes)")
        );
        c.check("AUTH alice good-alice", "OK AUTH alice").await;
        c.check(
            "AUTH alice good-alice",
            "ERR already authenticated as alice",
        )
        .await;
        c.check("SEND nobody hi", "ERR unknown recipient nobody")
            .await;
        c.check("SEND alice", "ERR usage: SEND <userid> <text>")
            .await;
        // After all that, still working.
        // To oneself: the message is queued before the confirmation.
        c.check("SEND alice to myself", "MSG alice to myself").await;
        assert_eq!(c.next().await.as_deref(), Some("OK SENT 1"));
    }

    #[tokio::test]
    async fn disconnecting_mid_message_delivers_nothing_and_unregisters() {
        let port = start().await;
        let mut alice = Client::connect(port).await;
        alice.check("AUTH alice good-alice", "OK AUTH alice").await;
        let mut bob = Client::connect(port).await;
        bob.check("AUTH bob good-bob", "OK AUTH bob").await;
        // Half a line, then gone.
        bob.send(b"SEND alice this never ").await;
        drop(bob);
        let mut carol = Client::connect(port).await;
        carol.check("AUTH carol good-carol", "OK AUTH carol").await;
        // bob's connection is forgotten once the server sees it close; poll for that
        // rather than assume a timing.
        let mut tries = 0;
        loop {
            carol.send(b"SEND bob anyone?\n").await;
            match carol.next().await.as_deref() {
                Some("ERR unknown recipient bob") => break,
                Some("OK SENT 1") if tries < 100 => {
                    tries += 1;
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
                other => panic!("unexpected {other:?}"),
            }
        }
        carol.check("SEND alice still here", "OK SENT 1").await;
        // alice got carol's message and nothing of bob's half line.
        assert_eq!(alice.next().await.as_deref(), Some("MSG carol still here"));
    }

    #[tokio::test]
    async fn reads_lines_and_their_edge_cases() {
        async fn check(input: &[u8], expect: &[Line]) {
            let mut r = BufReader::new(input);
            for e in expect {
                assert_eq!(&read_line(&mut r).await, e, "{input:?}");
            }
        }
        let long = [vec![b'a'; MAX_LINE + 1], b"\nok\n".to_vec()].concat();
        let exact = [vec![b'a'; MAX_LINE], b"\n".to_vec()].concat();
        check(
            b"a\r\nb\n",
            &[Line::Text("a\r".into()), Line::Text("b".into())],
        )
        .await;
        check(b"", &[Line::Closed { partial: 0 }]).await;
        check(b"half", &[Line::Closed { partial: 4 }]).await;
        check(b"\xc3\n", &[Line::NotUtf8]).await;
        check(&long, &[Line::TooLong, Line::Text("ok".into())]).await;
        check(&exact, &[Line::Text("a".repeat(MAX_LINE))]).await;
    }
}
