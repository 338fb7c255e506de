//! Slows down password guessing at `/login`: failed logins are counted per user name
//! and per client address in fixed windows, and once a key has too many, further
//! attempts for it are refused (without checking the password) until its window ends.
//!
//! The limits are generous for people (ten mistakes for one name in a quarter of an
//! hour) and ruinous for guessing. The address limit is higher because several people
//! may share one (a reverse proxy, an office NAT). Counts live in memory: a restart
//! forgets them, like the sessions. Tokens are not throttled: 256 random bits cannot be
//! guessed.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{LazyLock, Mutex};

/// Length of a counting window (ms).
pub const WINDOW_MS: i64 = 15 * 60 * 1000;

/// Failed logins for one user name within a window before it is locked.
pub const MAX_FAILURES_PER_USER: u32 = 10;

/// Failed logins from one address within a window before it is locked.
pub const MAX_FAILURES_PER_ADDR: u32 = 50;

/// At most this many keys are counted; the oldest windows go first.
const MAX_KEYS: usize = 10_000;

/// What is counted.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
enum Key {
    User(String),
    Addr(IpAddr),
}

impl Key {
    fn limit(&self) -> u32 {
        match self {
            Key::User(_) => MAX_FAILURES_PER_USER,
            Key::Addr(_) => MAX_FAILURES_PER_ADDR,
        }
    }
}

#[derive(Debug, Clone, Copy)]
struct Window {
    start_ms: i64,
    failures: u32,
}

/// Failure counts per key.
#[derive(Debug, Default)]
pub struct Throttle {
    counts: Mutex<HashMap<Key, Window>>,
}

fn keys(user: &str, addr: Option<IpAddr>) -> Vec<Key> {
    let mut keys = vec![Key::User(user.to_owned())];
    keys.extend(addr.map(Key::Addr));
    keys
}

impl Throttle {
    fn counts(&self) -> std::sync::MutexGuard<'_, HashMap<Key, Window>> {
        self.counts.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Whether a login for `user` from `addr` may be tried at `now`; `false` while the
    /// name or the address has used up its failures in the current window.
    pub fn allowed(&self, user: &str, addr: Option<IpAddr>, now: i64) -> bool {
        let counts = self.counts();
        keys(user, addr).iter().all(|k| {
            counts
                .get(k)
                .is_none_or(|w| now - w.start_ms >= WINDOW_MS || w.failures < k.limit())
        })
    }

    /// Counts a failed login.
    pub fn failed(&self, user: &str, addr: Option<IpAddr>, now: i64) {
        let mut counts = self.counts();
        for key in keys(user, addr) {
            if !counts.contains_key(&key) && counts.len() >= MAX_KEYS {
                counts.retain(|_, w| now - w.start_ms < WINDOW_MS);
                if counts.len() >= MAX_KEYS
                    && let Some(oldest) = counts
                        .iter()
                        .min_by_key(|(_, w)| w.start_ms)
                        .map(|(k, _)| k.clone())
                {
                    counts.remove(&oldest);
                }
            }
            let w = counts.entry(key).or_insert(Window {
                start_ms: now,
                failures: 0,
            });
            if now - w.start_ms >= WINDOW_MS {
                *w = Window {
                    start_ms: now,
                    failures: 0,
                };
            }
            w.failures += 1;
        }
    }

    /// Forgets the failures of a user name after it logged in. (The address keeps its
    /// count: one right password must not reopen guessing for other names.)
    pub fn succeeded(&self, user: &str) {
        self.counts().remove(&Key::User(user.to_owned()));
    }
}

/// The server's throttle for password logins.
pub static LOGINS: LazyLock<Throttle> = LazyLock::new(Throttle::default);

#[cfg(test)]
mod tests {
    use super::*;

    const T0: i64 = 1_800_000_000_000;

    #[test]
    fn a_user_is_locked_after_ten_failures_until_the_window_ends() {
        let t = Throttle::default();
        for i in 0..MAX_FAILURES_PER_USER {
            assert!(t.allowed("alice", None, T0), "attempt {i}");
            t.failed("alice", None, T0 + i64::from(i));
        }
        assert!(!t.allowed("alice", None, T0 + 100));
        assert!(
            t.allowed("bob", None, T0 + 100),
            "other names are not locked"
        );
        assert!(t.allowed("alice", None, T0 + WINDOW_MS), "a new window");
        // The new window counts from zero.
        t.failed("alice", None, T0 + WINDOW_MS);
        assert!(t.allowed("alice", None, T0 + WINDOW_MS + 1));
    }

    #[test]
    fn an_address_is_locked_across_names() {
        let t = Throttle::default();
        let addr: Option<IpAddr> = "192.0.2.7".parse().ok();
        for i in 0..MAX_FAILURES_PER_ADDR {
            t.failed(&format!("user{i}"), addr, T0);
        }
        assert!(!t.allowed("someone-new", addr, T0 + 1));
        assert!(t.allowed("someone-new", "192.0.2.8".parse().ok(), T0 + 1));
        assert!(t.allowed("someone-new", None, T0 + 1));
    }

    #[test]
    fn success_clears_the_name_but_not_the_address() {
        let t = Throttle::default();
        let addr: Option<IpAddr> = "192.0.2.9".parse().ok();
        for _ in 0..MAX_FAILURES_PER_USER {
            t.failed("carol", addr, T0);
        }
        assert!(!t.allowed("carol", None, T0));
        t.succeeded("carol");
        assert!(t.allowed("carol", None, T0));
        for _ in MAX_FAILURES_PER_USER..MAX_FAILURES_PER_ADDR {
            t.failed("dave", addr, T0);
        }
        assert!(!t.allowed("carol", addr, T0), "the address stays counted");
    }
}
