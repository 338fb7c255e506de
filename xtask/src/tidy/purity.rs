//! Pure crates do no IO: `pipeline` parses and plans from strings and values only, so it
//! can be fuzzed, run in the server, and tested without files. Checked by scanning the
//! crate's `src/` for the forbidden paths, and its `[dependencies]` for forbidden crates.

use std::fs;
use std::path::Path;

use crate::metadata::{DepKind, Workspace};

use super::Verdict;
use super::module_docs::checked_files;

/// A crate that must do no IO.
#[derive(Debug, Clone, Copy)]
pub struct PureCrate {
    /// Package name.
    pub package: &'static str,
    /// Paths its `src/` must not use: `std::fs`-style module paths, or bare crate names
    /// (also refused as `[dependencies]`).
    pub forbidden: &'static [&'static str],
    /// The rule in words, quoted in failure messages.
    pub why: &'static str,
}

/// The crates checked, one line each.
pub const PURE_CRATES: &[PureCrate] = &[PureCrate {
    package: "gantry-pipeline",
    forbidden: &["std::fs", "std::net", "std::process", "tokio"],
    why: "`pipeline` does no IO: it turns text and values into a plan, nothing else",
}];

/// Tidy check over the real workspace.
pub fn check_purity(ws: &Workspace) -> Verdict {
    let mut problems = Vec::new();
    for pure in PURE_CRATES {
        let Some(member) = ws.member(pure.package) else {
            continue;
        };
        for dep in &member.deps {
            if dep.kind == DepKind::Normal && pure.forbidden.contains(&dep.name.as_str()) {
                problems.push(format!(
                    "`{}` must not depend on `{}` (in its [dependencies]): {}",
                    pure.package, dep.name, pure.why
                ));
            }
        }
        let src = member.dir().join("src");
        for file in checked_files(&ws.root)
            .into_iter()
            .filter(|f| f.starts_with(&src))
        {
            let Ok(text) = fs::read_to_string(&file) else {
                continue;
            };
            for (line_no, used) in forbidden_uses(&text, pure.forbidden) {
                problems.push(format!(
                    "{}:{line_no}: `{}` uses `{used}`: {}",
                    relative(&ws.root, &file),
                    pure.package,
                    pure.why
                ));
            }
        }
    }
    Verdict::from_problems(problems)
}

fn relative(root: &Path, file: &Path) -> String {
    file.strip_prefix(root)
        .unwrap_or(file)
        .display()
        .to_string()
}

/// Each `(1-based line, forbidden path)` used in `source`, outside comments. Finds
/// `std::fs::read`, `use std::{fs, io}` (also across lines), `::std::net`, and crate names
/// like `tokio::spawn`.
pub fn forbidden_uses(source: &str, forbidden: &[&str]) -> Vec<(usize, String)> {
    let code: Vec<&str> = source.lines().map(strip_line_comment).collect();
    let grouped = std_group_items(&code);
    let mut found = Vec::new();
    for (i, line) in code.iter().enumerate() {
        let words = path_words(line);
        for f in forbidden {
            let as_path = words
                .iter()
                .any(|w| w == f || w.starts_with(&format!("{f}::")));
            let in_group = f.strip_prefix("std::").is_some_and(|module| {
                grouped
                    .iter()
                    .any(|(l, name)| *l == i + 1 && name == module)
            });
            if as_path || in_group {
                found.push((i + 1, (*f).to_owned()));
            }
        }
    }
    found
}

fn strip_line_comment(line: &str) -> &str {
    line.find("//").map_or(line, |i| &line[..i])
}

/// Maximal runs of identifier characters and `::`, without a leading `::`.
fn path_words(code: &str) -> Vec<String> {
    let mut words = Vec::new();
    let mut current = String::new();
    for c in code.chars() {
        if c.is_ascii_alphanumeric() || c == '_' || c == ':' {
            current.push(c);
        } else if !current.is_empty() {
            words.push(std::mem::take(&mut current));
        }
    }
    if !current.is_empty() {
        words.push(current);
    }
    words
        .into_iter()
        .map(|w| w.trim_start_matches(':').to_owned())
        .collect()
}

/// The `(1-based line, first segment)` of each item directly inside a `std::{ ... }` group:
/// `use std::{fmt, io::{Read, Write}, fs};` yields `fmt`, `io` and `fs`.
fn std_group_items(lines: &[&str]) -> Vec<(usize, String)> {
    const OPEN: &str = "std::{";
    let mut items = Vec::new();
    // Brace depth inside the current group (0: not in one), and the first segment of the
    // current item while it is still being read.
    let mut depth = 0usize;
    let mut segment: Option<String> = None;
    for (i, line) in lines.iter().enumerate() {
        let mut emit = |segment: &mut Option<String>| {
            if let Some(name) = segment.take_if(|n| !n.is_empty()) {
                items.push((i + 1, name));
            }
        };
        let mut rest = *line;
        loop {
            if depth == 0 {
                let Some(at) = rest.find(OPEN) else { break };
                rest = &rest[at + OPEN.len()..];
                depth = 1;
                segment = Some(String::new());
                continue;
            }
            let Some(c) = rest.chars().next() else { break };
            rest = &rest[c.len_utf8()..];
            if depth == 1 && (c.is_ascii_alphanumeric() || c == '_') {
                if let Some(name) = segment.as_mut() {
                    name.push(c);
                }
                continue;
            }
            if depth == 1 {
                emit(&mut segment);
            }
            match c {
                ',' if depth == 1 => segment = Some(String::new()),
                '{' => depth += 1,
                '}' => depth -= 1,
                _ => {}
            }
        }
        // An identifier cannot continue on the next line.
        emit(&mut segment);
    }
    items
}

#[cfg(test)]
mod tests {
    use super::*;

    const FORBIDDEN: &[&str] = &["std::fs", "std::net", "std::process", "tokio"];

    fn check(source: &str, expect: &[(usize, &str)]) {
        let got = forbidden_uses(source, FORBIDDEN);
        let expect: Vec<_> = expect.iter().map(|(l, s)| (*l, (*s).to_owned())).collect();
        assert_eq!(got, expect, "source:\n{source}");
    }

    #[test]
    fn finds_io() {
        check("use std::fs;\n", &[(1, "std::fs")]);
        check("let x = std::fs::read(p);\n", &[(1, "std::fs")]);
        check(
            "let x = ::std::net::TcpStream::connect(a);\n",
            &[(1, "std::net")],
        );
        check(
            "use std::{collections::BTreeMap, process};\n",
            &[(1, "std::process")],
        );
        check(
            "use std::{\n    fmt,\n    fs::File,\n};\n",
            &[(3, "std::fs")],
        );
        check("tokio::spawn(async {});\n", &[(1, "tokio")]);
        check("use tokio;\n", &[(1, "tokio")]);
        check(
            "use std::{fmt, io::{Read, Write}, fs};\n",
            &[(1, "std::fs")],
        );
        check(
            "use std::{\n    io::{Read,\n    Write},\n    net,\n};\n",
            &[(4, "std::net")],
        );
        check("use std::{fs as f};\n", &[(1, "std::fs")]);
    }

    #[test]
    fn ignores_look_alikes() {
        check("use std::fmt;\nuse std::collections::HashMap;\n", &[]);
        check("// std::fs would be IO\n/// No tokio here.\n", &[]);
        check("let fs = 1; let tokio_like = 2; mystd::fs::x();\n", &[]);
        check("use std::{fmt, io};\nfn fs() {}\n", &[]);
        check("use std::{io::{self, fs_like}, fmt};\n", &[]);
    }
}
