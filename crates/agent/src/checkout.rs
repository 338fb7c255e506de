//! Source checkouts for leased jobs, from a cache of bare mirrors.
//!
//! Each repository URL gets one bare repository under `work_dir/git/` that is fetched
//! into (all branches and tags, then the commit itself if no ref reaches it) only when
//! the leased commit is not there yet, so a DAG of ten jobs on one commit fetches once.
//! Fetches of one URL are serialized within the process, since git refuses concurrent
//! ref updates. A job's files are then written from the mirror through a private index
//! (`read-tree` + `checkout-index`): the mirror's own state is never changed by a
//! checkout, so checkouts of one repository run in parallel and a crashed agent leaves
//! nothing behind in the mirror (`git worktree` would leave registrations to prune).
//!
//! Every git process is spawned by [`git`], the one place that decides git's environment.

use std::collections::HashMap;
use std::ffi::OsStr;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::{Arc, Mutex};

use gantry_protocol::SourceRef;
use sha2::{Digest, Sha256};

/// Why a job's source could not be checked out.
#[derive(Debug, thiserror::Error)]
pub enum CheckoutError {
    /// The lease names something that must not reach git's command line.
    #[error("refusing {what} \"{value}\": {why}")]
    Refused {
        /// `commit` or `repository URL`.
        what: &'static str,
        /// The value.
        value: String,
        /// Why.
        why: &'static str,
    },
    /// git could not be started.
    #[error("cannot run git (is it installed?)")]
    Spawn(#[source] std::io::Error),
    /// A git command failed.
    #[error("git {command} failed: {message}")]
    Git {
        /// The git command (`fetch`, `read-tree`, …).
        command: String,
        /// git's stderr, its lines joined by `; `.
        message: String,
    },
    /// The repository was fetched but the commit is not in it.
    #[error("commit {commit} not found in {url}{}", detail(message))]
    CommitNotFound {
        /// The commit.
        commit: String,
        /// The repository.
        url: String,
        /// What git said when asked for the commit itself.
        message: String,
    },
    /// A file-system operation failed.
    #[error("cannot {context} {}", path.display())]
    Io {
        /// What was being done.
        context: &'static str,
        /// Where.
        path: PathBuf,
        /// Cause.
        #[source]
        source: std::io::Error,
    },
}

fn detail(message: &str) -> String {
    if message.is_empty() {
        String::new()
    } else {
        format!(": {message}")
    }
}

/// The mirror cache under `work_dir/git`.
pub(crate) struct Checkouts {
    root: PathBuf,
    /// One lock per URL, held while its mirror is created or fetched into.
    locks: Mutex<HashMap<String, Arc<tokio::sync::Mutex<()>>>>,
}

impl Checkouts {
    pub(crate) fn new(root: PathBuf) -> Checkouts {
        Checkouts {
            root,
            locks: Mutex::new(HashMap::new()),
        }
    }

    /// Writes the files of `source.commit` into `dest` (created; must not exist or be
    /// empty). `scratch` is a directory of the job's for the private index.
    pub(crate) async fn checkout(
        &self,
        source: &SourceRef,
        dest: &Path,
        scratch: &Path,
    ) -> Result<(), CheckoutError> {
        check_commit(&source.commit)?;
        if source.url.is_empty() || source.url.starts_with('-') {
            return Err(CheckoutError::Refused {
                what: "repository URL",
                value: source.url.clone(),
                why: "empty or starting with '-'",
            });
        }
        let mirror = self.mirror_with(source).await?;
        for dir in [dest, scratch] {
            std::fs::create_dir_all(dir).map_err(|e| io("create", dir, e))?;
        }
        let index = scratch.join("checkout.index");
        let env = [
            ("GIT_DIR", mirror.as_path()),
            ("GIT_INDEX_FILE", index.as_path()),
            ("GIT_WORK_TREE", dest),
        ];
        git(dest, &["read-tree", &source.commit], &env).await?;
        git(dest, &["checkout-index", "--all", "--force"], &env).await?;
        let _ = std::fs::remove_file(&index);
        Ok(())
    }

    /// The mirror of `source.url`, holding `source.commit` (fetched if missing).
    async fn mirror_with(&self, source: &SourceRef) -> Result<PathBuf, CheckoutError> {
        let lock = {
            let mut locks = self.locks.lock().unwrap_or_else(|e| e.into_inner());
            Arc::clone(locks.entry(source.url.clone()).or_default())
        };
        let _held = lock.lock().await;
        let mirror = self.root.join(mirror_name(&source.url));
        if !mirror.join("HEAD").exists() {
            self.create_mirror(&mirror).await?;
        }
        let env = [("GIT_DIR", mirror.as_path())];
        if has_commit(&mirror, &source.commit).await {
            return Ok(mirror);
        }
        git(
            &mirror,
            &[
                "fetch",
                "--quiet",
                "--prune",
                "--update-head-ok",
                "--",
                &source.url,
                "+refs/heads/*:refs/heads/*",
                "+refs/tags/*:refs/tags/*",
            ],
            &env,
        )
        .await?;
        if has_commit(&mirror, &source.commit).await {
            return Ok(mirror);
        }
        // No branch or tag reaches it (a deleted branch, a pull request ref): ask for the
        // commit itself, which servers allow for reachable commits.
        let message = match git(
            &mirror,
            &["fetch", "--quiet", "--", &source.url, &source.commit],
            &env,
        )
        .await
        {
            Ok(_) if has_commit(&mirror, &source.commit).await => return Ok(mirror),
            Ok(_) => String::new(),
            Err(CheckoutError::Git { message, .. }) => message,
            Err(e) => return Err(e),
        };
        Err(CheckoutError::CommitNotFound {
            commit: source.commit.clone(),
            url: source.url.clone(),
            message,
        })
    }

    /// `git init --bare` next to `mirror`, then renamed into place, so that a half-made
    /// mirror is never mistaken for one.
    async fn create_mirror(&self, mirror: &Path) -> Result<(), CheckoutError> {
        std::fs::create_dir_all(&self.root).map_err(|e| io("create", &self.root, e))?;
        let tmp = mirror.with_extension("tmp");
        let _ = std::fs::remove_dir_all(&tmp);
        std::fs::create_dir_all(&tmp).map_err(|e| io("create", &tmp, e))?;
        let env = [("GIT_DIR", tmp.as_path())];
        git(&tmp, &["init", "--quiet", "--bare"], &env).await?;
        // Objects a checkout is reading must never be pruned under it by an automatic gc.
        git(&tmp, &["config", "gc.auto", "0"], &env).await?;
        std::fs::rename(&tmp, mirror).map_err(|e| io("create", mirror, e))
    }
}

async fn has_commit(mirror: &Path, commit: &str) -> bool {
    let object = format!("{commit}^{{commit}}");
    git(mirror, &["cat-file", "-e", &object], &[("GIT_DIR", mirror)])
        .await
        .is_ok()
}

/// Full commit ids only (40 or 64 hex digits): anything else could be an option or a
/// ref that moves.
fn check_commit(commit: &str) -> Result<(), CheckoutError> {
    let hex = commit.bytes().all(|b| b.is_ascii_hexdigit());
    if hex && matches!(commit.len(), 40 | 64) {
        Ok(())
    } else {
        Err(CheckoutError::Refused {
            what: "commit",
            value: commit.to_owned(),
            why: "not a full commit id (40 or 64 hex digits)",
        })
    }
}

/// A directory name for a URL's mirror: readable tail plus a hash, so that two URLs
/// ending alike do not share a mirror.
fn mirror_name(url: &str) -> String {
    let tail: String = url
        .trim_end_matches('/')
        .trim_end_matches(".git")
        .rsplit(['/', ':'])
        .next()
        .unwrap_or("")
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '-' })
        .take(40)
        .collect();
    let hash = hex::encode(Sha256::digest(url.as_bytes()));
    format!("{}-{}.git", tail.trim_matches('-'), &hash[..16])
}

fn io(context: &'static str, path: &Path, source: std::io::Error) -> CheckoutError {
    CheckoutError::Io {
        context,
        path: path.to_path_buf(),
        source,
    }
}

/// Runs `git ARGS` in `dir` with exactly the repository variables in `env` and returns
/// its stdout. The one place the agent spawns git: variables inherited from the
/// environment that would point git elsewhere are removed, git never prompts for
/// credentials (a job would hang), and the process is killed if the job is dropped.
pub(crate) async fn git(
    dir: &Path,
    args: &[&str],
    env: &[(&str, &Path)],
) -> Result<Vec<u8>, CheckoutError> {
    let mut cmd = tokio::process::Command::new("git");
    cmd.args(args)
        .current_dir(dir)
        .env_remove("GIT_DIR")
        .env_remove("GIT_WORK_TREE")
        .env_remove("GIT_INDEX_FILE")
        .env_remove("GIT_PREFIX")
        .env_remove("GIT_OBJECT_DIRECTORY")
        .env_remove("GIT_ALTERNATE_OBJECT_DIRECTORIES")
        .env("GIT_TERMINAL_PROMPT", "0")
        .env("GIT_OPTIONAL_LOCKS", "0")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    for (name, value) in env {
        cmd.env(name, OsStr::new(value.as_os_str()));
    }
    let out = cmd.output().await.map_err(CheckoutError::Spawn)?;
    if out.status.success() {
        return Ok(out.stdout);
    }
    let stderr = String::from_utf8_lossy(&out.stderr);
    let lines: Vec<&str> = stderr
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .collect();
    let message = if lines.is_empty() {
        format!("exited with {}", out.status)
    } else {
        lines.join("; ")
    };
    Err(CheckoutError::Git {
        command: args.first().copied().unwrap_or("").to_owned(),
        message,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn commits_must_be_full_hex_ids() {
        let check = |c: &str, ok: bool| assert_eq!(check_commit(c).is_ok(), ok, "{c}");
        check(&"a".repeat(40), true);
        check(&"0123456789abcdef".repeat(4), true);
        check("--upload-pack=touch", false);
        check("main", false);
        check(&"a".repeat(39), false);
        check(&"g".repeat(40), false);
    }

    #[test]
    fn mirror_names_are_readable_and_distinct() {
        let a = mirror_name("https://example.com/team/app.git");
        let b = mirror_name("https://example.org/team/app.git");
        assert!(a.starts_with("app-") && a.ends_with(".git"), "{a}");
        assert_ne!(a, b);
        assert!(mirror_name("git@host:x/y").starts_with("y-"));
        assert!(mirror_name("/srv/repos/a b/").starts_with("a-b-"));
    }
}
