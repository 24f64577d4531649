//! AWS Signature Version 2 (HMAC-SHA1): the `Authorization: AWS key:signature` header and
//! presigned `AWSAccessKeyId`/`Expires`/`Signature` query URLs, which boto3 still produces
//! for custom endpoints and older tools use.

use std::time::{SystemTime, UNIX_EPOCH};

use base64::Engine;
use hmac::{Hmac, Mac};
use sha1::Sha1;

use super::{same, within_skew, AuthError, Credentials, Payload, RequestParts, Verified};

/// Query parameters that are part of the signed resource.
const SUBRESOURCES: &[&str] = &[
    "acl",
    "cors",
    "delete",
    "encryption",
    "legal-hold",
    "lifecycle",
    "location",
    "logging",
    "notification",
    "object-lock",
    "partNumber",
    "policy",
    "replication",
    "requestPayment",
    "response-cache-control",
    "response-content-disposition",
    "response-content-encoding",
    "response-content-language",
    "response-content-type",
    "response-expires",
    "restore",
    "retention",
    "tagging",
    "torrent",
    "uploadId",
    "uploads",
    "versionId",
    "versioning",
    "versions",
    "website",
];

/// The resources a request may have signed: the bucket and path as sent, then the
/// sub-resources. A request that addresses only a bucket is signed as `/bucket/` by
/// botocore and as `/bucket` by others, whatever its URL ends with: AWS accepts both.
fn canonical_resources(req: &RequestParts) -> Vec<String> {
    let mut path = String::new();
    if let Some(b) = req.host_bucket {
        path.push('/');
        path.push_str(b);
    }
    path.push_str(if req.raw_path.is_empty() {
        "/"
    } else {
        req.raw_path
    });
    let mut subs: Vec<(String, String)> = req
        .query_pairs()
        .into_iter()
        .filter(|(k, _)| SUBRESOURCES.contains(&k.as_str()))
        .collect();
    subs.sort();
    let mut query = String::new();
    for (i, (k, v)) in subs.iter().enumerate() {
        query.push(if i == 0 { '?' } else { '&' });
        query.push_str(k);
        if !v.is_empty() {
            query.push('=');
            query.push_str(v);
        }
    }
    let mut out = vec![format!("{path}{query}")];
    let bare = path.strip_suffix('/').unwrap_or(&path);
    let bucket_only = bare.len() > 1 && !bare[1..].contains('/');
    if bucket_only {
        let other = if bare.len() == path.len() {
            format!("{bare}/")
        } else {
            bare.to_string()
        };
        out.push(format!("{other}{query}"));
    }
    out
}

/// The `x-amz-*` headers' lines, and for a presigned URL its `x-amz-*` query parameters
/// (`from_query`, names lower-cased): clients sign those headers, then move them into the
/// URL (botocore does so with `x-amz-security-token`).
fn amz_headers(req: &RequestParts, from_query: &[(String, String)]) -> String {
    let all: Vec<(&str, &str)> = req
        .headers
        .iter()
        .map(|(n, v)| (n.as_str(), v.as_str()))
        .chain(from_query.iter().map(|(n, v)| (n.as_str(), v.as_str())))
        .filter(|(n, _)| n.starts_with("x-amz-"))
        .collect();
    let mut names: Vec<&str> = all.iter().map(|(n, _)| *n).collect();
    names.sort_unstable();
    names.dedup();
    names
        .iter()
        .map(|n| {
            let values: Vec<&str> = all
                .iter()
                .filter(|(h, _)| h == n)
                .map(|(_, v)| v.trim())
                .collect();
            format!("{n}:{}\n", values.join(","))
        })
        .collect()
}

/// HTTP dates in every form clients send, or ISO 8601 basic (an `x-amz-date`).
fn parse_date(d: &str) -> Option<SystemTime> {
    super::parse_http_date(d).or_else(|| super::sigv4::parse_amz_date(d))
}

fn sign(secret: &str, sts: &str) -> String {
    // HMAC accepts keys of any length.
    let Ok(mut mac) = Hmac::<Sha1>::new_from_slice(secret.as_bytes()) else {
        return String::new();
    };
    mac.update(sts.as_bytes());
    base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes())
}

/// Does `signature` sign the request with date line `date` and any of its resource forms?
fn signs(
    secret: &str,
    req: &RequestParts,
    date: &str,
    signature: &str,
    from_query: &[(String, String)],
) -> bool {
    let head = format!(
        "{}\n{}\n{}\n{}\n{}",
        req.method,
        req.header("content-md5").unwrap_or("").trim(),
        req.header("content-type").unwrap_or("").trim(),
        date,
        amz_headers(req, from_query),
    );
    canonical_resources(req)
        .iter()
        .any(|resource| same(&sign(secret, &format!("{head}{resource}")), signature))
}

pub(super) fn verify_header(
    req: &RequestParts,
    rest: &str,
    creds: &dyn Credentials,
    now: SystemTime,
) -> Result<Verified, AuthError> {
    let (access_key, signature) = rest
        .trim()
        .rsplit_once(':')
        .ok_or_else(|| AuthError::InvalidArgument("Authorization header is invalid".into()))?;
    let secret = creds
        .secret_for(access_key)
        .ok_or(AuthError::InvalidAccessKeyId)?;
    let amz_date = req.header("x-amz-date");
    let stamp = amz_date
        .or_else(|| req.header("date"))
        .and_then(parse_date)
        .ok_or_else(|| {
            AuthError::AccessDenied(
                "AWS authentication requires a valid Date or x-amz-date header".into(),
            )
        })?;
    if !within_skew(stamp, now) {
        return Err(AuthError::RequestTimeTooSkewed);
    }
    // With x-amz-date the Date line is signed empty; some clients sign the Date header anyway.
    let mut dates = vec![req.header("date").unwrap_or("")];
    if amz_date.is_some() {
        dates.insert(0, "");
    }
    if dates.iter().any(|d| signs(&secret, req, d, signature, &[])) {
        return Ok(Verified {
            access_key: access_key.to_string(),
            payload: Payload::Unsigned,
            sts: false,
        });
    }
    Err(AuthError::SignatureDoesNotMatch)
}

pub(super) fn verify_presigned(
    req: &RequestParts,
    query: &[(String, String)],
    creds: &dyn Credentials,
    now: SystemTime,
) -> Result<Verified, AuthError> {
    let get = |k: &str| query.iter().find(|(n, _)| n == k).map(|(_, v)| v.as_str());
    let access_key = get("AWSAccessKeyId").ok_or_else(|| {
        AuthError::AccessDenied("Query-string authentication requires AWSAccessKeyId".into())
    })?;
    let signature = get("Signature").ok_or_else(|| {
        AuthError::AccessDenied("Query-string authentication requires Signature".into())
    })?;
    let expires = get("Expires").ok_or_else(|| {
        AuthError::AccessDenied("Query-string authentication requires Expires".into())
    })?;
    let expires_at: u64 = expires.parse().map_err(|_| {
        AuthError::AccessDenied("Expires must be a number of seconds since the epoch".into())
    })?;
    let secret = creds
        .secret_for(access_key)
        .ok_or(AuthError::InvalidAccessKeyId)?;
    // Checked: `Expires` is any number a client sends (u64::MAX would overflow a time).
    let now_secs = now.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
    if now_secs > expires_at {
        return Err(AuthError::AccessDenied("Request has expired".into()));
    }
    if expires_at - now_secs > super::MAX_PRESIGN {
        return Err(AuthError::AccessDenied(
            "Expires must be less than a week (604800 seconds) from now".into(),
        ));
    }
    let amz_params: Vec<(String, String)> = query
        .iter()
        .map(|(k, v)| (k.to_ascii_lowercase(), v.clone()))
        // Also sent as a header, the header's value is the one signed (not both joined).
        .filter(|(k, _)| k.starts_with("x-amz-") && req.header(k).is_none())
        .collect();
    if !signs(&secret, req, expires, signature, &amz_params) {
        return Err(AuthError::SignatureDoesNotMatch);
    }
    Ok(Verified {
        access_key: access_key.to_string(),
        payload: Payload::Unsigned,
        sts: false,
    })
}
