//! Leveled logging to stderr, one line per event (what a container log wants).

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

pub fn set_level(level: Level) {
    LEVEL.store(level as u8, Ordering::Relaxed);
}

fn log(level: Level, tag: &str, msg: &str) {
    if level as u8 <= LEVEL.load(Ordering::Relaxed) {
        eprintln!("session {tag} {msg}");
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
