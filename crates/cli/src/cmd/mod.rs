//! The subcommands, one file each, and what they share: loading a pipeline file.
//!
//! `run`, `lint`, `graph`, `gc` and `cache` work on this machine; `serve` and `token` run
//! or manage a server here; `agent` runs a server's jobs here; `repo`, `runs`, `trigger`, `logs`,
//! `cancel`, `rerun`, `agent-token`, `agents` and `user` are clients of a server's REST
//! API (see [`crate::api`]).

pub mod agent;
pub mod agent_token;
pub mod cache;
pub mod cancel;
pub mod gc;
pub mod graph;
pub mod lint;
pub mod logs;
pub mod repo;
pub mod repo_caches;
pub mod rerun;
pub mod run;
pub mod runs;
pub mod serve;
pub mod token;
pub mod trigger;
pub mod user;

use std::collections::BTreeMap;
use std::path::Path;

use gantry_pipeline::{Diagnostics, Spec};

use crate::discover;
use crate::error::CliError;
use crate::paint::{self, Paint};

/// A path as the user would type it: `./gantry.yml` → `gantry.yml`.
pub fn shown(path: &Path) -> String {
    let s = path.display().to_string();
    s.strip_prefix("./").map(str::to_owned).unwrap_or(s)
}

/// Reads and parses a pipeline file; diagnostics become an exit-2 error.
pub fn load(path: &Path, paint: Paint) -> Result<Spec, CliError> {
    let text = discover::read(path)?;
    parse(path, &text).map_err(|d| invalid_pipeline(&d, paint))
}

/// Parses pipeline text read from `path`. Diagnostics name the file as the user did;
/// the default pipeline name comes from the real directory, which a relative path like
/// `gantry.yml` does not show.
pub fn parse(path: &Path, text: &str) -> Result<Spec, Diagnostics> {
    let real = std::fs::canonicalize(path).unwrap_or_else(|_| path.to_path_buf());
    let default_name = gantry_pipeline::default_pipeline_name(&real.to_string_lossy());
    gantry_pipeline::parse_named(&shown(path), &default_name, text)
}

/// Diagnostics as a user-facing error.
pub fn invalid_pipeline(diagnostics: &Diagnostics, paint: Paint) -> CliError {
    CliError::Invalid(paint::diagnostics(&diagnostics.to_string(), paint))
}

/// Rejects `--param` names the pipeline does not declare, with the declared ones and a
/// suggestion. (Types are checked by planning, which knows them.)
pub fn check_declared<'a>(
    declared: impl IntoIterator<Item = &'a str>,
    given: &BTreeMap<String, String>,
) -> Result<(), CliError> {
    let declared: Vec<&str> = declared.into_iter().collect();
    for name in given.keys() {
        if declared.contains(&name.as_str()) {
            continue;
        }
        let mut msg =
            format!("error: --param {name}: the pipeline declares no parameter \"{name}\"");
        if let Some(best) = did_you_mean(name, declared.iter().copied()) {
            msg.push_str(&format!("\n  help: did you mean \"{best}\"?"));
        }
        if declared.is_empty() {
            msg.push_str("\n  note: it declares no parameters; add them under `params:`");
        } else {
            msg.push_str(&format!(
                "\n  note: declared parameters: {}",
                declared.join(", ")
            ));
        }
        return Err(CliError::Invalid(msg));
    }
    Ok(())
}

/// The candidate closest to `given`, if one is close enough to be a likely typo.
pub fn did_you_mean<'a>(
    given: &str,
    candidates: impl IntoIterator<Item = &'a str>,
) -> Option<&'a str> {
    candidates
        .into_iter()
        .map(|c| {
            (
                strsim::jaro_winkler(&given.to_lowercase(), &c.to_lowercase()),
                c,
            )
        })
        .filter(|(score, _)| *score > 0.8)
        .max_by(|a, b| a.0.total_cmp(&b.0))
        .map(|(_, c)| c)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn suggestions() {
        let jobs = ["build", "test", "package"];
        for (given, want) in [
            ("tset", Some("test")),
            ("biuld", Some("build")),
            ("Package", Some("package")),
            ("deploy", None),
        ] {
            assert_eq!(did_you_mean(given, jobs), want, "{given}");
        }
    }

    #[test]
    fn undeclared_params() {
        let given: BTreeMap<String, String> = [("GREETNG".to_owned(), "hi".to_owned())]
            .into_iter()
            .collect();
        let err = check_declared(["GREETING", "COUNT"], &given).expect_err("undeclared");
        let msg = err.to_string();
        assert!(msg.contains("did you mean \"GREETING\""), "{msg}");
        assert!(
            msg.contains("declared parameters: GREETING, COUNT"),
            "{msg}"
        );
        assert_eq!(err.code(), 2);
        assert!(check_declared(["GREETNG"], &given).is_ok());
    }
}
