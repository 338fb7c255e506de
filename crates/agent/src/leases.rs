//! A record of the leases an executor holds, one empty file per lease under
//! `work_dir/leases/` (named by the lease id in hex, so that any id makes a safe file
//! name), so that the next run of a killed executor knows which leases it left behind.
//!
//! A lease's record is made before its job starts and removed when the job is over: it
//! reported, the server took the lease back, or it was dropped. A job the executor
//! gives up by stopping (its lease is left to expire, so that the server runs the job
//! again) keeps its record, and so does every job of an executor that is killed. The
//! next run reads them ([`earlier_leases`]) before it starts leasing, and tells the
//! server, which then expires those leases at once instead of waiting out their time to
//! live (`gantry agent` does this in its hello). [`crate::Executor::run`] clears the
//! records it finds at start.
//!
//! Recording is best effort: a record that cannot be written costs only that early
//! expiry, never the job.

use std::path::{Path, PathBuf};

use gantry_protocol::LeaseId;

/// The records of one executor's work directory.
#[derive(Debug, Clone)]
pub(crate) struct LeaseRecords {
    dir: PathBuf,
}

impl LeaseRecords {
    /// The records under `work_dir/leases`.
    pub(crate) fn new(work_dir: &Path) -> LeaseRecords {
        LeaseRecords {
            dir: records_dir(work_dir),
        }
    }

    /// Removes every record (of an earlier run) and makes the directory.
    pub(crate) fn reset(&self) -> std::io::Result<()> {
        match std::fs::remove_dir_all(&self.dir) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(e),
        }
        std::fs::create_dir_all(&self.dir)
    }

    /// Records that `lease` is held.
    pub(crate) fn hold(&self, lease: &LeaseId) {
        let _ = std::fs::File::create(self.dir.join(encode(&lease.0)));
    }

    /// `lease` is over: forgets it.
    pub(crate) fn release(&self, lease: &LeaseId) {
        let _ = std::fs::remove_file(self.dir.join(encode(&lease.0)));
    }
}

fn records_dir(work_dir: &Path) -> PathBuf {
    work_dir.join("leases")
}

/// The leases an earlier run of the executor with this work directory still held when
/// it ended (killed, or stopped while jobs ran), as its records say. Read them before
/// [`crate::Executor::run`] starts, which clears them. Records that are not lease ids
/// are skipped; a missing directory is none.
pub fn earlier_leases(work_dir: &Path) -> Vec<LeaseId> {
    let Ok(entries) = std::fs::read_dir(records_dir(work_dir)) else {
        return Vec::new();
    };
    let mut leases: Vec<LeaseId> = entries
        .flatten()
        .filter_map(|e| decode(e.file_name().to_str()?))
        .map(LeaseId)
        .collect();
    leases.sort();
    leases
}

fn encode(id: &str) -> String {
    hex::encode(id.as_bytes())
}

fn decode(name: &str) -> Option<String> {
    let bytes = hex::decode(name).ok()?;
    String::from_utf8(bytes).ok().filter(|s| !s.is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_survive_for_the_next_run() {
        let dir = tempfile::tempdir().expect("tempdir");
        assert_eq!(earlier_leases(dir.path()), []);
        let records = LeaseRecords::new(dir.path());
        records.reset().expect("reset");
        for id in ["9f86d081884c7d65", "a/b c", "ü"] {
            records.hold(&LeaseId(id.into()));
        }
        records.release(&LeaseId("a/b c".into()));
        std::fs::write(dir.path().join("leases/not-hex"), "").expect("write");
        assert_eq!(
            earlier_leases(dir.path()),
            [LeaseId("9f86d081884c7d65".into()), LeaseId("ü".into())]
        );
        records.reset().expect("reset");
        assert_eq!(earlier_leases(dir.path()), []);
    }
}
