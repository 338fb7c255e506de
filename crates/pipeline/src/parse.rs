//! The entry points: pipeline file text → a validated [`Spec`].
//!
//! The CLI finds and reads the file; this crate only ever sees its path (for messages and
//! the default pipeline name) and its text.

use std::path::Path;
use std::sync::Arc;

use crate::decode::Decoder;
use crate::diagnostic::{Diagnostics, Source};
use crate::spec::Spec;
use crate::validate::Validator;
use crate::yaml;

/// The names a pipeline file may have at the root of a repository, in the order they are
/// looked for.
pub const PIPELINE_FILE_NAMES: &[&str] = &["gantry.yml", ".gantry.yml"];

/// The pipeline name used when the file sets no `name:`: the name of the directory that
/// holds a `gantry.yml`/`.gantry.yml` (the repository), else the file's stem
/// (`.gantry/deploy.yml` → `deploy`). Pure string handling: the path is not touched.
pub fn default_pipeline_name(path: &str) -> String {
    let p = Path::new(path);
    let file = p.file_name().and_then(|f| f.to_str()).unwrap_or("");
    if PIPELINE_FILE_NAMES.contains(&file) {
        let dir = p
            .parent()
            .and_then(|d| d.file_name())
            .and_then(|d| d.to_str())
            .filter(|d| !d.is_empty() && *d != "." && *d != "..");
        return dir.unwrap_or("gantry").to_string();
    }
    let stem = p
        .file_stem()
        .and_then(|s| s.to_str())
        .unwrap_or("")
        .trim_start_matches('.');
    if stem.is_empty() {
        "gantry".to_string()
    } else {
        stem.to_string()
    }
}

/// Parses and validates a pipeline file. `path` is how diagnostics name the file and
/// gives the default pipeline name (see [`default_pipeline_name`]).
pub fn parse(path: &str, text: &str) -> Result<Spec, Diagnostics> {
    parse_named(path, &default_pipeline_name(path), text)
}

/// Like [`parse`], with the default pipeline name given (the CLI knows the repository's
/// real directory name even when the path is relative, like `gantry.yml`).
pub fn parse_named(path: &str, default_name: &str, text: &str) -> Result<Spec, Diagnostics> {
    let source = Arc::new(Source::new(path, text));
    let root = yaml::load(&source).map_err(|d| Diagnostics::from(*d))?;
    let mut decoder = Decoder::new(&source);
    let spec = decoder.spec(root.as_ref(), default_name, source.clone());
    let mut diags = decoder.diags;
    let mut validator = Validator::new(&source);
    validator.validate(&spec);
    diags.append(&mut validator.diags);
    Diagnostics::from(diags).into_result(spec)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_names() {
        let cases = [
            ("gantry.yml", "gantry"),
            ("./gantry.yml", "gantry"),
            ("repo/gantry.yml", "repo"),
            ("/home/u/go-auth/.gantry.yml", "go-auth"),
            (".gantry/deploy.yml", "deploy"),
            ("ci/nightly.yaml", "nightly"),
            ("../gantry.yml", "gantry"),
        ];
        for (path, expect) in cases {
            assert_eq!(default_pipeline_name(path), expect, "{path}");
        }
    }
}
