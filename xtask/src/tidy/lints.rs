//! Lints live in `[workspace.lints]`: every member's Cargo.toml must opt in with
//! `[lints] workspace = true`, or a new crate silently builds without them.

use std::fs;

use crate::metadata::Workspace;

use super::Verdict;

/// Tidy check over the real workspace.
pub fn check_workspace_lints(ws: &Workspace) -> Verdict {
    let mut problems = Vec::new();
    for member in &ws.members {
        let rel = member
            .manifest_path
            .strip_prefix(&ws.root)
            .unwrap_or(&member.manifest_path);
        match fs::read_to_string(&member.manifest_path) {
            Ok(text) if inherits_workspace_lints(&text) => {}
            Ok(_) => problems.push(format!(
                "`{}` ({}) does not inherit the workspace lints: add `[lints]` with \
                 `workspace = true`",
                member.name,
                rel.display()
            )),
            Err(e) => problems.push(format!(
                "`{}`: cannot read {}: {e}",
                member.name,
                rel.display()
            )),
        }
    }
    Verdict::from_problems(problems)
}

/// Whether a Cargo.toml sets `lints.workspace = true`, in any of TOML's spellings:
/// a `[lints]` table, a dotted key, or an inline table.
pub fn inherits_workspace_lints(manifest: &str) -> bool {
    let mut table = String::new();
    for line in manifest.lines() {
        let line = strip_comment(line).trim();
        if let Some(header) = line.strip_prefix('[') {
            table = header.trim_end_matches(']').trim().to_owned();
            continue;
        }
        let Some((key, value)) = line.split_once('=') else {
            continue;
        };
        let key: String = key.split('.').map(str::trim).collect::<Vec<_>>().join(".");
        let value = value.trim();
        let full_key = if table.is_empty() {
            key
        } else {
            format!("{table}.{key}")
        };
        match full_key.as_str() {
            "lints.workspace" if value == "true" => return true,
            "lints" if is_inline_workspace_true(value) => return true,
            _ => {}
        }
    }
    false
}

fn is_inline_workspace_true(value: &str) -> bool {
    let Some(inner) = value.strip_prefix('{').and_then(|v| v.strip_suffix('}')) else {
        return false;
    };
    inner.split(',').any(|kv| {
        kv.split_once('=')
            .is_some_and(|(k, v)| k.trim() == "workspace" && v.trim() == "true")
    })
}

fn strip_comment(line: &str) -> &str {
    // Good enough for Cargo.toml headers and booleans: a `#` inside a string only shortens
    // a line whose value we never need.
    line.split_once('#').map_or(line, |(before, _)| before)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(manifest: &str, expect: bool) {
        assert_eq!(
            inherits_workspace_lints(manifest),
            expect,
            "manifest:\n{manifest}"
        );
    }

    #[test]
    fn spellings() {
        check(
            "[package]\nname = \"a\"\n\n[lints]\nworkspace = true\n",
            true,
        );
        check("[lints]\nworkspace=true # inherit\n", true);
        check("lints.workspace = true\n[package]\nname = \"a\"\n", true);
        check("lints = { workspace = true }\n", true);
        check("[package]\nname = \"a\"\n", false);
        check("[lints]\nworkspace = false\n", false);
        check("[lints.rust]\nworkspace = true\n", false);
        check("[package]\nworkspace = true\n", false);
        check("# [lints]\n# workspace = true\n", false);
    }
}
