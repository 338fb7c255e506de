//! Leveled logging to stderr, one line per event (what a container log wants), each
//! line starting with the service's name.

use std::sync::OnceLock;
use std::sync::atomic::{AtomicU8, Ordering};

/// How much to log.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Level {
    Error = 0,
    Warn = 1,
    Info = 2,
    Debug = 3,
}

impl Level {
    /// `error`, `warn`, `info` or `debug` (any case).
    pub fn parse(s: &str) -> Option<Level> {
        match s.to_ascii_lowercase().as_str() {
            "error" => Some(Level::Error),
            "warn" | "warning" => Some(Level::Warn),
            "info" => Some(Level::Info),
            "debug" => Some(Level::Debug),
            _ => None,
        }
    }
}

static LEVEL: AtomicU8 = AtomicU8::new(Level::Info as u8);

static SERVICE: OnceLock<&'static str> = OnceLock::new();

/// Sets the service name every line starts with (once; later calls keep the first) and
/// the level.
pub fn init(service: &'static str, level: Level) {
    let _ = SERVICE.set(service);
    set_level(level);
}

/// Sets how much to log.
pub fn set_level(level: Level) {
    LEVEL.store(level as u8, Ordering::Relaxed);
}

fn log(level: Level, tag: &str, msg: &str) {
    if level as u8 <= LEVEL.load(Ordering::Relaxed) {
        let service = SERVICE.get().copied().unwrap_or("messenger");
        eprintln!("{service} {tag} {msg}");
    }
}

pub fn error(msg: &str) {
    log(Level::Error, "ERROR", msg);
}
pub fn warn(msg: &str) {
    log(Level::Warn, "WARN ", msg);
}
pub fn info(msg: &str) {
    log(Level::Info, "INFO ", msg);
}
pub fn debug(msg: &str) {
    log(Level::Debug, "DEBUG", msg);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn levels_parse_in_any_case_and_order_by_verbosity() {
        for (text, expect) in [
            ("error", Some(Level::Error)),
            ("WARN", Some(Level::Warn)),
            ("warning", Some(Level::Warn)),
            ("Info", Some(Level::Info)),
            ("debug", Some(Level::Debug)),
            ("trace", None),
            ("", None),
        ] {
            assert_eq!(Level::parse(text), expect, "{text:?}");
        }
        assert!(Level::Error < Level::Warn && Level::Info < Level::Debug);
    }
}
