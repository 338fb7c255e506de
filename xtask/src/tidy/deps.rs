//! The crate dependency rules of ARCHITECTURE.md, as data, checked over `cargo metadata`.
//!
//! Two tables:
//! - [`CRATE_RULES`]: which workspace crates a crate may name in its `[dependencies]`.
//!   The first rule whose pattern matches the crate applies; `*` at the end covers crates
//!   that do not exist yet, so adding a crate needs no code change (and a row only when it
//!   needs a stricter rule).
//! - [`LINK_RULES`]: crates that only some crates may *link*, directly or through other
//!   crates' `[dependencies]` (e.g. concrete backends: only the `gantry` binary).
//!
//! Dev-dependencies are never restricted: tests may use anything (the engine's tests use
//! `gantry-test-support` and real backends). Patterns are an exact name, `prefix-*`, or `*`.

use std::collections::{BTreeMap, BTreeSet, VecDeque};

use crate::metadata::Workspace;

use super::Verdict;

/// Which workspace crates a crate may depend on (in `[dependencies]`).
#[derive(Debug, Clone, Copy)]
pub enum Allowed {
    /// Only crates matching one of these patterns.
    Only(&'static [&'static str]),
    /// Any crate except those matching these patterns.
    AnyExcept(&'static [&'static str]),
}

/// The direct-dependency rule for the crates matching `krate`.
#[derive(Debug, Clone, Copy)]
pub struct CrateRule {
    /// Pattern of the crates this rule is for.
    pub krate: &'static str,
    /// What they may depend on.
    pub may_use: Allowed,
    /// The rule in words, quoted in failure messages.
    pub why: &'static str,
}

/// A crate (pattern `dep`) that only the crates matching `allowed_in` may link.
#[derive(Debug, Clone, Copy)]
pub struct LinkRule {
    /// Pattern of the restricted crates.
    pub dep: &'static str,
    /// Patterns of the crates that may link them.
    pub allowed_in: &'static [&'static str],
    /// The rule in words, quoted in failure messages.
    pub why: &'static str,
}

/// First match wins: keep specific patterns above general ones.
pub const CRATE_RULES: &[CrateRule] = &[
    CrateRule {
        krate: "gantry-pipeline",
        may_use: Allowed::Only(&[]),
        why: "`pipeline` is the pure core: it depends on no gantry crate",
    },
    CrateRule {
        krate: "gantry-backend",
        may_use: Allowed::Only(&[]),
        why: "`backend` is only the contract: it depends on no gantry crate",
    },
    CrateRule {
        krate: "gantry-backend-*",
        may_use: Allowed::Only(&["gantry-backend"]),
        why: "a concrete backend implements the backend contract and knows no other gantry crate",
    },
    CrateRule {
        krate: "gantry-engine",
        may_use: Allowed::Only(&["gantry-pipeline", "gantry-backend"]),
        why: "`engine` runs a plan on a backend: it depends only on `pipeline` and `backend`",
    },
    CrateRule {
        krate: "gantry-store",
        may_use: Allowed::Only(&["gantry-pipeline"]),
        why: "`store` persists runs: it depends on `pipeline` at most",
    },
    CrateRule {
        krate: "gantry-protocol",
        may_use: Allowed::Only(&["gantry-pipeline", "gantry-engine"]),
        why: "`protocol` is the executor contract: wire types over `pipeline` and `engine` only",
    },
    CrateRule {
        krate: "gantry-server",
        may_use: Allowed::AnyExcept(&["gantry-backend-*", "gantry-agent"]),
        why: "`server` links no backend and no executor: jobs run only through leases",
    },
    CrateRule {
        krate: "gantry-agent",
        may_use: Allowed::Only(&[
            "gantry-pipeline",
            "gantry-backend",
            "gantry-engine",
            "gantry-protocol",
        ]),
        why: "`agent` runs leased jobs with the engine: it knows the contract, not the server",
    },
    CrateRule {
        krate: "*",
        may_use: Allowed::AnyExcept(&[]),
        why: "crates without a rule of their own are limited by the link rules only",
    },
];

/// Checked over the transitive `[dependencies]` graph of every crate.
pub const LINK_RULES: &[LinkRule] = &[
    LinkRule {
        dep: "gantry-backend-*",
        allowed_in: &["gantry", "gantry-test-support"],
        why: "only the `gantry` binary links concrete backends (tests reach them as \
              dev-dependencies, which includes `gantry-test-support`)",
    },
    LinkRule {
        dep: "gantry-test-support",
        allowed_in: &[],
        why: "`gantry-test-support` is only ever a dev-dependency",
    },
    LinkRule {
        dep: "gantry",
        allowed_in: &[],
        why: "the `gantry` binary is the top of the graph: nothing depends on it",
    },
];

/// Whether `name` matches `pattern`: exact, `prefix-*` (something must follow the prefix)
/// or `*`.
pub fn matches(pattern: &str, name: &str) -> bool {
    match pattern.strip_suffix('*') {
        Some("") => true,
        Some(prefix) => name.len() > prefix.len() && name.starts_with(prefix),
        None => pattern == name,
    }
}

fn matches_any(patterns: &[&str], name: &str) -> bool {
    patterns.iter().any(|p| matches(p, name))
}

/// The rule for `krate`: the first of `rules` whose pattern matches.
pub fn rule_for<'r>(rules: &'r [CrateRule], krate: &str) -> Option<&'r CrateRule> {
    rules.iter().find(|r| matches(r.krate, krate))
}

/// Tidy check over the real workspace.
pub fn check_dependency_graph(ws: &Workspace) -> Verdict {
    Verdict::from_problems(violations(&ws.normal_graph(), CRATE_RULES, LINK_RULES))
}

/// Every rule violation in `graph` (each crate with the workspace crates in its
/// `[dependencies]`), one message each, sorted.
pub fn violations(
    graph: &[(String, Vec<String>)],
    crate_rules: &[CrateRule],
    link_rules: &[LinkRule],
) -> Vec<String> {
    let edges: BTreeMap<&str, Vec<&str>> = graph
        .iter()
        .map(|(k, deps)| (k.as_str(), deps.iter().map(String::as_str).collect()))
        .collect();
    let mut problems = BTreeSet::new();
    // Direct edges already reported by a crate rule; the same edge is not reported twice.
    let mut reported = BTreeSet::new();

    for (&krate, deps) in &edges {
        let Some(rule) = rule_for(crate_rules, krate) else {
            continue;
        };
        for &dep in deps {
            let ok = match rule.may_use {
                Allowed::Only(allowed) => matches_any(allowed, dep),
                Allowed::AnyExcept(denied) => !matches_any(denied, dep),
            };
            if !ok {
                reported.insert((krate, dep));
                problems.insert(format!(
                    "`{krate}` must not depend on `{dep}` (in its [dependencies]): {} \
                     [rule `{}`: {}]",
                    rule.why,
                    rule.krate,
                    describe(rule.may_use)
                ));
            }
        }
    }

    for &krate in edges.keys() {
        for (dep, path) in reachable(&edges, krate) {
            for rule in link_rules {
                if !matches(rule.dep, dep) || matches_any(rule.allowed_in, krate) {
                    continue;
                }
                if path.len() == 2 && reported.contains(&(krate, dep)) {
                    continue;
                }
                let how = if path.len() == 2 {
                    "depends on it directly".to_owned()
                } else {
                    format!("links it through {}", path.join(" -> "))
                };
                problems.insert(format!(
                    "`{krate}` must not link `{dep}` ({how}): {} [rule `{}`]",
                    rule.why, rule.dep
                ));
            }
        }
    }
    problems.into_iter().collect()
}

fn describe(allowed: Allowed) -> String {
    let list = |ps: &[&str]| {
        ps.iter()
            .map(|p| format!("`{p}`"))
            .collect::<Vec<_>>()
            .join(", ")
    };
    match allowed {
        Allowed::Only([]) => "may depend on no gantry crate".to_owned(),
        Allowed::Only(ps) => format!("may depend only on {}", list(ps)),
        Allowed::AnyExcept(ps) => format!("may depend on anything but {}", list(ps)),
    }
}

/// Every crate reachable from `start` over `edges`, with the shortest path to it
/// (`[start, .., crate]`).
fn reachable<'a>(
    edges: &BTreeMap<&'a str, Vec<&'a str>>,
    start: &'a str,
) -> Vec<(&'a str, Vec<&'a str>)> {
    let mut parent: BTreeMap<&str, &str> = BTreeMap::new();
    let mut queue = VecDeque::from([start]);
    let mut found = Vec::new();
    while let Some(at) = queue.pop_front() {
        for &next in edges.get(at).into_iter().flatten() {
            if next == start || parent.contains_key(next) {
                continue;
            }
            parent.insert(next, at);
            found.push(next);
            queue.push_back(next);
        }
    }
    found
        .into_iter()
        .map(|dep| {
            let mut path = vec![dep];
            let mut at = dep;
            while let Some(&p) = parent.get(at) {
                path.push(p);
                at = p;
            }
            if path.last() != Some(&start) {
                path.push(start);
            }
            path.reverse();
            (dep, path)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Checks the real rule tables against a graph written as `crate: dep dep; crate: ...`.
    fn check(graph: &str, expect: &[&str]) {
        let graph: Vec<(String, Vec<String>)> = graph
            .split(';')
            .filter(|s| !s.trim().is_empty())
            .map(|entry| {
                let (k, deps) = entry.split_once(':').expect("`crate: deps`");
                (
                    k.trim().to_owned(),
                    deps.split_whitespace().map(str::to_owned).collect(),
                )
            })
            .collect();
        let got = violations(&graph, CRATE_RULES, LINK_RULES);
        assert_eq!(got, expect, "graph: {graph:?}");
    }

    const TODAY: &str = "gantry-pipeline: ; gantry-backend: ; gantry-backend-local: gantry-backend; \
        gantry-engine: gantry-pipeline gantry-backend; gantry-test-support: gantry-backend; \
        gantry: gantry-pipeline gantry-backend gantry-backend-local gantry-engine; xtask: ";

    #[test]
    fn todays_layout_passes() {
        check(TODAY, &[]);
    }

    #[test]
    fn future_crates_fit_without_code_changes() {
        check(
            "gantry-backend-docker: gantry-backend; gantry-backend-kube: gantry-backend; \
             gantry-store: gantry-pipeline; gantry-agent: gantry-engine gantry-backend; \
             gantry-engine: gantry-pipeline gantry-backend; \
             gantry-server: gantry-store gantry-pipeline gantry-backend; \
             gantry: gantry-server gantry-agent gantry-backend-docker gantry-backend-kube",
            &[],
        );
    }

    #[test]
    fn pipeline_and_contract_depend_on_no_gantry_crate() {
        check(
            "gantry-pipeline: gantry-backend; gantry-backend: gantry-pipeline",
            &[
                "`gantry-backend` must not depend on `gantry-pipeline` (in its [dependencies]): \
                 `backend` is only the contract: it depends on no gantry crate [rule \
                 `gantry-backend`: may depend on no gantry crate]",
                "`gantry-pipeline` must not depend on `gantry-backend` (in its [dependencies]): \
                 `pipeline` is the pure core: it depends on no gantry crate [rule \
                 `gantry-pipeline`: may depend on no gantry crate]",
            ],
        );
    }

    #[test]
    fn a_new_backend_may_use_only_the_contract() {
        check(
            "gantry-backend-docker: gantry-backend gantry-pipeline",
            &[
                "`gantry-backend-docker` must not depend on `gantry-pipeline` (in its \
               [dependencies]): a concrete backend implements the backend contract and knows \
               no other gantry crate [rule `gantry-backend-*`: may depend only on \
               `gantry-backend`]",
            ],
        );
    }

    #[test]
    fn engine_links_no_concrete_backend() {
        check(
            "gantry-engine: gantry-pipeline gantry-backend gantry-backend-local",
            &[
                "`gantry-engine` must not depend on `gantry-backend-local` (in its \
                 [dependencies]): `engine` runs a plan on a backend: it depends only on \
                 `pipeline` and `backend` [rule `gantry-engine`: may depend only on \
                 `gantry-pipeline`, `gantry-backend`]",
            ],
        );
    }

    #[test]
    fn server_links_no_backend_even_through_another_crate() {
        check(
            "gantry-helper: gantry-engine gantry-backend-docker; gantry-engine: ; \
             gantry-server: gantry-helper",
            &[
                "`gantry-helper` must not link `gantry-backend-docker` (depends on it \
                 directly): only the `gantry` binary links concrete backends (tests reach \
                 them as dev-dependencies, which includes `gantry-test-support`) [rule \
                 `gantry-backend-*`]",
                "`gantry-server` must not link `gantry-backend-docker` (links it through \
                 gantry-server -> gantry-helper -> gantry-backend-docker): only the `gantry` \
                 binary links concrete backends (tests reach them as dev-dependencies, which \
                 includes `gantry-test-support`) [rule `gantry-backend-*`]",
            ],
        );
    }

    #[test]
    fn server_rule_names_the_server() {
        check(
            "gantry-server: gantry-backend-docker",
            &[
                "`gantry-server` must not depend on `gantry-backend-docker` (in its \
               [dependencies]): `server` links no backend and no executor: jobs run only \
               through leases [rule `gantry-server`: may depend on anything but \
               `gantry-backend-*`, `gantry-agent`]",
            ],
        );
    }

    #[test]
    fn store_depends_on_pipeline_at_most() {
        check(
            "gantry-store: gantry-pipeline gantry-engine",
            &[
                "`gantry-store` must not depend on `gantry-engine` (in its [dependencies]): \
               `store` persists runs: it depends on `pipeline` at most [rule `gantry-store`: \
               may depend only on `gantry-pipeline`]",
            ],
        );
    }

    #[test]
    fn test_support_is_only_a_dev_dependency() {
        check(
            "gantry-test-support: gantry-backend; gantry: gantry-test-support",
            &[
                "`gantry` must not link `gantry-test-support` (depends on it directly): \
               `gantry-test-support` is only ever a dev-dependency [rule \
               `gantry-test-support`]",
            ],
        );
    }

    #[test]
    fn agent_knows_the_contract_not_the_server() {
        check(
            "gantry-agent: gantry-engine gantry-protocol gantry-server",
            &[
                "`gantry-agent` must not depend on `gantry-server` (in its [dependencies]): \
                 `agent` runs leased jobs with the engine: it knows the contract, not the \
                 server [rule `gantry-agent`: may depend only on `gantry-pipeline`, \
                 `gantry-backend`, `gantry-engine`, `gantry-protocol`]",
            ],
        );
    }

    #[test]
    fn nothing_depends_on_the_binary() {
        check(
            "gantry-helper: gantry",
            &[
                "`gantry-helper` must not link `gantry` (depends on it directly): the `gantry` \
               binary is the top of the graph: nothing depends on it [rule `gantry`]",
            ],
        );
    }

    #[test]
    fn patterns() {
        for (pattern, name, expect) in [
            ("gantry-backend-*", "gantry-backend-local", true),
            ("gantry-backend-*", "gantry-backend", false),
            ("gantry-backend-*", "gantry-backend-", false),
            ("gantry-backend", "gantry-backend-local", false),
            ("gantry", "gantry-engine", false),
            ("*", "anything", true),
        ] {
            assert_eq!(matches(pattern, name), expect, "{pattern} vs {name}");
        }
    }
}
