//! The HTTP server: one listener, health probes, internode RPC, the admin API, the S3 API,
//! and graceful shutdown.
//!
//! In distributed mode the listener opens before the store: peers need this node's drives
//! and lock table to bootstrap, so RPC is served at once while S3 and the admin API answer
//! 503 until [`App::set_ready`].

use std::future::Future;
use std::net::SocketAddr;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use axum::body::Body;
use axum::Router;
use http::{Method, Request, Response, StatusCode};

use crate::heal::Healer;
use crate::rpc::RpcServer;
use crate::s3::{self, S3State};

/// How long in-flight requests may run after a shutdown signal.
pub const SHUTDOWN_GRACE: Duration = Duration::from_secs(30);

const LIVE: [&str; 2] = ["/health/live", "/minio/health/live"];
const READY: [&str; 2] = ["/health/ready", "/minio/health/ready"];
const CLUSTER: [&str; 2] = ["/health/cluster", "/minio/health/cluster"];

/// What the listener serves.
pub struct App {
    rpc: Option<Arc<RpcServer>>,
    ready: OnceLock<(Arc<S3State>, Arc<Healer>)>,
}

impl App {
    /// An app that serves internode RPC (when given) and waits for [`App::set_ready`].
    pub fn new(rpc: Option<Arc<RpcServer>>) -> Arc<App> {
        Arc::new(App {
            rpc,
            ready: OnceLock::new(),
        })
    }

    /// An app serving `state` at once (single node).
    pub fn ready(state: Arc<S3State>, healer: Arc<Healer>) -> Arc<App> {
        let app = App::new(None);
        app.set_ready(state, healer);
        app
    }

    pub fn set_ready(&self, state: Arc<S3State>, healer: Arc<Healer>) {
        let _ = self.ready.set((state, healer));
    }
}

/// The application: health probes for unauthenticated GET/HEAD on their paths, internode
/// calls under `/cairn/rpc/v1/`, the admin API under `/cairn/admin/v1/`, S3 for the rest.
pub fn router(app: Arc<App>) -> Router {
    Router::new().fallback(move |req: Request<Body>| {
        let app = app.clone();
        async move { route(app, req).await }
    })
}

async fn route(app: Arc<App>, req: Request<Body>) -> Response<Body> {
    let path = req.uri().path();
    if path.starts_with(crate::rpc::PREFIX) {
        return match &app.rpc {
            Some(rpc) => rpc.handle(req).await,
            None => {
                let mut r = Response::new(Body::from("not a distributed deployment"));
                *r.status_mut() = StatusCode::NOT_FOUND;
                r
            }
        };
    }
    let Some((state, healer)) = app.ready.get().cloned() else {
        return starting(req);
    };
    if path.starts_with(crate::admin::PREFIX) {
        let mut r = crate::admin::handle(state, healer, req).await;
        s3::stamp(&mut r, &s3::new_request_id());
        return r;
    }
    let probe = is_probe(&req);
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

fn is_probe(req: &Request<Body>) -> bool {
    (req.method() == Method::GET || req.method() == Method::HEAD)
        && !req.headers().contains_key("authorization")
        && req
            .uri()
            .query()
            .is_none_or(|q| !q.contains("X-Amz-Signature"))
}

/// Before the store is open: alive, not ready, and S3 asks clients to retry.
fn starting(req: Request<Body>) -> Response<Body> {
    let id = s3::new_request_id();
    let path = req.uri().path();
    let mut r = if is_probe(&req) && LIVE.contains(&path) {
        Response::new(Body::empty())
    } else if is_probe(&req) && (READY.contains(&path) || CLUSTER.contains(&path)) {
        let mut r = Response::new(Body::empty());
        *r.status_mut() = StatusCode::SERVICE_UNAVAILABLE;
        r
    } else {
        let e = s3::error::S3Error::new(
            "ServiceUnavailable",
            StatusCode::SERVICE_UNAVAILABLE,
            "The server is starting: waiting for enough drives and nodes. Please retry.",
        );
        let mut r = s3::error_response(&e, path, &id, req.method() == Method::HEAD);
        r.headers_mut()
            .insert("retry-after", http::HeaderValue::from_static("1"));
        r
    };
    s3::stamp(&mut r, &id);
    r
}

/// Serve until `shutdown` resolves, then stop accepting and give in-flight requests up to
/// [`SHUTDOWN_GRACE`] to finish.
pub async fn serve(
    listener: tokio::net::TcpListener,
    app: Arc<App>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let app = router(app);
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
