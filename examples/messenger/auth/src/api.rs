//! The REST API as plain functions of (method, path, query, body) → (status, body), so
//! every rule is unit-tested without sockets; `http.rs` only adapts hyper to it.
//!
//! | request | answers |
//! |---|---|
//! | `PUT /user` form `userid`, `password` | 200 registered, 409 exists, 400 missing field |
//! | `DELETE /user?userid=&password=` | 200 deleted, 404 unknown user, 401 wrong password |
//! | `GET /token?userid=&password=` | 200 + token, 404 unknown user, 400 wrong password |
//! | `POST /token/{userid}` body token | 200 valid, 401 invalid, expired or malformed |
//! | `GET /health` | 200 `ok` |
//!
//! While the database is unreachable every answer but `/health` is 503.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use crate::log;
use crate::password;
use crate::store::{Store, StoreError};

/// The API over a store.
pub struct Api<S> {
    store: S,
    token_ttl: Duration,
}

/// A status code and a plain-text body.
pub type Reply = (u16, String);

fn reply(status: u16, body: impl Into<String>) -> Reply {
    (status, body.into())
}

fn unavailable(e: StoreError) -> Reply {
    log::warn(&format!("database unavailable: {e}"));
    reply(503, "database unavailable")
}

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

impl<S: Store> Api<S> {
    pub fn new(store: S, token_ttl: Duration) -> Self {
        Api { store, token_ttl }
    }

    /// Answers one request.
    pub async fn handle(&self, method: &str, path: &str, query: &str, body: &[u8]) -> Reply {
        let result = match (method, path) {
            (_, "/health") if method == "GET" || method == "HEAD" => Ok(reply(200, "ok")),
            ("PUT", "/user") => {
                // Form fields in the body; the query string works too.
                let mut fields = form(query);
                fields.extend(form(&String::from_utf8_lossy(body)));
                self.register(&fields).await
            }
            ("DELETE", "/user") => self.delete(&form(query)).await,
            ("GET", "/token") => self.issue_token(&form(query)).await,
            ("POST", p) if p.starts_with("/token/") => {
                let userid = percent_decode(&p["/token/".len()..]);
                self.verify_token(&userid, &String::from_utf8_lossy(body))
                    .await
            }
            (_, "/health" | "/user" | "/token") => Ok(reply(405, "method not allowed")),
            (_, p) if p.starts_with("/token/") => Ok(reply(405, "method not allowed")),
            _ => Ok(reply(404, "not found")),
        };
        result.unwrap_or_else(unavailable)
    }

    async fn register(&self, fields: &Fields) -> Result<Reply, StoreError> {
        let (userid, password) = match credentials(fields) {
            Ok(c) => c,
            Err(r) => return Ok(r),
        };
        let hash = match password::hash(password) {
            Ok(h) => h,
            Err(e) => return Ok(reply(500, e)),
        };
        Ok(if self.store.add_user(userid, &hash).await? {
            log::info(&format!("registered user {userid}"));
            reply(200, "registered")
        } else {
            reply(409, "user already exists")
        })
    }

    /// The user's stored hash checked against the given password: `Err(reply)` for an
    /// unknown user (404) or a wrong password (`wrong_status`).
    async fn authenticate<'f>(
        &self,
        fields: &'f Fields,
        wrong_status: u16,
    ) -> Result<Result<&'f str, Reply>, StoreError> {
        let (userid, password) = match credentials(fields) {
            Ok(c) => c,
            Err(r) => return Ok(Err(r)),
        };
        let Some(stored) = self.store.password_hash(userid).await? else {
            return Ok(Err(reply(404, "unknown user")));
        };
        if !password::verify(password, &stored) {
            log::debug(&format!("wrong password for {userid}"));
            return Ok(Err(reply(wrong_status, "wrong password")));
        }
        Ok(Ok(userid))
    }

    async fn delete(&self, fields: &Fields) -> Result<Reply, StoreError> {
        let userid = match self.authenticate(fields, 401).await? {
            Ok(u) => u,
            Err(r) => return Ok(r),
        };
        self.store.delete_user(userid).await?;
        log::info(&format!("deleted user {userid}"));
        Ok(reply(200, "deleted"))
    }

    async fn issue_token(&self, fields: &Fields) -> Result<Reply, StoreError> {
        let userid = match self.authenticate(fields, 400).await? {
            Ok(u) => u,
            Err(r) => return Ok(r),
        };
        let token = password::token();
        let expires = now() + self.token_ttl.as_secs();
        self.store.add_token(userid, &token, expires).await?;
        log::debug(&format!("issued a token for {userid}"));
        Ok(reply(200, token))
    }

    async fn verify_token(&self, userid: &str, body: &str) -> Result<Reply, StoreError> {
        let token = body.trim();
        if !password::is_token_shaped(token) {
            log::debug(&format!("malformed token for {userid}"));
            return Ok(reply(401, "malformed token"));
        }
        Ok(if self.store.token_valid(userid, token, now()).await? {
            reply(200, "valid")
        } else {
            reply(401, "invalid or expired token")
        })
    }
}

type Fields = Vec<(String, String)>;

fn field<'f>(fields: &'f Fields, name: &str) -> Option<&'f str> {
    fields
        .iter()
        .rev()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.as_str())
}

/// `userid` and `password`, both present and non-empty, the userid usable as a word of
/// the session protocol (no spaces or control characters, at most 64 bytes).
fn credentials(fields: &Fields) -> Result<(&str, &str), Reply> {
    let userid = field(fields, "userid").unwrap_or("");
    let password = field(fields, "password").unwrap_or("");
    if userid.is_empty() || password.is_empty() {
        return Err(reply(400, "userid and password are required"));
    }
    if userid.len() > 64 || userid.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err(reply(
            400,
            "userid must be at most 64 bytes, without spaces or control characters",
        ));
    }
    Ok((userid, password))
}

/// Decodes `application/x-www-form-urlencoded` text (also a query string).
pub fn form(text: &str) -> Fields {
    text.split('&')
        .filter(|pair| !pair.is_empty())
        .map(|pair| {
            let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
            (percent_decode(k), percent_decode(v))
        })
        .collect()
}

/// `+` → space and `%XX` → byte; malformed escapes are kept as written.
pub fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' => match (
                bytes.get(i + 1).and_then(hex),
                bytes.get(i + 2).and_then(hex),
            ) {
                (Some(h), Some(l)) => {
                    out.push(h * 16 + l);
                    i += 2;
                }
                _ => out.push(b'%'),
            },
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn hex(b: &u8) -> Option<u8> {
    (*b as char).to_digit(16).map(|d| d as u8)
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::Ordering;

    use super::*;
    use crate::store::memory::MemoryStore;

    fn api() -> Api<MemoryStore> {
        Api::new(MemoryStore::default(), Duration::from_secs(3600))
    }

    /// Runs requests in order against one API, checking each reply's status (and body
    /// when given; `*` accepts any body).
    fn check(api: &Api<MemoryStore>, steps: &[(&str, &str, &str, &str, u16, &str)]) {
        let rt = tokio::runtime::Builder::new_current_thread()
            .build()
            .expect("runtime");
        for &(method, path, query, body, status, expect) in steps {
            let (got, text) = rt.block_on(api.handle(method, path, query, body.as_bytes()));
            assert_eq!(
                got, status,
                "{method} {path}?{query} {body:?} answered {got} {text:?}"
            );
            if expect != "*" {
                assert_eq!(text, expect, "{method} {path}?{query} {body:?}");
            }
        }
    }

    fn token(api: &Api<MemoryStore>, query: &str) -> String {
        let rt = tokio::runtime::Builder::new_current_thread()
            .build()
            .expect("runtime");
        let (status, token) = rt.block_on(api.handle("GET", "/token", query, b""));
        assert_eq!(status, 200, "{token}");
        token
    }

    #[test]
    fn registration() {
        let api = api();
        check(
            &api,
            &[
                (
                    "PUT",
                    "/user",
                    "",
                    "userid=alice&password=pw",
                    200,
                    "registered",
                ),
                (
                    "PUT",
                    "/user",
                    "",
                    "userid=alice&password=other",
                    409,
                    "user already exists",
                ),
                (
                    "PUT",
                    "/user",
                    "",
                    "userid=bob",
                    400,
                    "userid and password are required",
                ),
                (
                    "PUT",
                    "/user",
                    "",
                    "password=pw",
                    400,
                    "userid and password are required",
                ),
                ("PUT", "/user", "", "userid=&password=pw", 400, "*"),
                ("PUT", "/user", "", "", 400, "*"),
                ("PUT", "/user", "", "userid=a+b&password=pw", 400, "*"),
                ("PUT", "/user", "", "\u{0}\u{ff}garbage&&=", 400, "*"),
                (
                    "PUT",
                    "/user",
                    "userid=carol&password=pw",
                    "",
                    200,
                    "registered",
                ),
                (
                    "PUT",
                    "/user",
                    "",
                    "userid=d%C3%A9j%C3%A0&password=p%26w",
                    200,
                    "*",
                ),
            ],
        );
        // Hashed, never in clear.
        let stored = api.store.stored_hash("alice").expect("alice");
        assert!(
            stored.starts_with("$argon2") && !stored.contains("pw"),
            "{stored}"
        );
        assert!(api.store.stored_hash("déjà").is_some());
    }

    #[test]
    fn tokens() {
        let api = api();
        check(
            &api,
            &[("PUT", "/user", "", "userid=alice&password=pw", 200, "*")],
        );
        let t = token(&api, "userid=alice&password=pw");
        assert!(password::is_token_shaped(&t), "{t}");
        let other = token(&api, "userid=alice&password=pw");
        assert_ne!(t, other);
        check(
            &api,
            &[
                ("POST", "/token/alice", "", &t, 200, "valid"),
                (
                    "POST",
                    "/token/alice",
                    "",
                    &format!("{other}\n"),
                    200,
                    "valid",
                ),
                (
                    "POST",
                    "/token/bob",
                    "",
                    &t,
                    401,
                    "invalid or expired token",
                ),
                (
                    "POST",
                    "/token/alice",
                    "",
                    &"0".repeat(64),
                    401,
                    "invalid or expired token",
                ),
                (
                    "POST",
                    "/token/alice",
                    "",
                    "not-a-token",
                    401,
                    "malformed token",
                ),
                ("POST", "/token/alice", "", "", 401, "malformed token"),
                (
                    "POST",
                    "/token/alice",
                    "",
                    &t.to_uppercase(),
                    401,
                    "malformed token",
                ),
                (
                    "GET",
                    "/token",
                    "userid=alice&password=nope",
                    "",
                    400,
                    "wrong password",
                ),
                (
                    "GET",
                    "/token",
                    "userid=nobody&password=pw",
                    "",
                    404,
                    "unknown user",
                ),
                ("GET", "/token", "userid=alice", "", 400, "*"),
                ("GET", "/token/alice", "", "", 405, "*"),
            ],
        );
    }

    #[test]
    fn tokens_expire() {
        let api = Api::new(MemoryStore::default(), Duration::ZERO);
        check(
            &api,
            &[("PUT", "/user", "", "userid=alice&password=pw", 200, "*")],
        );
        let t = token(&api, "userid=alice&password=pw");
        check(
            &api,
            &[(
                "POST",
                "/token/alice",
                "",
                &t,
                401,
                "invalid or expired token",
            )],
        );
    }

    #[test]
    fn deletion() {
        let api = api();
        check(
            &api,
            &[("PUT", "/user", "", "userid=alice&password=pw", 200, "*")],
        );
        let t = token(&api, "userid=alice&password=pw");
        check(
            &api,
            &[
                (
                    "DELETE",
                    "/user",
                    "userid=alice&password=nope",
                    "",
                    401,
                    "wrong password",
                ),
                (
                    "DELETE",
                    "/user",
                    "userid=nobody&password=pw",
                    "",
                    404,
                    "unknown user",
                ),
                (
                    "DELETE",
                    "/user",
                    "userid=alice&password=pw",
                    "",
                    200,
                    "deleted",
                ),
                ("POST", "/token/alice", "", &t, 401, "*"),
                ("DELETE", "/user", "userid=alice&password=pw", "", 404, "*"),
                ("PUT", "/user", "", "userid=alice&password=new", 200, "*"),
            ],
        );
    }

    #[test]
    fn routing() {
        check(
            &api(),
            &[
                ("GET", "/health", "", "", 200, "ok"),
                ("POST", "/health", "", "", 405, "*"),
                ("GET", "/user", "", "", 405, "*"),
                ("GET", "/nowhere", "", "", 404, "not found"),
            ],
        );
    }

    #[test]
    fn database_down_then_back() {
        let api = api();
        check(
            &api,
            &[("PUT", "/user", "", "userid=alice&password=pw", 200, "*")],
        );
        api.store.down.store(true, Ordering::SeqCst);
        check(
            &api,
            &[
                (
                    "PUT",
                    "/user",
                    "",
                    "userid=bob&password=pw",
                    503,
                    "database unavailable",
                ),
                ("GET", "/token", "userid=alice&password=pw", "", 503, "*"),
                ("GET", "/health", "", "", 200, "ok"),
            ],
        );
        api.store.down.store(false, Ordering::SeqCst);
        check(
            &api,
            &[
                ("PUT", "/user", "", "userid=bob&password=pw", 200, "*"),
                ("GET", "/token", "userid=alice&password=pw", "", 200, "*"),
            ],
        );
    }

    #[test]
    fn form_decoding() {
        for (input, expect) in [
            ("a=1&b=2", vec![("a", "1"), ("b", "2")]),
            ("a=x+y%21&&c", vec![("a", "x y!"), ("c", "")]),
            ("a=%zz%4", vec![("a", "%zz%4")]),
            ("", vec![]),
        ] {
            let expect: Fields = expect
                .into_iter()
                .map(|(k, v)| (k.to_owned(), v.to_owned()))
                .collect();
            assert_eq!(form(input), expect, "{input:?}");
        }
    }
}
