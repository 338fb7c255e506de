//! Every package with benches is in [`crate::bench::PACKAGES`], or `cargo xtask bench`
//! silently leaves its figures out of docs/benchmarks.md.

use crate::bench::PACKAGES;
use crate::metadata::Workspace;

use super::Verdict;

/// Tidy check over the real workspace.
pub fn check_benches_listed(ws: &Workspace) -> Verdict {
    let problems = ws
        .members
        .iter()
        .filter(|m| !m.benches().is_empty() && !PACKAGES.contains(&m.name.as_str()))
        .map(|m| {
            format!(
                "`{}` has benches ({}) that `cargo xtask bench` does not run: add it to \
                 `PACKAGES` in xtask/src/bench.rs",
                m.name,
                m.benches().join(", ")
            )
        })
        .collect();
    Verdict::from_problems(problems)
}
