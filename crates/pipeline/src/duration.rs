//! Durations as written in gantry.yml: `500ms`, `90s`, `5m`, `1h30m`, `2d`.
//!
//! Every number needs a unit (a bare `90` is ambiguous between seconds and minutes, so it
//! is refused with a suggestion), and units go from largest to smallest, each at most once.

use std::time::Duration;

/// Units in the order they must appear, with their length in milliseconds.
const UNITS: [(&str, u64); 5] = [
    ("d", 86_400_000),
    ("h", 3_600_000),
    ("m", 60_000),
    ("s", 1_000),
    ("ms", 1),
];

/// Why a duration did not parse; the text is shown after "invalid duration".
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DurationError {
    /// Nothing to parse.
    #[error("a duration cannot be empty")]
    Empty,
    /// A number without a unit.
    #[error("{0:?} has no unit")]
    NoUnit(String),
    /// Letters that are not a unit.
    #[error("unknown unit {unit:?} in {text:?}")]
    BadUnit {
        /// The whole text.
        text: String,
        /// The unit that was not understood.
        unit: String,
    },
    /// Units out of order or repeated.
    #[error("units in {0:?} must go from largest to smallest, each at most once")]
    Order(String),
    /// Not a number where one was expected.
    #[error("{0:?} is not a duration")]
    Syntax(String),
    /// Too long to represent.
    #[error("{0:?} is too long")]
    Overflow(String),
}

impl DurationError {
    /// A suggested fix, when there is an obvious one.
    pub fn help(&self) -> Option<String> {
        match self {
            DurationError::NoUnit(n) => Some(format!("add a unit, e.g. \"{n}s\" or \"{n}m\"")),
            _ => Some("write a duration like 500ms, 90s, 5m, 1h30m or 2d".into()),
        }
    }
}

/// Parses `1h30m`-style durations.
pub fn parse_duration(text: &str) -> Result<Duration, DurationError> {
    let s = text.trim();
    if s.is_empty() {
        return Err(DurationError::Empty);
    }
    let mut rest = s;
    let mut total: u64 = 0;
    let mut last_unit: Option<usize> = None;
    while !rest.is_empty() {
        let digits = rest.bytes().take_while(u8::is_ascii_digit).count();
        if digits == 0 {
            return Err(DurationError::Syntax(s.to_string()));
        }
        let n: u64 = rest[..digits]
            .parse()
            .map_err(|_| DurationError::Overflow(s.to_string()))?;
        rest = &rest[digits..];
        let letters = rest.bytes().take_while(u8::is_ascii_alphabetic).count();
        if letters == 0 {
            return Err(if rest.is_empty() {
                DurationError::NoUnit(s.to_string())
            } else {
                DurationError::Syntax(s.to_string())
            });
        }
        let unit = &rest[..letters];
        rest = &rest[letters..];
        let Some(idx) = UNITS.iter().position(|(u, _)| *u == unit) else {
            return Err(DurationError::BadUnit {
                text: s.to_string(),
                unit: unit.to_string(),
            });
        };
        if last_unit.is_some_and(|l| l >= idx) {
            return Err(DurationError::Order(s.to_string()));
        }
        last_unit = Some(idx);
        total = n
            .checked_mul(UNITS[idx].1)
            .and_then(|ms| total.checked_add(ms))
            .ok_or_else(|| DurationError::Overflow(s.to_string()))?;
    }
    Ok(Duration::from_millis(total))
}

/// Formats a duration the way a user would write it (`1h30m`, `500ms`, `0s`).
pub fn format_duration(d: Duration) -> String {
    let mut ms = d.as_millis() as u64;
    if ms == 0 {
        return "0s".into();
    }
    let mut out = String::new();
    for (unit, len) in UNITS {
        if ms >= len {
            out.push_str(&format!("{}{unit}", ms / len));
            ms %= len;
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(input: &str, expect: Result<u64, &str>) {
        let got = parse_duration(input)
            .map(|d| d.as_millis() as u64)
            .map_err(|e| e.to_string());
        assert_eq!(got, expect.map_err(str::to_string), "input {input:?}");
    }

    #[test]
    fn durations() {
        check("90s", Ok(90_000));
        check("5m", Ok(300_000));
        check("1h30m", Ok(5_400_000));
        check("500ms", Ok(500));
        check("2d", Ok(172_800_000));
        check("1m30s500ms", Ok(90_500));
        check(" 10s ", Ok(10_000));
        check("0s", Ok(0));
        check("10x", Err(r#"unknown unit "x" in "10x""#));
        check("90", Err(r#""90" has no unit"#));
        check("", Err("a duration cannot be empty"));
        check("m", Err(r#""m" is not a duration"#));
        check("1.5h", Err(r#""1.5h" is not a duration"#));
        check(
            "30m1h",
            Err(r#"units in "30m1h" must go from largest to smallest, each at most once"#),
        );
        check(
            "1m1m",
            Err(r#"units in "1m1m" must go from largest to smallest, each at most once"#),
        );
        check("-5s", Err(r#""-5s" is not a duration"#));
        check(
            "99999999999999999999s",
            Err(r#""99999999999999999999s" is too long"#),
        );
        check(
            "9999999999999999d",
            Err(r#""9999999999999999d" is too long"#),
        );
    }

    #[test]
    fn format_round_trips() {
        for text in ["1h30m", "500ms", "2d", "1m30s500ms", "0s", "60m"] {
            let d = parse_duration(text).expect("should succeed");
            assert_eq!(
                parse_duration(&format_duration(d)).expect("should succeed"),
                d,
                "{text}"
            );
        }
        assert_eq!(format_duration(Duration::from_secs(3600)), "1h");
    }
}
