//! Pipeline caches kept by the server, through the in-process job source (the built-in
//! executor's way) and the agent routes over the router (a remote agent's way): saving
//! and restoring, first writer wins, fencing, what is refused and that a refusal stores
//! nothing, one repository's caches hidden from another's jobs, eviction of the least
//! recently used with their blobs, and the admin's view (`/api/repos/{repo}/caches`).

#![allow(clippy::unwrap_used)]

mod common;

use axum::http::StatusCode;
use common::{Fixture, finish};
use gantry_engine::artifacts::{Manifest, ManifestEntry};
use gantry_protocol::{JobReport, Lease, LeaseError};
use gantry_test_support::{TempTree, git};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

const PIPELINE: &str = "\
jobs:
  build:
    script: [make]
";

fn sha(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

fn manifest(files: &[(&str, &str, u64)]) -> Manifest {
    Manifest {
        job: "build".into(),
        files: files
            .iter()
            .map(|(path, digest, size)| {
                (
                    (*path).to_owned(),
                    ManifestEntry {
                        digest: (*digest).to_owned(),
                        size: *size,
                        mode: 0o644,
                    },
                )
            })
            .collect(),
    }
}

impl Fixture {
    /// Uploads `bytes` under `lease` as a blob; its digest.
    async fn upload(&self, lease: &Lease, bytes: &[u8]) -> String {
        let digest = sha(bytes);
        let file = self.data.path().join(format!("upload-{digest}"));
        std::fs::write(&file, bytes).unwrap();
        self.source
            .put_artifact(&lease.id, &digest, &file)
            .await
            .unwrap();
        digest
    }

    /// Starts a run of `app` and leases its job.
    async fn leased(&self) -> Lease {
        self.trigger(json!({})).await;
        self.lease().await
    }

    /// Keys of `repo`'s caches as the API lists them (most recently used first).
    async fn cache_keys(&self, repo: &str) -> Vec<String> {
        let (status, v) = self
            .call("GET", &format!("/api/repos/{repo}/caches"), None)
            .await;
        assert_eq!(status, StatusCode::OK, "{v}");
        v["caches"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| c["key"].as_str().unwrap().to_owned())
            .collect()
    }

    fn has_blob(&self, digest: &str) -> bool {
        self.server.state().blobs.contains(digest)
    }

    /// Registers a second repository `name` with the same pipeline.
    async fn other_repo(&self, name: &str) -> TempTree {
        let repo = TempTree::new();
        git(repo.path(), &["init", "-q", "-b", "main"]);
        repo.file("gantry.yml", PIPELINE);
        git(repo.path(), &["add", "-A"]);
        git(repo.path(), &["commit", "-q", "-m", "initial"]);
        let (status, v) = self
            .call(
                "POST",
                "/api/repos",
                Some(json!({ "name": name, "url": repo.path().display().to_string() })),
            )
            .await;
        assert_eq!(status, StatusCode::CREATED, "{v}");
        repo
    }
}

/// Asserts a refusal: its kind, and that its words say `words`.
fn refused<T: std::fmt::Debug>(got: Result<T, LeaseError>, kind: &str, words: &str) {
    let e = got.expect_err("refused");
    let ok = match kind {
        "invalid" => matches!(e, LeaseError::Invalid(_)),
        "stale" => matches!(e, LeaseError::Stale { .. }),
        "too_large" => matches!(e, LeaseError::TooLarge(_)),
        _ => false,
    };
    assert!(ok, "expected {kind}: {e:?}");
    assert!(e.to_string().contains(words), "{e} should say {words:?}");
}

#[tokio::test]
async fn a_cache_saved_by_one_job_is_restored_by_the_next_and_kept_first() {
    let f = Fixture::new(PIPELINE).await;
    let lease = f.leased().await;
    assert_eq!(f.source.get_cache(&lease.id, "deps-1").await.unwrap(), None);
    let digest = f.upload(&lease, b"dependency\n").await;
    let saved = manifest(&[("vendor/dep.txt", &digest, 11)]);
    assert!(
        f.source
            .put_cache(&lease.id, "deps-1", saved.clone())
            .await
            .unwrap()
    );
    // A second save of the key (a job that ran meanwhile) keeps the first.
    let other = f.upload(&lease, b"later\n").await;
    let kept = f
        .source
        .put_cache(
            &lease.id,
            "deps-1",
            manifest(&[("vendor/dep.txt", &other, 6)]),
        )
        .await
        .unwrap();
    assert!(!kept, "the first entry is kept");
    f.finish(&lease, JobReport::Succeeded).await;

    let next = f.leased().await;
    assert_eq!(
        f.source.get_cache(&next.id, "deps-1").await.unwrap(),
        Some(saved)
    );
    // Its blob may be fetched under the new lease, though no artifact of its run.
    let dest = f.data.path().join("fetched");
    f.source
        .get_artifact(&next.id, &digest, &dest)
        .await
        .unwrap();
    assert_eq!(std::fs::read(&dest).unwrap(), b"dependency\n");
    // The blob of the losing save is no cache file: not a key to it.
    let e = f
        .source
        .get_artifact(&next.id, &other, &dest)
        .await
        .expect_err("not this repository's");
    assert!(e.to_string().contains("nor a file of a cache"), "{e}");

    let (status, v) = f.call("GET", "/api/repos/app/caches", None).await;
    assert_eq!(status, StatusCode::OK, "{v}");
    assert_eq!(v["repo"], "app");
    assert_eq!(v["size"], 11);
    assert_eq!(v["max_size"], 10u64 * 1024 * 1024 * 1024);
    let entry = &v["caches"][0];
    assert_eq!(
        (
            &entry["key"],
            &entry["files"],
            &entry["size"],
            &entry["run_id"]
        ),
        (&json!("deps-1"), &json!(1), &json!(11), &json!(1)),
        "{v}"
    );
    assert!(entry["last_used_at"].as_str().unwrap() >= entry["created_at"].as_str().unwrap());
}

#[tokio::test]
async fn refused_saves_store_nothing() {
    let f = Fixture::new(PIPELINE).await;
    let lease = f.leased().await;
    let digest = f.upload(&lease, b"twelve bytes").await;
    let check = |files: &[(&str, &str, u64)]| manifest(files);
    let cases: Vec<(&str, Manifest, &str, &str)> = vec![
        (
            "abs",
            check(&[("/etc/passwd", &digest, 12)]),
            "invalid",
            "leaves the workspace",
        ),
        (
            "up",
            check(&[("target/../../x", &digest, 12)]),
            "invalid",
            "leaves the workspace",
        ),
        (
            "empty-path",
            check(&[("", &digest, 12)]),
            "invalid",
            "leaves the workspace",
        ),
        (
            "missing",
            check(&[("ok", &sha(b"never sent"), 10)]),
            "invalid",
            "was not uploaded",
        ),
        (
            "bad-digest",
            check(&[("ok", "../../etc", 1)]),
            "invalid",
            "invalid digest",
        ),
        (
            "wrong-size",
            check(&[("ok", &digest, 99)]),
            "invalid",
            "the manifest says 99 bytes",
        ),
        (
            "",
            check(&[("ok", &digest, 12)]),
            "invalid",
            "the cache key is empty",
        ),
    ];
    for (key, m, kind, words) in cases {
        refused(f.source.put_cache(&lease.id, key, m).await, kind, words);
    }
    let long = "k".repeat(513);
    refused(
        f.source
            .put_cache(&lease.id, &long, check(&[("ok", &digest, 12)]))
            .await,
        "invalid",
        "at most 512",
    );
    assert!(f.cache_keys("app").await.is_empty());

    // A finished lease is stale: nothing saved, nothing read.
    f.finish(&lease, JobReport::Succeeded).await;
    refused(
        f.source
            .put_cache(&lease.id, "late", check(&[("ok", &digest, 12)]))
            .await,
        "stale",
        "no longer valid",
    );
    let e = f
        .source
        .get_cache(&lease.id, "late")
        .await
        .expect_err("stale");
    assert!(matches!(e, LeaseError::Stale { .. }), "{e:?}");
    assert!(f.cache_keys("app").await.is_empty());
}

#[tokio::test]
async fn a_repositorys_caches_are_its_own() {
    let f = Fixture::new(PIPELINE).await;
    let _other = f.other_repo("lib").await;
    let lease = f.leased().await;
    let digest = f.upload(&lease, b"app's\n").await;
    f.source
        .put_cache(&lease.id, "deps", manifest(&[("d", &digest, 6)]))
        .await
        .unwrap();
    f.finish(&lease, JobReport::Succeeded).await;

    let (status, v) = f
        .call("POST", "/api/repos/lib/trigger", Some(json!({})))
        .await;
    assert_eq!(status, StatusCode::CREATED, "{v}");
    let lib = f.lease().await;
    assert_eq!(lib.repo, "lib");
    assert_eq!(f.source.get_cache(&lib.id, "deps").await.unwrap(), None);
    let e = f
        .source
        .get_artifact(&lib.id, &digest, &f.data.path().join("x"))
        .await
        .expect_err("another repository's blob");
    assert!(matches!(e, LeaseError::Invalid(_)), "{e:?}");
    // Its own entry under the same key is a different one.
    let own = f.upload(&lib, b"lib's\n").await;
    f.source
        .put_cache(&lib.id, "deps", manifest(&[("d", &own, 6)]))
        .await
        .unwrap();
    assert_eq!(
        f.source.get_cache(&lib.id, "deps").await.unwrap(),
        Some(manifest(&[("d", &own, 6)]))
    );
    assert_eq!(f.cache_keys("app").await, ["deps"]);
    assert_eq!(f.cache_keys("lib").await, ["deps"]);
    let (status, v) = f.call("GET", "/api/repos/nope/caches", None).await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{v}");
}

#[tokio::test]
async fn the_least_recently_used_caches_are_evicted_with_their_blobs() {
    let f = Fixture::with(PIPELINE, |c| {
        c.cache_max_bytes = 25;
        c.blob_grace = std::time::Duration::ZERO;
    })
    .await;
    let lease = f.leased().await;
    let a = f.upload(&lease, b"aaaaaaaaaa").await;
    let b = f.upload(&lease, b"bbbbbbbbbb").await;
    let c = f.upload(&lease, b"cccccccccc").await;
    let save = |key: &'static str, digest: &str| {
        let m = manifest(&[("f", digest, 10)]);
        let id = lease.id.clone();
        let source = f.source.clone();
        async move { source.put_cache(&id, key, m).await.unwrap() }
    };
    save("a", &a).await;
    save("b", &b).await;
    // `a` is used: `b` is now the least recently used.
    tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    f.source.get_cache(&lease.id, "a").await.unwrap().unwrap();
    tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    // A job's artifact shares `b`'s blob: it stays when `b` goes.
    f.source
        .finish(
            &lease.id,
            gantry_protocol::Finish {
                manifest: Some(manifest(&[("out/b", &b, 10)])),
                ..finish(JobReport::Succeeded)
            },
        )
        .await
        .unwrap();
    let lease = f.leased().await;
    let c_again = f.upload(&lease, b"cccccccccc").await;
    assert_eq!(c_again, c);
    f.source
        .put_cache(&lease.id, "c", manifest(&[("f", &c, 10)]))
        .await
        .unwrap();
    assert_eq!(f.cache_keys("app").await, ["c", "a"]);
    assert!(f.has_blob(&b), "an artifact still names it");
    assert_eq!(f.source.get_cache(&lease.id, "b").await.unwrap(), None);

    // `a` goes next; its blob with it.
    let d = f.upload(&lease, b"dddddddddd").await;
    f.source
        .put_cache(&lease.id, "d", manifest(&[("f", &d, 10)]))
        .await
        .unwrap();
    assert_eq!(f.cache_keys("app").await, ["d", "c"]);
    assert!(!f.has_blob(&a));
    assert!(f.has_blob(&c) && f.has_blob(&d));

    // An entry larger than all caches may be is refused outright.
    let big = f.upload(&lease, &[b'x'; 26]).await;
    refused(
        f.source
            .put_cache(&lease.id, "big", manifest(&[("f", &big, 26)]))
            .await,
        "too_large",
        "--cache-max-size",
    );
    assert_eq!(f.cache_keys("app").await, ["d", "c"]);
}

#[tokio::test]
async fn young_blobs_outlive_the_entries_that_named_them() {
    // The default grace: a blob just uploaded may belong to a manifest on its way.
    let f = Fixture::with(PIPELINE, |c| c.cache_max_bytes = 10).await;
    let lease = f.leased().await;
    let a = f.upload(&lease, b"aaaaaaaaaa").await;
    let b = f.upload(&lease, b"bbbbbbbbbb").await;
    for (key, digest) in [("a", &a), ("b", &b)] {
        f.source
            .put_cache(&lease.id, key, manifest(&[("f", digest, 10)]))
            .await
            .unwrap();
    }
    assert_eq!(f.cache_keys("app").await, ["b"]);
    assert!(f.has_blob(&a));
}

#[tokio::test]
async fn admins_delete_caches_one_or_all() {
    let f = Fixture::with(PIPELINE, |c| c.blob_grace = std::time::Duration::ZERO).await;
    let lease = f.leased().await;
    let shared = f.upload(&lease, b"shared").await;
    let own = f.upload(&lease, b"own").await;
    for (key, files) in [
        (
            "one",
            vec![("s", shared.as_str(), 6), ("o", own.as_str(), 3)],
        ),
        ("two", vec![("s", shared.as_str(), 6)]),
        ("three", vec![]),
    ] {
        f.source
            .put_cache(&lease.id, key, manifest(&files))
            .await
            .unwrap();
    }
    // Only an admin may delete.
    let (status, v) = f
        .call("POST", "/api/agent-tokens", Some(json!({ "name": "a1" })))
        .await;
    assert_eq!(status, StatusCode::CREATED, "{v}");
    let agent = v["token"].as_str().unwrap().to_owned();
    let (status, _) = f
        .call_as(Some(&agent), "DELETE", "/api/repos/app/caches", None)
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let (status, _) = f
        .call_as(None, "DELETE", "/api/repos/app/caches", None)
        .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);

    let (status, v) = f
        .call("DELETE", "/api/repos/app/caches?key=one", None)
        .await;
    assert_eq!(status, StatusCode::OK, "{v}");
    assert_eq!(v, json!({ "deleted": ["one"], "size": 9, "blobs": 1 }));
    assert!(f.has_blob(&shared), "`two` still names it");
    assert!(!f.has_blob(&own));
    let (status, v) = f
        .call("DELETE", "/api/repos/app/caches?key=one", None)
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{v}");
    assert!(
        v["error"].as_str().unwrap().contains("no cache \"one\""),
        "{v}"
    );

    let (status, v) = f.call("DELETE", "/api/repos/app/caches", None).await;
    assert_eq!(status, StatusCode::OK, "{v}");
    let mut deleted: Vec<Value> = v["deleted"].as_array().unwrap().clone();
    deleted.sort_by_key(|k| k.to_string());
    assert_eq!(deleted, [json!("three"), json!("two")]);
    assert_eq!(v["blobs"], 1);
    assert!(!f.has_blob(&shared));
    assert!(f.cache_keys("app").await.is_empty());
    let (status, _) = f.call("DELETE", "/api/repos/nope/caches", None).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn agents_reach_caches_over_http() {
    let f = Fixture::with(PIPELINE, |c| c.cache_max_bytes = 100).await;
    let (_, v) = f
        .call("POST", "/api/agent-tokens", Some(json!({ "name": "a1" })))
        .await;
    let token = v["token"].as_str().unwrap().to_owned();
    f.trigger(json!({})).await;
    let (status, lease) = f
        .call_as(
            Some(&token),
            "POST",
            "/api/agent/v1/lease",
            Some(json!({ "executor": serde_json::to_value(common::executor("a1")).unwrap(), "wait_ms": 0 })),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{lease}");
    let id = lease["id"].as_str().unwrap().to_owned();
    let at = |key: &str| format!("/api/agent/v1/leases/{id}/caches/{key}");
    let (status, v) = f
        .call_as(Some(&token), "GET", &at("deps%2Fa%20b"), None)
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT, "{v}");

    // Blobs go up as artifacts (tested elsewhere); in-process here for brevity.
    let leased: Lease = serde_json::from_value(lease).unwrap();
    let digest = f.upload(&leased, b"0123456789").await;
    let body = serde_json::to_value(manifest(&[("t/f", &digest, 10)])).unwrap();
    let (status, v) = f
        .call_as(Some(&token), "PUT", &at("deps%2Fa%20b"), Some(body.clone()))
        .await;
    assert_eq!(status, StatusCode::CREATED, "{v}");
    // Saved again: the first is kept, and the answer says so.
    let (status, v) = f
        .call_as(Some(&token), "PUT", &at("deps%2Fa%20b"), Some(body.clone()))
        .await;
    assert_eq!(status, StatusCode::OK, "{v}");
    let (status, v) = f
        .call_as(Some(&token), "GET", &at("deps%2Fa%20b"), None)
        .await;
    assert_eq!((status, &v), (StatusCode::OK, &body));
    assert_eq!(f.cache_keys("app").await, ["deps/a b"]);

    let check = |got: (StatusCode, Value), status: StatusCode, code: &str| {
        assert_eq!(got.0, status, "{}", got.1);
        assert_eq!(got.1["error"], code, "{}", got.1);
    };
    let unsafe_body = serde_json::to_value(manifest(&[("../f", &digest, 10)])).unwrap();
    check(
        f.call_as(Some(&token), "PUT", &at("x"), Some(unsafe_body))
            .await,
        StatusCode::BAD_REQUEST,
        "invalid",
    );
    let big = f.upload(&leased, &[b'x'; 101]).await;
    let big_body = serde_json::to_value(manifest(&[("f", &big, 101)])).unwrap();
    check(
        f.call_as(Some(&token), "PUT", &at("big"), Some(big_body))
            .await,
        StatusCode::PAYLOAD_TOO_LARGE,
        "too_large",
    );
    check(
        f.call_as(Some(&token), "PUT", &at("x"), Some(json!({ "files": 3 })))
            .await,
        StatusCode::BAD_REQUEST,
        "invalid",
    );
    // Under another agent's token: stale, like every report.
    let (_, v) = f
        .call("POST", "/api/agent-tokens", Some(json!({ "name": "a2" })))
        .await;
    let other = v["token"].as_str().unwrap().to_owned();
    check(
        f.call_as(Some(&other), "GET", &at("deps%2Fa%20b"), None)
            .await,
        StatusCode::CONFLICT,
        "stale",
    );
    check(
        f.call_as(None, "GET", &at("deps%2Fa%20b"), None).await,
        StatusCode::UNAUTHORIZED,
        "unauthorized",
    );
    assert_eq!(f.cache_keys("app").await, ["deps/a b"]);
}

/// Blobs nothing names — the files of a cache save or an upload whose manifest never came
/// (the agent died in between) — are deleted by the sweep that runs at start and once per
/// grace period; blobs named by an artifact or a cache entry stay.
#[tokio::test]
async fn blobs_nothing_names_are_swept() {
    let f = Fixture::with(PIPELINE, |c| c.blob_grace = std::time::Duration::ZERO).await;
    let lease = f.leased().await;
    let cached = f.upload(&lease, b"cached").await;
    let orphan = f.upload(&lease, b"orphan").await;
    let artifact = f.upload(&lease, b"artifact").await;
    f.source
        .put_cache(&lease.id, "k", manifest(&[("c", &cached, 6)]))
        .await
        .unwrap();
    let mut done = finish(JobReport::Succeeded);
    done.manifest = Some(manifest(&[("dist/a", &artifact, 8)]));
    f.source.finish(&lease.id, done).await.unwrap();

    let sweep = || gantry_server::caches::sweep_orphans(f.server.state());
    assert_eq!(sweep().await, 1, "only the orphan");
    assert!(!f.has_blob(&orphan));
    assert!(f.has_blob(&cached), "named by cache entry k");
    assert!(f.has_blob(&artifact), "named by the job's artifacts");
    assert_eq!(sweep().await, 0, "nothing left to sweep");
}

/// Within the grace an unnamed blob is kept: its manifest may be on its way.
#[tokio::test]
async fn young_unnamed_blobs_are_kept() {
    let f = Fixture::new(PIPELINE).await;
    let lease = f.leased().await;
    let young = f.upload(&lease, b"young").await;
    assert_eq!(
        gantry_server::caches::sweep_orphans(f.server.state()).await,
        0
    );
    assert!(f.has_blob(&young));
}
