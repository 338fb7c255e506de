//! Checks of a [`JobSpec`] that every backend makes before it creates anything, and the
//! way backends word durations in log lines — shared so that all backends refuse the same
//! things with the same words.

use std::path::Path;
use std::time::Duration;

use crate::{BackendError, JobSpec};

impl JobSpec {
    /// A NUL byte cannot be passed to a process or across the Docker API, and `=` cannot
    /// be part of a variable name: say so before anything is created rather than fail
    /// obscurely at spawn time. Covers the job's and its services' environment and script.
    pub fn check_strings(&self) -> Result<(), BackendError> {
        let bad = |why: String| {
            Err(BackendError::Other(format!(
                "job \"{}\" cannot run: {why}",
                self.job_name
            )))
        };
        let envs = self
            .env
            .iter()
            .chain(self.services.iter().flat_map(|s| s.env.iter()));
        for (name, value) in envs {
            if name.is_empty() || name.contains(['=', '\0']) {
                return bad(format!("{name:?} is not a valid environment variable name"));
            }
            if value.contains('\0') {
                return bad(format!("environment variable {name} contains a NUL byte"));
            }
        }
        if let Some(i) = self.script.iter().position(|l| l.contains('\0')) {
            return bad(format!("script line {} contains a NUL byte", i + 1));
        }
        Ok(())
    }

    /// The job's workspace exists and is a directory.
    pub fn check_workspace(&self) -> Result<(), BackendError> {
        let dir: &Path = &self.workspace_dir;
        match std::fs::metadata(dir) {
            Ok(m) if m.is_dir() => Ok(()),
            Ok(_) => Err(BackendError::Other(format!(
                "workspace of job \"{}\" is not a directory: {}",
                self.job_name,
                dir.display()
            ))),
            Err(source) => Err(BackendError::Io {
                context: format!(
                    "workspace of job \"{}\" is not usable: {}",
                    self.job_name,
                    dir.display()
                ),
                source,
            }),
        }
    }
}

/// `90s` → `1m30s`, `3600s` → `1h`: how a duration reads in a log line.
pub fn human_duration(d: Duration) -> String {
    let secs = d.as_secs();
    if d.subsec_nanos() != 0 || secs == 0 {
        return format!("{d:?}");
    }
    let (h, m, s) = (secs / 3600, secs / 60 % 60, secs % 60);
    let mut out = String::new();
    for (n, unit) in [(h, "h"), (m, "m"), (s, "s")] {
        if n > 0 {
            out.push_str(&format!("{n}{unit}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_read_naturally() {
        for (d, expect) in [
            (Duration::from_secs(5), "5s"),
            (Duration::from_secs(90), "1m30s"),
            (Duration::from_secs(3600), "1h"),
            (Duration::from_secs(3661), "1h1m1s"),
            (Duration::from_millis(1500), "1.5s"),
            (Duration::from_millis(200), "200ms"),
        ] {
            assert_eq!(human_duration(d), expect, "{d:?}");
        }
    }

    #[test]
    fn strings_that_cannot_cross_to_a_process_are_refused() {
        let base = JobSpec {
            job_name: "j".into(),
            ..JobSpec::default()
        };
        for (spec, expect) in [
            (
                JobSpec {
                    env: vec![("A=B".into(), "x".into())],
                    ..base.clone()
                },
                Some("\"A=B\" is not a valid environment variable name"),
            ),
            (
                JobSpec {
                    env: vec![("A".into(), "x\0".into())],
                    ..base.clone()
                },
                Some("environment variable A contains a NUL byte"),
            ),
            (
                JobSpec {
                    script: vec!["ok".into(), "b\0d".into()],
                    ..base.clone()
                },
                Some("script line 2 contains a NUL byte"),
            ),
            (
                JobSpec {
                    env: vec![("A".into(), "fine".into())],
                    script: vec!["echo $A".into()],
                    ..base.clone()
                },
                None,
            ),
        ] {
            let got = spec.check_strings().err().map(|e| e.to_string());
            match expect {
                Some(e) => assert_eq!(got, Some(format!("job \"j\" cannot run: {e}"))),
                None => assert_eq!(got, None),
            }
        }
    }
}
