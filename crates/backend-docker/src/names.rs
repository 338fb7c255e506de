//! Names and labels of the resources one job creates.
//!
//! Names are unique per daemon even for two gantry processes running the same run id and
//! job (a nonce of pid and a counter is part of every name), and readable in `docker ps`:
//! `gantry-<run>-<job>-<attempt>-<nonce>` for the job container and the network, with
//! `-svc-<service>` and `-probe-<service>` for the others. Labels, not names, are what
//! teardown and the sweeper go by.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};

use gantry_backend::JobSpec;

use crate::owner::Owner;

/// Label: the run id.
pub const LABEL_RUN: &str = "gantry.run";
/// Label: the job key within the run.
pub const LABEL_JOB: &str = "gantry.job";
/// Label: the owning gantry process as `pid@starttime`.
pub const LABEL_OWNER: &str = "gantry.pid";
/// Label: the boot id of the machine the owner runs on.
pub const LABEL_BOOT: &str = "gantry.boot";
/// Label: what the resource is (`job`, `service`, `probe`, `network`, `build`).
pub const LABEL_ROLE: &str = "gantry.role";

/// The names of one job's resources.
#[derive(Debug, Clone)]
pub(crate) struct Names {
    prefix: String,
}

impl Names {
    pub(crate) fn new(job: &JobSpec) -> Names {
        static NEXT: AtomicU64 = AtomicU64::new(0);
        let nonce = format!(
            "{:x}{}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        );
        let run = sanitize(&job.run_id, 32);
        let key = sanitize(&job.job_key, 40);
        Names {
            prefix: format!("gantry-{run}-{key}-{}-{nonce}", job.attempt),
        }
    }

    pub(crate) fn job_container(&self) -> String {
        self.prefix.clone()
    }

    pub(crate) fn network(&self) -> String {
        self.prefix.clone()
    }

    pub(crate) fn service(&self, service: &str) -> String {
        format!("{}-svc-{}", self.prefix, sanitize(service, 63))
    }

    pub(crate) fn probe(&self, service: &str) -> String {
        format!("{}-probe-{}", self.prefix, sanitize(service, 63))
    }
}

/// `s` in lowercase letters, digits and single dashes, at most `max` characters: safe in
/// container and network names.
pub(crate) fn sanitize(s: &str, max: usize) -> String {
    let mut out = String::new();
    for c in s.chars() {
        if c.is_ascii_alphanumeric() {
            out.push(c.to_ascii_lowercase());
        } else if !out.ends_with('-') {
            out.push('-');
        }
    }
    let out: String = out.trim_matches('-').chars().take(max).collect();
    let out = out.trim_end_matches('-').to_owned();
    if out.is_empty() { "x".to_owned() } else { out }
}

/// The labels of every resource of `job`, for `role`: the job's own labels (run and job
/// from the engine), the owner, and the role.
pub(crate) fn labels(job: &JobSpec, owner: &Owner, role: &str) -> HashMap<String, String> {
    let mut labels: HashMap<String, String> = job.labels.iter().cloned().collect();
    labels
        .entry(LABEL_RUN.to_owned())
        .or_insert_with(|| job.run_id.clone());
    labels
        .entry(LABEL_JOB.to_owned())
        .or_insert_with(|| job.job_key.clone());
    labels.insert(LABEL_OWNER.to_owned(), owner.label());
    labels.insert(LABEL_BOOT.to_owned(), owner.boot.clone());
    labels.insert(LABEL_ROLE.to_owned(), role.to_owned());
    labels
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sanitized_names() {
        for (input, max, expect) in [
            ("20261129T161400Z-abc123", 32, "20261129t161400z-abc123"),
            ("build (GO=1.18)", 40, "build-go-1-18"),
            ("--", 40, "x"),
            ("abcdef", 3, "abc"),
            ("ab-cd", 3, "ab"),
        ] {
            assert_eq!(sanitize(input, max), expect, "{input:?}");
        }
    }

    #[test]
    fn names_and_labels_of_a_job() {
        let job = JobSpec {
            run_id: "R1".into(),
            job_key: "test-go-1-18".into(),
            attempt: 2,
            labels: vec![
                ("gantry.run".into(), "R1".into()),
                ("team".into(), "a".into()),
            ],
            ..Default::default()
        };
        let a = Names::new(&job);
        let b = Names::new(&job);
        assert!(a.job_container().starts_with("gantry-r1-test-go-1-18-2-"));
        assert_ne!(
            a.job_container(),
            b.job_container(),
            "a nonce keeps names unique"
        );
        assert_eq!(a.service("db"), format!("{}-svc-db", a.job_container()));
        assert_eq!(a.probe("db"), format!("{}-probe-db", a.job_container()));

        let owner = Owner {
            pid: 7,
            start: 99,
            boot: "boot".into(),
        };
        let mut got: Vec<(String, String)> = labels(&job, &owner, "service").into_iter().collect();
        got.sort();
        let expect: Vec<(String, String)> = [
            ("gantry.boot", "boot"),
            ("gantry.job", "test-go-1-18"),
            ("gantry.pid", "7@99"),
            ("gantry.role", "service"),
            ("gantry.run", "R1"),
            ("team", "a"),
        ]
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
        assert_eq!(got, expect);
    }
}
