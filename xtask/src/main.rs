//! `cargo xtask`: gantry's project tasks.

fn main() {}
