//! Source positions: where in `gantry.yml` a value was written.
//!
//! Positions count lines from 1 and columns from 0 in characters (not bytes), which is
//! what the YAML scanner reports and what a caret under a quoted line needs.

use std::ops::Deref;

/// A range in the pipeline file. `line == 0` means "no position" (a value gantry
/// supplied itself, such as a default).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Span {
    /// First line, 1-based.
    pub line: u32,
    /// First column, 0-based, in characters.
    pub col: u32,
    /// Last line, 1-based (inclusive).
    pub end_line: u32,
    /// Column after the last character on `end_line`, 0-based.
    pub end_col: u32,
}

impl Span {
    /// The span of a value gantry made up (no place in the file).
    pub const NONE: Span = Span {
        line: 0,
        col: 0,
        end_line: 0,
        end_col: 0,
    };

    /// A span from explicit coordinates.
    pub fn new(line: u32, col: u32, end_line: u32, end_col: u32) -> Span {
        Span {
            line,
            col,
            end_line,
            end_col,
        }
    }

    /// Whether this span points into the file.
    pub fn is_known(&self) -> bool {
        self.line > 0
    }

    /// A sub-range of a single-line span: `len` characters starting `offset` characters in.
    pub(crate) fn sub(&self, offset: usize, len: usize) -> Span {
        let col = self.col + offset as u32;
        Span {
            line: self.line,
            col,
            end_line: self.line,
            end_col: col + len.max(1) as u32,
        }
    }
}

/// A value together with where it was written.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Spanned<T> {
    /// The value.
    pub value: T,
    /// Where it was written.
    pub span: Span,
}

impl<T> Spanned<T> {
    /// Pairs a value with its span.
    pub fn new(value: T, span: Span) -> Self {
        Spanned { value, span }
    }

    /// A value that was not written in the file (a default).
    pub fn unspanned(value: T) -> Self {
        Spanned {
            value,
            span: Span::NONE,
        }
    }
}

impl<T> Deref for Spanned<T> {
    type Target = T;
    fn deref(&self) -> &T {
        &self.value
    }
}
