//! `on.schedule`: when a 5-field cron expression (UTC) fires.
//!
//! Times are unix milliseconds, like everywhere in the store. The scheduler loop asks
//! [`due`] with the time of the last slot it fired; a slot fires once, and slots missed
//! while the server was down fire once in total (the latest of them), not once each.

use chrono::{DateTime, Utc};
use croner::Cron;
use croner::parser::{CronParser, Seconds, Year};

/// Why a schedule could not be evaluated.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CronError {
    /// The expression does not parse.
    #[error("invalid cron expression {expr:?}: {message}")]
    Invalid {
        /// The expression.
        expr: String,
        /// croner's description of the problem.
        message: String,
    },
    /// The time is outside what the calendar arithmetic supports.
    #[error("time {0} ms is out of range")]
    OutOfRange(i64),
}

/// Parses `expr` the way `gantry.yml` validates it: minute hour day-of-month month
/// day-of-week (or an `@daily`-style alias), no seconds, no year.
pub fn parse(expr: &str) -> Result<Cron, CronError> {
    let expr = expr.trim();
    let invalid = |message: String| CronError::Invalid {
        expr: expr.to_string(),
        message,
    };
    if !expr.starts_with('@') && expr.split_whitespace().count() != 5 {
        return Err(invalid("a schedule has 5 fields".into()));
    }
    // `Cron::from_str` would accept 6 fields (seconds); the pipeline's parser does not.
    CronParser::builder()
        .seconds(Seconds::Disallowed)
        .year(Year::Disallowed)
        .build()
        .parse(expr)
        .map_err(|e| invalid(e.to_string().trim_end_matches('.').to_lowercase()))
}

fn to_time(ms: i64) -> Result<DateTime<Utc>, CronError> {
    DateTime::from_timestamp_millis(ms).ok_or(CronError::OutOfRange(ms))
}

/// The first time strictly after `after_ms` at which `expr` fires; `None` when it never
/// fires again (e.g. `0 0 30 2 *`, which searches up to a year ahead and gives up).
pub fn next_after(expr: &str, after_ms: i64) -> Result<Option<i64>, CronError> {
    let cron = parse(expr)?;
    let after = to_time(after_ms)?;
    match cron.find_next_occurrence(&after, false) {
        Ok(t) => Ok(Some(t.timestamp_millis())),
        Err(_) => Ok(None),
    }
}

/// Whether a slot of `expr` fell in `(last_ms, now_ms]`: returns the latest such slot (the
/// time to record as the new `last_ms`), or `None` when nothing is due. Several slots
/// missed during downtime give one firing. An invalid expression is never due (the
/// pipeline's validation rejects those before they get here).
///
/// For a schedule seen for the first time, pass the time it was registered (or the
/// server's start) as `last_ms`, so that a new schedule does not fire for a slot in the
/// past.
pub fn due(expr: &str, last_ms: i64, now_ms: i64) -> Option<i64> {
    if now_ms <= last_ms {
        return None;
    }
    let cron = parse(expr).ok()?;
    let now = to_time(now_ms).ok()?;
    let slot = cron.find_previous_occurrence(&now, true).ok()?;
    let slot_ms = slot.timestamp_millis();
    (slot_ms > last_ms && slot_ms <= now_ms).then_some(slot_ms)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An RFC 3339 time as unix ms.
    fn ms(rfc3339: &str) -> i64 {
        DateTime::parse_from_rfc3339(rfc3339)
            .expect("valid time")
            .timestamp_millis()
    }

    fn iso(ms: i64) -> String {
        use chrono::{Datelike, Timelike};
        let t = to_time(ms).expect("in range");
        format!(
            "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.{:03}Z",
            t.year(),
            t.month(),
            t.day(),
            t.hour(),
            t.minute(),
            t.second(),
            t.timestamp_subsec_millis()
        )
    }

    #[test]
    fn next_times() {
        let check = |expr: &str, after: &str, expect: Option<&str>| {
            let got = next_after(expr, ms(after)).expect("valid expression");
            assert_eq!(got.map(iso).as_deref(), expect, "{expr} after {after}");
        };
        check(
            "*/15 * * * *",
            "2026-03-02T10:07:30.250Z",
            Some("2026-03-02T10:15:00.000Z"),
        );
        // Strictly after: a slot exactly at `after` is not the next one.
        check(
            "0 3 * * *",
            "2026-03-02T03:00:00Z",
            Some("2026-03-03T03:00:00.000Z"),
        );
        check(
            "0 3 * * *",
            "2026-03-02T02:59:59.999Z",
            Some("2026-03-02T03:00:00.000Z"),
        );
        // Weekdays only: Friday evening → Monday.
        check(
            "0 3 * * 1-5",
            "2026-03-06T20:00:00Z",
            Some("2026-03-09T03:00:00.000Z"),
        );
        check(
            "@daily",
            "2026-03-02T10:00:00Z",
            Some("2026-03-03T00:00:00.000Z"),
        );
        check("0 0 30 2 *", "2026-03-02T10:00:00Z", None);
    }

    #[test]
    fn invalid_expressions() {
        let check = |expr: &str, contains: &str| {
            let err = next_after(expr, 0).expect_err(expr).to_string();
            assert!(err.contains(contains), "{expr}: {err}");
            assert_eq!(due(expr, 0, 1_000_000_000_000), None);
        };
        check("* * * *", "5 fields");
        check("0 * * * * *", "5 fields");
        check("61 * * * *", "invalid cron expression \"61 * * * *\"");
        check("x y z w v", "invalid cron expression");
    }

    #[test]
    fn due_fires_once_per_slot() {
        let expr = "*/10 * * * *";
        let last = ms("2026-03-02T10:00:00Z");
        // Nothing between the last slot and now.
        assert_eq!(due(expr, last, ms("2026-03-02T10:09:59.999Z")), None);
        // The slot at 10:10 is due from 10:10:00 on...
        let slot = due(expr, last, ms("2026-03-02T10:10:00Z")).expect("due");
        assert_eq!(iso(slot), "2026-03-02T10:10:00.000Z");
        // ...and once recorded, not again.
        assert_eq!(due(expr, slot, ms("2026-03-02T10:10:30Z")), None);
        assert_eq!(due(expr, slot, ms("2026-03-02T10:19:00Z")), None);
        // Clock going backwards or standing still: nothing.
        assert_eq!(due(expr, slot, slot), None);
        assert_eq!(due(expr, slot, slot - 1), None);
    }

    #[test]
    fn missed_slots_fire_once() {
        let expr = "0 * * * *";
        let last = ms("2026-03-02T01:00:00Z");
        // Down from 01:30 to 07:20: six slots missed, one firing, for the latest slot.
        let slot = due(expr, last, ms("2026-03-02T07:20:00Z")).expect("due");
        assert_eq!(iso(slot), "2026-03-02T07:00:00.000Z");
        assert_eq!(due(expr, slot, ms("2026-03-02T07:59:59Z")), None);
        assert_eq!(
            due(expr, slot, ms("2026-03-02T08:00:00.001Z"))
                .map(iso)
                .as_deref(),
            Some("2026-03-02T08:00:00.000Z")
        );
    }

    #[test]
    fn out_of_range_times() {
        assert_eq!(
            next_after("* * * * *", i64::MAX),
            Err(CronError::OutOfRange(i64::MAX))
        );
        assert_eq!(due("* * * * *", 0, i64::MAX), None);
    }
}
