//! The session protocol: UTF-8 lines ending in `\n` (a `\r` before it is ignored).
//!
//! On connect the server says `HELLO session`. Then the client sends:
//!
//! | client | server |
//! |---|---|
//! | `AUTH <userid> <token>` | `OK AUTH <userid>`, or `ERR bad token` |
//! | `SEND <userid> <text>` | `OK SENT <n>` (delivered to n connections), or `ERR unknown recipient <userid>` |
//! | `PING` | `PONG` |
//! | `QUIT` | `BYE`, then the server closes the connection |
//!
//! Every open connection of the recipient gets `MSG <sender> <text>`. Keywords are
//! case-insensitive; empty lines are ignored. Anything else gets an `ERR …` line and the
//! connection stays open: unknown commands, missing arguments, `SEND` before `AUTH`,
//! lines that are not UTF-8 or longer than [`MAX_LINE`] bytes.

/// The longest line accepted, in bytes (without the newline).
pub const MAX_LINE: usize = 4096;

/// The first line the server sends.
pub const GREETING: &str = "HELLO session";

/// A parsed client line.
#[derive(Debug, PartialEq)]
pub enum Request<'a> {
    Auth {
        userid: &'a str,
        token: &'a str,
    },
    Send {
        to: &'a str,
        text: &'a str,
    },
    Ping,
    Quit,
    /// An empty line: nothing to do.
    Nothing,
}

/// Parses one line (without its newline); `Err` is the error line to answer.
pub fn parse(line: &str) -> Result<Request<'_>, String> {
    let line = line.strip_suffix('\r').unwrap_or(line).trim_start();
    if line.trim().is_empty() {
        return Ok(Request::Nothing);
    }
    let (keyword, rest) = line.split_once(' ').unwrap_or((line, ""));
    match keyword.to_ascii_uppercase().as_str() {
        "AUTH" => {
            let mut words = rest.split_whitespace();
            match (words.next(), words.next(), words.next()) {
                (Some(userid), Some(token), None) => Ok(Request::Auth { userid, token }),
                _ => Err("ERR usage: AUTH <userid> <token>".into()),
            }
        }
        "SEND" => {
            let rest = rest.trim_start();
            match rest.split_once(' ') {
                Some((to, text)) if !text.trim().is_empty() => Ok(Request::Send { to, text }),
                _ => Err("ERR usage: SEND <userid> <text>".into()),
            }
        }
        "PING" if rest.trim().is_empty() => Ok(Request::Ping),
        "QUIT" if rest.trim().is_empty() => Ok(Request::Quit),
        _ => Err("ERR unknown command (expected AUTH, SEND, PING or QUIT)".into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(line: &str, expect: Result<Request<'_>, &str>) {
        assert_eq!(parse(line), expect.map_err(String::from), "{line:?}");
    }

    #[test]
    fn lines() {
        check(
            "AUTH alice 00ff",
            Ok(Request::Auth {
                userid: "alice",
                token: "00ff",
            }),
        );
        check(
            "auth alice 00ff\r",
            Ok(Request::Auth {
                userid: "alice",
                token: "00ff",
            }),
        );
        check("AUTH alice", Err("ERR usage: AUTH <userid> <token>"));
        check(
            "AUTH alice t extra",
            Err("ERR usage: AUTH <userid> <token>"),
        );
        check(
            "SEND bob hello there,  bob ",
            Ok(Request::Send {
                to: "bob",
                text: "hello there,  bob ",
            }),
        );
        check(
            "send bob x",
            Ok(Request::Send {
                to: "bob",
                text: "x",
            }),
        );
        check("SEND bob", Err("ERR usage: SEND <userid> <text>"));
        check("SEND bob   ", Err("ERR usage: SEND <userid> <text>"));
        check("PING", Ok(Request::Ping));
        check("quit", Ok(Request::Quit));
        check("", Ok(Request::Nothing));
        check("  \r", Ok(Request::Nothing));
        check(
            "GET / HTTP/1.1",
            Err("ERR unknown command (expected AUTH, SEND, PING or QUIT)"),
        );
        check(
            "\u{1}\u{7f}garbage",
            Err("ERR unknown command (expected AUTH, SEND, PING or QUIT)"),
        );
        check(
            "PING now",
            Err("ERR unknown command (expected AUTH, SEND, PING or QUIT)"),
        );
    }
}
