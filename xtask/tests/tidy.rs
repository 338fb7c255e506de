//! The tidy checks of `cargo xtask tidy`, run over the real workspace as part of the normal
//! test suite, so `cargo xtask test` (and CI) fail when the codebase loses its shape.
//! They only read files and `cargo metadata`.

use std::path::Path;

use xtask::metadata::{Workspace, workspace_root};
use xtask::tidy::{self, Verdict};

fn workspace() -> Workspace {
    Workspace::load(&workspace_root()).expect("`cargo metadata` works on the workspace")
}

/// Fails with every problem of the check, one per line.
fn check(name: &str, verdict: Verdict) {
    match verdict {
        Verdict::Ok => {}
        Verdict::Skipped(why) => {
            #[expect(
                clippy::print_stderr,
                reason = "tell the reader why nothing was checked"
            )]
            {
                eprintln!("tidy: {name}: skipped: {why}");
            }
        }
        Verdict::Failed(problems) => panic!("tidy: {name}:\n{}", problems.join("\n")),
    }
}

#[test]
fn crate_dependency_direction() {
    check(
        "crate dependency direction",
        tidy::check_dependency_graph(&workspace()),
    );
}

#[test]
fn pure_crates_do_no_io() {
    check("pure crates do no IO", tidy::check_purity(&workspace()));
}

#[test]
fn every_file_has_a_module_doc() {
    check("module docs", tidy::check_module_docs(&workspace()));
}

#[test]
fn every_crate_is_in_architecture_md() {
    check(
        "crates in ARCHITECTURE.md",
        tidy::check_architecture_md(&workspace()),
    );
}

#[test]
fn every_member_uses_the_workspace_lints() {
    check(
        "[lints] workspace = true",
        tidy::check_workspace_lints(&workspace()),
    );
}

#[test]
fn the_workspace_has_the_crates_the_rules_name() {
    // Guards the checks themselves: a tidy run that found no crates would pass vacuously.
    let ws = workspace();
    for name in [
        "gantry-pipeline",
        "gantry-backend",
        "gantry-engine",
        "gantry",
        "xtask",
    ] {
        assert!(ws.is_member(name), "`{name}` is not a workspace member");
    }
    assert!(Path::new(&ws.root).join("Cargo.toml").is_file());
    let files = tidy::checked_files(&ws.root);
    for must in [
        "xtask/src/lib.rs",
        "xtask/tests/tidy.rs",
        "crates/pipeline/src/lib.rs",
    ] {
        assert!(
            files.contains(&ws.root.join(must)),
            "the module-doc check skips {must}"
        );
    }
}
