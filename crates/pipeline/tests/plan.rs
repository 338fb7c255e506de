//! Planning: the seed pipeline, matrices, `when`, params, interpolation, built-ins and
//! job selection, as tables of inputs and expected plans.

use std::collections::BTreeMap;
use std::time::Duration;

use gantry_pipeline::{
    Deploy, EnvValue, Event, Plan, PlanContext, PlannedJob, Probe, RunOn, parse,
};

fn ctx() -> PlanContext {
    PlanContext {
        run_id: "r-1".into(),
        run_number: 7,
        ..PlanContext::default()
    }
}

fn with(f: impl FnOnce(&mut PlanContext)) -> PlanContext {
    let mut c = ctx();
    f(&mut c);
    c
}

fn plan(text: &str, ctx: &PlanContext) -> Plan {
    let spec = parse("gantry.yml", text).unwrap_or_else(|d| panic!("parse failed:\n{d}"));
    spec.plan(ctx)
        .unwrap_or_else(|d| panic!("plan failed:\n{d}"))
}

fn plan_err(text: &str, ctx: &PlanContext) -> String {
    let spec = parse("gantry.yml", text).unwrap_or_else(|d| panic!("parse failed:\n{d}"));
    match spec.plan(ctx) {
        Ok(p) => panic!(
            "planned without errors: {:?}",
            p.jobs.iter().map(|j| &j.name).collect::<Vec<_>>()
        ),
        Err(d) => d.to_string(),
    }
}

fn env<'a>(job: &'a PlannedJob, name: &str) -> Option<&'a str> {
    job.env
        .iter()
        .rev()
        .find(|(k, _)| k == name)
        .map(|(_, v)| match v {
            EnvValue::Plain(s) => s.as_str(),
            EnvValue::Secret(s) => s.as_str(),
        })
}

/// `name -> [needed names]`, in plan order.
fn shape(plan: &Plan) -> Vec<(String, Vec<String>)> {
    plan.jobs
        .iter()
        .map(|j| {
            (
                j.name.clone(),
                j.needs.iter().map(|&n| plan.jobs[n].name.clone()).collect(),
            )
        })
        .collect()
}

fn names(plan: &Plan) -> Vec<&str> {
    plan.jobs.iter().map(|j| j.name.as_str()).collect()
}

const SEED: &str = include_str!("fixtures/seed.yml");

#[test]
fn seed_pipeline_plans_into_the_expected_jobs() {
    let c = with(|c| {
        c.params.insert("GO_AUTH_VERSION".into(), "v1.4.0".into());
    });
    let plan = plan(SEED, &c);
    assert_eq!(plan.pipeline, "go-auth");
    assert_eq!(
        plan.params,
        BTreeMap::from([("GO_AUTH_VERSION".to_string(), "v1.4.0".to_string())])
    );
    let s = |v: &[&str]| v.iter().map(|x| x.to_string()).collect::<Vec<_>>();
    assert_eq!(
        shape(&plan),
        vec![
            ("build".to_string(), s(&[])),
            ("package".to_string(), s(&["build"])),
            ("integration".to_string(), s(&["package"])),
            ("deploy-staging".to_string(), s(&["integration"])),
            ("deploy-production".to_string(), s(&["integration"])),
        ]
    );
    let build = plan.job("build").expect("build");
    assert_eq!(build.image.as_deref(), Some("go-builder:1.19"));
    assert_eq!(
        build.workspace,
        "/go/src/github.com/usmanismail/go-messenger"
    );
    assert_eq!(
        build.script,
        ["cd go-auth", "go fmt ./...", "go test ./...", "go build"]
    );
    assert_eq!(build.artifacts, ["go-auth/go-auth"]);
    assert_eq!(build.timeout, Duration::from_secs(3600));
    assert_eq!(
        env(build, "SOURCE_PATH"),
        Some("github.com/usmanismail/go-messenger/go-auth")
    );
    assert_eq!(env(build, "GO_AUTH_VERSION"), Some("v1.4.0"));
    assert_eq!(
        env(build, "GANTRY_WORKSPACE"),
        Some("/go/src/github.com/usmanismail/go-messenger")
    );

    let package = plan.job("package").expect("package");
    let ib = package.image_build.as_ref().expect("image_build");
    assert_eq!(
        (ib.context.as_str(), ib.dockerfile.as_str()),
        ("go-auth", "Dockerfile")
    );
    assert_eq!(ib.tags, ["usman/go-auth:v1.4.0"]);
    assert_eq!(package.container_needs(), ["image_build"]);

    let integration = plan.job("integration").expect("integration");
    assert_eq!(integration.timeout, Duration::from_secs(600));
    let db = &integration.services[0];
    assert_eq!((db.name.as_str(), db.image.as_str()), ("db", "mysql"));
    assert_eq!(db.env.len(), 4);
    assert_eq!(
        db.ready.as_ref().map(|r| (&r.probe, r.timeout)),
        Some((&Probe::Tcp { port: 3306 }, Duration::from_secs(90)))
    );
    let goauth = &integration.services[1];
    assert_eq!(goauth.image, "usman/go-auth:v1.4.0");
    assert_eq!(
        goauth.command.as_deref(),
        Some(&["-l", "debug", "run", "--db-host", "db", "-p", "9000"].map(String::from)[..])
    );
    assert_eq!(
        goauth.ready.as_ref().map(|r| (&r.probe, r.timeout)),
        Some((
            &Probe::Http {
                path: "/health".into(),
                port: 9000
            },
            Duration::from_secs(60)
        ))
    );

    // A manual run on no branch: both deployments are ruled out by their `when`.
    let staging = plan.job("deploy-staging").expect("staging");
    assert_eq!(
        staging.excluded.as_deref(),
        Some("not a branch build (when.branch: \"develop\")")
    );
    assert_eq!(
        staging
            .environment
            .as_ref()
            .map(|e| (e.name.as_str(), e.approval_required)),
        Some(("staging", false))
    );
    assert_eq!(
        staging.deploy,
        Some(Deploy::Compose {
            file: "deploy/docker-compose.yml".into()
        })
    );
    let prod = plan.job("deploy-production").expect("production");
    assert_eq!(
        prod.excluded.as_deref(),
        Some("not a tag build (when.tag: \"v*\")")
    );
    assert_eq!(
        prod.environment
            .as_ref()
            .map(|e| (e.name.as_str(), e.approval_required)),
        Some(("production", true))
    );
    assert_eq!(
        prod.deploy,
        Some(Deploy::Kubernetes {
            manifests: "deploy/k8s".into(),
            namespace: Some("production".into())
        })
    );
}

#[test]
fn seed_pipeline_follows_the_ref_that_fired() {
    // (context, GO_AUTH_VERSION, staging excluded?, production excluded?)
    let cases = [
        (
            with(|c| {
                c.event = Some(Event::Push);
                c.branch = Some("develop".into());
            }),
            "develop",
            false,
            true,
        ),
        (
            with(|c| {
                c.event = Some(Event::Tag);
                c.tag = Some("v2.0.0".into());
            }),
            "v2.0.0",
            true,
            false,
        ),
        (
            with(|c| {
                c.event = Some(Event::Push);
                c.branch = Some("feature/x".into());
            }),
            "feature/x",
            true,
            true,
        ),
        // A manual run takes the param's default.
        (
            with(|c| {
                c.branch = Some("main".into());
            }),
            "develop",
            true,
            true,
        ),
    ];
    for (c, version, staging_out, prod_out) in cases {
        let plan = plan(SEED, &c);
        assert_eq!(plan.params["GO_AUTH_VERSION"], version, "{c:?}");
        assert_eq!(
            plan.job("deploy-staging").map(|j| j.excluded.is_some()),
            Some(staging_out),
            "{c:?}"
        );
        assert_eq!(
            plan.job("deploy-production").map(|j| j.excluded.is_some()),
            Some(prod_out),
            "{c:?}"
        );
    }
}

#[test]
fn matrix_expands_into_named_instances() {
    let text = "
jobs:
  build:
    matrix: { GO: ['1.21', 1.20], OS: [linux, mac] }
    image: golang:${GO}
    env: { TARGET: '${OS}-${GO}' }
    script: go build
  test:
    needs: [build]
    script: go test
  single:
    matrix: { N: [1] }
    script: echo $N
";
    let plan = plan(text, &ctx());
    assert_eq!(
        names(&plan),
        [
            "build (GO=1.21, OS=linux)",
            "build (GO=1.21, OS=mac)",
            "build (GO=1.20, OS=linux)",
            "build (GO=1.20, OS=mac)",
            "test",
            "single (N=1)",
        ]
    );
    assert_eq!(
        plan.job("test").map(|j| j.needs.clone()),
        Some(vec![0, 1, 2, 3])
    );
    let b = plan.job("build (GO=1.20, OS=mac)").expect("instance");
    assert_eq!(b.base, "build");
    assert_eq!(
        b.image.as_deref(),
        Some("golang:1.20"),
        "the value stays the text written, not the float 1.2"
    );
    assert_eq!(
        b.matrix,
        BTreeMap::from([("GO".into(), "1.20".into()), ("OS".into(), "mac".into())])
    );
    assert_eq!(env(b, "TARGET"), Some("mac-1.20"));
    assert_eq!(env(b, "GO"), Some("1.20"));
    assert_eq!(env(b, "GANTRY_JOB"), Some("build (GO=1.20, OS=mac)"));
}

#[test]
fn jobs_are_ordered_after_their_needs() {
    let text = "
jobs:
  deploy: { needs: [test, package], script: d }
  test: { needs: build, script: t }
  package: { needs: [build], script: p }
  build: { script: b }
  lint: { script: l }
";
    let plan = plan(text, &ctx());
    let order = names(&plan);
    assert_eq!(order, ["build", "test", "package", "deploy", "lint"]);
    for (i, j) in plan.jobs.iter().enumerate() {
        assert!(
            j.needs.iter().all(|&n| n < i),
            "{} comes before one of its needs",
            j.name
        );
    }
}

/// `when:` decisions. Each case: the `when` mapping, a context, and the expected
/// exclusion reason (`None` = the job runs).
#[test]
fn when_conditions() {
    let push = |branch: &str| {
        with(|c| {
            c.event = Some(Event::Push);
            c.branch = Some(branch.into());
        })
    };
    let tag = |t: &str| {
        with(|c| {
            c.event = Some(Event::Tag);
            c.tag = Some(t.into());
        })
    };
    let changed =
        |paths: &[&str]| with(|c| c.changed = Some(paths.iter().map(|p| p.to_string()).collect()));
    let cases: Vec<(&str, PlanContext, Option<&str>)> = vec![
        ("{}", ctx(), None),
        ("{ branch: develop }", push("develop"), None),
        (
            "{ branch: develop }",
            push("main"),
            Some("branch \"main\" does not match \"develop\""),
        ),
        ("{ branch: [main, 'release/*'] }", push("release/1.0"), None),
        (
            "{ branch: 'release/*' }",
            push("release/1.0/hotfix"),
            Some("branch \"release/1.0/hotfix\" does not match \"release/*\""),
        ),
        ("{ branch: 'release/**' }", push("release/1.0/hotfix"), None),
        (
            "{ branch: [main, dev] }",
            push("x"),
            Some("branch \"x\" does not match any of \"main\", \"dev\""),
        ),
        (
            "{ branch: main }",
            ctx(),
            Some("not a branch build (when.branch: \"main\")"),
        ),
        ("{ tag: 'v*' }", tag("v1.0"), None),
        (
            "{ tag: 'v*' }",
            tag("1.0"),
            Some("tag \"1.0\" does not match \"v*\""),
        ),
        ("{ event: push }", push("main"), None),
        ("{ event: [push, tag] }", tag("v1"), None),
        (
            "{ event: push }",
            ctx(),
            Some("event \"manual\" is not push"),
        ),
        (
            "{ event: [schedule, poll] }",
            ctx(),
            Some("event \"manual\" is not schedule or poll"),
        ),
        ("{ event: manual }", ctx(), None),
        // Unknown changes (no previous run) match every `changed`.
        ("{ changed: 'src/**' }", ctx(), None),
        (
            "{ changed: 'src/**' }",
            changed(&["src/a/b.rs", "README.md"]),
            None,
        ),
        (
            "{ changed: ['src/**', '*.toml'] }",
            changed(&["Cargo.toml"]),
            None,
        ),
        (
            "{ changed: 'src/**' }",
            changed(&["docs/x.md"]),
            Some("no changed path matches \"src/**\""),
        ),
        (
            "{ changed: 'src/**' }",
            changed(&[]),
            Some("no changed path matches \"src/**\""),
        ),
        (
            "{ param: { DEPLOY: true } }",
            with(|c| {
                c.params.insert("DEPLOY".into(), "true".into());
            }),
            None,
        ),
        (
            "{ param: { DEPLOY: true } }",
            ctx(),
            Some("param DEPLOY is \"false\", not \"true\""),
        ),
        ("{ param: { TARGET: [staging, production] } }", ctx(), None),
        (
            "{ param: { TARGET: production } }",
            ctx(),
            Some("param TARGET is \"staging\", not \"production\""),
        ),
        // Keys are ANDed; every failing one is named.
        ("{ branch: main, event: push }", push("main"), None),
        (
            "{ branch: main, event: tag }",
            push("dev"),
            Some("branch \"dev\" does not match \"main\"; event \"push\" is not tag"),
        ),
        ("{ status: failure }", ctx(), None),
    ];
    for (when, c, expect) in cases {
        let text = format!(
            "params:\n  DEPLOY: {{ type: bool }}\n  TARGET: {{ type: choice, choices: [staging, production] }}\njobs:\n  j:\n    when: {when}\n    script: x\n"
        );
        let plan = plan(&text, &c);
        assert_eq!(
            plan.jobs[0].excluded.as_deref(),
            expect,
            "when: {when} with {c:?}"
        );
    }
}

#[test]
fn status_becomes_run_on() {
    for (status, expect) in [
        ("success", RunOn::Success),
        ("failure", RunOn::Failure),
        ("always", RunOn::Always),
    ] {
        let text = format!("jobs:\n  j:\n    when: {{ status: {status} }}\n    script: x\n");
        assert_eq!(plan(&text, &ctx()).jobs[0].run_on, expect, "{status}");
    }
    assert_eq!(
        plan("jobs: { j: { script: x } }", &ctx()).jobs[0].run_on,
        RunOn::Success
    );
}

/// Params: declaration, given value, expected value (or the error text it must contain).
#[test]
fn params_are_typed_and_defaulted() {
    let cases: Vec<(&str, Option<&str>, Result<&str, &str>)> = vec![
        ("{}", None, Ok("")),
        ("{ default: hello }", None, Ok("hello")),
        ("{ default: hello }", Some("bye"), Ok("bye")),
        ("{ type: string, default: 1.20 }", None, Ok("1.20")),
        ("{ type: bool }", None, Ok("false")),
        ("{ type: bool, default: true }", None, Ok("true")),
        ("{ type: bool, default: 'false' }", None, Ok("false")),
        ("{ type: bool }", Some("TRUE"), Ok("true")),
        (
            "{ type: bool }",
            Some("maybe"),
            Err("invalid value \"maybe\" for bool param \"P\": expected true or false"),
        ),
        ("{ type: choice, choices: [a, b] }", None, Ok("a")),
        (
            "{ type: choice, choices: [a, b], default: b }",
            None,
            Ok("b"),
        ),
        ("{ type: choice, choices: [a, b] }", Some("b"), Ok("b")),
        (
            "{ type: choice, choices: [staging, production] }",
            Some("prod"),
            Err("invalid value \"prod\" for param \"P\": not one of its choices"),
        ),
        ("{ type: ref, default: develop }", None, Ok("develop")),
        ("{ type: ref }", Some("v1"), Ok("v1")),
        ("{ type: ref }", None, Err("param \"P\" needs a value")),
    ];
    for (decl, given, expect) in cases {
        let text =
            format!("params:\n  P: {decl}\njobs:\n  j:\n    image: x:${{P}}\n    script: x\n");
        let c = with(|c| {
            if let Some(v) = given {
                c.params.insert("P".into(), v.into());
            }
        });
        let spec = parse("gantry.yml", &text).unwrap_or_else(|d| panic!("{decl}: {d}"));
        match (spec.plan(&c), expect) {
            (Ok(p), Ok(v)) => {
                assert_eq!(p.params["P"], v, "{decl} given {given:?}");
                assert_eq!(env(&p.jobs[0], "P"), Some(v));
                assert_eq!(p.jobs[0].image.as_deref(), Some(format!("x:{v}").as_str()));
            }
            (Err(d), Err(e)) => assert!(d.to_string().contains(e), "{decl} given {given:?}: {d}"),
            (got, _) => panic!("{decl} given {given:?}: expected {expect:?}, got {got:?}"),
        }
    }
}

#[test]
fn ref_params_default_from_the_triggering_ref() {
    let text = "params:\n  R: { type: ref, default: develop }\njobs: { j: { script: x } }\n";
    let cases = [
        (
            with(|c| {
                c.event = Some(Event::Push);
                c.branch = Some("feature/a".into());
            }),
            "feature/a",
        ),
        (
            with(|c| {
                c.event = Some(Event::Tag);
                c.tag = Some("v3".into());
                c.branch = Some("main".into());
            }),
            "v3",
        ),
        (
            with(|c| {
                c.event = Some(Event::Schedule);
                c.branch = Some("main".into());
            }),
            "develop",
        ),
        (
            with(|c| {
                c.event = Some(Event::Push);
                c.branch = Some("x".into());
                c.params.insert("R".into(), "given".into());
            }),
            "given",
        ),
    ];
    for (c, expect) in cases {
        assert_eq!(plan(text, &c).params["R"], expect, "{c:?}");
    }
    // No default and no value: the run's own ref, when there is one.
    let text = "params:\n  R: { type: ref }\njobs: { j: { script: x } }\n";
    assert_eq!(
        plan(text, &with(|c| c.branch = Some("main".into()))).params["R"],
        "main"
    );
}

#[test]
fn plan_errors_render_with_fixes() {
    let text = "params:\n  DEBUG: { type: bool }\n  TARGET: { type: choice, choices: [staging, production] }\njobs: { j: { script: x } }\n";
    let c = with(|c| {
        c.params.insert("DEBUG".into(), "maybe".into());
        c.params.insert("TARGET".into(), "prod".into());
        c.params.insert("TRAGET".into(), "x".into());
        c.params.insert("NOPE".into(), "x".into());
    });
    insta::assert_snapshot!("plan_errors", plan_err(text, &c));
    let none = "jobs: { j: { script: x } }\n";
    insta::assert_snapshot!(
        "plan_errors_no_params",
        plan_err(
            none,
            &with(|c| {
                c.params.insert("X".into(), "1".into());
            })
        )
    );
}

#[test]
fn builtins_are_set_for_every_job() {
    let text =
        "name: demo\njobs:\n  build:\n    workspace: /src\n    script: x\n  host:\n    script: y\n";
    let c = with(|c| {
        c.event = Some(Event::Push);
        c.branch = Some("main".into());
        c.commit = Some("abc123".into());
    });
    let plan = plan(text, &c);
    let b = plan.job("build").expect("build");
    let expect = [
        ("CI", "true"),
        ("GANTRY_RUN_ID", "r-1"),
        ("GANTRY_RUN_NUMBER", "7"),
        ("GANTRY_PIPELINE", "demo"),
        ("GANTRY_JOB", "build"),
        ("GANTRY_EVENT", "push"),
        ("GANTRY_COMMIT", "abc123"),
        ("GANTRY_REF", "main"),
        ("GANTRY_BRANCH", "main"),
        ("GANTRY_TAG", ""),
        ("GANTRY_WORKSPACE", "/src"),
    ];
    let got: Vec<(&str, &str)> = b
        .env
        .iter()
        .map(|(k, v)| {
            (
                k.as_str(),
                match v {
                    EnvValue::Plain(s) | EnvValue::Secret(s) => s.as_str(),
                },
            )
        })
        .collect();
    assert_eq!(got, expect, "built-ins, in the documented order");
    let h = plan.job("host").expect("host");
    assert_eq!(env(h, "GANTRY_WORKSPACE"), Some("/workspace"));
    assert_eq!(env(h, "GANTRY_JOB"), Some("host"));
    // A manual run.
    let m = self::plan(text, &ctx());
    assert_eq!(env(&m.jobs[0], "GANTRY_EVENT"), Some("manual"));
}

#[test]
fn interpolation_and_env_order() {
    let text = r#"
params:
  VERSION: { default: "1.0" }
env:
  REGISTRY: registry.local
  IMAGE: ${REGISTRY}/app:${VERSION}
  WHO: ${GANTRY_JOB}
  TOKEN: { secret: DEPLOY_TOKEN }
  SHARED: top
defaults:
  image: ${REGISTRY}/builder
  timeout: 5m
  retry: 2
jobs:
  build:
    env:
      SHARED: job
      OUT: ${GANTRY_WORKSPACE}/dist
      LATER: ${OUT}/x
    script: echo ${NOT_INTERPOLATED} $$HOME
    artifacts: ["${VERSION}/out"]
    cache: { key: "deps-${hash:Cargo.lock}-${VERSION}", paths: [target] }
    runs_on: { pool: "${MISSING:-default}" }
    image_build: { tag: ["${IMAGE}", "cost-$$5"], args: { V: "${VERSION}" } }
  other:
    image: alpine
    timeout: 1h30m
    retry: 0
    allow_failure: true
    script: [a, b]
"#;
    let plan = plan(text, &ctx());
    let b = plan.job("build").expect("build");
    assert_eq!(
        b.image.as_deref(),
        Some("registry.local/builder"),
        "defaults.image, interpolated"
    );
    assert_eq!(
        (b.timeout, b.retry, b.allow_failure),
        (Duration::from_secs(300), 2, false)
    );
    assert_eq!(env(b, "IMAGE"), Some("registry.local/app:1.0"));
    assert_eq!(env(b, "WHO"), Some("build"));
    assert_eq!(
        env(b, "SHARED"),
        Some("job"),
        "job env wins over the top-level env"
    );
    assert_eq!(env(b, "OUT"), Some("/workspace/dist"));
    assert_eq!(env(b, "LATER"), Some("/workspace/dist/x"));
    assert!(
        b.env
            .iter()
            .any(|(k, v)| k == "TOKEN" && *v == EnvValue::Secret("DEPLOY_TOKEN".into()))
    );
    assert_eq!(
        b.env.iter().filter(|(k, _)| k == "SHARED").count(),
        1,
        "overridden entries are dropped"
    );
    assert_eq!(
        b.script,
        ["echo ${NOT_INTERPOLATED} $$HOME"],
        "script is left to the shell"
    );
    assert_eq!(b.artifacts, ["1.0/out"]);
    assert_eq!(
        b.cache.as_ref().map(|c| c.key.as_str()),
        Some("deps-${hash:Cargo.lock}-1.0")
    );
    assert_eq!(
        b.runs_on,
        BTreeMap::from([("pool".into(), "default".into())])
    );
    let ib = b.image_build.as_ref().expect("image_build");
    assert_eq!(ib.tags, ["registry.local/app:1.0", "cost-$5"]);
    assert_eq!(ib.args, BTreeMap::from([("V".into(), "1.0".into())]));
    // The env order: built-ins, params, top-level env, job env.
    let keys: Vec<&str> = b.env.iter().map(|(k, _)| k.as_str()).collect();
    let pos = |k: &str| keys.iter().position(|x| *x == k).unwrap_or(usize::MAX);
    assert!(
        pos("GANTRY_WORKSPACE") < pos("VERSION")
            && pos("VERSION") < pos("REGISTRY")
            && pos("REGISTRY") < pos("SHARED")
    );
    assert!(pos("SHARED") < pos("LATER"));

    let o = plan.job("other").expect("other");
    assert_eq!(
        (o.timeout, o.retry, o.allow_failure),
        (Duration::from_secs(5400), 0, true)
    );
    assert_eq!(o.image.as_deref(), Some("alpine"));
}

#[test]
fn paths_that_escape_after_interpolation_are_refused() {
    let text = "params:\n  DIR: { default: out }\njobs:\n  j:\n    script: x\n    artifacts: [\"${DIR}/bin\"]\n";
    assert_eq!(plan(text, &ctx()).jobs[0].artifacts, ["out/bin"]);
    let err = plan_err(
        text,
        &with(|c| {
            c.params.insert("DIR".into(), "../..".into());
        }),
    );
    assert!(err.contains("\"artifacts\" of job \"j\" is \"../../bin\" after interpolation, which must not leave the workspace"), "{err}");
    let err = plan_err(
        text,
        &with(|c| {
            c.params.insert("DIR".into(), "/etc".into());
        }),
    );
    assert!(err.contains("not an absolute one"), "{err}");
}

#[test]
fn select_keeps_jobs_and_what_they_need() {
    let text = "
jobs:
  build: { matrix: { OS: [linux, mac] }, script: b }
  lint: { script: l }
  test: { needs: [build], script: t }
  package: { needs: [test], script: p }
  docs: { script: d }
";
    let plan = plan(text, &ctx());
    let sel =
        |names: &[&str]| plan.select(&names.iter().map(|s| s.to_string()).collect::<Vec<_>>());
    let cases: Vec<(&[&str], Vec<&str>)> = vec![
        (
            &["package"],
            vec!["build (OS=linux)", "build (OS=mac)", "test", "package"],
        ),
        (
            &["test", "docs"],
            vec!["build (OS=linux)", "build (OS=mac)", "test", "docs"],
        ),
        (&["build (OS=mac)"], vec!["build (OS=mac)"]),
        (&["build"], vec!["build (OS=linux)", "build (OS=mac)"]),
        (&["lint"], vec!["lint"]),
        (&[], vec![]),
    ];
    for (names_in, expect) in cases {
        let p = sel(names_in).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(names(&p), expect, "{names_in:?}");
        for (i, j) in p.jobs.iter().enumerate() {
            assert!(j.needs.iter().all(|&n| n < i), "needs are renumbered");
        }
    }
    let p = sel(&["package"]).expect("select");
    assert_eq!(
        shape(&p)[2],
        (
            "test".to_string(),
            vec!["build (OS=linux)".to_string(), "build (OS=mac)".to_string()]
        )
    );
    let e = sel(&["tset", "nothing"]).expect_err("unknown names");
    assert_eq!(
        e.to_string(),
        "no jobs named \"tset\" (did you mean \"test\"?), \"nothing\"; the jobs are: build, lint, test, package, docs"
    );
    assert_eq!(
        sel(&["dcos"]).expect_err("typo").to_string(),
        "no job named \"dcos\" (did you mean \"docs\"?); the jobs are: build, lint, test, package, docs"
    );
}

#[test]
fn spec_accessors() {
    let text = "params:\n  A: { type: bool, description: Turn it on }\n  B: { type: choice, choices: [x, y] }\njobs: { j: { script: x } }\n";
    let spec = parse("ci/nightly.yml", text).expect("parses");
    assert_eq!(spec.name(), "nightly");
    let ps: Vec<(&str, &str)> = spec
        .params()
        .iter()
        .map(|p| (p.name.as_str(), p.kind.value.as_str()))
        .collect();
    assert_eq!(ps, [("A", "bool"), ("B", "choice")]);
    assert_eq!(
        spec.params()[0].description.as_deref().map(String::as_str),
        Some("Turn it on")
    );
    assert_eq!(spec.path(), "ci/nightly.yml");
    let named = gantry_pipeline::parse_named("gantry.yml", "my-repo", text).expect("parses");
    assert_eq!(named.name(), "my-repo");
    assert_eq!(
        gantry_pipeline::PIPELINE_FILE_NAMES,
        ["gantry.yml", ".gantry.yml"]
    );
}

#[test]
fn triggers_are_parsed() {
    let spec = parse("gantry.yml", SEED).expect("seed parses");
    assert!(spec.on.push_matches("develop"));
    assert!(!spec.on.push_matches("main"));
    assert!(spec.on.tag_matches("v1.2.3"));
    assert_eq!(
        spec.on.poll.as_ref().map(|p| p.value),
        Some(Duration::from_secs(300))
    );
    assert!(spec.on.manual());
    assert_eq!(spec.notify.len(), 2);
    let text = "on: { schedule: ['0 3 * * 1-5', '@daily'], pull_request: main, manual: false }\njobs: { j: { script: x } }\n";
    let spec = parse("gantry.yml", text).expect("parses");
    assert_eq!(
        spec.on
            .schedule
            .iter()
            .map(|s| s.as_str())
            .collect::<Vec<_>>(),
        ["0 3 * * 1-5", "@daily"]
    );
    assert!(spec.on.pull_request_matches("main"));
    assert!(!spec.on.manual());
}

#[test]
fn yaml_features_users_rely_on() {
    let text = r#"
.defaults: &base
  image: alpine
  timeout: 2m
jobs:
  a:
    <<: *base
    script: |
      echo one
      echo two
  b:
    <<: *base
    image: debian
    script: >-
      echo folded
      line
"#;
    // `.defaults` is not a top-level key, so anchors must live somewhere legal: check
    // that the unknown key is reported and the rest still parses.
    let err = parse("gantry.yml", text).expect_err("unknown top-level key");
    assert!(
        err.to_string()
            .contains("unknown key \".defaults\" in the top level"),
        "{err}"
    );
    let text = text.replace(".defaults: &base", "defaults: &base");
    let plan = plan(&text, &ctx());
    let a = plan.job("a").expect("a");
    assert_eq!(
        (a.image.as_deref(), a.timeout),
        (Some("alpine"), Duration::from_secs(120))
    );
    assert_eq!(a.script, ["echo one\necho two\n"]);
    let b = plan.job("b").expect("b");
    assert_eq!(
        (b.image.as_deref(), b.script.as_slice()),
        (Some("debian"), &["echo folded line".to_string()][..])
    );
}

#[test]
fn the_complete_example_in_the_docs_is_valid() {
    let doc = include_str!("../../../docs/pipeline.md");
    let start = doc.find("## A complete example").expect("section exists");
    let block = &doc[start..];
    let yaml_start = block.find("```yaml\n").expect("a yaml block") + "```yaml\n".len();
    let yaml = &block[yaml_start..];
    let yaml = &yaml[..yaml.find("```").expect("closed block")];
    let c = with(|c| {
        c.event = Some(Event::Tag);
        c.tag = Some("v2.0.0".into());
    });
    let plan = plan(yaml, &c);
    assert_eq!(
        names(&plan),
        [
            "build",
            "package",
            "integration",
            "deploy-staging",
            "deploy-production"
        ]
    );
    assert_eq!(plan.params["GO_AUTH_VERSION"], "v2.0.0");
}

#[test]
fn public_types_cross_threads() {
    fn assert_send_sync<T: Send + Sync>() {}
    assert_send_sync::<gantry_pipeline::Spec>();
    assert_send_sync::<Plan>();
    assert_send_sync::<gantry_pipeline::Diagnostics>();
    assert_send_sync::<gantry_pipeline::SelectError>();
}
