//! `.gantry/runs/<n>/`: numbering runs, creating their directories without races, and
//! pruning old ones.
//!
//! A run directory holds `logs/<job>.log`, the engine's artifacts and `summary.json`.
//! Numbers come from `mkdir`, which is atomic: two runs started at the same moment get
//! different numbers. While a run is in progress its directory holds a `.running` file
//! with the process id, so a concurrent run's pruning leaves it alone.

use std::io;
use std::path::{Path, PathBuf};

use anyhow::Context as _;

/// The run directory's marker of a run in progress.
const RUNNING_MARKER: &str = ".running";

/// A run's directory, created and numbered.
#[derive(Debug)]
pub struct RunDir {
    /// The run number (1, 2, …).
    pub number: u64,
    /// `<root>/.gantry/runs/<number>`.
    pub path: PathBuf,
}

/// `<root>/.gantry/runs`.
pub fn runs_root(root: &Path) -> PathBuf {
    root.join(".gantry").join("runs")
}

/// The number the next run will most likely get (used to plan before creating anything).
pub fn predict_next(runs: &Path) -> u64 {
    existing(runs).into_iter().max().unwrap_or(0) + 1
}

/// Run numbers present under `runs`.
fn existing(runs: &Path) -> Vec<u64> {
    let Ok(entries) = std::fs::read_dir(runs) else {
        return Vec::new();
    };
    entries
        .filter_map(Result::ok)
        .filter_map(|e| e.file_name().to_str()?.parse::<u64>().ok())
        .collect()
}

impl RunDir {
    /// Creates the next numbered run directory (and `logs/`), marked as running.
    pub fn create(runs: &Path) -> anyhow::Result<RunDir> {
        std::fs::create_dir_all(runs)
            .with_context(|| format!("cannot create {}", runs.display()))?;
        let mut number = predict_next(runs);
        loop {
            let path = runs.join(number.to_string());
            match std::fs::create_dir(&path) {
                Ok(()) => {
                    std::fs::create_dir(path.join("logs"))
                        .with_context(|| format!("cannot create {}/logs", path.display()))?;
                    std::fs::write(path.join(RUNNING_MARKER), std::process::id().to_string())
                        .with_context(|| format!("cannot write in {}", path.display()))?;
                    return Ok(RunDir { number, path });
                }
                // Another run took this number between our listing and our mkdir.
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists => number += 1,
                Err(e) => {
                    return Err(e).with_context(|| format!("cannot create {}", path.display()));
                }
            }
        }
    }

    /// Marks the run as finished (prunable).
    pub fn finish(&self) {
        let _ = std::fs::remove_file(self.path.join(RUNNING_MARKER));
    }
}

/// Deletes all but the newest `keep` run directories (`keep == 0` keeps all). Runs still
/// in progress (a live process holds their marker) and `current` are never deleted.
/// Returns the numbers deleted.
pub fn prune(runs: &Path, keep: usize, current: u64) -> Vec<u64> {
    if keep == 0 {
        return Vec::new();
    }
    let mut numbers = existing(runs);
    numbers.sort_unstable_by(|a, b| b.cmp(a));
    let mut deleted = Vec::new();
    for n in numbers.into_iter().skip(keep) {
        let path = runs.join(n.to_string());
        if n == current || in_progress(&path) {
            continue;
        }
        if std::fs::remove_dir_all(&path).is_ok() {
            deleted.push(n);
        }
    }
    deleted
}

/// True when the directory's marker names a live process.
fn in_progress(path: &Path) -> bool {
    let Ok(pid) = std::fs::read_to_string(path.join(RUNNING_MARKER)) else {
        return false;
    };
    match pid.trim().parse::<i32>() {
        Ok(pid) => Path::new("/proc").join(pid.to_string()).exists() || !cfg!(target_os = "linux"),
        Err(_) => false,
    }
}

/// A run id unique across machines and time: UTC timestamp plus random hex,
/// e.g. `20260412T101502Z-3f9a1c`.
pub fn new_run_id() -> String {
    use std::hash::{BuildHasher, Hasher};
    let now = time::OffsetDateTime::now_utc();
    // RandomState is seeded from the OS per process; mixing in the pid and the
    // nanoseconds keeps ids distinct for runs started in the same second.
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u32(std::process::id());
    h.write_u32(now.nanosecond());
    let random = h.finish() & 0xff_ffff;
    format!(
        "{:04}{:02}{:02}T{:02}{:02}{:02}Z-{random:06x}",
        now.year(),
        u8::from(now.month()),
        now.day(),
        now.hour(),
        now.minute(),
        now.second()
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_increase_and_skip_taken() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let runs = runs_root(tmp.path());
        let a = RunDir::create(&runs).expect("create");
        let b = RunDir::create(&runs).expect("create");
        assert_eq!((a.number, b.number), (1, 2));
        assert!(a.path.join("logs").is_dir());
        std::fs::create_dir(runs.join("7")).expect("mkdir");
        std::fs::create_dir(runs.join("not-a-run")).expect("mkdir");
        assert_eq!(RunDir::create(&runs).expect("create").number, 8);
    }

    #[test]
    fn concurrent_creates_get_distinct_numbers() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let runs = runs_root(tmp.path());
        let handles: Vec<_> = (0..8)
            .map(|_| {
                let runs = runs.clone();
                std::thread::spawn(move || RunDir::create(&runs).expect("create").number)
            })
            .collect();
        let mut got: Vec<u64> = handles
            .into_iter()
            .map(|h| h.join().expect("join"))
            .collect();
        got.sort_unstable();
        assert_eq!(got, (1..=8).collect::<Vec<_>>());
    }

    #[test]
    fn prune_keeps_newest_current_and_running() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let runs = runs_root(tmp.path());
        let dirs: Vec<RunDir> = (0..6)
            .map(|_| RunDir::create(&runs).expect("create"))
            .collect();
        for d in &dirs {
            d.finish();
        }
        // Run 2 is "still running" in this very process.
        std::fs::write(
            dirs[1].path.join(RUNNING_MARKER),
            std::process::id().to_string(),
        )
        .expect("write");
        // Run 3's marker names a dead process: prunable.
        std::fs::write(dirs[2].path.join(RUNNING_MARKER), "999999999").expect("write");
        let mut deleted = prune(&runs, 2, 1);
        deleted.sort_unstable();
        assert_eq!(deleted, [3, 4]);
        let mut left = existing(&runs);
        left.sort_unstable();
        assert_eq!(left, [1, 2, 5, 6]);
        assert!(prune(&runs, 0, 1).is_empty());
    }

    #[test]
    fn run_ids_differ() {
        let a = new_run_id();
        let b = new_run_id();
        assert_ne!(a, b);
        assert_eq!(a.len(), "20260412T101502Z-3f9a1c".len(), "{a}");
    }
}
