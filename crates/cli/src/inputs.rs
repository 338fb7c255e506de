//! Values given on the command line: `--param NAME=VALUE`, `--secret NAME[=VALUE]` and
//! `--secrets-file FILE` (dotenv-style). All checked before anything runs.

use std::collections::BTreeMap;
use std::path::Path;

use crate::error::CliError;

/// Parses `NAME=VALUE` pairs given with `flag`; a later pair overrides an earlier one.
pub fn parse_pairs(flag: &str, pairs: &[String]) -> Result<BTreeMap<String, String>, CliError> {
    let mut map = BTreeMap::new();
    for pair in pairs {
        let Some((name, value)) = pair.split_once('=') else {
            return Err(CliError::invalid(format!(
                "error: invalid {flag} \"{pair}\": expected NAME=VALUE"
            )));
        };
        check_name(flag, name, pair)?;
        map.insert(name.to_owned(), value.to_owned());
    }
    Ok(map)
}

/// A name must look like an environment variable, since it becomes one.
fn check_name(flag: &str, name: &str, given: &str) -> Result<(), CliError> {
    let ok = !name.is_empty()
        && !name.starts_with(|c: char| c.is_ascii_digit())
        && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
    if ok {
        Ok(())
    } else {
        Err(CliError::invalid(format!(
            "error: invalid {flag} \"{given}\": \"{name}\" is not a valid name (letters, \
             digits and _, not starting with a digit)"
        )))
    }
}

/// Collects secrets: files first, then `--secret` flags (which win). `NAME` alone takes
/// the value from the environment variable `NAME`, so it never shows in `ps` or history.
pub fn secrets(
    flags: &[String],
    files: &[impl AsRef<Path>],
) -> Result<BTreeMap<String, String>, CliError> {
    let mut map = BTreeMap::new();
    for file in files {
        let file = file.as_ref();
        let text = std::fs::read_to_string(file).map_err(|e| {
            CliError::invalid(format!(
                "error: cannot read secrets file {}: {e}",
                file.display()
            ))
        })?;
        map.extend(parse_dotenv(&file.display().to_string(), &text)?);
    }
    for flag in flags {
        match flag.split_once('=') {
            Some((name, value)) => {
                check_name("--secret", name, flag)?;
                map.insert(name.to_owned(), value.to_owned());
            }
            None => {
                check_name("--secret", flag, flag)?;
                let value = std::env::var(flag).map_err(|_| {
                    CliError::invalid(format!(
                        "error: --secret {flag}: the environment variable {flag} is not set \
                         (use --secret {flag}=VALUE, or export it)"
                    ))
                })?;
                map.insert(flag.clone(), value);
            }
        }
    }
    Ok(map)
}

/// Parses `NAME=VALUE` lines: blank lines and `#` comments are skipped, `export ` is
/// allowed before the name, and a value wrapped in matching single or double quotes is
/// unwrapped (no escapes: secrets are taken literally).
pub fn parse_dotenv(origin: &str, text: &str) -> Result<BTreeMap<String, String>, CliError> {
    let mut map = BTreeMap::new();
    for (i, raw) in text.lines().enumerate() {
        let line = raw.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let line = line
            .strip_prefix("export ")
            .map(str::trim_start)
            .unwrap_or(line);
        let Some((name, value)) = line.split_once('=') else {
            // The line may be a secret pasted without a name: never echo it.
            return Err(CliError::invalid(format!(
                "error: {origin}:{}: expected NAME=VALUE",
                i + 1
            )));
        };
        let name = name.trim_end();
        if !is_name(name) {
            return Err(CliError::invalid(format!(
                "error: {origin}:{}: \"{name}\" is not a valid name",
                i + 1
            )));
        }
        let value = value.trim_start();
        let value = unquote(value);
        map.insert(name.to_owned(), value.to_owned());
    }
    Ok(map)
}

fn is_name(name: &str) -> bool {
    !name.is_empty()
        && !name.starts_with(|c: char| c.is_ascii_digit())
        && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
}

fn unquote(value: &str) -> &str {
    for q in ['"', '\''] {
        if value.len() >= 2 && value.starts_with(q) && value.ends_with(q) {
            return &value[1..value.len() - 1];
        }
    }
    value
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check_pairs(args: &[&str], expect: Result<&[(&str, &str)], &str>) {
        let args: Vec<String> = args.iter().map(|s| s.to_string()).collect();
        match (parse_pairs("--param", &args), expect) {
            (Ok(got), Ok(want)) => {
                let want: BTreeMap<String, String> = want
                    .iter()
                    .map(|(k, v)| (k.to_string(), v.to_string()))
                    .collect();
                assert_eq!(got, want);
            }
            (Err(got), Err(want)) => {
                assert!(got.to_string().contains(want), "{got} lacks {want}");
                assert_eq!(got.code(), 2);
            }
            (got, want) => panic!("{args:?}: got {got:?}, want {want:?}"),
        }
    }

    #[test]
    fn pairs() {
        check_pairs(&["A=1", "B=x=y", "A=2"], Ok(&[("A", "2"), ("B", "x=y")]));
        check_pairs(&["EMPTY="], Ok(&[("EMPTY", "")]));
        check_pairs(&["NOEQUALS"], Err("expected NAME=VALUE"));
        check_pairs(&["=v"], Err("not a valid name"));
        check_pairs(&["1A=v"], Err("not a valid name"));
        check_pairs(&["A-B=v"], Err("not a valid name"));
    }

    fn check_dotenv(text: &str, expect: Result<&[(&str, &str)], &str>) {
        match (parse_dotenv("f.env", text), expect) {
            (Ok(got), Ok(want)) => {
                let want: BTreeMap<String, String> = want
                    .iter()
                    .map(|(k, v)| (k.to_string(), v.to_string()))
                    .collect();
                assert_eq!(got, want);
            }
            (Err(got), Err(want)) => assert!(got.to_string().contains(want), "{got}"),
            (got, want) => panic!("{text:?}: got {got:?}, want {want:?}"),
        }
    }

    #[test]
    fn dotenv() {
        check_dotenv(
            "# comment\n\nTOKEN=abc\nexport KEY = 'q u'\nPW=\"x#y\"\nRAW=a'b\n",
            Ok(&[
                ("TOKEN", "abc"),
                ("KEY", "q u"),
                ("PW", "x#y"),
                ("RAW", "a'b"),
            ]),
        );
        check_dotenv("A=1\nhunter2\n", Err("f.env:2: expected NAME=VALUE"));
        check_dotenv("A B=1\n", Err("f.env:1: \"A B\" is not a valid name"));
    }

    #[test]
    fn secret_without_value_comes_from_the_environment() {
        // PATH is always set; a made-up name never is.
        let got = secrets(&["PATH".to_string()], &[] as &[&Path]).expect("PATH is set");
        assert!(!got["PATH"].is_empty());
        let err =
            secrets(&["GANTRY_SURELY_UNSET_42".to_string()], &[] as &[&Path]).expect_err("unset");
        assert!(err.to_string().contains("is not set"), "{err}");
    }

    #[test]
    fn secrets_file_then_flags() {
        let dir = tempfile::tempdir().expect("tempdir");
        let file = dir.path().join("s.env");
        std::fs::write(&file, "A=from-file\nB=file\n").expect("write");
        let got = secrets(&["A=flag".to_string()], &[&file]).expect("ok");
        assert_eq!(got["A"], "flag");
        assert_eq!(got["B"], "file");
    }
}
