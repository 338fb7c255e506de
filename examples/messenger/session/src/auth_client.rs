//! Checking a (userid, token) pair with the auth service: `POST /token/{userid}` with the
//! token as body, 200 = valid, 401 = not. A hand-written HTTP/1.1 request (one request,
//! `Connection: close`) keeps the session service free of an HTTP client dependency.

use std::future::Future;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// Anything that can tell whether a token is valid for a user.
pub trait TokenCheck: Send + Sync + 'static {
    /// `Ok(true)` valid, `Ok(false)` invalid; `Err` when the answer could not be had.
    fn check(&self, userid: &str, token: &str)
    -> impl Future<Output = Result<bool, String>> + Send;
}

/// The auth service over HTTP.
pub struct HttpAuth {
    host: String,
    port: u16,
}

/// How long one check may take before the client gets an error line.
const TIMEOUT: Duration = Duration::from_secs(5);

impl HttpAuth {
    pub fn new(host: &str, port: u16) -> Self {
        HttpAuth {
            host: host.to_owned(),
            port,
        }
    }

    async fn request(&self, userid: &str, token: &str) -> Result<bool, String> {
        let mut stream = TcpStream::connect((self.host.as_str(), self.port))
            .await
            .map_err(|e| format!("cannot reach auth at {}:{}: {e}", self.host, self.port))?;
        let request = format!(
            "POST /token/{} HTTP/1.1\r\nHost: {}:{}\r\nContent-Type: text/plain\r\n\
             Content-Length: {}\r\nConnection: close\r\n\r\n{token}",
            percent_encode(userid),
            self.host,
            self.port,
            token.len()
        );
        stream
            .write_all(request.as_bytes())
            .await
            .map_err(|e| format!("auth request failed: {e}"))?;
        let mut response = Vec::new();
        stream
            .read_to_end(&mut response)
            .await
            .map_err(|e| format!("auth response failed: {e}"))?;
        status_of(&response)
    }
}

impl TokenCheck for HttpAuth {
    async fn check(&self, userid: &str, token: &str) -> Result<bool, String> {
        tokio::time::timeout(TIMEOUT, self.request(userid, token))
            .await
            .unwrap_or_else(|_| Err("auth did not answer in time".into()))
    }
}

/// 200 → valid, 401/404 → invalid, anything else (or no status line) → error.
fn status_of(response: &[u8]) -> Result<bool, String> {
    let line = response.split(|&b| b == b'\n').next().unwrap_or(&[]);
    let line = String::from_utf8_lossy(line);
    let mut words = line.split_whitespace();
    match (words.next(), words.next()) {
        (Some(v), Some("200")) if v.starts_with("HTTP/") => Ok(true),
        (Some(v), Some("401" | "404")) if v.starts_with("HTTP/") => Ok(false),
        _ => Err(format!("unexpected answer from auth: {:?}", line.trim())),
    }
}

/// Percent-encodes everything but unreserved characters, for a path segment.
fn percent_encode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::net::TcpListener;

    #[test]
    fn status_lines() {
        for (response, expect) in [
            ("HTTP/1.1 200 OK\r\n\r\nvalid", Ok(true)),
            ("HTTP/1.1 401 Unauthorized\r\n\r\n", Ok(false)),
            ("HTTP/1.0 404 Not Found\r\n", Ok(false)),
            ("HTTP/1.1 503 Service Unavailable\r\n", Err(())),
            ("", Err(())),
            ("garbage", Err(())),
        ] {
            assert_eq!(
                status_of(response.as_bytes()).map_err(|_| ()),
                expect,
                "{response:?}"
            );
        }
    }

    #[test]
    fn encoding() {
        assert_eq!(percent_encode("alice-1.x_~"), "alice-1.x_~");
        assert_eq!(percent_encode("a/b é"), "a%2Fb%20%C3%A9");
    }

    /// A real request to a one-shot fake auth server on loopback: what is sent, and how
    /// the answer is read.
    #[tokio::test]
    async fn asks_auth_over_http() {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let port = listener.local_addr().expect("addr").port();
        let server = tokio::spawn(async move {
            let (mut s, _) = listener.accept().await.expect("accept");
            let mut buf = vec![0u8; 4096];
            let mut got = Vec::new();
            // Headers plus the 4-byte body.
            while !String::from_utf8_lossy(&got).ends_with("\r\n\r\ntokn") {
                let n = s.read(&mut buf).await.expect("read");
                assert!(
                    n > 0,
                    "client closed early: {:?}",
                    String::from_utf8_lossy(&got)
                );
                got.extend_from_slice(&buf[..n]);
            }
            s.write_all(b"HTTP/1.1 401 Unauthorized\r\nContent-Length: 0\r\n\r\n")
                .await
                .expect("write");
            String::from_utf8(got).expect("utf8")
        });
        let auth = HttpAuth::new("127.0.0.1", port);
        assert_eq!(auth.check("al ice", "tokn").await, Ok(false));
        let request = server.await.expect("server");
        assert!(
            request.starts_with("POST /token/al%20ice HTTP/1.1\r\n"),
            "{request}"
        );
        assert!(request.contains("Content-Length: 4\r\n"), "{request}");

        // Nobody listening any more: an error, not a verdict.
        assert!(auth.check("alice", "tokn").await.is_err());
    }
}
