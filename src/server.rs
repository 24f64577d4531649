//! The HTTP server: one listener, health probes, internode RPC, the admin API, the S3 API,
//! and graceful shutdown.
//!
//! In distributed mode the listener opens before the store: peers need this node's drives
//! and lock table to bootstrap, so RPC is served at once while S3 and the admin API answer
//! 503 until [`App::set_ready`].

use std::future::Future;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use axum::body::Body;
use axum::Router;
use http::{Method, Request, Response, StatusCode};

use crate::conn::{ClientAddr, Tls};
use crate::heal::Healer;
use crate::object::Quorum;
use crate::rpc::RpcServer;
use crate::s3::{self, S3State};

/// The most header lines a request may carry (each counts against the header byte limit
/// too).
const MAX_REQUEST_HEADERS: usize = 512;

/// How long in-flight requests may run after a shutdown signal.
pub const SHUTDOWN_GRACE: Duration = Duration::from_secs(30);

const LIVE: [&str; 2] = ["/health/live", "/minio/health/live"];
const READY: [&str; 2] = ["/health/ready", "/minio/health/ready"];
const CLUSTER: [&str; 2] = ["/health/cluster", "/minio/health/cluster"];
const CLUSTER_READ: [&str; 2] = ["/health/cluster/read", "/minio/health/cluster/read"];

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
        async move {
            // Internode calls are left out: a node writing a shard to a drive here learns
            // of an early refusal (drive offline, write failed) from the connection closing
            // under its next send, and stops sending; drained, it would send it all.
            if req.uri().path().starts_with(crate::rpc::PREFIX) {
                return route(app, req).await;
            }
            s3::draining(req, move |req| route(app, req)).await
        }
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
    if let Some((prefix, scope)) = crate::metrics::http::route(path).filter(|_| is_scrape(&req)) {
        let id = s3::new_request_id();
        let mut r = crate::metrics::http::handle(state, healer, req, prefix, scope, &id).await;
        s3::stamp(&mut r, &id);
        return r;
    }
    if path.starts_with(crate::admin::PREFIX) {
        let id = s3::new_request_id();
        let mut r = crate::admin::handle(state, healer, req, &id).await;
        s3::stamp(&mut r, &id);
        return r;
    }
    let probe = is_probe(&req);
    if probe {
        let status = if LIVE.contains(&path) {
            Some(StatusCode::OK)
        } else if CLUSTER.contains(&path) && maintenance(&req) {
            // May this node be taken down (a rolling restart) without the cluster losing
            // write quorum? 412 says no, as MinIO answers `mc ready --maintenance`.
            Some(if !state.store.has_write_quorum().await {
                StatusCode::SERVICE_UNAVAILABLE
            } else if state.store.has_quorum(Quorum::Write, true).await {
                StatusCode::OK
            } else {
                StatusCode::PRECONDITION_FAILED
            })
        } else if READY.contains(&path) || CLUSTER.contains(&path) {
            Some(if state.store.has_write_quorum().await {
                StatusCode::OK
            } else {
                StatusCode::SERVICE_UNAVAILABLE
            })
        } else if CLUSTER_READ.contains(&path) {
            Some(if state.store.has_quorum(Quorum::Read, false).await {
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

/// A Prometheus scrape: GET or HEAD with a bearer token or no credentials. A SigV4-signed
/// request on the same path is S3's (a bucket named `cairn` or `minio`).
fn is_scrape(req: &Request<Body>) -> bool {
    let bearer_or_none = req
        .headers()
        .get(http::header::AUTHORIZATION)
        .is_none_or(|v| {
            v.to_str()
                .ok()
                .and_then(crate::metrics::http::bearer)
                .is_some()
        });
    (req.method() == Method::GET || req.method() == Method::HEAD)
        && bearer_or_none
        && req
            .uri()
            .query()
            .is_none_or(|q| !q.contains("X-Amz-Signature"))
}

/// `?maintenance=true` on the cluster probe.
fn maintenance(req: &Request<Body>) -> bool {
    req.uri().query().is_some_and(|q| {
        q.split('&')
            .any(|p| p.eq_ignore_ascii_case("maintenance=true"))
    })
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
    } else if is_probe(&req)
        && (READY.contains(&path) || CLUSTER.contains(&path) || CLUSTER_READ.contains(&path))
    {
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

/// Limits that keep hostile or broken clients from tying up the server.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HttpLimits {
    /// A request's head must arrive within this (slow-loris); also how long an idle
    /// keep-alive connection stays open waiting for its next request.
    pub header_timeout: Duration,
    /// A request body that sends nothing for this long fails (and its connection closes).
    pub body_idle_timeout: Duration,
    /// Connections served at once; more wait in the listen backlog.
    pub max_connections: usize,
    /// Largest request head (request line and headers), bytes; larger ones are refused
    /// with 431.
    pub max_header_bytes: usize,
}

impl Default for HttpLimits {
    fn default() -> Self {
        HttpLimits {
            header_timeout: Duration::from_secs(30),
            body_idle_timeout: Duration::from_secs(60),
            max_connections: 8192,
            max_header_bytes: 64 << 10,
        }
    }
}

impl HttpLimits {
    /// The defaults with `CAIRN_HTTP_HEADER_TIMEOUT`, `CAIRN_HTTP_BODY_IDLE_TIMEOUT`,
    /// `CAIRN_HTTP_MAX_CONNECTIONS` and `CAIRN_HTTP_MAX_HEADER_BYTES` applied; the connection
    /// cap never exceeds three quarters of the open-file limit.
    pub fn from_env(
        get: impl Fn(&str) -> Option<String>,
        parse_duration: impl Fn(&str) -> Option<Duration>,
    ) -> Result<HttpLimits, String> {
        let mut l = HttpLimits::default();
        for (var, slot) in [
            ("CAIRN_HTTP_HEADER_TIMEOUT", &mut l.header_timeout),
            ("CAIRN_HTTP_BODY_IDLE_TIMEOUT", &mut l.body_idle_timeout),
        ] {
            if let Some(v) = get(var) {
                *slot = parse_duration(&v)
                    .filter(|d| !d.is_zero())
                    .ok_or_else(|| format!("{var} must be a duration such as 30s"))?;
            }
        }
        for (var, slot, min) in [
            ("CAIRN_HTTP_MAX_CONNECTIONS", &mut l.max_connections, 1),
            ("CAIRN_HTTP_MAX_HEADER_BYTES", &mut l.max_header_bytes, 8192),
        ] {
            if let Some(v) = get(var) {
                *slot = v
                    .parse::<usize>()
                    .ok()
                    .filter(|n| *n >= min)
                    .ok_or_else(|| format!("{var} must be a number of at least {min}"))?;
            }
        }
        if let Ok((soft, _)) =
            nix::sys::resource::getrlimit(nix::sys::resource::Resource::RLIMIT_NOFILE)
        {
            let cap = usize::try_from(soft / 4 * 3).unwrap_or(usize::MAX).max(64);
            l.max_connections = l.max_connections.min(cap);
        }
        Ok(l)
    }
}

/// A request body that fails when no bytes arrive for `idle` while the server waits for
/// them. The clock runs only from the moment the server asks for the next bytes: time the
/// server spends elsewhere between reads (a full write budget, slow drives, a lock) is not
/// the client's idleness — hyper answers the first read after such a gap `Pending` while
/// it fetches the bytes the client already sent, and a clock running since the last chunk
/// failed that read at once. (A caller that stops polling after a `Pending` leaves the
/// clock running; hyper has been told the body wants more and reads the socket meanwhile,
/// so what arrived is `Ready` at the next poll.)
struct IdleBody {
    inner: Body,
    idle: Duration,
    timer: std::pin::Pin<Box<tokio::time::Sleep>>,
    /// The timer runs for the read under way (the last poll returned `Pending`).
    waiting: bool,
}

impl IdleBody {
    fn new(inner: Body, idle: Duration) -> IdleBody {
        IdleBody {
            inner,
            idle,
            timer: Box::pin(tokio::time::sleep(idle)),
            waiting: false,
        }
    }
}

impl http_body::Body for IdleBody {
    type Data = bytes::Bytes;
    type Error = axum::Error;

    fn poll_frame(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Result<http_body::Frame<Self::Data>, Self::Error>>> {
        use std::task::Poll;
        let this = &mut *self;
        match std::pin::Pin::new(&mut this.inner).poll_frame(cx) {
            Poll::Ready(r) => {
                this.waiting = false;
                Poll::Ready(r)
            }
            Poll::Pending => {
                if !this.waiting {
                    this.waiting = true;
                    let deadline = tokio::time::Instant::now() + this.idle;
                    this.timer.as_mut().reset(deadline);
                }
                match this.timer.as_mut().poll(cx) {
                    Poll::Ready(()) => {
                        Poll::Ready(Some(Err(axum::Error::new(std::io::Error::new(
                            std::io::ErrorKind::TimedOut,
                            format!("request body idle for {:?}", this.idle),
                        )))))
                    }
                    Poll::Pending => Poll::Pending,
                }
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        self.inner.size_hint()
    }
}

struct PlainHttp;

/// A client that sent plain HTTP to the HTTPS listener (a TLS handshake starts with byte
/// 0x16; a request line with a letter) is told so, as Go's servers do, and the connection
/// closed; anything else goes on to the handshake.
async fn plain_http(stream: &tokio::net::TcpStream) -> bool {
    let mut first = [0u8; 1];
    match stream.peek(&mut first).await {
        Ok(1) if first[0].is_ascii_uppercase() => {
            const ANSWER: &[u8] = b"HTTP/1.0 400 Bad Request\r\nContent-Type: text/plain\r\nConnection: close\r\n\r\nClient sent an HTTP request to an HTTPS server.\n";
            let mut sent = 0;
            while sent < ANSWER.len() {
                if stream.writable().await.is_err() {
                    break;
                }
                match stream.try_write(&ANSWER[sent..]) {
                    Ok(n) => sent += n,
                    Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => continue,
                    Err(_) => break,
                }
            }
            true
        }
        _ => false,
    }
}

/// Serve `router` until `shutdown` resolves under `limits`, then stop accepting and give
/// in-flight requests up to [`SHUTDOWN_GRACE`] to finish.
pub async fn serve_router(
    listener: tokio::net::TcpListener,
    router: Router,
    limits: HttpLimits,
    tls: Option<Arc<rustls::ServerConfig>>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
    let idle = limits.body_idle_timeout;
    let router =
        router.layer(axum::middleware::map_request(
            move |req: Request<Body>| async move {
                req.map(|inner| Body::new(IdleBody::new(inner, idle)))
            },
        ));
    let mut builder = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(limits.header_timeout)
        .max_buf_size(limits.max_header_bytes)
        // S3 bounds a request's headers by size (8 KiB, user metadata 2 KiB), not by
        // count: hyper's default of 100 refused a PUT with ~90 short metadata entries.
        .max_headers(MAX_REQUEST_HEADERS);
    builder
        .http2()
        .timer(TokioTimer::new())
        .keep_alive_interval(limits.header_timeout)
        .keep_alive_timeout(limits.header_timeout);
    let builder = Arc::new(builder);
    let slots = Arc::new(tokio::sync::Semaphore::new(limits.max_connections));
    let graceful = hyper_util::server::graceful::GracefulShutdown::new();
    tokio::pin!(shutdown);
    let mut full_warned = false;
    loop {
        let permit = tokio::select! {
            p = slots.clone().acquire_owned() => p.map_err(std::io::Error::other)?,
            _ = &mut shutdown => break,
        };
        if slots.available_permits() == 0 && !full_warned {
            tracing::warn!(
                max = limits.max_connections,
                "connection limit reached: new connections wait"
            );
            full_warned = true;
        } else if slots.available_permits() > limits.max_connections / 10 {
            full_warned = false;
        }
        let (stream, peer) = tokio::select! {
            r = listener.accept() => match r {
                Ok(c) => c,
                Err(e) => {
                    // Out of file descriptors and the like: back off instead of spinning.
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            _ = &mut shutdown => break,
        };
        let _ = stream.set_nodelay(true);
        let conn_router = router.clone();
        // Every request knows the address it came from (policies' `aws:SourceIp`) and
        // whether it came over TLS (`aws:SecureTransport`).
        let secure = tls.is_some();
        let svc = hyper_util::service::TowerToHyperService::new(tower::service_fn(
            move |mut req: Request<hyper::body::Incoming>| {
                req.extensions_mut().insert(ClientAddr(peer));
                if secure {
                    req.extensions_mut().insert(Tls);
                }
                let mut r = conn_router.clone();
                tower::Service::call(&mut r, req)
            },
        ));
        let builder = builder.clone();
        let watcher = graceful.watcher();
        let tls = tls.clone().map(tokio_rustls::TlsAcceptor::from);
        let handshake_timeout = limits.header_timeout;
        tokio::spawn(async move {
            let _slot = permit;
            let served = match tls {
                None => {
                    let conn = builder
                        .serve_connection_with_upgrades(TokioIo::new(stream), svc)
                        .into_owned();
                    watcher.watch(conn).await
                }
                Some(acceptor) => {
                    // The handshake counts against the same clock as a request's head.
                    let handshake = async {
                        if plain_http(&stream).await {
                            return Err(PlainHttp);
                        }
                        // rustls reads records 4 KiB at a time: a 64 KiB buffer under it
                        // turns a 1 MiB upload's 256 reads into 16 system calls.
                        let stream = tokio::io::BufReader::with_capacity(64 << 10, stream);
                        Ok(acceptor.accept(stream).await)
                    };
                    let stream = match tokio::time::timeout(handshake_timeout, handshake).await {
                        Ok(Err(PlainHttp)) => {
                            tracing::debug!(client = %peer, "plain HTTP request on the HTTPS listener");
                            return;
                        }
                        Ok(Ok(r)) => r,
                        Err(_) => {
                            tracing::debug!(client = %peer, "TLS handshake timed out");
                            return;
                        }
                    };
                    let stream = match stream {
                        Ok(s) => s,
                        Err(e) => {
                            tracing::warn!(
                                client = %peer,
                                error = %crate::tls::explain(&e.to_string()),
                                "TLS handshake failed"
                            );
                            return;
                        }
                    };
                    let conn = builder
                        .serve_connection_with_upgrades(TokioIo::new(stream), svc)
                        .into_owned();
                    watcher.watch(conn).await
                }
            };
            if let Err(e) = served {
                tracing::debug!(error = %e, "connection ended with an error");
            }
        });
    }
    drop(listener);
    tracing::info!("shutting down: finishing in-flight requests");
    if tokio::time::timeout(SHUTDOWN_GRACE, graceful.shutdown())
        .await
        .is_err()
    {
        tracing::warn!("in-flight requests did not finish within {SHUTDOWN_GRACE:?}; exiting");
    }
    Ok(())
}

/// Serve `app` until `shutdown` resolves (see [`serve_router`]).
pub async fn serve(
    listener: tokio::net::TcpListener,
    app: Arc<App>,
    limits: HttpLimits,
    tls: Option<Arc<rustls::ServerConfig>>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    serve_router(listener, router(app), limits, tls, shutdown).await
}

#[cfg(test)]
mod tests {
    use super::*;
    use http_body_util::BodyExt;

    /// A body whose every chunk is first answered `Pending`, as hyper's is while it reads
    /// the socket for bytes the client already sent.
    struct Fetching {
        chunks: Vec<bytes::Bytes>,
        fetched: bool,
        /// After the chunks, nothing more and no end (a client gone silent).
        then_silent: bool,
    }

    impl http_body::Body for Fetching {
        type Data = bytes::Bytes;
        type Error = std::io::Error;

        fn poll_frame(
            mut self: std::pin::Pin<&mut Self>,
            cx: &mut std::task::Context<'_>,
        ) -> std::task::Poll<Option<Result<http_body::Frame<Self::Data>, Self::Error>>> {
            if self.chunks.is_empty() {
                return match self.then_silent {
                    true => std::task::Poll::Pending,
                    false => std::task::Poll::Ready(None),
                };
            }
            if !self.fetched {
                self.fetched = true;
                cx.waker().wake_by_ref();
                return std::task::Poll::Pending;
            }
            self.fetched = false;
            let chunk = self.chunks.remove(0);
            std::task::Poll::Ready(Some(Ok(http_body::Frame::data(chunk))))
        }
    }

    /// A body that never sends anything.
    struct Silent;

    impl http_body::Body for Silent {
        type Data = bytes::Bytes;
        type Error = std::io::Error;

        fn poll_frame(
            self: std::pin::Pin<&mut Self>,
            _: &mut std::task::Context<'_>,
        ) -> std::task::Poll<Option<Result<http_body::Frame<Self::Data>, Self::Error>>> {
            std::task::Poll::Pending
        }
    }

    #[tokio::test(start_paused = true)]
    async fn time_the_server_spends_between_reads_is_not_the_clients_idleness() {
        let idle = Duration::from_secs(60);
        let inner = Fetching {
            chunks: vec![
                bytes::Bytes::from_static(b"a"),
                bytes::Bytes::from_static(b"b"),
            ],
            fetched: false,
            then_silent: false,
        };
        let mut body = IdleBody::new(Body::new(inner), idle);
        // The server is busy before its first read and between its reads for longer than
        // the idle limit; the client sent everything at once.
        tokio::time::sleep(idle * 2).await;
        let first = body.frame().await.expect("a frame").expect("not idle");
        assert_eq!(first.into_data().ok().as_deref(), Some(&b"a"[..]));
        tokio::time::sleep(idle * 2).await;
        let second = body.frame().await.expect("a frame").expect("not idle");
        assert_eq!(second.into_data().ok().as_deref(), Some(&b"b"[..]));
        assert!(body.frame().await.is_none());
    }

    #[tokio::test(start_paused = true)]
    async fn a_client_that_goes_silent_times_out_counted_from_the_servers_next_read() {
        let idle = Duration::from_secs(60);
        let inner = Fetching {
            chunks: vec![bytes::Bytes::from_static(b"a")],
            fetched: false,
            then_silent: true,
        };
        let mut body = IdleBody::new(Body::new(inner), idle);
        assert!(body.frame().await.expect("a frame").is_ok());
        // The server is busy for longer than the limit, then asks for more.
        tokio::time::sleep(idle * 2).await;
        times_out_after(&mut body, idle).await;
    }

    #[tokio::test(start_paused = true)]
    async fn a_client_that_sends_nothing_times_out_after_the_idle_limit() {
        let idle = Duration::from_secs(60);
        let mut body = IdleBody::new(Body::new(Silent), idle);
        times_out_after(&mut body, idle).await;
    }

    /// The next read of `body` fails as idle `idle` after it is asked for.
    async fn times_out_after(body: &mut IdleBody, idle: Duration) {
        let asked = tokio::time::Instant::now();
        let err = tokio::time::timeout(idle * 3, body.frame())
            .await
            .expect("the idle limit ends the wait")
            .expect("an answer")
            .expect_err("idle");
        assert!(err.to_string().contains("idle"), "{err}");
        let waited = asked.elapsed();
        assert!(
            waited >= idle && waited < idle + Duration::from_secs(1),
            "{waited:?}"
        );
    }
}
