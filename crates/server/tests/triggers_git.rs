//! `git ls-remote` and the bare mirror against real repositories made with the git CLI.

use std::path::Path;

use gantry_pipeline::GlobPattern;
use gantry_server::git::{GitError, Mirror, RemoteRef, ls_remote};
use gantry_server::triggers::refs::{fires, ref_choices};

/// Runs git in `dir` (test-support's fixed identity, no user configuration); returns
/// stdout without the trailing newline.
fn git(dir: &Path, args: &[&str]) -> String {
    gantry_test_support::git(dir, args).trim().to_string()
}

fn write(dir: &Path, rel: &str, text: &str) {
    let path = dir.join(rel);
    std::fs::create_dir_all(path.parent().expect("parent")).expect("mkdir");
    std::fs::write(path, text).expect("write");
}

fn commit(dir: &Path, message: &str) -> String {
    git(dir, &["add", "-A"]);
    git(dir, &["commit", "-q", "-m", message]);
    git(dir, &["rev-parse", "HEAD"])
}

/// A repository with:
/// - `main`: c1 (gantry.yml + .gantry/{deploy,nightly}.yml + notes), c2 (src change)
/// - `develop`: c3 on top of c2 (only .gantry/ pipelines, gantry.yml removed)
/// - tags `v1.0.0` (lightweight, c1), `v1.1.0` (annotated, c2)
struct Repo {
    _tmp: tempfile::TempDir,
    work: std::path::PathBuf,
    c1: String,
    c2: String,
    c3: String,
}

fn repo() -> Repo {
    let tmp = tempfile::tempdir().expect("tempdir");
    let work = tmp.path().join("work");
    std::fs::create_dir(&work).expect("mkdir");
    git(&work, &["init", "-q", "-b", "main"]);
    write(
        &work,
        "gantry.yml",
        "name: ci\njobs:\n  build:\n    script: [make]\n",
    );
    write(&work, ".gantry.yml", "name: hidden\njobs: {}\n");
    write(&work, ".gantry/deploy.yml", "name: deploy\n");
    write(&work, ".gantry/nightly.yml", "name: nightly\n");
    write(&work, ".gantry/notes.txt", "not a pipeline\n");
    write(&work, ".gantry/sub/x.yml", "nested: not a pipeline\n");
    write(&work, "src/main.c", "int main(void) { return 0; }\n");
    write(&work, "docs/a b.md", "spaces in names\n");
    let c1 = commit(&work, "c1");
    git(&work, &["tag", "v1.0.0"]);
    write(&work, "src/main.c", "int main(void) { return 1; }\n");
    write(&work, "src/util.c", "void util(void) {}\n");
    let c2 = commit(&work, "c2");
    git(&work, &["tag", "-a", "v1.1.0", "-m", "release 1.1.0"]);
    git(&work, &["checkout", "-q", "-b", "develop"]);
    std::fs::remove_file(work.join("gantry.yml")).expect("rm");
    std::fs::remove_file(work.join(".gantry.yml")).expect("rm");
    write(&work, "bin.dat", "");
    std::fs::write(work.join("bin.dat"), [0xff, 0xfe, 0x00, 0x80]).expect("write");
    let c3 = commit(&work, "c3");
    Repo {
        _tmp: tmp,
        work,
        c1,
        c2,
        c3,
    }
}

fn r(name: &str, commit: &str) -> RemoteRef {
    RemoteRef {
        name: name.to_string(),
        commit: commit.to_string(),
    }
}

#[tokio::test]
async fn ls_remote_lists_branches_and_peeled_tags() {
    let repo = repo();
    let url = repo.work.to_str().expect("utf-8 path");
    let refs = ls_remote(url).await.expect("ls-remote");
    assert_eq!(
        refs,
        vec![
            r("refs/heads/develop", &repo.c3),
            r("refs/heads/main", &repo.c2),
            r("refs/tags/v1.0.0", &repo.c1),
            // Annotated: the commit, not the tag object.
            r("refs/tags/v1.1.0", &repo.c2),
        ]
    );
    assert_eq!(
        ref_choices(&refs, Some(&GlobPattern::new("v*").expect("glob"))),
        ["v1.1.0", "v1.0.0", "develop", "main"]
    );
}

#[tokio::test]
async fn ls_remote_of_a_missing_repository_says_what_git_said() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let missing = tmp.path().join("nope");
    let err = ls_remote(missing.to_str().expect("utf-8"))
        .await
        .expect_err("no repository");
    let text = err.to_string();
    assert!(matches!(err, GitError::Failed { .. }), "{text}");
    assert!(text.starts_with("git ls-remote"), "{text}");
    assert!(
        text.contains("does not appear to be a git repository"),
        "{text}"
    );
    // An option-looking URL is a URL, not an option.
    let err = ls_remote("--upload-pack=touch /tmp/pwned")
        .await
        .expect_err("bad url");
    assert!(matches!(err, GitError::Failed { .. }), "{err}");
}

#[tokio::test]
async fn mirror_reads_files_pipelines_and_diffs() {
    let repo = repo();
    let cache = tempfile::tempdir().expect("tempdir");
    let mirror = Mirror::new(
        cache.path().join("mirrors/go-auth.git"),
        repo.work.to_str().expect("utf-8"),
    );
    // Before the first fetch there is nothing, and no commit is known.
    assert_eq!(mirror.branches().await.expect("branches"), vec![]);
    mirror
        .fetch()
        .await
        .expect("first fetch creates the mirror");
    assert!(mirror.dir().join("HEAD").is_file());

    assert_eq!(
        mirror.branches().await.expect("branches"),
        vec![
            r("refs/heads/develop", &repo.c3),
            r("refs/heads/main", &repo.c2)
        ]
    );
    assert_eq!(
        mirror.tags().await.expect("tags"),
        vec![
            r("refs/tags/v1.0.0", &repo.c1),
            r("refs/tags/v1.1.0", &repo.c2)
        ]
    );

    // Files at a commit.
    let read = |commit: &str, path: &str| {
        let mirror = mirror.clone();
        let (commit, path) = (commit.to_string(), path.to_string());
        async move { mirror.read_file(&commit, &path).await }
    };
    assert_eq!(
        read(&repo.c1, "src/main.c").await.expect("read"),
        Some("int main(void) { return 0; }\n".into())
    );
    assert_eq!(
        read(&repo.c2, "src/main.c").await.expect("read"),
        Some("int main(void) { return 1; }\n".into())
    );
    assert_eq!(
        read(&repo.c1, "/docs/a b.md").await.expect("read"),
        Some("spaces in names\n".into())
    );
    assert_eq!(read(&repo.c1, "src/util.c").await.expect("read"), None);
    assert_eq!(
        read(&repo.c1, "src").await.expect("a directory is no file"),
        None
    );
    assert_eq!(read(&repo.c1, "").await.expect("read"), None);
    assert_eq!(
        read(&repo.c1, "*").await.expect("globs are not expanded"),
        None
    );
    let err = read(&repo.c3, "bin.dat").await.expect_err("binary");
    assert_eq!(
        err.to_string(),
        format!("bin.dat at {} is not UTF-8 text", repo.c3)
    );
    for bad in [
        "0123456789012345678901234567890123456789",
        "--output=/tmp/x",
        "",
        "main~99",
    ] {
        let err = read(bad, "gantry.yml").await.expect_err("unknown commit");
        assert!(matches!(err, GitError::UnknownCommit(_)), "{bad}: {err}");
    }
    // A branch name is resolved too (the server passes commit ids, but nothing breaks).
    assert!(read("develop", "bin.dat").await.is_err());

    // Pipeline files: the root file (gantry.yml wins over .gantry.yml), then .gantry/*.yml.
    let files = mirror.pipeline_files(&repo.c1).await.expect("pipelines");
    let paths: Vec<&str> = files.iter().map(|(p, _)| p.as_str()).collect();
    assert_eq!(
        paths,
        ["gantry.yml", ".gantry/deploy.yml", ".gantry/nightly.yml"]
    );
    assert_eq!(
        files[0].1,
        "name: ci\njobs:\n  build:\n    script: [make]\n"
    );
    assert_eq!(files[1].1, "name: deploy\n");
    let files = mirror.pipeline_files(&repo.c3).await.expect("pipelines");
    let paths: Vec<&str> = files.iter().map(|(p, _)| p.as_str()).collect();
    assert_eq!(paths, [".gantry/deploy.yml", ".gantry/nightly.yml"]);

    // Changed paths between commits.
    assert_eq!(
        mirror
            .changed_paths(&repo.c1, &repo.c2)
            .await
            .expect("diff"),
        ["src/main.c", "src/util.c"]
    );
    assert_eq!(
        mirror
            .changed_paths(&repo.c2, &repo.c3)
            .await
            .expect("diff"),
        [".gantry.yml", "bin.dat", "gantry.yml"]
    );
    assert_eq!(
        mirror
            .changed_paths(&repo.c2, &repo.c2)
            .await
            .expect("diff"),
        Vec::<String>::new()
    );
    assert!(matches!(
        mirror
            .changed_paths("0".repeat(40).as_str(), &repo.c2)
            .await,
        Err(GitError::UnknownCommit(_))
    ));
}

#[tokio::test]
async fn fetch_follows_new_commits_force_pushes_and_deletions() {
    let repo = repo();
    let cache = tempfile::tempdir().expect("tempdir");
    let mirror = Mirror::new(
        cache.path().join("m.git"),
        repo.work.to_str().expect("utf-8"),
    );
    mirror.fetch().await.expect("fetch");

    // A new commit on develop, main moved back (a force push), a tag deleted, a branch added.
    write(&repo.work, "new.txt", "new\n");
    let c4 = commit(&repo.work, "c4");
    git(&repo.work, &["branch", "-f", "main", &repo.c1]);
    git(&repo.work, &["tag", "-d", "v1.0.0"]);
    git(&repo.work, &["branch", "feature/x", &repo.c2]);
    // Two clones of the mirror fetching at once share its lock.
    let other = mirror.clone();
    let (a, b) = tokio::join!(mirror.fetch(), other.fetch());
    a.expect("fetch a");
    b.expect("fetch b");
    assert_eq!(
        mirror.branches().await.expect("branches"),
        vec![
            r("refs/heads/develop", &c4),
            r("refs/heads/feature/x", &repo.c2),
            r("refs/heads/main", &repo.c1),
        ]
    );
    assert_eq!(
        mirror.tags().await.expect("tags"),
        vec![r("refs/tags/v1.1.0", &repo.c2)]
    );
    assert_eq!(
        mirror.read_file(&c4, "new.txt").await.expect("read"),
        Some("new\n".into())
    );
    // Objects of rewritten history stay readable (runs of old commits can still be planned).
    assert!(
        mirror
            .read_file(&repo.c2, "src/util.c")
            .await
            .expect("read")
            .is_some()
    );

    // What fired: every ref that changed, decided by the pipeline's globs.
    let spec = gantry_pipeline::parse(
        "gantry.yml",
        "on:\n  push: [develop, \"feature/*\"]\n  tag: [\"v*\"]\njobs:\n  a:\n    script: [true]\n",
    )
    .expect("valid pipeline");
    let fired: Vec<String> = mirror
        .branches()
        .await
        .expect("branches")
        .iter()
        .chain(mirror.tags().await.expect("tags").iter())
        .filter_map(|r| fires(&spec.on, &r.name))
        .map(|f| format!("{}:{}", f.event.as_str(), f.name))
        .collect();
    assert_eq!(fired, ["push:develop", "push:feature/x", "tag:v1.1.0"]);
}

#[tokio::test]
async fn fetch_from_an_unreachable_url_fails_and_leaves_a_usable_mirror() {
    let cache = tempfile::tempdir().expect("tempdir");
    let mirror = Mirror::new(cache.path().join("m.git"), "/nonexistent/repo.git");
    let err = mirror.fetch().await.expect_err("unreachable");
    let text = err.to_string();
    assert!(text.starts_with("git fetch"), "{text}");
    assert!(text.contains("/nonexistent/repo.git"), "{text}");
    // The empty mirror exists and answers with no refs.
    assert_eq!(mirror.branches().await.expect("branches"), vec![]);
    // Credentials in a URL are not repeated in messages.
    let mirror = Mirror::new(
        cache.path().join("n.git"),
        "http://bob:hunter2@127.0.0.1:9/r.git",
    );
    let err = mirror.fetch().await.expect_err("nothing listens on port 9");
    let text = err.to_string();
    assert!(!text.contains("hunter2"), "{text}");
    assert!(text.contains("bob:***@127.0.0.1:9"), "{text}");
}

#[tokio::test]
async fn a_directory_that_is_not_a_mirror_is_left_alone() {
    let repo = repo();
    let cache = tempfile::tempdir().expect("tempdir");
    let url = repo.work.to_str().expect("utf-8");
    // Something else lives there: an error, and the file survives.
    let taken = cache.path().join("taken.git");
    std::fs::create_dir(&taken).expect("mkdir");
    std::fs::write(taken.join("precious.txt"), "keep me").expect("write");
    let err = Mirror::new(&taken, url)
        .fetch()
        .await
        .expect_err("not a mirror");
    assert!(matches!(err, GitError::NotAMirror { .. }), "{err}");
    assert!(
        err.to_string()
            .ends_with("exists and is not a git mirror; remove it or choose another directory"),
        "{err}"
    );
    assert_eq!(
        std::fs::read_to_string(taken.join("precious.txt")).expect("read"),
        "keep me"
    );
    // An empty directory is taken over.
    let empty = cache.path().join("empty.git");
    std::fs::create_dir(&empty).expect("mkdir");
    let mirror = Mirror::new(&empty, url);
    mirror.fetch().await.expect("fetch");
    assert_eq!(mirror.branches().await.expect("branches").len(), 2);
    // No leftovers of the temporary init directories.
    let mut names: Vec<String> = std::fs::read_dir(cache.path())
        .expect("read_dir")
        .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    assert_eq!(names, ["empty.git", "taken.git"]);
}
