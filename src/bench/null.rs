//! The null server: the ceiling of any object server on this machine and HTTP stack. Same
//! listener and HTTP library as `cairn server` (hyper via axum); PUT drains the body and
//! remembers the size, GET serves that many bytes from memory, nothing touches a disk and
//! nothing is authenticated or hashed.

use std::collections::HashMap;
use std::sync::Arc;

use axum::body::Body;
use bytes::Bytes;
use futures::StreamExt;
use http::{Method, Request, Response, StatusCode};
use parking_lot::Mutex;

/// Largest slice served in one frame.
const FRAME: usize = 1 << 20;

#[derive(Default)]
struct State {
    sizes: Mutex<HashMap<String, u64>>,
}

fn status(code: StatusCode) -> Response<Body> {
    let mut r = Response::new(Body::empty());
    *r.status_mut() = code;
    r
}

async fn handle(state: Arc<State>, frame: Bytes, req: Request<Body>) -> Response<Body> {
    let path = req.uri().path().to_string();
    let is_object = path.trim_start_matches('/').contains('/');
    match *req.method() {
        Method::PUT => {
            let mut body = req.into_body().into_data_stream();
            let mut n = 0u64;
            while let Some(chunk) = body.next().await {
                match chunk {
                    Ok(c) => n += c.len() as u64,
                    Err(_) => return status(StatusCode::BAD_REQUEST),
                }
            }
            if is_object {
                state.sizes.lock().insert(path, n);
            }
            let mut r = status(StatusCode::OK);
            r.headers_mut()
                .insert("etag", http::HeaderValue::from_static("\"null\""));
            r
        }
        Method::GET | Method::HEAD if is_object => {
            let Some(size) = state.sizes.lock().get(&path).copied() else {
                return status(StatusCode::NOT_FOUND);
            };
            let head = req.method() == Method::HEAD;
            let frames = futures::stream::unfold(size, move |left| {
                let frame = frame.clone();
                async move {
                    (left > 0).then(|| {
                        let n = (left as usize).min(FRAME);
                        (
                            Ok::<Bytes, std::io::Error>(frame.slice(..n)),
                            left - n as u64,
                        )
                    })
                }
            });
            let mut r = Response::new(if head {
                Body::empty()
            } else {
                Body::from_stream(frames)
            });
            r.headers_mut()
                .insert("content-length", http::HeaderValue::from(size));
            r
        }
        Method::GET => {
            let mut r = Response::new(Body::from(
                "<?xml version=\"1.0\" encoding=\"UTF-8\"?><ListBucketResult><IsTruncated>false</IsTruncated><KeyCount>0</KeyCount></ListBucketResult>",
            ));
            r.headers_mut().insert(
                "content-type",
                http::HeaderValue::from_static("application/xml"),
            );
            r
        }
        Method::DELETE => status(StatusCode::NO_CONTENT),
        _ => status(StatusCode::OK),
    }
}

/// Serve until the process ends (over TLS when given a configuration).
pub async fn serve(
    listener: tokio::net::TcpListener,
    tls: Option<Arc<rustls::ServerConfig>>,
) -> std::io::Result<()> {
    let state = Arc::new(State::default());
    let frame = Bytes::from(vec![0x5au8; FRAME]);
    let app = axum::Router::new().fallback(move |req: Request<Body>| {
        let (state, frame) = (state.clone(), frame.clone());
        async move { handle(state, frame, req).await }
    });
    // The same HTTP stack and limits as the server: the ceiling it is measured against.
    crate::server::serve_router(
        listener,
        app,
        crate::server::HttpLimits::default(),
        tls,
        std::future::pending(),
    )
    .await
}
