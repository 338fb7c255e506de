//! The source of a run: which files of a directory a job's workspace starts from.
//!
//! [`Source::from_dir`] lists the working tree as a user means it. In a git work tree that
//! is the tracked files plus the untracked files git does not ignore
//! (`git ls-files --cached --others --exclude-standard`): uncommitted edits are included
//! because files are read from the work tree, tracked files deleted from the work tree
//! are left out, and `target/` or anything else ignored never is. Initialised submodules
//! are listed recursively the same way; uninitialised ones appear as empty directories.
//! Outside git, every file is listed. `.gantry/` at the root (gantry's own runs) is never
//! part of a source. Symbolic links are kept as links and never followed, so a link to a
//! directory outside the tree cannot pull that directory in.
//!
//! A [`Source`] is a listing, not a copy: the bytes are read when a workspace is
//! materialised. The engine therefore freezes the listing once per run
//! ([`Source::snapshot_into`]) so that every job of a run sees the same bytes even if the
//! user keeps editing.
//!
//! Every `git` process is spawned by [`git_output`], the one place that decides git's
//! environment.

use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::PermissionsExt;
use std::path::{Component, Path, PathBuf};
use std::process::{Command, Output, Stdio};

use crate::workspace::{self, CopyStats, WorkspaceError};

/// The directory gantry keeps its runs in, never part of a source.
pub const GANTRY_DIR: &str = ".gantry";

/// A listing of the files a job's workspace starts from.
#[derive(Debug, Clone)]
pub struct Source {
    root: PathBuf,
    entries: Vec<Entry>,
    kind: SourceKind,
    info: SourceInfo,
}

/// How a [`Source`] was listed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SourceKind {
    /// From a git work tree (tracked + untracked-not-ignored files).
    Git,
    /// By walking a plain directory.
    Dir,
}

/// One path of a source, relative to its root.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    /// Relative path (only normal components).
    pub path: PathBuf,
    /// What is there.
    pub kind: EntryKind,
}

/// What an [`Entry`] is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EntryKind {
    /// A regular file with its permission bits.
    File {
        /// `st_mode & 0o7777`.
        mode: u32,
    },
    /// A symbolic link, kept as a link.
    Symlink {
        /// The link's target, verbatim.
        target: PathBuf,
    },
    /// A directory (listed only when it would otherwise be lost, e.g. empty).
    Dir,
}

/// What the repository says about the source, for built-in variables.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SourceInfo {
    /// The checked-out branch; `None` outside git or on a detached HEAD.
    pub branch: Option<String>,
    /// The HEAD commit id; `None` outside git or before the first commit.
    pub commit: Option<String>,
}

/// Why a source could not be listed.
#[derive(Debug, thiserror::Error)]
pub enum SourceError {
    /// The path is not a directory.
    #[error("source {0} is not a directory")]
    NotADirectory(PathBuf),
    /// Reading the file system failed.
    #[error("cannot read {path}")]
    Io {
        /// Where.
        path: PathBuf,
        /// Cause.
        #[source]
        source: std::io::Error,
    },
    /// git failed in a work tree it said was one.
    #[error("git {args} failed in {dir}: {message}")]
    Git {
        /// The arguments, space-separated.
        args: String,
        /// Where.
        dir: PathBuf,
        /// git's stderr.
        message: String,
    },
    /// Copying the source into a snapshot failed.
    #[error("cannot snapshot the source")]
    Snapshot(#[source] WorkspaceError),
}

fn io_err(path: &Path) -> impl FnOnce(std::io::Error) -> SourceError + '_ {
    move |source| SourceError::Io {
        path: path.to_path_buf(),
        source,
    }
}

impl Source {
    /// Lists the source of the directory `path` (see the module docs for the rules).
    pub fn from_dir(path: impl AsRef<Path>) -> Result<Source, SourceError> {
        Source::list(path.as_ref(), true)
    }

    /// Lists every file under `path` as a plain directory, never asking git. For a
    /// directory made for one job (an executor's checkout of one commit): it may sit
    /// inside some other repository, whose ignore rules must not apply to it.
    pub fn from_plain_dir(path: impl AsRef<Path>) -> Result<Source, SourceError> {
        Source::list(path.as_ref(), false)
    }

    fn list(root: &Path, use_git: bool) -> Result<Source, SourceError> {
        let meta = std::fs::metadata(root).map_err(io_err(root))?;
        if !meta.is_dir() {
            return Err(SourceError::NotADirectory(root.to_path_buf()));
        }
        let (kind, mut entries) = if use_git && is_git_work_tree(root) {
            (SourceKind::Git, list_git(root)?)
        } else {
            let mut entries = Vec::new();
            walk(root, Path::new(""), &mut entries)?;
            (SourceKind::Dir, entries)
        };
        entries.retain(|e| !is_gantry_dir(&e.path));
        entries.sort_by(|a, b| a.path.cmp(&b.path));
        entries.dedup_by(|a, b| a.path == b.path);
        let info = match kind {
            SourceKind::Git => SourceInfo::from_dir(root),
            SourceKind::Dir => SourceInfo::default(),
        };
        Ok(Source {
            root: root.to_path_buf(),
            entries,
            kind,
            info,
        })
    }

    /// A source made of explicit entries under `root` (for tests and for callers that
    /// already know the file list, e.g. a server checkout).
    pub fn from_entries(root: impl Into<PathBuf>, entries: Vec<Entry>) -> Source {
        Source {
            root: root.into(),
            entries,
            kind: SourceKind::Dir,
            info: SourceInfo::default(),
        }
    }

    /// Copies the listed files into `dest` (which must not exist or be empty) and returns
    /// a source rooted there: a frozen snapshot that later edits of the original do not
    /// change.
    pub fn snapshot_into(&self, dest: &Path) -> Result<(Source, CopyStats), SourceError> {
        let stats = workspace::materialize(self, dest).map_err(SourceError::Snapshot)?;
        let frozen = Source {
            root: dest.to_path_buf(),
            entries: self.entries.clone(),
            kind: self.kind,
            info: self.info.clone(),
        };
        Ok((frozen, stats))
    }

    /// The directory the entries are relative to.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// The entries, sorted by path.
    pub fn entries(&self) -> &[Entry] {
        &self.entries
    }

    /// How the listing was made.
    pub fn kind(&self) -> SourceKind {
        self.kind
    }

    /// Branch and commit, when the source is a git work tree.
    pub fn info(&self) -> &SourceInfo {
        &self.info
    }
}

impl SourceInfo {
    /// Reads the branch (`None` on a detached HEAD) and the HEAD commit (`None` before the
    /// first commit) of the repository containing `dir`; both `None` outside git.
    pub fn from_dir(dir: &Path) -> SourceInfo {
        let text = |args: &[&str]| {
            git_output(dir, args)
                .ok()
                .filter(|o| o.status.success())
                .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
                .filter(|s| !s.is_empty())
        };
        SourceInfo {
            branch: text(&["symbolic-ref", "--short", "-q", "HEAD"]),
            commit: text(&["rev-parse", "-q", "--verify", "HEAD^{commit}"]),
        }
    }
}

/// Runs `git ARGS` in `dir` and returns its output. The one place gantry spawns git:
/// variables that would point git at another repository (`GIT_DIR`, …, set when gantry
/// runs inside a git hook) are removed so that `dir` alone decides.
pub fn git_output(dir: &Path, args: &[&str]) -> std::io::Result<Output> {
    Command::new("git")
        .args(args)
        .current_dir(dir)
        .env_remove("GIT_DIR")
        .env_remove("GIT_WORK_TREE")
        .env_remove("GIT_INDEX_FILE")
        .env_remove("GIT_PREFIX")
        .env("GIT_OPTIONAL_LOCKS", "0")
        .stdin(Stdio::null())
        .output()
}

fn is_git_work_tree(dir: &Path) -> bool {
    // No git installed, or not a repository: both mean "walk the directory".
    git_output(dir, &["rev-parse", "--is-inside-work-tree"])
        .is_ok_and(|o| o.status.success() && o.stdout.trim_ascii() == b"true")
}

fn is_gantry_dir(path: &Path) -> bool {
    path.components().next() == Some(Component::Normal(OsStr::new(GANTRY_DIR)))
}

fn list_git(root: &Path) -> Result<Vec<Entry>, SourceError> {
    let args = [
        "ls-files",
        "-z",
        "--cached",
        "--others",
        "--exclude-standard",
    ];
    let out = git_output(root, &args).map_err(io_err(root))?;
    if !out.status.success() {
        return Err(SourceError::Git {
            args: args.join(" "),
            dir: root.to_path_buf(),
            message: String::from_utf8_lossy(&out.stderr).trim().to_owned(),
        });
    }
    let mut entries = Vec::new();
    for raw in out.stdout.split(|b| *b == 0).filter(|s| !s.is_empty()) {
        let rel = PathBuf::from(OsStr::from_bytes(raw));
        if !is_plain_relative(&rel) {
            continue;
        }
        let full = root.join(&rel);
        let meta = match std::fs::symlink_metadata(&full) {
            Ok(m) => m,
            // Tracked but deleted in the work tree: the user deleted it, so it is gone.
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
            Err(e) => return Err(io_err(&full)(e)),
        };
        if meta.is_dir() {
            // A gitlink (submodule). Initialised: list it as its own work tree.
            // Uninitialised: an empty directory, as git itself leaves it.
            if full.join(".git").exists() && is_git_work_tree(&full) {
                for e in list_git(&full)? {
                    entries.push(Entry {
                        path: rel.join(e.path),
                        kind: e.kind,
                    });
                }
            } else {
                entries.push(Entry {
                    path: rel,
                    kind: EntryKind::Dir,
                });
            }
        } else {
            entries.push(entry_for(rel, &full, &meta)?);
        }
    }
    Ok(entries)
}

fn entry_for(rel: PathBuf, full: &Path, meta: &std::fs::Metadata) -> Result<Entry, SourceError> {
    let kind = if meta.file_type().is_symlink() {
        EntryKind::Symlink {
            target: std::fs::read_link(full).map_err(io_err(full))?,
        }
    } else {
        EntryKind::File {
            mode: meta.permissions().mode() & 0o7777,
        }
    };
    Ok(Entry { path: rel, kind })
}

fn walk(root: &Path, rel: &Path, out: &mut Vec<Entry>) -> Result<(), SourceError> {
    let dir = root.join(rel);
    let mut any = false;
    for item in std::fs::read_dir(&dir).map_err(io_err(&dir))? {
        let item = item.map_err(io_err(&dir))?;
        any = true;
        let child = rel.join(item.file_name());
        if rel.as_os_str().is_empty() && item.file_name() == GANTRY_DIR {
            continue;
        }
        let full = root.join(&child);
        let meta = std::fs::symlink_metadata(&full).map_err(io_err(&full))?;
        if meta.is_dir() {
            walk(root, &child, out)?;
        } else if meta.is_file() || meta.file_type().is_symlink() {
            out.push(entry_for(child, &full, &meta)?);
        }
        // Sockets, FIFOs and devices are not source files; copying a FIFO would block.
    }
    if !any && !rel.as_os_str().is_empty() {
        out.push(Entry {
            path: rel.to_path_buf(),
            kind: EntryKind::Dir,
        });
    }
    Ok(())
}

/// True when `path` is non-empty and made only of normal components (no `..`, no root,
/// no `.`): it cannot leave the directory it is joined to.
pub fn is_plain_relative(path: &Path) -> bool {
    !path.as_os_str().is_empty() && path.components().all(|c| matches!(c, Component::Normal(_)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use gantry_test_support::{TempTree, git, git_repo};

    fn listing(source: &Source) -> Vec<String> {
        source
            .entries()
            .iter()
            .map(|e| {
                let p = e.path.display();
                match &e.kind {
                    EntryKind::File { mode } if mode & 0o111 != 0 => format!("{p} (exec)"),
                    EntryKind::File { .. } => p.to_string(),
                    EntryKind::Symlink { target } => format!("{p} -> {}", target.display()),
                    EntryKind::Dir => format!("{p}/"),
                }
            })
            .collect()
    }

    #[test]
    fn git_tree_lists_tracked_and_untracked_not_ignored() {
        let repo = git_repo();
        let source = Source::from_dir(repo.path()).expect("list");
        assert_eq!(source.kind(), SourceKind::Git);
        assert_eq!(
            listing(&source),
            [
                ".gitignore",
                "README.md",
                "link -> README.md",
                "new.txt",
                "src/main.sh (exec)"
            ]
        );
        assert_eq!(source.info().branch.as_deref(), Some("main"));
        assert_eq!(source.info().commit.as_ref().map(String::len), Some(40));
    }

    #[test]
    fn git_snapshot_has_uncommitted_edits() {
        let repo = git_repo();
        let source = Source::from_dir(repo.path()).expect("list");
        let dest = TempTree::new();
        let (frozen, _) = source.snapshot_into(&dest.join("snap")).expect("snapshot");
        assert_eq!(dest.read("snap/README.md"), "edited\n");
        // Later edits of the original do not reach the frozen copy.
        repo.file("README.md", "edited again\n");
        assert_eq!(
            std::fs::read_to_string(frozen.root().join("README.md")).expect("read"),
            "edited\n"
        );
        let link = std::fs::read_link(dest.join("snap/link")).expect("a symlink");
        assert_eq!(link, Path::new("README.md"));
    }

    #[test]
    fn detached_head_has_no_branch() {
        let repo = git_repo();
        git(repo.path(), &["checkout", "-q", "--detach"]);
        let info = SourceInfo::from_dir(repo.path());
        assert_eq!(info.branch, None);
        assert!(info.commit.is_some());
    }

    #[test]
    fn unborn_branch_has_no_commit() {
        let tree = TempTree::new();
        git(tree.path(), &["init", "-q", "-b", "trunk"]);
        tree.file("a", "a");
        let source = Source::from_dir(tree.path()).expect("list");
        assert_eq!(listing(&source), ["a"]);
        assert_eq!(
            source.info(),
            &SourceInfo {
                branch: Some("trunk".into()),
                commit: None
            }
        );
    }

    #[test]
    fn subdirectory_of_a_repo_lists_only_itself() {
        let repo = git_repo();
        let source = Source::from_dir(repo.join("src")).expect("list");
        assert_eq!(listing(&source), ["main.sh (exec)"]);
    }

    #[test]
    fn submodules_do_not_crash() {
        let inner = TempTree::new();
        git(inner.path(), &["init", "-q", "-b", "main"]);
        inner.file("lib.txt", "lib");
        git(inner.path(), &["add", "-A"]);
        git(inner.path(), &["commit", "-q", "-m", "lib"]);
        let outer = TempTree::new();
        git(outer.path(), &["init", "-q", "-b", "main"]);
        outer.file("top.txt", "top");
        let url = inner.path().to_string_lossy().into_owned();
        git(
            outer.path(),
            &[
                "-c",
                "protocol.file.allow=always",
                "submodule",
                "add",
                "-q",
                &url,
                "sub",
            ],
        );
        // An untracked repository inside the tree (not a submodule) is listed the same way.
        let nested = outer.join("nested");
        std::fs::create_dir(&nested).expect("mkdir");
        git(&nested, &["init", "-q", "-b", "main"]);
        std::fs::write(nested.join("n.txt"), "n").expect("write");
        let source = Source::from_dir(outer.path()).expect("list");
        assert_eq!(
            listing(&source),
            [".gitmodules", "nested/n.txt", "sub/lib.txt", "top.txt"]
        );
    }

    #[test]
    fn plain_directory_lists_everything_but_gantry() {
        let tree = TempTree::new();
        tree.file("a.txt", "a")
            .exec("bin/run", "#!/bin/sh")
            .file("target/x", "x")
            .dir("empty")
            .file(".gantry/runs/1/log", "l")
            .file("nested/.gantry/kept", "k")
            .symlink("outside", "/etc")
            .symlink("dangling", "nowhere");
        let source = Source::from_dir(tree.path()).expect("list");
        assert_eq!(source.kind(), SourceKind::Dir);
        assert_eq!(
            listing(&source),
            [
                "a.txt",
                "bin/run (exec)",
                "dangling -> nowhere",
                "empty/",
                "nested/.gantry/kept",
                "outside -> /etc",
                "target/x"
            ]
        );
        assert_eq!(source.info(), &SourceInfo::default());
    }

    #[test]
    fn a_plain_listing_inside_a_repository_ignores_its_rules() {
        let repo = git_repo();
        repo.file("target/checkout/a.txt", "a")
            .file("target/checkout/b.log", "b");
        let source = Source::from_plain_dir(repo.join("target/checkout")).expect("list");
        assert_eq!(source.kind(), SourceKind::Dir);
        assert_eq!(listing(&source), ["a.txt", "b.log"]);
        assert_eq!(source.info(), &SourceInfo::default());
    }

    #[test]
    fn not_a_directory() {
        let tree = TempTree::new();
        tree.file("f", "");
        let err = Source::from_dir(tree.join("f")).expect_err("a file");
        assert!(matches!(err, SourceError::NotADirectory(_)), "{err}");
        let err = Source::from_dir(tree.join("missing")).expect_err("missing");
        assert!(err.to_string().starts_with("cannot read"), "{err}");
    }

    #[test]
    fn plain_relative_paths() {
        let check =
            |p: &str, expect: bool| assert_eq!(is_plain_relative(Path::new(p)), expect, "{p}");
        check("a/b", true);
        check("a", true);
        check("", false);
        check("../a", false);
        check("a/../b", false);
        check("/etc/passwd", false);
        check("./a", false);
    }
}
