//! What `prepare` refuses, and how it says so.

mod common;

use common::{job, prepare_err, service};
use gantry_backend::{DeploySpec, ImageBuildSpec};

/// Applies `edit` to a one-line job and checks the error message `prepare` gives.
async fn check(edit: impl FnOnce(&mut gantry_backend::JobSpec), expect: &str) {
    let (mut spec, _ws) = job(&["true"]);
    spec.job_name = "integration".into();
    edit(&mut spec);
    let err = prepare_err(&spec).await;
    assert_eq!(err.to_string(), expect);
}

#[tokio::test]
async fn containers_are_unsupported() {
    check(
        |j| j.image = Some("go-builder:1.19".into()),
        "job \"integration\" needs a container (image: go-builder:1.19), which the local \
         backend cannot provide: run with Docker available (--backend auto picks it) or \
         remove \"image:\"",
    )
    .await;
    check(
        |j| j.services = vec![service("db"), service("goauth")],
        "job \"integration\" needs service containers (db, goauth), which the local backend \
         cannot provide: run with Docker available (--backend auto picks it) or remove \
         \"services:\"",
    )
    .await;
    check(
        |j| {
            j.image = Some("test-tools".into());
            j.services = vec![service("db")];
        },
        "job \"integration\" needs a container (image: test-tools) and service containers \
         (db), which the local backend cannot provide: run with Docker available (--backend \
         auto picks it) or remove \"image:\" and \"services:\"",
    )
    .await;
    check(
        |j| {
            j.image_build = Some(ImageBuildSpec {
                context: "go-auth".into(),
                dockerfile: "Dockerfile".into(),
                tags: vec!["usman/go-auth:v1".into()],
                args: Vec::new(),
                push: false,
            });
            j.deploy = Some(DeploySpec::Compose {
                file: "deploy/docker-compose.yml".into(),
            });
        },
        "job \"integration\" needs an image build (tag: usman/go-auth:v1) and a compose \
         deployment (deploy/docker-compose.yml), which the local backend cannot provide: run \
         with Docker available (--backend auto picks it) or remove \"image_build:\" and \
         \"deploy:\"",
    )
    .await;
}

#[tokio::test]
async fn unusable_input_is_refused_before_anything_runs() {
    check(
        |j| j.workspace_dir = "/nonexistent/gantry-ws".into(),
        "workspace of job \"integration\" is not usable: /nonexistent/gantry-ws",
    )
    .await;
    check(
        |j| j.workspace_dir = "/bin/sh".into(),
        "workspace of job \"integration\" is not a directory: /bin/sh",
    )
    .await;
    check(
        |j| j.script = vec!["true".into(), "echo a\0b".into()],
        "job \"integration\" cannot run: script line 2 contains a NUL byte",
    )
    .await;
    check(
        |j| j.env = vec![("A=B".into(), "x".into())],
        "job \"integration\" cannot run: \"A=B\" is not a valid environment variable name",
    )
    .await;
    check(
        |j| j.env = vec![("A".into(), "x\0".into())],
        "job \"integration\" cannot run: environment variable A contains a NUL byte",
    )
    .await;
}
