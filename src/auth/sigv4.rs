//! AWS Signature Version 4: Authorization header, presigned query, and the chunk/trailer
//! signature chain of aws-chunked bodies. Signing key and HMAC come from `aws-sigv4`.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use sha2::{Digest, Sha256};

use super::{
    same, within_skew, AuthError, Credentials, Payload, RequestParts, Verified, EMPTY_SHA256,
    MAX_PRESIGN, STREAMING_SIGNED, STREAMING_SIGNED_TRAILER, STREAMING_UNSIGNED_TRAILER,
    UNSIGNED_PAYLOAD,
};

const ALGORITHM: &str = "AWS4-HMAC-SHA256";

/// The signing key for a day, region and service.
pub fn signing_key(secret: &str, time: SystemTime, region: &str, service: &str) -> Vec<u8> {
    aws_sigv4::sign::v4::generate_signing_key(secret, time, region, service)
        .as_ref()
        .to_vec()
}

/// Percent-encode as SigV4 wants: everything but `A-Za-z0-9-_.~` (and `/` when `keep_slash`).
pub(crate) fn uri_encode(bytes: &[u8], keep_slash: bool) -> String {
    let mut out = String::with_capacity(bytes.len());
    for &b in bytes {
        if b.is_ascii_alphanumeric()
            || matches!(b, b'-' | b'_' | b'.' | b'~')
            || (keep_slash && b == b'/')
        {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

fn canonical_uri(raw_path: &str) -> String {
    let decoded: Vec<u8> = percent_encoding::percent_decode_str(raw_path).collect();
    let path = if decoded.is_empty() {
        b"/".to_vec()
    } else {
        decoded
    };
    uri_encode(&path, true)
}

fn canonical_query(raw_query: &str, skip_signature: bool) -> String {
    let mut pairs: Vec<(String, String)> = raw_query
        .split('&')
        .filter(|p| !p.is_empty())
        .map(|p| {
            let (k, v) = p.split_once('=').unwrap_or((p, ""));
            let k: Vec<u8> = percent_encoding::percent_decode_str(k).collect();
            let v: Vec<u8> = percent_encoding::percent_decode_str(v).collect();
            (uri_encode(&k, false), uri_encode(&v, false))
        })
        .filter(|(k, _)| !(skip_signature && k == "X-Amz-Signature"))
        .collect();
    pairs.sort();
    pairs
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join("&")
}

fn canonical_header_value(v: &str) -> String {
    v.split_whitespace().collect::<Vec<_>>().join(" ")
}

fn canonical_request(
    req: &RequestParts,
    signed_headers: &[&str],
    payload_hash: &str,
    presigned: bool,
) -> Result<String, AuthError> {
    let mut headers = String::new();
    for name in signed_headers {
        let values: Vec<String> = req
            .headers
            .iter()
            .filter(|(n, _)| n == name)
            .map(|(_, v)| canonical_header_value(v))
            .collect();
        if values.is_empty() {
            return Err(AuthError::SignatureDoesNotMatch);
        }
        headers.push_str(&format!("{name}:{}\n", values.join(",")));
    }
    Ok(format!(
        "{}\n{}\n{}\n{}\n{}\n{}",
        req.method,
        canonical_uri(req.raw_path),
        canonical_query(req.raw_query, presigned),
        headers,
        signed_headers.join(";"),
        payload_hash
    ))
}

fn hex_sha256(data: &[u8]) -> String {
    hex::encode(Sha256::digest(data))
}

/// `YYYYMMDDTHHMMSSZ` → time.
pub(crate) fn parse_amz_date(s: &str) -> Option<SystemTime> {
    let fmt = time::macros::format_description!("[year][month][day]T[hour][minute][second]Z");
    let t = time::PrimitiveDateTime::parse(s, fmt).ok()?.assume_utc();
    let secs = u64::try_from(t.unix_timestamp()).ok()?;
    Some(UNIX_EPOCH + Duration::from_secs(secs))
}

fn format_amz_date(t: SystemTime) -> String {
    let secs = t.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
    let dt = time::OffsetDateTime::from_unix_timestamp(secs as i64)
        .unwrap_or(time::OffsetDateTime::UNIX_EPOCH);
    let fmt = time::macros::format_description!("[year][month][day]T[hour][minute][second]Z");
    dt.format(fmt).unwrap_or_default()
}

/// The parsed `Credential=` scope.
pub(super) struct Scope<'a> {
    pub(super) access_key: &'a str,
    pub(super) date: &'a str,
    pub(super) region: &'a str,
    pub(super) service: &'a str,
}

pub(super) fn parse_scope(credential: &str) -> Option<Scope<'_>> {
    let mut it = credential.rsplitn(5, '/');
    let terminator = it.next()?;
    let service = it.next()?;
    let region = it.next()?;
    let date = it.next()?;
    let access_key = it.next()?;
    (terminator == "aws4_request" && !access_key.is_empty()).then_some(Scope {
        access_key,
        date,
        region,
        service,
    })
}

/// `US` is the legacy name of `us-east-1` (s3cmd's default `bucket_location` signs with it),
/// as AWS and MinIO take it.
pub(crate) fn canonical_region(r: &str) -> &str {
    if r == "US" {
        "us-east-1"
    } else {
        r
    }
}

/// Checks shared by header and query signatures; returns (secret, time).
pub(super) fn check_scope(
    scope: &Scope,
    stamp: SystemTime,
    creds: &dyn Credentials,
    region: &str,
    malformed: fn(String) -> AuthError,
) -> Result<String, AuthError> {
    if scope.service != "s3" && scope.service != "sts" {
        return Err(malformed(format!(
            "The service '{}' is wrong; expecting 's3'",
            scope.service
        )));
    }
    if canonical_region(scope.region) != canonical_region(region) {
        return Err(malformed(format!(
            "The authorization header is malformed; the region '{}' is wrong; expecting '{region}'",
            scope.region
        )));
    }
    if !format_amz_date(stamp).starts_with(scope.date) || scope.date.len() != 8 {
        return Err(malformed(
            "The credential date does not match the request date".into(),
        ));
    }
    creds
        .secret_for(scope.access_key)
        .ok_or(AuthError::InvalidAccessKeyId)
}

/// The signing key, the scope string and the signature a request must carry.
fn expected_signature(
    secret: &str,
    time: SystemTime,
    stamp: &str,
    scope: &Scope,
    canonical: &str,
) -> (Vec<u8>, String, String) {
    let scope_str = format!(
        "{}/{}/{}/aws4_request",
        scope.date, scope.region, scope.service
    );
    let key = signing_key(secret, time, scope.region, scope.service);
    let signature = aws_sigv4::sign::v4::calculate_signature(
        &key,
        string_to_sign(stamp, &scope_str, canonical).as_bytes(),
    );
    (key, scope_str, signature)
}

fn string_to_sign(stamp: &str, scope: &str, canonical: &str) -> String {
    format!(
        "{ALGORITHM}\n{stamp}\n{scope}\n{}",
        hex_sha256(canonical.as_bytes())
    )
}

pub(super) fn verify_header(
    req: &RequestParts,
    rest: &str,
    creds: &dyn Credentials,
    region: &str,
    now: SystemTime,
) -> Result<Verified, AuthError> {
    let malformed =
        || AuthError::AuthorizationHeaderMalformed("The authorization header is malformed".into());
    let (mut credential, mut signed, mut signature) = (None, None, None);
    for part in rest.split(',') {
        let part = part.trim();
        if let Some(v) = part.strip_prefix("Credential=") {
            credential = Some(v);
        } else if let Some(v) = part.strip_prefix("SignedHeaders=") {
            signed = Some(v);
        } else if let Some(v) = part.strip_prefix("Signature=") {
            signature = Some(v);
        } else if !part.is_empty() {
            return Err(malformed());
        }
    }
    let (credential, signed, signature) = (
        credential.ok_or_else(malformed)?,
        signed.ok_or_else(malformed)?,
        signature.ok_or_else(malformed)?,
    );
    let scope = parse_scope(credential).ok_or_else(malformed)?;
    let (stamp_str, stamp) = match req.header("x-amz-date") {
        Some(d) => (d.to_string(), parse_amz_date(d).ok_or_else(malformed)?),
        None => {
            let d = req
                .header("date")
                .and_then(super::parse_http_date)
                .ok_or_else(|| {
                    AuthError::AccessDenied(
                        "AWS authentication requires a valid Date or x-amz-date header".into(),
                    )
                })?;
            (format_amz_date(d), d)
        }
    };
    let secret = check_scope(
        &scope,
        stamp,
        creds,
        region,
        AuthError::AuthorizationHeaderMalformed,
    )?;
    if !within_skew(stamp, now) {
        return Err(AuthError::RequestTimeTooSkewed);
    }
    let signed_headers: Vec<&str> = signed.split(';').collect();
    if !signed_headers.contains(&"host") {
        return Err(AuthError::AuthorizationHeaderMalformed(
            "The host header must be signed".into(),
        ));
    }
    // S3 requires the header; without it the payload is taken to be empty (as MinIO does).
    let payload_hash = req
        .header("x-amz-content-sha256")
        .unwrap_or(EMPTY_SHA256)
        .to_string();
    let canonical = canonical_request(req, &signed_headers, &payload_hash, false)?;
    let (key, scope_str, expected) =
        expected_signature(&secret, stamp, &stamp_str, &scope, &canonical);
    if !same(&expected, signature) {
        return Err(AuthError::SignatureDoesNotMatch);
    }
    let payload = match payload_hash.as_str() {
        UNSIGNED_PAYLOAD => Payload::Unsigned,
        STREAMING_SIGNED | STREAMING_SIGNED_TRAILER => Payload::StreamingSigned {
            signer: ChunkSigner {
                key,
                stamp: stamp_str,
                scope: scope_str,
                previous: expected,
            },
            trailer: payload_hash == STREAMING_SIGNED_TRAILER,
        },
        STREAMING_UNSIGNED_TRAILER => Payload::StreamingUnsignedTrailer,
        h if h.len() == 64 && h.bytes().all(|b| b.is_ascii_hexdigit()) => Payload::Sha256(h.to_ascii_lowercase()),
        _ => {
            return Err(AuthError::InvalidArgument(
                "x-amz-content-sha256 must be UNSIGNED-PAYLOAD, a streaming mode or a SHA-256 hex digest".into(),
            ))
        }
    };
    Ok(Verified {
        access_key: scope.access_key.to_string(),
        payload,
        sts: scope.service == "sts",
    })
}

pub(super) fn verify_presigned(
    req: &RequestParts,
    query: &[(String, String)],
    creds: &dyn Credentials,
    region: &str,
    now: SystemTime,
) -> Result<Verified, AuthError> {
    let get = |k: &str| query.iter().find(|(n, _)| n == k).map(|(_, v)| v.as_str());
    let err = |m: &str| AuthError::AuthorizationQueryParametersError(m.to_string());
    if get("X-Amz-Algorithm") != Some(ALGORITHM) {
        return Err(err("X-Amz-Algorithm only supports \"AWS4-HMAC-SHA256\""));
    }
    let credential = get("X-Amz-Credential").ok_or_else(|| err("X-Amz-Credential is missing"))?;
    let date = get("X-Amz-Date").ok_or_else(|| err("X-Amz-Date is missing"))?;
    let expires: i64 = get("X-Amz-Expires")
        .ok_or_else(|| err("X-Amz-Expires is missing"))?
        .parse()
        .map_err(|_| err("X-Amz-Expires should be a number"))?;
    // Out of range is refused as AWS does: 403, not 400 (s3-tests check the status).
    let expires = match u64::try_from(expires) {
        Err(_) => {
            return Err(AuthError::ExpiresOutOfRange(
                "X-Amz-Expires must be non-negative".into(),
            ))
        }
        Ok(e) if e > MAX_PRESIGN => {
            return Err(AuthError::ExpiresOutOfRange(
                "X-Amz-Expires must be less than a week (in seconds) that is 604800".into(),
            ))
        }
        Ok(e) => e,
    };
    let signed = get("X-Amz-SignedHeaders").ok_or_else(|| err("X-Amz-SignedHeaders is missing"))?;
    let signature = get("X-Amz-Signature").ok_or_else(|| err("X-Amz-Signature is missing"))?;
    let scope = parse_scope(credential)
        .ok_or_else(|| err("Error parsing the X-Amz-Credential parameter"))?;
    let stamp =
        parse_amz_date(date).ok_or_else(|| err("X-Amz-Date must be in the ISO8601 Long Format"))?;
    let secret = check_scope(
        &scope,
        stamp,
        creds,
        region,
        AuthError::AuthorizationQueryParametersError,
    )?;
    if stamp > now + super::MAX_SKEW {
        return Err(AuthError::AccessDenied("Request is not valid yet".into()));
    }
    // Valid for `expires` seconds from the stamp: `X-Amz-Expires=0` is never valid.
    if now >= stamp + Duration::from_secs(expires) {
        return Err(AuthError::AccessDenied("Request has expired".into()));
    }
    let signed_headers: Vec<&str> = signed.split(';').collect();
    let payload_hash = get("X-Amz-Content-Sha256")
        .or_else(|| req.header("x-amz-content-sha256"))
        .unwrap_or(UNSIGNED_PAYLOAD);
    let canonical = canonical_request(req, &signed_headers, payload_hash, true)?;
    let (_, _, expected) = expected_signature(&secret, stamp, date, &scope, &canonical);
    if !same(&expected, signature) {
        return Err(AuthError::SignatureDoesNotMatch);
    }
    Ok(Verified {
        access_key: scope.access_key.to_string(),
        payload: Payload::Unsigned,
        sts: scope.service == "sts",
    })
}

/// The signature chain of an aws-chunked body: each chunk's signature covers the previous
/// signature and the chunk's hash, starting from the request's seed signature.
#[derive(Clone, PartialEq, Eq)]
pub struct ChunkSigner {
    key: Vec<u8>,
    stamp: String,
    scope: String,
    previous: String,
}

impl std::fmt::Debug for ChunkSigner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ChunkSigner")
            .field("scope", &self.scope)
            .finish()
    }
}

impl ChunkSigner {
    /// Check the signature of the next chunk (`data` may be empty for the final chunk).
    pub fn verify_chunk(&mut self, data: &[u8], signature: &str) -> Result<(), AuthError> {
        let sts = format!(
            "AWS4-HMAC-SHA256-PAYLOAD\n{}\n{}\n{}\n{EMPTY_SHA256}\n{}",
            self.stamp,
            self.scope,
            self.previous,
            hex_sha256(data)
        );
        self.advance(&sts, signature)
    }

    /// Check the trailer signature over the trailing header lines (`name:value\n` each).
    pub fn verify_trailer(&mut self, trailer: &[u8], signature: &str) -> Result<(), AuthError> {
        let sts = format!(
            "AWS4-HMAC-SHA256-TRAILER\n{}\n{}\n{}\n{}",
            self.stamp,
            self.scope,
            self.previous,
            hex_sha256(trailer)
        );
        self.advance(&sts, signature)
    }

    fn advance(&mut self, sts: &str, signature: &str) -> Result<(), AuthError> {
        let expected = aws_sigv4::sign::v4::calculate_signature(&self.key, sts.as_bytes());
        if !same(&expected, signature) {
            return Err(AuthError::SignatureDoesNotMatch);
        }
        self.previous = expected;
        Ok(())
    }
}

/// Sign a request as a client: the headers (`x-amz-date`, `x-amz-content-sha256`,
/// `authorization`) to send with it. `raw_path` and `raw_query` are as they go on the wire;
/// `host` is the Host header value.
#[allow(clippy::too_many_arguments)]
pub fn sign_request(
    method: &str,
    raw_path: &str,
    raw_query: &str,
    host: &str,
    payload_hash: &str,
    access_key: &str,
    secret_key: &str,
    region: &str,
    now: SystemTime,
) -> Vec<(String, String)> {
    sign_request_with(
        method,
        raw_path,
        raw_query,
        host,
        payload_hash,
        &[],
        access_key,
        secret_key,
        region,
        now,
    )
}

/// [`sign_request`], also signing `extra` headers (lower-case names; `x-amz-*` headers
/// must be signed for AWS).
#[allow(clippy::too_many_arguments)]
pub fn sign_request_with(
    method: &str,
    raw_path: &str,
    raw_query: &str,
    host: &str,
    payload_hash: &str,
    extra: &[(String, String)],
    access_key: &str,
    secret_key: &str,
    region: &str,
    now: SystemTime,
) -> Vec<(String, String)> {
    let stamp = format_amz_date(now);
    let mut headers = vec![
        ("host".to_string(), host.to_string()),
        ("x-amz-content-sha256".to_string(), payload_hash.to_string()),
        ("x-amz-date".to_string(), stamp.clone()),
    ];
    headers.extend(extra.iter().cloned());
    let mut signed: Vec<&str> = headers.iter().map(|(n, _)| n.as_str()).collect();
    signed.sort_unstable();
    signed.dedup();
    let req = RequestParts {
        method,
        raw_path,
        raw_query,
        headers: &headers,
        host_bucket: None,
    };
    let canonical = canonical_request(&req, &signed, payload_hash, false).unwrap_or_default();
    let scope = format!("{}/{region}/s3/aws4_request", &stamp[..8]);
    let key = signing_key(secret_key, now, region, "s3");
    let signature = aws_sigv4::sign::v4::calculate_signature(
        &key,
        string_to_sign(&stamp, &scope, &canonical).as_bytes(),
    );
    let authorization = format!(
        "{ALGORITHM} Credential={access_key}/{scope}, SignedHeaders={}, Signature={signature}",
        signed.join(";")
    );
    vec![
        ("x-amz-date".to_string(), stamp),
        ("x-amz-content-sha256".to_string(), payload_hash.to_string()),
        ("authorization".to_string(), authorization),
    ]
}

/// A presigned URL's query for `method raw_path?extra_query` at `host` (`extra_query`, then
/// the `X-Amz-*` parameters and the signature; append it to the path after `?`), valid
/// `expires_secs` from `now`.
#[allow(clippy::too_many_arguments)]
pub fn presign_query(
    method: &str,
    raw_path: &str,
    extra_query: &str,
    host: &str,
    access_key: &str,
    secret_key: &str,
    region: &str,
    now: SystemTime,
    expires_secs: u64,
) -> String {
    let stamp = format_amz_date(now);
    let scope = format!("{}/{region}/s3/aws4_request", &stamp[..8]);
    let credential = format!("{access_key}/{scope}");
    let mut query = format!(
        "X-Amz-Algorithm={ALGORITHM}&X-Amz-Credential={}&X-Amz-Date={stamp}&X-Amz-Expires={expires_secs}&X-Amz-SignedHeaders=host",
        uri_encode(credential.as_bytes(), false)
    );
    if !extra_query.is_empty() {
        query = format!("{extra_query}&{query}");
    }
    let headers = [("host".to_string(), host.to_string())];
    let req = RequestParts {
        method,
        raw_path,
        raw_query: &query,
        headers: &headers,
        host_bucket: None,
    };
    let canonical =
        canonical_request(&req, &["host"], "UNSIGNED-PAYLOAD", true).unwrap_or_default();
    let key = signing_key(secret_key, now, region, "s3");
    let signature = aws_sigv4::sign::v4::calculate_signature(
        &key,
        string_to_sign(&stamp, &scope, &canonical).as_bytes(),
    );
    format!("{query}&X-Amz-Signature={signature}")
}
