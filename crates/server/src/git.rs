//! Talking to git repositories: listing a remote's refs and keeping a bare mirror of each
//! repository from which pipeline files and diffs are read at any commit.
//!
//! Everything goes through the `git` command line, spawned by one function ([`git`]) that
//! bounds every call with a timeout, never lets git ask for a password on a terminal, and
//! reports what git said when it fails. The server is a subreaper, so git's helpers
//! (`ssh`, `git-remote-https`) are reaped by it when git is killed on a timeout; no new
//! session is started for them.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::Arc;
use std::time::Duration;

use tokio::process::Command;
use tokio::sync::Mutex;

/// How long one git command against a remote (`ls-remote`, `fetch`) may take.
pub const REMOTE_TIMEOUT: Duration = Duration::from_secs(120);

/// How long one local git command (reading a mirror) may take.
pub const LOCAL_TIMEOUT: Duration = Duration::from_secs(30);

/// One ref of a repository: a branch (`refs/heads/X`) or a tag (`refs/tags/Y`) and the
/// commit it points at (annotated tags are peeled to their commit).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RemoteRef {
    /// Full ref name, e.g. `refs/heads/develop` or `refs/tags/v1.2.0`.
    pub name: String,
    /// The commit id (hex).
    pub commit: String,
}

impl RemoteRef {
    /// The branch name, when this is a branch.
    pub fn branch(&self) -> Option<&str> {
        self.name.strip_prefix("refs/heads/")
    }

    /// The tag name, when this is a tag.
    pub fn tag(&self) -> Option<&str> {
        self.name.strip_prefix("refs/tags/")
    }
}

/// Why a git operation failed.
#[derive(Debug, thiserror::Error)]
pub enum GitError {
    /// git could not be started at all.
    #[error("failed to run git (is it installed?)")]
    Spawn(#[source] std::io::Error),
    /// git did not finish in time; it was killed.
    #[error("git {args} did not finish within {}s", timeout.as_secs())]
    Timeout {
        /// The arguments, for the message.
        args: String,
        /// The limit that was hit.
        timeout: Duration,
    },
    /// git exited with an error; `message` is what it printed.
    #[error("git {args} failed: {message}")]
    Failed {
        /// The arguments, for the message (URLs with credentials are redacted).
        args: String,
        /// git's stderr, trimmed.
        message: String,
    },
    /// git printed something this module does not understand.
    #[error("unexpected output from git {args}: {line:?}")]
    BadOutput {
        /// The arguments, for the message.
        args: String,
        /// The offending line.
        line: String,
    },
    /// A file in the repository is not UTF-8 text.
    #[error("{path} at {commit} is not UTF-8 text")]
    NotText {
        /// Path in the repository.
        path: String,
        /// The commit it was read at.
        commit: String,
    },
    /// The commit is not in the mirror (not fetched yet, or not a commit id).
    #[error("unknown commit {0:?}")]
    UnknownCommit(String),
    /// The mirror's directory exists, is not empty, and is not a git repository.
    #[error("{path} exists and is not a git mirror; remove it or choose another directory")]
    NotAMirror {
        /// The directory.
        path: PathBuf,
        /// Why it could not be taken over.
        #[source]
        source: std::io::Error,
    },
    /// Preparing the mirror directory failed.
    #[error("failed to prepare the mirror at {path}")]
    Io {
        /// The directory.
        path: PathBuf,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
}

/// Runs `git ARGS` (in `dir`, when given) with a time limit and returns its stdout.
///
/// The one place this crate spawns git. Variables that would point git at another
/// repository are removed, credentials are never prompted for (`GIT_TERMINAL_PROMPT=0`,
/// ssh in batch mode unless the operator configured `GIT_SSH_COMMAND`), and on a timeout
/// the process is killed (`kill_on_drop`).
pub async fn git(
    dir: Option<&Path>,
    args: &[&str],
    timeout: Duration,
) -> Result<Vec<u8>, GitError> {
    let mut cmd = Command::new("git");
    cmd.args(args)
        .env_remove("GIT_DIR")
        .env_remove("GIT_WORK_TREE")
        .env_remove("GIT_INDEX_FILE")
        .env_remove("GIT_PREFIX")
        .env_remove("GIT_OBJECT_DIRECTORY")
        .env_remove("GIT_ALTERNATE_OBJECT_DIRECTORIES")
        .env("GIT_TERMINAL_PROMPT", "0")
        // English messages: they end up in the repository's error and in logs.
        .env("LC_ALL", "C")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    if std::env::var_os("GIT_SSH_COMMAND").is_none() && std::env::var_os("GIT_SSH").is_none() {
        cmd.env("GIT_SSH_COMMAND", "ssh -o BatchMode=yes");
    }
    if let Some(dir) = dir {
        cmd.current_dir(dir);
    }
    let shown = || redact(&args.join(" "));
    let child = cmd.spawn().map_err(GitError::Spawn)?;
    let out = match tokio::time::timeout(timeout, child.wait_with_output()).await {
        Ok(out) => out.map_err(GitError::Spawn)?,
        Err(_) => {
            return Err(GitError::Timeout {
                args: shown(),
                timeout,
            });
        }
    };
    if !out.status.success() {
        let stderr = String::from_utf8_lossy(&out.stderr);
        let mut message = redact(stderr.trim());
        if message.is_empty() {
            message = out.status.to_string();
        }
        return Err(GitError::Failed {
            args: shown(),
            message,
        });
    }
    Ok(out.stdout)
}

/// Hides the password of `scheme://user:password@host` URLs in text shown to people.
fn redact(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(pos) = rest.find("://") {
        let (head, tail) = rest.split_at(pos + 3);
        out.push_str(head);
        let end = tail
            .find(|c: char| c.is_whitespace() || c == '/' || c == '\'' || c == '"')
            .unwrap_or(tail.len());
        let authority = &tail[..end];
        match authority.rfind('@') {
            Some(at) => match authority[..at].find(':') {
                Some(colon) => {
                    out.push_str(&authority[..colon]);
                    out.push_str(":***");
                    out.push_str(&authority[at..]);
                }
                None => out.push_str(authority),
            },
            None => out.push_str(authority),
        }
        rest = &tail[end..];
    }
    out.push_str(rest);
    out
}

/// Lists the branches and tags of the repository at `url` (`git ls-remote`), tags peeled
/// to the commit they name. Sorted by ref name.
pub async fn ls_remote(url: &str) -> Result<Vec<RemoteRef>, GitError> {
    // `--` keeps a URL starting with `-` from being read as an option.
    let args = ["ls-remote", "--heads", "--tags", "--", url];
    let out = git(None, &args, REMOTE_TIMEOUT).await?;
    parse_ref_lines(&String::from_utf8_lossy(&out), '\t', &args)
}

/// Parses `<oid><sep><ref>` lines (ls-remote, for-each-ref). A `<tag>^{}` line carries the
/// commit an annotated tag points at and replaces the tag object's id.
fn parse_ref_lines(text: &str, sep: char, args: &[&str]) -> Result<Vec<RemoteRef>, GitError> {
    let mut refs: Vec<RemoteRef> = Vec::new();
    let mut peeled: Vec<(String, String)> = Vec::new();
    for line in text.lines().filter(|l| !l.is_empty()) {
        let bad = || GitError::BadOutput {
            args: redact(&args.join(" ")),
            line: line.to_string(),
        };
        let (oid, name) = line.split_once(sep).ok_or_else(bad)?;
        if oid.len() < 40 || !oid.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(bad());
        }
        if !(name.starts_with("refs/heads/") || name.starts_with("refs/tags/")) {
            continue;
        }
        match name.strip_suffix("^{}") {
            Some(tag) => peeled.push((tag.to_string(), oid.to_string())),
            None => refs.push(RemoteRef {
                name: name.to_string(),
                commit: oid.to_string(),
            }),
        }
    }
    for (tag, commit) in peeled {
        if let Some(r) = refs.iter_mut().find(|r| r.name == tag) {
            r.commit = commit;
        }
    }
    refs.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(refs)
}

/// A bare mirror of one repository's branches and tags, kept in its own directory.
///
/// Reads (`read_file`, `pipeline_files`, `changed_paths`, refs) work on what the last
/// [`fetch`](Mirror::fetch) brought in. Clones share a lock, so keep one `Mirror` per
/// repository and clone it: two fetches into the same directory at once would fight over
/// git's lock files.
#[derive(Debug, Clone)]
pub struct Mirror {
    dir: PathBuf,
    url: String,
    lock: Arc<Mutex<()>>,
}

impl Mirror {
    /// A mirror of `url` in the directory `dir` (created by the first fetch). The URL is
    /// given to every fetch, so a repository whose URL changed needs only a new `Mirror`.
    pub fn new(dir: impl Into<PathBuf>, url: &str) -> Mirror {
        Mirror {
            dir: dir.into(),
            url: url.to_string(),
            lock: Arc::new(Mutex::new(())),
        }
    }

    /// The mirror's directory (a bare repository once fetched).
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The repository URL.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// Brings the mirror up to date with the remote: all branches and tags, deleted refs
    /// pruned, forced updates accepted. Creates the mirror on first use.
    pub async fn fetch(&self) -> Result<(), GitError> {
        let _guard = self.lock.lock().await;
        self.create().await?;
        git(
            Some(&self.dir),
            &[
                "fetch",
                "--prune",
                "--no-tags",
                "--quiet",
                "--",
                &self.url,
                "+refs/heads/*:refs/heads/*",
                "+refs/tags/*:refs/tags/*",
            ],
            REMOTE_TIMEOUT,
        )
        .await?;
        Ok(())
    }

    /// `git init --bare` into a fresh directory renamed into place, so that a crash
    /// half-way never leaves a directory that looks like a mirror but is not one.
    async fn create(&self) -> Result<(), GitError> {
        if self.dir.join("HEAD").is_file() {
            return Ok(());
        }
        let io = |source| GitError::Io {
            path: self.dir.clone(),
            source,
        };
        let parent = self.dir.parent().unwrap_or(Path::new("."));
        tokio::fs::create_dir_all(parent).await.map_err(io)?;
        let name = self
            .dir
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_else(|| "mirror".into());
        let tmp = parent.join(format!(".{name}.init-{}", std::process::id()));
        if tmp.exists() {
            tokio::fs::remove_dir_all(&tmp).await.map_err(io)?;
        }
        let tmp_str = tmp.to_string_lossy().into_owned();
        git(
            None,
            &["init", "--bare", "--quiet", "--", &tmp_str],
            LOCAL_TIMEOUT,
        )
        .await?;
        // A mirror is only read by gantry: no reflogs, no automatic gc in the foreground.
        for (key, value) in [
            ("core.logAllRefUpdates", "false"),
            ("gc.autoDetach", "true"),
        ] {
            git(Some(&tmp), &["config", key, value], LOCAL_TIMEOUT).await?;
        }
        if self.dir.exists() {
            // An empty directory (made by someone else) is taken over; anything with
            // content is not ours to delete.
            if let Err(source) = tokio::fs::remove_dir(&self.dir).await {
                let _ = tokio::fs::remove_dir_all(&tmp).await;
                return Err(GitError::NotAMirror {
                    path: self.dir.clone(),
                    source,
                });
            }
        }
        tokio::fs::rename(&tmp, &self.dir).await.map_err(io)?;
        Ok(())
    }

    async fn local(&self, args: &[&str]) -> Result<Vec<u8>, GitError> {
        git(Some(&self.dir), args, LOCAL_TIMEOUT).await
    }

    /// Fails with [`GitError::UnknownCommit`] unless `commit` names a commit in the mirror.
    async fn check_commit(&self, commit: &str) -> Result<(), GitError> {
        if commit.starts_with('-') || commit.is_empty() {
            return Err(GitError::UnknownCommit(commit.to_string()));
        }
        let spec = format!("{commit}^{{commit}}");
        match self
            .local(&["rev-parse", "--verify", "--quiet", &spec])
            .await
        {
            Ok(_) => Ok(()),
            Err(GitError::Failed { .. }) => Err(GitError::UnknownCommit(commit.to_string())),
            Err(e) => Err(e),
        }
    }

    /// The entries of `commit` under the tree path `path` (`""` is the root), as
    /// `(mode, type, oid, name)`; `path` itself when it names a file.
    async fn ls_tree(&self, commit: &str, path: &str) -> Result<Vec<TreeEntry>, GitError> {
        // An empty pathspec is an error to git: the root is listed without one.
        let mut args = vec!["ls-tree", "-z", "--full-tree", commit];
        if !path.is_empty() {
            args.extend(["--", path]);
        }
        let out = self.local(&args).await?;
        let mut entries = Vec::new();
        for rec in out.split(|b| *b == 0).filter(|r| !r.is_empty()) {
            let rec = String::from_utf8_lossy(rec);
            let bad = || GitError::BadOutput {
                args: args.join(" "),
                line: rec.to_string(),
            };
            let (meta, name) = rec.split_once('\t').ok_or_else(bad)?;
            let mut meta = meta.split(' ');
            let (Some(_mode), Some(kind), Some(oid)) = (meta.next(), meta.next(), meta.next())
            else {
                return Err(bad());
            };
            entries.push(TreeEntry {
                kind: kind.to_string(),
                oid: oid.to_string(),
                path: name.to_string(),
            });
        }
        Ok(entries)
    }

    async fn blob_text(&self, oid: &str, path: &str, commit: &str) -> Result<String, GitError> {
        let bytes = self.local(&["cat-file", "blob", oid]).await?;
        String::from_utf8(bytes).map_err(|_| GitError::NotText {
            path: path.to_string(),
            commit: commit.to_string(),
        })
    }

    /// The text of `path` at `commit`; `None` when there is no file at that path.
    pub async fn read_file(&self, commit: &str, path: &str) -> Result<Option<String>, GitError> {
        self.check_commit(commit).await?;
        let path = path.trim_start_matches('/');
        if path.is_empty() {
            return Ok(None);
        }
        let entries = self.ls_tree(commit, path).await?;
        match entries.iter().find(|e| e.path == path && e.kind == "blob") {
            Some(e) => Ok(Some(self.blob_text(&e.oid, path, commit).await?)),
            None => Ok(None),
        }
    }

    /// The pipeline files at `commit`, as `(path, text)`: the first of
    /// [`gantry_pipeline::PIPELINE_FILE_NAMES`] found at the root, then every
    /// `.gantry/*.yml`, sorted by path. Empty when the commit has none.
    pub async fn pipeline_files(&self, commit: &str) -> Result<Vec<(String, String)>, GitError> {
        self.check_commit(commit).await?;
        let mut files = Vec::new();
        let root = self.ls_tree(commit, "").await?;
        let root_file = gantry_pipeline::PIPELINE_FILE_NAMES
            .iter()
            .find_map(|name| root.iter().find(|e| e.path == *name && e.kind == "blob"));
        if let Some(e) = root_file {
            files.push((
                e.path.clone(),
                self.blob_text(&e.oid, &e.path, commit).await?,
            ));
        }
        if root.iter().any(|e| e.path == ".gantry" && e.kind == "tree") {
            let mut dir = self.ls_tree(commit, ".gantry/").await?;
            dir.sort_by(|a, b| a.path.cmp(&b.path));
            for e in dir {
                let is_yml = e.path.strip_prefix(".gantry/").is_some_and(|name| {
                    name.ends_with(".yml") && !name.contains('/') && name.len() > 4
                });
                if is_yml && e.kind == "blob" {
                    let text = self.blob_text(&e.oid, &e.path, commit).await?;
                    files.push((e.path, text));
                }
            }
        }
        Ok(files)
    }

    /// Paths that differ between the commits `from` and `to` (added, modified, deleted;
    /// a rename counts as a deletion and an addition), sorted.
    pub async fn changed_paths(&self, from: &str, to: &str) -> Result<Vec<String>, GitError> {
        self.check_commit(from).await?;
        self.check_commit(to).await?;
        let out = self
            .local(&["diff", "--name-only", "-z", "--no-renames", from, to, "--"])
            .await?;
        let mut paths: Vec<String> = out
            .split(|b| *b == 0)
            .filter(|p| !p.is_empty())
            .map(|p| String::from_utf8_lossy(p).into_owned())
            .collect();
        paths.sort();
        Ok(paths)
    }

    /// The mirror's branches (full names, `refs/heads/…`), sorted by name.
    pub async fn branches(&self) -> Result<Vec<RemoteRef>, GitError> {
        self.refs("refs/heads/").await
    }

    /// The mirror's tags (full names, `refs/tags/…`), peeled to commits, sorted by name.
    pub async fn tags(&self) -> Result<Vec<RemoteRef>, GitError> {
        self.refs("refs/tags/").await
    }

    async fn refs(&self, prefix: &str) -> Result<Vec<RemoteRef>, GitError> {
        if !self.dir.join("HEAD").is_file() {
            return Ok(Vec::new());
        }
        // `%(*objectname)` is the peeled commit of an annotated tag, empty otherwise.
        let args = [
            "for-each-ref",
            "--format=%(objectname) %(refname)%0a%(*objectname) %(refname)^{}",
            prefix,
        ];
        let out = self.local(&args).await?;
        let text = String::from_utf8_lossy(&out);
        let kept: String = text
            .lines()
            .filter(|l| !l.starts_with(' '))
            .flat_map(|l| [l, "\n"])
            .collect();
        parse_ref_lines(&kept, ' ', &args)
    }
}

/// One line of `git ls-tree`.
struct TreeEntry {
    kind: String,
    oid: String,
    path: String,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redacts_passwords() {
        let check = |input: &str, expect: &str| assert_eq!(redact(input), expect, "{input}");
        check(
            "fetch https://bob:s3cret@example.com/r.git x",
            "fetch https://bob:***@example.com/r.git x",
        );
        check("https://token@example.com/r", "https://token@example.com/r");
        check("ls-remote /srv/repo.git", "ls-remote /srv/repo.git");
        check(
            "'https://a:b@h/x' and ssh://git@h:22/y",
            "'https://a:***@h/x' and ssh://git@h:22/y",
        );
    }

    #[test]
    fn parses_ls_remote_output() {
        let a = "a".repeat(40);
        let b = "b".repeat(40);
        let c = "c".repeat(40);
        let text = format!(
            "{a}\tHEAD\n{a}\trefs/heads/main\n{b}\trefs/tags/v1\n{c}\trefs/tags/v1^{{}}\n{a}\trefs/pull/1/head\n"
        );
        let refs = parse_ref_lines(&text, '\t', &["ls-remote"]).expect("parses");
        assert_eq!(
            refs,
            vec![
                RemoteRef {
                    name: "refs/heads/main".into(),
                    commit: a.clone()
                },
                RemoteRef {
                    name: "refs/tags/v1".into(),
                    commit: c
                },
            ]
        );
        let err = parse_ref_lines("garbage\n", '\t', &["ls-remote"]).expect_err("rejects");
        assert!(err.to_string().contains("unexpected output"), "{err}");
    }
}
