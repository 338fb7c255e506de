//! Keeping the long-running processes (`gantry serve`, `gantry agent`) small while idle.
//!
//! glibc's malloc gives each thread that allocates its own arena (up to eight per core)
//! and keeps memory freed inside an arena for reuse instead of returning it to the
//! system. After a burst of work (an agent running hundreds of jobs, a server draining a
//! queue) the process therefore stays at its peak resident size although almost all of
//! that heap is free. Two measures, both measured in docs/benchmarks.md:
//!
//! - [`limit_arenas`] caps the arenas at a few: tokio's worker and blocking threads then
//!   share them, so freed memory is in fewer places (and more of it is reused);
//! - [`trim_while_idle`] hands free heap back with `malloc_trim` once the process has
//!   had a quiet moment, and only when there is a worthwhile amount to hand back.
//!
//! Both are calls into the C library and need `unsafe`, which the workspace denies; it is
//! allowed in this module only. Neither call has preconditions: `mallopt` and
//! `malloc_trim` are thread-safe and take plain integers, and `mallinfo2` only reads
//! counters. On other C libraries both functions do nothing.
#![allow(unsafe_code)]

use std::time::Duration;

/// Arenas allowed. Two runtime workers on the machines gantry targets, plus blocking
/// threads that mostly wait on the file system or child processes.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
const ARENAS: i32 = 2;

/// How often an idle process looks for free heap to return.
const EVERY: Duration = Duration::from_secs(2);

/// Free heap worth a `malloc_trim`, in bytes: below this the call is not worth its
/// locking of every arena.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
const WORTH_TRIMMING: usize = 512 * 1024;

/// Caps glibc's malloc arenas. Call before the async runtime starts its threads.
pub fn limit_arenas() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: mallopt takes two integers and is safe to call at any time; a refused
    // setting (return 0) leaves malloc as it was, which is harmless.
    unsafe {
        libc::mallopt(libc::M_ARENA_MAX, ARENAS);
    }
}

/// Returns free heap to the system every few seconds when there is enough of it. Runs
/// until the process ends; spawn it on the runtime.
pub async fn trim_while_idle() {
    loop {
        tokio::time::sleep(EVERY).await;
        // Off the runtime's threads: trimming locks each arena in turn.
        let _ = tokio::task::spawn_blocking(trim).await;
    }
}

/// One look: trims when the arenas hold enough free memory.
fn trim() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: mallinfo2 only reads malloc's counters into a struct it returns by value;
    // malloc_trim takes an integer and is thread-safe.
    unsafe {
        let info = libc::mallinfo2();
        if info.fordblks >= WORTH_TRIMMING {
            libc::malloc_trim(0);
        }
    }
}
