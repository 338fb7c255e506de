//! Masking secret values as `***` in everything the CLI writes.
//!
//! The engine already masks log lines; the CLI masks again before anything reaches a
//! terminal or a file, so a secret cannot leak through a path the engine did not
//! anticipate (an error message, a skip reason).

use std::borrow::Cow;
use std::collections::BTreeMap;

use gantry_engine::{JobStatus, RunEvent};

/// Replaces secret values with `***`.
#[derive(Debug, Clone, Default)]
pub struct Masker {
    /// Longest first, so a secret containing another is masked whole.
    values: Vec<String>,
}

impl Masker {
    /// A masker for the values of `secrets` (empty values are ignored: masking "" would
    /// insert *** between every character).
    pub fn new(secrets: &BTreeMap<String, String>) -> Masker {
        let mut values: Vec<String> = secrets
            .values()
            .filter(|v| !v.is_empty())
            .cloned()
            .collect();
        values.sort_by(|a, b| b.len().cmp(&a.len()).then_with(|| a.cmp(b)));
        values.dedup();
        Masker { values }
    }

    /// `text` with every secret value replaced.
    pub fn mask<'a>(&self, text: &'a str) -> Cow<'a, str> {
        let mut out = Cow::Borrowed(text);
        for v in &self.values {
            if out.contains(v.as_str()) {
                out = Cow::Owned(out.replace(v.as_str(), "***"));
            }
        }
        out
    }

    fn mask_in_place(&self, text: &mut String) {
        if let Cow::Owned(masked) = self.mask(text) {
            *text = masked;
        }
    }

    /// Masks every text an event carries.
    pub fn event(&self, event: &mut RunEvent) {
        if self.values.is_empty() {
            return;
        }
        match event {
            RunEvent::JobLog { line, .. } => self.mask_in_place(&mut line.text),
            RunEvent::JobFinished {
                status: JobStatus::Errored { message },
                ..
            } => {
                self.mask_in_place(message);
            }
            RunEvent::JobFinished {
                status: JobStatus::Skipped { reason },
                ..
            } => {
                self.mask_in_place(reason);
            }
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn masks_longest_first_and_ignores_empty() {
        let secrets: BTreeMap<String, String> = [("A", "abc"), ("B", "abcdef"), ("E", "")]
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        let m = Masker::new(&secrets);
        assert_eq!(m.mask("x abcdef y abc z"), "x *** y *** z");
        assert_eq!(m.mask("nothing here"), "nothing here");
    }
}
