//! The web console: a single-page app (plain HTML, CSS and JavaScript embedded in the
//! binary: no build step) served on its own listener (`--console-address`, default `:9001`),
//! and the small API behind it.
//!
//! - `POST /api/login` checks an access key and secret (root or any IAM user) and starts a
//!   session: a random id in a cookie (`HttpOnly`, `SameSite=Strict`, `Secure` under TLS,
//!   12 hours) and a CSRF token the page sends back as `X-CSRF-Token` on every call that is
//!   not a GET or HEAD; `GET /api/session`, `POST /api/logout`. Failed logins are throttled
//!   per client address ([`throttle`]): past five in a row, `429` until a doubling wait ends.
//! - `/api/s3/…` and `/api/admin/…` hand the request to the S3 API and the admin API as the
//!   session's user ([`crate::s3::OnBehalfOf`]): every decision is that user's own
//!   permissions, so the console can never do more than the user's keys could.
//! - `POST /api/share` makes a presigned GET link with the user's own key.
//!
//! Sessions live in this node's memory: a restart, or another node, asks to log in again.
//! Must not touch: storage or identities directly (it goes through the S3 and admin APIs).

mod throttle;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use axum::body::Body;
use axum::Router;
use http::{header, HeaderValue, Method, Request, Response, StatusCode};
use parking_lot::Mutex;
use serde::Deserialize;
use subtle::ConstantTimeEq;

use crate::auth::Credentials;
use crate::heal::Healer;
use crate::s3::{OnBehalfOf, S3State};

const COOKIE: &str = "cairn_session";
const SESSION_TTL: Duration = Duration::from_secs(12 * 3600);
/// Sessions kept at most; past it, the one closest to expiry is ended.
const MAX_SESSIONS: usize = 10_000;
/// The longest a shared link may live (SigV4's limit).
const MAX_SHARE: u64 = 7 * 24 * 3600;
const INDEX: &str = include_str!("assets/index.html");
const APP_JS: &str = include_str!("assets/app.js");
const STYLE: &str = include_str!("assets/style.css");

struct Session {
    access_key: String,
    csrf: String,
    expires: Instant,
    /// The key's secret at login ([`fingerprint`]).
    secret: [u8; 32],
}

/// Where shared links point: the S3 listener.
#[derive(Debug, Clone)]
pub struct S3Address {
    /// `CAIRN_SERVER_URL` (or MinIO's `MINIO_SERVER_URL`) when set: the URL clients use.
    pub public_url: Option<String>,
    pub scheme: &'static str,
    pub port: u16,
}

pub struct Console {
    state: Arc<S3State>,
    healer: Arc<Healer>,
    sessions: Mutex<HashMap<String, Session>>,
    /// Failed logins per client address.
    logins: throttle::Throttle,
    /// Served over TLS: cookies are `Secure`.
    secure: bool,
    s3: S3Address,
}

impl Console {
    pub fn new(
        state: Arc<S3State>,
        healer: Arc<Healer>,
        secure: bool,
        s3: S3Address,
    ) -> Arc<Console> {
        Arc::new(Console {
            state,
            healer,
            sessions: Mutex::new(HashMap::new()),
            logins: throttle::Throttle::default(),
            secure,
            s3,
        })
    }
}

/// The console's routes.
pub fn router(console: Arc<Console>) -> Router {
    Router::new().fallback(move |req: Request<Body>| {
        let console = console.clone();
        crate::s3::draining(req, |req| async move {
            let mut r = console.route(req).await;
            harden(&mut r);
            r
        })
    })
}

/// Headers every console answer carries: no framing, no sniffing, no referrers, and only
/// this origin's scripts.
fn harden(r: &mut Response<Body>) {
    let h = r.headers_mut();
    h.entry("content-security-policy")
        .or_insert(HeaderValue::from_static(
            "default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; connect-src 'self'; frame-ancestors 'none'; form-action 'self'",
        ));
    h.insert("x-frame-options", HeaderValue::from_static("DENY"));
    h.insert(
        "x-content-type-options",
        HeaderValue::from_static("nosniff"),
    );
    h.insert("referrer-policy", HeaderValue::from_static("no-referrer"));
}

/// An answer of the console's API (stored objects among them: anyone who may write to a
/// bucket chooses their bytes and content type) never runs in the console's origin: it is
/// a download, and a document opened anyway is sandboxed (a unique origin, no scripts).
fn contain(r: &mut Response<Body>, get: bool) {
    let h = r.headers_mut();
    h.insert(
        "content-security-policy",
        HeaderValue::from_static("sandbox; default-src 'none'; frame-ancestors 'none'"),
    );
    if !get {
        return;
    }
    let attachment = h
        .get(header::CONTENT_DISPOSITION)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| {
            v.trim_start()
                .to_ascii_lowercase()
                .starts_with("attachment")
        });
    if !attachment {
        h.insert(
            header::CONTENT_DISPOSITION,
            HeaderValue::from_static("attachment"),
        );
    }
}

/// Whether a request comes from a page of the console's own origin, as far as the browser
/// says: a form or script of another site, or of another port of this host (the S3
/// listener serves pages anyone who may write a bucket wrote), may not log in or change
/// anything, even before the CSRF token is checked. `Sec-Fetch-Site` (every current browser
/// sends it) decides alone; without it, an `Origin` must name this host and port (scheme
/// aside: a proxy may end TLS in front). Calls with neither come from outside a browser.
fn same_origin(req: &Request<Body>) -> bool {
    let h = req.headers();
    if let Some(site) = h.get("sec-fetch-site") {
        return matches!(site.to_str(), Ok("same-origin" | "none"));
    }
    let Some(origin) = h.get(header::ORIGIN) else {
        return true;
    };
    // HTTP/2 carries the host in the URI's authority, HTTP/1.1 in `Host`.
    let host = h
        .get(header::HOST)
        .and_then(|v| v.to_str().ok())
        .or_else(|| req.uri().authority().map(|a| a.as_str()));
    let origin_host = origin
        .to_str()
        .ok()
        .and_then(|o| o.split_once("://"))
        .map(|(_, rest)| rest);
    matches!((host, origin_host), (Some(h), Some(o)) if h.eq_ignore_ascii_case(o))
}

/// A fingerprint of a secret, kept with a session: a changed secret ends the session.
fn fingerprint(secret: &str) -> [u8; 32] {
    *blake3::keyed_hash(b"cairn console session secret fp!", secret.as_bytes()).as_bytes()
}

fn json(status: StatusCode, v: &serde_json::Value) -> Response<Body> {
    let mut r = Response::new(Body::from(v.to_string()));
    *r.status_mut() = status;
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    // Session answers carry the CSRF token: never cached.
    r.headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    r
}

fn refuse(status: StatusCode, message: &str) -> Response<Body> {
    json(status, &serde_json::json!({ "error": message }))
}

fn asset(body: &'static str, content_type: &'static str) -> Response<Body> {
    let mut r = Response::new(Body::from(body));
    r.headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    r
}

fn random_token() -> String {
    use rand::RngCore;
    let mut b = [0u8; 32];
    rand::thread_rng().fill_bytes(&mut b);
    hex::encode(b)
}

/// The cookie `name`, when the request carries it once. Two of them mean one was planted
/// (a page of another port of this host can set cookies this origin receives, with a
/// longer path so that the browser sends it first): neither is trusted.
fn cookie_value<'a>(req: &'a Request<Body>, name: &str) -> Option<&'a str> {
    let mut found = req
        .headers()
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|c| c.trim().strip_prefix(name)?.strip_prefix('='));
    let first = found.next()?;
    found.next().is_none().then_some(first)
}

/// Whether the request carries the cookie `name` more than once.
fn cookie_twice(req: &Request<Body>, name: &str) -> bool {
    req.headers()
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter(|c| {
            c.trim()
                .strip_prefix(name)
                .is_some_and(|r| r.starts_with('='))
        })
        .count()
        > 1
}

#[derive(Deserialize)]
struct Login {
    #[serde(rename = "accessKey")]
    access_key: String,
    #[serde(rename = "secretKey")]
    secret_key: String,
}

#[derive(Deserialize)]
struct Share {
    bucket: String,
    key: String,
    #[serde(rename = "expirySecs", default)]
    expiry_secs: Option<u64>,
    #[serde(rename = "versionId", default)]
    version_id: Option<String>,
}

/// A logged-in request: its session's user, and whether it proved the CSRF token.
struct Caller {
    access_key: String,
    csrf_ok: bool,
}

impl Console {
    async fn route(self: &Arc<Self>, req: Request<Body>) -> Response<Body> {
        let path = req.uri().path().to_string();
        let reads = matches!(*req.method(), Method::GET | Method::HEAD);
        if reads {
            match path.as_str() {
                "/" | "/index.html" => return asset(INDEX, "text/html; charset=utf-8"),
                "/app.js" => return asset(APP_JS, "text/javascript; charset=utf-8"),
                "/style.css" => return asset(STYLE, "text/css; charset=utf-8"),
                _ => {}
            }
        }
        if !path.starts_with("/api/") {
            return refuse(StatusCode::NOT_FOUND, "not found");
        }
        let get = req.method() == Method::GET;
        let mut r = self.api(req, &path, reads).await;
        contain(&mut r, get);
        r
    }

    async fn api(self: &Arc<Self>, req: Request<Body>, path: &str, reads: bool) -> Response<Body> {
        if !reads && !same_origin(&req) {
            return refuse(
                StatusCode::FORBIDDEN,
                "Changes are accepted only from the console's own pages.",
            );
        }
        if (req.method(), path) == (&Method::POST, "/api/login") {
            return self.login(req).await;
        }
        if cookie_twice(&req, COOKIE) {
            return refuse(
                StatusCode::UNAUTHORIZED,
                "Two console session cookies were sent (a page on another port of this host may have set one): clear this site's cookies and log in again.",
            );
        }
        let Some(caller) = self.caller(&req) else {
            return refuse(
                StatusCode::UNAUTHORIZED,
                "Not logged in (or the session expired).",
            );
        };
        if !reads && !caller.csrf_ok {
            return refuse(StatusCode::FORBIDDEN, "Missing or wrong CSRF token.");
        }
        match (req.method(), path) {
            (&Method::GET, "/api/session") => self.session_info(&req, &caller),
            (&Method::POST, "/api/logout") => self.logout(&req),
            (&Method::POST, "/api/share") => self.share(req, &caller).await,
            (_, p) if p.starts_with("/api/s3/") || p == "/api/s3" => {
                let rest = p.strip_prefix("/api/s3").unwrap_or("/");
                let rest = if rest.is_empty() { "/" } else { rest };
                let target = match object_target(rest, req.uri().query()) {
                    Ok(t) => t,
                    Err(why) => return refuse(StatusCode::BAD_REQUEST, why),
                };
                let Some(req) = forward(req, &target, &caller.access_key) else {
                    return refuse(StatusCode::BAD_REQUEST, "Not a valid path.");
                };
                crate::s3::handle(self.state.clone(), req).await
            }
            (_, p) if p.starts_with("/api/admin/") => {
                let rest = format!("{}{}", crate::admin::PREFIX, &p["/api/admin/".len()..]);
                let target = match req.uri().query() {
                    Some(q) => format!("{rest}?{q}"),
                    None => rest,
                };
                let Some(req) = forward(req, &target, &caller.access_key) else {
                    return refuse(StatusCode::BAD_REQUEST, "Not a valid path.");
                };
                let id = crate::s3::new_request_id();
                let mut r =
                    crate::admin::handle(self.state.clone(), self.healer.clone(), req, &id).await;
                crate::s3::stamp(&mut r, &id);
                r
            }
            _ => refuse(StatusCode::NOT_FOUND, "no such console API"),
        }
    }

    fn caller(&self, req: &Request<Body>) -> Option<Caller> {
        let id = cookie_value(req, COOKIE)?;
        let mut sessions = self.sessions.lock();
        let s = sessions.get(id)?;
        if s.expires <= Instant::now() {
            sessions.remove(id);
            return None;
        }
        // A user disabled or removed since login, or whose secret changed, loses the session.
        let same_secret = self
            .state
            .iam
            .secret_for(&s.access_key)
            .is_some_and(|now| bool::from(fingerprint(&now).ct_eq(&s.secret)));
        if !same_secret || self.state.iam.identity(&s.access_key).is_err() {
            sessions.remove(id);
            return None;
        }
        let sent = req
            .headers()
            .get("x-csrf-token")
            .map(|v| v.as_bytes())
            .unwrap_or_default();
        Some(Caller {
            access_key: s.access_key.clone(),
            csrf_ok: bool::from(sent.ct_eq(s.csrf.as_bytes())),
        })
    }

    async fn login(&self, req: Request<Body>) -> Response<Body> {
        let addr = req
            .extensions()
            .get::<crate::conn::ClientAddr>()
            .map(|a| a.0.ip())
            .unwrap_or(std::net::IpAddr::V4(std::net::Ipv4Addr::UNSPECIFIED));
        if let Err(wait) = self.logins.check(addr, Instant::now()) {
            let secs = wait.as_secs_f64().ceil() as u64;
            tracing::info!(client = %addr, wait_secs = secs, "console login throttled");
            let mut r = refuse(
                StatusCode::TOO_MANY_REQUESTS,
                &format!("Too many failed logins from this address: try again in {secs} s."),
            );
            if let Ok(v) = HeaderValue::from_str(&secs.to_string()) {
                r.headers_mut().insert(header::RETRY_AFTER, v);
            }
            return r;
        }
        let json_body = req
            .headers()
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| {
                v.split(';')
                    .next()
                    .is_some_and(|t| t.trim().eq_ignore_ascii_case("application/json"))
            });
        if !json_body {
            // A form of another site cannot send JSON without the browser asking first.
            return refuse(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "Send the login as application/json.",
            );
        }
        let login: Login = match read_json(req, "Send accessKey and secretKey.").await {
            Ok(l) => l,
            Err(r) => return r,
        };
        let known = self.state.iam.secret_for(&login.access_key);
        // Compare against something even for unknown keys, so both take the same time.
        let expected = known.clone().unwrap_or_else(random_token);
        let matches = bool::from(login.secret_key.as_bytes().ct_eq(expected.as_bytes()));
        if known.is_none() || !matches || self.state.iam.identity(&login.access_key).is_err() {
            tracing::info!(access_key = %login.access_key, client = %addr, "console login refused");
            self.logins.failed(addr, Instant::now());
            return refuse(
                StatusCode::UNAUTHORIZED,
                "Invalid access key or secret key.",
            );
        }
        let temporary = self.state.iam.identity(&login.access_key).is_ok_and(|i| {
            matches!(
                &*i,
                crate::iam::Identity::Key {
                    token_hash: Some(_),
                    ..
                }
            )
        });
        if temporary {
            return refuse(
                StatusCode::BAD_REQUEST,
                "Temporary (STS) credentials cannot log in to the console: use a user's or an access key's own credentials.",
            );
        }
        self.logins.succeeded(addr);
        let id = random_token();
        let csrf = random_token();
        {
            let mut sessions = self.sessions.lock();
            let now = Instant::now();
            sessions.retain(|_, s| s.expires > now);
            if sessions.len() >= MAX_SESSIONS {
                let oldest = sessions
                    .iter()
                    .min_by_key(|(_, s)| s.expires)
                    .map(|(k, _)| k.clone());
                if let Some(k) = oldest {
                    sessions.remove(&k);
                }
            }
            sessions.insert(
                id.clone(),
                Session {
                    access_key: login.access_key.clone(),
                    csrf: csrf.clone(),
                    expires: now + SESSION_TTL,
                    secret: fingerprint(&expected),
                },
            );
        }
        tracing::info!(access_key = %login.access_key, "console login");
        let mut r = json(
            StatusCode::OK,
            &serde_json::json!({
                "accessKey": login.access_key,
                "csrf": csrf,
                "root": self.is_root(&login.access_key),
            }),
        );
        let cookie = format!(
            "{COOKIE}={id}; Path=/; HttpOnly; SameSite=Strict; Max-Age={}{}",
            SESSION_TTL.as_secs(),
            if self.secure { "; Secure" } else { "" }
        );
        if let Ok(v) = HeaderValue::from_str(&cookie) {
            r.headers_mut().insert(header::SET_COOKIE, v);
        }
        r
    }

    fn is_root(&self, access_key: &str) -> bool {
        self.state
            .iam
            .identity(access_key)
            .is_ok_and(|i| i.is_root())
    }

    fn session_info(&self, req: &Request<Body>, caller: &Caller) -> Response<Body> {
        let csrf = cookie_value(req, COOKIE)
            .and_then(|id| self.sessions.lock().get(id).map(|s| s.csrf.clone()))
            .unwrap_or_default();
        json(
            StatusCode::OK,
            &serde_json::json!({
                "accessKey": caller.access_key,
                "csrf": csrf,
                "root": self.is_root(&caller.access_key),
            }),
        )
    }

    fn logout(&self, req: &Request<Body>) -> Response<Body> {
        if let Some(id) = cookie_value(req, COOKIE) {
            self.sessions.lock().remove(id);
        }
        let mut r = json(StatusCode::OK, &serde_json::json!({ "ok": true }));
        let cookie = format!(
            "{COOKIE}=; Path=/; HttpOnly; SameSite=Strict; Max-Age=0{}",
            if self.secure { "; Secure" } else { "" }
        );
        if let Ok(v) = HeaderValue::from_str(&cookie) {
            r.headers_mut().insert(header::SET_COOKIE, v);
        }
        r
    }

    /// A presigned GET of an object, signed with the user's own key (so it opens only what
    /// the user may read), pointing at the S3 listener.
    async fn share(&self, req: Request<Body>, caller: &Caller) -> Response<Body> {
        let host = req
            .headers()
            .get(header::HOST)
            .and_then(|h| h.to_str().ok())
            .unwrap_or("127.0.0.1")
            .to_string();
        let share: Share = match read_json(req, "Send bucket, key and expirySecs.").await {
            Ok(s) => s,
            Err(r) => return r,
        };
        let expiry = share.expiry_secs.unwrap_or(3600);
        if expiry == 0 || expiry > MAX_SHARE {
            return refuse(
                StatusCode::BAD_REQUEST,
                "The expiry must be between 1 second and 7 days.",
            );
        }
        let Some(secret) = self.state.iam.secret_for(&caller.access_key) else {
            return refuse(StatusCode::UNAUTHORIZED, "Not logged in.");
        };
        let base = match &self.s3.public_url {
            Some(u) => u.trim_end_matches('/').to_string(),
            None => {
                // The console's host name, the S3 listener's port.
                let name = match host.rsplit_once(':') {
                    Some((n, p)) if p.chars().all(|c| c.is_ascii_digit()) => n.to_string(),
                    _ => host.clone(),
                };
                format!("{}://{name}:{}", self.s3.scheme, self.s3.port)
            }
        };
        let Some(authority) = base
            .split("://")
            .nth(1)
            .map(|a| a.split('/').next().unwrap_or(a))
        else {
            return refuse(StatusCode::INTERNAL_SERVER_ERROR, "Bad CAIRN_SERVER_URL.");
        };
        let raw_path = format!(
            "/{}/{}",
            crate::auth::uri_encode_key(&share.bucket),
            crate::auth::uri_encode_key(&share.key)
        );
        // `.` and `..` segments of a key as a browser would send them (resolved, naming
        // another object) no longer match the signature: escaped in the link.
        let link_path = escape_dot_segments(&raw_path);
        let version = share
            .version_id
            .as_deref()
            .filter(|v| !v.is_empty())
            .map(|v| format!("versionId={}", crate::auth::uri_encode_key(v)))
            .unwrap_or_default();
        let query = crate::auth::presign_query(
            "GET",
            &raw_path,
            &version,
            authority,
            &caller.access_key,
            &secret,
            &self.state.region,
            SystemTime::now(),
            expiry,
        );
        json(
            StatusCode::OK,
            &serde_json::json!({ "url": format!("{base}{link_path}?{query}"), "expirySecs": expiry }),
        )
    }
}

/// `path` with each `.` or `..` segment percent-encoded (`%2E`): a browser or HTTP client
/// resolves them before sending, so a key with them would address another object.
fn escape_dot_segments(path: &str) -> String {
    path.split('/')
        .map(|seg| match seg {
            "." => "%2E",
            ".." => "%2E%2E",
            s => s,
        })
        .collect::<Vec<_>>()
        .join("/")
}

/// A small JSON body (16 KiB at most), or the answer refusing it (`what`: what to send).
async fn read_json<T: serde::de::DeserializeOwned>(
    req: Request<Body>,
    what: &str,
) -> Result<T, Response<Body>> {
    let limited = http_body_util::Limited::new(req.into_body(), 16 * 1024);
    let body = http_body_util::BodyExt::collect(limited)
        .await
        .map_err(|_| refuse(StatusCode::BAD_REQUEST, "The request is too large."))?
        .to_bytes();
    serde_json::from_slice(&body).map_err(|_| refuse(StatusCode::BAD_REQUEST, what))
}

/// The query parameter the page names an object's key with: `/api/s3/<bucket>?cairn-key=…`.
/// A key in the path would not survive the browser: it resolves `.` and `..` segments, even
/// percent-encoded ones (`%2E%2E`), before sending, so such a key would name another
/// object or bucket.
const KEY_PARAM: &str = "cairn-key";

/// The S3 path and query a console call at `/api/s3{rest}?{query}` stands for: the key of
/// a `cairn-key` parameter joins the path (encoded, its dot segments kept as they are).
fn object_target(rest: &str, query: Option<&str>) -> Result<String, &'static str> {
    let query = query.unwrap_or("");
    let mut key = None;
    let mut others = Vec::new();
    for pair in query.split('&').filter(|p| !p.is_empty()) {
        match pair.split_once('=') {
            Some((KEY_PARAM, v)) => {
                let v = percent_encoding::percent_decode_str(v)
                    .decode_utf8()
                    .map_err(|_| "The object key is not UTF-8.")?;
                if v.is_empty() {
                    return Err("The object key is empty.");
                }
                if key.replace(v.into_owned()).is_some() {
                    return Err("Name one object key.");
                }
            }
            None if pair == KEY_PARAM => return Err("The object key is empty."),
            _ => others.push(pair),
        }
    }
    let path = match key {
        None => rest.to_string(),
        Some(key) => {
            let bucket = rest.trim_start_matches('/');
            let name =
                |c: char| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '.' || c == '-';
            if bucket.is_empty() || !bucket.chars().all(name) {
                return Err("An object key goes with a bucket name alone.");
            }
            format!("/{bucket}/{}", crate::auth::uri_encode_key(&key))
        }
    };
    Ok(match others.is_empty() {
        true => path,
        false => format!("{path}?{}", others.join("&")),
    })
}

/// The browser's request as the S3 or admin API sees it: at `target` (path and query), as
/// `access_key`, without the console's cookie, host or any credentials the page sent.
fn forward(req: Request<Body>, target: &str, access_key: &str) -> Option<Request<Body>> {
    let (mut parts, body) = req.into_parts();
    parts.uri = target.parse().ok()?;
    for h in [
        header::COOKIE,
        header::AUTHORIZATION,
        header::HOST,
        header::ORIGIN,
        header::REFERER,
    ] {
        parts.headers.remove(h);
    }
    parts.headers.remove("x-amz-security-token");
    parts.headers.remove("x-csrf-token");
    parts.extensions.insert(OnBehalfOf(access_key.to_string()));
    Some(Request::from_parts(parts, body))
}

#[cfg(test)]
mod tests {
    use super::{escape_dot_segments, object_target};

    #[test]
    fn a_key_named_in_the_query_joins_the_path_with_its_dot_segments() {
        assert_eq!(
            object_target("/mal", Some("cairn-key=..%2Fbkt1%2Fx.txt&tagging")).as_deref(),
            Ok("/mal/../bkt1/x.txt?tagging")
        );
        assert_eq!(
            object_target("/b", Some("cairn-key=a%20b%3F%23&versionId=1")).as_deref(),
            Ok("/b/a%20b%3F%23?versionId=1")
        );
        // Without one, the path and query go as they came.
        assert_eq!(
            object_target("/b", Some("list-type=2&prefix=a")).as_deref(),
            Ok("/b?list-type=2&prefix=a")
        );
        assert_eq!(object_target("/", None).as_deref(), Ok("/"));
        // A key with a key in the path, two keys, an empty one: refused.
        assert!(object_target("/b/k", Some("cairn-key=x")).is_err());
        assert!(object_target("/b", Some("cairn-key=x&cairn-key=y")).is_err());
        assert!(object_target("/b", Some("cairn-key")).is_err());
        assert!(object_target("/b", Some("cairn-key=")).is_err());
        assert!(object_target("/b%2Fx", Some("cairn-key=k")).is_err());
        assert!(object_target("/", Some("cairn-key=x")).is_err());
        assert!(object_target("/b", Some("cairn-key=%FF")).is_err());
    }

    #[test]
    fn dot_segments_of_a_shared_link_are_escaped() {
        assert_eq!(
            escape_dot_segments("/mal/../bkt1/./x..y/.z"),
            "/mal/%2E%2E/bkt1/%2E/x..y/.z"
        );
    }
}
