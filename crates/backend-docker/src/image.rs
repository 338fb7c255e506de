//! Images: the pull policy, `image_build`, and pushing.
//!
//! Pull policy: an image present locally is used as it is (tests and offline machines
//! build their images themselves); a missing one is pulled. When both fail, the error
//! names the image, says it is not present locally, quotes why the pull failed, and says
//! what to do.
//!
//! Builds send the context folder of the job's workspace as a tar through the Engine API
//! (the classic builder, which every daemon since 1.41 has), stream the builder's output
//! into the job log, give the image all its tags, and push them when asked. A failing
//! build or push is the job failing (an outcome), not an infrastructure error.

use std::collections::HashMap;
use std::path::{Component, Path, PathBuf};

use bollard::Docker;
use bollard::query_parameters::{
    BuildImageOptionsBuilder, CreateImageOptionsBuilder, PushImageOptionsBuilder,
    TagImageOptionsBuilder,
};
use futures_util::StreamExt;
use gantry_backend::{BackendError, ImageBuildSpec, JobSpec, LogSink, Stream};

use crate::connect::{describe, is_connection_error, is_not_found};

/// Why an image could not be made present.
#[derive(Debug)]
pub(crate) enum ImageError {
    /// The daemon could not be reached.
    Daemon(BackendError),
    /// Not present and not pullable: a full sentence for the user.
    Missing(String),
}

/// Makes sure `name` is present: `Ok(None)` when it already was, `Ok(Some(note))` after a
/// successful pull.
pub(crate) async fn ensure(docker: &Docker, name: &str) -> Result<Option<String>, ImageError> {
    match docker.inspect_image(name).await {
        Ok(_) => return Ok(None),
        Err(e) if is_not_found(&e) => {}
        Err(e) if is_connection_error(&e) => {
            return Err(ImageError::Daemon(crate::connect::api_error(
                format!("look up image {name}"),
                &e,
            )));
        }
        Err(e) => {
            return Err(ImageError::Missing(format!(
                "cannot look up image {name}: {}",
                describe(&e)
            )));
        }
    }
    let (repo, tag) = split_reference(name);
    let mut options = CreateImageOptionsBuilder::new().from_image(repo);
    if let Some(tag) = tag {
        options = options.tag(tag);
    }
    let mut stream = docker.create_image(Some(options.build()), None, None);
    let mut failure = None;
    while let Some(item) = stream.next().await {
        if let Err(e) = item {
            if is_connection_error(&e) {
                return Err(ImageError::Daemon(crate::connect::api_error(
                    format!("pull image {name}"),
                    &e,
                )));
            }
            failure = Some(describe(&e));
            break;
        }
    }
    match failure {
        None => Ok(Some(format!("pulled image {name}"))),
        Some(why) => Err(ImageError::Missing(format!(
            "image {name} is not present locally and pulling it failed: {why}; build it with \
             `image_build` in a job this one needs (or `docker build -t {name} …`), or check \
             the image name and that its registry is reachable"
        ))),
    }
}

/// `repo[:tag]` → (repo, tag). A digest reference (`repo@sha256:…`) is returned whole,
/// and an untagged name gets `latest`: an empty tag would make the daemon pull every tag.
pub(crate) fn split_reference(name: &str) -> (&str, Option<&str>) {
    if name.contains('@') {
        return (name, None);
    }
    let last = name.rfind('/').map_or(0, |i| i + 1);
    match name[last..].rfind(':') {
        Some(i) => (&name[..last + i], Some(&name[last + i + 1..])),
        None => (name, Some("latest")),
    }
}

/// The context folder and Dockerfile of a build, checked: both must exist inside the
/// workspace, the Dockerfile inside the context.
pub(crate) fn check_context(job: &JobSpec, build: &ImageBuildSpec) -> Result<(), BackendError> {
    context_paths(job, build).map(|_| ())
}

/// (context folder, Dockerfile path relative to it with `/` separators).
fn context_paths(job: &JobSpec, build: &ImageBuildSpec) -> Result<(PathBuf, String), BackendError> {
    let bad = |why: String| {
        BackendError::Other(format!("image_build of job \"{}\": {why}", job.job_name))
    };
    let context_rel = normalize(&build.context)
        .ok_or_else(|| bad(format!("context {:?} leaves the workspace", build.context)))?;
    let context = job.workspace_dir.join(&context_rel);
    if !context.is_dir() {
        return Err(bad(format!(
            "the context folder {} does not exist in the workspace",
            shown(&context_rel)
        )));
    }
    let dockerfile = if build.dockerfile.is_empty() {
        "Dockerfile"
    } else {
        &build.dockerfile
    };
    let dockerfile_rel = normalize(dockerfile).ok_or_else(|| {
        bad(format!(
            "dockerfile {dockerfile:?} must be inside the context folder {}",
            shown(&context_rel)
        ))
    })?;
    if !context.join(&dockerfile_rel).is_file() {
        return Err(bad(format!(
            "no Dockerfile at {} in the workspace (context {}, dockerfile {dockerfile})",
            shown(&context_rel.join(&dockerfile_rel)),
            shown(&context_rel),
        )));
    }
    let in_tar = dockerfile_rel
        .components()
        .map(|c| c.as_os_str().to_string_lossy())
        .collect::<Vec<_>>()
        .join("/");
    Ok((context, in_tar))
}

/// A relative path without `..` escaping its base, with `.` parts dropped; `None` when it
/// is absolute or escapes.
fn normalize(path: &str) -> Option<PathBuf> {
    let mut out = PathBuf::new();
    for c in Path::new(path).components() {
        match c {
            Component::Normal(p) => out.push(p),
            Component::CurDir => {}
            Component::ParentDir => {
                if !out.pop() {
                    return None;
                }
            }
            Component::RootDir | Component::Prefix(_) => return None,
        }
    }
    Some(out)
}

fn shown(p: &Path) -> String {
    if p.as_os_str().is_empty() {
        ".".to_owned()
    } else {
        p.display().to_string()
    }
}

/// Tars the context folder in memory. Symlinks are stored as links (the builder resolves
/// them inside the context, like `docker build`).
fn tar_context(dir: &Path) -> std::io::Result<Vec<u8>> {
    let mut tar = tar::Builder::new(Vec::new());
    tar.follow_symlinks(false);
    tar.mode(tar::HeaderMode::Deterministic);
    tar.append_dir_all(".", dir)?;
    tar.into_inner()
}

/// Builds, tags and (with `push`) pushes the image of `build`, streaming output into
/// `logs`. `Ok(true)`: done; `Ok(false)`: the build or push failed (said in the log);
/// `Err`: the daemon could not be reached, or the context could not be read.
pub(crate) async fn build_and_push(
    docker: &Docker,
    job: &JobSpec,
    build: &ImageBuildSpec,
    logs: &LogSink,
) -> Result<bool, BackendError> {
    let (context, dockerfile) = context_paths(job, build)?;
    let Some((first, others)) = build.tags.split_first() else {
        return Err(BackendError::Other(format!(
            "image_build of job \"{}\" has no tag",
            job.job_name
        )));
    };
    let context_for_tar = context.clone();
    let tar = tokio::task::spawn_blocking(move || tar_context(&context_for_tar))
        .await
        .map_err(|e| BackendError::Other(format!("packing the build context panicked: {e}")))?
        .map_err(|source| BackendError::Io {
            context: format!("cannot pack the build context {}", context.display()),
            source,
        })?;
    logs.system(format!(
        "building image {} (context {}, {} KiB)",
        build.tags.join(", "),
        build.context,
        tar.len() / 1024
    ));

    let args: HashMap<String, String> = build.args.iter().cloned().collect();
    let options = BuildImageOptionsBuilder::new()
        .dockerfile(&dockerfile)
        .t(first)
        .buildargs(&args)
        .rm(true)
        .forcerm(true)
        .build();
    let body = bollard::body_full(tar.into());
    let mut stream = docker.build_image(options, None, Some(body));
    let mut splitter = gantry_backend::LineSplitter::new(crate::output::MAX_LINE_BYTES);
    let mut failure = None;
    while let Some(item) = stream.next().await {
        match item {
            Ok(info) => {
                if let Some(text) = info.stream {
                    splitter.push(text.as_bytes(), &mut |l| logs.line(Stream::Stdout, l));
                }
                if let Some(detail) = info.error_detail.and_then(|d| d.message) {
                    failure = Some(detail);
                }
            }
            Err(e) if is_connection_error(&e) => {
                return Err(crate::connect::api_error(
                    format!("build image {first}"),
                    &e,
                ));
            }
            Err(e) => {
                failure = Some(describe(&e));
                break;
            }
        }
    }
    splitter.finish(&mut |l| logs.line(Stream::Stdout, l));
    if let Some(why) = failure {
        logs.line(Stream::Stderr, format!("image build failed: {why}"));
        return Ok(false);
    }
    for tag in others {
        let (repo, t) = split_reference(tag);
        let mut options = TagImageOptionsBuilder::new().repo(repo);
        if let Some(t) = t {
            options = options.tag(t);
        }
        if let Err(e) = docker.tag_image(first, Some(options.build())).await {
            logs.line(
                Stream::Stderr,
                format!("cannot tag {first} as {tag}: {}", describe(&e)),
            );
            return Ok(false);
        }
    }
    logs.system(format!("built image {}", build.tags.join(", ")));
    if !build.push {
        return Ok(true);
    }
    for tag in &build.tags {
        logs.system(format!("pushing {tag}"));
        let (repo, t) = split_reference(tag);
        let mut options = PushImageOptionsBuilder::new();
        if let Some(t) = t {
            options = options.tag(t);
        }
        let mut stream = docker.push_image(repo, Some(options.build()), None);
        while let Some(item) = stream.next().await {
            match item {
                Ok(_) => {}
                Err(e) if is_connection_error(&e) => {
                    return Err(crate::connect::api_error(format!("push {tag}"), &e));
                }
                Err(e) => {
                    logs.line(
                        Stream::Stderr,
                        format!(
                            "pushing {tag} failed: {}; check that the registry in the tag is \
                             running and accepts pushes",
                            describe(&e)
                        ),
                    );
                    return Ok(false);
                }
            }
        }
        logs.system(format!("pushed {tag}"));
    }
    Ok(true)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn references() {
        for (name, expect) in [
            ("busybox", ("busybox", Some("latest"))),
            ("busybox:1.36", ("busybox", Some("1.36"))),
            ("localhost:5000/app", ("localhost:5000/app", Some("latest"))),
            ("localhost:5000/app:v1", ("localhost:5000/app", Some("v1"))),
            ("a/b@sha256:abc", ("a/b@sha256:abc", None)),
        ] {
            assert_eq!(split_reference(name), expect, "{name}");
        }
    }

    #[test]
    fn build_contexts() {
        let ws = tempfile::tempdir().expect("tempdir");
        std::fs::create_dir_all(ws.path().join("app/docker")).expect("mkdir");
        std::fs::write(ws.path().join("app/Dockerfile"), "FROM x\n").expect("write");
        std::fs::write(ws.path().join("app/docker/Build.df"), "FROM x\n").expect("write");
        let job = JobSpec {
            job_name: "package".into(),
            workspace_dir: ws.path().to_path_buf(),
            ..Default::default()
        };
        let check = |context: &str, dockerfile: &str, expect: Result<&str, &str>| {
            let build = ImageBuildSpec {
                context: context.into(),
                dockerfile: dockerfile.into(),
                tags: vec!["t".into()],
                args: vec![],
                push: false,
            };
            let got = context_paths(&job, &build)
                .map(|(_, df)| df)
                .map_err(|e| e.to_string());
            assert_eq!(
                got,
                expect.map(str::to_owned).map_err(str::to_owned),
                "{context} {dockerfile}"
            );
        };
        check("app", "Dockerfile", Ok("Dockerfile"));
        check("./app/", "", Ok("Dockerfile"));
        check("app", "docker/Build.df", Ok("docker/Build.df"));
        check(
            "nope",
            "Dockerfile",
            Err(
                "image_build of job \"package\": the context folder nope does not exist in the workspace",
            ),
        );
        check(
            ".",
            "Dockerfile",
            Err(
                "image_build of job \"package\": no Dockerfile at Dockerfile in the workspace (context ., dockerfile Dockerfile)",
            ),
        );
        check(
            "app",
            "../Dockerfile",
            Err(
                "image_build of job \"package\": dockerfile \"../Dockerfile\" must be inside the context folder app",
            ),
        );
        check(
            "../x",
            "Dockerfile",
            Err("image_build of job \"package\": context \"../x\" leaves the workspace"),
        );
    }
}
