//! ARCHITECTURE.md is the code map: every crate under `crates/` must appear in it.
//!
//! A crate counts as mentioned when the file names its folder (`crates/backend-local`),
//! its short name in backticks (`` `backend-local` ``) or its package name in backticks
//! (`` `gantry-backend-local` ``).

use std::fs;

use crate::metadata::Workspace;

use super::Verdict;

/// Tidy check over the real workspace.
pub fn check_architecture_md(ws: &Workspace) -> Verdict {
    let path = ws.root.join("ARCHITECTURE.md");
    let Ok(text) = fs::read_to_string(&path) else {
        return Verdict::Skipped(
            "ARCHITECTURE.md does not exist yet, so no crate can be checked against it".into(),
        );
    };
    let crates_dir = ws.root.join("crates");
    let mut missing = Vec::new();
    for member in &ws.members {
        let Ok(rel) = member.dir().strip_prefix(&crates_dir) else {
            continue;
        };
        let dir = rel.to_string_lossy();
        if !mentions(&text, &dir, &member.name) {
            missing.push(format!(
                "crate `{}` (crates/{dir}) is not in ARCHITECTURE.md: give it a paragraph \
                 naming `crates/{dir}`, `{dir}` or `{}` in backticks",
                member.name, member.name
            ));
        }
    }
    Verdict::from_problems(missing)
}

/// Whether `text` mentions the crate in folder `crates/<dir>` called `package`.
pub fn mentions(text: &str, dir: &str, package: &str) -> bool {
    contains_word(text, &format!("crates/{dir}"))
        || text.contains(&format!("`{dir}`"))
        || text.contains(&format!("`{package}`"))
}

/// `needle` in `text`, not as part of a longer crate name (`crates/backend` is not found in
/// `crates/backend-local`).
fn contains_word(text: &str, needle: &str) -> bool {
    let is_name_char = |c: char| c.is_ascii_alphanumeric() || c == '-' || c == '_';
    text.match_indices(needle).any(|(i, _)| {
        let before = text[..i].chars().next_back();
        let after = text[i + needle.len()..].chars().next();
        !before.is_some_and(is_name_char) && !after.is_some_and(is_name_char)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(text: &str, dir: &str, package: &str, expect: bool) {
        assert_eq!(mentions(text, dir, package), expect, "{dir} in {text:?}");
    }

    #[test]
    fn mention_forms() {
        check(
            "see crates/pipeline for parsing",
            "pipeline",
            "gantry-pipeline",
            true,
        );
        check(
            "### `backend-local`",
            "backend-local",
            "gantry-backend-local",
            true,
        );
        check("the `gantry-engine` crate", "engine", "gantry-engine", true);
        check(
            "crates/backend-local only",
            "backend",
            "gantry-backend",
            false,
        );
        check("`backend-local` only", "backend", "gantry-backend", false);
        check("the backend does X", "backend", "gantry-backend", false);
        check("(crates/cli)", "cli", "gantry", true);
    }
}
