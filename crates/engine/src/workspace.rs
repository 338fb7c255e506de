//! Pristine job workspaces: a fresh copy of the source plus the artifacts of the needs.
//!
//! Every attempt of every job starts in a directory made by [`prepare`]: the run's frozen
//! [`Source`] copied in, then the artifacts of the jobs it needs restored on top. A job
//! therefore never sees another job's scratch files, and a retry never sees the failed
//! attempt's leftovers.
//!
//! Copies are real copies, never hard links: a job that edits a file in place must not
//! change the source for everyone. They are made cheap in two ways. Where the file system
//! can share extents (btrfs, XFS, …) files are reflinked (`FICLONE`), which costs a
//! metadata update per file; elsewhere `std::fs::copy` is used, which on Linux is
//! `copy_file_range`, an in-kernel copy without a trip through user space. Which one works
//! is probed on the first file copied between two file systems and remembered for the
//! process, so a file system without reflinks pays for one failed attempt, not one per
//! file or per workspace. Large trees are copied by a few threads at once,
//! because per-file costs (open, create, close) dominate for small files and overlap well.
//!
//! Artifacts: a job gets the artifacts of *all* its transitive needs, restored in plan
//! (topological) order, so when two jobs stored the same path the later one wins. Direct
//! needs only would be surprising in a chain `build → test → package`: `package` needs
//! the binary `build` made, but `test` had no reason to re-collect it.

use std::collections::{BTreeSet, HashMap};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

use crate::artifacts::{ArtifactError, ArtifactStore, Manifest};
use crate::source::{Entry, EntryKind, Source};

/// Below this many files a single thread copies: threads cost more than they save.
const PARALLEL_THRESHOLD: usize = 64;
/// Files a copying thread takes at once from the shared queue.
const BATCH: usize = 32;

/// How files were copied into a workspace.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CopyMethod {
    /// Copy-on-write clones (`FICLONE`).
    Reflink,
    /// Byte copies (`copy_file_range` via `std::fs::copy`).
    Copy,
    /// Nothing to copy.
    None,
}

impl std::fmt::Display for CopyMethod {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            CopyMethod::Reflink => "reflink",
            CopyMethod::Copy => "copy",
            CopyMethod::None => "none",
        })
    }
}

/// What making a workspace cost.
#[derive(Debug, Clone)]
pub struct CopyStats {
    /// Regular files copied.
    pub files: usize,
    /// Symlinks recreated.
    pub symlinks: usize,
    /// Bytes in the copied files.
    pub bytes: u64,
    /// How files were copied.
    pub method: CopyMethod,
    /// Threads used.
    pub threads: usize,
    /// Wall time.
    pub elapsed: Duration,
}

/// Why a workspace could not be made.
#[derive(Debug, thiserror::Error)]
pub enum WorkspaceError {
    /// A file-system operation failed.
    #[error("{context} {}", path.display())]
    Io {
        /// What was being done, e.g. `cannot copy`.
        context: &'static str,
        /// On which path.
        path: PathBuf,
        /// Cause.
        #[source]
        source: std::io::Error,
    },
    /// Restoring an artifact failed.
    #[error("cannot restore the artifacts of \"{job}\"")]
    Restore {
        /// The job whose artifacts they were.
        job: String,
        /// Cause.
        #[source]
        source: ArtifactError,
    },
}

fn io<'p>(
    context: &'static str,
    path: &'p Path,
) -> impl FnOnce(std::io::Error) -> WorkspaceError + 'p {
    move |source| WorkspaceError::Io {
        context,
        path: path.to_path_buf(),
        source,
    }
}

/// Makes `dest` a pristine workspace: removes whatever is there, copies `source` in, then
/// restores each manifest's files in order (later wins).
pub fn prepare(
    source: &Source,
    dest: &Path,
    store: &ArtifactStore,
    restores: &[&Manifest],
) -> Result<CopyStats, WorkspaceError> {
    remove(dest)?;
    let stats = materialize(source, dest)?;
    for manifest in restores {
        store
            .restore(manifest, dest)
            .map_err(|source| WorkspaceError::Restore {
                job: manifest.job.clone(),
                source,
            })?;
    }
    Ok(stats)
}

/// Removes a workspace directory and everything in it; a missing directory is fine.
pub fn remove(dir: &Path) -> Result<(), WorkspaceError> {
    match std::fs::remove_dir_all(dir) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(io("cannot remove", dir)(e)),
    }
}

/// Copies every entry of `source` into `dest` (created if missing), preserving modes and
/// symlinks. `dest` should be empty: existing files are not overwritten.
pub fn materialize(source: &Source, dest: &Path) -> Result<CopyStats, WorkspaceError> {
    let threads = if source.entries().len() < PARALLEL_THRESHOLD {
        1
    } else {
        std::thread::available_parallelism()
            .map_or(2, |n| n.get())
            .clamp(2, 4)
    };
    materialize_with(source, dest, threads)
}

/// [`materialize`] with a chosen number of copying threads (for benchmarks).
pub fn materialize_with(
    source: &Source,
    dest: &Path,
    threads: usize,
) -> Result<CopyStats, WorkspaceError> {
    let started = Instant::now();
    std::fs::create_dir_all(dest).map_err(io("cannot create", dest))?;
    make_dirs(source.entries(), dest)?;

    let files: Vec<&Entry> = source
        .entries()
        .iter()
        .filter(|e| !matches!(e.kind, EntryKind::Dir))
        .collect();
    let mut stats = CopyStats {
        files: 0,
        symlinks: 0,
        bytes: 0,
        method: CopyMethod::None,
        threads: 1,
        elapsed: Duration::ZERO,
    };
    // Whether reflinks work is a property of the pair of file systems: probe it once per
    // pair and process (on the first file copied), not once per workspace, because a
    // failed probe costs a file creation and removal, which is most of what a job with a
    // small source pays.
    let devices = device_of(source.root()).zip(device_of(dest));
    let known = devices.and_then(|pair| lock_reflinks().get(&pair).copied());
    let first_file = match known {
        Some(works) => {
            stats.method = if works {
                CopyMethod::Reflink
            } else {
                CopyMethod::Copy
            };
            None
        }
        None => files
            .iter()
            .position(|e| matches!(e.kind, EntryKind::File { .. })),
    };
    if let Some(i) = first_file {
        let entry = files[i];
        let (src, dst) = (source.root().join(&entry.path), dest.join(&entry.path));
        let bytes = match reflink_copy::reflink(&src, &dst) {
            Ok(()) => {
                stats.method = CopyMethod::Reflink;
                set_mode(entry, &dst)?;
                std::fs::metadata(&dst).map_or(0, |m| m.len())
            }
            Err(_) => {
                stats.method = CopyMethod::Copy;
                copy_one(entry, &src, &dst, CopyMethod::Copy)?
            }
        };
        if let Some(pair) = devices {
            lock_reflinks().insert(pair, stats.method == CopyMethod::Reflink);
        }
        stats.files += 1;
        stats.bytes += bytes;
    }
    let rest: Vec<&Entry> = files
        .iter()
        .enumerate()
        .filter(|(i, _)| Some(*i) != first_file)
        .map(|(_, e)| *e)
        .collect();

    let threads = threads.max(1);
    stats.threads = threads;
    let totals = copy_all(&rest, source.root(), dest, stats.method, threads)?;
    stats.files += totals.files;
    stats.symlinks += totals.symlinks;
    stats.bytes += totals.bytes;
    stats.elapsed = started.elapsed();
    Ok(stats)
}

/// Reflink support by (source device, destination device), as probed.
fn lock_reflinks() -> std::sync::MutexGuard<'static, HashMap<(u64, u64), bool>> {
    static REFLINKS: OnceLock<Mutex<HashMap<(u64, u64), bool>>> = OnceLock::new();
    REFLINKS
        .get_or_init(Mutex::default)
        .lock()
        .unwrap_or_else(|p| p.into_inner())
}

fn device_of(path: &Path) -> Option<u64> {
    use std::os::unix::fs::MetadataExt;
    std::fs::metadata(path).ok().map(|m| m.dev())
}

/// Creates every directory the entries need, parents before children.
fn make_dirs(entries: &[Entry], dest: &Path) -> Result<(), WorkspaceError> {
    // Paths order component-wise, so a parent sorts before its children and
    // `create_dir` (not `_all`, which re-checks every ancestor) is enough.
    let mut dirs: BTreeSet<&Path> = BTreeSet::new();
    for entry in entries {
        let dir = match entry.kind {
            EntryKind::Dir => Some(entry.path.as_path()),
            _ => entry.path.parent(),
        };
        for ancestor in dir.into_iter().flat_map(Path::ancestors) {
            // Once an ancestor is known, so are all of its own ancestors.
            if ancestor.as_os_str().is_empty() || !dirs.insert(ancestor) {
                break;
            }
        }
    }
    for dir in dirs {
        let full = dest.join(dir);
        match std::fs::create_dir(&full) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
            Err(e) => return Err(io("cannot create", &full)(e)),
        }
    }
    Ok(())
}

#[derive(Default)]
struct Totals {
    files: usize,
    symlinks: usize,
    bytes: u64,
}

fn copy_all(
    entries: &[&Entry],
    root: &Path,
    dest: &Path,
    method: CopyMethod,
    threads: usize,
) -> Result<Totals, WorkspaceError> {
    if threads <= 1 {
        let mut totals = Totals::default();
        for entry in entries {
            copy_entry(entry, root, dest, method, &mut totals)?;
        }
        return Ok(totals);
    }
    let next = AtomicUsize::new(0);
    let stop = AtomicBool::new(false);
    let first_error: Mutex<Option<WorkspaceError>> = Mutex::new(None);
    let all = Mutex::new(Totals::default());
    std::thread::scope(|scope| {
        for _ in 0..threads {
            scope.spawn(|| {
                let mut totals = Totals::default();
                while !stop.load(Ordering::Relaxed) {
                    let start = next.fetch_add(BATCH, Ordering::Relaxed);
                    if start >= entries.len() {
                        break;
                    }
                    let end = (start + BATCH).min(entries.len());
                    for entry in &entries[start..end] {
                        if let Err(e) = copy_entry(entry, root, dest, method, &mut totals) {
                            stop.store(true, Ordering::Relaxed);
                            let mut slot = first_error.lock().unwrap_or_else(|p| p.into_inner());
                            slot.get_or_insert(e);
                            return;
                        }
                    }
                }
                let mut all = all.lock().unwrap_or_else(|p| p.into_inner());
                all.files += totals.files;
                all.symlinks += totals.symlinks;
                all.bytes += totals.bytes;
            });
        }
    });
    if let Some(e) = first_error.into_inner().unwrap_or_else(|p| p.into_inner()) {
        return Err(e);
    }
    Ok(all.into_inner().unwrap_or_else(|p| p.into_inner()))
}

fn copy_entry(
    entry: &Entry,
    root: &Path,
    dest: &Path,
    method: CopyMethod,
    totals: &mut Totals,
) -> Result<(), WorkspaceError> {
    let dst = dest.join(&entry.path);
    match &entry.kind {
        EntryKind::Symlink { target } => {
            std::os::unix::fs::symlink(target, &dst).map_err(io("cannot create symlink", &dst))?;
            totals.symlinks += 1;
        }
        EntryKind::File { .. } => {
            totals.bytes += copy_one(entry, &root.join(&entry.path), &dst, method)?;
            totals.files += 1;
        }
        EntryKind::Dir => {}
    }
    Ok(())
}

/// Copies one regular file with the chosen method, falling back to a byte copy if a
/// reflink fails (a tree can span file systems), and applies the entry's mode.
fn copy_one(
    entry: &Entry,
    src: &Path,
    dst: &Path,
    method: CopyMethod,
) -> Result<u64, WorkspaceError> {
    if method == CopyMethod::Reflink && reflink_copy::reflink(src, dst).is_ok() {
        set_mode(entry, dst)?;
        return Ok(std::fs::metadata(dst).map_or(0, |m| m.len()));
    }
    // `fs::copy` copies the permission bits of `src`; the entry's recorded mode is what
    // the listing saw, and the two only differ if someone chmod-ed mid-run.
    std::fs::copy(src, dst).map_err(io("cannot copy", src))
}

fn set_mode(entry: &Entry, path: &Path) -> Result<(), WorkspaceError> {
    if let EntryKind::File { mode } = entry.kind {
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))
            .map_err(io("cannot set the mode of", path))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use gantry_test_support::{TempTree, generate_tree};

    #[test]
    fn copies_files_modes_symlinks_and_empty_dirs() {
        let tree = TempTree::new();
        tree.file("a.txt", "a")
            .exec("bin/run.sh", "#!/bin/sh\n")
            .symlink("bin/link", "run.sh")
            .symlink("escape", "/etc")
            .dir("empty/inner");
        let source = Source::from_dir(tree.path()).expect("list");
        let dest = TempTree::new();
        let ws = dest.join("ws");
        let stats = materialize(&source, &ws).expect("materialize");
        assert_eq!((stats.files, stats.symlinks), (2, 2));
        let mode = |p: &str| {
            std::fs::metadata(ws.join(p))
                .expect("stat")
                .permissions()
                .mode()
                & 0o777
        };
        assert_eq!(mode("bin/run.sh"), 0o755);
        assert_eq!(mode("a.txt"), 0o644);
        assert_eq!(
            std::fs::read_link(ws.join("escape")).expect("link"),
            Path::new("/etc")
        );
        assert!(ws.join("empty/inner").is_dir());
    }

    #[test]
    fn copies_are_not_shared_with_the_source() {
        let tree = TempTree::new();
        tree.file("data.txt", "original");
        let source = Source::from_dir(tree.path()).expect("list");
        let dest = TempTree::new();
        materialize(&source, &dest.join("ws")).expect("materialize");
        // Editing in place (same inode) must not reach the source: no hard links.
        std::fs::write(dest.join("ws/data.txt"), "changed").expect("write");
        assert_eq!(tree.read("data.txt"), "original");
    }

    #[test]
    fn big_trees_are_copied_in_parallel_and_completely() {
        let tree = TempTree::new();
        let paths = generate_tree(tree.path(), 500);
        let source = Source::from_dir(tree.path()).expect("list");
        let dest = TempTree::new();
        let stats = materialize(&source, &dest.join("ws")).expect("materialize");
        assert_eq!(stats.files, 500);
        assert!(stats.threads > 1);
        assert_ne!(stats.method, CopyMethod::None);
        for p in &paths {
            assert_eq!(
                std::fs::read(dest.join("ws").join(p)).expect("copied"),
                std::fs::read(tree.join(p)).expect("source"),
                "{p}"
            );
        }
        let exec = std::fs::metadata(dest.join("ws").join(&paths[50])).expect("stat");
        assert_eq!(exec.permissions().mode() & 0o777, 0o755);
    }

    #[test]
    fn prepare_starts_from_scratch() {
        let tree = TempTree::new();
        tree.file("a", "a");
        let source = Source::from_dir(tree.path()).expect("list");
        let run = TempTree::new();
        let store = ArtifactStore::new(run.join("artifacts"));
        let ws = run.join("work/job");
        prepare(&source, &ws, &store, &[]).expect("first");
        std::fs::write(ws.join("scratch"), "left over").expect("write");
        prepare(&source, &ws, &store, &[]).expect("second");
        assert!(!ws.join("scratch").exists());
        assert!(ws.join("a").exists());
    }
}
