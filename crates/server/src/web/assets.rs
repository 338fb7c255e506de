//! The CSS and JavaScript of the pages, compiled into the binary and served with long
//! cache lifetimes (pages link them with `?v=<version>`, so an upgrade is fetched anew).

use axum::extract::Path;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};

/// Name, content type and text of every asset.
const ASSETS: &[(&str, &str, &str)] = &[
    (
        "gantry.css",
        "text/css; charset=utf-8",
        include_str!("../../assets/gantry.css"),
    ),
    (
        "live.js",
        "text/javascript; charset=utf-8",
        include_str!("../../assets/live.js"),
    ),
    (
        "log.js",
        "text/javascript; charset=utf-8",
        include_str!("../../assets/log.js"),
    ),
];

/// `GET /assets/{file}` (no login needed: nothing in them is private).
pub async fn serve(Path(file): Path<String>) -> Response {
    let Some((_, kind, text)) = ASSETS.iter().find(|(n, _, _)| *n == file) else {
        return (StatusCode::NOT_FOUND, "no such asset").into_response();
    };
    let mut r = (*text).into_response();
    let h = r.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static(kind));
    h.insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static("public, max-age=31536000, immutable"),
    );
    r
}
