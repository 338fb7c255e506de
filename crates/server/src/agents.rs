//! [`Registry`]: the executors the server has heard from lately — the built-in one and
//! remote agents — what they can run, and which leases each holds.
//!
//! It lives in memory. An executor that is alive asks for work or heartbeats at least
//! once per lease time to live, so a restarted server knows every live executor again
//! within one ttl; until then a queued job may say it is waiting for an executor that is
//! in fact about to ask.
//!
//! What it answers:
//! - which executors are online (`GET /api/agents`): seen within the lease ttl, or
//!   waiting in a lease long-poll right now;
//! - why a queued job waits ([`Registry::waiting_reason`]): no online executor has the
//!   labels its `runs_on` asks for;
//! - who holds a lease ([`Registry::holder`]): the executor and, over HTTP, the token it
//!   was leased with, so that a report under another token is refused.

use std::collections::{BTreeMap, HashMap};
use std::sync::Mutex;

use gantry_protocol::ExecutorInfo;
use gantry_store::Millis;

/// Executors not heard from for this long are forgotten entirely (they were long shown
/// as offline).
const FORGET_AFTER_MS: Millis = 24 * 3600 * 1000;

/// The registry (one per server, in [`Shared`](crate::state::Shared)).
#[derive(Debug, Default)]
pub struct Registry {
    inner: Mutex<Inner>,
}

#[derive(Debug, Default)]
struct Inner {
    executors: BTreeMap<String, Entry>,
    leases: HashMap<String, Holder>,
}

#[derive(Debug, Clone)]
struct Entry {
    info: ExecutorInfo,
    token: Option<String>,
    last_seen: Millis,
    /// Lease long-polls in progress.
    polling: u32,
}

/// Who holds a lease.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Holder {
    /// The executor's name.
    pub executor: String,
    /// Id of the token the lease was taken with (`None` in-process).
    pub token_id: Option<i64>,
    /// The job: run id and plan index.
    pub job: (i64, i64),
    /// When the lease was handed out.
    pub since: Millis,
}

/// An online executor, as `GET /api/agents` shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Online {
    /// Its name.
    pub name: String,
    /// Its labels.
    pub labels: BTreeMap<String, String>,
    /// Jobs it runs at once.
    pub capacity: u32,
    /// Leases it holds now.
    pub running: usize,
    /// When it last asked for work, heartbeat or reported.
    pub last_seen: Millis,
    /// Its protocol version.
    pub protocol: u32,
    /// Name of the token it uses (`None` for the built-in executor).
    pub token: Option<String>,
    /// Whether it is waiting for work right now.
    pub polling: bool,
}

/// Ends a long-poll's registration when dropped.
#[derive(Debug)]
pub struct Polling<'a> {
    registry: &'a Registry,
    name: String,
}

impl Drop for Polling<'_> {
    fn drop(&mut self) {
        let mut inner = self.registry.lock();
        if let Some(e) = inner.executors.get_mut(&self.name) {
            e.polling = e.polling.saturating_sub(1);
            e.last_seen = e.last_seen.max(crate::state::now_ms());
        }
    }
}

impl Registry {
    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// `info` asked for work or said hello at `now`, with the token named `token`.
    pub fn seen(&self, info: &ExecutorInfo, token: Option<&str>, now: Millis) {
        let mut inner = self.lock();
        let entry = inner
            .executors
            .entry(info.name.clone())
            .or_insert_with(|| Entry {
                info: info.clone(),
                token: None,
                last_seen: now,
                polling: 0,
            });
        entry.info = info.clone();
        entry.token = token.map(str::to_owned);
        entry.last_seen = entry.last_seen.max(now);
    }

    /// `info` waits for work until the returned guard is dropped; it counts as online
    /// meanwhile, however long the wait.
    pub fn polling(&self, info: &ExecutorInfo, token: Option<&str>, now: Millis) -> Polling<'_> {
        self.seen(info, token, now);
        if let Some(e) = self.lock().executors.get_mut(&info.name) {
            e.polling += 1;
        }
        Polling {
            registry: self,
            name: info.name.clone(),
        }
    }

    /// The executor named `name` was heard from (a heartbeat, a report).
    pub fn touch(&self, name: &str, now: Millis) {
        if let Some(e) = self.lock().executors.get_mut(name) {
            e.last_seen = e.last_seen.max(now);
        }
    }

    /// Records that `holder` holds `lease`.
    pub fn hold(&self, lease: &str, holder: Holder) {
        self.lock().leases.insert(lease.to_owned(), holder);
    }

    /// Who holds `lease`, if this server handed it out since it started.
    pub fn holder(&self, lease: &str) -> Option<Holder> {
        self.lock().leases.get(lease).cloned()
    }

    /// Forgets `lease` (finished, or found stale).
    pub fn release(&self, lease: &str) {
        self.lock().leases.remove(lease);
    }

    /// Forgets the leases of job `job` handed out before `before` (they expired).
    pub fn release_job(&self, job: (i64, i64), before: Millis) {
        self.lock()
            .leases
            .retain(|_, h| h.job != job || h.since >= before);
    }

    /// Executors seen within `ttl_ms` of `now` or polling right now, by name; forgets
    /// those not seen for a day.
    pub fn online(&self, now: Millis, ttl_ms: i64) -> Vec<Online> {
        let mut inner = self.lock();
        inner
            .executors
            .retain(|_, e| e.polling > 0 || now - e.last_seen <= FORGET_AFTER_MS);
        let mut running: HashMap<&str, usize> = HashMap::new();
        for h in inner.leases.values() {
            *running.entry(h.executor.as_str()).or_default() += 1;
        }
        inner
            .executors
            .values()
            .filter(|e| is_online(e, now, ttl_ms))
            .map(|e| Online {
                name: e.info.name.clone(),
                labels: e.info.labels.clone(),
                capacity: e.info.capacity,
                running: running.get(e.info.name.as_str()).copied().unwrap_or(0),
                last_seen: e.last_seen,
                protocol: e.info.protocol,
                token: e.token.clone(),
                polling: e.polling > 0,
            })
            .collect()
    }

    /// Why a job that asks for `runs_on` waits, when no online executor could take it:
    /// `waiting: no agent with label pool=gpu online`. `None` when one could (it is just
    /// busy, or about to ask).
    pub fn waiting_reason(
        &self,
        runs_on: &BTreeMap<String, String>,
        now: Millis,
        ttl_ms: i64,
    ) -> Option<String> {
        let inner = self.lock();
        let able = inner.executors.values().any(|e| {
            is_online(e, now, ttl_ms)
                && runs_on.iter().all(|(k, v)| e.info.labels.get(k) == Some(v))
        });
        if able {
            return None;
        }
        let labels: Vec<String> = runs_on.iter().map(|(k, v)| format!("{k}={v}")).collect();
        Some(match labels.len() {
            0 => "waiting: no executor online".to_owned(),
            1 => format!("waiting: no agent with label {} online", labels[0]),
            _ => format!("waiting: no agent with labels {} online", labels.join(", ")),
        })
    }
}

fn is_online(e: &Entry, now: Millis, ttl_ms: i64) -> bool {
    e.polling > 0 || now - e.last_seen <= ttl_ms
}

#[cfg(test)]
mod tests {
    use super::*;

    fn info(name: &str, labels: &[(&str, &str)]) -> ExecutorInfo {
        ExecutorInfo {
            name: name.into(),
            labels: labels
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            capacity: 2,
            protocol: gantry_protocol::PROTOCOL_VERSION,
        }
    }

    #[test]
    fn waiting_reasons_name_the_missing_labels() {
        let r = Registry::default();
        r.seen(&info("build-1", &[("os", "linux")]), Some("t1"), 1_000);
        r.seen(&info("gone", &[("pool", "gpu")]), Some("t2"), 0);
        let check = |runs_on: &[(&str, &str)], now: Millis, expect: Option<&str>| {
            let runs_on = runs_on
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect();
            assert_eq!(
                r.waiting_reason(&runs_on, now, 500).as_deref(),
                expect,
                "{runs_on:?} at {now}"
            );
        };
        check(&[], 1_200, None);
        check(&[("os", "linux")], 1_200, None);
        check(
            &[("pool", "gpu")],
            1_200,
            Some("waiting: no agent with label pool=gpu online"),
        );
        check(
            &[("os", "linux"), ("pool", "gpu")],
            1_200,
            Some("waiting: no agent with labels os=linux, pool=gpu online"),
        );
        // build-1 was last seen more than a ttl ago.
        check(&[], 2_000, Some("waiting: no executor online"));
        // Polling counts as online however long the poll.
        let guard = r.polling(&info("build-1", &[("os", "linux")]), Some("t1"), 1_000);
        check(&[("os", "linux")], 9_000, None);
        drop(guard);
    }

    #[test]
    fn online_executors_count_their_leases() {
        let r = Registry::default();
        r.seen(&info("build-1", &[]), Some("t1"), 100);
        r.seen(&info("build-2", &[]), Some("t2"), 100);
        let holder = |executor: &str, job: i64, since: Millis| Holder {
            executor: executor.into(),
            token_id: Some(1),
            job: (1, job),
            since,
        };
        r.hold("a", holder("build-1", 0, 100));
        r.hold("b", holder("build-1", 1, 100));
        r.hold("c", holder("build-2", 2, 150));
        r.release("b");
        r.release_job((1, 2), 120);
        let running: Vec<(String, usize)> = r
            .online(200, 1_000)
            .into_iter()
            .map(|o| (o.name, o.running))
            .collect();
        assert_eq!(
            running,
            [("build-1".to_string(), 1), ("build-2".to_string(), 1)]
        );
        r.release_job((1, 2), 200);
        assert_eq!(r.online(200, 1_000)[1].running, 0);
        assert!(r.online(5_000, 1_000).is_empty());
        assert_eq!(
            r.holder("a").map(|h| h.executor).as_deref(),
            Some("build-1")
        );
    }
}
