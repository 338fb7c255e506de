//! Parsing and planning never panic, whatever the input: arbitrary text, YAML-looking
//! noise, and structured documents built from the real keys of gantry.yml with a mix of
//! valid and invalid values (so that a good share of them get all the way to planning).

use gantry_pipeline::{Event, PlanContext, parse};
use proptest::prelude::*;

/// A YAML value to render.
#[derive(Debug, Clone)]
enum Y {
    /// Rendered as is (numbers, booleans, null, plain words).
    Plain(String),
    /// Rendered double-quoted.
    Quoted(String),
    List(Vec<Y>),
    Map(Vec<(String, Y)>),
}

fn quote(s: &str) -> String {
    let mut out = String::from("\"");
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\t' => out.push_str("\\t"),
            c if c.is_control() => out.push_str(&format!("\\u{:04x}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

fn flow(y: &Y) -> String {
    match y {
        Y::Plain(s) => s.clone(),
        Y::Quoted(s) => quote(s),
        Y::List(items) => format!(
            "[{}]",
            items.iter().map(flow).collect::<Vec<_>>().join(", ")
        ),
        Y::Map(entries) => format!(
            "{{{}}}",
            entries
                .iter()
                .map(|(k, v)| format!("{}: {}", quote(k), flow(v)))
                .collect::<Vec<_>>()
                .join(", ")
        ),
    }
}

/// Block style for mappings (nested as deep as they go), flow style inside lists.
fn block(y: &Y, indent: usize, out: &mut String) {
    let pad = " ".repeat(indent);
    match y {
        Y::Map(entries) if !entries.is_empty() => {
            for (k, v) in entries {
                let key = if k
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
                    && !k.is_empty()
                {
                    k.clone()
                } else {
                    quote(k)
                };
                match v {
                    Y::Map(e) if !e.is_empty() => {
                        out.push_str(&format!("{pad}{key}:\n"));
                        block(v, indent + 2, out);
                    }
                    Y::List(items) if !items.is_empty() => {
                        out.push_str(&format!("{pad}{key}:\n"));
                        for item in items {
                            out.push_str(&format!("{pad}  - {}\n", flow(item)));
                        }
                    }
                    _ => out.push_str(&format!("{pad}{key}: {}\n", flow(v))),
                }
            }
        }
        other => out.push_str(&format!("{pad}{}\n", flow(other))),
    }
}

fn scalar() -> impl Strategy<Value = Y> {
    let plain = prop::sample::select(vec![
        "true", "false", "null", "~", "0", "2", "9000", "70000", "-1", "1.20", "yes", "5m", "90s",
        "10x", "1h30m", "0s", "a", "b", "c", "build", "test", "push", "tag", "manual", "failure",
        "always", "success", "required", "ref", "bool", "choice", "string", "develop", "main",
    ])
    .prop_map(|s| Y::Plain(s.to_string()));
    let quoted = prop::sample::select(vec![
        "v*",
        "release/*",
        "src/**",
        "[abc",
        "{a,b",
        "0 3 * * 1-5",
        "61 * * * *",
        "@daily",
        "* *",
        "${A}",
        "${B:-x}",
        "${GANTRY_JOB}",
        "${GANTRY_WORKSPACE}/x",
        "${",
        "${1}",
        "$$",
        "${hash:Cargo.lock}",
        "${X}",
        "../x",
        "/abs",
        "dist/app",
        "/health",
        "health",
        "image:${A}",
        "my_db",
        "db",
        "",
        "é ü",
        "a b",
        "a,b)",
        "make test",
    ])
    .prop_map(|s| Y::Quoted(s.to_string()));
    prop_oneof![plain, quoted, "[ -~]{0,12}".prop_map(Y::Quoted)]
}

fn value() -> impl Strategy<Value = Y> {
    scalar().prop_recursive(3, 24, 5, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(Y::List),
            prop::collection::vec((key(), inner), 0..4).prop_map(Y::Map),
        ]
    })
}

/// Keys of every level of gantry.yml, plus a few near misses and names.
fn key() -> impl Strategy<Value = String> {
    prop::sample::select(vec![
        "name",
        "on",
        "params",
        "env",
        "defaults",
        "jobs",
        "notify",
        "after",
        "concurrency",
        "push",
        "tag",
        "poll",
        "schedule",
        "manual",
        "pull_request",
        "type",
        "default",
        "choices",
        "pattern",
        "description",
        "needs",
        "when",
        "image",
        "workspace",
        "script",
        "services",
        "artifacts",
        "cache",
        "matrix",
        "runs_on",
        "timeout",
        "retry",
        "allow_failure",
        "image_build",
        "environment",
        "deploy",
        "branch",
        "event",
        "changed",
        "param",
        "status",
        "command",
        "ready",
        "tcp",
        "http",
        "port",
        "key",
        "paths",
        "context",
        "dockerfile",
        "args",
        "approval",
        "url",
        "compose",
        "kubernetes",
        "manifests",
        "namespace",
        "webhook",
        "email",
        "trigger",
        "group",
        "limit",
        "secret",
        "need",
        "scirpt",
        "A",
        "B",
        "X",
        "GO",
        "OS",
        "db",
        "a",
        "b",
    ])
    .prop_map(str::to_string)
}

fn q(s: &str) -> Y {
    Y::Quoted(s.to_string())
}

fn p(s: &str) -> Y {
    Y::Plain(s.to_string())
}

fn m(entries: Vec<(&str, Y)>) -> Y {
    Y::Map(
        entries
            .into_iter()
            .map(|(k, v)| (k.to_string(), v))
            .collect(),
    )
}

/// A job field with a value that is usually valid.
fn job_field() -> impl Strategy<Value = (String, Y)> {
    let valid = prop::sample::select(vec![
        ("needs", Y::List(vec![p("a")])),
        ("needs", p("b")),
        ("needs", Y::List(vec![p("build"), p("test")])),
        ("when", m(vec![("branch", q("main"))])),
        (
            "when",
            m(vec![
                ("event", Y::List(vec![p("push"), p("manual")])),
                ("status", p("always")),
            ]),
        ),
        ("when", m(vec![("changed", q("src/**")), ("tag", q("v*"))])),
        ("when", m(vec![("param", m(vec![("A", q("x"))]))])),
        ("image", q("alpine:${GANTRY_JOB}")),
        ("image", q("img-${GO:-1}")),
        ("workspace", q("/src/${GANTRY_PIPELINE}")),
        (
            "env",
            m(vec![
                ("X", q("${A:-1}")),
                ("Y", q("${X}/y")),
                ("S", m(vec![("secret", q("TOKEN"))])),
            ]),
        ),
        (
            "matrix",
            m(vec![
                ("GO", Y::List(vec![p("1.20"), p("1.21")])),
                ("OS", Y::List(vec![p("linux")])),
            ]),
        ),
        ("timeout", p("5m")),
        ("retry", p("2")),
        ("allow_failure", p("true")),
        (
            "services",
            m(vec![(
                "db",
                m(vec![
                    ("image", q("mysql")),
                    ("ready", m(vec![("tcp", p("3306"))])),
                ]),
            )]),
        ),
        (
            "services",
            m(vec![(
                "web",
                m(vec![
                    ("image", q("w")),
                    ("command", q("serve -p 80")),
                    ("ready", m(vec![("http", q("/h")), ("port", p("80"))])),
                ]),
            )]),
        ),
        ("artifacts", Y::List(vec![q("dist/${GANTRY_JOB}")])),
        (
            "cache",
            m(vec![
                ("key", q("k-${hash:Cargo.lock}")),
                ("paths", Y::List(vec![q("target")])),
            ]),
        ),
        (
            "image_build",
            m(vec![
                ("tag", Y::List(vec![q("app:${GANTRY_RUN_NUMBER}")])),
                ("push", p("false")),
            ]),
        ),
        (
            "environment",
            m(vec![("name", q("prod")), ("approval", p("required"))]),
        ),
        (
            "deploy",
            m(vec![("kubernetes", m(vec![("manifests", q("k8s"))]))]),
        ),
        ("runs_on", m(vec![("os", q("linux"))])),
    ])
    .prop_map(|(k, v)| (k.to_string(), v));
    let random = (
        prop::sample::select(vec![
            "needs",
            "when",
            "image",
            "workspace",
            "env",
            "script",
            "services",
            "artifacts",
            "cache",
            "matrix",
            "runs_on",
            "timeout",
            "retry",
            "allow_failure",
            "image_build",
            "environment",
            "deploy",
            "need",
        ])
        .prop_map(str::to_string),
        value(),
    );
    prop_oneof![6 => valid, 1 => random]
}

fn job() -> impl Strategy<Value = Y> {
    let entries = prop::collection::vec(job_field(), 0..4);
    // Most jobs get a script, so that some documents are fully valid.
    (entries, prop::bool::weighted(0.9)).prop_map(|(mut e, script)| {
        let mut seen = std::collections::HashSet::new();
        e.retain(|(k, _)| seen.insert(k.clone()));
        if script && !seen.contains("script") {
            e.push(("script".into(), Y::List(vec![q("make ${NOT_CHECKED}")])));
        }
        Y::Map(e)
    })
}

fn document() -> impl Strategy<Value = Y> {
    let job_name = prop_oneof![
        30 => prop::sample::select(vec!["a", "b", "c", "build", "test"]).prop_map(str::to_string),
        1 => Just("bad name".to_string()),
    ];
    // Unique names in most documents; a duplicate now and then.
    let jobs = (
        prop::collection::vec((job_name, job()), 0..6),
        prop::bool::weighted(0.9),
    )
        .prop_map(|(mut jobs, unique)| {
            if unique {
                let mut seen = std::collections::HashSet::new();
                jobs.retain(|(k, _)| seen.insert(k.clone()));
            }
            Y::Map(jobs)
        });
    let valid_top = prop::sample::select(vec![
        ("name", q("demo")),
        (
            "on",
            m(vec![
                ("push", Y::List(vec![q("main")])),
                ("schedule", q("0 3 * * *")),
                ("poll", p("5m")),
            ]),
        ),
        (
            "env",
            m(vec![
                ("TOKEN", m(vec![("secret", q("T"))])),
                ("E", q("${GANTRY_BRANCH}")),
            ]),
        ),
        (
            "defaults",
            m(vec![
                ("timeout", p("10m")),
                ("image", q("base")),
                ("retry", p("1")),
            ]),
        ),
        (
            "notify",
            Y::List(vec![m(vec![
                ("on", Y::List(vec![p("failure")])),
                ("webhook", q("${HOOK}")),
            ])]),
        ),
        (
            "after",
            Y::List(vec![m(vec![
                ("trigger", q("deploy")),
                ("params", m(vec![("V", q("${GANTRY_COMMIT}"))])),
            ])]),
        ),
        (
            "concurrency",
            m(vec![("group", q("g-${GANTRY_BRANCH}")), ("limit", p("2"))]),
        ),
    ])
    .prop_map(|(k, v)| (k.to_string(), v));
    let random_top = (
        prop::sample::select(vec![
            "name",
            "on",
            "params",
            "env",
            "defaults",
            "notify",
            "after",
            "concurrency",
            "stages",
        ])
        .prop_map(str::to_string),
        value(),
    );
    let top = prop::collection::vec(prop_oneof![4 => valid_top, 1 => random_top], 0..4);
    let params = prop_oneof![
        3 => Just(m(vec![
            ("A", m(vec![("default", q("x"))])),
            ("B", m(vec![("type", p("choice")), ("choices", Y::List(vec![p("a"), p("b")]))])),
            ("P", m(vec![("type", p("bool"))])),
        ])),
        1 => prop::collection::vec(
            (
                prop::sample::select(vec!["A", "B", "P"]).prop_map(str::to_string),
                prop::collection::vec((key(), scalar()), 0..3).prop_map(Y::Map),
            ),
            0..3,
        )
        .prop_map(Y::Map),
    ];
    (top, params, jobs).prop_map(|(mut top, params, jobs)| {
        // Later duplicates of a top-level key would be errors; keep the first of each.
        let mut seen = std::collections::HashSet::new();
        top.retain(|(k, _)| seen.insert(k.clone()));
        top.retain(|(k, _)| k != "params");
        top.push(("params".into(), params));
        top.push(("jobs".into(), jobs));
        Y::Map(top)
    })
}

fn context() -> impl Strategy<Value = PlanContext> {
    let event = prop::option::of(prop::sample::select(Event::ALL.to_vec()));
    let word = prop::sample::select(vec!["main", "develop", "v1.0", "release/1", "x"])
        .prop_map(str::to_string);
    let params = prop::collection::btree_map(
        prop::sample::select(vec!["A", "B", "P", "Q"]).prop_map(str::to_string),
        prop::sample::select(vec!["true", "maybe", "a", "b", "../..", "/etc", ""])
            .prop_map(str::to_string),
        0..3,
    );
    let changed = prop::option::of(prop::collection::vec(
        prop::sample::select(vec!["src/a.rs", "README.md", "docs/x/y.md"]).prop_map(str::to_string),
        0..3,
    ));
    (
        event,
        prop::option::of(word.clone()),
        prop::option::of(word),
        changed,
        params,
        any::<u64>(),
    )
        .prop_map(|(event, branch, tag, changed, params, n)| PlanContext {
            event,
            branch,
            tag,
            commit: Some("abc".into()),
            changed,
            params,
            run_id: "r".into(),
            run_number: n,
        })
}

/// Parses, and when that works plans and selects, checking the plan's invariants.
fn exercise(text: &str, ctx: &PlanContext) {
    match parse("gantry.yml", text) {
        Err(diags) => {
            assert!(!diags.is_empty());
            let rendered = diags.to_string();
            assert!(rendered.contains("error"), "{rendered}");
        }
        Ok(spec) => match spec.plan(ctx) {
            Err(diags) => assert!(!diags.to_string().is_empty()),
            Ok(plan) => {
                for (i, j) in plan.jobs.iter().enumerate() {
                    assert!(
                        j.needs.iter().all(|&n| n < i),
                        "job {} comes before its needs",
                        j.name
                    );
                }
                let first: Vec<String> = plan.jobs.iter().take(1).map(|j| j.base.clone()).collect();
                let selected = plan
                    .select(&first)
                    .expect("a job of the plan can be selected");
                assert!(selected.jobs.len() <= plan.jobs.len());
                assert!(plan.select(&["no such job".to_string()]).is_err());
            }
        },
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    #[test]
    fn arbitrary_text_never_panics(text in any::<String>(), ctx in context()) {
        exercise(&text, &ctx);
    }

    #[test]
    fn yaml_looking_noise_never_panics(text in "[a-z:\\-\\[\\]{}\"' \n\t#&*!|>,$.0-9<]{0,300}", ctx in context()) {
        exercise(&text, &ctx);
    }

    #[test]
    fn structured_documents_never_panic(doc in document(), ctx in context()) {
        let mut text = String::new();
        block(&doc, 0, &mut text);
        exercise(&text, &ctx);
    }

    #[test]
    fn structured_documents_in_flow_style_never_panic(doc in document(), ctx in context()) {
        exercise(&flow(&doc), &ctx);
    }
}

/// The generator does reach planning: a fixed share of generated documents is valid. Run
/// with a fixed seed so the check is deterministic.
#[test]
fn generator_produces_valid_pipelines_too() {
    use proptest::strategy::ValueTree;
    use proptest::test_runner::{Config, RngAlgorithm, TestRng, TestRunner};
    let mut runner = TestRunner::new_with_rng(
        Config::default(),
        TestRng::deterministic_rng(RngAlgorithm::ChaCha),
    );
    let strategy = document();
    let mut planned = 0;
    for _ in 0..400 {
        let doc = strategy.new_tree(&mut runner).expect("generate").current();
        let mut text = String::new();
        block(&doc, 0, &mut text);
        if parse("gantry.yml", &text).is_ok_and(|s| s.plan(&PlanContext::default()).is_ok()) {
            planned += 1;
        }
    }
    assert!(
        planned >= 50,
        "only {planned} of 400 generated documents got through planning"
    );
}
