//! Glob patterns for branches, tags, changed paths and param values.
//!
//! `*` does not cross `/` (globset's `literal_separator`), so `release/*` matches
//! `release/1.0` but not `release/1.0/hotfix`; `**` does cross it.

use std::sync::{Arc, OnceLock};

use globset::{Glob, GlobBuilder, GlobMatcher};

/// A checked glob together with the text it came from. The matcher (a regex) is compiled
/// on first use: validating a file with thousands of artifact globs must not compile
/// thousands of regexes nobody matches against. Clones share the compiled matcher.
#[derive(Debug, Clone)]
pub struct GlobPattern {
    text: String,
    inner: Arc<(Glob, OnceLock<GlobMatcher>)>,
}

impl GlobPattern {
    /// Parses a pattern; the error text is globset's description of the problem.
    pub fn new(text: &str) -> Result<GlobPattern, String> {
        let glob = GlobBuilder::new(text)
            .literal_separator(true)
            .backslash_escape(true)
            .build()
            .map_err(|e| e.kind().to_string())?;
        Ok(GlobPattern {
            text: text.to_string(),
            inner: Arc::new((glob, OnceLock::new())),
        })
    }

    /// The pattern as written.
    pub fn as_str(&self) -> &str {
        &self.text
    }

    /// Whether `candidate` matches.
    pub fn is_match(&self, candidate: &str) -> bool {
        let (glob, matcher) = &*self.inner;
        matcher
            .get_or_init(|| glob.compile_matcher())
            .is_match(candidate)
    }
}

impl PartialEq for GlobPattern {
    fn eq(&self, other: &Self) -> bool {
        self.text == other.text
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(pattern: &str, candidate: &str, expect: bool) {
        let g = GlobPattern::new(pattern).expect("should succeed");
        assert_eq!(g.is_match(candidate), expect, "{pattern} vs {candidate}");
    }

    #[test]
    fn globs() {
        check("develop", "develop", true);
        check("develop", "develop2", false);
        check("v*", "v1.2.3", true);
        check("v*", "1.2.3", false);
        check("release/*", "release/1.0", true);
        check("release/*", "release/1.0/hotfix", false);
        check("release/**", "release/1.0/hotfix", true);
        check("src/**", "src/a/b.rs", true);
        check("**/*.md", "docs/x/y.md", true);
        check("**/*.md", "README.md", true);
        check("*.{yml,yaml}", "a.yaml", true);
        check("feature-[0-9]", "feature-7", true);
        check("\\*", "*", true);
        check("\\*", "a", false);
    }

    #[test]
    fn bad_globs() {
        for bad in ["[abc", "{a,b", "a[z-a]"] {
            assert!(GlobPattern::new(bad).is_err(), "{bad}");
        }
    }
}
