//! Colors and output chokepoints: whether to color, and the few functions that write to
//! the terminal (the workspace lints forbid stray `println!`).

use std::fmt::Display;
use std::io::{IsTerminal, Write};

use console::Style;

use crate::args::ColorChoice;

/// Applies colors, or not.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Paint {
    color: bool,
}

impl Paint {
    /// No colors at all.
    #[cfg(test)]
    pub const PLAIN: Paint = Paint { color: false };

    /// Decides for a stream: `auto` colors a terminal unless `NO_COLOR` is set
    /// (<https://no-color.org>: any non-empty value).
    pub fn new(choice: ColorChoice, is_terminal: bool) -> Paint {
        let color = match choice {
            ColorChoice::Always => true,
            ColorChoice::Never => false,
            ColorChoice::Auto => {
                is_terminal && std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty())
            }
        };
        Paint { color }
    }

    /// For standard error.
    pub fn stderr(choice: ColorChoice) -> Paint {
        Paint::new(choice, std::io::stderr().is_terminal())
    }

    /// For standard output.
    pub fn stdout(choice: ColorChoice) -> Paint {
        Paint::new(choice, std::io::stdout().is_terminal())
    }

    /// True when colors are applied.
    pub fn enabled(self) -> bool {
        self.color
    }

    fn apply(self, style: Style, text: impl Display) -> String {
        if self.color {
            style.force_styling(true).apply_to(text).to_string()
        } else {
            text.to_string()
        }
    }

    /// Errors, failures.
    pub fn red(self, text: impl Display) -> String {
        self.apply(Style::new().red().bold(), text)
    }

    /// Success.
    pub fn green(self, text: impl Display) -> String {
        self.apply(Style::new().green(), text)
    }

    /// Warnings, allowed failures, cancellation.
    pub fn yellow(self, text: impl Display) -> String {
        self.apply(Style::new().yellow(), text)
    }

    /// Secondary information (durations, paths, skipped jobs).
    pub fn dim(self, text: impl Display) -> String {
        self.apply(Style::new().dim(), text)
    }

    /// Names.
    pub fn bold(self, text: impl Display) -> String {
        self.apply(Style::new().bold(), text)
    }

    /// Hints.
    pub fn cyan(self, text: impl Display) -> String {
        self.apply(Style::new().cyan(), text)
    }
}

/// Writes text to standard output; a closed pipe (`gantry graph | head`) is not an error
/// worth a panic, so write failures are ignored.
pub fn out(text: &str) {
    let mut stdout = std::io::stdout().lock();
    let _ = stdout.write_all(text.as_bytes());
    let _ = stdout.flush();
}

/// Writes text to standard error (see [`out`]).
pub fn err(text: &str) {
    let mut stderr = std::io::stderr().lock();
    let _ = stderr.write_all(text.as_bytes());
    let _ = stderr.flush();
}

/// Colors rendered diagnostics or error text: `error:` red, carets red, `help:` cyan,
/// `note:` dim. The text itself is produced uncolored by the pipeline crate.
pub fn diagnostics(text: &str, paint: Paint) -> String {
    if !paint.enabled() {
        return text.to_owned();
    }
    let mut out = String::with_capacity(text.len() + 64);
    for (i, line) in text.split('\n').enumerate() {
        if i > 0 {
            out.push('\n');
        }
        let trimmed = line.trim_start();
        let indent = &line[..line.len() - trimmed.len()];
        if let Some(rest) = line.strip_prefix("error:") {
            out.push_str(&paint.red("error:"));
            out.push_str(&paint.bold(rest));
        } else if let Some((gutter, marks)) = line.split_once(" | ")
            && gutter.trim().is_empty()
            && !marks.trim().is_empty()
            && marks.trim().chars().all(|c| c == '^')
        {
            out.push_str(&format!("{gutter} | {}", paint.red(marks)));
        } else if let Some(rest) = trimmed.strip_prefix("= help:") {
            out.push_str(&format!("{indent}{}{rest}", paint.cyan("= help:")));
        } else if let Some(rest) = trimmed.strip_prefix("help:") {
            out.push_str(&format!("{indent}{}{rest}", paint.cyan("help:")));
        } else if trimmed.starts_with("= note:") {
            out.push_str(&paint.dim(line));
        } else {
            out.push_str(line);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_paint_changes_nothing() {
        let text = "error: x\n  --> f:1:1\n   |\n 1 | a\n   | ^\n   = help: y";
        assert_eq!(diagnostics(text, Paint::PLAIN), text);
    }

    #[test]
    fn colored_diagnostics_keep_their_text() {
        let text = "error: x\n 1 | a\n   | ^^\n   = help: y";
        let colored = diagnostics(text, Paint::new(ColorChoice::Always, false));
        assert_ne!(colored, text);
        assert_eq!(console::strip_ansi_codes(&colored), text);
    }
}
