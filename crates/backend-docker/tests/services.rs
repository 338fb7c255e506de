//! Services: a private network per job, reachable by name, readiness checked from inside
//! the network, failures with the service's last lines, and no conflicts between jobs.

mod common;

use std::time::Duration;

use common::*;
use gantry_backend::{Outcome, ReadySpec, ServiceSpec, Stream};
use gantry_backend_docker::DockerSettings;

/// A web service on port 8080 answering `/health` with `$TOKEN` (busybox httpd).
fn web(name: &str, token: &str) -> ServiceSpec {
    let mut s = service(
        name,
        "echo web starting; mkdir -p /www && echo \"$TOKEN\" > /www/health && \
         exec busybox httpd -f -v -p 8080 -h /www",
    );
    s.env = vec![("TOKEN".into(), token.into())];
    s.ready = Some(ReadySpec {
        port: 8080,
        http_path: Some("/health".into()),
        timeout: Duration::from_secs(60),
    });
    s
}

#[tokio::test]
async fn services_are_reached_by_name_and_their_logs_are_kept() {
    let backend = backend().await;
    let (mut spec, _ws) = job(
        "by-name",
        &[
            "curl -fsS http://web:8080/health",
            "getent hosts web >/dev/null",
        ],
    );
    spec.services = vec![web("web", "token-1")];
    let ran = run(&backend, &spec).await;
    assert_eq!(ran.outcome(), &Outcome::Success, "{}", ran.log());
    assert!(
        ran.texts(Stream::Stdout).contains(&"token-1".to_owned()),
        "{}",
        ran.log()
    );
    let system = ran.texts(Stream::System);
    assert!(
        system.contains(&"service web is ready (http GET /health on port 8080)".to_owned()),
        "{system:?}"
    );
    // Held back until ready, then kept, prefixed with the service's name.
    let web_lines: Vec<&str> = ran
        .lines
        .iter()
        .filter(|l| l.stream == Stream::Service && l.source.as_deref() == Some("web"))
        .map(|l| l.text.as_str())
        .collect();
    assert_eq!(web_lines.first(), Some(&"web starting"), "{}", ran.log());
    ran.teardown.expect("teardown");
    assert_eq!(leftovers(&spec.run_id), Vec::<String>::new());
}

/// Every probe tool, alone, against a TCP and an HTTP service (all at once: each case is
/// mostly waiting for containers).
#[tokio::test]
async fn each_probe_tool_works() {
    let cases = [
        ("bash", false),
        ("perl", false),
        ("curl", false),
        ("curl", true),
        ("perl", true),
        ("bash", true),
    ];
    let runs = cases.iter().map(|&(tool, http)| async move {
        let backend = backend_with(DockerSettings {
            probe_tools: Some(vec![tool.to_owned()]),
            ..DockerSettings::default()
        })
        .await;
        let (mut spec, ws) = job("probe-tools", &["true"]);
        let mut svc = web("web", "t");
        if !http {
            svc.ready.as_mut().expect("ready").http_path = None;
        }
        spec.services = vec![svc];
        let ran = run(&backend, &spec).await;
        drop(ws);
        (tool, http, spec.run_id, ran)
    });
    for (tool, http, run_id, ran) in futures_util::future::join_all(runs).await {
        assert_eq!(
            ran.outcome(),
            &Outcome::Success,
            "{tool} http={http}\n{}",
            ran.log()
        );
        assert_eq!(leftovers(&run_id), Vec::<String>::new());
    }
}

#[tokio::test]
async fn readiness_failures_name_the_service_and_show_its_last_lines() {
    let backend = backend_with(DockerSettings {
        service_log_lines: 2,
        ..DockerSettings::default()
    })
    .await;
    let never = {
        let mut s = service("slow", "echo one; echo two; echo three; exec sleep 600");
        s.ready = Some(ReadySpec {
            port: 9999,
            http_path: None,
            timeout: Duration::from_secs(2),
        });
        s
    };
    let crash = {
        let mut s = service("crash", "echo bad config >&2; exit 2");
        s.ready = Some(ReadySpec {
            port: 9999,
            http_path: None,
            timeout: Duration::from_secs(60),
        });
        s
    };
    let wrong_status = {
        let mut s = web("web", "t");
        s.ready.as_mut().expect("ready").http_path = Some("/missing".into());
        s.ready.as_mut().expect("ready").timeout = Duration::from_secs(2);
        s
    };
    for (svc, reason, last) in [
        (
            never,
            "did not become ready within 2s (tcp 9999)",
            &["two", "three"][..],
        ),
        (
            crash,
            "exited with code 2 before it was ready (tcp 9999)",
            &["bad config"][..],
        ),
        (
            wrong_status,
            "did not become ready within 2s (http GET /missing on port 8080)",
            &[][..],
        ),
    ] {
        let (mut spec, _ws) = job("not-ready", &["echo never runs"]);
        let name = svc.name.clone();
        spec.services = vec![svc];
        let ran = run(&backend, &spec).await;
        let common::Ended::Services(failure) = &ran.ended else {
            panic!(
                "expected a service failure, got {:?}\n{}",
                ran.ended,
                ran.log()
            );
        };
        assert_eq!(failure.service, name);
        assert_eq!(failure.reason, reason);
        if !last.is_empty() {
            assert_eq!(failure.last_logs, last, "{name}");
        }
        assert!(!ran.texts(Stream::Stdout).contains(&"never runs".to_owned()));
        ran.teardown.expect("teardown");
        assert_eq!(leftovers(&spec.run_id), Vec::<String>::new(), "{name}");
    }
}

#[tokio::test]
async fn an_image_without_probe_tools_is_said_so() {
    let backend = backend_with(DockerSettings {
        probe_tools: Some(vec!["no-such-tool".into()]),
        ..DockerSettings::default()
    })
    .await;
    let (mut spec, _ws) = job("no-tools", &["true"]);
    spec.services = vec![web("web", "t")];
    let ran = run(&backend, &spec).await;
    let common::Ended::Services(failure) = &ran.ended else {
        panic!("expected a service failure, got {:?}", ran.ended);
    };
    assert_eq!(
        failure.to_string(),
        "service \"web\" cannot be checked for readiness (http GET /health on port 8080): this \
         image has none of: no-such-tool; use a job image that has one of them, or remove \
         `ready`"
    );
    assert_eq!(leftovers(&spec.run_id), Vec::<String>::new());
}

/// The same service name and port in several jobs at once — two runs of one pipeline and
/// two matrix instances of one run — each job sees its own service.
#[tokio::test]
async fn concurrent_jobs_with_the_same_services_do_not_conflict() {
    let backend = backend().await;
    let (base, _ws0) = job("concurrent", &[]);
    let mut jobs = Vec::new();
    for (i, (run_id, key)) in [
        (base.run_id.clone(), "test-a"),
        (base.run_id.clone(), "test-b"),
        (unique_run_id("concurrent"), "test-a"),
        (unique_run_id("concurrent"), "test-a"),
    ]
    .into_iter()
    .enumerate()
    {
        let token = format!("token-{i}");
        let (mut spec, ws) = job(
            "concurrent",
            &[&format!(
                "test \"$(curl -fsS http://db:8080/health)\" = {token}"
            )],
        );
        spec.run_id = run_id.clone();
        spec.job_key = key.to_owned();
        spec.labels = vec![
            ("gantry.run".into(), run_id),
            ("gantry.job".into(), key.into()),
        ];
        spec.services = vec![web("db", &token)];
        jobs.push((spec, ws));
    }
    let runs = jobs.iter().map(|(spec, _)| run(&backend, spec));
    let results = futures_util::future::join_all(runs).await;
    for ((spec, _), ran) in jobs.iter().zip(&results) {
        assert_eq!(ran.outcome(), &Outcome::Success, "{}", ran.log());
        assert_eq!(leftovers(&spec.run_id), Vec::<String>::new());
    }
}

#[tokio::test]
async fn mariadb_as_a_service() {
    let backend = backend().await;
    let (mut spec, _ws) = job(
        "mariadb",
        &["mariadb -h db -u messenger -pmessenger messenger -N -e 'select 40 + 2'"],
    );
    spec.image = Some(MARIADB.into());
    spec.services = vec![ServiceSpec {
        name: "db".into(),
        image: MARIADB.into(),
        env: [
            ("MYSQL_ROOT_PASSWORD", "rootpass"),
            ("MYSQL_DATABASE", "messenger"),
            ("MYSQL_USER", "messenger"),
            ("MYSQL_PASSWORD", "messenger"),
        ]
        .iter()
        .map(|(k, v)| ((*k).into(), (*v).into()))
        .collect(),
        command: None,
        ready: Some(ReadySpec {
            port: 3306,
            http_path: None,
            timeout: Duration::from_secs(120),
        }),
    }];
    let ran = run(&backend, &spec).await;
    assert_eq!(ran.outcome(), &Outcome::Success, "{}", ran.log());
    assert!(
        ran.texts(Stream::Stdout).contains(&"42".to_owned()),
        "{}",
        ran.log()
    );
    ran.teardown.expect("teardown");
    assert_eq!(leftovers(&spec.run_id), Vec::<String>::new());
}
