//! The DAG rules as pure functions: given the state of every job of a run, which jobs
//! start now and which end without running.
//!
//! This is the one implementation of the rules listed in the `scheduler` module docs
//! (`when: { status: success | failure | always }`, excluded jobs, skip propagation,
//! `--fail-fast`). The engine's own scheduler asks the same rules job by job as events
//! arrive; a server that keeps a run's state in a database calls [`decide`] with the
//! stored states after every change and applies what it returns. Cancelling a whole run is not
//! a rule here: whoever cancels ends every unfinished job `Cancelled` itself.
//!
//! Approvals (`environment: { approval: required }`) are a gate after these rules: when
//! a job may start, [`decide`] answers [`Decision::AwaitApproval`] instead of
//! [`Decision::Start`] for a job whose environment requires approval. From then on the
//! held job counts as [`Node::Running`] — it was decided, a person says when (approved:
//! it runs; rejected: it ends [`Done::Failed`]) — so `status: failure` jobs keep waiting
//! for it and the run does not end meanwhile. `gantry run` has nobody to ask: the
//! engine's own scheduler asks the rules job by job (`Dag::verdict`, which knows no
//! approvals) and runs such jobs at once.
//!
//! Nothing here does IO or keeps state between calls.

use gantry_pipeline::{Plan, RunOn};

use crate::event::{JobIndex, JobStatus, RunStatus};

/// Where one job of a run stands.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Node {
    /// Not started and not decided yet.
    Waiting,
    /// Started (handed to an executor or running), or held for approval.
    Running,
    /// Reached its final status.
    Done(Done),
}

/// How a job ended, as far as the rules care.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Done {
    /// The script succeeded.
    Succeeded,
    /// The script failed, with `allow_failure` (counts as a success for dependents).
    AllowedFailure,
    /// The script failed.
    Failed,
    /// The infrastructure failed.
    Errored,
    /// Never ran.
    Skipped,
    /// Cancelled.
    Cancelled,
}

impl Done {
    /// A failure that fails the run and lets `when: { status: failure }` jobs run.
    pub fn is_failure(self) -> bool {
        matches!(self, Done::Failed | Done::Errored)
    }
}

impl From<&JobStatus> for Done {
    fn from(status: &JobStatus) -> Done {
        match status {
            JobStatus::Succeeded => Done::Succeeded,
            JobStatus::Failed { allowed: true, .. } => Done::AllowedFailure,
            JobStatus::Failed { .. } => Done::Failed,
            JobStatus::Errored { .. } => Done::Errored,
            JobStatus::Skipped { .. } => Done::Skipped,
            JobStatus::Cancelled => Done::Cancelled,
        }
    }
}

/// What to do with a waiting job now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    /// Start it.
    Start,
    /// End it `Skipped` without running, for this reason.
    Skip(String),
    /// It may start, but its environment requires a person's approval first: hold it
    /// (and count it as [`Node::Running`]) until someone approves or rejects it.
    AwaitApproval,
}

/// Whether job `j` of `plan` waits for a person's approval before it starts
/// (`environment: { approval: required }`).
pub fn needs_approval(plan: &Plan, j: JobIndex) -> bool {
    plan.jobs[j]
        .environment
        .as_ref()
        .is_some_and(|e| e.approval_required)
}

/// The decisions that can be taken now, by job index (ascending), each job at most once.
/// A job that may start but needs approval is answered [`Decision::AwaitApproval`].
///
/// Skips propagate within one call: when `build` is skipped, `test` that needs it is
/// skipped in the same answer. Every `Start` may be acted on in any order and in part
/// (e.g. a concurrency limit): a job not started stays [`Node::Waiting`] and is offered
/// again next time. `fail_fast` is the run's `--fail-fast`; with it, also cancel the
/// jobs [`fail_fast_cancels`] names.
pub fn decide(plan: &Plan, nodes: &[Node], fail_fast: bool) -> Vec<(JobIndex, Decision)> {
    Dag::new(plan).decide(plan, nodes, fail_fast)
}

/// The running jobs `--fail-fast` cancels: once any job failed, every running
/// `when: { status: success }` job (`always` and `failure` jobs carry on). Empty without
/// `fail_fast` or before a failure.
pub fn fail_fast_cancels(plan: &Plan, nodes: &[Node], fail_fast: bool) -> Vec<JobIndex> {
    if !fail_fast || first_failure(nodes).is_none() {
        return Vec::new();
    }
    nodes
        .iter()
        .enumerate()
        .filter(|(j, node)| **node == Node::Running && plan.jobs[*j].run_on == RunOn::Success)
        .map(|(j, _)| j)
        .collect()
}

/// The run's status once every job is [`Node::Done`] (`None` before): `Failed` if any job
/// failed without `allow_failure` or errored, else `Succeeded`. Never `Cancelled`: a
/// cancelled run is the canceller's call, not a consequence of job states (a job
/// cancelled by `--fail-fast` leaves the run `Failed`).
pub fn run_outcome(nodes: &[Node]) -> Option<RunStatus> {
    let mut failed = false;
    for node in nodes {
        match node {
            Node::Done(done) => failed |= done.is_failure(),
            Node::Waiting | Node::Running => return None,
        }
    }
    Some(if failed {
        RunStatus::Failed
    } else {
        RunStatus::Succeeded
    })
}

/// Every job `j` needs, directly or not, in plan (topological) order: whose artifacts
/// its workspace gets.
pub fn all_needs(plan: &Plan, j: JobIndex) -> Vec<JobIndex> {
    let jobs = &plan.jobs;
    let mut seen = std::collections::BTreeSet::new();
    let mut stack: Vec<JobIndex> = jobs[j].needs.clone();
    while let Some(n) = stack.pop() {
        if seen.insert(n) {
            stack.extend(&jobs[n].needs);
        }
    }
    seen.into_iter().collect()
}

/// The lowest-index job that failed the run. When jobs are decided after every finished
/// job, as both callers do, this is also the first one that failed, since `--fail-fast`
/// reacts to the first failure before a second can be recorded.
fn first_failure(nodes: &[Node]) -> Option<JobIndex> {
    nodes
        .iter()
        .position(|n| matches!(n, Node::Done(d) if d.is_failure()))
}

/// What the rules know beyond the job states.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Facts {
    /// The job that failed the run first, if any.
    pub first_failure: Option<JobIndex>,
    /// `--fail-fast`.
    pub fail_fast: bool,
    /// Nothing runs and nothing can start: `failure` jobs still waiting for a failure
    /// give up now ("nothing failed").
    pub settling: bool,
}

/// A plan's edges, precomputed for repeated decisions.
pub(crate) struct Dag {
    /// Reverse edges: the jobs that list each job in their `needs`.
    pub needed_by: Vec<Vec<JobIndex>>,
    /// For `status: failure` jobs: which jobs depend on it (directly or not).
    dependents: Vec<Option<Vec<bool>>>,
}

impl Dag {
    pub(crate) fn new(plan: &Plan) -> Dag {
        let jobs = &plan.jobs;
        let mut needed_by: Vec<Vec<JobIndex>> = vec![Vec::new(); jobs.len()];
        for (j, job) in jobs.iter().enumerate() {
            for &need in &job.needs {
                needed_by[need].push(j);
            }
        }
        let dependents = (0..jobs.len())
            .map(|f| (jobs[f].run_on == RunOn::Failure).then(|| reachable(&needed_by, f)))
            .collect();
        Dag {
            needed_by,
            dependents,
        }
    }

    /// Decides every waiting job that can be decided, until nothing changes.
    fn decide(&self, plan: &Plan, nodes: &[Node], fail_fast: bool) -> Vec<(JobIndex, Decision)> {
        let mut nodes = nodes.to_vec();
        let mut facts = Facts {
            first_failure: first_failure(&nodes),
            fail_fast,
            settling: false,
        };
        let mut out = Vec::new();
        loop {
            let mut changed = false;
            // Plan order is topological, so one pass carries a skip down a whole chain;
            // another pass is needed only when a `failure` job's wait ended later on.
            for j in 0..nodes.len() {
                if nodes[j] != Node::Waiting {
                    continue;
                }
                let Some(mut decision) = self.verdict(plan, &nodes, j, &facts) else {
                    continue;
                };
                if decision == Decision::Start && needs_approval(plan, j) {
                    decision = Decision::AwaitApproval;
                }
                nodes[j] = match decision {
                    Decision::Start | Decision::AwaitApproval => Node::Running,
                    Decision::Skip(_) => Node::Done(Done::Skipped),
                };
                out.push((j, decision));
                changed = true;
            }
            if changed {
                facts.settling = false;
                continue;
            }
            let stalled = !nodes.contains(&Node::Running) && nodes.contains(&Node::Waiting);
            if facts.settling || !stalled {
                break;
            }
            facts.settling = true;
        }
        out.sort_by_key(|(j, _)| *j);
        out
    }

    /// The decision for waiting job `j`, or `None` to keep waiting.
    pub(crate) fn verdict(
        &self,
        plan: &Plan,
        nodes: &[Node],
        j: JobIndex,
        facts: &Facts,
    ) -> Option<Decision> {
        let job = &plan.jobs[j];
        if let Some(reason) = &job.excluded {
            return Some(Decision::Skip(reason.clone()));
        }
        if job.run_on == RunOn::Success
            && facts.fail_fast
            && let Some(failed) = facts.first_failure
        {
            let failed = &plan.jobs[failed].name;
            return Some(Decision::Skip(format!(
                "not started: --fail-fast stopped the run after \"{failed}\" failed"
            )));
        }
        let mut needs = Vec::with_capacity(job.needs.len());
        for &need in &job.needs {
            match nodes[need] {
                Node::Done(done) => needs.push((need, done)),
                Node::Waiting | Node::Running => return None,
            }
        }
        match job.run_on {
            RunOn::Always => Some(Decision::Start),
            RunOn::Success => {
                for (need, done) in needs {
                    let why = match done {
                        Done::Succeeded | Done::AllowedFailure => continue,
                        Done::Failed => "failed",
                        Done::Errored => "had an error",
                        Done::Skipped => "was skipped",
                        Done::Cancelled => "was cancelled",
                    };
                    let name = &plan.jobs[need].name;
                    return Some(Decision::Skip(format!("needs \"{name}\", which {why}")));
                }
                Some(Decision::Start)
            }
            RunOn::Failure => {
                if facts.first_failure.is_some() {
                    return Some(Decision::Start);
                }
                // Wait while a failure can still come from a `success` job that does not
                // depend on this one (those wait for it, so they cannot fail first).
                let dependents = self.dependents[j].as_deref().unwrap_or(&[]);
                let others_done = plan.jobs.iter().enumerate().all(|(i, other)| {
                    other.run_on != RunOn::Success
                        || dependents.get(i).copied().unwrap_or(false)
                        || matches!(nodes[i], Node::Done(_))
                });
                (others_done || facts.settling)
                    .then(|| Decision::Skip("nothing failed (when: { status: failure })".into()))
            }
        }
    }
}

/// Every job reachable from `from` along `edges` (not `from` itself unless on a cycle),
/// as a membership table.
fn reachable(edges: &[Vec<JobIndex>], from: JobIndex) -> Vec<bool> {
    let mut seen = vec![false; edges.len()];
    let mut stack = vec![from];
    while let Some(j) = stack.pop() {
        for &next in &edges[j] {
            if !std::mem::replace(&mut seen[next], true) {
                stack.push(next);
            }
        }
    }
    seen
}

#[cfg(test)]
mod tests;
