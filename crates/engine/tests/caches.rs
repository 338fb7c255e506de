//! `cache: { key, paths }` end to end: pipelines parsed, planned and run by the engine on
//! the real local backend (real `sh`, real files), with the project's caches in
//! `.gantry/cache` ([`DirCaches`]) or in test stores that fail or forge entries.

use std::collections::BTreeMap;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use gantry_backend::CancellationToken;
use gantry_backend_local::LocalBackend;
use gantry_engine::artifacts::{ArtifactStore, Manifest, ManifestEntry};
use gantry_engine::cache::{CacheError, CacheStore, DirCaches, Saved};
use gantry_engine::{Backends, RunConfig, RunEvent, Source};
use gantry_pipeline::PlanContext;
use gantry_test_support::TempTree;
use sha2::{Digest, Sha256};

/// A project directory whose runs share one cache directory.
struct Project {
    tree: TempTree,
    runs: std::cell::Cell<u32>,
}

/// What a run showed: `job: word` per job, and each job's log texts.
struct Ran {
    statuses: Vec<String>,
    logs: BTreeMap<String, Vec<String>>,
}

impl Ran {
    fn log(&self, job: &str) -> &[String] {
        self.logs.get(job).map(Vec::as_slice).unwrap_or_default()
    }

    /// Asserts that `job`'s log has a line containing each of `parts`, in this order.
    fn expect_lines(&self, job: &str, parts: &[&str]) {
        let log = self.log(job);
        let mut at = 0;
        for part in parts {
            match log[at..].iter().position(|l| l.contains(part)) {
                Some(i) => at += i + 1,
                None => panic!(
                    "{job}: no line with {part:?} (in order) in:\n{}",
                    log.join("\n")
                ),
            }
        }
    }

    fn expect_no_line(&self, job: &str, line: &str) {
        let log = self.log(job);
        assert!(
            !log.iter().any(|l| l == line),
            "{job}: unexpected line {line:?} in:\n{}",
            log.join("\n")
        );
    }
}

impl Project {
    fn new(pipeline: &str) -> Project {
        let tree = TempTree::new();
        tree.file("src/gantry.yml", pipeline);
        Project {
            tree,
            runs: std::cell::Cell::new(0),
        }
    }

    /// The project is `src/` of the tree, so that writes outside it can be checked.
    fn src(&self) -> PathBuf {
        self.tree.join("src")
    }

    fn file(&self, rel: &str, content: &str) -> &Project {
        self.tree.file(&format!("src/{rel}"), content);
        self
    }

    fn caches(&self) -> DirCaches {
        DirCaches::new(self.src().join(".gantry/cache"))
    }

    async fn run(&self) -> Ran {
        self.run_with(Some(Arc::new(self.caches()))).await
    }

    async fn run_with(&self, caches: Option<Arc<dyn CacheStore>>) -> Ran {
        let _ = gantry_backend_local::become_subreaper();
        let n = self.runs.get() + 1;
        self.runs.set(n);
        let text = std::fs::read_to_string(self.src().join("gantry.yml")).expect("pipeline");
        let spec = gantry_pipeline::parse("gantry.yml", &text).expect("parses");
        let plan = spec
            .plan(&PlanContext {
                run_id: format!("run-{n}"),
                run_number: u64::from(n),
                ..PlanContext::default()
            })
            .expect("plans");
        let run_dir = self.src().join(format!(".gantry/runs/{n}"));
        std::fs::create_dir_all(&run_dir).expect("run dir");
        let config = RunConfig {
            run_id: format!("run-{n}"),
            run_dir,
            source: Source::from_dir(self.src()).expect("list the source"),
            parallelism: 4,
            fail_fast: false,
            secrets: BTreeMap::new(),
            keep_workspaces: false,
            caches,
        };
        let backends = Backends {
            host: Arc::new(LocalBackend::new()),
            containers: None,
        };
        let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
        let drain = tokio::spawn(async move {
            let mut lines = Vec::new();
            while let Some(event) = rx.recv().await {
                if let RunEvent::JobLog { job, line } = event {
                    lines.push((job, line.text));
                }
            }
            lines
        });
        let summary = tokio::time::timeout(
            Duration::from_secs(120),
            gantry_engine::run(&plan, &backends, config, tx, CancellationToken::new()),
        )
        .await
        .expect("the run finishes");
        let lines = drain.await.expect("events");
        let mut logs: BTreeMap<String, Vec<String>> = BTreeMap::new();
        for (job, text) in lines {
            logs.entry(plan.jobs[job].name.clone())
                .or_default()
                .push(text);
        }
        Ran {
            statuses: summary
                .jobs
                .iter()
                .map(|j| format!("{}: {}", j.name, j.status.word()))
                .collect(),
            logs,
        }
    }
}

/// A pipeline of one job `j`.
fn one_job(cache: &str, script: &str) -> String {
    format!("jobs:\n  j:\n    cache: {cache}\n    script: {script}\n")
}

fn sha(text: &str) -> String {
    hex::encode(Sha256::digest(text.as_bytes()))
}

/// A job that reports whether its cache was there and then fills it from `deps.txt`.
const DEPS: &str = r#"
jobs:
  build:
    cache:
      key: deps-${hash:deps.txt}
      paths: [vendor]
    script:
      - if test -f vendor/lib.txt; then echo "HIT $(cat vendor/lib.txt)"; else echo MISS; fi
      - mkdir -p vendor/nested
      - cp deps.txt vendor/lib.txt
      - echo more > vendor/nested/more.txt
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn miss_save_hit_and_a_new_key_when_the_hashed_file_changes() {
    let p = Project::new(DEPS);
    p.file("deps.txt", "v1\n");
    let key = format!("deps-{}", sha("v1\n"));

    let first = p.run().await;
    assert_eq!(first.statuses, ["build: success"]);
    first.expect_lines(
        "build",
        &[
            &format!("cache \"{key}\": not found, will be saved if the job succeeds"),
            "MISS",
            &format!("cache \"{key}\": saved 2 files (8 B)"),
        ],
    );

    let second = p.run().await;
    assert_eq!(second.statuses, ["build: success"]);
    second.expect_lines(
        "build",
        &[
            &format!("cache \"{key}\": restored 2 files (8 B)"),
            "HIT v1",
            &format!("cache \"{key}\": exists, not saved again"),
        ],
    );

    p.file("deps.txt", "v2\n");
    let key2 = format!("deps-{}", sha("v2\n"));
    let third = p.run().await;
    third.expect_lines(
        "build",
        &[
            &format!("cache \"{key2}\": not found"),
            "MISS",
            &format!("cache \"{key2}\": saved 2 files"),
        ],
    );
    let keys: Vec<String> = p
        .caches()
        .list()
        .expect("list")
        .into_iter()
        .map(|e| e.key)
        .collect();
    assert_eq!(keys.len(), 2, "{keys:?}");
    assert!(keys.contains(&key) && keys.contains(&key2), "{keys:?}");
    // The scratch stores are gone with their runs' workspaces; runs hold no cache copy.
    for n in 1..=3 {
        let work = p.src().join(format!(".gantry/runs/{n}/work"));
        let left: Vec<_> = std::fs::read_dir(&work)
            .map(|r| r.flatten().map(|e| e.file_name()).collect())
            .unwrap_or_default();
        assert!(left.is_empty(), "run {n} left {left:?}");
        assert!(
            !p.src()
                .join(format!(".gantry/runs/{n}/artifacts/objects"))
                .exists()
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn what_is_not_saved() {
    // Each case: a pipeline, the line its job log must show, and whether an entry exists
    // afterwards.
    let cases: &[(String, &str, bool)] = &[
        (
            one_job(
                "{ key: k, paths: [out] }",
                "[mkdir out, echo x > out/f, exit 3]",
            ),
            "cache \"k\": not saved, the job did not succeed",
            false,
        ),
        (
            one_job("{ key: k, paths: [out] }", "[true]"),
            "cache \"k\": nothing to save, its paths hold no file",
            false,
        ),
        (
            one_job(
                "{ key: \"k-${hash:missing.lock}\", paths: [out] }",
                "[mkdir out, echo x > out/f]",
            ),
            "warning: cache \"k-${hash:missing.lock}\": cannot compute the key: \"missing.lock\" \
             is not in the workspace; the job runs without its cache (not restored, not saved)",
            false,
        ),
        (
            one_job(
                "{ key: k, paths: [out, other] }",
                "[mkdir out, echo x > out/f]",
            ),
            "warning: cache path \"other\" matched no file; nothing saved for it",
            true,
        ),
    ];
    for (pipeline, line, saved) in cases {
        let p = Project::new(pipeline);
        let ran = p.run().await;
        ran.expect_lines("j", &[line]);
        let entries = p.caches().list().expect("list");
        assert_eq!(!entries.is_empty(), *saved, "{pipeline}: {entries:?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn caches_off_and_the_workspace_wins_over_a_cache() {
    let p = Project::new(
        r#"
jobs:
  j:
    cache: { key: k, paths: [conf] }
    script:
      - cat conf/a
      - if test -f conf/b; then cat conf/b; fi
      - echo changed > conf/a
      - echo cached > conf/b
"#,
    );
    p.file("conf/a", "from source\n");
    let off = p.run_with(None).await;
    assert_eq!(off.statuses, ["j: success"]);
    off.expect_lines(
        "j",
        &["cache \"k\": caches are off for this run; not restored, not saved"],
    );
    assert!(p.caches().list().expect("list").is_empty());

    p.run()
        .await
        .expect_lines("j", &["cache \"k\": saved 2 files"]);
    // The entry holds `conf/a` as the script changed it: the source's copy is newer.
    let ran = p.run().await;
    ran.expect_lines(
        "j",
        &[
            "cache \"k\": restored 1 file (7 B); 1 file already in the workspace kept as they were",
            "from source",
            "cached",
        ],
    );
    ran.expect_no_line("j", "changed");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_jobs_saving_one_key_at_once() {
    // Both miss, both save; the first save wins and both jobs succeed. Each script waits
    // for the other to have started, so both fetches come before either save.
    let sync = TempTree::new();
    let job = |me: &str, other: &str| {
        let dir = sync.path().display();
        format!(
            r#"
  {me}:
    cache: {{ key: shared, paths: [out] }}
    script:
      - mkdir -p out && echo {me} > out/who
      - touch {dir}/{me}
      - i=0; while ! test -e {dir}/{other}; do i=$((i+1)); test $i -lt 2400 || exit 9; sleep 0.05; done
"#
        )
    };
    let p = Project::new(&format!("jobs:{}{}", job("a", "b"), job("b", "a")));
    let ran = p.run().await;
    assert_eq!(ran.statuses, ["a: success", "b: success"]);
    let saved: Vec<bool> = ["a", "b"]
        .iter()
        .map(|job| {
            ran.expect_lines(job, &["cache \"shared\": not found"]);
            ran.log(job)
                .iter()
                .any(|l| l.starts_with("cache \"shared\": saved 1 file"))
        })
        .collect();
    assert_eq!(
        saved.iter().filter(|s| **s).count(),
        1,
        "one save wins: {:?}",
        ran.logs
    );
    let loser = if saved[0] { "b" } else { "a" };
    ran.expect_lines(
        loser,
        &[
            "cache \"shared\": saved meanwhile by another job; that entry is kept, this one \
           not saved",
        ],
    );
    let entries = p.caches().list().expect("list");
    assert_eq!(entries.len(), 1, "{entries:?}");
    let ran = p.run().await;
    for job in ["a", "b"] {
        ran.expect_lines(
            job,
            &[
                "cache \"shared\": restored 1 file",
                "exists, not saved again",
            ],
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_damaged_entry_is_a_warning_and_is_saved_again() {
    let p = Project::new(DEPS);
    p.file("deps.txt", "v1\n");
    let key = format!("deps-{}", sha("v1\n"));
    p.run().await;
    // Alter every object of the cache, keeping sizes.
    let objects = p.src().join(".gantry/cache/objects");
    for prefix in std::fs::read_dir(&objects).expect("objects").flatten() {
        for object in std::fs::read_dir(prefix.path()).expect("prefix").flatten() {
            let path = object.path();
            let len = std::fs::metadata(&path).expect("stat").len() as usize;
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).expect("chmod");
            std::fs::write(&path, "#".repeat(len)).expect("alter");
        }
    }
    let ran = p.run().await;
    assert_eq!(ran.statuses, ["build: success"]);
    ran.expect_lines(
        "build",
        &[
            &format!("warning: cache \"{key}\": cannot fetch it: the entry is damaged: object"),
            "MISS",
            &format!("cache \"{key}\": saved 2 files"),
        ],
    );
    p.run()
        .await
        .expect_lines("build", &["restored 2 files", "HIT v1"]);
}

/// A store whose every entry is `manifest`, with `objects` (content) put into the job's
/// store; or that fails.
#[derive(Debug)]
struct Forger {
    manifest: Option<Manifest>,
    objects: Vec<String>,
}

#[async_trait::async_trait]
impl CacheStore for Forger {
    async fn fetch(
        &self,
        _key: &str,
        store: &ArtifactStore,
    ) -> Result<Option<Manifest>, CacheError> {
        let Some(manifest) = &self.manifest else {
            return Err(CacheError("the cache server is down".into()));
        };
        let scratch = TempTree::new();
        for content in &self.objects {
            scratch.file("blob", content);
            store
                .store_file(&scratch.join("blob"))
                .expect("store a blob");
        }
        Ok(Some(manifest.clone()))
    }

    async fn save(
        &self,
        _key: &str,
        _m: &Manifest,
        _s: &ArtifactStore,
    ) -> Result<Saved, CacheError> {
        Err(CacheError("the cache server is read-only".into()))
    }
}

fn forged(path: &str, digest: &str, size: u64) -> Manifest {
    Manifest {
        job: "evil".into(),
        files: [(
            path.to_owned(),
            ManifestEntry {
                digest: digest.to_owned(),
                size,
                mode: 0o755,
            },
        )]
        .into(),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forged_entries_and_failing_stores_never_fail_the_job_nor_write_outside() {
    let pwned = sha("pwned");
    let cases: Vec<(Option<Manifest>, &str)> = vec![
        (
            Some(forged("../../escape", &pwned, 5)),
            "cannot restore it: artifact path \"../../escape\" leaves the workspace",
        ),
        (
            Some(forged("/tmp/escape", &pwned, 5)),
            "cannot restore it: artifact path \"/tmp/escape\" leaves the workspace",
        ),
        (
            Some(forged("ok", "../../../escape", 5)),
            "cannot restore it: invalid artifact digest \"../../../escape\"",
        ),
        (
            Some(forged("ok", &sha("never stored"), 12)),
            "is missing or damaged",
        ),
        (Some(forged("ok", &pwned, 99)), "is missing or damaged"),
        (None, "cannot fetch it: the cache server is down"),
    ];
    for (manifest, expect) in cases {
        let p = Project::new(&one_job(
            "{ key: k, paths: [out] }",
            "[test ! -e ok, mkdir out, echo x > out/f]",
        ));
        let store = Forger {
            manifest,
            objects: vec!["pwned".into()],
        };
        let ran = p.run_with(Some(Arc::new(store))).await;
        assert_eq!(ran.statuses, ["j: success"], "{expect}: {:?}", ran.log("j"));
        ran.expect_lines("j", &["warning: cache \"k\": "]);
        ran.expect_lines("j", &[expect]);
        let escaped: Vec<_> = [
            "escape",
            "src/escape",
            "src/.gantry/escape",
            "src/.gantry/runs/escape",
        ]
        .iter()
        .filter(|rel| p.tree.join(rel).exists())
        .collect();
        assert!(escaped.is_empty(), "{expect}: written outside: {escaped:?}");
        assert!(!Path::new("/tmp/escape").exists());
        // The fetch failed, so the job tried to save, and the store's refusal is a warning.
        if expect.contains("cannot fetch") {
            ran.expect_lines(
                "j",
                &["warning: cache \"k\": cannot save it: the cache server is read-only"],
            );
        }
    }
}
