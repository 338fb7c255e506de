//! [`DirCaches`]: cache entries in a directory on this machine, for `gantry run`
//! (`<project>/.gantry/cache`).
//!
//! Layout: `objects/ab/cdef…`, content-addressed exactly like an [`ArtifactStore`] (a
//! file kept by several entries is stored once), and `entries/<sha256 of the key>.json`,
//! one file per key holding the key itself, when it was saved and the [`Manifest`].
//!
//! Promises:
//! - A manifest is never visible half-written: it is written to a temporary file, synced,
//!   then hard-linked to its name, which fails when the name exists. So the first of two
//!   jobs saving one key at once wins and the other's save keeps it, and after a crash an
//!   entry is either whole or absent. Objects are stored before the manifest that names
//!   them.
//! - Fetching checks every object against its digest while taking it. A damaged entry
//!   (unreadable manifest, another key's manifest, unsafe path, missing or altered object)
//!   is an error and is removed, so that the next successful job saves it anew.
//! - Objects are shared with the job's store by hard links where the file system allows
//!   (they are read-only and never written in place), else copied.
//! - Fetching marks the entry as used (its manifest's modification time), which
//!   [`DirCaches::list`] reports and [`DirCaches::remove_unused`] goes by.

use std::collections::BTreeSet;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use sha2::{Digest, Sha256};

use super::{CacheError, CacheStore, Saved};
use crate::artifacts::{ArtifactStore, Manifest, hash_file, temp_name};
use crate::source::is_plain_relative;

/// Cache entries under one directory. Cheap to clone.
#[derive(Debug, Clone)]
pub struct DirCaches {
    root: PathBuf,
    objects: ArtifactStore,
}

/// One entry, as [`DirCaches::list`] shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CacheEntry {
    /// The resolved key.
    pub key: String,
    /// The job that saved it (display name).
    pub job: String,
    /// Files in the entry.
    pub files: usize,
    /// Their total size in bytes (before deduplication).
    pub size: u64,
    /// When it was saved.
    pub saved: SystemTime,
    /// When it was last restored (its saving counts as a use).
    pub last_used: SystemTime,
}

/// What a removal freed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Removed {
    /// Entries removed.
    pub entries: usize,
    /// Object files deleted (no remaining entry names them).
    pub objects: usize,
    /// Their bytes.
    pub bytes: u64,
}

/// An entry's file.
#[derive(Debug, serde::Serialize, serde::Deserialize)]
struct Stored {
    key: String,
    /// Seconds since the Unix epoch.
    saved: u64,
    manifest: Manifest,
}

fn err(what: impl std::fmt::Display, path: &Path, e: std::io::Error) -> CacheError {
    CacheError(format!("{what} {}: {e}", path.display()))
}

impl DirCaches {
    /// Caches under `root` (created on the first save).
    pub fn new(root: impl Into<PathBuf>) -> DirCaches {
        let root = root.into();
        DirCaches {
            objects: ArtifactStore::new(&root),
            root,
        }
    }

    /// The directory.
    pub fn root(&self) -> &Path {
        &self.root
    }

    fn entries_dir(&self) -> PathBuf {
        self.root.join("entries")
    }

    /// Where the entry of `key` lives: named by the key's sha256, so any key text makes
    /// a safe, fixed-length file name.
    pub fn entry_path(&self, key: &str) -> PathBuf {
        let name = hex::encode(Sha256::digest(key.as_bytes()));
        self.entries_dir().join(format!("{name}.json"))
    }

    /// Reads the entry of `key`: `Ok(None)` when there is none, `Err` when its file is
    /// unreadable or not the entry of `key`.
    fn read(&self, key: &str) -> Result<Option<Stored>, Damage> {
        let path = self.entry_path(key);
        let bytes = match std::fs::read(&path) {
            Ok(b) => b,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(Damage::Io(err("cannot read", &path, e))),
        };
        let stored: Stored = serde_json::from_slice(&bytes)
            .map_err(|e| Damage::Bad(format!("its manifest is not valid ({e})")))?;
        if stored.key != key {
            return Err(Damage::Bad(format!(
                "its manifest belongs to the key \"{}\"",
                stored.key
            )));
        }
        Ok(Some(stored))
    }

    /// Removes `key`'s entry file (not its objects); true when there was one.
    fn unlink(&self, key: &str) -> Result<bool, CacheError> {
        let path = self.entry_path(key);
        match std::fs::remove_file(&path) {
            Ok(()) => Ok(true),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(false),
            Err(e) => Err(err("cannot remove", &path, e)),
        }
    }

    /// The blocking half of [`CacheStore::fetch`].
    fn fetch_blocking(
        &self,
        key: &str,
        store: &ArtifactStore,
    ) -> Result<Option<Manifest>, CacheError> {
        let result = self.read(key).and_then(|stored| match stored {
            None => Ok(None),
            Some(stored) => {
                self.take_objects(&stored.manifest, store)?;
                Ok(Some(stored.manifest))
            }
        });
        match result {
            Ok(Some(manifest)) => {
                // Best effort: a read-only cache still restores.
                let path = self.entry_path(key);
                if let Ok(file) = std::fs::File::options().write(true).open(&path) {
                    let _ = file.set_modified(SystemTime::now());
                }
                Ok(Some(manifest))
            }
            Ok(None) => Ok(None),
            Err(Damage::Io(e)) => Err(e),
            Err(Damage::Bad(why)) => {
                let removed = match self.unlink(key) {
                    Ok(_) => "removed it; the next successful job saves it again",
                    Err(_) => "could not remove it",
                };
                Err(CacheError(format!(
                    "the entry is damaged: {why}; {removed}"
                )))
            }
        }
    }

    /// Puts every object of `manifest` into `store`, each checked against its digest.
    /// Altered objects are deleted, all of them, so that the next save stores them anew.
    fn take_objects(&self, manifest: &Manifest, store: &ArtifactStore) -> Result<(), Damage> {
        let mut done = BTreeSet::new();
        let mut bad = None;
        for (rel, entry) in &manifest.files {
            if !is_plain_relative(Path::new(rel)) {
                return Err(Damage::Bad(format!(
                    "the path \"{rel}\" leaves the workspace"
                )));
            }
            let ours = self
                .objects
                .object_path(&entry.digest)
                .map_err(|_| Damage::Bad(format!("invalid digest \"{}\"", entry.digest)))?;
            if !done.insert(entry.digest.as_str()) {
                continue;
            }
            let damaged = || format!("object {} is missing or altered", entry.digest);
            match hash_file(&ours) {
                Ok((digest, size)) if digest == entry.digest && size == entry.size => {}
                Ok(_) => {
                    // Or a later save of the same content would keep the altered file.
                    let _ = std::fs::remove_file(&ours);
                    bad.get_or_insert_with(damaged);
                    continue;
                }
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                    bad.get_or_insert_with(damaged);
                    continue;
                }
                Err(e) => return Err(Damage::Io(err("cannot read", &ours, e))),
            }
            if bad.is_some() {
                // Only checking from here on: the fetch fails anyway.
                continue;
            }
            let theirs = store
                .object_path(&entry.digest)
                .map_err(|e| Damage::Io(CacheError(e.to_string())))?;
            share(&ours, &theirs, store, &entry.digest).map_err(Damage::Io)?;
        }
        match bad {
            Some(why) => Err(Damage::Bad(why)),
            None => Ok(()),
        }
    }

    /// The blocking half of [`CacheStore::save`].
    fn save_blocking(
        &self,
        key: &str,
        manifest: &Manifest,
        store: &ArtifactStore,
    ) -> Result<Saved, CacheError> {
        let path = self.entry_path(key);
        if path.exists() {
            // Entries are immutable: the first save of a key is kept.
            return Ok(Saved::Kept);
        }
        let mut done = BTreeSet::new();
        for (rel, entry) in &manifest.files {
            if !is_plain_relative(Path::new(rel)) {
                return Err(CacheError(format!(
                    "the path \"{rel}\" leaves the workspace"
                )));
            }
            if !done.insert(entry.digest.as_str()) {
                continue;
            }
            let theirs = store
                .object_path(&entry.digest)
                .map_err(|e| CacheError(e.to_string()))?;
            let ours = self
                .objects
                .object_path(&entry.digest)
                .map_err(|e| CacheError(e.to_string()))?;
            match std::fs::metadata(&theirs) {
                Ok(m) if m.is_file() && m.len() == entry.size => {}
                _ => {
                    return Err(CacheError(format!(
                        "object {} is missing from the job's store",
                        entry.digest
                    )));
                }
            }
            share(&theirs, &ours, &self.objects, &entry.digest)?;
        }

        let dir = self.entries_dir();
        std::fs::create_dir_all(&dir).map_err(|e| err("cannot create", &dir, e))?;
        let stored = Stored {
            key: key.to_owned(),
            saved: SystemTime::now()
                .duration_since(SystemTime::UNIX_EPOCH)
                .map_or(0, |d| d.as_secs()),
            manifest: manifest.clone(),
        };
        let json = serde_json::to_vec_pretty(&stored)
            .map_err(|e| CacheError(format!("cannot encode the entry: {e}")))?;
        let tmp = dir.join(temp_name());
        let written = (|| {
            let mut file = std::fs::File::create(&tmp)?;
            file.write_all(&json)?;
            // Synced before it gets its name: after a power cut the name leads to the
            // whole file or does not exist.
            file.sync_all()
        })();
        if let Err(e) = written {
            let _ = std::fs::remove_file(&tmp);
            return Err(err("cannot write", &tmp, e));
        }
        // A hard link never replaces an existing name: the first writer wins.
        let linked = match std::fs::hard_link(&tmp, &path) {
            Ok(()) => Ok(Saved::Stored),
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Ok(Saved::Kept),
            // A file system without hard links: a rename is atomic too, but replaces, so
            // look first (the race left is between two equally valid entries).
            Err(_) if path.exists() => Ok(Saved::Kept),
            Err(_) => std::fs::rename(&tmp, &path)
                .map(|()| Saved::Stored)
                .map_err(|e| err("cannot write", &path, e)),
        };
        let _ = std::fs::remove_file(&tmp);
        linked
    }

    /// Every entry, most recently used first. Unreadable entry files are left out.
    pub fn list(&self) -> Result<Vec<CacheEntry>, CacheError> {
        let dir = self.entries_dir();
        let read = match std::fs::read_dir(&dir) {
            Ok(r) => r,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(err("cannot read", &dir, e)),
        };
        let mut entries = Vec::new();
        for item in read.flatten() {
            let path = item.path();
            if path.extension().is_none_or(|e| e != "json") {
                continue;
            }
            let Ok(bytes) = std::fs::read(&path) else {
                continue;
            };
            let Ok(stored) = serde_json::from_slice::<Stored>(&bytes) else {
                continue;
            };
            let saved = SystemTime::UNIX_EPOCH + Duration::from_secs(stored.saved);
            let last_used = item.metadata().and_then(|m| m.modified()).unwrap_or(saved);
            entries.push(CacheEntry {
                files: stored.manifest.files.len(),
                size: stored.manifest.files.values().map(|f| f.size).sum(),
                key: stored.key,
                job: stored.manifest.job,
                saved,
                last_used,
            });
        }
        entries.sort_by(|a, b| b.last_used.cmp(&a.last_used).then(a.key.cmp(&b.key)));
        Ok(entries)
    }

    /// Bytes of the stored objects: what the caches take on disk (files kept by several
    /// entries count once).
    pub fn stored_bytes(&self) -> u64 {
        let Ok(prefixes) = std::fs::read_dir(self.root.join("objects")) else {
            return 0;
        };
        prefixes
            .flatten()
            .filter_map(|p| std::fs::read_dir(p.path()).ok())
            .flat_map(|files| files.flatten())
            .filter_map(|f| f.metadata().ok())
            .map(|m| m.len())
            .sum()
    }

    /// Removes the entries of `keys` (unknown keys are left out of the count), then
    /// deletes the objects no remaining entry names.
    pub fn remove(&self, keys: &[String]) -> Result<Removed, CacheError> {
        let mut removed = Removed::default();
        for key in keys {
            if self.unlink(key)? {
                removed.entries += 1;
            }
        }
        self.sweep(removed)
    }

    /// Removes the entries not used since `cutoff`, then their objects.
    pub fn remove_unused(&self, cutoff: SystemTime) -> Result<Removed, CacheError> {
        let stale: Vec<String> = self
            .list()?
            .into_iter()
            .filter(|e| e.last_used < cutoff)
            .map(|e| e.key)
            .collect();
        self.remove(&stale)
    }

    /// Removes every entry and object.
    pub fn clear(&self) -> Result<Removed, CacheError> {
        let mut removed = Removed::default();
        let dir = self.entries_dir();
        if let Ok(read) = std::fs::read_dir(&dir) {
            for item in read.flatten() {
                let path = item.path();
                let counts = path.extension().is_some_and(|e| e == "json");
                match std::fs::remove_file(&path) {
                    Ok(()) if counts => removed.entries += 1,
                    Ok(()) => {}
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                    Err(e) => return Err(err("cannot remove", &path, e)),
                }
            }
        }
        self.sweep(removed)
    }

    /// Deletes objects that no entry names, and temporary files a crash left.
    fn sweep(&self, mut removed: Removed) -> Result<Removed, CacheError> {
        let mut kept = BTreeSet::new();
        if let Ok(read) = std::fs::read_dir(self.entries_dir()) {
            for item in read.flatten() {
                let path = item.path();
                let name = item.file_name();
                if name.to_string_lossy().starts_with(".tmp-") {
                    let _ = std::fs::remove_file(&path);
                    continue;
                }
                let stored = std::fs::read(&path)
                    .ok()
                    .and_then(|b| serde_json::from_slice::<Stored>(&b).ok());
                for entry in stored.iter().flat_map(|s| s.manifest.files.values()) {
                    kept.insert(entry.digest.clone());
                }
            }
        }
        let objects = self.root.join("objects");
        let Ok(read) = std::fs::read_dir(&objects) else {
            return Ok(removed);
        };
        for prefix in read.flatten() {
            let prefix_path = prefix.path();
            let prefix_name = prefix.file_name().to_string_lossy().into_owned();
            if !prefix_path.is_dir() {
                // A temporary file of an interrupted store.
                if prefix_name.starts_with(".tmp-") {
                    let _ = std::fs::remove_file(&prefix_path);
                }
                continue;
            }
            let Ok(files) = std::fs::read_dir(&prefix_path) else {
                continue;
            };
            for file in files.flatten() {
                let digest = format!("{prefix_name}{}", file.file_name().to_string_lossy());
                if kept.contains(&digest) {
                    continue;
                }
                let size = file.metadata().map_or(0, |m| m.len());
                let path = file.path();
                match std::fs::remove_file(&path) {
                    Ok(()) => {
                        removed.objects += 1;
                        removed.bytes += size;
                    }
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                    Err(e) => return Err(err("cannot remove", &path, e)),
                }
            }
            // Fails while another object is in it, which is fine.
            let _ = std::fs::remove_dir(&prefix_path);
        }
        Ok(removed)
    }
}

/// Why an entry could not be fetched.
enum Damage {
    /// The entry is wrong: it is removed.
    Bad(String),
    /// Reading failed (permissions, IO): the entry may be fine.
    Io(CacheError),
}

/// Makes `to` (an object path of `to_store`) hold the object at `from`: a hard link
/// where possible, else a copy checked against `digest`.
fn share(from: &Path, to: &Path, to_store: &ArtifactStore, digest: &str) -> Result<(), CacheError> {
    if to.exists() {
        return Ok(());
    }
    let dir = to.parent().unwrap_or(to_store.root());
    std::fs::create_dir_all(dir).map_err(|e| err("cannot create", dir, e))?;
    match std::fs::hard_link(from, to) {
        Ok(()) => return Ok(()),
        // Stored meanwhile by another job: same content, by its address.
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => return Ok(()),
        // Another file system, or one without hard links: copy.
        Err(_) => {}
    }
    let (copied, _) = to_store
        .store_file(from)
        .map_err(|e| CacheError(crate::runner::chain(&e)))?;
    if copied != digest {
        return Err(CacheError(format!(
            "object {digest} changed while it was copied"
        )));
    }
    Ok(())
}

#[async_trait::async_trait]
impl CacheStore for DirCaches {
    async fn fetch(
        &self,
        key: &str,
        store: &ArtifactStore,
    ) -> Result<Option<Manifest>, CacheError> {
        let (this, key, store) = (self.clone(), key.to_owned(), store.clone());
        tokio::task::spawn_blocking(move || this.fetch_blocking(&key, &store))
            .await
            .map_err(|e| CacheError(format!("fetching panicked: {e}")))?
    }

    async fn save(
        &self,
        key: &str,
        manifest: &Manifest,
        store: &ArtifactStore,
    ) -> Result<Saved, CacheError> {
        let (this, key, manifest, store) = (
            self.clone(),
            key.to_owned(),
            manifest.clone(),
            store.clone(),
        );
        tokio::task::spawn_blocking(move || this.save_blocking(&key, &manifest, &store))
            .await
            .map_err(|e| CacheError(format!("saving panicked: {e}")))?
    }
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::PermissionsExt;
    use std::sync::Arc;

    use gantry_test_support::TempTree;

    use super::*;

    /// A job store holding `files` (path, content), collected whole.
    fn job_store(tree: &TempTree, name: &str, files: &[(&str, &str)]) -> (ArtifactStore, Manifest) {
        for (path, content) in files {
            tree.file(&format!("{name}/ws/{path}"), content);
        }
        let store = ArtifactStore::new(tree.join(&format!("{name}/store")));
        let manifest = store
            .collect_cache(
                name,
                name,
                &tree.join(&format!("{name}/ws")),
                &["**".into()],
            )
            .expect("collect")
            .manifest;
        (store, manifest)
    }

    fn fetch(
        caches: &DirCaches,
        key: &str,
        tree: &TempTree,
        into: &str,
    ) -> Result<Option<Manifest>, CacheError> {
        caches.fetch_blocking(key, &ArtifactStore::new(tree.join(into)))
    }

    #[test]
    fn saves_and_fetches_with_every_object_checked() {
        let tree = TempTree::new();
        let caches = DirCaches::new(tree.join("cache"));
        let (store, manifest) = job_store(&tree, "a", &[("vendor/x", "x"), ("vendor/y", "yy")]);
        assert_eq!(fetch(&caches, "k", &tree, "f0"), Ok(None));
        caches.save_blocking("k", &manifest, &store).expect("save");

        let fetched = fetch(&caches, "k", &tree, "f1")
            .expect("fetch")
            .expect("found");
        assert_eq!(fetched, manifest);
        let into = ArtifactStore::new(tree.join("f1"));
        into.verify(&fetched)
            .expect("every object is in the job's store");
        tree.dir("out");
        into.restore(&fetched, &tree.join("out")).expect("restore");
        assert_eq!(tree.read("out/vendor/y"), "yy");

        let listed = caches.list().expect("list");
        assert_eq!(listed.len(), 1);
        assert_eq!(
            (listed[0].key.as_str(), listed[0].files, listed[0].size),
            ("k", 2, 3)
        );
        assert_eq!(listed[0].job, "a");
        // The entry file is named by the key's hash, never by the key's text.
        assert!(
            caches
                .entry_path("../../etc")
                .starts_with(tree.join("cache/entries"))
        );
    }

    #[test]
    fn the_first_save_of_a_key_is_kept() {
        let tree = TempTree::new();
        let caches = DirCaches::new(tree.join("cache"));
        let (store_a, first) = job_store(&tree, "a", &[("f", "first")]);
        let (store_b, second) = job_store(&tree, "b", &[("f", "second")]);
        assert_eq!(
            caches.save_blocking("k", &first, &store_a),
            Ok(Saved::Stored)
        );
        assert_eq!(
            caches.save_blocking("k", &second, &store_b),
            Ok(Saved::Kept)
        );
        let got = fetch(&caches, "k", &tree, "f")
            .expect("fetch")
            .expect("found");
        assert_eq!(got, first);
    }

    #[test]
    fn concurrent_saves_of_one_key_leave_one_whole_entry() {
        let tree = Arc::new(TempTree::new());
        let caches = DirCaches::new(tree.join("cache"));
        let jobs: Vec<(ArtifactStore, Manifest)> = (0..8)
            .map(|i| {
                let content = format!("content {i}");
                job_store(
                    &tree,
                    &format!("j{i}"),
                    &[("shared", "same"), ("own", &content)],
                )
            })
            .collect();
        let barrier = Arc::new(std::sync::Barrier::new(jobs.len()));
        let threads: Vec<_> = jobs
            .iter()
            .cloned()
            .map(|(store, manifest)| {
                let (caches, barrier) = (caches.clone(), barrier.clone());
                std::thread::spawn(move || {
                    barrier.wait();
                    caches.save_blocking("k", &manifest, &store)
                })
            })
            .collect();
        let mut saved: Vec<Saved> = threads
            .into_iter()
            .map(|t| t.join().expect("thread").expect("every save succeeds"))
            .collect();
        saved.sort_by_key(|s| *s == Saved::Kept);
        assert_eq!(saved[0], Saved::Stored);
        assert!(saved[1..].iter().all(|s| *s == Saved::Kept), "{saved:?}");
        let got = fetch(&caches, "k", &tree, "f")
            .expect("fetch")
            .expect("found");
        assert!(
            jobs.iter().any(|(_, m)| *m == got),
            "one of the saved manifests"
        );
        let entries = std::fs::read_dir(tree.join("cache/entries"))
            .expect("entries")
            .count();
        assert_eq!(entries, 1, "one entry file, no temporary files left");
        // Clearing drops the losers' objects too. How many a loser stored depends on
        // whether it saw the winner's entry before it began: the winner's two at least,
        // at most `same` once and eight `own`; none may be left behind.
        let removed = caches.clear().expect("clear");
        assert_eq!(removed.entries, 1);
        assert!((2..=9).contains(&removed.objects), "{}", removed.objects);
        let left: Vec<_> = walk_files(&tree.join("cache"));
        assert!(left.is_empty(), "left after clear: {left:?}");
    }

    /// Every file below `dir` (none when it does not exist).
    fn walk_files(dir: &Path) -> Vec<PathBuf> {
        let mut files = Vec::new();
        let mut todo = vec![dir.to_path_buf()];
        while let Some(d) = todo.pop() {
            let Ok(entries) = std::fs::read_dir(&d) else {
                continue;
            };
            for e in entries.flatten() {
                let path = e.path();
                if path.is_dir() {
                    todo.push(path);
                } else {
                    files.push(path);
                }
            }
        }
        files
    }

    /// Damages the entry of `key` in some way; fetching must fail, say why, and remove it.
    fn check_damage(damage: &dyn Fn(&TempTree, &DirCaches, &Manifest), expect: &str) {
        let tree = TempTree::new();
        let caches = DirCaches::new(tree.join("cache"));
        let (store, manifest) = job_store(&tree, "a", &[("vendor/x", "x")]);
        caches.save_blocking("k", &manifest, &store).expect("save");
        damage(&tree, &caches, &manifest);
        let err = fetch(&caches, "k", &tree, "f").expect_err(expect);
        assert!(err.0.contains(expect), "{expect}: {err}");
        assert!(err.0.contains("removed it"), "{err}");
        assert_eq!(
            fetch(&caches, "k", &tree, "f2"),
            Ok(None),
            "{expect}: removed"
        );
        // And it can be saved again, by a later job.
        let (store, manifest) = job_store(&tree, "later", &[("vendor/x", "x")]);
        caches
            .save_blocking("k", &manifest, &store)
            .expect("save again");
        assert!(fetch(&caches, "k", &tree, "f3").expect("fetch").is_some());
        assert!(!tree.join("escape").exists() && !tree.join("cache/escape").exists());
    }

    fn rewrite(caches: &DirCaches, key: &str, edit: impl Fn(&mut serde_json::Value)) {
        let path = caches.entry_path(key);
        let mut json: serde_json::Value =
            serde_json::from_slice(&std::fs::read(&path).expect("read")).expect("json");
        edit(&mut json);
        std::fs::write(&path, serde_json::to_vec(&json).expect("encode")).expect("write");
    }

    #[test]
    fn damaged_or_forged_entries_are_refused_and_removed() {
        let object = |tree: &TempTree, m: &Manifest| {
            let digest = &m.files["vendor/x"].digest;
            tree.join(&format!("cache/objects/{}/{}", &digest[..2], &digest[2..]))
        };
        check_damage(
            &|tree, _, m| {
                let path = object(tree, m);
                std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644))
                    .expect("chmod");
                std::fs::write(&path, "y").expect("same size, other content");
            },
            "is missing or altered",
        );
        check_damage(
            &|tree, _, m| std::fs::remove_file(object(tree, m)).expect("rm"),
            "is missing or altered",
        );
        check_damage(
            &|_, c, _| std::fs::write(c.entry_path("k"), "{ half").expect("write"),
            "its manifest is not valid",
        );
        check_damage(
            &|_, c, _| rewrite(c, "k", |j| j["key"] = "other".into()),
            "belongs to the key \"other\"",
        );
        check_damage(
            &|_, c, m| {
                rewrite(c, "k", |j| {
                    let entry = serde_json::to_value(&m.files["vendor/x"]).expect("entry");
                    j["manifest"]["files"] = serde_json::json!({ "../escape": entry });
                })
            },
            "the path \"../escape\" leaves the workspace",
        );
        check_damage(
            &|_, c, _| {
                rewrite(c, "k", |j| {
                    j["manifest"]["files"]["vendor/x"]["digest"] = "../../../escape".into()
                })
            },
            "invalid digest \"../../../escape\"",
        );
    }

    #[test]
    fn list_remove_and_sweep() {
        let tree = TempTree::new();
        let caches = DirCaches::new(tree.join("cache"));
        assert_eq!(caches.list(), Ok(Vec::new()));
        let (store, a) = job_store(&tree, "a", &[("x", "shared"), ("y", "only a")]);
        caches.save_blocking("a", &a, &store).expect("save");
        let (store, b) = job_store(&tree, "b", &[("x", "shared")]);
        caches.save_blocking("b", &b, &store).expect("save");
        let (store, c) = job_store(&tree, "c", &[("z", "only c")]);
        caches.save_blocking("c", &c, &store).expect("save");
        // A leftover of a crash.
        tree.file("cache/entries/.tmp-1-1", "{");

        let old = SystemTime::now() - Duration::from_secs(3600);
        std::fs::File::options()
            .write(true)
            .open(caches.entry_path("c"))
            .and_then(|f| f.set_modified(old))
            .expect("age c");
        let keys: Vec<String> = caches
            .list()
            .expect("list")
            .into_iter()
            .map(|e| e.key)
            .collect();
        assert_eq!(
            keys.last().map(String::as_str),
            Some("c"),
            "least recently used last"
        );

        let removed = caches
            .remove_unused(SystemTime::now() - Duration::from_secs(60))
            .expect("remove unused");
        assert_eq!((removed.entries, removed.objects, removed.bytes), (1, 1, 6));
        assert!(!tree.join("cache/entries/.tmp-1-1").exists());

        // `x` stays: `b` still names it.
        let removed = caches.remove(&["a".into(), "nope".into()]).expect("remove");
        assert_eq!((removed.entries, removed.objects), (1, 1));
        assert!(fetch(&caches, "b", &tree, "f").expect("fetch").is_some());

        assert_eq!(caches.stored_bytes(), "shared".len() as u64);
        let removed = caches.clear().expect("clear");
        assert_eq!((removed.entries, removed.objects), (1, 1));
        assert_eq!(caches.list(), Ok(Vec::new()));
        assert_eq!(caches.stored_bytes(), 0);
    }
}
