//! What a ref change means for a pipeline: whether a push or a new tag fires it, which
//! refs a `type: ref` param may take, how often to poll, and how to back off from a
//! repository that cannot be reached.

use std::cmp::Ordering;
use std::time::Duration;

use gantry_pipeline::{Event, GlobPattern, Triggers};

use crate::git::RemoteRef;

/// A ref change that starts a run of a pipeline.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fire {
    /// [`Event::Push`] for a branch, [`Event::Tag`] for a tag. A change found by polling
    /// fires the same way; the caller records it as [`Event::Poll`] if it wants to.
    pub event: Event,
    /// The branch or tag name, without `refs/heads/` / `refs/tags/`.
    pub name: String,
}

/// Whether a change of the full ref `git_ref` (`refs/heads/X`, `refs/tags/Y`) fires a
/// pipeline with these `on:` triggers (`on.push` branch globs, `on.tag` tag globs).
/// Other refs (`refs/pull/…`, `HEAD`, a bare name) never fire.
pub fn fires(on: &Triggers, git_ref: &str) -> Option<Fire> {
    if let Some(branch) = git_ref.strip_prefix("refs/heads/") {
        return (!branch.is_empty() && on.push_matches(branch)).then(|| Fire {
            event: Event::Push,
            name: branch.to_string(),
        });
    }
    if let Some(tag) = git_ref.strip_prefix("refs/tags/") {
        return (!tag.is_empty() && on.tag_matches(tag)).then(|| Fire {
            event: Event::Tag,
            name: tag.to_string(),
        });
    }
    None
}

/// The values a `type: ref` param may take, for the API and a UI: tags matching `pattern`
/// (every tag without one), newest-looking first (version order: `v1.10.0` before
/// `v1.9.2`, a release before its `-rc`), then all branches by name. Short names.
pub fn ref_choices(refs: &[RemoteRef], pattern: Option<&GlobPattern>) -> Vec<String> {
    let mut tags: Vec<&str> = refs
        .iter()
        .filter_map(RemoteRef::tag)
        .filter(|t| pattern.is_none_or(|p| p.is_match(t)))
        .collect();
    tags.sort_by(|a, b| version_cmp(b, a));
    let mut branches: Vec<&str> = refs.iter().filter_map(RemoteRef::branch).collect();
    branches.sort_unstable();
    tags.dedup();
    branches.dedup();
    tags.into_iter()
        .chain(branches)
        .map(str::to_string)
        .collect()
}

/// Compares two names the way people read version numbers: runs of digits compare as
/// numbers, and a `-suffix` after an otherwise equal version (`1.0.0-rc1`) is older than
/// the version without it.
pub fn version_cmp(a: &str, b: &str) -> Ordering {
    let (ca, cb) = (chunks(a), chunks(b));
    for (x, y) in ca.iter().zip(cb.iter()) {
        let ord = match (x.parse::<u128>(), y.parse::<u128>()) {
            (Ok(nx), Ok(ny)) => nx.cmp(&ny).then_with(|| y.len().cmp(&x.len())),
            _ => x.cmp(y),
        };
        if ord != Ordering::Equal {
            return ord;
        }
    }
    let prerelease = |rest: &[&str]| rest.first().is_some_and(|c| c.starts_with('-'));
    match ca.len().cmp(&cb.len()) {
        Ordering::Equal => Ordering::Equal,
        Ordering::Greater if prerelease(&ca[cb.len()..]) => Ordering::Less,
        Ordering::Less if prerelease(&cb[ca.len()..]) => Ordering::Greater,
        other => other,
    }
}

/// Splits into alternating runs of digits and non-digits.
fn chunks(s: &str) -> Vec<&str> {
    let mut out = Vec::new();
    let mut start = 0;
    let mut digits = None;
    for (i, c) in s.char_indices() {
        let d = c.is_ascii_digit();
        if digits.is_some_and(|prev| prev != d) {
            out.push(&s[start..i]);
            start = i;
        }
        digits = Some(d);
    }
    if start < s.len() {
        out.push(&s[start..]);
    }
    out
}

/// The shortest poll interval the server accepts; anything shorter is raised to it.
pub const MIN_POLL_INTERVAL: Duration = Duration::from_secs(1);

/// How often to poll a pipeline's repository: its `on.poll`, else `server_default` when
/// the pipeline has push or tag triggers that polling could fire; `None` when polling
/// would never start anything.
pub fn poll_interval(on: &Triggers, server_default: Option<Duration>) -> Option<Duration> {
    let interval = match &on.poll {
        Some(poll) => Some(poll.value),
        None if !on.push.is_empty() || !on.tag.is_empty() => server_default,
        None => None,
    };
    interval.map(|d| d.max(MIN_POLL_INTERVAL))
}

/// Exponential back-off for a repository that cannot be reached: each failure doubles
/// the wait (starting from the normal interval), up to a cap; a success resets it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Backoff {
    max: Duration,
    failures: u32,
}

impl Backoff {
    /// A back-off that never waits longer than `max`.
    pub fn new(max: Duration) -> Backoff {
        Backoff { max, failures: 0 }
    }

    /// Records a failed attempt.
    pub fn failure(&mut self) {
        self.failures = self.failures.saturating_add(1);
    }

    /// Records a successful attempt: the next wait is the normal interval again.
    pub fn success(&mut self) {
        self.failures = 0;
    }

    /// Failures since the last success.
    pub fn failures(&self) -> u32 {
        self.failures
    }

    /// How long to wait before the next attempt, given the normal interval:
    /// `interval × 2^failures`, at most the cap (but never less than `interval`).
    pub fn delay(&self, interval: Duration) -> Duration {
        let factor = 1u32.checked_shl(self.failures.min(31)).unwrap_or(u32::MAX);
        let backed = interval.checked_mul(factor).unwrap_or(Duration::MAX);
        if self.failures == 0 {
            interval
        } else {
            backed.min(self.max.max(interval))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use gantry_pipeline::Spanned;

    fn triggers(push: &[&str], tag: &[&str]) -> Triggers {
        let globs = |list: &[&str]| {
            list.iter()
                .map(|g| Spanned::unspanned(GlobPattern::new(g).expect("glob")))
                .collect()
        };
        Triggers {
            push: globs(push),
            tag: globs(tag),
            ..Triggers::default()
        }
    }

    #[test]
    fn which_refs_fire() {
        let on = triggers(&["develop", "release/*"], &["v*"]);
        let check = |git_ref: &str, expect: Option<(Event, &str)>| {
            let got = fires(&on, git_ref).map(|f| (f.event, f.name));
            assert_eq!(got, expect.map(|(e, n)| (e, n.to_string())), "{git_ref}");
        };
        check("refs/heads/develop", Some((Event::Push, "develop")));
        check("refs/heads/release/1.0", Some((Event::Push, "release/1.0")));
        check("refs/heads/release/1.0/hotfix", None);
        check("refs/heads/main", None);
        check("refs/tags/v1.2.0", Some((Event::Tag, "v1.2.0")));
        check("refs/tags/1.2.0", None);
        // A branch named like a tag glob is still a branch.
        check("refs/heads/v2", None);
        check("refs/pull/3/head", None);
        check("develop", None);
        check("refs/heads/", None);
        check("HEAD", None);
    }

    #[test]
    fn no_globs_fire_nothing() {
        let on = Triggers::default();
        assert_eq!(fires(&on, "refs/heads/main"), None);
        assert_eq!(fires(&on, "refs/tags/v1"), None);
    }

    fn r(name: &str) -> RemoteRef {
        RemoteRef {
            name: name.to_string(),
            commit: "0".repeat(40),
        }
    }

    #[test]
    fn ref_choices_list_matching_tags_newest_first_then_branches() {
        let refs = [
            r("refs/heads/main"),
            r("refs/heads/develop"),
            r("refs/tags/v1.9.2"),
            r("refs/tags/v1.10.0"),
            r("refs/tags/v1.10.0-rc1"),
            r("refs/tags/v2.0.0"),
            r("refs/tags/nightly-2024"),
            r("refs/tags/v1.2"),
        ];
        let pattern = GlobPattern::new("v*").expect("glob");
        assert_eq!(
            ref_choices(&refs, Some(&pattern)),
            [
                "v2.0.0",
                "v1.10.0",
                "v1.10.0-rc1",
                "v1.9.2",
                "v1.2",
                "develop",
                "main"
            ]
        );
        assert_eq!(
            ref_choices(&refs, None)[..2],
            ["v2.0.0".to_string(), "v1.10.0".to_string()]
        );
        assert!(ref_choices(&refs, None).contains(&"nightly-2024".to_string()));
        assert_eq!(ref_choices(&[], Some(&pattern)), Vec::<String>::new());
    }

    #[test]
    fn version_order() {
        let check = |a: &str, b: &str, expect: Ordering| {
            assert_eq!(version_cmp(a, b), expect, "{a} vs {b}");
            assert_eq!(version_cmp(b, a), expect.reverse(), "{b} vs {a}");
        };
        check("v1.10.0", "v1.9.0", Ordering::Greater);
        check("v1.0.0", "v1.0.0-rc1", Ordering::Greater);
        check("v1.0.0-rc2", "v1.0.0-rc1", Ordering::Greater);
        check("v1.0.1", "v1.0", Ordering::Greater);
        check("v1.0", "v1.0", Ordering::Equal);
        check("b", "a", Ordering::Greater);
        check("v01", "v1", Ordering::Less);
        check(
            "99999999999999999999999999999999999999999999",
            "1",
            Ordering::Greater,
        );
    }

    #[test]
    fn poll_intervals() {
        let mut on = triggers(&["main"], &[]);
        let five = Duration::from_secs(300);
        assert_eq!(poll_interval(&on, Some(five)), Some(five));
        assert_eq!(poll_interval(&on, None), None);
        on.poll = Some(Spanned::unspanned(Duration::from_secs(30)));
        assert_eq!(
            poll_interval(&on, Some(five)),
            Some(Duration::from_secs(30))
        );
        on.poll = Some(Spanned::unspanned(Duration::ZERO));
        assert_eq!(poll_interval(&on, None), Some(MIN_POLL_INTERVAL));
        let none = Triggers::default();
        assert_eq!(poll_interval(&none, Some(five)), None);
        let tags_only = triggers(&[], &["v*"]);
        assert_eq!(poll_interval(&tags_only, Some(five)), Some(five));
    }

    #[test]
    fn backoff_doubles_caps_and_resets() {
        let interval = Duration::from_secs(60);
        let mut b = Backoff::new(Duration::from_secs(600));
        assert_eq!(b.delay(interval), interval);
        let mut seen = Vec::new();
        for _ in 0..6 {
            b.failure();
            seen.push(b.delay(interval).as_secs());
        }
        assert_eq!(seen, [120, 240, 480, 600, 600, 600]);
        assert_eq!(b.failures(), 6);
        for _ in 0..100 {
            b.failure();
        }
        assert_eq!(b.delay(interval).as_secs(), 600);
        b.success();
        assert_eq!(b.delay(interval), interval);
        // A cap below the interval never shortens the normal wait.
        let mut small = Backoff::new(Duration::from_secs(1));
        small.failure();
        assert_eq!(small.delay(interval), interval);
    }
}
