//! Narrowing a plan to some jobs and everything they need (`gantry run --job NAME`).

use std::collections::BTreeSet;

use crate::plan_types::Plan;
use crate::suggest::did_you_mean;

/// A job selection named something that is not in the plan.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{}", self.describe())]
pub struct SelectError {
    /// The names that matched nothing, each with the closest job name if there is one.
    pub unknown: Vec<(String, Option<String>)>,
    /// The job names that exist (base names, in plan order).
    pub jobs: Vec<String>,
}

impl SelectError {
    fn describe(&self) -> String {
        let names: Vec<String> = self
            .unknown
            .iter()
            .map(|(n, s)| match s {
                Some(s) => format!("{n:?} (did you mean {s:?}?)"),
                None => format!("{n:?}"),
            })
            .collect();
        let head = if names.len() == 1 {
            "no job named"
        } else {
            "no jobs named"
        };
        format!(
            "{head} {}; the jobs are: {}",
            names.join(", "),
            self.jobs.join(", ")
        )
    }
}

impl Plan {
    /// Keeps the named jobs and everything they transitively need. A name is a job's full
    /// name (`build (GO=1.18)`) or its base name (`build`, which selects every matrix
    /// instance). Jobs keep their `excluded` decision; indices are renumbered.
    pub fn select(&self, names: &[String]) -> Result<Plan, SelectError> {
        let mut keep = vec![false; self.jobs.len()];
        let mut unknown = Vec::new();
        for name in names {
            let mut found = false;
            for (i, j) in self.jobs.iter().enumerate() {
                if j.name == *name || j.base == *name {
                    keep[i] = true;
                    found = true;
                }
            }
            if !found {
                let candidates = self
                    .jobs
                    .iter()
                    .flat_map(|j| [j.base.as_str(), j.name.as_str()]);
                unknown.push((
                    name.clone(),
                    did_you_mean(name, candidates).map(str::to_string),
                ));
            }
        }
        if !unknown.is_empty() {
            let mut seen = BTreeSet::new();
            let jobs = self
                .jobs
                .iter()
                .filter(|j| seen.insert(j.base.as_str()))
                .map(|j| j.base.clone())
                .collect();
            return Err(SelectError { unknown, jobs });
        }
        // Jobs come after their needs, so one backwards pass closes over all needs.
        for i in (0..self.jobs.len()).rev() {
            if keep[i] {
                for &n in &self.jobs[i].needs {
                    keep[n] = true;
                }
            }
        }
        let mut new_index = vec![usize::MAX; self.jobs.len()];
        let mut jobs = Vec::new();
        for (i, j) in self.jobs.iter().enumerate() {
            if keep[i] {
                new_index[i] = jobs.len();
                let mut j = j.clone();
                j.needs = j.needs.iter().map(|&n| new_index[n]).collect();
                jobs.push(j);
            }
        }
        Ok(Plan {
            pipeline: self.pipeline.clone(),
            jobs,
            params: self.params.clone(),
        })
    }
}
