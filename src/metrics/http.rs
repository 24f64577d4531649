//! `GET /cairn/v1/metrics/{cluster,node}` (and MinIO's `/minio/v2/metrics/{cluster,node}`,
//! the same samples with the `minio_` prefix). Authorised by a bearer token — a JWT signed
//! (HS512) with the secret key of a user allowed `admin:Prometheus`, as MinIO's
//! `mc admin prometheus generate` makes them — unless `CAIRN_PROMETHEUS_AUTH_TYPE=public`.
//! The server hands these paths here only for GET/HEAD with a bearer token or no
//! credentials: SigV4-signed requests on them stay S3's.

use std::sync::Arc;
use std::time::SystemTime;

use axum::body::Body;
use base64::Engine;
use http::{HeaderValue, Method, Request, Response, StatusCode};
use serde::{Deserialize, Serialize};

use crate::auth::Credentials;
use crate::heal::Healer;
use crate::s3::error::S3Error;
use crate::s3::S3State;

/// Which samples a path asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scope {
    Node,
    Cluster,
    /// The per-bucket samples of the cluster scope (MinIO's `/minio/v2/metrics/bucket`).
    Bucket,
    /// MinIO's `/minio/v2/metrics/resource` (host CPU, memory, network): not offered.
    Resource,
}

/// The metric name prefix and scope a path serves (`None`: not a metrics path).
pub fn route(path: &str) -> Option<(&'static str, Scope)> {
    let path = path.trim_end_matches('/');
    let (prefix, rest) = if let Some(r) = path.strip_prefix("/cairn/v1/metrics") {
        ("cairn", r)
    } else if let Some(r) = path.strip_prefix("/minio/v2/metrics") {
        ("minio", r)
    } else {
        return None;
    };
    match rest {
        "/cluster" | "" => Some((prefix, Scope::Cluster)),
        "/node" => Some((prefix, Scope::Node)),
        "/bucket" => Some((prefix, Scope::Bucket)),
        "/resource" => Some((prefix, Scope::Resource)),
        _ => None,
    }
}

/// The claims of a scrape token.
#[derive(Debug, Serialize, Deserialize)]
struct Claims {
    /// Expiry, seconds since the epoch.
    exp: i64,
    /// The access key whose secret signed the token.
    sub: String,
    /// `prometheus`.
    iss: String,
    /// Not valid before, seconds since the epoch (RFC 7519; optional, never written here).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    nbf: Option<i64>,
}

const ISSUER: &str = "prometheus";

fn b64() -> base64::engine::GeneralPurpose {
    base64::engine::general_purpose::URL_SAFE_NO_PAD
}

/// A scrape token for `access_key`, signed with its `secret_key`, valid for `valid_secs`.
pub fn bearer_token(access_key: &str, secret_key: &str, valid_secs: u64) -> String {
    let now = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let claims = Claims {
        exp: i64::try_from(now.saturating_add(valid_secs)).unwrap_or(i64::MAX),
        sub: access_key.to_string(),
        iss: ISSUER.to_string(),
        nbf: None,
    };
    let header = b64().encode(br#"{"alg":"HS512","typ":"JWT"}"#);
    let payload = b64().encode(serde_json::to_vec(&claims).unwrap_or_default());
    let signing_input = format!("{header}.{payload}");
    let key = ring::hmac::Key::new(ring::hmac::HMAC_SHA512, secret_key.as_bytes());
    let sig = b64().encode(ring::hmac::sign(&key, signing_input.as_bytes()).as_ref());
    format!("{signing_input}.{sig}")
}

/// The access key a valid token was signed for, or why it is refused.
fn verify_token(token: &str, creds: &dyn Credentials, now: i64) -> Result<String, &'static str> {
    let mut parts = token.split('.');
    let (Some(h), Some(p), Some(s), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err("the bearer token is not a JWT");
    };
    let header: serde_json::Value = b64()
        .decode(h)
        .ok()
        .and_then(|b| serde_json::from_slice(&b).ok())
        .ok_or("the bearer token's header is malformed")?;
    if header.get("alg").and_then(|a| a.as_str()) != Some("HS512") {
        return Err("the bearer token must be signed with HS512");
    }
    let claims: Claims = b64()
        .decode(p)
        .ok()
        .and_then(|b| serde_json::from_slice(&b).ok())
        .ok_or("the bearer token's claims are malformed")?;
    let sig = b64()
        .decode(s)
        .map_err(|_| "the bearer token's signature is malformed")?;
    let secret = creds
        .secret_for(&claims.sub)
        .ok_or("the bearer token's access key does not exist")?;
    let key = ring::hmac::Key::new(ring::hmac::HMAC_SHA512, secret.as_bytes());
    // Constant-time comparison.
    ring::hmac::verify(&key, format!("{h}.{p}").as_bytes(), &sig)
        .map_err(|_| "the bearer token's signature does not match")?;
    if claims.iss != ISSUER {
        return Err("the bearer token was not issued for Prometheus");
    }
    if claims.exp <= now {
        return Err("the bearer token has expired");
    }
    if claims.nbf.is_some_and(|nbf| nbf > now) {
        return Err("the bearer token is not valid yet");
    }
    Ok(claims.sub)
}

/// The token of an `Authorization: Bearer <token>` value (the scheme's case does not
/// matter, RFC 9110 §11.1).
pub fn bearer(value: &str) -> Option<&str> {
    let (scheme, token) = value.split_once(' ')?;
    scheme.eq_ignore_ascii_case("bearer").then_some(token)
}

fn authorise(state: &S3State, req: &Request<Body>) -> Result<(), S3Error> {
    if state.prometheus_public {
        return Ok(());
    }
    let denied = |why: &str| {
        S3Error::new(
            "AccessDenied",
            StatusCode::FORBIDDEN,
            format!("Access Denied: {why}."),
        )
    };
    let token = req
        .headers()
        .get(http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(bearer)
        .ok_or_else(|| {
            denied("metrics need a bearer token (cairn admin prometheus token), or CAIRN_PROMETHEUS_AUTH_TYPE=public")
        })?;
    let now = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64);
    let access_key = verify_token(token.trim(), state.iam.as_ref(), now).map_err(denied)?;
    let identity = state
        .iam
        .identity(&access_key)
        .map_err(|_| denied("the bearer token's access key is disabled or expired"))?;
    // Temporary credentials need their session token, which a bearer token cannot carry.
    if !crate::iam::Iam::token_fits(&identity, None) {
        return Err(denied("temporary credentials cannot sign a scrape token"));
    }
    if identity.is_root() {
        return Ok(());
    }
    let ctx = crate::iam::Context {
        action: "admin:Prometheus",
        resource: "arn:aws:s3:::*",
        principal: identity.principal(&access_key),
        keys: &crate::iam::NoKeys,
    };
    if identity.decide(&ctx) != crate::iam::Decision::Allow {
        return Err(denied("the token's user is not allowed admin:Prometheus"));
    }
    Ok(())
}

/// Serve one scrape of `scope` with metric names prefixed `prefix`.
pub async fn handle(
    state: Arc<S3State>,
    healer: Arc<Healer>,
    req: Request<Body>,
    prefix: &'static str,
    scope: Scope,
    request_id: &str,
) -> Response<Body> {
    let path = req.uri().path().to_string();
    let is_head = req.method() == Method::HEAD;
    let fail = |e: S3Error| crate::s3::error_response(&e, &path, request_id, is_head);
    if req.method() != Method::GET && !is_head {
        return fail(S3Error::new(
            "MethodNotAllowed",
            StatusCode::METHOD_NOT_ALLOWED,
            "The specified method is not allowed against this resource.",
        ));
    }
    if let Err(e) = authorise(&state, &req) {
        tracing::debug!(code = e.code, message = %e.message, "scrape refused");
        return fail(e);
    }
    let openmetrics = req
        .headers()
        .get(http::header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|a| a.contains("application/openmetrics-text"));
    if scope == Scope::Resource {
        return fail(S3Error::new(
            "NotImplemented",
            StatusCode::NOT_IMPLEMENTED,
            "Resource metrics (host CPU, memory and network) are not offered; the node metrics have this server's process and drive figures.",
        ));
    }
    let gathered = tokio::time::timeout(super::expose::SCRAPE_TIMEOUT, async {
        match scope {
            Scope::Node => super::expose::node(&state, &healer).await,
            Scope::Cluster | Scope::Resource => super::expose::cluster(&state, &healer).await,
            Scope::Bucket => super::expose::cluster(&state, &healer).await.buckets_only(),
        }
    })
    .await;
    let Ok(exposition) = gathered else {
        return fail(S3Error::new(
            "ServiceUnavailable",
            StatusCode::SERVICE_UNAVAILABLE,
            "Gathering metrics took too long; please retry.",
        ));
    };
    let (text, content_type) = exposition.encode(prefix, openmetrics);
    let mut r = Response::new(if is_head {
        Body::empty()
    } else {
        Body::from(text)
    });
    r.headers_mut()
        .insert("content-type", HeaderValue::from_static(content_type));
    r
}

#[cfg(test)]
mod tests {
    use super::*;

    struct One;
    impl Credentials for One {
        fn secret_for(&self, access_key: &str) -> Option<String> {
            (access_key == "prom").then(|| "prom-secret-123".to_string())
        }
    }

    #[test]
    fn tokens_verify_only_with_their_secret_and_before_expiry() {
        let now = SystemTime::now()
            .duration_since(SystemTime::UNIX_EPOCH)
            .expect("clock")
            .as_secs() as i64;
        let t = bearer_token("prom", "prom-secret-123", 3600);
        assert_eq!(verify_token(&t, &One, now).as_deref(), Ok("prom"));
        // Expired by the time it is checked.
        assert!(verify_token(&t, &One, now + 7200).is_err());
        // Signed with another secret.
        let forged = bearer_token("prom", "guess", 3600);
        assert!(verify_token(&forged, &One, now).is_err());
        // Unknown key, tampered claims, garbage.
        assert!(verify_token(&bearer_token("who", "x", 60), &One, now).is_err());
        let mut parts: Vec<String> = t.split('.').map(String::from).collect();
        parts[1] = b64().encode(br#"{"exp":99999999999,"sub":"prom","iss":"prometheus"}"#);
        assert!(verify_token(&parts.join("."), &One, now).is_err());
        // Signed rightly, but not valid before a time still to come.
        let signed = |claims: &str| {
            let input = format!(
                "{}.{}",
                b64().encode(br#"{"alg":"HS512","typ":"JWT"}"#),
                b64().encode(claims)
            );
            let key = ring::hmac::Key::new(ring::hmac::HMAC_SHA512, b"prom-secret-123");
            let sig = b64().encode(ring::hmac::sign(&key, input.as_bytes()).as_ref());
            format!("{input}.{sig}")
        };
        let claims = |nbf: i64| {
            format!(
                r#"{{"exp":{},"sub":"prom","iss":"prometheus","nbf":{nbf}}}"#,
                now + 3600
            )
        };
        assert!(verify_token(&signed(&claims(now + 600)), &One, now).is_err());
        assert_eq!(
            verify_token(&signed(&claims(now - 1)), &One, now).as_deref(),
            Ok("prom")
        );
        for junk in ["", "a.b", "a.b.c.d", "!!.!!.!!"] {
            assert!(verify_token(junk, &One, now).is_err(), "{junk}");
        }
    }

    #[test]
    fn paths() {
        assert_eq!(
            route("/cairn/v1/metrics/node"),
            Some(("cairn", Scope::Node))
        );
        assert_eq!(
            route("/minio/v2/metrics/cluster"),
            Some(("minio", Scope::Cluster))
        );
        assert_eq!(route("/minio/v2/metrics"), Some(("minio", Scope::Cluster)));
        assert_eq!(
            route("/minio/v2/metrics/bucket"),
            Some(("minio", Scope::Bucket))
        );
        assert_eq!(route("/minio/v2/metrics/other"), None);
        assert_eq!(bearer("bearer abc"), Some("abc"));
        assert_eq!(bearer("Bearer abc"), Some("abc"));
        assert_eq!(bearer("Basic abc"), None);
        assert_eq!(route("/minio/other"), None);
    }
}
