//! Secret masking: every secret value is replaced by `***` before a line leaves the engine.
//!
//! Every non-empty value is masked, however short: "secrets never appear in logs" is an
//! invariant, and a short secret garbling a log is the lesser harm (the CLI masks the same
//! way, so what the engine emits and what a terminal shows agree). A multi-line value is
//! masked line by line as well, because logs arrive one line at a time. Longer values are
//! replaced first so that a secret containing another is hidden whole.

use std::borrow::Cow;

/// Replaces secret values in text.
#[derive(Debug, Clone, Default)]
pub struct Masker {
    values: Vec<String>,
}

impl Masker {
    /// A masker for these secret values.
    pub fn new<'a>(secrets: impl IntoIterator<Item = &'a str>) -> Masker {
        let mut values: Vec<String> = Vec::new();
        for secret in secrets {
            values.push(secret.to_owned());
            if secret.contains('\n') {
                values.extend(secret.lines().map(|l| l.trim_end_matches('\r').to_owned()));
            }
        }
        values.retain(|v| !v.is_empty());
        values.sort_by(|a, b| b.len().cmp(&a.len()).then_with(|| a.cmp(b)));
        values.dedup();
        Masker { values }
    }

    /// `text` with every secret value replaced by `***`.
    pub fn mask<'t>(&self, text: &'t str) -> Cow<'t, str> {
        let mut out = Cow::Borrowed(text);
        for value in &self.values {
            if out.contains(value.as_str()) {
                out = Cow::Owned(out.replace(value.as_str(), "***"));
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn masks() {
        let masker = Masker::new(["hunter2", "hunter2-long", "q", "", "line1\nline2"]);
        let check = |text: &str, expect: &str| assert_eq!(masker.mask(text), expect, "{text}");
        check("password is hunter2", "password is ***");
        check("hunter2hunter2", "******");
        check("token hunter2-long end", "token *** end");
        check("q is short", "*** is short");
        check("got line2 alone", "got *** alone");
        check("nothing here", "nothing here");
        assert!(matches!(masker.mask("nothing here"), Cow::Borrowed(_)));
    }
}
