//! Who owns a Docker resource, and whether that owner is still alive.
//!
//! Every resource carries the owning gantry process as `pid@starttime` (the start time
//! from `/proc/<pid>/stat`, in clock ticks since boot) plus the machine's boot id. A pid
//! alone is not enough: after gantry dies its pid can be reused by any other process, and
//! the start time tells the two apart. A resource from an earlier boot belongs to a dead
//! process by definition. This works because the Docker daemon gantry uses is on the same
//! machine (the job's workspace is bind-mounted, which a remote daemon could not do).

use std::fs;

/// The identity of one process: what the owner labels hold.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Owner {
    pub pid: u32,
    /// Field 22 of `/proc/<pid>/stat`.
    pub start: u64,
    /// `/proc/sys/kernel/random/boot_id`.
    pub boot: String,
}

impl Owner {
    /// This process.
    pub(crate) fn current() -> Owner {
        let pid = std::process::id();
        Owner {
            pid,
            start: start_time(pid).unwrap_or(0),
            boot: boot_id(),
        }
    }

    /// The value of the owner label: `pid@start`.
    pub(crate) fn label(&self) -> String {
        format!("{}@{}", self.pid, self.start)
    }
}

/// What a sweeper concludes from a resource's owner labels.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Verdict {
    /// The owning process is running: leave the resource alone.
    Alive,
    /// The owner is gone: the resource is a leftover.
    Dead,
    /// No readable owner label: not gantry's to judge (kept).
    Unknown,
}

/// Judges a resource by its owner label (`pid@start`) and boot label, from the point of view
/// of a process on boot `my_boot`; `alive(pid, start)` checks a process of this boot.
pub(crate) fn judge(
    owner: Option<&str>,
    boot: Option<&str>,
    my_boot: &str,
    alive: impl Fn(u32, u64) -> bool,
) -> Verdict {
    let Some((pid, start)) = owner.and_then(parse_label) else {
        return Verdict::Unknown;
    };
    if boot.is_some_and(|b| b != my_boot) {
        return Verdict::Dead;
    }
    if alive(pid, start) {
        Verdict::Alive
    } else {
        Verdict::Dead
    }
}

/// `pid@start` → (pid, start).
pub(crate) fn parse_label(value: &str) -> Option<(u32, u64)> {
    let (pid, start) = value.split_once('@')?;
    Some((pid.parse().ok()?, start.parse().ok()?))
}

/// Whether process `pid` exists and started at `start` (so it is the same process).
pub(crate) fn is_alive(pid: u32, start: u64) -> bool {
    start_time(pid) == Some(start)
}

/// Field 22 (`starttime`) of `/proc/<pid>/stat`.
fn start_time(pid: u32) -> Option<u64> {
    let stat = fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    parse_start_time(&stat)
}

/// The command name (field 2) is in parentheses and may itself contain spaces and `)`, so
/// fields are counted from the last `)`: the next one is field 3.
fn parse_start_time(stat: &str) -> Option<u64> {
    let after = &stat[stat.rfind(')')? + 1..];
    after.split_whitespace().nth(22 - 3)?.parse().ok()
}

fn boot_id() -> String {
    fs::read_to_string("/proc/sys/kernel/random/boot_id")
        .map(|s| s.trim().to_owned())
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn start_time_is_field_22() {
        let stat = "1234 (my (odd) prog) S 1 1234 1234 0 -1 4194560 100 0 0 0 5 3 0 0 20 0 1 0 \
                    987654 1000000 200 18446744073709551615";
        assert_eq!(parse_start_time(stat), Some(987_654));
        assert_eq!(parse_start_time("garbage"), None);
        let me = Owner::current();
        assert!(me.start > 0, "this process has a start time");
        assert!(is_alive(me.pid, me.start));
        assert!(
            !is_alive(me.pid, me.start + 1),
            "same pid, other start: another process"
        );
    }

    #[test]
    fn verdicts() {
        let alive = |pid: u32, start: u64| pid == 10 && start == 5;
        for (owner, boot, expect) in [
            (Some("10@5"), Some("b1"), Verdict::Alive),
            (Some("10@5"), None, Verdict::Alive),
            (Some("10@6"), Some("b1"), Verdict::Dead),
            (Some("11@5"), Some("b1"), Verdict::Dead),
            (Some("10@5"), Some("b0"), Verdict::Dead),
            (Some("x@5"), Some("b1"), Verdict::Unknown),
            (None, Some("b1"), Verdict::Unknown),
        ] {
            assert_eq!(
                judge(owner, boot, "b1", alive),
                expect,
                "{owner:?} {boot:?}"
            );
        }
    }
}
