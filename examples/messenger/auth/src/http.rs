//! The HTTP/1.1 server: hyper in front of [`Api::handle`].

use std::convert::Infallible;
use std::sync::Arc;

use http_body_util::{BodyExt, Full, Limited};
use hyper::body::{Bytes, Incoming};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;

use crate::api::Api;
use crate::log;
use crate::store::Store;

/// Request bodies are a form or a token: anything bigger is refused (413).
const MAX_BODY: usize = 64 * 1024;

/// Serves the API on every interface at `port` until the process is stopped.
pub async fn serve<S: Store>(api: Arc<Api<S>>, port: u16) -> Result<(), String> {
    let listener = TcpListener::bind(("0.0.0.0", port))
        .await
        .map_err(|e| format!("cannot listen on port {port}: {e}"))?;
    log::info(&format!("Listening on port {port}"));
    loop {
        let (stream, peer) = match listener.accept().await {
            Ok(x) => x,
            Err(e) => {
                log::warn(&format!("accept failed: {e}"));
                continue;
            }
        };
        let api = api.clone();
        tokio::spawn(async move {
            let service = service_fn(move |req| {
                let api = api.clone();
                async move { Ok::<_, Infallible>(answer(&api, req).await) }
            });
            if let Err(e) = http1::Builder::new()
                .serve_connection(TokioIo::new(stream), service)
                .await
            {
                log::debug(&format!("connection from {peer}: {e}"));
            }
        });
    }
}

async fn answer<S: Store>(api: &Api<S>, req: Request<Incoming>) -> Response<Full<Bytes>> {
    let method = req.method().as_str().to_owned();
    let path = req.uri().path().to_owned();
    let query = req.uri().query().unwrap_or("").to_owned();
    let (status, text) = match Limited::new(req.into_body(), MAX_BODY).collect().await {
        Ok(body) => api.handle(&method, &path, &query, &body.to_bytes()).await,
        Err(_) => (413, "request body too large".to_owned()),
    };
    log::debug(&format!("{method} {path} -> {status}"));
    let mut response = Response::new(Full::new(Bytes::from(text)));
    *response.status_mut() =
        hyper::StatusCode::from_u16(status).unwrap_or(hyper::StatusCode::INTERNAL_SERVER_ERROR);
    response.headers_mut().insert(
        hyper::header::CONTENT_TYPE,
        hyper::header::HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    response
}
