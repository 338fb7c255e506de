//! Resolving a planned `cache.key`: every `${hash:FILES}` in it becomes a sha256 over
//! files of the job's workspace, read after the workspace was prepared (source plus the
//! artifacts of the needs), so a lock file that a need produced can be hashed too.
//!
//! `FILES` is one name or a comma-separated list; each name is a path relative to the
//! workspace or a glob (`*`, `**`, `?`, `[…]`, with the artifact rules: `*` stays within
//! one directory, and a name that is, or a glob that matches, a directory takes all the
//! files below it). The value that replaces the placeholder is:
//!
//! - for a single name that is a file: the hex sha256 of its content, what
//!   `sha256sum FILE` prints;
//! - otherwise (a list, a glob, a directory): the hex sha256 of the lines
//!   `<sha256 of content>  <path>\n` of every file found, in byte order of the paths,
//!   what `sha256sum FILE… | sha256sum` prints for those files in that order.
//!
//! A name that finds no file is an error, never an empty or constant value: a key that
//! silently stops depending on its input (a misspelt `Cargo.lck`) would keep one stale
//! entry forever, while an error shows in the job log and the job runs without its cache.
//! Names that leave the workspace (absolute, `..`) are errors, and symbolic links are
//! followed only to files inside the workspace.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use globset::{GlobBuilder, GlobSetBuilder};
use sha2::{Digest, Sha256};

use crate::artifacts::hash_file;

/// The placeholder's opening; the planner keeps `${hash:…}` verbatim for the engine.
const OPEN: &str = "${hash:";

/// Why a cache key could not be resolved. The job then runs without its cache.
#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    /// A named file or directory does not exist.
    #[error("\"{0}\" is not in the workspace")]
    Missing(String),
    /// A glob, or a directory, yields no file.
    #[error("\"{0}\" matches no file in the workspace")]
    NoMatch(String),
    /// A name is absolute or climbs out with `..`.
    #[error("\"{0}\" leaves the workspace (absolute or containing \"..\")")]
    Unsafe(String),
    /// A name is a symbolic link to a directory, to nothing or to outside the workspace.
    #[error("\"{0}\" is a symbolic link to a directory, to nothing or to outside the workspace")]
    Link(String),
    /// A glob does not parse.
    #[error("invalid glob \"{pattern}\"")]
    BadGlob {
        /// The glob.
        pattern: String,
        /// Cause.
        #[source]
        source: globset::Error,
    },
    /// `${hash:…}` names nothing (only commas).
    #[error("`${{hash:{0}}}` names no file")]
    Empty(String),
    /// The key is empty once resolved.
    #[error("the key is empty")]
    EmptyKey,
    /// A file could not be read.
    #[error("cannot read {}", path.display())]
    Io {
        /// Which file.
        path: PathBuf,
        /// Cause.
        #[source]
        source: std::io::Error,
    },
}

/// Whether a planned key has `${hash:…}` placeholders to resolve.
pub fn has_hashes(planned: &str) -> bool {
    planned.contains(OPEN)
}

/// Replaces each `${hash:FILES}` of `planned` with the hash of those files in
/// `workspace` (see the module docs). A key without placeholders is returned as is.
pub fn resolve_key(planned: &str, workspace: &Path) -> Result<String, KeyError> {
    let mut out = String::with_capacity(planned.len());
    let mut rest = planned;
    while let Some(start) = rest.find(OPEN) {
        let after = &rest[start + OPEN.len()..];
        // The planner only lets well-formed placeholders through; text without its `}` is
        // taken literally.
        let Some(end) = after.find('}') else { break };
        out.push_str(&rest[..start]);
        out.push_str(&hash_files(&after[..end], workspace)?);
        rest = &after[end + 1..];
    }
    out.push_str(rest);
    if out.trim().is_empty() {
        return Err(KeyError::EmptyKey);
    }
    Ok(out)
}

/// The value of one `${hash:FILES}`.
fn hash_files(list: &str, workspace: &Path) -> Result<String, KeyError> {
    let names: Vec<&str> = list
        .split(',')
        .map(str::trim)
        .filter(|n| !n.is_empty())
        .collect();
    if names.is_empty() {
        return Err(KeyError::Empty(list.to_owned()));
    }
    let root = workspace.canonicalize().map_err(|source| KeyError::Io {
        path: workspace.to_path_buf(),
        source,
    })?;
    // Relative path → the file to read (a link's target).
    let mut files: BTreeMap<String, PathBuf> = BTreeMap::new();
    let mut single_file = false;
    for raw in &names {
        let name = normalise(raw)?;
        if is_glob(&name) {
            glob(&root, raw, &name, &mut files)?;
            continue;
        }
        let found = named(&root, raw, &name, &mut files)?;
        single_file = names.len() == 1 && found == Named::File;
    }
    if single_file {
        let path = files.values().next().expect("one file was found");
        return read_hash(path);
    }
    let mut listing = Sha256::new();
    for (rel, path) in &files {
        listing.update(format!("{}  {rel}\n", read_hash(path)?));
    }
    Ok(hex::encode(listing.finalize()))
}

fn read_hash(path: &Path) -> Result<String, KeyError> {
    hash_file(path)
        .map(|(digest, _)| digest)
        .map_err(|source| KeyError::Io {
            path: path.to_path_buf(),
            source,
        })
}

/// `./a/` → `a`; `.` → `` (the whole workspace); refuses absolute paths and `..`.
fn normalise(raw: &str) -> Result<String, KeyError> {
    let mut name = raw.trim();
    while let Some(rest) = name.strip_prefix("./") {
        name = rest;
    }
    let name = name.trim_end_matches('/');
    let name = if name == "." { "" } else { name };
    if raw.trim().starts_with('/') || name.split('/').any(|c| c == "..") {
        return Err(KeyError::Unsafe(raw.to_owned()));
    }
    Ok(name.to_owned())
}

fn is_glob(name: &str) -> bool {
    name.contains(['*', '?', '['])
}

#[derive(Debug, PartialEq, Eq)]
enum Named {
    File,
    Directory,
}

/// A literal name: a file, a link to a file inside, or a directory taken whole.
fn named(
    root: &Path,
    raw: &str,
    name: &str,
    files: &mut BTreeMap<String, PathBuf>,
) -> Result<Named, KeyError> {
    let path = root.join(name);
    let meta = match std::fs::symlink_metadata(&path) {
        Ok(m) => m,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Err(KeyError::Missing(raw.trim().to_owned()));
        }
        Err(source) => return Err(KeyError::Io { path, source }),
    };
    if meta.is_dir() {
        let before = files.len();
        walk(root, Path::new(name), files)?;
        if files.len() == before {
            return Err(KeyError::NoMatch(raw.trim().to_owned()));
        }
        return Ok(Named::Directory);
    }
    let target = if meta.file_type().is_symlink() {
        match inside_file(root, &path) {
            Some(target) => target,
            None => return Err(KeyError::Link(raw.trim().to_owned())),
        }
    } else {
        path
    };
    files.insert(name.to_owned(), target);
    Ok(Named::File)
}

/// Every file that `pattern` matches, or that lies below a directory it matches.
fn glob(
    root: &Path,
    raw: &str,
    pattern: &str,
    files: &mut BTreeMap<String, PathBuf>,
) -> Result<(), KeyError> {
    let glob = GlobBuilder::new(pattern)
        .literal_separator(true)
        .build()
        .map_err(|source| KeyError::BadGlob {
            pattern: raw.trim().to_owned(),
            source,
        })?;
    let set = GlobSetBuilder::new()
        .add(glob)
        .build()
        .map_err(|source| KeyError::BadGlob {
            pattern: raw.trim().to_owned(),
            source,
        })?;
    let mut all = BTreeMap::new();
    walk(root, Path::new(""), &mut all)?;
    let mut matched = false;
    for (rel, path) in all {
        let hit =
            set.is_match(&rel) || rel.match_indices('/').any(|(i, _)| set.is_match(&rel[..i]));
        if hit {
            matched = true;
            files.insert(rel, path);
        }
    }
    if !matched {
        return Err(KeyError::NoMatch(raw.trim().to_owned()));
    }
    Ok(())
}

/// Adds every file below `root/rel` (links to files inside the workspace as their
/// targets; other links are left out).
fn walk(root: &Path, rel: &Path, files: &mut BTreeMap<String, PathBuf>) -> Result<(), KeyError> {
    let dir = root.join(rel);
    let io = |path: &Path| {
        let path = path.to_path_buf();
        move |source| KeyError::Io { path, source }
    };
    for child in std::fs::read_dir(&dir).map_err(io(&dir))? {
        let child = child.map_err(io(&dir))?;
        let child_rel = rel.join(child.file_name());
        let full = root.join(&child_rel);
        let meta = std::fs::symlink_metadata(&full).map_err(io(&full))?;
        let name = child_rel.to_string_lossy().into_owned();
        if meta.is_dir() {
            walk(root, &child_rel, files)?;
        } else if meta.is_file() {
            files.insert(name, full);
        } else if meta.file_type().is_symlink()
            && let Some(target) = inside_file(root, &full)
        {
            files.insert(name, target);
        }
    }
    Ok(())
}

/// The target of a link when it is a file inside `root` (which is canonical).
fn inside_file(root: &Path, link: &Path) -> Option<PathBuf> {
    let target = std::fs::canonicalize(link).ok()?;
    (target.starts_with(root) && target.is_file()).then_some(target)
}

#[cfg(test)]
mod tests {
    use super::*;
    use gantry_test_support::TempTree;

    fn sha(text: &str) -> String {
        hex::encode(Sha256::digest(text.as_bytes()))
    }

    /// The `sha256sum FILE… | sha256sum` value of (path, content) pairs in path order.
    fn listing(files: &[(&str, &str)]) -> String {
        let text: String = files
            .iter()
            .map(|(path, content)| format!("{}  {path}\n", sha(content)))
            .collect();
        sha(&text)
    }

    fn workspace() -> TempTree {
        let tree = TempTree::new();
        tree.file("ws/Cargo.lock", "lock v1")
            .file("ws/crates/a/Cargo.lock", "lock a")
            .file("ws/crates/b/Cargo.lock", "lock b")
            .file("ws/package.json", "{}")
            .file("ws/empty-dir/.keep", "")
            .file("outside", "secret")
            .symlink("ws/link.lock", "Cargo.lock")
            .symlink("ws/leak.lock", "../outside");
        std::fs::create_dir_all(tree.join("ws/nothing")).expect("mkdir");
        tree
    }

    fn check(tree: &TempTree, planned: &str, expect: Result<String, &str>) {
        let got = resolve_key(planned, &tree.join("ws")).map_err(|e| e.to_string());
        assert_eq!(got, expect.map_err(str::to_owned), "key {planned:?}");
    }

    #[test]
    fn keys() {
        let tree = workspace();
        let lock = sha("lock v1");
        check(&tree, "plain", Ok("plain".into()));
        check(
            &tree,
            "cargo-${hash:Cargo.lock}",
            Ok(format!("cargo-{lock}")),
        );
        check(&tree, "${hash: ./Cargo.lock }", Ok(lock.clone()));
        check(&tree, "${hash:link.lock}", Ok(lock.clone()));
        check(
            &tree,
            "a-${hash:Cargo.lock}-b-${hash:package.json}",
            Ok(format!("a-{lock}-b-{}", sha("{}"))),
        );
        check(
            &tree,
            "${hash:package.json,Cargo.lock}",
            Ok(listing(&[
                ("Cargo.lock", "lock v1"),
                ("package.json", "{}"),
            ])),
        );
        // The same files however they are listed.
        check(
            &tree,
            "${hash:Cargo.lock, package.json,}",
            Ok(listing(&[
                ("Cargo.lock", "lock v1"),
                ("package.json", "{}"),
            ])),
        );
        check(
            &tree,
            "${hash:**/Cargo.lock}",
            Ok(listing(&[
                ("Cargo.lock", "lock v1"),
                ("crates/a/Cargo.lock", "lock a"),
                ("crates/b/Cargo.lock", "lock b"),
            ])),
        );
        check(
            &tree,
            "${hash:crates/*/Cargo.lock}",
            Ok(listing(&[
                ("crates/a/Cargo.lock", "lock a"),
                ("crates/b/Cargo.lock", "lock b"),
            ])),
        );
        // A directory, named or matched, is taken whole.
        check(
            &tree,
            "${hash:crates}",
            Ok(listing(&[
                ("crates/a/Cargo.lock", "lock a"),
                ("crates/b/Cargo.lock", "lock b"),
            ])),
        );
        check(
            &tree,
            "${hash:crates/*}",
            Ok(listing(&[
                ("crates/a/Cargo.lock", "lock a"),
                ("crates/b/Cargo.lock", "lock b"),
            ])),
        );
        // A glob that matches one file still hashes the listing: the rule follows the
        // form written, not what the workspace holds today.
        check(
            &tree,
            "${hash:Cargo.l?ck}",
            Ok(listing(&[("Cargo.lock", "lock v1")])),
        );
        // The link that leaves the workspace is not part of a glob's files.
        check(
            &tree,
            "${hash:*.lock}",
            Ok(listing(&[
                ("Cargo.lock", "lock v1"),
                ("link.lock", "lock v1"),
            ])),
        );

        check(
            &tree,
            "${hash:Cargo.lck}",
            Err("\"Cargo.lck\" is not in the workspace"),
        );
        check(
            &tree,
            "${hash:Cargo.lock,yarn.lock}",
            Err("\"yarn.lock\" is not in the workspace"),
        );
        check(
            &tree,
            "${hash:**/*.gem}",
            Err("\"**/*.gem\" matches no file in the workspace"),
        );
        check(
            &tree,
            "${hash:nothing}",
            Err("\"nothing\" matches no file in the workspace"),
        );
        check(
            &tree,
            "${hash:../outside}",
            Err("\"../outside\" leaves the workspace (absolute or containing \"..\")"),
        );
        check(
            &tree,
            "${hash:/etc/passwd}",
            Err("\"/etc/passwd\" leaves the workspace (absolute or containing \"..\")"),
        );
        check(
            &tree,
            "${hash:leak.lock}",
            Err(
                "\"leak.lock\" is a symbolic link to a directory, to nothing or to outside \
                 the workspace",
            ),
        );
        check(&tree, "${hash:,}", Err("`${hash:,}` names no file"));
        check(&tree, " ", Err("the key is empty"));
    }

    #[test]
    fn the_key_follows_the_content() {
        let tree = workspace();
        let first = resolve_key("k-${hash:Cargo.lock}", &tree.join("ws")).expect("key");
        tree.file("ws/Cargo.lock", "lock v2");
        let second = resolve_key("k-${hash:Cargo.lock}", &tree.join("ws")).expect("key");
        assert_ne!(first, second);
        assert_eq!(second, format!("k-{}", sha("lock v2")));
        assert!(has_hashes("k-${hash:Cargo.lock}"));
        assert!(!has_hashes("k-1"));
    }
}
