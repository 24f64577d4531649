//! The HTTP server: one listener, health probes, the S3 API, and graceful shutdown.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::Router;
use http::{Method, Request, Response, StatusCode};

use crate::heal::Healer;
use crate::s3::{self, S3State};

/// How long in-flight requests may run after a shutdown signal.
pub const SHUTDOWN_GRACE: Duration = Duration::from_secs(30);

const LIVE: [&str; 2] = ["/health/live", "/minio/health/live"];
const READY: [&str; 2] = ["/health/ready", "/minio/health/ready"];
const CLUSTER: [&str; 2] = ["/health/cluster", "/minio/health/cluster"];

/// The application: health probes for unauthenticated GET/HEAD on their paths, the admin
/// API under `/cairn/admin/v1/`, S3 for the rest.
pub fn router(state: Arc<S3State>, healer: Arc<Healer>) -> Router {
    Router::new().fallback(move |req: Request<Body>| {
        let (state, healer) = (state.clone(), healer.clone());
        async move { route(state, healer, req).await }
    })
}

async fn route(state: Arc<S3State>, healer: Arc<Healer>, req: Request<Body>) -> Response<Body> {
    let path = req.uri().path();
    if path.starts_with(crate::admin::PREFIX) {
        let mut r = crate::admin::handle(state, healer, req).await;
        s3::stamp(&mut r, &s3::new_request_id());
        return r;
    }
    let probe = (req.method() == Method::GET || req.method() == Method::HEAD)
        && !req.headers().contains_key("authorization")
        && req
            .uri()
            .query()
            .is_none_or(|q| !q.contains("X-Amz-Signature"));
    if probe {
        let status = if LIVE.contains(&path) {
            Some(StatusCode::OK)
        } else if READY.contains(&path) || CLUSTER.contains(&path) {
            Some(if state.store.has_write_quorum().await {
                StatusCode::OK
            } else {
                StatusCode::SERVICE_UNAVAILABLE
            })
        } else {
            None
        };
        if let Some(status) = status {
            let mut r = Response::new(Body::empty());
            *r.status_mut() = status;
            s3::stamp(&mut r, &s3::new_request_id());
            return r;
        }
    }
    s3::handle(state, req).await
}

/// Serve until `shutdown` resolves, then stop accepting and give in-flight requests up to
/// [`SHUTDOWN_GRACE`] to finish.
pub async fn serve(
    listener: tokio::net::TcpListener,
    state: Arc<S3State>,
    healer: Arc<Healer>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let app = router(state, healer);
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    let graceful = async move {
        shutdown.await;
        let _ = tx.send(());
    };
    let server = axum::serve(
        listener,
        app.into_make_service_with_connect_info::<SocketAddr>(),
    )
    .with_graceful_shutdown(graceful);
    let server = tokio::spawn(async move { server.await });
    tokio::pin!(server);
    tokio::select! {
        r = &mut server => return r.map_err(std::io::Error::other)?,
        _ = rx => {}
    }
    tracing::info!("shutting down: finishing in-flight requests");
    match tokio::time::timeout(SHUTDOWN_GRACE, &mut server).await {
        Ok(r) => r.map_err(std::io::Error::other)?,
        Err(_) => {
            tracing::warn!("in-flight requests did not finish within {SHUTDOWN_GRACE:?}; exiting");
            Ok(())
        }
    }
}
