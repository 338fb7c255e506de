//! `gantry graph`: a plan's DAG as text (topological layers) or Graphviz.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use gantry_pipeline::{Plan, PlannedJob, RunOn};

use crate::paint::Paint;

/// Each job's layer: 0 without needs, else one more than its deepest need.
pub fn layers(plan: &Plan) -> Vec<usize> {
    let mut layer = vec![0usize; plan.jobs.len()];
    // Jobs come in topological order, so every need's layer is final when read; a need
    // pointing forward (which the planner rules out) is simply ignored.
    for (i, job) in plan.jobs.iter().enumerate() {
        layer[i] = job
            .needs
            .iter()
            .filter(|&&n| n < i)
            .map(|&n| layer[n] + 1)
            .max()
            .unwrap_or(0);
    }
    layer
}

/// Matrix instances by base key (only bases with more than one instance).
fn instances(plan: &Plan) -> BTreeMap<&str, Vec<usize>> {
    let mut map: BTreeMap<&str, Vec<usize>> = BTreeMap::new();
    for (i, job) in plan.jobs.iter().enumerate() {
        if !job.matrix.is_empty() {
            map.entry(job.base.as_str()).or_default().push(i);
        }
    }
    map
}

/// The needs of `job`, with every instance of a matrix job folded into `test (×3)`.
fn needs_text(plan: &Plan, job: &PlannedJob, matrices: &BTreeMap<&str, Vec<usize>>) -> Vec<String> {
    let mut out = Vec::new();
    let mut done_bases: Vec<&str> = Vec::new();
    for &n in &job.needs {
        let Some(need) = plan.jobs.get(n) else {
            continue;
        };
        if let Some(all) = matrices.get(need.base.as_str())
            && all.len() > 1
            && all.iter().all(|i| job.needs.contains(i))
        {
            if !done_bases.contains(&need.base.as_str()) {
                done_bases.push(&need.base);
                out.push(format!("{} (×{})", need.base, all.len()));
            }
            continue;
        }
        out.push(need.name.clone());
    }
    out
}

/// Notes shown after a job: when it runs, whether it may fail, why it is excluded.
fn notes(job: &PlannedJob) -> Vec<String> {
    let mut notes = Vec::new();
    match job.run_on {
        RunOn::Success => {}
        RunOn::Failure => notes.push("runs only on failure".to_owned()),
        RunOn::Always => notes.push("runs always".to_owned()),
    }
    if job.allow_failure {
        notes.push("may fail".to_owned());
    }
    if job.retry > 0 {
        notes.push(format!("retry {}", job.retry));
    }
    if let Some(image) = &job.image {
        notes.push(format!("image {image}"));
    }
    if let Some(reason) = &job.excluded {
        notes.push(format!("excluded: {reason}"));
    }
    notes
}

/// The DAG as text: one block per layer, each job with the jobs it needs.
pub fn text(plan: &Plan, paint: Paint) -> String {
    let layer = layers(plan);
    let depth = layer.iter().max().map_or(0, |m| m + 1);
    let matrices = instances(plan);
    let width = plan
        .jobs
        .iter()
        .map(|j| j.name.chars().count())
        .max()
        .unwrap_or(0);
    let mut out = String::new();
    let _ = writeln!(
        out,
        "{}: {} job{}, {} layer{}",
        paint.bold(&plan.pipeline),
        plan.jobs.len(),
        if plan.jobs.len() == 1 { "" } else { "s" },
        depth,
        if depth == 1 { "" } else { "s" }
    );
    for l in 0..depth {
        let _ = writeln!(out);
        for (i, job) in plan.jobs.iter().enumerate().filter(|(i, _)| layer[*i] == l) {
            let label = if i == first_in_layer(&layer, l) {
                format!("{:>2}", l + 1)
            } else {
                "  ".to_owned()
            };
            let needs = needs_text(plan, job, &matrices);
            let mut line = format!("{}  {:<width$}", paint.dim(label), job.name);
            if !needs.is_empty() {
                let _ = write!(line, "  {} {}", paint.dim("←"), needs.join(", "));
            }
            let notes = notes(job);
            if !notes.is_empty() {
                let _ = write!(
                    line,
                    "  {}",
                    paint.yellow(format!("[{}]", notes.join("; ")))
                );
            }
            let _ = writeln!(out, "{}", line.trim_end());
        }
    }
    out
}

fn first_in_layer(layer: &[usize], l: usize) -> usize {
    layer.iter().position(|&x| x == l).unwrap_or(0)
}

/// Quotes a string for Graphviz.
fn quote(s: &str) -> String {
    format!("\"{}\"", s.replace('\\', "\\\\").replace('"', "\\\""))
}

/// The DAG in Graphviz's language; matrix instances are grouped in a cluster named after
/// their job, jobs that run on failure/always have dashed edges into them, excluded jobs
/// are grey.
pub fn dot(plan: &Plan) -> String {
    let matrices = instances(plan);
    let mut out = String::new();
    let _ = writeln!(out, "digraph {} {{", quote(&plan.pipeline));
    let _ = writeln!(out, "  rankdir=LR;");
    let _ = writeln!(out, "  node [shape=box, style=rounded];");
    let mut clustered = vec![false; plan.jobs.len()];
    for (c, (base, members)) in matrices.iter().enumerate() {
        let _ = writeln!(out, "  subgraph cluster_{c} {{");
        let _ = writeln!(out, "    label={};", quote(base));
        let _ = writeln!(out, "    style=dashed;");
        for &m in members {
            clustered[m] = true;
            let _ = writeln!(out, "    {};", node(&plan.jobs[m]));
        }
        let _ = writeln!(out, "  }}");
    }
    for (i, job) in plan.jobs.iter().enumerate() {
        if !clustered[i] {
            let _ = writeln!(out, "  {};", node(job));
        }
    }
    for job in &plan.jobs {
        let attrs = match job.run_on {
            RunOn::Success => "",
            RunOn::Failure => " [style=dashed, color=red, label=\"on failure\"]",
            RunOn::Always => " [style=dashed, label=\"always\"]",
        };
        for &n in &job.needs {
            if let Some(need) = plan.jobs.get(n) {
                let _ = writeln!(
                    out,
                    "  {} -> {}{attrs};",
                    quote(&need.name),
                    quote(&job.name)
                );
            }
        }
    }
    let _ = writeln!(out, "}}");
    out
}

fn node(job: &PlannedJob) -> String {
    let mut attrs = Vec::new();
    if job.excluded.is_some() {
        attrs.push("color=grey, fontcolor=grey".to_owned());
    }
    if job.allow_failure {
        attrs.push("style=\"rounded,dotted\"".to_owned());
    }
    if attrs.is_empty() {
        quote(&job.name)
    } else {
        format!("{} [{}]", quote(&job.name), attrs.join(", "))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn job(name: &str, base: &str, matrix: &[(&str, &str)], needs: &[usize]) -> PlannedJob {
        PlannedJob {
            name: name.to_owned(),
            base: base.to_owned(),
            matrix: matrix
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            needs: needs.to_vec(),
            excluded: None,
            run_on: RunOn::Success,
            image: None,
            workspace: "/workspace".to_owned(),
            env: Vec::new(),
            script: vec!["true".to_owned()],
            services: Vec::new(),
            artifacts: Vec::new(),
            cache: None,
            timeout: Duration::from_secs(3600),
            retry: 0,
            allow_failure: false,
            image_build: None,
            environment: None,
            deploy: None,
            runs_on: BTreeMap::new(),
        }
    }

    fn sample() -> Plan {
        let mut notify = job("notify", "notify", &[], &[4]);
        notify.run_on = RunOn::Failure;
        let mut lint = job("lint", "lint", &[], &[]);
        lint.allow_failure = true;
        let mut deploy = job("deploy \"prod\"", "deploy", &[], &[4]);
        deploy.excluded = Some("branch is not main".to_owned());
        Plan {
            pipeline: "hello".to_owned(),
            jobs: vec![
                job("build", "build", &[], &[]),
                lint,
                job("test (SHELL=bash)", "test", &[("SHELL", "bash")], &[0]),
                job("test (SHELL=sh)", "test", &[("SHELL", "sh")], &[0]),
                job("package", "package", &[], &[2, 3, 1]),
                notify,
                deploy,
            ],
            params: BTreeMap::new(),
        }
    }

    #[test]
    fn layers_follow_the_deepest_need() {
        assert_eq!(layers(&sample()), [0, 0, 1, 1, 2, 3, 3]);
    }

    #[test]
    fn text_graph() {
        insta::assert_snapshot!(text(&sample(), Paint::PLAIN));
    }

    #[test]
    fn dot_graph() {
        insta::assert_snapshot!(dot(&sample()));
    }
}
