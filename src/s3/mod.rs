//! The S3 HTTP API: every request is authenticated, parsed into a typed [`Op`] by
//! [`route`], and dispatched with one `match` to a handler of its family (`bucket.rs`,
//! `object.rs`, `multipart.rs`). Errors become S3 XML in `error.rs` only.

pub mod access;
mod attributes;
pub mod authz;
mod body;
mod bucket;
pub mod cors;
pub mod counters;
mod encryption;
pub mod error;
pub mod features;
pub mod lifecycle;
mod multipart;
mod notification;
mod object;
mod objectlock;
mod post;
pub mod router;
mod sse;
mod tagging;
mod versioning;
pub mod xml;

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::SystemTime;

use axum::body::Body;
use http::{HeaderValue, Method, Request, Response, StatusCode};
use tracing::Instrument;

use crate::auth::{self, RequestParts, Verified};
use crate::object::Store;
use error::S3Error;
pub use router::{route, Op, Target};

/// Everything a request handler needs.
pub struct S3State {
    pub store: Arc<Store>,
    /// Identities (the root user and IAM's) and their policies.
    pub iam: Arc<crate::iam::Iam>,
    pub region: String,
    /// Base domain for virtual-hosted-style requests (`bucket.<domain>`).
    pub domain: Option<String>,
    pub owner: xml::Owner,
    /// The other nodes of a distributed deployment (empty on a single node).
    pub peers: Vec<Arc<crate::rpc::Peer>>,
    /// This node's `host:port` in a distributed deployment.
    pub node: Option<String>,
    /// Bucket and prefix quotas, checked before every write.
    pub quotas: Arc<crate::quota::Quotas>,
    /// Requests answered: by operation and outcome, bytes, latency, errors by code (`None`:
    /// `CAIRN_METRICS=off`, nothing recorded).
    pub requests: Option<Arc<crate::metrics::Requests>>,
    /// The Prometheus endpoints answer without a token (`CAIRN_PROMETHEUS_AUTH_TYPE=public`).
    pub prometheus_public: bool,
    /// Object ownership of new buckets that do not ask (`CAIRN_DEFAULT_OBJECT_OWNERSHIP`).
    pub default_ownership: crate::bucket::ObjectOwnership,
    /// How long a lifecycle day is (a real day unless `CAIRN_LIFECYCLE_DEBUG_DAY`).
    pub lifecycle_day: crate::lifecycle::Day,
    /// CORS rules for buckets without their own (`CAIRN_CORS_ALLOW_ORIGIN`; none: off).
    pub cors_default: Option<crate::bucket::cors::Cors>,
    /// Seals the keys of SSE-S3 and SSE-KMS objects (`None`: not configured, and such
    /// requests are refused).
    pub kms: Option<Arc<dyn crate::kms::Kms>>,
    /// Live traces and the audit sinks: every answered request is published to them.
    pub observers: Arc<crate::audit::Observers>,
    /// Bucket notification targets.
    pub notifier: Arc<crate::notify::Notifier>,
    /// What requests streaming object data may hold in buffers (`CAIRN_MAX_MEMORY`).
    pub memory: Arc<crate::memory::Budget>,
}

/// A request the web console makes for a logged-in user: authenticated as that access key
/// without a signature. Only code in this process can attach it (a request extension),
/// and the console does so only for a session whose secret it checked at login.
#[derive(Debug, Clone)]
pub struct OnBehalfOf(pub String);

/// What a request turned out to be, as far as it got: for metrics, the audit entry and
/// event notifications.
#[derive(Debug, Default)]
struct Seen {
    op: Option<Op>,
    access_key: String,
    bucket: String,
    key: String,
    version_id: String,
}

/// The access key a request claims (its signature may still be wrong).
fn claimed_key(headers: &http::HeaderMap, query: Option<&str>) -> String {
    let from_header = headers
        .get(http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split("Credential=").nth(1))
        .map(|c| c.split(['/', ',']).next().unwrap_or(""));
    let from_query = || {
        query?.split('&').find_map(|kv| {
            let v = kv.strip_prefix("X-Amz-Credential=")?;
            let v = percent_encoding::percent_decode_str(v).decode_utf8().ok()?;
            Some(v.split('/').next().unwrap_or("").to_string())
        })
    };
    from_header
        .map(str::to_string)
        .or_else(from_query)
        .unwrap_or_default()
}

/// One parsed, authenticated request, as handlers see it.
pub struct Ctx {
    pub method: Method,
    pub target: Target,
    pub query: Vec<(String, String)>,
    pub headers: Vec<(String, String)>,
    pub verified: Verified,
    pub request_id: String,
    /// Who the verified access key is (`None`: anonymous).
    pub identity: Option<Arc<crate::iam::Identity>>,
    pub client_ip: Option<std::net::IpAddr>,
    /// The request came over TLS (`aws:SecureTransport`).
    pub secure: bool,
    /// When the request arrived (seconds since the epoch), for policy conditions.
    pub now_secs: i64,
}

impl Ctx {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }

    pub fn query(&self, name: &str) -> Option<&str> {
        self.query
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }

    pub fn has_query(&self, name: &str) -> bool {
        self.query.iter().any(|(n, _)| n == name)
    }
}

/// Headers every response carries: the request id (twice, as S3 clients look for both) and
/// the server name.
pub fn stamp(resp: &mut Response<Body>, request_id: &str) {
    let h = resp.headers_mut();
    if let Ok(v) = HeaderValue::from_str(request_id) {
        h.insert("x-amz-request-id", v.clone());
        h.insert("x-amz-id-2", v);
    }
    h.insert("server", HeaderValue::from_static("Cairn"));
}

/// Answers `req` with `answer`, its body drained in the background when the answer leaves
/// any of it unread ([`body::drained`]: the client, still sending, then reads the answer
/// rather than a reset) — and then with `Connection: close` on HTTP/1.x (HTTP/2 streams end
/// on their own): the connection cannot carry another request before the rest is read, and
/// a drain that gives up closes it under whatever the client sent next. Every request the
/// server answers goes through here, whoever answers it.
pub async fn draining<F, Fut>(req: Request<Body>, answer: F) -> Response<Body>
where
    F: FnOnce(Request<Body>) -> Fut,
    Fut: std::future::Future<Output = Response<Body>>,
{
    let (parts, body) = req.into_parts();
    let (version, unread) = (parts.version, body::Unread::default());
    let body = body::drained(body, &parts.headers, unread.clone());
    let mut resp = answer(Request::from_parts(parts, body)).await;
    if unread.get() && version <= http::Version::HTTP_11 {
        resp.headers_mut().insert(
            http::header::CONNECTION,
            http::HeaderValue::from_static("close"),
        );
    }
    resp
}

pub fn new_request_id() -> String {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    let t = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64);
    format!("{:016X}", t ^ n.rotate_left(48))
}

/// Entry point for every S3 request.
pub async fn handle(state: Arc<S3State>, req: Request<Body>) -> Response<Body> {
    let start = std::time::Instant::now();
    let declared_len: u64 = req
        .headers()
        .get(http::header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    let inflight = state.requests.as_ref().map(|r| r.started(declared_len));
    let request_id = new_request_id();
    let span = tracing::info_span!(
        "request",
        request_id = %request_id,
        method = %req.method(),
        path = %req.uri().path(),
        op = tracing::field::Empty,
    );
    async move {
        let arrived = SystemTime::now();
        let is_head = req.method() == Method::HEAD;
        let resource = req.uri().path().to_string();
        let method = req.method().clone();
        let client = req
            .extensions()
            .get::<crate::conn::ClientAddr>()
            .map(|a| a.0.ip());
        let user_agent = req.headers().get(http::header::USER_AGENT).cloned();
        // The bucket a browser's request addresses, for its CORS rules.
        let cors = req
            .headers()
            .get("origin")
            .and_then(|o| o.to_str().ok())
            .map(|o| (o.to_string(), cors_bucket(&state, &req)));
        let mut seen = Seen::default();
        let mut code = None;
        let result = if method == Method::OPTIONS {
            let bucket = cors_bucket(&state, &req);
            cors::preflight(&state, bucket.as_deref(), req.headers()).await
        } else {
            dispatch(&state, req, &request_id, &mut seen).await
        };
        let mut resp = match result {
            Ok(r) => r,
            Err(e) => {
                code = Some(e.code);
                if e.status.is_server_error() {
                    tracing::warn!(code = e.code, message = %e.message, "request failed");
                } else {
                    tracing::debug!(code = e.code, message = %e.message, "request refused");
                }
                if seen.op == Some(Op::AssumeRole) {
                    access::sts_error_response(&e, &request_id)
                } else {
                    error_response(&e, &resource, &request_id, is_head)
                }
            }
        };
        let ua = || {
            user_agent
                .as_ref()
                .and_then(|v| v.to_str().ok())
                .unwrap_or("")
                .to_string()
        };
        if let Some(changes) = resp.extensions_mut().remove::<crate::notify::Changes>() {
            if resp.status().is_success() {
                let origin = crate::notify::Origin {
                    access_key: seen.access_key.clone(),
                    source_ip: client.map(|c| c.to_string()).unwrap_or_default(),
                    user_agent: ua(),
                    request_id: request_id.clone(),
                };
                notify(&state, &seen.bucket, &changes, &origin).await;
            }
        }
        if let Some((origin, bucket)) = cors.filter(|_| method != Method::OPTIONS) {
            cors::decorate(&state, bucket.as_deref(), &origin, &method, &mut resp);
        }
        stamp(&mut resp, &request_id);
        tracing::debug!(status = resp.status().as_u16(), "done");
        let api = seen.op.map(Op::index);
        if let Some(inflight) = &inflight {
            inflight
                .requests()
                .answered(api, resp.status(), start.elapsed(), code);
        }
        let finished = state.observers.active().then(|| {
            let status = resp.status();
            let version_id = resp
                .headers()
                .get("x-amz-version-id")
                .and_then(|v| v.to_str().ok())
                .map(str::to_string)
                .unwrap_or(std::mem::take(&mut seen.version_id));
            let mut entry = crate::audit::Entry {
                version: "1".into(),
                deployment_id: state.observers.deployment().to_string(),
                time: crate::audit::timestamp(arrived),
                node: state.observers.node().to_string(),
                request_id: request_id.clone(),
                access_key: seen.access_key,
                remote_host: client.map(|c| c.to_string()).unwrap_or_default(),
                user_agent: ua(),
                api: crate::audit::Api {
                    name: match (seen.op, &method) {
                        (Some(op), _) => op.name().to_string(),
                        (None, &Method::OPTIONS) => "PreflightRequest".into(),
                        (None, _) => "Unknown".into(),
                    },
                    bucket: seen.bucket,
                    object: seen.key,
                    version_id,
                    status: status.canonical_reason().unwrap_or("").to_string(),
                    status_code: status.as_u16(),
                    error_code: code.unwrap_or("").to_string(),
                    rx: declared_len,
                    time_to_first_byte_ns: nanos(start.elapsed()),
                    ..Default::default()
                },
            };
            let observers = state.observers.clone();
            Box::new(
                move |sent: u64, elapsed: std::time::Duration, complete: bool| {
                    entry.api.tx = sent;
                    entry.api.time_to_response_ns = nanos(elapsed);
                    entry.api.canceled = !complete;
                    observers.publish(&entry);
                },
            ) as crate::metrics::Finished
        });
        if inflight.is_none() && finished.is_none() {
            return resp;
        }
        let declared = resp
            .headers()
            .get(http::header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse().ok());
        resp.map(|b| {
            Body::new(crate::metrics::Tracked::new(
                b, declared, inflight, api, start, finished,
            ))
        })
    }
    .instrument(span)
    .await
}

fn nanos(d: std::time::Duration) -> u64 {
    u64::try_from(d.as_nanos()).unwrap_or(u64::MAX)
}

/// The operation a request names, judged without its identity (which failed to verify).
fn provisional_op(
    method: &Method,
    target: &Target,
    query: &[(String, String)],
    headers: &[(String, String)],
) -> Option<Op> {
    let ctx = Ctx {
        method: method.clone(),
        target: target.clone(),
        query: query.to_vec(),
        headers: headers.to_vec(),
        verified: Verified::anonymous(),
        request_id: String::new(),
        identity: None,
        client_ip: None,
        secure: false,
        now_secs: 0,
    };
    route(&ctx).ok()
}

/// Queue the events a successful request's changes fire under its bucket's rules.
async fn notify(
    state: &S3State,
    bucket: &str,
    changes: &crate::notify::Changes,
    origin: &crate::notify::Origin,
) {
    let Some(b) = state.store.buckets().cached(bucket) else {
        return;
    };
    if let Some(rules) = &b.config.notification {
        state
            .notifier
            .publish(bucket, &b.config.owner, rules, changes, origin)
            .await;
    }
}

/// The event a lifecycle expiry fires under its bucket's rules:
/// `s3:LifecycleExpiration:DeleteMarkerCreated` for a marker written over the current
/// version, `s3:LifecycleExpiration:Delete` for a version or marker removed. The principal
/// is the lifecycle itself (`cairn:lifecycle`), as AWS names its own service.
pub async fn lifecycle_expired(state: &S3State, e: crate::heal::Expired) {
    let change = crate::notify::Change {
        event: if e.marker_created {
            crate::notify::LIFECYCLE_MARKER
        } else {
            crate::notify::LIFECYCLE_DELETE
        },
        key: e.key,
        size: None,
        etag: None,
        version_id: e
            .deleted
            .versioned
            .then(|| version_str(e.deleted.version_id)),
    };
    let origin = crate::notify::Origin {
        access_key: "cairn:lifecycle".into(),
        request_id: new_request_id(),
        ..Default::default()
    };
    notify(
        state,
        &e.bucket,
        &crate::notify::Changes::one(change),
        &origin,
    )
    .await;
}

pub fn error_response(
    e: &S3Error,
    resource: &str,
    request_id: &str,
    is_head: bool,
) -> Response<Body> {
    let body = if is_head {
        Body::empty()
    } else {
        let xml = xml::to_xml(&xml::ErrorXml {
            code: e.code,
            message: &e.message,
            resource,
            request_id,
        })
        .unwrap_or_default();
        Body::from(xml)
    };
    let mut r = Response::new(body);
    *r.status_mut() = e.status;
    if !is_head {
        r.headers_mut()
            .insert("content-type", HeaderValue::from_static("application/xml"));
    }
    for (name, value) in &e.headers {
        if let Ok(v) = HeaderValue::from_str(value) {
            r.headers_mut().insert(*name, v);
        }
    }
    r
}

/// A version id as S3 shows it: `null` for the null version.
pub fn version_str(id: Option<uuid::Uuid>) -> String {
    match id {
        Some(id) => id.simple().to_string(),
        None => "null".to_string(),
    }
}

/// The bucket and key an object operation names.
pub(crate) fn bucket_key(ctx: &Ctx) -> Result<(&str, &str), S3Error> {
    match (&ctx.target.bucket, &ctx.target.key) {
        (Some(b), Some(k)) => Ok((b, k)),
        _ => Err(S3Error::invalid_request("missing bucket or key")),
    }
}

/// `x-amz-version-id` on a response about a version of an object in `bucket`: its id, or
/// `null` for the null version of a bucket that has had versioning (none otherwise).
pub(crate) async fn version_header(
    state: &S3State,
    r: &mut Response<Body>,
    bucket: &str,
    id: Option<uuid::Uuid>,
) {
    let versioned = id.is_some() || matches!(state.store.versioning(bucket).await, Ok(Some(_)));
    if versioned {
        if let Ok(v) = HeaderValue::from_str(&version_str(id)) {
            r.headers_mut().insert("x-amz-version-id", v);
        }
    }
}

/// The `versionId` of a request: absent (the latest), `null`, or an id Cairn made.
pub(crate) fn version_ref(ctx: &Ctx) -> Result<crate::object::VersionRef, S3Error> {
    use crate::object::VersionRef;
    match ctx.query("versionId") {
        None => Ok(VersionRef::Latest),
        Some(v) => parse_version(v).map(VersionRef::Id),
    }
}

/// `x-amz-copy-source`: `[/]bucket/key[?versionId=ID]`, URL-encoded.
pub(crate) fn copy_source(
    ctx: &Ctx,
) -> Result<(String, String, crate::object::VersionRef), S3Error> {
    let raw = ctx
        .header("x-amz-copy-source")
        .ok_or_else(|| S3Error::invalid_argument("missing x-amz-copy-source"))?;
    let (path, version) = match raw.split_once("?versionId=") {
        Some((p, v)) => (p, Some(v)),
        None => (raw, None),
    };
    let which = match version {
        None => crate::object::VersionRef::Latest,
        Some(v) => crate::object::VersionRef::Id(parse_version(v)?),
    };
    let decoded = percent_encoding::percent_decode_str(path)
        .decode_utf8()
        .map_err(|_| S3Error::invalid_argument("Invalid copy source encoding"))?;
    let decoded = decoded.strip_prefix('/').unwrap_or(&decoded);
    match decoded.split_once('/') {
        Some((b, k)) if !b.is_empty() && !k.is_empty() => Ok((b.to_string(), k.to_string(), which)),
        _ => Err(S3Error::invalid_argument(
            "Copy Source must mention the source bucket and key: sourcebucket/sourcekey",
        )),
    }
}

/// `null` or a version id Cairn made; anything else is S3's "Invalid version id".
pub(crate) fn parse_version(v: &str) -> Result<Option<uuid::Uuid>, S3Error> {
    if v == "null" {
        return Ok(None);
    }
    // Version ids are opaque and case-sensitive: only the form Cairn hands out (32
    // lower-case hex digits) names a version; `0190A1…` is not `0190a1…`.
    let canonical = v.len() == 32 && v.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'));
    uuid::Uuid::try_parse(v)
        .ok()
        .filter(|_| canonical)
        .map(Some)
        .ok_or_else(|| S3Error::invalid_argument("Invalid version id specified"))
}

/// The absolute URL of an object as the request addressed this server (S3's `Location`
/// of a completed upload or a form upload): the request's scheme and `Host`, the bucket in
/// the path unless the request was virtual-hosted, the key percent-encoded (slashes kept).
pub(crate) fn object_url(ctx: &Ctx, bucket: &str, key: &str) -> String {
    let scheme = if ctx.secure { "https" } else { "http" };
    let host = ctx.header("host").unwrap_or("localhost");
    let path = bucket::url_encode(key);
    if ctx.target.virtual_host {
        format!("{scheme}://{host}/{path}")
    } else {
        format!("{scheme}://{host}/{bucket}/{path}")
    }
}

pub(crate) fn xml_response<T: serde::Serialize>(value: &T) -> Result<Response<Body>, S3Error> {
    let body = xml::to_xml(value)?;
    let mut r = Response::new(Body::from(body));
    r.headers_mut()
        .insert("content-type", HeaderValue::from_static("application/xml"));
    Ok(r)
}

pub(crate) fn empty(status: StatusCode) -> Response<Body> {
    let mut r = Response::new(Body::empty());
    *r.status_mut() = status;
    r
}

/// `2024-01-01T00:00:00.000Z` from nanoseconds since the epoch.
pub(crate) fn iso8601(nanos: i64) -> String {
    let t = time::OffsetDateTime::from_unix_timestamp_nanos(nanos as i128)
        .unwrap_or(time::OffsetDateTime::UNIX_EPOCH);
    let fmt = time::macros::format_description!(
        "[year]-[month]-[day]T[hour]:[minute]:[second].[subsecond digits:3]Z"
    );
    t.format(fmt).unwrap_or_default()
}

/// RFC 7231 date from nanoseconds since the epoch.
pub(crate) fn http_date(nanos: i64) -> String {
    let secs = (nanos / 1_000_000_000).max(0) as u64;
    httpdate::fmt_http_date(SystemTime::UNIX_EPOCH + std::time::Duration::from_secs(secs))
}

async fn dispatch(
    state: &S3State,
    req: Request<Body>,
    request_id: &str,
    seen: &mut Seen,
) -> Result<Response<Body>, S3Error> {
    let (parts, body) = req.into_parts();
    let mut headers = header_pairs(&parts.headers);
    // An STS form too large to read is left for the drain ([`draining`]), like any body.
    let body = sts_form_body(&parts, &mut headers, body).await?;
    let raw_path = parts.uri.path().to_string();
    let raw_query = parts.uri.query().unwrap_or("").to_string();
    let host = headers
        .iter()
        .find(|(n, _)| n == "host")
        .map(|(_, v)| v.as_str())
        .or(parts.uri.host())
        .unwrap_or("");
    let host_bucket = virtual_host_bucket(host, state.domain.as_deref());
    let req_parts = RequestParts {
        method: parts.method.as_str(),
        raw_path: &raw_path,
        raw_query: &raw_query,
        headers: &headers,
        host_bucket: host_bucket.as_deref(),
    };
    let now = SystemTime::now();
    // Known before authentication, so refused requests are audited with them.
    let target = router::target(&raw_path, host_bucket.as_deref());
    if let Ok(t) = &target {
        seen.bucket = t.bucket.clone().unwrap_or_default();
        seen.key = t.key.clone().unwrap_or_default();
    }
    seen.access_key = claimed_key(&parts.headers, parts.uri.query());
    let authenticated = if let Some(OnBehalfOf(key)) = parts.extensions.get::<OnBehalfOf>() {
        Ok(Verified::on_behalf_of(key))
    } else if auth::is_anonymous(&req_parts) {
        Ok(Verified::anonymous())
    } else {
        auth::verify(&req_parts, state.iam.as_ref(), &state.region, now).map_err(S3Error::from)
    };
    let identity = authenticated.and_then(|v| identify(state, &v, &req_parts).map(|i| (v, i)));
    let query = req_parts.query_pairs();
    let (verified, identity) = match identity {
        Ok(v) => v,
        Err(e) => {
            // What the refused request asked for, for the audit entry and metrics.
            if let Ok(t) = &target {
                seen.op = provisional_op(&parts.method, t, &query, &headers);
            }
            return Err(e);
        }
    };
    let target = target?;
    if !verified.access_key.is_empty() {
        // The key that authenticated (the console's user has no Authorization header).
        seen.access_key.clone_from(&verified.access_key);
    }
    let ctx = Ctx {
        method: parts.method.clone(),
        target,
        query,
        headers,
        verified,
        request_id: request_id.to_string(),
        identity,
        client_ip: authz::client_ip(&parts),
        secure: parts.extensions.get::<crate::conn::Tls>().is_some(),
        now_secs: now
            .duration_since(SystemTime::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs() as i64),
    };
    if let Some(v) = ctx.query("versionId") {
        seen.version_id = v.to_string();
    }
    let op = route(&ctx)?;
    seen.op = Some(op);
    tracing::Span::current().record("op", tracing::field::debug(&op));
    if ctx.verified.sts != (op == Op::AssumeRole) && !ctx.verified.is_anonymous() {
        return Err(S3Error::new(
            "AuthorizationHeaderMalformed",
            http::StatusCode::BAD_REQUEST,
            "The authorization header is malformed; the service is wrong; expecting 's3'",
        ));
    }
    features::check(op, &ctx)?;
    // A form upload's identity and key are in its body: it authorises itself, as the
    // PutObject it makes, once the form is read.
    if op != Op::PostObject {
        match authz::authorize(state, &ctx, op).await? {
            authz::AclCheck::Done => {}
            authz::AclCheck::Object(need) => authz::object_acl_allows(state, &ctx, need).await?,
        }
        authz::check_expected_owners(state, &ctx).await?;
    }
    // Requests that stream object data reserve their buffers first (SlowDown past the
    // budget); the reservation lives until the response body is sent.
    let reservation =
        match buffer_cost(op, &ctx, state.store.sets().first().map_or(0, |s| s.size())) {
            Some(cost) => Some(state.memory.reserve(cost).await.map_err(|_| {
                tracing::debug!(cost, "memory budget in use: SlowDown");
                S3Error::new(
                    "SlowDown",
                    http::StatusCode::SERVICE_UNAVAILABLE,
                    "Please reduce your request rate.",
                )
            })?),
            None => None,
        };
    let result = match op {
        Op::ListBuckets => bucket::list_buckets(state, &ctx).await,
        Op::CreateBucket => bucket::create(state, &ctx, body).await,
        Op::HeadBucket => bucket::head(state, &ctx).await,
        Op::DeleteBucket => bucket::delete(state, &ctx).await,
        Op::GetBucketLocation => bucket::location(state, &ctx).await,
        Op::GetBucketVersioning => versioning::get(state, &ctx).await,
        Op::PutBucketVersioning => versioning::put(state, &ctx, body).await,
        Op::ListObjectVersions => versioning::list(state, &ctx).await,
        Op::GetObjectTagging => tagging::get_object(state, &ctx).await,
        Op::PutObjectTagging => tagging::put_object(state, &ctx, body).await,
        Op::DeleteObjectTagging => tagging::delete_object(state, &ctx).await,
        Op::GetBucketTagging => tagging::get_bucket(state, &ctx).await,
        Op::PutBucketTagging => tagging::put_bucket(state, &ctx, body).await,
        Op::DeleteBucketTagging => tagging::delete_bucket(state, &ctx).await,
        Op::GetObjectLockConfiguration => objectlock::get_configuration(state, &ctx).await,
        Op::PutObjectLockConfiguration => objectlock::put_configuration(state, &ctx, body).await,
        Op::GetObjectRetention => objectlock::get_retention(state, &ctx).await,
        Op::PutObjectRetention => objectlock::put_retention(state, &ctx, body).await,
        Op::GetObjectLegalHold => objectlock::get_legal_hold(state, &ctx).await,
        Op::GetObjectAttributes => attributes::get(state, &ctx).await,
        Op::PostObject => post::post_object(state, ctx, body).await,
        Op::GetBucketCors => cors::get(state, &ctx).await,
        Op::PutBucketCors => cors::put(state, &ctx, body).await,
        Op::DeleteBucketCors => cors::delete(state, &ctx).await,
        Op::GetBucketEncryption => encryption::get(state, &ctx).await,
        Op::PutBucketEncryption => encryption::put(state, &ctx, body).await,
        Op::DeleteBucketEncryption => encryption::delete(state, &ctx).await,
        Op::GetBucketNotification => notification::get(state, &ctx).await,
        Op::PutBucketNotification => notification::put(state, &ctx, body).await,
        Op::PutObjectLegalHold => objectlock::put_legal_hold(state, &ctx, body).await,
        Op::GetBucketLifecycle => lifecycle::get(state, &ctx).await,
        Op::PutBucketLifecycle => lifecycle::put(state, &ctx, body).await,
        Op::DeleteBucketLifecycle => lifecycle::delete(state, &ctx).await,
        Op::GetAcl => access::get_acl(state, &ctx).await,
        Op::PutAcl => access::put_acl(state, &ctx, body).await,
        Op::GetBucketPolicy => access::get_policy(state, &ctx).await,
        Op::PutBucketPolicy => access::put_policy(state, &ctx, body).await,
        Op::DeleteBucketPolicy => access::delete_policy(state, &ctx).await,
        Op::GetBucketPolicyStatus => access::policy_status(state, &ctx).await,
        Op::GetPublicAccessBlock => access::get_public_access_block(state, &ctx).await,
        Op::PutPublicAccessBlock => access::put_public_access_block(state, &ctx, body).await,
        Op::DeletePublicAccessBlock => access::delete_public_access_block(state, &ctx).await,
        Op::GetOwnershipControls => access::get_ownership(state, &ctx).await,
        Op::PutOwnershipControls => access::put_ownership(state, &ctx, body).await,
        Op::DeleteOwnershipControls => access::delete_ownership(state, &ctx).await,
        Op::AssumeRole => access::assume_role(state, &ctx, body).await,
        Op::ListObjects { v2 } => bucket::list_objects(state, &ctx, v2).await,
        Op::DeleteObjects => object::delete_many(state, &ctx, body).await,
        Op::PutObject => object::put(state, &ctx, body).await,
        Op::CopyObject => object::copy(state, &ctx).await,
        Op::GetObject => object::get(state, &ctx, false).await,
        Op::HeadObject => object::get(state, &ctx, true).await,
        Op::DeleteObject => object::delete(state, &ctx).await,
        Op::CreateMultipartUpload => multipart::create(state, &ctx).await,
        Op::UploadPart => multipart::upload_part(state, &ctx, body).await,
        Op::UploadPartCopy => multipart::upload_part_copy(state, &ctx).await,
        Op::CompleteMultipartUpload => multipart::complete(state, &ctx, body).await,
        Op::AbortMultipartUpload => multipart::abort(state, &ctx).await,
        Op::ListParts => multipart::list_parts(state, &ctx).await,
        Op::ListMultipartUploads => multipart::list_uploads(state, &ctx).await,
    };
    match reservation {
        Some(r) => result.map(|resp| resp.map(|b| Body::new(crate::memory::Held::new(b, r)))),
        None => result,
    }
}

/// What the buffers of a request streaming object data may hold at once: two erasure
/// blocks (the block being read or encoded and the one being sent or received), less for
/// a smaller body, and for a write that makes shard files their buffers (one per drive of
/// a set of `set_size`). `None` for requests that stream no object data.
fn buffer_cost(op: Op, ctx: &Ctx, set_size: usize) -> Option<u64> {
    let stream = 2 * cairn_erasure::DEFAULT_BLOCK_SIZE as u64;
    let shard_files = (set_size * crate::drive::SHARD_WRITE_BUFFER) as u64;
    match op {
        Op::GetObject => Some(stream),
        Op::CopyObject | Op::UploadPartCopy => Some(stream + shard_files),
        Op::PutObject | Op::UploadPart | Op::PostObject => {
            let len = ctx
                .header("x-amz-decoded-content-length")
                .or_else(|| ctx.header("content-length"))
                .and_then(|v| v.parse::<u64>().ok());
            Some(match len {
                Some(l) if l <= crate::object::INLINE_LIMIT as u64 => l,
                Some(l) => l.min(stream) + shard_files,
                None => stream + shard_files,
            })
        }
        _ => None,
    }
}

/// STS calls sign their form body's hash without sending it (the other services' way):
/// read the (small) body of a `POST /` signed for `sts` first, and put its hash where
/// the signature check looks for it.
async fn sts_form_body(
    parts: &http::request::Parts,
    headers: &mut Vec<(String, String)>,
    body: Body,
) -> Result<Body, S3Error> {
    let sts = parts.method == Method::POST
        && parts.uri.path() == "/"
        && headers
            .iter()
            .any(|(n, v)| n == "authorization" && v.contains("/sts/aws4_request"))
        && !headers.iter().any(|(n, _)| n == "x-amz-content-sha256");
    if !sts {
        return Ok(body);
    }
    use http_body_util::BodyExt;
    let bytes = http_body_util::Limited::new(body, 64 * 1024)
        .collect()
        .await
        .map_err(|_| S3Error::invalid_request("STS request body too large"))?
        .to_bytes();
    use sha2::Digest;
    headers.push((
        "x-amz-content-sha256".into(),
        hex::encode(sha2::Sha256::digest(&bytes)),
    ));
    Ok(Body::from(bytes))
}

/// The identity of a verified request: disabled and expired keys, and session keys
/// without their token, are refused here.
pub(crate) fn identify(
    state: &S3State,
    verified: &Verified,
    req: &RequestParts,
) -> Result<Option<Arc<crate::iam::Identity>>, S3Error> {
    if verified.is_anonymous() {
        return Ok(None);
    }
    let identity = match state.iam.identity(&verified.access_key) {
        Ok(i) => i,
        Err(crate::iam::Refusal::Expired) => {
            return Err(S3Error::new(
                "ExpiredToken",
                http::StatusCode::BAD_REQUEST,
                "The provided token has expired.",
            ))
        }
        Err(crate::iam::Refusal::Disabled) => {
            return Err(S3Error::new(
                "InvalidAccessKeyId",
                http::StatusCode::FORBIDDEN,
                "The access key ID you provided is disabled or does not exist in our records.",
            ))
        }
    };
    let token = req
        .header("x-amz-security-token")
        .map(String::from)
        .or_else(|| {
            req.query_pairs()
                .into_iter()
                // SigV4 presigns `X-Amz-Security-Token`; SigV2 URLs carry the header's name.
                .find(|(k, _)| k.eq_ignore_ascii_case("x-amz-security-token"))
                .map(|(_, v)| v)
        });
    if !crate::iam::Iam::token_fits(&identity, token.as_deref()) {
        return Err(S3Error::new(
            "InvalidToken",
            http::StatusCode::BAD_REQUEST,
            "The provided token is malformed or otherwise invalid.",
        ));
    }
    Ok(Some(identity))
}

/// Header names (lower case, as hyper gives them) and values, for the pure auth functions.
pub fn header_pairs(headers: &http::HeaderMap) -> Vec<(String, String)> {
    headers
        .iter()
        .map(|(n, v)| {
            (
                n.as_str().to_string(),
                String::from_utf8_lossy(v.as_bytes()).into_owned(),
            )
        })
        .collect()
}

/// The bucket a request's path or virtual host names, if any.
fn cors_bucket(state: &S3State, req: &Request<Body>) -> Option<String> {
    let host = req
        .headers()
        .get("host")
        .and_then(|h| h.to_str().ok())
        .or(req.uri().host())
        .unwrap_or("");
    let host_bucket = virtual_host_bucket(host, state.domain.as_deref());
    router::target(req.uri().path(), host_bucket.as_deref())
        .ok()
        .and_then(|t| t.bucket)
}

/// The bucket named by a virtual-hosted-style Host header (`bucket.<domain>[:port]`).
fn virtual_host_bucket(host: &str, domain: Option<&str>) -> Option<String> {
    let domain = domain?;
    let host = host.rsplit_once(':').map_or(host, |(h, p)| {
        if p.bytes().all(|b| b.is_ascii_digit()) {
            h
        } else {
            host
        }
    });
    let bucket = host.strip_suffix(domain)?.strip_suffix('.')?;
    (!bucket.is_empty()).then(|| bucket.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn virtual_hosts() {
        assert_eq!(
            virtual_host_bucket("photos.s3.local:9000", Some("s3.local")),
            Some("photos".into())
        );
        assert_eq!(virtual_host_bucket("s3.local:9000", Some("s3.local")), None);
        assert_eq!(virtual_host_bucket("photos.s3.local", None), None);
        assert_eq!(
            virtual_host_bucket("a.b.s3.local", Some("s3.local")),
            Some("a.b".into())
        );
    }

    #[test]
    fn dates() {
        assert_eq!(
            iso8601(1_369_353_600_123_000_000),
            "2013-05-24T00:00:00.123Z"
        );
        assert_eq!(
            http_date(1_369_353_600_000_000_000),
            "Fri, 24 May 2013 00:00:00 GMT"
        );
    }
}
