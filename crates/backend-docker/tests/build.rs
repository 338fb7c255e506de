//! `image_build`: building from the workspace with tags and args, streaming the output,
//! failing builds as outcomes, bad contexts as errors, and push/pull through a real
//! registry on 127.0.0.1:5000 (Debian's docker-registry, started by `cargo xtask test`).

mod common;

use common::*;
use gantry_backend::{Backend, ImageBuildSpec, JobSpec, Outcome, Stream};

/// A unique image name, so parallel test runs never share tags.
fn unique_image(what: &str) -> String {
    format!("gantry-test/built-{what}-{}", std::process::id())
}

fn remove_images(tags: &[String]) {
    for t in tags {
        let _ = docker(&["rmi", "-f", t]);
    }
}

/// A job that builds `tags` from `ctx/` with a Dockerfile using a build arg and a file of
/// the workspace.
fn build_job(test: &str, tags: Vec<String>, dockerfile: &str) -> (JobSpec, tempfile::TempDir) {
    let (mut spec, ws) = job(test, &[]);
    spec.image = None;
    std::fs::create_dir_all(ws.path().join("ctx")).expect("mkdir");
    // A label naming the test after FROM: tests running at once share no build cache,
    // so one test removing its image never pulls a cached layer from under another.
    let dockerfile = dockerfile.replacen(
        '\n',
        &format!("\nLABEL gantry.test={test}-{}\n", std::process::id()),
        1,
    );
    std::fs::write(ws.path().join("ctx/Dockerfile"), dockerfile).expect("Dockerfile");
    std::fs::write(ws.path().join("ctx/hello.txt"), "hello from the context\n").expect("file");
    spec.image_build = Some(ImageBuildSpec {
        context: "ctx".into(),
        dockerfile: "Dockerfile".into(),
        tags,
        args: vec![("GREETING".into(), "built with an arg".into())],
        push: false,
    });
    (spec, ws)
}

const DOCKERFILE: &str = "FROM gantry-test/tools:latest\nARG GREETING\nRUN echo \"$GREETING\" > \
                          /greeting\nCOPY hello.txt /hello.txt\n";

#[tokio::test]
async fn builds_with_tags_and_args_then_runs_the_script_in_the_image() {
    let backend = backend().await;
    let name = unique_image("tags");
    let tags = vec![format!("{name}:a"), format!("{name}:b")];
    let (mut spec, _ws) = build_job("build", tags.clone(), DOCKERFILE);
    // Without `image:`, the script runs in the image the job just built.
    spec.script = vec!["cat /greeting /hello.txt".into()];
    let ran = run(&backend, &spec).await;
    assert_eq!(ran.outcome(), &Outcome::Success, "{}", ran.log());
    let out = ran.texts(Stream::Stdout);
    assert!(
        out.iter().any(|l| l.starts_with("Step 4/5 : RUN echo")),
        "build output is streamed: {out:?}"
    );
    assert!(out.ends_with(&[
        "+ cat /greeting /hello.txt".to_owned(),
        "built with an arg".to_owned(),
        "hello from the context".to_owned(),
    ]));
    for tag in &tags {
        assert!(docker(&["image", "inspect", tag]).is_some(), "{tag} exists");
    }
    assert_eq!(leftovers(&spec.run_id), Vec::<String>::new());
    remove_images(&tags);
}

#[tokio::test]
async fn a_failing_build_fails_the_job() {
    let backend = backend().await;
    let tags = vec![format!("{}:x", unique_image("fail"))];
    let (spec, _ws) = build_job(
        "build-fails",
        tags.clone(),
        "FROM gantry-test/tools:latest\nRUN echo about to fail && false\n",
    );
    let ran = run(&backend, &spec).await;
    assert_eq!(
        ran.outcome(),
        &Outcome::Failed { exit_code: 1 },
        "{}",
        ran.log()
    );
    assert!(
        ran.texts(Stream::Stdout)
            .contains(&"about to fail".to_owned()),
        "{}",
        ran.log()
    );
    assert_eq!(
        ran.texts(Stream::Stderr),
        [
            "image build failed: The command '/bin/sh -c echo about to fail && false' returned a \
          non-zero code: 1"
        ]
    );
    assert_eq!(leftovers(&spec.run_id), Vec::<String>::new());
    remove_images(&tags);
}

#[tokio::test]
async fn a_missing_dockerfile_or_context_is_a_clear_error() {
    let backend = backend().await;
    for (context, dockerfile, expect) in [
        (
            "nope",
            "Dockerfile",
            "image_build of job \"bad-context\": the context folder nope does not exist in the \
             workspace",
        ),
        (
            "ctx",
            "Other.dockerfile",
            "image_build of job \"bad-context\": no Dockerfile at ctx/Other.dockerfile in the \
             workspace (context ctx, dockerfile Other.dockerfile)",
        ),
    ] {
        let (mut spec, _ws) = build_job("bad-context", vec!["x:y".into()], DOCKERFILE);
        let build = spec.image_build.as_mut().expect("build");
        build.context = context.into();
        build.dockerfile = dockerfile.into();
        let err = match backend.prepare(&spec).await {
            Ok(_) => panic!("prepare must refuse {context}/{dockerfile}"),
            Err(e) => e,
        };
        assert_eq!(err.to_string(), expect);
        assert_eq!(leftovers(&spec.run_id), Vec::<String>::new());
    }
}

/// Push to the registry on loopback, forget the local copy, and pull it back as the image
/// of the next job.
#[tokio::test]
async fn push_to_a_registry_and_pull_back() {
    let backend = backend().await;
    let tag = format!(
        "127.0.0.1:5000/gantry-test/pushed-{}:v1",
        std::process::id()
    );
    let (mut spec, _ws) = build_job("push", vec![tag.clone()], DOCKERFILE);
    spec.image_build.as_mut().expect("build").push = true;
    let ran = run(&backend, &spec).await;
    assert_eq!(ran.outcome(), &Outcome::Success, "{}", ran.log());
    assert!(
        ran.texts(Stream::System).contains(&format!("pushed {tag}")),
        "{}",
        ran.log()
    );
    docker(&["rmi", "-f", &tag]).expect("remove the local copy");

    let (mut user, _ws2) = job("pull", &["cat /greeting"]);
    user.image = Some(tag.clone());
    let ran = run(&backend, &user).await;
    assert_eq!(ran.outcome(), &Outcome::Success, "{}", ran.log());
    assert!(
        ran.texts(Stream::System)
            .contains(&format!("pulled image {tag}")),
        "{}",
        ran.log()
    );
    assert!(
        ran.texts(Stream::Stdout)
            .contains(&"built with an arg".to_owned())
    );
    remove_images(&[tag]);
}

#[tokio::test]
async fn a_push_to_a_registry_that_is_not_there_fails_the_job() {
    let backend = backend().await;
    // Port 5001 on loopback: nothing listens there.
    let tag = format!(
        "127.0.0.1:5001/gantry-test/nowhere-{}:v1",
        std::process::id()
    );
    let (mut spec, _ws) = build_job("push-nowhere", vec![tag.clone()], DOCKERFILE);
    spec.image_build.as_mut().expect("build").push = true;
    let ran = run(&backend, &spec).await;
    assert_eq!(
        ran.outcome(),
        &Outcome::Failed { exit_code: 1 },
        "{}",
        ran.log()
    );
    let err = ran.texts(Stream::Stderr).join("\n");
    assert!(
        err.starts_with(&format!("pushing {tag} failed: "))
            && err.ends_with("check that the registry in the tag is running and accepts pushes"),
        "{err}"
    );
    remove_images(&[tag]);
}
