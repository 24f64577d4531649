//! CORS for browser apps: Put/Get/DeleteBucketCors (rules kept in the bucket record),
//! preflight `OPTIONS` answered from the bucket's rules without authentication (browsers
//! never sign it), and the `Access-Control-*` headers on actual requests that carry an
//! `Origin`. Buckets without rules fall back to the server's default
//! (`CAIRN_CORS_ALLOW_ORIGIN`), which is off unless set.

use axum::body::Body;
use http::{HeaderValue, Method, Response, StatusCode};
use serde::{Deserialize, Serialize};

use super::access::{bucket, delete_config, put_config};
use super::error::S3Error;
use super::xml::{self, NS};
use super::{empty, xml_response, Ctx, S3State};
use crate::bucket::cors::{Cors, CorsRule, METHODS};

/// The largest configuration body read (100 rules fit easily).
const MAX_BODY: usize = 256 * 1024;

/// Response headers the server default lets pages read.
const DEFAULT_EXPOSE: &[&str] = &[
    "ETag",
    "Content-Length",
    "Content-Range",
    "Accept-Ranges",
    "Last-Modified",
    "x-amz-request-id",
    "x-amz-version-id",
    "x-amz-delete-marker",
    "x-amz-checksum-crc32",
    "x-amz-checksum-crc32c",
    "x-amz-checksum-crc64nvme",
    "x-amz-checksum-sha1",
    "x-amz-checksum-sha256",
];

#[derive(Serialize, Deserialize, Default)]
#[serde(rename = "CORSConfiguration")]
struct CorsXml {
    #[serde(rename = "@xmlns", default, skip_deserializing)]
    xmlns: &'static str,
    #[serde(rename = "CORSRule", default)]
    rules: Vec<RuleXml>,
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct RuleXml {
    #[serde(rename = "ID", default, skip_serializing_if = "Option::is_none")]
    id: Option<String>,
    #[serde(rename = "AllowedHeader", default)]
    headers: Vec<String>,
    #[serde(rename = "AllowedMethod", default)]
    methods: Vec<String>,
    #[serde(rename = "AllowedOrigin", default)]
    origins: Vec<String>,
    #[serde(rename = "ExposeHeader", default)]
    expose: Vec<String>,
    #[serde(
        rename = "MaxAgeSeconds",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    max_age: Option<u64>,
}

/// Parse and validate a PutBucketCors body.
fn parse(text: &str) -> Result<Cors, S3Error> {
    let x: CorsXml = xml::from_xml(text, "CORSConfiguration")?;
    let trim = |v: Vec<String>| v.into_iter().map(|s| s.trim().to_string()).collect();
    let cors = Cors {
        rules: x
            .rules
            .into_iter()
            .map(|r| CorsRule {
                id: r.id,
                origins: trim(r.origins),
                methods: trim(r.methods),
                headers: trim(r.headers),
                expose: trim(r.expose),
                max_age: r.max_age,
            })
            .collect(),
    };
    cors.validate().map_err(S3Error::invalid_request)?;
    Ok(cors)
}

fn no_configuration() -> S3Error {
    S3Error::new(
        "NoSuchCORSConfiguration",
        StatusCode::NOT_FOUND,
        "The CORS configuration does not exist",
    )
}

pub async fn get(state: &S3State, ctx: &Ctx) -> Result<Response<Body>, S3Error> {
    let b = bucket(state, ctx).await?;
    let Some(cors) = &b.config.cors else {
        return Err(no_configuration());
    };
    xml_response(&CorsXml {
        xmlns: NS,
        rules: cors
            .rules
            .iter()
            .map(|r| RuleXml {
                id: r.id.clone(),
                headers: r.headers.clone(),
                methods: r.methods.clone(),
                origins: r.origins.clone(),
                expose: r.expose.clone(),
                max_age: r.max_age,
            })
            .collect(),
    })
}

pub async fn put(state: &S3State, ctx: &Ctx, body: Body) -> Result<Response<Body>, S3Error> {
    put_config(state, ctx, body, MAX_BODY, parse, |c, v| c.cors = Some(v)).await
}

pub async fn delete(state: &S3State, ctx: &Ctx) -> Result<Response<Body>, S3Error> {
    delete_config(state, ctx, |c| c.cors = None).await
}

/// The server-wide rule for buckets without their own (`CAIRN_CORS_ALLOW_ORIGIN`: a
/// comma-separated list of origins, or `*`): every method, any request header.
pub fn default_rules(allow_origin: &str) -> Option<Cors> {
    let origins: Vec<String> = allow_origin
        .split(',')
        .map(str::trim)
        .filter(|o| !o.is_empty())
        .map(String::from)
        .collect();
    if origins.is_empty() {
        return None;
    }
    let cors = Cors {
        rules: vec![CorsRule {
            id: Some("server-default".into()),
            origins,
            methods: METHODS.iter().map(|m| m.to_string()).collect(),
            headers: vec!["*".into()],
            expose: DEFAULT_EXPOSE.iter().map(|h| h.to_string()).collect(),
            max_age: None,
        }],
    };
    cors.validate().ok().map(|_| cors)
}

/// The rules that apply to `bucket`: its own, else the server's default. From the bucket
/// cache only: unauthenticated preflights never make the drives look up a name (a bucket
/// made on another node is known here within a second).
fn rules_for(state: &S3State, bucket: Option<&str>) -> Option<Cors> {
    if let Some(b) = bucket.and_then(|name| state.store.buckets().cached(name)) {
        if let Some(c) = &b.config.cors {
            return Some(c.clone());
        }
    }
    state.cors_default.clone()
}

fn set(r: &mut Response<Body>, name: &'static str, value: &str) {
    if let Ok(v) = HeaderValue::from_str(value) {
        r.headers_mut().insert(name, v);
    }
}

/// The headers every allowed CORS response carries.
fn allow(r: &mut Response<Body>, rule: &CorsRule, origin: &str) {
    if rule.any_origin() {
        set(r, "access-control-allow-origin", "*");
    } else {
        set(r, "access-control-allow-origin", origin);
        set(r, "access-control-allow-credentials", "true");
    }
    set(r, "access-control-allow-methods", &rule.methods.join(", "));
    if !rule.expose.is_empty() {
        set(r, "access-control-expose-headers", &rule.expose.join(", "));
    }
    if let Some(age) = rule.max_age {
        set(r, "access-control-max-age", &age.to_string());
    }
}

fn forbidden(message: &str) -> S3Error {
    S3Error::new("AccessForbidden", StatusCode::FORBIDDEN, message)
}

/// Answer a preflight `OPTIONS` for `bucket` (none: the service endpoint).
pub async fn preflight(
    state: &S3State,
    bucket: Option<&str>,
    headers: &http::HeaderMap,
) -> Result<Response<Body>, S3Error> {
    let get = |n: &str| headers.get(n).and_then(|v| v.to_str().ok());
    let origin = get("origin").ok_or_else(|| {
        S3Error::new(
            "BadRequest",
            StatusCode::BAD_REQUEST,
            "Insufficient information. Origin request header needed.",
        )
    })?;
    let method = get("access-control-request-method")
        .filter(|m| METHODS.contains(m))
        .ok_or_else(|| {
            S3Error::new(
                "BadRequest",
                StatusCode::BAD_REQUEST,
                format!(
                    "Invalid Access-Control-Request-Method: {}",
                    get("access-control-request-method").unwrap_or("null")
                ),
            )
        })?;
    let asked: Vec<&str> = headers
        .get_all("access-control-request-headers")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(str::trim)
        .filter(|h| !h.is_empty())
        .collect();
    let Some(cors) = rules_for(state, bucket) else {
        return Err(forbidden(
            "CORSResponse: CORS is not enabled for this bucket.",
        ));
    };
    let Some(rule) = cors.matching(origin, method, &asked) else {
        return Err(forbidden("CORSResponse: This CORS request is not allowed. This is usually because the evaluation of Origin, request method / Access-Control-Request-Method or Access-Control-Request-Headers are not whitelisted by the resource's CORS spec."));
    };
    let mut r = empty(StatusCode::OK);
    allow(&mut r, rule, origin);
    if !asked.is_empty() {
        set(&mut r, "access-control-allow-headers", &asked.join(", "));
    }
    set(
        &mut r,
        "vary",
        "Origin, Access-Control-Request-Headers, Access-Control-Request-Method",
    );
    Ok(r)
}

/// CORS headers on the answer to an actual request from `origin` (errors included, so a
/// page can read them).
pub fn decorate(
    state: &S3State,
    bucket: Option<&str>,
    origin: &str,
    method: &Method,
    r: &mut Response<Body>,
) {
    let Some(cors) = rules_for(state, bucket) else {
        return;
    };
    r.headers_mut()
        .append("vary", HeaderValue::from_static("Origin"));
    if let Some(rule) = cors.matching(origin, method.as_str(), &[]) {
        allow(r, rule, origin);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn configuration_round_trip_and_errors() {
        let text = r#"<CORSConfiguration xmlns="http://s3.amazonaws.com/doc/2006-03-01/">
            <CORSRule><ID>web</ID><AllowedOrigin>https://*.example.com</AllowedOrigin>
            <AllowedMethod>GET</AllowedMethod><AllowedMethod>PUT</AllowedMethod>
            <AllowedHeader>*</AllowedHeader><ExposeHeader>ETag</ExposeHeader>
            <MaxAgeSeconds>3000</MaxAgeSeconds></CORSRule>
            <CORSRule><AllowedOrigin>*</AllowedOrigin><AllowedMethod>GET</AllowedMethod></CORSRule>
            </CORSConfiguration>"#;
        let cors = parse(text).expect("valid");
        assert_eq!(cors.rules.len(), 2);
        assert_eq!(cors.rules[0].max_age, Some(3000));
        assert_eq!(cors.rules[0].methods, ["GET", "PUT"]);
        let code = |t: &str| parse(t).err().map(|e| e.code);
        assert_eq!(
            code("<CORSConfiguration><CORSRule><AllowedOrigin>*</AllowedOrigin><AllowedMethod>PATCH</AllowedMethod></CORSRule></CORSConfiguration>"),
            Some("InvalidRequest")
        );
        assert_eq!(
            code("<CORSConfiguration><CORSRule><AllowedOrigin>*</AllowedOrigin><AllowedMethod>GET</AllowedMethod><Colour>red</Colour></CORSRule></CORSConfiguration>"),
            Some("MalformedXML")
        );
        assert_eq!(
            code("<CORSConfiguration></CORSConfiguration>"),
            Some("InvalidRequest")
        );
        assert_eq!(code("not xml"), Some("MalformedXML"));
    }

    #[test]
    fn server_default() {
        assert!(default_rules("").is_none());
        assert!(default_rules(" , ").is_none());
        let d = default_rules("https://a.example, https://b.example").expect("rules");
        assert_eq!(
            d.rules[0].origins,
            ["https://a.example", "https://b.example"]
        );
        assert!(d
            .matching("https://b.example", "DELETE", &["x-amz-date"])
            .is_some());
        assert!(d.matching("https://c.example", "GET", &[]).is_none());
        assert!(default_rules("*").expect("any").rules[0].any_origin());
    }
}
