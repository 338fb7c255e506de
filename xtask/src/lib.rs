//! `cargo xtask`: gantry's project tasks, as a library so that `tests/tidy.rs` runs the same
//! checks as `cargo xtask tidy`.
//!
//! - [`tidy`]: architecture and hygiene checks (dependency direction, module docs, lints).
//! - [`test_cmd`]: `cargo xtask test`, THE test command: installs what the tests need, then
//!   runs the whole suite with nextest.
//! - [`images`]: `cargo xtask images`: builds the test images (Debian base by debootstrap).
//! - [`bench`]: `cargo xtask bench [--record]`: runs the benches, records docs/benchmarks.md.

pub mod bench;
pub mod images;
pub mod metadata;
pub mod postgres;
pub mod process;
pub mod requirements;
pub mod test_cmd;
pub mod tidy;
