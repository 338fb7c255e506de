//! Diagnostics: what is wrong with a pipeline file, where, and how to fix it.
//!
//! A [`Diagnostic`] is self-contained — it carries the file name and the quoted source
//! line — so it can be rendered long after the text it came from is gone. Rendering
//! follows rustc's layout (no colour; a terminal front end may add it):
//!
//! ```text
//! error: unknown key "need" in job "test"
//!   --> gantry.yml:12:5
//!    |
//! 12 |     need: [build]
//!    |     ^^^^
//!    = help: did you mean "needs"?
//! ```

use std::fmt;

use crate::span::Span;

/// Width a tab takes when a quoted line is rendered; tabs are expanded so that the caret
/// line stays aligned with the quoted text.
const TAB_WIDTH: usize = 4;

/// One problem in a pipeline file (or in the inputs of a plan).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Diagnostic {
    /// What is wrong, a lowercase sentence fragment.
    pub message: String,
    /// Where, when the problem has a place in the file.
    pub location: Option<Location>,
    /// Extra facts ("first defined at line 3").
    pub notes: Vec<String>,
    /// How to fix it, when that is knowable.
    pub help: Option<String>,
}

/// A place in a file, with the quoted line for rendering.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Location {
    /// The file as the user named it.
    pub file: String,
    /// Line, 1-based.
    pub line: u32,
    /// Column, 1-based, in characters.
    pub column: u32,
    /// The text of the line (without its line break).
    pub source_line: String,
    /// How many characters to underline, at least 1.
    pub width: u32,
}

impl Diagnostic {
    /// A diagnostic without a place in the file.
    pub fn new(message: impl Into<String>) -> Self {
        Diagnostic {
            message: message.into(),
            location: None,
            notes: Vec::new(),
            help: None,
        }
    }

    /// Adds a suggestion on how to fix the problem.
    pub fn with_help(mut self, help: impl Into<String>) -> Self {
        self.help = Some(help.into());
        self
    }

    /// Adds a suggestion if there is one.
    pub fn with_help_opt(mut self, help: Option<String>) -> Self {
        if help.is_some() {
            self.help = help;
        }
        self
    }

    /// Adds a note.
    pub fn with_note(mut self, note: impl Into<String>) -> Self {
        self.notes.push(note.into());
        self
    }

    /// Sort key: diagnostics are shown in file order, unlocated ones last.
    fn sort_key(&self) -> (u32, u32, u32) {
        match &self.location {
            Some(l) => (0, l.line, l.column),
            None => (1, 0, 0),
        }
    }
}

impl fmt::Display for Diagnostic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "error: {}", self.message)?;
        let Some(loc) = &self.location else {
            for note in &self.notes {
                write!(f, "\n  = note: {note}")?;
            }
            if let Some(help) = &self.help {
                write!(f, "\n  = help: {help}")?;
            }
            return Ok(());
        };
        let number = loc.line.to_string();
        let pad = " ".repeat(number.len());
        write!(f, "\n{pad}--> {}:{}:{}", loc.file, loc.line, loc.column)?;
        write!(f, "\n{pad} |")?;
        let (quoted, caret_start, caret_width) = layout(&loc.source_line, loc.column, loc.width);
        write!(f, "\n{number} | {quoted}")?;
        write!(
            f,
            "\n{pad} | {}{}",
            " ".repeat(caret_start),
            "^".repeat(caret_width)
        )?;
        for note in &self.notes {
            write!(f, "\n{pad} = note: {note}")?;
        }
        if let Some(help) = &self.help {
            write!(f, "\n{pad} = help: {help}")?;
        }
        Ok(())
    }
}

/// Expands tabs in the quoted line and converts the character column/width into
/// display columns, so the caret lands under the right characters.
fn layout(line: &str, column: u32, width: u32) -> (String, usize, usize) {
    let start = column.saturating_sub(1) as usize;
    let end = start + width.max(1) as usize;
    let mut quoted = String::with_capacity(line.len());
    let (mut caret_start, mut caret_end) = (None, None);
    let mut display = 0usize;
    for (i, c) in line.trim_end().chars().enumerate() {
        if i == start {
            caret_start = Some(display);
        }
        if i == end {
            caret_end = Some(display);
        }
        let w = if c == '\t' { TAB_WIDTH } else { 1 };
        if c == '\t' {
            quoted.push_str(&" ".repeat(TAB_WIDTH));
        } else if c.is_control() {
            // Control characters would garble the terminal; show a placeholder.
            quoted.push('\u{FFFD}');
        } else {
            quoted.push(c);
        }
        display += w;
    }
    // A position at or past the end of the line (e.g. "unexpected end of line") gets a
    // single caret just after the text.
    let caret_start = caret_start.unwrap_or(display);
    let caret_end = caret_end.unwrap_or(display).max(caret_start + 1);
    (quoted, caret_start, caret_end - caret_start)
}

/// Every problem found in one file, in file order. This is the error type of parsing and
/// planning.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Diagnostics {
    items: Vec<Diagnostic>,
}

impl Diagnostics {
    /// An empty collection.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds one diagnostic.
    pub fn push(&mut self, d: Diagnostic) {
        self.items.push(d);
    }

    /// Number of diagnostics.
    pub fn len(&self) -> usize {
        self.items.len()
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.items.is_empty()
    }

    /// The diagnostics, in file order.
    pub fn iter(&self) -> std::slice::Iter<'_, Diagnostic> {
        self.items.iter()
    }

    /// Takes the diagnostics out.
    pub fn into_vec(self) -> Vec<Diagnostic> {
        self.items
    }

    /// Sorts into file order (stable: problems on one line keep the order they were found).
    pub(crate) fn sort(&mut self) {
        self.items.sort_by_key(Diagnostic::sort_key);
    }

    /// `Err(self)` when there is anything in it, `Ok(value)` otherwise.
    pub(crate) fn into_result<T>(mut self, value: T) -> Result<T, Diagnostics> {
        if self.items.is_empty() {
            Ok(value)
        } else {
            self.sort();
            Err(self)
        }
    }
}

impl From<Diagnostic> for Diagnostics {
    fn from(d: Diagnostic) -> Self {
        Diagnostics { items: vec![d] }
    }
}

impl From<Vec<Diagnostic>> for Diagnostics {
    fn from(items: Vec<Diagnostic>) -> Self {
        Diagnostics { items }
    }
}

impl<'a> IntoIterator for &'a Diagnostics {
    type Item = &'a Diagnostic;
    type IntoIter = std::slice::Iter<'a, Diagnostic>;
    fn into_iter(self) -> Self::IntoIter {
        self.items.iter()
    }
}

impl IntoIterator for Diagnostics {
    type Item = Diagnostic;
    type IntoIter = std::vec::IntoIter<Diagnostic>;
    fn into_iter(self) -> Self::IntoIter {
        self.items.into_iter()
    }
}

impl fmt::Display for Diagnostics {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for d in &self.items {
            writeln!(f, "{d}\n")?;
        }
        match self.items.len() {
            1 => write!(f, "1 error"),
            n => write!(f, "{n} errors"),
        }
    }
}

impl std::error::Error for Diagnostics {}

/// The text of a pipeline file, indexed by line, for turning spans into [`Location`]s.
#[derive(Debug)]
pub(crate) struct Source {
    /// The file as the user named it.
    pub path: String,
    text: String,
    /// Byte offset of the start of each line.
    line_starts: Vec<usize>,
}

impl Source {
    pub fn new(path: &str, text: &str) -> Self {
        let mut line_starts = vec![0];
        line_starts.extend(text.match_indices('\n').map(|(i, _)| i + 1));
        Source {
            path: path.to_string(),
            text: text.to_string(),
            line_starts,
        }
    }

    pub fn text(&self) -> &str {
        &self.text
    }

    /// The text of a 1-based line, without its line break.
    pub fn line(&self, line: u32) -> &str {
        let Some(&start) = self.line_starts.get((line as usize).wrapping_sub(1)) else {
            return "";
        };
        let end = self
            .line_starts
            .get(line as usize)
            .copied()
            .unwrap_or(self.text.len());
        self.text[start..end].trim_end_matches(['\n', '\r'])
    }

    /// A diagnostic at `span` (or without a location when the span is unknown).
    pub fn error(&self, span: Span, message: impl Into<String>) -> Diagnostic {
        let mut d = Diagnostic::new(message);
        d.location = self.location(span);
        d
    }

    pub fn location(&self, span: Span) -> Option<Location> {
        if !span.is_known() {
            return None;
        }
        let source_line = self.line(span.line).to_string();
        let line_chars = source_line.trim_end().chars().count() as u32;
        // A span running onto later lines (a block mapping, a multi-line string) is
        // underlined to the end of its first line.
        let end = if span.end_line == span.line && span.end_col > span.col {
            span.end_col
        } else {
            line_chars
        };
        let width = end.saturating_sub(span.col).max(1);
        Some(Location {
            file: self.path.clone(),
            line: span.line,
            column: span.col + 1,
            source_line,
            width,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(text: &str, span: Span, expect: &str) {
        let src = Source::new("gantry.yml", text);
        let d = src.error(span, "boom").with_help("fix it");
        assert_eq!(d.to_string(), expect);
    }

    #[test]
    fn renders_like_rustc() {
        let text = "a: 1\n".repeat(11) + "    need: [build]\n";
        check(
            &text,
            Span::new(12, 4, 12, 8),
            "error: boom\n  --> gantry.yml:12:5\n   |\n12 |     need: [build]\n   |     ^^^^\n   = help: fix it",
        );
    }

    #[test]
    fn multi_line_span_underlines_rest_of_line() {
        check(
            "jobs:\n  x: 1\n",
            Span::new(2, 2, 3, 0),
            "error: boom\n --> gantry.yml:2:3\n  |\n2 |   x: 1\n  |   ^^^^\n  = help: fix it",
        );
    }

    #[test]
    fn tabs_are_expanded_and_caret_follows() {
        check(
            "a:\n\tb: 1\n",
            Span::new(2, 0, 2, 1),
            "error: boom\n --> gantry.yml:2:1\n  |\n2 |     b: 1\n  | ^^^^\n  = help: fix it",
        );
    }

    #[test]
    fn caret_past_end_of_line() {
        check(
            "key:\n",
            Span::new(1, 4, 1, 4),
            "error: boom\n --> gantry.yml:1:5\n  |\n1 | key:\n  |     ^\n  = help: fix it",
        );
    }

    #[test]
    fn collection_counts_errors() {
        let mut ds = Diagnostics::new();
        ds.push(Diagnostic::new("one"));
        assert_eq!(ds.to_string(), "error: one\n\n1 error");
        ds.push(Diagnostic::new("two").with_help("h"));
        assert_eq!(
            ds.to_string(),
            "error: one\n\nerror: two\n  = help: h\n\n2 errors"
        );
    }
}
