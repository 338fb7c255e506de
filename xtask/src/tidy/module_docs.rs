//! Every Rust file opens with a `//!` doc saying what it is for (CONVENTIONS.md, item 1).
//!
//! Checked files: `crates/*/src/**`, `crates/*/benches/**`, the top-level files of
//! `crates/*/tests` (their subfolders hold fixtures and shared helpers), and xtask's own
//! `src/**` and top-level `tests/*.rs`.

use std::fs;
use std::path::{Path, PathBuf};

use crate::metadata::Workspace;

use super::Verdict;

/// Tidy check over the real workspace.
pub fn check_module_docs(ws: &Workspace) -> Verdict {
    let mut offenders = Vec::new();
    for file in checked_files(&ws.root) {
        // A file deleted or unreadable while another helper edits it is not ours to judge.
        let Ok(text) = fs::read_to_string(&file) else {
            continue;
        };
        if !has_module_doc(&text) {
            let rel = file.strip_prefix(&ws.root).unwrap_or(&file);
            offenders.push(rel.display().to_string());
        }
    }
    if offenders.is_empty() {
        return Verdict::Ok;
    }
    let mut problems = vec![format!(
        "{} file(s) do not start with a `//!` module doc saying what they are for \
         (only attributes and blank lines may come before it):",
        offenders.len()
    )];
    problems.extend(offenders.into_iter().map(|f| format!("  {f}")));
    Verdict::Failed(problems)
}

/// The `.rs` files the rule applies to, sorted.
pub fn checked_files(root: &Path) -> Vec<PathBuf> {
    let mut files = Vec::new();
    let mut crate_dirs = subdirs(&root.join("crates"));
    crate_dirs.push(root.join("xtask"));
    for dir in crate_dirs {
        rs_files(&dir.join("src"), true, &mut files);
        rs_files(&dir.join("benches"), true, &mut files);
        rs_files(&dir.join("tests"), false, &mut files);
    }
    files.sort();
    files
}

fn subdirs(dir: &Path) -> Vec<PathBuf> {
    let Ok(entries) = fs::read_dir(dir) else {
        return Vec::new();
    };
    entries
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.is_dir())
        .collect()
}

fn rs_files(dir: &Path, recurse: bool, out: &mut Vec<PathBuf>) {
    let Ok(entries) = fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        if path.is_dir() {
            if recurse {
                rs_files(&path, true, out);
            }
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// Whether `source` starts with a `//!` (or `/*!`) doc, after inner or outer attributes
/// (which may span lines) and blank lines.
pub fn has_module_doc(source: &str) -> bool {
    let mut lines = source.lines();
    while let Some(line) = lines.next() {
        let line = line.trim_start_matches('\u{feff}').trim();
        if line.is_empty() {
            continue;
        }
        if line.starts_with("#![") || line.starts_with("#[") {
            // Skip the attribute up to its closing bracket, which may be lines further on.
            let mut depth = bracket_depth(line);
            while depth > 0 {
                let Some(next) = lines.next() else {
                    return false;
                };
                depth += bracket_depth(next);
            }
            continue;
        }
        if line.starts_with("#!") {
            // A shebang line (`#!/usr/bin/env ...`).
            continue;
        }
        return line.starts_with("//!") || line.starts_with("/*!");
    }
    false
}

fn bracket_depth(s: &str) -> i32 {
    s.chars()
        .map(|c| match c {
            '[' => 1,
            ']' => -1,
            _ => 0,
        })
        .sum()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(source: &str, expect: bool) {
        assert_eq!(has_module_doc(source), expect, "source:\n{source}");
    }

    #[test]
    fn module_doc_detection() {
        check("//! Does things.\nfn main() {}\n", true);
        check("\n\n//! After blank lines.\n", true);
        check("/*! Block doc. */\n", true);
        check(
            "#![allow(dead_code)]\n//! After an inner attribute.\n",
            true,
        );
        check(
            "#![cfg_attr(\n    test,\n    allow(unused)\n)]\n\n//! After a long attribute.\n",
            true,
        );
        check(
            "#![forbid(unsafe_code)] #![allow(x)]\n//! Two on a line.\n",
            true,
        );
        check("fn main() {}\n", false);
        check("", false);
        check("// A plain comment.\n//! Too late.\n", false);
        check("/// An item doc.\nfn f() {}\n", false);
        check("use std::fs;\n//! Too late.\n", false);
        check("#![allow(dead_code)]\nfn main() {}\n", false);
    }
}
