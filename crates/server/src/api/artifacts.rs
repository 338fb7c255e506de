//! `/api/runs/{id}/artifacts…`: listing a run's artifact files and downloading one.
//!
//! A download names the job and the file's path in the workspace. The path is checked
//! before anything else (no `..`, no absolute paths, no backslashes or NULs: 400) and then
//! looked up among the run's recorded artifacts (404 when absent); the file served is the
//! content-addressed blob the manifest names, so no path from a request ever reaches the
//! file system.

use axum::Json;
use axum::body::Body;
use axum::extract::{Path, State as Ax};
use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};
use gantry_engine::artifacts::Manifest;
use tokio::io::AsyncReadExt;

use crate::api::error::ApiError;
use crate::api::extract::Reader;
use crate::api::json::ArtifactJson;
use crate::api::logs::job_by_path;
use crate::api::runs::run_by_path;
use crate::state::State;

/// Every artifact file of a run, from its jobs' manifests (reused jobs included).
async fn list_of(state: &State, run_id: i64) -> Result<Vec<ArtifactJson>, ApiError> {
    let jobs = state.store.jobs(run_id).await?;
    let mut out = Vec::new();
    for j in &jobs {
        let Some(json) = &j.manifest_json else {
            continue;
        };
        let m: Manifest = serde_json::from_str(json).map_err(ApiError::internal)?;
        for (path, e) in m.files {
            out.push(ArtifactJson {
                job: j.key.clone(),
                job_idx: j.idx,
                path,
                digest: e.digest,
                size: e.size,
            });
        }
    }
    Ok(out)
}

/// `GET /api/runs/{id}/artifacts`.
pub async fn list(
    Ax(state): Ax<State>,
    _: Reader,
    Path(id): Path<String>,
) -> Result<Json<Vec<ArtifactJson>>, ApiError> {
    let run = run_by_path(&state, &id).await?;
    Ok(Json(list_of(&state, run.id).await?))
}

/// Whether a requested artifact path is a plain relative path.
pub fn safe_path(path: &str) -> bool {
    !path.is_empty()
        && !path.starts_with('/')
        && !path.contains('\\')
        && !path.contains('\0')
        && path
            .split('/')
            .all(|seg| !seg.is_empty() && seg != "." && seg != "..")
}

/// `GET /api/runs/{id}/artifacts/{job}/{*path}`.
pub async fn download(
    Ax(state): Ax<State>,
    _: Reader,
    Path((id, job, path)): Path<(String, String, String)>,
) -> Result<Response, ApiError> {
    if !safe_path(&path) {
        return Err(ApiError::BadRequest(format!(
            "invalid artifact path {path:?}: it must be relative, without \"..\""
        )));
    }
    let run = run_by_path(&state, &id).await?;
    let job = job_by_path(&state, run.id, &job).await?;
    let all = list_of(&state, run.id).await?;
    let Some(a) = all.iter().find(|a| a.job_idx == job.idx && a.path == path) else {
        return Err(ApiError::NotFound(format!(
            "job {:?} of run {} has no artifact {path:?}",
            job.key, run.id
        )));
    };
    let file_path = state.blobs.path(&a.digest).map_err(ApiError::internal)?;
    let file = tokio::fs::File::open(&file_path)
        .await
        .map_err(|e| ApiError::NotFound(format!("artifact {path:?} is no longer stored ({e})")))?;
    let stream = futures_util::stream::unfold(Some(file), |file| async move {
        let mut file = file?;
        let mut buf = vec![0u8; 64 * 1024];
        match file.read(&mut buf).await {
            Ok(0) => None,
            Ok(n) => {
                buf.truncate(n);
                Some((Ok::<_, std::io::Error>(bytes::Bytes::from(buf)), Some(file)))
            }
            Err(e) => Some((Err(e), None)),
        }
    });
    let mut resp = Body::from_stream(stream).into_response();
    let name = path
        .rsplit('/')
        .next()
        .unwrap_or("artifact")
        .replace('"', "");
    let h = resp.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/octet-stream"),
    );
    if let Ok(v) = HeaderValue::from_str(&a.size.to_string()) {
        h.insert(header::CONTENT_LENGTH, v);
    }
    if let Ok(v) = HeaderValue::from_str(&format!("attachment; filename=\"{name}\"")) {
        h.insert(header::CONTENT_DISPOSITION, v);
    }
    if let Ok(v) = HeaderValue::from_str(&format!("\"{}\"", a.digest)) {
        h.insert(header::ETAG, v);
    }
    Ok(resp)
}

#[cfg(test)]
mod tests {
    use super::safe_path;

    #[test]
    fn paths() {
        for (p, ok) in [
            ("dist/app", true),
            ("a", true),
            ("../etc/passwd", false),
            ("a/../../b", false),
            ("/etc/passwd", false),
            ("a//b", false),
            ("a\\b", false),
            ("./a", false),
            ("", false),
        ] {
            assert_eq!(safe_path(p), ok, "{p}");
        }
    }
}
