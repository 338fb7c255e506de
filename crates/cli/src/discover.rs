//! Finding and reading the pipeline file: `DIR/gantry.yml`, else `DIR/.gantry.yml`.

use std::path::{Path, PathBuf};

// The names looked for, in order of preference, as the pipeline crate defines them.
use gantry_pipeline::PIPELINE_FILE_NAMES as FILE_NAMES;

use crate::error::CliError;

/// The pipeline file of `dir`, or an error that says where and what was looked for.
pub fn find_pipeline(dir: &Path) -> Result<PathBuf, CliError> {
    if !dir.is_dir() {
        return Err(CliError::invalid(format!(
            "error: {} is not a directory",
            dir.display()
        )));
    }
    for name in FILE_NAMES.iter() {
        let path = dir.join(name);
        if path.is_file() {
            return Ok(path);
        }
    }
    let shown = std::path::absolute(dir).unwrap_or_else(|_| dir.to_path_buf());
    let mut msg = format!(
        "error: no pipeline file in {}\n  looked for: {}\n",
        shown.display(),
        FILE_NAMES.join(", ")
    );
    // Pipelines may also live in `.gantry/*.yml`; point at them rather than leave the
    // user guessing.
    let others = other_pipelines(dir);
    if others.is_empty() {
        msg.push_str(
            "  help: create gantry.yml there (see `gantry run --help`), or name a file with \
             --file; `gantry lint FILE` checks one\n",
        );
    } else {
        msg.push_str("  help: pick one of these with --file:\n");
        for p in others {
            msg.push_str(&format!("    {}\n", p.display()));
        }
    }
    Err(CliError::Invalid(msg))
}

/// `DIR/.gantry/*.yml`, sorted.
fn other_pipelines(dir: &Path) -> Vec<PathBuf> {
    let Ok(entries) = std::fs::read_dir(dir.join(".gantry")) else {
        return Vec::new();
    };
    let mut found: Vec<PathBuf> = entries
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| p.is_file() && p.extension().is_some_and(|e| e == "yml" || e == "yaml"))
        .collect();
    found.sort();
    found
}

/// The file to use: `explicit` if given, else the one found in `dir`.
pub fn resolve(explicit: Option<&Path>, dir: &Path) -> Result<PathBuf, CliError> {
    match explicit {
        Some(path) if path.is_file() => Ok(path.to_path_buf()),
        Some(path) if path.is_dir() => find_pipeline(path),
        Some(path) => Err(CliError::invalid(format!(
            "error: pipeline file {} does not exist",
            path.display()
        ))),
        None => find_pipeline(dir),
    }
}

/// Reads a pipeline file as UTF-8 text.
pub fn read(path: &Path) -> Result<String, CliError> {
    let bytes = std::fs::read(path)
        .map_err(|e| CliError::invalid(format!("error: cannot read {}: {e}", path.display())))?;
    String::from_utf8(bytes).map_err(|e| {
        CliError::invalid(format!(
            "error: {} is not UTF-8 text (invalid byte at offset {})",
            path.display(),
            e.utf8_error().valid_up_to()
        ))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prefers_gantry_yml_then_dot_file() {
        let dir = tempfile::tempdir().expect("tempdir");
        let err = find_pipeline(dir.path()).expect_err("empty dir");
        let msg = err.to_string();
        assert!(msg.contains("looked for: gantry.yml, .gantry.yml"), "{msg}");
        assert!(msg.contains(&dir.path().display().to_string()), "{msg}");

        std::fs::write(dir.path().join(".gantry.yml"), "x").expect("write");
        assert_eq!(
            find_pipeline(dir.path()).expect("found"),
            dir.path().join(".gantry.yml")
        );
        std::fs::write(dir.path().join("gantry.yml"), "x").expect("write");
        assert_eq!(
            find_pipeline(dir.path()).expect("found"),
            dir.path().join("gantry.yml")
        );
    }

    #[test]
    fn suggests_pipelines_under_dot_gantry() {
        let dir = tempfile::tempdir().expect("tempdir");
        std::fs::create_dir(dir.path().join(".gantry")).expect("mkdir");
        std::fs::write(dir.path().join(".gantry/ci.yml"), "x").expect("write");
        let msg = find_pipeline(dir.path())
            .expect_err("none at root")
            .to_string();
        assert!(msg.contains("ci.yml"), "{msg}");
    }

    #[test]
    fn explicit_file_must_exist_and_be_text() {
        let dir = tempfile::tempdir().expect("tempdir");
        let missing = dir.path().join("nope.yml");
        let msg = resolve(Some(&missing), dir.path())
            .expect_err("missing")
            .to_string();
        assert!(msg.contains("does not exist"), "{msg}");
        let bin = dir.path().join("bin.yml");
        std::fs::write(&bin, [0xff, 0xfe, 0x00]).expect("write");
        let msg = read(&bin).expect_err("binary").to_string();
        assert!(msg.contains("not UTF-8"), "{msg}");
    }
}
