//! The job runner's `cache:` hooks, one pair per attempt.
//!
//! [`Runner::restore_cache`] runs once the pristine workspace holds the source and the
//! needs' artifacts, before services and script: it resolves the key (`${hash:…}` over
//! the workspace's files), fetches the entry into a scratch store of the attempt
//! (`<work_dir>/<job_key>.cache`, removed when the attempt ends; the run's artifact store
//! is not used, so that runs kept under `.gantry/runs` do not each hold a copy of the
//! caches) and restores it. [`Runner::save_cache`] runs after a successful script: when
//! the key was not found, it collects `paths` into the scratch store and saves them.
//!
//! Rules a user can rely on:
//! - A cache never fails a job. Every problem (a key that cannot be computed, a store
//!   that fails, a damaged or forged entry) is a `warning:` line in the job's log, and
//!   the job goes on without the cache.
//! - A restored entry never replaces a file the workspace already has: the source and
//!   the artifacts of the needs are newer than any cache. The entry is checked whole
//!   before anything is written (paths inside the workspace, digests, objects present),
//!   and the artifact restore rules apply (never through a symlink).
//! - An entry, once saved, is immutable: a key that was found is not saved again, so a
//!   key should contain a hash of what the cached files depend on.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;

use gantry_backend::Outcome;

use super::{Runner, chain};
use crate::artifacts::{ArtifactStore, Manifest};
use crate::cache::{CacheStore, Saved, resolve_key};
use crate::workspace;

/// The cache of one attempt, between restore and save.
pub(super) struct CacheRun {
    /// The resolved key.
    key: String,
    /// Whether the key had an entry when the attempt started (then it is not saved).
    found: bool,
    /// The attempt's scratch store for the entry's objects.
    store: ArtifactStore,
    caches: Arc<dyn CacheStore>,
}

impl Runner<'_> {
    /// Resolves, fetches and restores the job's cache into `workspace`. `None` when the
    /// job has no cache, caches are off, or the key cannot be computed.
    pub(super) async fn restore_cache(&self, workspace: &Path) -> Option<CacheRun> {
        let spec = self.planned.cache.as_ref()?;
        let Some(caches) = self.ctx.caches.clone() else {
            self.system(format!(
                "cache \"{}\": caches are off for this run; not restored, not saved",
                spec.key
            ));
            return None;
        };
        let planned = spec.key.clone();
        let dir = workspace.to_path_buf();
        let key = match tokio::task::spawn_blocking(move || resolve_key(&planned, &dir)).await {
            Ok(Ok(key)) => key,
            Ok(Err(e)) => {
                self.system(format!(
                    "warning: cache \"{}\": cannot compute the key: {}; the job runs without \
                     its cache (not restored, not saved)",
                    spec.key,
                    chain(&e)
                ));
                return None;
            }
            Err(e) => {
                self.system(format!(
                    "warning: cache \"{}\": computing the key panicked: {e}",
                    spec.key
                ));
                return None;
            }
        };
        let store = ArtifactStore::new(
            self.ctx
                .work_dir
                .join(format!("{}.cache", self.ctx.keys[self.job])),
        );
        // A previous attempt's leftovers (killed mid-way) must not count as fetched.
        self.remove_dir(store.root()).await;
        let mut run = CacheRun {
            key,
            found: false,
            store,
            caches,
        };
        match run.caches.fetch(&run.key, &run.store).await {
            Ok(None) => self.system(format!(
                "cache \"{}\": not found, will be saved if the job succeeds",
                run.key
            )),
            Ok(Some(manifest)) => {
                run.found = true;
                self.restore_entry(&run, manifest, workspace).await;
                // The objects are in the workspace now; the scratch copy is not needed.
                self.remove_dir(run.store.root()).await;
            }
            Err(e) => self.system(format!(
                "warning: cache \"{}\": cannot fetch it: {e}; the job runs without it",
                run.key
            )),
        }
        Some(run)
    }

    /// Checks `manifest` whole, then writes the files the workspace does not have yet.
    async fn restore_entry(&self, run: &CacheRun, manifest: Manifest, workspace: &Path) {
        let store = run.store.clone();
        let dir = workspace.to_path_buf();
        let restored = tokio::task::spawn_blocking(move || {
            store.verify(&manifest)?;
            let mut fresh = Manifest {
                job: manifest.job.clone(),
                files: BTreeMap::new(),
            };
            let mut kept = 0usize;
            for (rel, entry) in manifest.files {
                // `verify` made sure `rel` cannot leave the workspace.
                if occupied(&dir, &rel) {
                    kept += 1;
                } else {
                    fresh.files.insert(rel, entry);
                }
            }
            store.restore(&fresh, &dir)?;
            let bytes = fresh.files.values().map(|f| f.size).sum::<u64>();
            Ok::<_, crate::artifacts::ArtifactError>((fresh.files.len(), bytes, kept))
        })
        .await;
        match restored {
            Ok(Ok((files, bytes, kept))) => {
                let mut line = format!(
                    "cache \"{}\": restored {} ({})",
                    run.key,
                    count(files, "file"),
                    size(bytes)
                );
                if kept > 0 {
                    line.push_str(&format!(
                        "; {} already in the workspace kept as they were",
                        count(kept, "file")
                    ));
                }
                self.system(line);
            }
            Ok(Err(e)) => self.system(format!(
                "warning: cache \"{}\": cannot restore it: {}; the job runs without it",
                run.key,
                chain(&e)
            )),
            Err(e) => self.system(format!(
                "warning: cache \"{}\": restoring panicked: {e}",
                run.key
            )),
        }
    }

    /// After the script: saves `paths` under the key when it was not found, or says why
    /// nothing is saved.
    pub(super) async fn save_cache(&self, run: &CacheRun, outcome: &Outcome, workspace: &Path) {
        if run.found {
            if outcome.is_success() {
                self.system(format!("cache \"{}\": exists, not saved again", run.key));
            }
            return;
        }
        match outcome {
            Outcome::Success => {}
            // Cancelling says enough.
            Outcome::Cancelled => return,
            _ => {
                self.system(format!(
                    "cache \"{}\": not saved, the job did not succeed",
                    run.key
                ));
                return;
            }
        }
        let Some(spec) = self.planned.cache.as_ref() else {
            return;
        };
        let store = run.store.clone();
        let name = self.planned.name.clone();
        let job_key = self.ctx.keys[self.job].clone();
        let dir = workspace.to_path_buf();
        let paths = spec.paths.clone();
        let collected =
            tokio::task::spawn_blocking(move || store.collect_cache(&name, &job_key, &dir, &paths))
                .await;
        let collected = match collected {
            Ok(Ok(c)) => c,
            Ok(Err(e)) => {
                self.system(format!(
                    "warning: cache \"{}\": cannot save it: {}",
                    run.key,
                    chain(&e)
                ));
                return;
            }
            Err(e) => {
                self.system(format!(
                    "warning: cache \"{}\": collecting panicked: {e}",
                    run.key
                ));
                return;
            }
        };
        for warning in &collected.warnings {
            self.system(warning.clone());
        }
        let manifest = collected.manifest;
        if manifest.files.is_empty() {
            // An empty entry would be "found" from now on and never filled.
            self.system(format!(
                "cache \"{}\": nothing to save, its paths hold no file",
                run.key
            ));
            return;
        }
        let files = manifest.files.len();
        let bytes = manifest.files.values().map(|f| f.size).sum::<u64>();
        match run.caches.save(&run.key, &manifest, &run.store).await {
            Ok(Saved::Stored) => self.system(format!(
                "cache \"{}\": saved {} ({})",
                run.key,
                count(files, "file"),
                size(bytes)
            )),
            Ok(Saved::Kept) => self.system(format!(
                "cache \"{}\": saved meanwhile by another job; that entry is kept, this \
                 one not saved",
                run.key
            )),
            Err(e) => self.system(format!(
                "warning: cache \"{}\": cannot save it: {e}",
                run.key
            )),
        }
    }

    /// Removes the attempt's scratch store.
    pub(super) async fn end_cache(&self, run: CacheRun) {
        self.remove_dir(run.store.root()).await;
    }

    async fn remove_dir(&self, dir: &Path) {
        let dir = dir.to_path_buf();
        let removed = tokio::task::spawn_blocking(move || workspace::remove(&dir)).await;
        if let Ok(Err(e)) = removed {
            self.system(format!("warning: {}", chain(&e)));
        }
    }
}

/// Whether the workspace has something at `rel` or in its way: the file itself (of any
/// kind), or a file or symlink where one of its parent directories would be. Such paths
/// are left as the workspace has them.
fn occupied(workspace: &Path, rel: &str) -> bool {
    let mut path = workspace.to_path_buf();
    let parts: Vec<&str> = rel.split('/').collect();
    for (i, part) in parts.iter().enumerate() {
        path.push(part);
        match std::fs::symlink_metadata(&path) {
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return false,
            Ok(m) if m.is_dir() && i + 1 < parts.len() => {}
            // The file itself, something that is not a plain directory on the way, or
            // something that cannot be looked at: leave it alone.
            _ => return true,
        }
    }
    true
}

/// `1 file`, `1,204 files`.
fn count(n: usize, noun: &str) -> String {
    let digits = n.to_string();
    let mut grouped = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            grouped.push(',');
        }
        grouped.push(c);
    }
    format!("{grouped} {noun}{}", if n == 1 { "" } else { "s" })
}

/// `512 B`, `1.2 KiB`, `48.2 MiB` (the units of the CLI's tables).
fn size(bytes: u64) -> String {
    const UNITS: [&str; 4] = ["KiB", "MiB", "GiB", "TiB"];
    if bytes < 1024 {
        return format!("{bytes} B");
    }
    let mut value = bytes as f64 / 1024.0;
    let mut unit = 0;
    while value >= 1024.0 && unit + 1 < UNITS.len() {
        value /= 1024.0;
        unit += 1;
    }
    format!("{value:.1} {}", UNITS[unit])
}

#[cfg(test)]
mod tests {
    use gantry_test_support::TempTree;

    use super::*;
    use crate::cache::DirCaches;
    use crate::testutil::{Opts, job, plan, run_with};

    async fn run(p: &gantry_pipeline::Plan, caches: &TempTree) -> crate::testutil::Ran {
        let ran = run_with(
            p,
            Opts {
                caches: Some(Arc::new(DirCaches::new(caches.path()))),
                keep_workspaces: true,
                ..Opts::default()
            },
        )
        .await;
        // Kept workspaces, but never the attempt's scratch store.
        let work = ran.run_dir.join("work");
        let left: Vec<String> = std::fs::read_dir(&work)
            .map(|r| {
                r.flatten()
                    .map(|e| e.file_name().to_string_lossy().into_owned())
                    .collect()
            })
            .unwrap_or_default();
        assert!(left.iter().all(|n| !n.ends_with(".cache")), "{left:?}");
        ran
    }

    #[tokio::test]
    async fn container_jobs_restore_and_save_through_the_host_workspace() {
        let caches = TempTree::new();
        let p = plan(vec![
            job("build")
                .image("builder")
                .cache("deps-${hash:src/main.c}", &["out"])
                .env("FAKE_WRITE", "out/lib.a=compiled"),
        ]);
        let first = run(&p, &caches).await;
        assert_eq!(first.statuses(), ["build: success"]);
        let logs = first.logs("build");
        assert!(
            logs.iter().any(|l| l.contains("not found, will be saved")),
            "{logs:?}"
        );
        assert!(
            logs.iter().any(|l| l.ends_with("saved 1 file (8 B)")),
            "{logs:?}"
        );
        let second = run(&p, &caches).await;
        let seen = second.fake.seen_files("build").expect("the script ran");
        assert_eq!(seen.get("out/lib.a").map(String::as_str), Some("compiled"));
        let logs = second.logs("build");
        assert!(
            logs.iter().any(|l| l.ends_with("restored 1 file (8 B)")),
            "{logs:?}"
        );
    }

    #[tokio::test]
    async fn a_failed_attempt_saves_nothing_and_its_retry_does() {
        let caches = TempTree::new();
        let p = plan(vec![
            job("flaky")
                .cache("k", &["out"])
                .env("FAKE_WRITE", "out/f=x")
                .env("FAKE_FAIL_ATTEMPTS", "1")
                .retry(1),
        ]);
        let ran = run(&p, &caches).await;
        assert_eq!(ran.statuses(), ["flaky: success"]);
        let cache_lines: Vec<String> = ran
            .logs("flaky")
            .into_iter()
            .filter(|l| l.starts_with("cache "))
            .collect();
        assert_eq!(
            cache_lines,
            [
                "cache \"k\": not found, will be saved if the job succeeds",
                "cache \"k\": not saved, the job did not succeed",
                "cache \"k\": not found, will be saved if the job succeeds",
                "cache \"k\": saved 1 file (1 B)",
            ]
        );
    }

    #[test]
    fn occupied_paths_are_left_alone() {
        let tree = TempTree::new();
        tree.file("ws/file", "x")
            .file("ws/dir/inner", "y")
            .symlink("ws/link", "/tmp")
            .dir("ws/empty");
        let ws = tree.join("ws");
        for (rel, want) in [
            ("file", true),
            ("dir/inner", true),
            ("dir", true),
            ("file/below", true),
            ("link/x", true),
            ("link", true),
            ("new", false),
            ("dir/new", false),
            ("empty/new/deeper", false),
            ("new/deeper", false),
        ] {
            assert_eq!(occupied(&ws, rel), want, "{rel}");
        }
    }

    #[test]
    fn counts_and_sizes() {
        for (n, want) in [
            (0, "0 files"),
            (1, "1 file"),
            (999, "999 files"),
            (1204, "1,204 files"),
            (1_234_567, "1,234,567 files"),
        ] {
            assert_eq!(count(n, "file"), want);
        }
        for (b, want) in [
            (0, "0 B"),
            (1023, "1023 B"),
            (1536, "1.5 KiB"),
            (50_541_363, "48.2 MiB"),
            (3 << 30, "3.0 GiB"),
        ] {
            assert_eq!(size(b), want);
        }
    }
}
