//! What a script run on the local backend produces: outcome, echo lines, output streams,
//! environment and working directory — with real `sh` processes.

mod common;

use common::{job, run, run_with};
use gantry_backend::{Backend, CancellationToken, Outcome, Stream};
use gantry_backend_local::LocalBackend;

/// One script and what it must produce. In expected lines, `{ws}` stands for the job's
/// workspace, `{home}` and `{path}` for the test process's `HOME` and `PATH`.
struct Case {
    name: &'static str,
    script: &'static [&'static str],
    env: &'static [(&'static str, &'static str)],
    outcome: Outcome,
    stdout: &'static [&'static str],
    stderr: &'static [&'static str],
}

async fn check(case: &Case) {
    let (mut spec, ws) = job(case.script);
    spec.env = case
        .env
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    let r = run(&spec).await;
    let fill = |lines: &[&str]| -> Vec<String> {
        lines
            .iter()
            .map(|l| {
                l.replace("{ws}", &ws.path().display().to_string())
                    .replace("{home}", &std::env::var("HOME").unwrap_or_default())
                    .replace("{path}", &std::env::var("PATH").unwrap_or_default())
            })
            .collect()
    };
    assert_eq!(
        r.outcome, case.outcome,
        "{}: outcome; log {:?}",
        case.name, r.lines
    );
    assert_eq!(r.stdout(), fill(case.stdout), "{}: stdout", case.name);
    assert_eq!(r.stderr(), fill(case.stderr), "{}: stderr", case.name);
}

const CASES: &[Case] = &[
    Case {
        name: "success",
        script: &["true"],
        env: &[],
        outcome: Outcome::Success,
        stdout: &["+ true"],
        stderr: &[],
    },
    Case {
        name: "empty script",
        script: &[],
        env: &[],
        outcome: Outcome::Success,
        stdout: &[],
        stderr: &[],
    },
    Case {
        name: "exit code",
        script: &["exit 3"],
        env: &[],
        outcome: Outcome::Failed { exit_code: 3 },
        stdout: &["+ exit 3"],
        stderr: &[],
    },
    Case {
        name: "echo shows commands as written, quotes and variables unexpanded",
        script: &["echo hi", r#"echo "it's" 'a "b"' $X %s \n"#, "X=1; echo $X"],
        env: &[("X", "x")],
        outcome: Outcome::Success,
        stdout: &[
            "+ echo hi",
            "hi",
            r#"+ echo "it's" 'a "b"' $X %s \n"#,
            // The shell removes the backslash of an unquoted `\n`; the echo keeps it.
            r#"it's a "b" x %s n"#,
            "+ X=1; echo $X",
            "1",
        ],
        stderr: &[],
    },
    Case {
        name: "multi-line commands run as one and echo every line",
        script: &[
            "for i in 1 2; do\n  echo n$i\ndone\n",
            "cat <<EOF\nhere 'doc'\nEOF\n",
            "echo after",
        ],
        env: &[],
        outcome: Outcome::Success,
        stdout: &[
            "+ for i in 1 2; do",
            ">   echo n$i",
            "> done",
            "n1",
            "n2",
            "+ cat <<EOF",
            "> here 'doc'",
            "> EOF",
            "here 'doc'",
            "+ echo after",
            "after",
        ],
        stderr: &[],
    },
    Case {
        name: "stdout and stderr are separate streams",
        script: &["echo out; echo err >&2", "echo err2 >&2"],
        env: &[],
        outcome: Outcome::Success,
        stdout: &["+ echo out; echo err >&2", "out", "+ echo err2 >&2"],
        stderr: &["err", "err2"],
    },
    Case {
        name: "set -e stops at the first failing command",
        script: &["echo one", "false", "echo two"],
        env: &[],
        outcome: Outcome::Failed { exit_code: 1 },
        stdout: &["+ echo one", "one", "+ false"],
        stderr: &[],
    },
    Case {
        name: "a command not found fails with 127",
        script: &["true", "gantry-no-such-command", "echo never"],
        env: &[],
        outcome: Outcome::Failed { exit_code: 127 },
        stdout: &["+ true", "+ gantry-no-such-command"],
        // Line 2: the shell's line numbers are the script's.
        stderr: &["sh: 2: gantry-no-such-command: not found"],
    },
    Case {
        name: "job env is passed, later entries win, host env is inherited",
        script: &[
            "echo $GREETING",
            "echo $HOME",
            "echo $PATH",
            "command -v ls >/dev/null",
        ],
        env: &[("GREETING", "hello"), ("GREETING", "override")],
        outcome: Outcome::Success,
        stdout: &[
            "+ echo $GREETING",
            "override",
            "+ echo $HOME",
            "{home}",
            "+ echo $PATH",
            "{path}",
            "+ command -v ls >/dev/null",
        ],
        stderr: &[],
    },
    Case {
        name: "job env overrides host env",
        script: &["echo $HOME"],
        env: &[("HOME", "/elsewhere")],
        outcome: Outcome::Success,
        stdout: &["+ echo $HOME", "/elsewhere"],
        stderr: &[],
    },
    Case {
        name: "runs in the workspace, and the shell stays there between lines",
        script: &["pwd", "echo $PWD", "mkdir sub && cd sub", "pwd"],
        env: &[],
        outcome: Outcome::Success,
        stdout: &[
            "+ pwd",
            "{ws}",
            "+ echo $PWD",
            "{ws}",
            "+ mkdir sub && cd sub",
            "+ pwd",
            "{ws}/sub",
        ],
        stderr: &[],
    },
    Case {
        name: "a signal the shell gets from elsewhere is Killed",
        script: &["kill -TERM $$"],
        env: &[],
        outcome: Outcome::Killed { signal: 15 },
        stdout: &["+ kill -TERM $$"],
        stderr: &[],
    },
    Case {
        name: "stdin is empty",
        script: &["cat; echo end"],
        env: &[],
        outcome: Outcome::Success,
        stdout: &["+ cat; echo end", "end"],
        stderr: &[],
    },
    Case {
        name: "invalid UTF-8 is converted lossily, CRLF loses its CR",
        script: &[r"printf 'caf\351\r\n'", r"printf 'no newline at the end'"],
        env: &[],
        outcome: Outcome::Success,
        stdout: &[
            r"+ printf 'caf\351\r\n'",
            "caf\u{fffd}",
            r"+ printf 'no newline at the end'",
            "no newline at the end",
        ],
        stderr: &[],
    },
];

#[tokio::test]
async fn scripts_produce_expected_outcome_and_output() {
    common::init();
    for case in CASES {
        check(case).await;
    }
}

#[tokio::test]
async fn lines_keep_their_order_within_each_stream() {
    common::init();
    let (spec, _ws) =
        job(&["i=0; while [ $i -lt 300 ]; do i=$((i+1)); echo out$i; echo err$i >&2; done"]);
    let r = run(&spec).await;
    assert_eq!(r.outcome, Outcome::Success);
    let expect = |p: &str| -> Vec<String> { (1..=300).map(|i| format!("{p}{i}")).collect() };
    assert_eq!(r.stdout()[1..], expect("out"));
    assert_eq!(r.stderr(), expect("err"));
    // Timestamps are taken as lines arrive, so they never go backwards within a stream.
    for stream in [Stream::Stdout, Stream::Stderr] {
        let at: Vec<_> = r
            .lines
            .iter()
            .filter(|l| l.stream == stream)
            .map(|l| l.at)
            .collect();
        assert!(
            at.windows(2).all(|w| w[0] <= w[1]),
            "{stream:?} timestamps out of order"
        );
    }
}

#[tokio::test]
async fn long_lines_are_split_at_the_cap() {
    common::init();
    let (spec, _ws) = job(&["head -c 200000 /dev/zero | tr '\\0' a; echo", "echo next"]);
    let r = run(&spec).await;
    assert_eq!(r.outcome, Outcome::Success);
    let out = r.stdout();
    let lens: Vec<usize> = out[1..5].iter().map(|l| l.len()).collect();
    assert_eq!(lens, [65536, 65536, 65536, 200000 - 3 * 65536]);
    assert!(out[1..5].iter().all(|l| l.bytes().all(|b| b == b'a')));
    assert_eq!(out[5..], ["+ echo next", "next"].map(String::from));

    // The cap is a setting.
    let backend = LocalBackend {
        max_line_bytes: 1000,
        ..LocalBackend::new()
    };
    let (spec, _ws) = job(&["head -c 2500 /dev/zero | tr '\\0' b"]);
    let r = run_with(&backend, &spec, CancellationToken::new()).await;
    let lens: Vec<usize> = r.stdout()[1..].iter().map(|l| l.len()).collect();
    assert_eq!(lens, [1000, 1000, 500]);
}

#[tokio::test]
async fn scripts_too_large_for_one_argument_run_from_a_file() {
    common::init();
    let lines: Vec<String> = (0..4000).map(|i| format!("echo line{i:05}")).collect();
    let refs: Vec<&str> = lines.iter().map(String::as_str).collect();
    let (spec, _ws) = job(&refs);
    let r = run(&spec).await;
    assert_eq!(r.outcome, Outcome::Success);
    let out = r.stdout();
    assert_eq!(out.len(), 8000);
    assert_eq!(
        out[7998..],
        ["+ echo line03999", "line03999"].map(String::from)
    );
    // teardown removed the script file (no other test writes one).
    let prefix = format!("gantry-script-{}-", std::process::id());
    let left: Vec<_> = std::fs::read_dir(std::env::temp_dir())
        .expect("temp dir")
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().starts_with(&prefix))
        .collect();
    assert!(left.is_empty(), "script files left behind: {left:?}");
}

#[tokio::test]
async fn teardown_keeps_the_workspace_and_may_run_twice_in_a_row() {
    common::init();
    let (spec, ws) = job(&["echo data > made-by-job"]);
    let backend = LocalBackend::new();
    let mut env = backend.prepare(&spec).await.expect("prepare");
    let (sink, _rx) = gantry_backend::LogSink::channel();
    let outcome = env
        .run_script(sink, CancellationToken::new())
        .await
        .expect("run");
    assert_eq!(outcome, Outcome::Success);
    env.teardown().await.expect("teardown");
    assert_eq!(
        std::fs::read_to_string(ws.path().join("made-by-job")).expect("file made by the job"),
        "data\n"
    );
    // Teardown without a run, twice on separate envs of the same job: nothing to do.
    for _ in 0..2 {
        let env = backend.prepare(&spec).await.expect("prepare");
        env.teardown().await.expect("teardown");
    }
    assert!(ws.path().join("made-by-job").exists());
}

#[tokio::test]
async fn cancelled_before_start_runs_nothing() {
    common::init();
    let (spec, ws) = job(&["touch ran"]);
    let cancel = CancellationToken::new();
    cancel.cancel();
    let r = run_with(&LocalBackend::new(), &spec, cancel).await;
    assert_eq!(r.outcome, Outcome::Cancelled);
    assert!(!ws.path().join("ran").exists());
}

#[tokio::test]
async fn probe_and_name() {
    let b = LocalBackend::new();
    assert_eq!(b.name(), "local");
    let info = b.probe().await.expect("probe");
    assert_eq!(info.name, "local");
    assert!(!info.containers);
    assert!(info.version.starts_with("linux"), "{}", info.version);
}
