//! Times from the API (RFC 3339 strings) for people: `3m ago`, and how long a run took or
//! has been running.

use std::time::Duration;

use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use crate::render::format;

/// Parses an RFC 3339 time; `None` for anything else.
pub fn parse(text: &str) -> Option<OffsetDateTime> {
    OffsetDateTime::parse(text, &Rfc3339).ok()
}

/// `12s ago`, `3m ago`, `2h ago`, `4d ago` (`now` when in the future by clock skew).
pub fn ago(then: OffsetDateTime, now: OffsetDateTime) -> String {
    let secs = (now - then).whole_seconds();
    if secs < 1 {
        "now".to_owned()
    } else if secs < 60 {
        format!("{secs}s ago")
    } else if secs < 3600 {
        format!("{}m ago", secs / 60)
    } else if secs < 86_400 {
        format!("{}h ago", secs / 3600)
    } else {
        format!("{}d ago", secs / 86_400)
    }
}

/// How long a run took (`duration_ms` once finished), or has been running so far
/// (`started_at` until `now`, with a trailing `…`); empty when it has not started.
pub fn took(
    duration_ms: Option<i64>,
    started_at: Option<&str>,
    finished: bool,
    now: OffsetDateTime,
) -> String {
    if let Some(ms) = duration_ms {
        return format::duration(Duration::from_millis(ms.max(0) as u64));
    }
    match started_at.and_then(parse) {
        Some(start) if !finished => {
            let secs = (now - start).whole_milliseconds().max(0) as u64;
            format!("{}…", format::duration(Duration::from_millis(secs)))
        }
        _ => String::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ages_and_durations() {
        let now = parse("2026-11-29T12:00:00Z").expect("time");
        for (then, want) in [
            ("2026-11-29T12:00:00Z", "now"),
            ("2026-11-29T11:59:48Z", "12s ago"),
            ("2026-11-29T11:57:00+00:00", "3m ago"),
            ("2026-11-29T09:10:00Z", "2h ago"),
            ("2026-11-25T12:00:00Z", "4d ago"),
            ("2026-11-29T12:01:00Z", "now"),
        ] {
            assert_eq!(ago(parse(then).expect(then), now), want, "{then}");
        }
        assert_eq!(took(Some(123_000), None, true, now), "2m03s");
        assert_eq!(
            took(None, Some("2026-11-29T11:59:48Z"), false, now),
            "12.0s…"
        );
        assert_eq!(took(None, None, false, now), "");
        assert!(parse("yesterday").is_none());
    }
}
