//! The terminal renderer: one live line per running job (spinner, name, elapsed time,
//! last log line cut to the terminal's width) under the lines of finished jobs.
//!
//! Everything printed while bars are visible goes through `MultiProgress::println`, so
//! lines never tear the bars.

use std::fmt::Write as _;
use std::time::Duration;

use gantry_engine::RunEvent;
use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressState, ProgressStyle};

use super::format::{duration, is_failure, sanitize, status_line};
use crate::paint::Paint;
use crate::state::RunState;

/// Live progress on standard error.
pub struct Live {
    multi: MultiProgress,
    bars: Vec<Option<ProgressBar>>,
    style: ProgressStyle,
    paint: Paint,
    /// `logs/<file>` per job index, to point at a failed job's full log.
    log_paths: Vec<String>,
    /// Width job names are padded to, so live lines line up.
    name_width: usize,
}

/// Columns a duration takes on a live line (`12m03s`).
const DURATION_WIDTH: usize = 6;
/// Job names longer than this are cut on live lines.
const MAX_NAME_WIDTH: usize = 30;

impl Live {
    /// A renderer drawing on standard error.
    pub fn new(paint: Paint) -> Live {
        let template = if paint.enabled() {
            "{spinner:.cyan} {prefix:.bold} {dur:.dim}  {msg:.dim}"
        } else {
            "{spinner} {prefix} {dur}  {msg}"
        };
        let style = ProgressStyle::with_template(template)
            .unwrap_or_else(|_| ProgressStyle::default_spinner())
            .with_key("dur", |s: &ProgressState, w: &mut dyn std::fmt::Write| {
                let _ = write!(w, "{:>DURATION_WIDTH$}", duration(s.elapsed()));
            })
            .tick_chars("⠋⠙⠹⠸⠼⠴⠦⠧⠇⠏ ");
        crate::term::quiet_echo();
        Live {
            multi: MultiProgress::with_draw_target(ProgressDrawTarget::stderr()),
            bars: Vec::new(),
            style,
            paint,
            log_paths: Vec::new(),
            name_width: 0,
        }
    }

    /// Cuts a log line to what is left of the terminal's width after the spinner, name
    /// and duration, keeping one column spare: a line that fills the terminal leaves the
    /// cursor waiting to wrap, and the `^C` the terminal echoes would then push the bars
    /// down a line and leave a stale copy behind.
    fn fit(&self, text: &str) -> String {
        let width = console::Term::stderr()
            .size_checked()
            .map_or(80, |(_, w)| usize::from(w));
        let fixed = 2 + self.name_width + 1 + DURATION_WIDTH + 2 + 1;
        let text = sanitize(text);
        console::truncate_str(&text, width.saturating_sub(fixed), "…").into_owned()
    }

    /// Sets where each job's log file is, by job index (as shown to the user).
    pub fn set_log_paths(&mut self, paths: Vec<String>) {
        self.log_paths = paths;
    }

    fn println(&self, text: &str) {
        // With a hidden target (stderr went away) println is a no-op, which is fine.
        let _ = self.multi.println(text);
    }

    /// Renders one event; `state` already includes it.
    pub fn event(&mut self, state: &RunState, event: &RunEvent, header: &str) {
        match event {
            RunEvent::RunStarted { jobs, .. } => {
                self.bars = vec![None; jobs.len()];
                self.name_width = jobs
                    .iter()
                    .map(|j| console::measure_text_width(j))
                    .max()
                    .unwrap_or(0)
                    .min(MAX_NAME_WIDTH);
                self.println(header);
            }
            RunEvent::JobStarted { job, attempt, .. } => {
                let Some(slot) = self.bars.get_mut(*job) else {
                    return;
                };
                if let Some(bar) = slot {
                    bar.set_message(format!("retrying: attempt {attempt}"));
                    return;
                }
                let bar = self.multi.add(ProgressBar::new_spinner());
                bar.set_style(self.style.clone());
                let name = console::truncate_str(state.name(*job), self.name_width, "…");
                bar.set_prefix(
                    console::pad_str(&name, self.name_width, console::Alignment::Left, None)
                        .into_owned(),
                );
                bar.enable_steady_tick(Duration::from_millis(120));
                *slot = Some(bar);
            }
            RunEvent::JobLog { job, line } => {
                if let Some(Some(bar)) = self.bars.get(*job) {
                    bar.set_message(self.fit(&line.text));
                }
            }
            RunEvent::ArtifactStored { .. } | RunEvent::RunFinished { .. } => {}
            RunEvent::JobFinished { job, status, .. } => {
                if let Some(bar) = self.bars.get_mut(*job).and_then(Option::take) {
                    bar.finish_and_clear();
                    self.multi.remove(&bar);
                }
                let Some(j) = state.jobs.get(*job) else {
                    return;
                };
                let mut text = status_line(j, self.paint);
                if is_failure(status) {
                    for line in &j.tail {
                        let _ = write!(text, "\n  {} {}", self.paint.dim("│"), sanitize(line));
                    }
                    if let Some(path) = self.log_paths.get(*job) {
                        let _ = write!(text, "\n  {}", self.paint.dim(format!("full log: {path}")));
                    }
                }
                self.println(&text);
            }
        }
    }

    /// A message from the CLI itself (e.g. "cancelling").
    pub fn notice(&mut self, text: &str) {
        self.println(text);
    }

    /// Removes the bars and prints the closing summary.
    pub fn finish(&mut self, summary: &str) {
        for bar in self.bars.iter_mut().filter_map(Option::take) {
            bar.finish_and_clear();
            self.multi.remove(&bar);
        }
        // Printed through the bars' owner, so it lands below the last finished job
        // exactly like every other line.
        self.println(summary.trim_end_matches('\n'));
        let _ = self.multi.clear();
        crate::term::restore();
    }
}

impl Drop for Live {
    fn drop(&mut self) {
        // Also when the run ends in an error before `finish`.
        crate::term::restore();
    }
}
