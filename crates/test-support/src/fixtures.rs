//! Fixtures on disk: temporary source trees, real git repositories, generated big trees.
//!
//! Helpers panic on IO errors: they run in tests, where a broken fixture should stop the
//! test with the reason rather than be handled.

use std::path::{Path, PathBuf};
use std::process::Command;

/// A temporary directory, removed on drop, with builder methods for files.
pub struct TempTree {
    dir: tempfile::TempDir,
}

impl Default for TempTree {
    fn default() -> Self {
        TempTree::new()
    }
}

impl TempTree {
    /// A new empty directory.
    pub fn new() -> TempTree {
        TempTree {
            dir: tempfile::Builder::new()
                .prefix("gantry-test-")
                .tempdir()
                .expect("create a temporary directory"),
        }
    }

    /// A new empty directory inside `dir` (for benchmarks that must control the file
    /// system they measure).
    pub fn new_in(dir: &Path) -> TempTree {
        std::fs::create_dir_all(dir).expect("create the parent of a temporary directory");
        TempTree {
            dir: tempfile::Builder::new()
                .prefix("gantry-test-")
                .tempdir_in(dir)
                .expect("create a temporary directory"),
        }
    }

    /// Its path.
    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    /// `rel` joined to the root.
    pub fn join(&self, rel: &str) -> PathBuf {
        self.dir.path().join(rel)
    }

    /// Writes a file (creating parent directories), mode 0644.
    pub fn file(&self, rel: &str, content: &str) -> &TempTree {
        self.write(rel, content.as_bytes(), 0o644)
    }

    /// Writes an executable file, mode 0755.
    pub fn exec(&self, rel: &str, content: &str) -> &TempTree {
        self.write(rel, content.as_bytes(), 0o755)
    }

    /// Writes bytes with a mode.
    pub fn write(&self, rel: &str, content: &[u8], mode: u32) -> &TempTree {
        use std::os::unix::fs::PermissionsExt;
        let path = self.join(rel);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent).expect("create parent directories");
        }
        std::fs::write(&path, content).expect("write a fixture file");
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode))
            .expect("set a fixture file's mode");
        self
    }

    /// Creates a symlink at `rel` pointing at `target` (taken literally).
    pub fn symlink(&self, rel: &str, target: &str) -> &TempTree {
        let path = self.join(rel);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent).expect("create parent directories");
        }
        std::os::unix::fs::symlink(target, &path).expect("create a symlink");
        self
    }

    /// Creates a directory (and its parents).
    pub fn dir(&self, rel: &str) -> &TempTree {
        std::fs::create_dir_all(self.join(rel)).expect("create a directory");
        self
    }

    /// Removes a file.
    pub fn remove(&self, rel: &str) -> &TempTree {
        std::fs::remove_file(self.join(rel)).expect("remove a fixture file");
        self
    }

    /// Reads a file as text.
    pub fn read(&self, rel: &str) -> String {
        std::fs::read_to_string(self.join(rel)).expect("read a fixture file")
    }
}

/// Runs `git` in `dir` with a fixed identity and no user or system configuration, and
/// returns its stdout. Panics when git fails.
pub fn git(dir: &Path, args: &[&str]) -> String {
    let out = Command::new("git")
        .args(args)
        .current_dir(dir)
        .env("GIT_CONFIG_GLOBAL", "/dev/null")
        .env("GIT_CONFIG_NOSYSTEM", "1")
        .env("GIT_AUTHOR_NAME", "gantry test")
        .env("GIT_AUTHOR_EMAIL", "test@gantry.invalid")
        .env("GIT_COMMITTER_NAME", "gantry test")
        .env("GIT_COMMITTER_EMAIL", "test@gantry.invalid")
        .env_remove("GIT_DIR")
        .env_remove("GIT_WORK_TREE")
        .env_remove("GIT_INDEX_FILE")
        .output()
        .expect("run git (is it installed?)");
    assert!(
        out.status.success(),
        "git {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// A real git repository on branch `main` with one commit, laid out to exercise every
/// rule of a source snapshot:
///
/// | path | state |
/// |---|---|
/// | `README.md` | tracked, then edited (uncommitted) to `edited` |
/// | `src/main.sh` | tracked, executable |
/// | `link` | tracked symlink to `README.md` |
/// | `gone.txt` | tracked, then deleted from the work tree |
/// | `new.txt` | untracked, not ignored |
/// | `debug.log` | ignored by `*.log` |
/// | `target/out.bin` | ignored by `target/` |
/// | `.gantry/runs/1/log` | gantry's own directory (never in a snapshot) |
pub fn git_repo() -> TempTree {
    let tree = TempTree::new();
    git(tree.path(), &["init", "-q", "-b", "main"]);
    tree.file(".gitignore", "*.log\ntarget/\n")
        .file("README.md", "original\n")
        .exec("src/main.sh", "#!/bin/sh\necho hi\n")
        .symlink("link", "README.md")
        .file("gone.txt", "soon gone\n");
    git(tree.path(), &["add", "-A"]);
    git(tree.path(), &["commit", "-q", "-m", "initial"]);
    tree.file("README.md", "edited\n")
        .remove("gone.txt")
        .file("new.txt", "untracked\n")
        .file("debug.log", "ignored\n")
        .file("target/out.bin", "ignored\n")
        .file(".gantry/runs/1/log", "gantry's own\n");
    tree
}

/// Writes `files` small files under `root`, spread over nested directories (10 files per
/// directory, 10 directories per level), and returns their relative paths. Every 50th
/// file is executable.
pub fn generate_tree(root: &Path, files: usize) -> Vec<String> {
    use std::os::unix::fs::PermissionsExt;
    let mut paths = Vec::with_capacity(files);
    for i in 0..files {
        let dir = i / 10;
        let rel = format!("d{}/d{}/d{}/f{i}.txt", dir / 100, (dir / 10) % 10, dir % 10);
        let path = root.join(&rel);
        if i % 10 == 0
            && let Some(parent) = path.parent()
        {
            std::fs::create_dir_all(parent).expect("create generated directories");
        }
        std::fs::write(&path, format!("file {i}\n{}\n", "x".repeat(i % 200)))
            .expect("write a generated file");
        if i % 50 == 0 {
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755))
                .expect("set mode");
        }
        paths.push(rel);
    }
    paths
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn git_repo_has_the_documented_states() {
        let repo = git_repo();
        let status = git(repo.path(), &["status", "--porcelain"]);
        let mut lines: Vec<&str> = status.lines().collect();
        lines.sort_unstable();
        assert_eq!(
            lines,
            [" D gone.txt", " M README.md", "?? .gantry/", "?? new.txt"]
        );
    }

    #[test]
    fn generated_tree_has_the_files() {
        let tree = TempTree::new();
        let paths = generate_tree(tree.path(), 25);
        assert_eq!(paths.len(), 25);
        assert_eq!(
            tree.read("d0/d0/d2/f24.txt").lines().next(),
            Some("file 24")
        );
    }
}
