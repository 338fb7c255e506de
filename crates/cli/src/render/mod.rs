//! Rendering a run's events for a person: live progress in a terminal ([`live`]), plain
//! prefixed lines everywhere else ([`plain`]), and the text both share ([`format`]).

pub mod format;
mod live;
mod plain;

use std::io::Write;

use gantry_engine::RunEvent;

pub use live::Live;
pub use plain::Plain;

use crate::state::RunState;

/// The renderer chosen for this run.
pub enum Reporter {
    /// A terminal.
    Live(Live),
    /// Anything else.
    Plain(Plain<Box<dyn Write + Send>>),
}

impl Reporter {
    /// Renders one event; `state` already includes it. `header` is the line announcing
    /// the run.
    pub fn event(&mut self, state: &RunState, event: &RunEvent, header: &str) {
        match self {
            Reporter::Live(r) => r.event(state, event, header),
            Reporter::Plain(r) => r.event(state, event, header),
        }
    }

    /// A message from the CLI itself.
    pub fn notice(&mut self, text: &str) {
        match self {
            Reporter::Live(r) => r.notice(text),
            Reporter::Plain(r) => r.notice(text),
        }
    }

    /// Ends live output and prints the summary.
    pub fn finish(&mut self, summary: &str) {
        match self {
            Reporter::Live(r) => r.finish(summary),
            Reporter::Plain(r) => r.finish(summary),
        }
    }
}

#[cfg(test)]
mod tests;
