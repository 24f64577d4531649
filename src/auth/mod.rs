//! Request authentication, as pure functions over a request's parts: AWS Signature V4 (header
//! and presigned query, with every payload mode) and Signature V2 (header and presigned
//! query). No HTTP framework types: the S3 layer hands in method, raw path, raw query and
//! headers, and gets back a verified identity and how the body must be checked.

pub mod post;
mod sigv2;
mod sigv4;

pub mod chunked;

use std::time::{Duration, SystemTime};

use thiserror::Error;

pub(crate) use sigv4::canonical_region;
pub use sigv4::{presign_query, sign_request, sign_request_with, signing_key, ChunkSigner};

/// Largest clock difference accepted between client and server.
pub const MAX_SKEW: Duration = Duration::from_secs(15 * 60);
/// Longest validity of a presigned URL: 7 days.
pub const MAX_PRESIGN: u64 = 7 * 24 * 3600;

pub const UNSIGNED_PAYLOAD: &str = "UNSIGNED-PAYLOAD";
pub const STREAMING_SIGNED: &str = "STREAMING-AWS4-HMAC-SHA256-PAYLOAD";
pub const STREAMING_SIGNED_TRAILER: &str = "STREAMING-AWS4-HMAC-SHA256-PAYLOAD-TRAILER";
pub const STREAMING_UNSIGNED_TRAILER: &str = "STREAMING-UNSIGNED-PAYLOAD-TRAILER";
pub const EMPTY_SHA256: &str = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";

#[derive(Debug, Error, Clone, PartialEq, Eq)]
pub enum AuthError {
    #[error("{0}")]
    AccessDenied(String),
    #[error("The AWS Access Key Id you provided does not exist in our records.")]
    InvalidAccessKeyId,
    #[error("The request signature we calculated does not match the signature you provided. Check your key and signing method.")]
    SignatureDoesNotMatch,
    #[error("The difference between the request time and the server's time is too large.")]
    RequestTimeTooSkewed,
    #[error("{0}")]
    AuthorizationHeaderMalformed(String),
    #[error("{0}")]
    AuthorizationQueryParametersError(String),
    /// `X-Amz-Expires` negative or past the longest validity (a 403, unlike the other
    /// query-parameter errors).
    #[error("{0}")]
    ExpiresOutOfRange(String),
    #[error("{0}")]
    InvalidArgument(String),
    #[error("{0}")]
    InvalidRequest(String),
    #[error("The provided 'x-amz-content-sha256' header does not match what was computed.")]
    ContentSha256Mismatch,
}

/// Looks up the secret key of an access key.
pub trait Credentials: Send + Sync {
    fn secret_for(&self, access_key: &str) -> Option<String>;
}

/// A single root user.
#[derive(Clone)]
pub struct RootCredentials {
    pub access_key: String,
    pub secret_key: String,
}

/// Secrets never reach `Debug` output (logs, panics).
impl std::fmt::Debug for RootCredentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RootCredentials")
            .field("access_key", &self.access_key)
            .field("secret_key", &"<redacted>")
            .finish()
    }
}

impl Credentials for RootCredentials {
    fn secret_for(&self, access_key: &str) -> Option<String> {
        (access_key == self.access_key).then(|| self.secret_key.clone())
    }
}

/// The parts of a request that authentication reads.
#[derive(Debug, Clone)]
pub struct RequestParts<'a> {
    pub method: &'a str,
    /// The path exactly as sent (percent-encoded).
    pub raw_path: &'a str,
    /// The query string exactly as sent, without `?`.
    pub raw_query: &'a str,
    /// Header names in lower case, values as sent.
    pub headers: &'a [(String, String)],
    /// For virtual-hosted requests, the bucket named by the Host header (SigV2 signs it).
    pub host_bucket: Option<&'a str>,
}

impl RequestParts<'_> {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }

    /// Decoded query parameters in order.
    pub fn query_pairs(&self) -> Vec<(String, String)> {
        parse_query(self.raw_query)
    }
}

/// Decode `a=b&c` into pairs (`+` is a space only in form encoding; S3 clients encode spaces
/// as `%20`, but a literal `+` in a query value is taken as a space like AWS does).
pub fn parse_query(raw: &str) -> Vec<(String, String)> {
    raw.split('&')
        .filter(|p| !p.is_empty())
        .map(|p| {
            let (k, v) = p.split_once('=').unwrap_or((p, ""));
            (decode_component(k), decode_component(v))
        })
        .collect()
}

fn decode_component(s: &str) -> String {
    let s = s.replace('+', " ");
    percent_encoding::percent_decode_str(&s)
        .decode_utf8_lossy()
        .into_owned()
}

/// How the request body has to be checked after authentication.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Payload {
    /// No integrity check on the body (UNSIGNED-PAYLOAD, presigned, SigV2).
    Unsigned,
    /// The body's SHA-256 must equal this hex digest.
    Sha256(String),
    /// aws-chunked body; every chunk signature is checked (and the trailer's, if `trailer`).
    StreamingSigned { signer: ChunkSigner, trailer: bool },
    /// aws-chunked body without signatures, ending with trailing headers.
    StreamingUnsignedTrailer,
}

/// A request whose signature checked out.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verified {
    /// Empty for an anonymous request.
    pub access_key: String,
    pub payload: Payload,
    /// Signed for the STS service (only STS calls may be).
    pub sts: bool,
}

impl Verified {
    /// An unsigned request (evaluated as the anonymous principal).
    pub fn anonymous() -> Verified {
        Verified {
            access_key: String::new(),
            payload: Payload::Unsigned,
            sts: false,
        }
    }

    pub fn is_anonymous(&self) -> bool {
        self.access_key.is_empty()
    }

    /// A request made in-process for `access_key` (the web console's user), with no
    /// signature to check.
    pub fn on_behalf_of(access_key: &str) -> Verified {
        Verified {
            access_key: access_key.to_string(),
            payload: Payload::Unsigned,
            sts: false,
        }
    }
}

/// Which scheme a request uses, if any.
pub fn is_anonymous(req: &RequestParts) -> bool {
    req.header("authorization").is_none()
        && !req.query_pairs().iter().any(|(k, _)| {
            k == "X-Amz-Signature"
                || k == "X-Amz-Algorithm"
                || k == "Signature"
                || k == "AWSAccessKeyId"
        })
}

/// Authenticate a request against `creds` for `region` at time `now`.
pub fn verify(
    req: &RequestParts,
    creds: &dyn Credentials,
    region: &str,
    now: SystemTime,
) -> Result<Verified, AuthError> {
    if let Some(auth) = req.header("authorization") {
        // One scheme per request: a signed header and query-string signing parameters
        // together are refused, as S3 refuses them.
        if req.query_pairs().iter().any(|(k, _)| {
            matches!(
                k.as_str(),
                "X-Amz-Algorithm" | "X-Amz-Credential" | "X-Amz-Signature" | "Signature"
            )
        }) {
            return Err(AuthError::InvalidArgument(
                "Only one auth mechanism allowed: the Authorization header or query-string signing, not both".into(),
            ));
        }
        if let Some(rest) = auth.strip_prefix("AWS4-HMAC-SHA256") {
            return sigv4::verify_header(req, rest, creds, region, now);
        }
        if let Some(rest) = auth.strip_prefix("AWS ") {
            return sigv2::verify_header(req, rest, creds, now);
        }
        return Err(AuthError::InvalidArgument(
            "Unsupported Authorization Type".into(),
        ));
    }
    let query = req.query_pairs();
    if query
        .iter()
        .any(|(k, _)| k == "X-Amz-Algorithm" || k == "X-Amz-Signature")
    {
        return sigv4::verify_presigned(req, &query, creds, region, now);
    }
    if query
        .iter()
        .any(|(k, _)| k == "Signature" || k == "AWSAccessKeyId")
    {
        return sigv2::verify_presigned(req, &query, creds, now);
    }
    Err(AuthError::AccessDenied("Access Denied.".into()))
}

/// Constant-time comparison of two signatures.
fn same(a: &str, b: &str) -> bool {
    use subtle::ConstantTimeEq;
    a.len() == b.len() && bool::from(a.as_bytes().ct_eq(b.as_bytes()))
}

/// An HTTP date in every form RFC 7231 accepts (IMF-fixdate, RFC 850, asctime), and the RFC
/// 2822 forms clients send: a numeric zone (`-0000` from Python's `email.utils.formatdate`,
/// which botocore uses for `Date`; `+0100`) or `UT`/`UTC`/`Z` in place of `GMT`.
pub fn parse_http_date(d: &str) -> Option<SystemTime> {
    let d = d.trim();
    if let Ok(t) = httpdate::parse_http_date(d) {
        return Some(t);
    }
    let (local, zone) = d.rsplit_once(' ')?;
    let east: i64 = match zone {
        "UT" | "UTC" | "Z" => 0,
        z if z.len() == 5
            && (z.starts_with('+') || z.starts_with('-'))
            && z[1..].bytes().all(|b| b.is_ascii_digit()) =>
        {
            let (h, m): (i64, i64) = (z[1..3].parse().ok()?, z[3..].parse().ok()?);
            if h > 23 || m > 59 {
                return None;
            }
            let s = h * 3600 + m * 60;
            if z.starts_with('-') {
                -s
            } else {
                s
            }
        }
        _ => return None,
    };
    // The wall-clock time read as UTC, then moved by the zone's offset (UTC = local - east).
    let t = httpdate::parse_http_date(&format!("{local} GMT")).ok()?;
    let shift = Duration::from_secs(east.unsigned_abs());
    if east >= 0 {
        t.checked_sub(shift)
    } else {
        t.checked_add(shift)
    }
}

/// Within the allowed skew of `now`?
fn within_skew(t: SystemTime, now: SystemTime) -> bool {
    match t.duration_since(now) {
        Ok(ahead) => ahead <= MAX_SKEW,
        Err(e) => e.duration() <= MAX_SKEW,
    }
}

#[cfg(test)]
mod tests;

/// Percent-encode a key for `encoding-type=url` responses (keeps `/`).
pub fn uri_encode_key(key: &str) -> String {
    sigv4::uri_encode(key.as_bytes(), true)
}
