//! `cargo xtask tidy`: checks that keep the codebase's shape, run both by the command and by
//! `xtask/tests/tidy.rs` (so the normal test suite enforces them).
//!
//! Every check only reads files (and `cargo metadata`), and reports *all* offenders at
//! once, each message naming the file or crate, what is wrong and the rule it breaks.

mod architecture_md;
mod benches;
mod deps;
mod lints;
mod module_docs;
mod purity;

use std::path::Path;

use anyhow::Result;

use crate::metadata::Workspace;

pub use architecture_md::check_architecture_md;
pub use benches::check_benches_listed;
pub use deps::{Allowed, CRATE_RULES, CrateRule, LINK_RULES, LinkRule, check_dependency_graph};
pub use lints::{check_workspace_lints, inherits_workspace_lints};
pub use module_docs::{check_module_docs, checked_files, has_module_doc};
pub use purity::{PURE_CRATES, PureCrate, check_purity, forbidden_uses};

/// What one check found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// Nothing to report.
    Ok,
    /// The check could not apply yet; the text says why (e.g. a file not written yet).
    Skipped(String),
    /// One message per offender.
    Failed(Vec<String>),
}

impl Verdict {
    /// `Failed` if there are problems, else `Ok`.
    pub fn from_problems(problems: Vec<String>) -> Self {
        if problems.is_empty() {
            Self::Ok
        } else {
            Self::Failed(problems)
        }
    }
}

/// One named check over the workspace.
pub struct Check {
    /// Short name shown in the report.
    pub name: &'static str,
    /// Runs the check.
    pub run: fn(&Workspace) -> Verdict,
}

/// All tidy checks, in report order.
pub const CHECKS: &[Check] = &[
    Check {
        name: "crate dependency direction",
        run: check_dependency_graph,
    },
    Check {
        name: "pure crates do no IO",
        run: check_purity,
    },
    Check {
        name: "module docs",
        run: check_module_docs,
    },
    Check {
        name: "crates in ARCHITECTURE.md",
        run: check_architecture_md,
    },
    Check {
        name: "[lints] workspace = true",
        run: check_workspace_lints,
    },
    Check {
        name: "benches run by cargo xtask bench",
        run: check_benches_listed,
    },
];

/// Runs every check over the workspace at `root`; returns each check's name and verdict.
pub fn run_all(root: &Path) -> Result<Vec<(&'static str, Verdict)>> {
    let ws = Workspace::load(root)?;
    Ok(CHECKS.iter().map(|c| (c.name, (c.run)(&ws))).collect())
}
