//! Internode RPC: remote drives, lock calls and peer hellos over HTTP/1.1 on the same
//! listener as S3 (`/cairn/rpc/v1/...`).
//!
//! Every call carries a token derived from the root credentials (HMAC over a timestamp,
//! method and path) and the cluster's endpoint-list hash: a node with other credentials or
//! another endpoint list is refused. Each peer has one keep-alive connection pool, a connect
//! timeout, a timeout per call, and a health state: after a transport failure the peer is
//! marked down and calls fail at once (`Offline`) while a background task probes it with
//! `hello` after a backoff (1 s doubling to 5 s): no request waits on a down peer.

pub mod drive;
pub mod server;
pub mod wire;

use std::time::{Duration, Instant};

use bytes::Bytes;
use hmac::{Hmac, Mac};
use http_body_util::combinators::BoxBody;
use http_body_util::{BodyExt, Full};
use hyper_rustls::HttpsConnector;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use parking_lot::Mutex;
use sha2::Sha256;

use crate::auth::RootCredentials;
use crate::drive::DriveError;
use crate::placement::Endpoint;

pub use drive::RemoteDrive;
pub use server::{RpcServer, Service, StreamService};

/// Path prefix of every internode call.
pub const PREFIX: &str = "/cairn/rpc/v1/";
const AUTH_HEADER: &str = "x-cairn-rpc-auth";
const CLUSTER_HEADER: &str = "x-cairn-cluster";
const NODE_HEADER: &str = "x-cairn-node";
/// How far apart two nodes' clocks may be: how long a token is good for, either way.
const MAX_SKEW_SECS: u64 = 60;
/// Metadata calls.
pub const SHORT_TIMEOUT: Duration = Duration::from_secs(5);
/// Listings, shard reads and other calls that move more.
pub const LONG_TIMEOUT: Duration = Duration::from_secs(60);
const CONNECT_TIMEOUT: Duration = Duration::from_secs(2);
const MAX_BACKOFF: Duration = Duration::from_secs(5);
/// Marks errors of a peer that refused this node's calls (misconfiguration).
pub const REJECTED: &str = "rejected this node";

pub type RpcBody = BoxBody<Bytes, std::io::Error>;

pub fn full_body(b: impl Into<Bytes>) -> RpcBody {
    Full::new(b.into()).map_err(|never| match never {}).boxed()
}

/// Shared secret and cluster identity of the internode protocol.
///
/// A call's token is `v2.<unix secs>.<nonce>.<body>.<mac>`: the MAC (HMAC-SHA256 with a key
/// derived from the root credentials) covers the time, a random nonce, the method, the path
/// and query (drive index, file path) and `<body>`, the blake3 hash of the request body (or
/// `-` for the one streamed call, a shard file write, whose path is bound instead). A token
/// is good for [`MAX_SKEW_SECS`] either way and once: its nonce is remembered until it has
/// expired, so a sniffed call can be neither replayed nor given another body.
#[derive(Clone)]
pub struct RpcAuth {
    key: [u8; 32],
    cluster: String,
    seen: std::sync::Arc<Mutex<Nonces>>,
}

/// Nonces of tokens still within their window, in two generations: a nonce is a replay
/// while it is in either; the older one is dropped each `2 * MAX_SKEW_SECS`.
#[derive(Default)]
struct Nonces {
    current: std::collections::HashSet<u128>,
    previous: std::collections::HashSet<u128>,
    rotated: u64,
}

impl Nonces {
    /// False when `nonce` was seen (a replay).
    fn insert(&mut self, nonce: u128, now: u64) -> bool {
        if now.saturating_sub(self.rotated) >= 2 * MAX_SKEW_SECS {
            self.previous = std::mem::take(&mut self.current);
            self.rotated = now;
        }
        !self.previous.contains(&nonce) && self.current.insert(nonce)
    }
}

impl std::fmt::Debug for RpcAuth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RpcAuth")
            .field("cluster", &self.cluster)
            .finish_non_exhaustive()
    }
}

fn unix_secs() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

fn hmac(key: &[u8], parts: &[&[u8]]) -> [u8; 32] {
    let Ok(mut m) = Hmac::<Sha256>::new_from_slice(key) else {
        return [0; 32];
    };
    for p in parts {
        m.update(p);
        m.update(b"\n");
    }
    m.finalize().into_bytes().into()
}

/// What a token claims, before its body is checked.
#[derive(Debug)]
pub struct Claim {
    /// The body's blake3 hash, or `None` for a streamed body.
    body: Option<[u8; 32]>,
}

impl Claim {
    /// Does `body` match what the token was made for?
    pub fn check_body(&self, body: &[u8]) -> Result<(), String> {
        match &self.body {
            Some(h)
                if subtle::ConstantTimeEq::ct_eq(&h[..], blake3::hash(body).as_bytes()).into() =>
            {
                Ok(())
            }
            Some(_) => Err("the call's body is not the one its token was made for".into()),
            None => Err("a streamed-body token on a call with a body".into()),
        }
    }

    /// Is this the token of a streamed body (a file write, bound by its path)?
    pub fn is_streamed(&self) -> bool {
        self.body.is_none()
    }
}

impl RpcAuth {
    /// The key is derived from the root credentials; the cluster id hashes the endpoint list
    /// in order, so nodes started with different lists refuse each other.
    pub fn new(creds: &RootCredentials, endpoints: &[Endpoint]) -> RpcAuth {
        let key = hmac(
            creds.secret_key.as_bytes(),
            &[b"cairn-internode-v2", creds.access_key.as_bytes()],
        );
        let mut h = blake3::Hasher::new();
        for e in endpoints {
            h.update(e.to_string().as_bytes());
            h.update(b"\n");
        }
        RpcAuth {
            key,
            cluster: hex::encode(&h.finalize().as_bytes()[..12]),
            seen: Default::default(),
        }
    }

    pub fn cluster(&self) -> &str {
        &self.cluster
    }

    fn mac(&self, ts: u64, nonce: &str, method: &str, path: &str, body: &str) -> String {
        hex::encode(hmac(
            &self.key,
            &[
                b"v2",
                ts.to_string().as_bytes(),
                nonce.as_bytes(),
                method.as_bytes(),
                path.as_bytes(),
                body.as_bytes(),
            ],
        ))
    }

    fn token(&self, ts: u64, method: &str, path: &str, body: Option<&[u8]>) -> String {
        let nonce = format!("{:032x}", uuid::Uuid::new_v4().as_u128());
        let body = body.map_or_else(|| "-".to_string(), |b| blake3::hash(b).to_hex().to_string());
        let mac = self.mac(ts, &nonce, method, path, &body);
        format!("v2.{ts}.{nonce}.{body}.{mac}")
    }

    /// Headers for a call to `path` (path and query) with `body` (`None`: streamed).
    pub fn headers(
        &self,
        method: &str,
        path: &str,
        body: Option<&[u8]>,
    ) -> [(&'static str, String); 2] {
        [
            (AUTH_HEADER, self.token(unix_secs(), method, path, body)),
            (CLUSTER_HEADER, self.cluster.clone()),
        ]
    }

    /// The calling node's name as it says (for log lines about refused calls).
    pub fn caller(headers: &http::HeaderMap) -> &str {
        headers
            .get(NODE_HEADER)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("unknown node")
    }

    /// Check a call's headers: cluster, time, MAC, and that its nonce was not seen. The
    /// body is checked against the returned [`Claim`] once read. The error says why it is
    /// refused (for this node's log; the caller is told only the gist).
    pub fn verify(
        &self,
        headers: &http::HeaderMap,
        method: &str,
        path: &str,
    ) -> Result<Claim, String> {
        let get = |n: &str| headers.get(n).and_then(|v| v.to_str().ok());
        let cluster = get(CLUSTER_HEADER).ok_or("no cluster id")?;
        if cluster != self.cluster {
            return Err(format!(
                "the caller was started with another endpoint list (cluster {cluster}, this node {})",
                self.cluster
            ));
        }
        let token = get(AUTH_HEADER).ok_or("no internode token")?;
        let mut parts = token.split('.');
        let (Some("v2"), Some(ts), Some(nonce), Some(body), Some(mac), None) = (
            parts.next(),
            parts.next(),
            parts.next(),
            parts.next(),
            parts.next(),
            parts.next(),
        ) else {
            return Err("malformed internode token".into());
        };
        let ts: u64 = ts.parse().map_err(|_| "malformed internode token")?;
        let now = unix_secs();
        if now.abs_diff(ts) > MAX_SKEW_SECS {
            return Err(format!(
                "internode token expired (clocks more than {MAX_SKEW_SECS} s apart?)"
            ));
        }
        let want = self.mac(ts, nonce, method, path, body);
        if !bool::from(subtle::ConstantTimeEq::ct_eq(
            want.as_bytes(),
            mac.as_bytes(),
        )) {
            return Err("internode token does not match (different root credentials?)".into());
        }
        let nonce = u128::from_str_radix(nonce, 16).map_err(|_| "malformed internode token")?;
        if !self.seen.lock().insert(nonce, now) {
            return Err("internode token replayed".into());
        }
        let body = match body {
            "-" => None,
            h => {
                let mut out = [0u8; 32];
                hex::decode_to_slice(h, &mut out).map_err(|_| "malformed internode token")?;
                Some(out)
            }
        };
        Ok(Claim { body })
    }
}

/// An error and its causes on one line.
fn error_chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut cur = e.source();
    while let Some(c) = cur {
        s.push_str(": ");
        s.push_str(&c.to_string());
        cur = c.source();
    }
    s
}

struct Health {
    down: bool,
    /// Cancelled when the peer is marked down: calls in flight to it give up at once.
    gone: tokio_util::sync::CancellationToken,
    /// A background task is probing the peer.
    probing: bool,
    backoff: Duration,
    last_error: String,
}

/// Another node: its connection pool and health.
pub struct Peer {
    /// `host:port`.
    pub node: String,
    base: String,
    /// This node's name, sent along for the peer's logs.
    from: String,
    client: Client<HttpsConnector<HttpConnector>, RpcBody>,
    auth: RpcAuth,
    health: Mutex<Health>,
    me: std::sync::Weak<Peer>,
    stats: PeerStats,
    /// Metadata heads waiting to be sent together ([`RemoteDrive`]'s `read_meta_head`).
    heads: Mutex<Vec<drive::HeadWant>>,
}

/// Calls to one peer, for metrics: sent, failed (no answer, or refused), and the time to
/// each answer's status line.
#[derive(Debug, Default)]
pub struct PeerStats {
    pub calls: std::sync::atomic::AtomicU64,
    pub errors: std::sync::atomic::AtomicU64,
    pub latency: crate::metrics::Histogram,
}

impl std::fmt::Debug for Peer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Peer").field("node", &self.node).finish()
    }
}

/// Lock calls to a peer's lock table go over `POST {PREFIX}lock`.
#[async_trait::async_trait]
impl crate::lock::dist::LockPeer for Peer {
    async fn lock_call(
        &self,
        call: &crate::lock::dist::LockCall,
        timeout: std::time::Duration,
    ) -> Option<bool> {
        let b = self
            .call(&format!("{PREFIX}lock"), wire::encode(call), timeout)
            .await
            .ok()?;
        wire::decode::<bool>(&b).ok()
    }
}

/// A call's answer: status and body.
pub struct Reply {
    pub status: http::StatusCode,
    pub body: hyper::body::Incoming,
}

impl Peer {
    /// A peer at `scheme://node`; `tls` is how its certificate is checked when the scheme
    /// is `https`.
    pub fn new(
        scheme: &str,
        node: &str,
        from: &str,
        auth: RpcAuth,
        tls: std::sync::Arc<rustls::ClientConfig>,
    ) -> std::sync::Arc<Peer> {
        let conn = crate::tls::https_connector(&tls, CONNECT_TIMEOUT);
        let client = Client::builder(TokioExecutor::new())
            .pool_idle_timeout(Duration::from_secs(60))
            .pool_max_idle_per_host(64)
            .build(conn);
        std::sync::Arc::new_cyclic(|me| Peer {
            stats: PeerStats::default(),
            node: node.to_string(),
            base: format!("{scheme}://{node}"),
            from: from.to_string(),
            client,
            auth,
            health: Mutex::new(Health {
                down: false,
                gone: tokio_util::sync::CancellationToken::new(),
                probing: false,
                backoff: Duration::from_secs(1),
                last_error: String::new(),
            }),
            me: me.clone(),
            heads: Mutex::new(Vec::new()),
        })
    }

    /// False while the peer is marked down.
    pub fn is_online(&self) -> bool {
        !self.health.lock().down
    }

    fn offline(&self) -> DriveError {
        let why = self.health.lock().last_error.clone();
        DriveError::Offline(format!("node {} is offline: {why}", self.node))
    }

    /// Cancelled if the peer is marked down from now on (streams to it stop waiting).
    pub fn gone(&self) -> tokio_util::sync::CancellationToken {
        self.health.lock().gone.clone()
    }

    /// Calls to a peer marked down fail at once; a background probe brings it back.
    fn admit(&self) -> Result<(), DriveError> {
        if self.health.lock().down {
            return Err(self.offline());
        }
        Ok(())
    }

    fn mark_ok(&self) {
        let mut h = self.health.lock();
        if h.down {
            tracing::info!(node = %self.node, "peer is back online");
        }
        h.down = false;
        h.backoff = Duration::from_secs(1);
    }

    fn mark_down(&self, why: &str) {
        let mut h = self.health.lock();
        if !h.down {
            tracing::warn!(node = %self.node, error = why, "peer is offline");
            h.down = true;
            h.backoff = Duration::from_secs(1);
            h.gone.cancel();
            h.gone = tokio_util::sync::CancellationToken::new();
        } else if h.last_error != why {
            // Still down, for another reason (it restarted with a certificate this node
            // cannot verify, say): worth a line.
            tracing::warn!(node = %self.node, error = why, "peer is still offline");
        }
        h.last_error = why.to_string();
        if !h.probing {
            if let (Some(me), Ok(rt)) = (self.me.upgrade(), tokio::runtime::Handle::try_current()) {
                h.probing = true;
                rt.spawn(me.probe());
            }
        }
    }

    /// Ask the peer now, whatever it is marked as: a `hello` that must answer within the
    /// probe timeout. True when it answered (it is then marked up).
    pub async fn probe_now(&self) -> bool {
        let path = format!("{PREFIX}hello");
        self.call_inner(&path, Vec::new(), CONNECT_TIMEOUT * 2, true)
            .await
            .is_ok()
    }

    /// Check a live peer every `every` (a `hello` that must answer within 2 s), so a peer
    /// that died or was cut off is marked down by this task rather than by client requests.
    pub fn start_heartbeat(&self, every: Duration, stop: tokio_util::sync::CancellationToken) {
        let Some(me) = self.me.upgrade() else { return };
        tokio::spawn(async move {
            let path = format!("{PREFIX}hello");
            loop {
                tokio::select! {
                    _ = tokio::time::sleep(every) => {}
                    _ = stop.cancelled() => return,
                }
                if me.is_online() {
                    let _ = me.call(&path, Vec::new(), CONNECT_TIMEOUT).await;
                }
            }
        });
    }

    /// Probe a down peer with `hello` after a backoff (1 s doubling to [`MAX_BACKOFF`])
    /// until it answers; only this task waits on an unreachable peer.
    async fn probe(self: std::sync::Arc<Self>) {
        loop {
            let wait = self.health.lock().backoff;
            tokio::time::sleep(wait).await;
            let path = format!("{PREFIX}hello");
            let answered = self
                .call_inner(&path, Vec::new(), CONNECT_TIMEOUT * 2, true)
                .await
                .is_ok();
            let mut h = self.health.lock();
            if answered || !h.down {
                h.probing = false;
                return;
            }
            h.backoff = (h.backoff * 2).min(MAX_BACKOFF);
        }
    }

    /// Send a call and wait (at most `timeout`) for its status line.
    pub async fn send(
        &self,
        method: &str,
        path: &str,
        body: RpcBody,
        timeout: Duration,
    ) -> Result<Reply, DriveError> {
        self.admit()?;
        self.send_unchecked(method, path, body, None, timeout).await
    }

    /// `bytes`: the whole body, which the token binds; `None` for a streamed body.
    async fn send_unchecked(
        &self,
        method: &str,
        path: &str,
        body: RpcBody,
        bytes: Option<&[u8]>,
        timeout: Duration,
    ) -> Result<Reply, DriveError> {
        let mut req = http::Request::builder()
            .method(method)
            .uri(format!("{}{path}", self.base));
        for (k, v) in self.auth.headers(method, path, bytes) {
            req = req.header(k, v);
        }
        req = req.header(NODE_HEADER, &self.from);
        let req = req
            .body(body)
            .map_err(|e| DriveError::Io(std::io::Error::other(e.to_string())))?;
        let gone = self.gone();
        let start = Instant::now();
        self.stats
            .calls
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let sent = tokio::select! {
            r = tokio::time::timeout(timeout, self.client.request(req)) => r,
            _ = gone.cancelled() => {
                self.stats.errors.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                return Err(self.offline());
            }
        };
        if !matches!(sent, Ok(Ok(_))) {
            self.stats
                .errors
                .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        }
        match sent {
            Err(_) => {
                self.mark_down("call timed out");
                Err(self.offline())
            }
            Ok(Err(e)) => {
                self.mark_down(&crate::tls::explain(&error_chain(&e)));
                Err(self.offline())
            }
            Ok(Ok(resp)) => {
                self.stats.latency.observe(start.elapsed());
                let status = resp.status();
                if !matches!(
                    status,
                    http::StatusCode::FORBIDDEN | http::StatusCode::PRECONDITION_FAILED
                ) {
                    self.mark_ok();
                }
                Ok(Reply {
                    status,
                    body: resp.into_body(),
                })
            }
        }
    }

    /// Send a call and read its whole answer (both within `timeout`). A refusal (wrong
    /// credentials or endpoint list) is an error naming the node and the reason.
    pub async fn call(
        &self,
        path: &str,
        body: Vec<u8>,
        timeout: Duration,
    ) -> Result<Bytes, DriveError> {
        self.call_inner(path, body, timeout, false).await
    }

    async fn call_inner(
        &self,
        path: &str,
        body: Vec<u8>,
        timeout: Duration,
        probe: bool,
    ) -> Result<Bytes, DriveError> {
        let start = Instant::now();
        if !probe {
            self.admit()?;
        }
        let reply = self
            .send_unchecked("POST", path, full_body(body.clone()), Some(&body), timeout)
            .await?;
        let left = timeout.saturating_sub(start.elapsed());
        let gone = self.gone();
        let collected = tokio::select! {
            r = tokio::time::timeout(left, reply.body.collect()) => r,
            _ = gone.cancelled() => return Err(self.offline()),
        };
        let bytes = match collected {
            Ok(Ok(b)) => b.to_bytes(),
            Ok(Err(e)) => {
                self.mark_down(&format!("reading reply: {e}"));
                return Err(self.offline());
            }
            Err(_) => {
                self.mark_down("reply timed out");
                return Err(self.offline());
            }
        };
        if !reply.status.is_success() {
            let why = String::from_utf8_lossy(&bytes).into_owned();
            let refused = matches!(
                reply.status,
                http::StatusCode::FORBIDDEN | http::StatusCode::PRECONDITION_FAILED
            );
            if refused {
                // A misconfigured pair: back off like for a down peer (one log line per probe).
                tracing::error!(node = %self.node, reason = %why, "peer refused this node");
                self.mark_down(&format!("{REJECTED}: {why}"));
                return Err(self.offline());
            }
            return Err(DriveError::Io(std::io::Error::other(format!(
                "node {}: {why}",
                self.node
            ))));
        }
        Ok(bytes)
    }

    /// Call the service `name` the peer registered ([`RpcServer::register`]).
    pub async fn call_service(
        &self,
        name: &str,
        body: Vec<u8>,
        timeout: Duration,
    ) -> Result<Bytes, DriveError> {
        self.call(&format!("{PREFIX}{}{name}", server::SERVICE), body, timeout)
            .await
    }

    /// Open the stream service `name` the peer registered ([`RpcServer::register_stream`]):
    /// its answer's body, read for as long as the caller wants.
    pub async fn open_stream(
        &self,
        name: &str,
        body: Vec<u8>,
    ) -> Result<hyper::body::Incoming, DriveError> {
        self.admit()?;
        let path = format!("{PREFIX}{}{name}", server::STREAM);
        let reply = self
            .send_unchecked(
                "POST",
                &path,
                full_body(body.clone()),
                Some(&body),
                SHORT_TIMEOUT,
            )
            .await?;
        if !reply.status.is_success() {
            let why = reply
                .body
                .collect()
                .await
                .map(|b| String::from_utf8_lossy(&b.to_bytes()).into_owned())
                .unwrap_or_default();
            return Err(DriveError::Io(std::io::Error::other(format!(
                "node {}: {why}",
                self.node
            ))));
        }
        Ok(reply.body)
    }

    /// Calls to this peer so far (metrics).
    pub fn stats(&self) -> &PeerStats {
        &self.stats
    }

    /// Ask the peer who it is.
    pub async fn hello(&self) -> Result<wire::Hello, DriveError> {
        let b = self
            .call(&format!("{PREFIX}hello"), Vec::new(), SHORT_TIMEOUT)
            .await?;
        wire::decode(&b).map_err(|e| DriveError::Io(std::io::Error::other(e)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn creds(secret: &str) -> RootCredentials {
        RootCredentials {
            access_key: "admin".into(),
            secret_key: secret.into(),
        }
    }

    fn headers_of(a: &RpcAuth, path: &str, body: Option<&[u8]>) -> http::HeaderMap {
        let mut h = http::HeaderMap::new();
        for (k, v) in a.headers("POST", path, body) {
            h.insert(k, v.parse().expect("header"));
        }
        h
    }

    #[test]
    fn tokens_bind_credentials_endpoints_path_and_body_and_are_good_once() {
        let eps = vec![
            Endpoint::parse("http://a:9000/d1").expect("ep"),
            Endpoint::parse("http://b:9000/d1").expect("ep"),
        ];
        let a = RpcAuth::new(&creds("secret123"), &eps);
        let path = "/cairn/rpc/v1/drive?d=1";
        let h = headers_of(&a, path, Some(b"call"));
        // Wrong path or method: refused (and the nonce not spent).
        assert!(a.verify(&h, "POST", "/cairn/rpc/v1/drive?d=0").is_err());
        assert!(a.verify(&h, "GET", path).is_err());
        let claim = a.verify(&h, "POST", path).expect("valid");
        assert!(claim.check_body(b"call").is_ok());
        assert!(claim.check_body(b"another call").is_err());
        assert!(!claim.is_streamed());
        // The same token again: a replay.
        assert!(a
            .verify(&h, "POST", path)
            .expect_err("replay")
            .contains("replayed"));
        // Streamed bodies: bound by path, marked as such.
        let h = headers_of(&a, "/cairn/rpc/v1/file?d=1&path=x", None);
        let claim = a
            .verify(&h, "POST", "/cairn/rpc/v1/file?d=1&path=x")
            .expect("valid");
        assert!(claim.is_streamed());
        assert!(claim.check_body(b"").is_err());
        let h = headers_of(&a, path, Some(b"call"));
        let other_secret = RpcAuth::new(&creds("secret456"), &eps);
        assert!(other_secret
            .verify(&h, "POST", path)
            .expect_err("refused")
            .contains("credentials"));
        let other_list = RpcAuth::new(&creds("secret123"), &eps[..1]);
        assert!(other_list
            .verify(&h, "POST", path)
            .expect_err("refused")
            .contains("endpoint list"));
        let mut stale = h.clone();
        let old = a.token(unix_secs() - 3600, "POST", path, Some(b"call"));
        stale.insert(AUTH_HEADER, old.parse().expect("header"));
        assert!(a
            .verify(&stale, "POST", path)
            .expect_err("refused")
            .contains("expired"));
        let mut garbage = h.clone();
        garbage.insert(AUTH_HEADER, "v2.1.2.3".parse().expect("header"));
        assert!(a.verify(&garbage, "POST", path).is_err());
    }

    #[test]
    fn nonces_are_forgotten_only_after_their_window() {
        let mut n = Nonces::default();
        assert!(n.insert(1, 1000));
        assert!(!n.insert(1, 1000 + MAX_SKEW_SECS));
        // One rotation later it is still remembered (previous generation)...
        assert!(!n.insert(1, 1000 + 2 * MAX_SKEW_SECS));
        // ...and forgotten after two, when no token carrying it can still be valid.
        assert!(n.insert(1, 1000 + 4 * MAX_SKEW_SECS + 1));
    }
}
