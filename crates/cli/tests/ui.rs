//! End-to-end tests of the web UI in a real browser: the built `gantry` binary as the
//! server (SQLite and files in a temporary data directory, the built-in executor on the
//! local backend), real bare git repositories pushed to by the test, and a headless
//! browser driven through WebDriver looking at the pages.
//!
//! Every scenario runs in both browsers the web UI supports: once as
//! `chromium::SCENARIO` (Chromium through chromedriver) and once as `firefox::SCENARIO`
//! (Firefox ESR through geckodriver), so a failure names its browser; `cargo nextest run
//! -p gantry --test ui -E 'test(/^firefox::/)'` runs one browser's.
//!
//! Each test saves screenshots of the pages it visits; with `GANTRY_SCREENSHOTS=1`
//! Chromium's replace the committed set in `docs/screenshots/` (laptop width, and one
//! phone-width dashboard) and Firefox's go to `screenshots-firefox/` under the target
//! dir's `tmp/`; otherwise they go to a temporary directory.
//!
//! Nothing here asserts timing: every wait is for a state of the page or the API with a
//! generous deadline.

#[path = "ui/browser.rs"]
mod browser;
#[path = "ui/server.rs"]
mod server;
mod support;

use browser::{Browser, Kind, PHONE};
use server::Server;
use support::Repo;

/// One test per scenario and browser: `$browser::$scenario` runs `$scenario(Kind::$kind)`.
macro_rules! browser_tests {
    ($($browser:ident => $kind:ident),+ ; $scenarios:tt) => {
        $(browser_tests!(@one $browser $kind $scenarios);)+
    };
    (@one $browser:ident $kind:ident [$($scenario:ident),* $(,)?]) => {
        /// The scenarios in this browser.
        mod $browser {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $scenario() {
                    super::$scenario(super::Kind::$kind).await
                }
            )*
        }
    };
}

browser_tests!(chromium => Chromium, firefox => Firefox; [
    login_then_dashboard,
    pipeline_view_follows_a_pushed_commit_live,
    job_log_streams_while_the_job_runs,
    failing_job_shows_its_failing_line,
    artifact_downloads_with_the_session,
    run_with_parameters_through_the_form,
]);

const GREETER: &str = r#"
name: app
on:
  push: [develop]
params:
  BREAK:
    type: bool
    description: Make the tests fail
jobs:
  build:
    script:
      - echo "building"
  test:
    needs: [build]
    script:
      - echo "testing"
      - test "$BREAK" = false
"#;

/// Anonymous visitors are sent to the login page; a wrong token is refused there with a
/// message; the admin token leads to the dashboard, which lists the pipeline with its
/// last run's status, ref and history.
async fn login_then_dashboard(kind: Kind) {
    let repo = Repo::new(GREETER);
    let server = Server::start(&["--poll-interval", "1h"]);
    server.ok(&["repo", "add", "app", &repo.url()]);
    // Three runs, one by one so that their order is known: passed, failed, passed.
    for (param, state) in [
        ("BREAK=false", "succeeded"),
        ("BREAK=true", "failed"),
        ("BREAK=false", "succeeded"),
    ] {
        let id = server.trigger(&["app", "--param", param]);
        let run = server.wait_final("app", id);
        assert_eq!(run["state"], state, "{run:#}\n{}", server.output());
    }

    let b = Browser::start(&server, kind).await;
    b.open("/").await;
    b.wait("form#login-form").await;
    let url = b.url().await;
    assert!(
        url.contains("/login"),
        "an anonymous visitor is sent to the login page: {url}"
    );
    b.screenshot("login").await;

    // A wrong token: the form says so and nobody is logged in.
    b.wait("input#token")
        .await
        .send_keys("gantry_wrong")
        .await
        .expect("type");
    b.wait("button#login-submit")
        .await
        .click()
        .await
        .expect("submit");
    let error = b.wait("#login-error").await.text().await.expect("text");
    assert!(!error.trim().is_empty(), "the login error says something");
    assert!(!b.has("#whoami").await, "a wrong token logs nobody in");

    b.login(&server.token).await;
    let row = b
        .wait(r#"table#dashboard tr.pipeline-row[data-repo="app"][data-pipeline="app"]"#)
        .await;
    let status = b
        .wait(r#"tr.pipeline-row[data-repo="app"] :is(.last-status[data-state], .last-status [data-state])"#)
        .await;
    assert_eq!(
        status.attr("data-state").await.expect("attr").as_deref(),
        Some("succeeded")
    );
    // Status is never colour alone: the word is there too.
    let word = status.text().await.expect("text");
    assert!(word.contains("passed"), "{word}");
    let text = row.text().await.expect("text");
    assert!(
        text.contains("develop"),
        "the last run's ref is shown: {text}"
    );
    let history = b
        .js(
            "return Array.from(document.querySelectorAll(\
             'tr.pipeline-row[data-repo=\"app\"] ol.history li.history-item'))\
             .map(li => li.dataset.state)",
            vec![],
        )
        .await;
    assert_eq!(
        history,
        serde_json::json!(["succeeded", "failed", "succeeded"]),
        "the history strip, newest first"
    );
    b.screenshot("dashboard").await;

    b.resize(PHONE).await;
    b.open("/").await;
    b.wait(r#"tr.pipeline-row[data-repo="app"]"#).await;
    b.screenshot("dashboard-phone").await;
    b.close().await;
}

/// A pipeline whose `build` waits for the test to open a gate (a file), so that the test
/// sees it running for as long as it needs to, without timing anything.
fn gated(gate: &std::path::Path) -> String {
    format!(
        r#"
name: app
on:
  push: [develop]
  poll: 1s
jobs:
  build:
    script:
      - echo "waiting for the gate"
      - while [ ! -e '{gate}' ]; do sleep 0.2; done
      - echo "built"
  test:
    needs: [build]
    script:
      - echo "tested"
"#,
        gate = gate.display()
    )
}

/// A pushed commit's run appears in the open pipeline view by itself, its `build` cell
/// shows it running, and the cells turn to succeeded in place (the page is not loaded
/// again) when the jobs finish.
async fn pipeline_view_follows_a_pushed_commit_live(kind: Kind) {
    let gates = tempfile::tempdir().expect("tempdir");
    let gate = gates.path().join("open");
    let repo = Repo::new(&gated(&gate));
    let server = Server::start(&["--poll-interval", "1s"]);
    server.ok(&["repo", "add", "app", &repo.url()]);
    // A first, finished run, so that the pipeline view has its table to watch.
    std::fs::write(&gate, "").expect("open the gate");
    let first = server.trigger(&["app"]);
    let run = server.wait_final("app", first);
    assert_eq!(run["state"], "succeeded", "{run:#}\n{}", server.output());
    std::fs::remove_file(&gate).expect("close the gate");
    // The first poll only learns where the branches are: push after it.
    server.wait_polled("app");

    let b = Browser::start(&server, kind).await;
    b.login(&server.token).await;
    b.open("/repos/app/pipelines/app").await;
    b.wait(r#"table#pipeline-runs tr.run-row[data-run-number="1"][data-state="succeeded"]"#)
        .await;
    let columns = b
        .js(
            "return Array.from(document.querySelectorAll('th.job-col')).map(th => th.dataset.job)",
            vec![],
        )
        .await;
    assert_eq!(
        columns,
        serde_json::json!(["build", "test"]),
        "jobs in DAG order"
    );

    let commit = repo.commit("README.md", "a change\n", "a change to build");
    // The page notices the new run by itself.
    let row = r#"tr.run-row[data-run-number="2"]"#;
    b.wait(&format!(
        r#"{row}[data-live="1"] td.job-cell[data-job="build"][data-state="running"]"#
    ))
    .await;
    let short = b.wait(&format!("{row} .run-commit")).await;
    let title = short.attr("title").await.expect("attr").unwrap_or_default();
    assert_eq!(title, commit, "the row is the pushed commit's");
    let cause = b
        .wait(&format!("{row} .run-cause"))
        .await
        .text()
        .await
        .expect("text");
    assert!(cause.to_lowercase().contains("poll"), "cause: {cause}");
    let waiting = b
        .wait(&format!(r#"{row} td.job-cell[data-job="test"]"#))
        .await
        .attr("data-state")
        .await
        .expect("attr");
    assert!(
        matches!(waiting.as_deref(), Some("queued" | "pending")),
        "test waits for build: {waiting:?}"
    );
    b.screenshot("pipeline-running").await;

    // From here on the page must update in place: a mark on the window would not survive
    // a reload.
    b.js(
        "window.gantryUiTestMark = 'still here'; return null",
        vec![],
    )
    .await;
    std::fs::write(&gate, "").expect("open the gate");
    b.wait(&format!(
        r#"{row}[data-state="succeeded"] td.job-cell[data-job="test"][data-state="succeeded"]"#
    ))
    .await;
    let build = b
        .wait(&format!(r#"{row} td.job-cell[data-job="build"]"#))
        .await;
    assert_eq!(
        build.attr("data-state").await.expect("attr").as_deref(),
        Some("succeeded")
    );
    let word = build.text().await.expect("text");
    assert!(word.contains("passed"), "the status is a word too: {word}");
    let mark = b.js("return window.gantryUiTestMark || null", vec![]).await;
    assert_eq!(
        mark, "still here",
        "the cells changed without loading the page again"
    );
    b.screenshot("pipeline").await;
    b.close().await;
}

/// A job that stops at two gates (files the test creates), so that the test can look at
/// its log while it runs.
fn two_gates(first: &std::path::Path, second: &std::path::Path) -> String {
    format!(
        r#"
name: app
on:
  manual: true
jobs:
  build:
    script:
      - echo "waiting for the first gate"
      - while [ ! -e '{first}' ]; do sleep 0.2; done
      - echo "past the first gate"
      - while [ ! -e '{second}' ]; do sleep 0.2; done
      - echo "all done"
"#,
        first = first.display(),
        second = second.display()
    )
}

/// The log page of a running job shows new lines as the job writes them (streamed into
/// the open page, not by loading it again), and its final state when the job ends.
async fn job_log_streams_while_the_job_runs(kind: Kind) {
    let gates = tempfile::tempdir().expect("tempdir");
    let (first, second) = (gates.path().join("first"), gates.path().join("second"));
    let repo = Repo::new(&two_gates(&first, &second));
    let server = Server::start(&["--poll-interval", "1h"]);
    server.ok(&["repo", "add", "app", &repo.url()]);
    let id = server.trigger(&["app"]);

    let b = Browser::start(&server, kind).await;
    b.login(&server.token).await;
    b.open(&format!("/runs/{id}/jobs/build")).await;
    b.wait(r#"#log[data-live="1"]"#).await;
    b.wait_text("#log", "waiting for the first gate").await;
    assert!(
        !b.wait("#log")
            .await
            .text()
            .await
            .expect("text")
            .contains("past the first gate"),
        "the job is still at its first gate"
    );
    b.js(
        "window.gantryUiTestMark = 'still here'; return null",
        vec![],
    )
    .await;
    std::fs::write(&first, "").expect("open the first gate");
    b.wait_text("#log", "past the first gate").await;
    let mark = b.js("return window.gantryUiTestMark || null", vec![]).await;
    assert_eq!(
        mark, "still here",
        "the new line was streamed into the open page"
    );
    // The header's state is as rendered (queued or running): it changes at the end.
    assert!(
        b.has(r#"#log[data-live="1"]"#).await
            && !b.has(r#"#log-header[data-state="succeeded"]"#).await,
        "the job is still running"
    );
    b.screenshot("job-log-live").await;

    std::fs::write(&second, "").expect("open the second gate");
    b.wait(r#"#log-header[data-state="succeeded"]"#).await;
    b.wait_text("#log", "all done").await;
    b.close().await;
}

/// A run with a failing job, a matrix and an artifact.
const BROKEN: &str = r#"
name: app
on:
  manual: true
jobs:
  build:
    script:
      - mkdir -p dist
      - printf 'gantry \001\377 artifact\n' > dist/hello.bin
    artifacts: [dist/hello.bin]
  lint:
    needs: [build]
    matrix:
      LEVEL: [strict, loose]
    script:
      - echo "lint $LEVEL"
  broken:
    needs: [build]
    script:
      - printf '\033[1;32mcompiled\033[0m 3 crates\n'
      - echo "about to fail"
      - test -f missing-file
      - echo "never printed"
  deploy:
    needs: [lint, broken]
    script:
      - echo "not reached"
"#;

/// Starts the [`BROKEN`] pipeline and waits for its run to fail; returns the server (with
/// the repository, which must outlive it) and the run's id.
fn broken_run() -> (Repo, Server, i64) {
    let repo = Repo::new(BROKEN);
    let server = Server::start(&["--poll-interval", "1h"]);
    server.ok(&["repo", "add", "app", &repo.url()]);
    let id = server.trigger(&["app"]);
    let run = server.wait_final("app", id);
    assert_eq!(run["state"], "failed", "{run:#}\n{}", server.output());
    (repo, server, id)
}

/// The run page draws the DAG; clicking the failing job's node opens its log, where the
/// failing command is highlighted and linked to.
async fn failing_job_shows_its_failing_line(kind: Kind) {
    let (_repo, server, id) = broken_run();
    let b = Browser::start(&server, kind).await;
    b.login(&server.token).await;
    b.open(&format!("/runs/{id}")).await;
    b.wait(&format!(
        r#"#run-header[data-run-id="{id}"][data-state="failed"]"#
    ))
    .await;
    for (job, state) in [
        ("build", "succeeded"),
        ("broken", "failed"),
        ("deploy", "skipped"),
    ] {
        let node = b
            .wait(&format!(r#"svg#run-graph g.node[data-job="{job}"]"#))
            .await;
        assert_eq!(
            node.attr("data-state").await.expect("attr").as_deref(),
            Some(state),
            "node {job}"
        );
    }
    assert!(
        b.has(r#"svg#run-graph path.edge[data-from="build"][data-to="broken"]"#)
            .await,
        "an edge from build to broken"
    );
    assert!(
        b.has(r#"svg#run-graph g.matrix-group[data-base="lint"]"#)
            .await,
        "the matrix instances are grouped"
    );
    b.screenshot("run").await;

    // On the node's shape inside its link, where a user clicks: Firefox's hit testing
    // (`elementsFromPoint`) leaves out SVG containers such as `<a>`, so its WebDriver
    // refuses to click the link element itself ("could not be scrolled into view").
    b.wait(r#"svg#run-graph g.node[data-job="broken"] a rect"#)
        .await
        .click()
        .await
        .expect("click the failed node");
    b.wait(r#"#log-header[data-job="broken"][data-state="failed"]"#)
        .await;
    let failing = b.wait("#log .line.failing-cmd").await;
    let text = failing.text().await.expect("text");
    assert!(
        text.contains("test -f missing-file"),
        "the failing command: {text}"
    );
    let n = failing.attr("data-n").await.expect("attr").expect("data-n");
    let goto = b.wait("a#goto-failing").await;
    let href = goto.attr("href").await.expect("attr").unwrap_or_default();
    assert_eq!(href, format!("#L{n}"), "the link leads to the failing line");
    // Only the failing command is highlighted, not the lines around it.
    assert_eq!(b.all("#log .line.failing-cmd").await.len(), 1);
    // ANSI colours are rendered, not shown as escape codes.
    let green = b
        .wait("#log .line span.fg-2")
        .await
        .text()
        .await
        .expect("text");
    assert_eq!(green, "compiled");
    let log = b.wait("#log").await.text().await.expect("text");
    assert!(!log.contains('\u{1b}'), "{log}");
    assert!(log.contains("about to fail"), "{log}");
    assert!(!log.contains("\nnever printed"), "{log}");
    // The raw download is the stored log, fetched with the session.
    let raw = b
        .wait("a#raw-log")
        .await
        .prop("href")
        .await
        .expect("prop")
        .expect("href");
    let (status, bytes) = b.fetch(&raw).await;
    assert_eq!(status, 200, "GET {raw}");
    let raw = String::from_utf8_lossy(&bytes);
    assert!(
        raw.contains("+ test -f missing-file") && raw.contains('\u{1b}'),
        "the raw log keeps the text as written: {raw}"
    );
    b.screenshot("job-log").await;
    b.close().await;
}

/// An artifact's download link on the run page gives the stored bytes to the logged-in
/// session.
async fn artifact_downloads_with_the_session(kind: Kind) {
    let (_repo, server, id) = broken_run();
    let b = Browser::start(&server, kind).await;
    b.login(&server.token).await;
    b.open(&format!("/runs/{id}")).await;
    let link = b
        .wait(r#"table#artifacts tr.artifact[data-job="build"][data-path="dist/hello.bin"] a.artifact-download"#)
        .await;
    let href = link.prop("href").await.expect("prop").expect("href");
    let (status, bytes) = b.fetch(&href).await;
    assert_eq!(status, 200, "GET {href}");
    assert_eq!(bytes, b"gantry \x01\xff artifact\n", "the artifact's bytes");
    b.close().await;
}

const RELEASE: &str = r#"
name: release
on:
  manual: true
params:
  VERSION:
    default: "1.0"
    description: Version to build
  DEPLOY:
    type: bool
    description: Push the images
  TARGET:
    type: choice
    choices: [staging, production]
    description: Where to deploy
  BRANCH:
    type: ref
    pattern: "v*"
    default: develop
    description: What to build
jobs:
  release:
    script:
      - echo "release $VERSION of $BRANCH to $TARGET deploy=$DEPLOY"
"#;

/// The run form offers the pipeline's params with their defaults and descriptions; a bad
/// value (a choice the pipeline does not have, as from an outdated form) is refused next
/// to its field and starts nothing; good values start a run that has them.
async fn run_with_parameters_through_the_form(kind: Kind) {
    let repo = Repo::new(RELEASE);
    repo.tag("v1.0");
    repo.commit("README.md", "two\n", "second");
    repo.tag("v1.1");
    let server = Server::start(&["--poll-interval", "1h"]);
    server.ok(&["repo", "add", "app", &repo.url()]);

    let b = Browser::start(&server, kind).await;
    b.login(&server.token).await;
    b.open("/repos/app/pipelines/release/run").await;
    b.wait("form#run-form").await;
    let version = b.wait("#param-VERSION").await;
    assert_eq!(
        version.prop("value").await.expect("prop").as_deref(),
        Some("1.0")
    );
    let desc = b
        .wait(r#"div.param[data-param="VERSION"] .param-desc"#)
        .await
        .text()
        .await
        .expect("text");
    assert_eq!(desc, "Version to build");
    let targets = b
        .js(
            "return Array.from(document.querySelectorAll('#param-TARGET option')).map(o => o.value)",
            vec![],
        )
        .await;
    assert_eq!(targets, serde_json::json!(["staging", "production"]));
    let refs = b
        .js(
            "return Array.from(document.querySelectorAll('#param-BRANCH option')).map(o => o.value)",
            vec![],
        )
        .await;
    let refs: Vec<String> = serde_json::from_value(refs).expect("strings");
    assert!(
        refs.contains(&"v1.0".to_owned()) && refs.contains(&"v1.1".to_owned()),
        "the tags matching v* are offered: {refs:?}"
    );
    let chosen = b
        .wait("#param-BRANCH")
        .await
        .prop("value")
        .await
        .expect("prop");
    assert_eq!(
        chosen.as_deref(),
        Some("develop"),
        "the default is preselected"
    );
    assert_eq!(
        b.wait("#param-DEPLOY")
            .await
            .prop("type")
            .await
            .expect("prop")
            .as_deref(),
        Some("checkbox")
    );
    b.screenshot("run-form").await;

    // A choice that is not one (an outdated form): refused next to the field.
    b.js(
        "const s = document.getElementById('param-TARGET'); \
         s.options[1].value = 'moon'; s.selectedIndex = 1; return null",
        vec![],
    )
    .await;
    b.wait("button#run-submit")
        .await
        .click()
        .await
        .expect("submit");
    let error = b
        .wait(r#"div.param[data-param="TARGET"] .field-error#error-TARGET"#)
        .await;
    let message = error.text().await.expect("text");
    assert!(
        message.contains("moon"),
        "the error names the value: {message}"
    );
    assert!(server.runs("app").is_empty(), "a bad value starts nothing");
    b.screenshot("run-form-error").await;

    // Good values.
    let version = b.wait("#param-VERSION").await;
    version.clear().await.expect("clear");
    version.send_keys("2.5").await.expect("type");
    b.wait("#param-TARGET")
        .await
        .select_by_value("production")
        .await
        .expect("select");
    b.wait("#param-BRANCH")
        .await
        .select_by_value("v1.1")
        .await
        .expect("select");
    let deploy = b.wait("#param-DEPLOY").await;
    if !deploy.is_selected().await.expect("checked") {
        deploy.click().await.expect("tick");
    }
    b.wait("button#run-submit")
        .await
        .click()
        .await
        .expect("submit");
    // The run page reloads itself when the run ends, which may be any moment now: each
    // value is read in one step, not from an element found before (it may be gone).
    let id: i64 = b
        .wait_attr("#run-header[data-run-id]", "data-run-id")
        .await
        .parse()
        .expect("a run id");
    for (name, value) in [
        ("VERSION", "2.5"),
        ("TARGET", "production"),
        ("BRANCH", "v1.1"),
        ("DEPLOY", "true"),
    ] {
        b.wait_text(
            &format!(r#"table#run-params tr[data-param="{name}"]"#),
            value,
        )
        .await;
    }
    let run = server.wait_final("app", id);
    assert_eq!(run["state"], "succeeded", "{run:#}\n{}", server.output());
    let log = server.ok(&["logs", &id.to_string(), "release"]);
    assert!(
        log.contains("release 2.5 of v1.1 to production deploy=true"),
        "{log}"
    );
    b.close().await;
}
