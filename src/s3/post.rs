//! Browser form uploads (POST Object, `POST /bucket` with a `multipart/form-data` body): the
//! form fields before `file` are read (bounded), the form's signature over its policy is
//! checked (or the form is anonymous), the policy's expiration and conditions are enforced,
//! and the file is streamed into an ordinary PutObject of the form's key — so ACLs, object
//! lock, quotas, checksums and feature refusals are exactly PutObject's.

use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::Arc;

use axum::body::Body;
use base64::Engine;
use futures::StreamExt;
use http::{HeaderValue, Response, StatusCode};
use serde::Serialize;

use super::error::S3Error;
use super::router::{Op, Target};
use super::xml::NS;
use super::{authz, features, object, xml_response, Ctx, S3State};
use crate::auth::post::{field, verify_form};
use crate::auth::RequestParts;

/// Limits on the form fields before the file (the file itself is bounded like PutObject).
const MAX_FIELD: usize = 64 * 1024;
const MAX_FIELDS_TOTAL: usize = 1024 * 1024;

/// Fields that are never policy conditions.
fn exempt(name: &str) -> bool {
    let n = name.to_ascii_lowercase();
    matches!(
        n.as_str(),
        "x-amz-signature" | "signature" | "awsaccesskeyid" | "policy" | "file"
    ) || n.starts_with("x-ignore-")
}

fn malformed(message: &str) -> S3Error {
    S3Error::new("MalformedPOSTRequest", StatusCode::BAD_REQUEST, message)
}

fn policy_denied(why: &str) -> S3Error {
    S3Error::new(
        "AccessDenied",
        StatusCode::FORBIDDEN,
        format!("Invalid according to Policy: {why}"),
    )
}

fn invalid_policy(why: &str) -> S3Error {
    S3Error::new(
        "InvalidPolicyDocument",
        StatusCode::BAD_REQUEST,
        format!("Invalid Policy: {why}"),
    )
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Condition {
    /// The field (lower-case name, without `$`) equals the value.
    Eq(String, String),
    StartsWith(String, String),
    LengthRange(u64, u64),
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct PostPolicy {
    /// Seconds since the epoch.
    expiration: i64,
    conditions: Vec<Condition>,
}

/// Decode and parse a base64 policy document.
fn parse_policy(b64: &str) -> Result<PostPolicy, S3Error> {
    let raw = base64::engine::general_purpose::STANDARD
        .decode(b64.trim())
        .map_err(|_| invalid_policy("Policy could not be base64-decoded."))?;
    let doc: serde_json::Value =
        serde_json::from_slice(&raw).map_err(|_| invalid_policy("Invalid JSON."))?;
    let expiration = doc
        .get("expiration")
        .and_then(|e| e.as_str())
        .ok_or_else(|| invalid_policy("Policy missing expiration."))?;
    let expiration = time::OffsetDateTime::parse(
        expiration,
        &time::format_description::well_known::Iso8601::DEFAULT,
    )
    .map_err(|_| invalid_policy("Invalid 'expiration' value."))?
    .unix_timestamp();
    let name = |v: &serde_json::Value| {
        v.as_str()
            .map(|s| s.trim_start_matches('$').to_ascii_lowercase())
            .ok_or_else(|| invalid_policy("Condition field names must be strings."))
    };
    let text = |v: &serde_json::Value| {
        v.as_str()
            .map(String::from)
            .ok_or_else(|| invalid_policy("Condition values must be strings."))
    };
    let number = |v: &serde_json::Value| {
        v.as_u64()
            .or_else(|| v.as_str().and_then(|s| s.parse().ok()))
            .ok_or_else(|| invalid_policy("content-length-range bounds must be numbers."))
    };
    let mut conditions = Vec::new();
    for c in doc
        .get("conditions")
        .and_then(|c| c.as_array())
        .ok_or_else(|| invalid_policy("Policy missing conditions."))?
    {
        match c {
            serde_json::Value::Object(m) => {
                for (k, v) in m {
                    conditions.push(Condition::Eq(k.to_ascii_lowercase(), text(v)?));
                }
            }
            serde_json::Value::Array(a) if a.len() == 3 => {
                let op = a[0].as_str().unwrap_or_default().to_ascii_lowercase();
                conditions.push(match op.as_str() {
                    "eq" => Condition::Eq(name(&a[1])?, text(&a[2])?),
                    "starts-with" => Condition::StartsWith(name(&a[1])?, text(&a[2])?),
                    "content-length-range" => {
                        let (min, max) = (number(&a[1])?, number(&a[2])?);
                        if min > max {
                            return Err(invalid_policy("content-length-range min is above max."));
                        }
                        Condition::LengthRange(min, max)
                    }
                    _ => return Err(invalid_policy(&format!("Unknown condition '{op}'."))),
                });
            }
            _ => return Err(invalid_policy("Invalid condition.")),
        }
    }
    Ok(PostPolicy {
        expiration,
        conditions,
    })
}

impl PostPolicy {
    /// Enforce the policy on the form's fields (`bucket` is the addressed bucket); returns
    /// the allowed content-length range.
    fn check(
        &self,
        now_secs: i64,
        fields: &[(String, String)],
        bucket: &str,
    ) -> Result<Option<(u64, u64)>, S3Error> {
        if now_secs >= self.expiration {
            return Err(policy_denied("Policy expired."));
        }
        let value = |n: &str| {
            if n == "bucket" {
                Some(bucket)
            } else {
                field(fields, n)
            }
        };
        let mut range = None;
        for c in &self.conditions {
            let ok = match c {
                Condition::Eq(n, want) => value(n) == Some(want.as_str()),
                Condition::StartsWith(n, prefix) => {
                    let v = value(n).unwrap_or_default();
                    // Content-Type may list several values; each must match.
                    if n == "content-type" {
                        v.split(',').all(|p| p.trim().starts_with(prefix.as_str()))
                    } else {
                        v.starts_with(prefix.as_str())
                    }
                }
                Condition::LengthRange(min, max) => {
                    range = Some((*min, *max));
                    true
                }
            };
            if !ok {
                return Err(policy_denied(&format!(
                    "Policy Condition failed: {}",
                    describe(c)
                )));
            }
        }
        // Every field the client filled in must be allowed by a condition.
        let named = |n: &str| {
            self.conditions.iter().any(|c| match c {
                Condition::Eq(f, _) | Condition::StartsWith(f, _) => f.eq_ignore_ascii_case(n),
                Condition::LengthRange(..) => false,
            })
        };
        if let Some((n, _)) = fields.iter().find(|(n, _)| !exempt(n) && !named(n)) {
            return Err(policy_denied(&format!("Extra input fields: {n}")));
        }
        Ok(range)
    }
}

fn describe(c: &Condition) -> String {
    match c {
        Condition::Eq(n, v) => format!("[\"eq\", \"${n}\", \"{v}\"]"),
        Condition::StartsWith(n, v) => format!("[\"starts-with\", \"${n}\", \"{v}\"]"),
        Condition::LengthRange(a, b) => format!("[\"content-length-range\", {a}, {b}]"),
    }
}

/// The request headers of the PutObject a form stands for.
fn put_headers(fields: &[(String, String)], file_type: Option<&str>) -> Vec<(String, String)> {
    let mut out: Vec<(String, String)> = Vec::new();
    for (name, value) in fields {
        let n = name.to_ascii_lowercase();
        let header = match n.as_str() {
            "acl" => "x-amz-acl".to_string(),
            "content-type"
            | "cache-control"
            | "content-disposition"
            | "content-encoding"
            | "content-language"
            | "expires" => n,
            // An empty field asks for no check (a form with the input left blank).
            "content-md5" if value.trim().is_empty() => continue,
            "content-md5" => n,
            _ if n.starts_with("x-amz-") && !n.starts_with("x-amz-signature") => n,
            _ => continue,
        };
        out.push((header, value.clone()));
    }
    if !out.iter().any(|(n, _)| n == "content-type") {
        if let Some(t) = file_type {
            out.push(("content-type".into(), t.to_string()));
        }
    }
    out
}

#[derive(Serialize)]
#[serde(rename = "PostResponse")]
struct PostResponseXml {
    #[serde(rename = "@xmlns")]
    xmlns: &'static str,
    #[serde(rename = "Location")]
    location: String,
    #[serde(rename = "Bucket")]
    bucket: String,
    #[serde(rename = "Key")]
    key: String,
    #[serde(rename = "ETag")]
    etag: String,
}

/// Why a length-checked file stream failed.
const TOO_LARGE: u8 = 1;
const TOO_SMALL: u8 = 2;

pub async fn post_object(state: &S3State, ctx: Ctx, body: Body) -> Result<Response<Body>, S3Error> {
    let bucket = ctx
        .target
        .bucket
        .clone()
        .ok_or_else(|| S3Error::invalid_request("missing bucket"))?;
    let boundary = ctx
        .header("content-type")
        .and_then(|t| multer::parse_boundary(t).ok())
        .ok_or_else(|| {
            malformed("The body of your POST request is not well-formed multipart/form-data.")
        })?;
    let mut form = multer::Multipart::new(body.into_data_stream(), boundary);
    let mut fields: Vec<(String, String)> = Vec::new();
    let mut total = 0usize;
    let file = loop {
        let next = form.next_field().await.map_err(|_| {
            malformed("The body of your POST request is not well-formed multipart/form-data.")
        })?;
        let Some(mut f) = next else {
            return Err(S3Error::invalid_argument(
                "POST requires exactly one file upload per request.",
            ));
        };
        let name = f.name().unwrap_or_default().to_string();
        if name.eq_ignore_ascii_case("file") {
            break f;
        }
        let mut value = Vec::new();
        while let Some(chunk) = f.chunk().await.map_err(|_| {
            malformed("The body of your POST request is not well-formed multipart/form-data.")
        })? {
            value.extend_from_slice(&chunk);
            total = total.saturating_add(chunk.len());
            if value.len() > MAX_FIELD || total > MAX_FIELDS_TOTAL {
                return Err(malformed(
                    "Your POST request fields preceding the upload file were too large.",
                ));
            }
        }
        let value =
            String::from_utf8(value).map_err(|_| malformed("Form fields must be UTF-8 text."))?;
        fields.push((name, value));
    };
    let verified = verify_form(&fields, state.iam.as_ref(), &state.region)?;
    let token_header: Vec<(String, String)> = field(&fields, "x-amz-security-token")
        .map(|t| vec![("x-amz-security-token".to_string(), t.to_string())])
        .unwrap_or_default();
    let identity = super::identify(
        state,
        &verified,
        &RequestParts {
            method: "POST",
            raw_path: "/",
            raw_query: "",
            headers: &token_header,
            host_bucket: None,
        },
    )?;
    let policy = match field(&fields, "policy") {
        Some(p) => Some(parse_policy(p)?),
        None => None,
    };
    let range = match &policy {
        Some(p) => p.check(ctx.now_secs, &fields, &bucket)?,
        None => None,
    };
    let raw_key = field(&fields, "key").ok_or_else(|| {
        S3Error::invalid_argument("Bucket POST must contain a field named 'key'.  If it is specified, please check the order of the fields.")
    })?;
    let key = raw_key.replace("${filename}", file.file_name().unwrap_or_default());
    if key.is_empty() {
        return Err(S3Error::invalid_argument("The key must not be empty."));
    }
    if field(&fields, "tagging").is_some() {
        return Err(S3Error::not_implemented("Tagging in POST uploads"));
    }
    let mut headers = put_headers(&fields, file.content_type().map(|m| m.essence_str()));
    // The file's length is known only once it has streamed: a PUT of unknown length.
    headers.push(("transfer-encoding".into(), "chunked".into()));
    let put = Ctx {
        method: http::Method::PUT,
        target: Target {
            bucket: Some(bucket.clone()),
            key: Some(key.clone()),
            virtual_host: ctx.target.virtual_host,
        },
        query: Vec::new(),
        headers,
        verified,
        request_id: ctx.request_id.clone(),
        identity,
        client_ip: ctx.client_ip,
        secure: ctx.secure,
        now_secs: ctx.now_secs,
    };
    features::check(Op::PutObject, &put)?;
    match authz::authorize(state, &put, Op::PutObject).await? {
        authz::AclCheck::Done => {}
        authz::AclCheck::Object(need) => authz::object_acl_allows(state, &put, need).await?,
    }
    authz::check_expected_owners(state, &put).await?;
    // The file, held to the policy's content-length-range while it streams.
    let (min, max) = range.unwrap_or((0, u64::MAX));
    let violation = Arc::new(AtomicU8::new(0));
    let flag = violation.clone();
    let mut seen = 0u64;
    let stream = checked_stream(
        Box::pin(file),
        move |chunk: Option<Result<bytes::Bytes, multer::Error>>| match chunk {
            Some(Ok(b)) => {
                seen = seen.saturating_add(b.len() as u64);
                if seen > max {
                    flag.store(TOO_LARGE, Ordering::Relaxed);
                    return Some(Err(std::io::Error::other(
                        "file larger than the policy allows",
                    )));
                }
                Some(Ok(b))
            }
            Some(Err(e)) => Some(Err(std::io::Error::other(e.to_string()))),
            None if seen < min => {
                flag.store(TOO_SMALL, Ordering::Relaxed);
                Some(Err(std::io::Error::other(
                    "file smaller than the policy allows",
                )))
            }
            None => None,
        },
    );
    let result = object::put(state, &put, Body::from_stream(stream)).await;
    let stored = match (result, violation.load(Ordering::Relaxed)) {
        (_, TOO_LARGE) => {
            return Err(S3Error::new(
                "EntityTooLarge",
                StatusCode::BAD_REQUEST,
                "Your proposed upload exceeds the maximum allowed size",
            ))
        }
        (_, TOO_SMALL) => {
            return Err(S3Error::new(
                "EntityTooSmall",
                StatusCode::BAD_REQUEST,
                "Your proposed upload is smaller than the minimum allowed size",
            ))
        }
        (r, _) => r?,
    };
    let etag = stored
        .headers()
        .get("etag")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_string();
    let location = super::object_url(&ctx, &bucket, &key);
    let redirect = field(&fields, "success_action_redirect").or_else(|| field(&fields, "redirect"));
    let mut r = if let Some(url) = redirect.filter(|u| !u.is_empty()) {
        let q = |s: &str| super::bucket::url_encode(s);
        let sep = if url.contains('?') { '&' } else { '?' };
        let target = format!(
            "{url}{sep}bucket={}&key={}&etag={}",
            q(&bucket),
            q(&key),
            q(&etag)
        );
        let mut r = super::empty(StatusCode::SEE_OTHER);
        if let Ok(v) = HeaderValue::from_str(&target) {
            r.headers_mut().insert("location", v);
        }
        r
    } else {
        match field(&fields, "success_action_status") {
            Some("200") => super::empty(StatusCode::OK),
            Some("201") => {
                let mut r = xml_response(&PostResponseXml {
                    xmlns: NS,
                    location: location.clone(),
                    bucket: bucket.clone(),
                    key: key.clone(),
                    etag: etag.clone(),
                })?;
                *r.status_mut() = StatusCode::CREATED;
                r
            }
            _ => super::empty(StatusCode::NO_CONTENT),
        }
    };
    for name in ["etag", "x-amz-version-id"] {
        if let Some(v) = stored.headers().get(name) {
            r.headers_mut().insert(name, v.clone());
        }
    }
    if !r.headers().contains_key("location") {
        if let Ok(v) = HeaderValue::from_str(&location) {
            r.headers_mut().insert("location", v);
        }
    }
    // The upload is a form's: its event says so.
    if let Some(mut changes) = stored.extensions().get::<crate::notify::Changes>().cloned() {
        for c in &mut changes.0 {
            c.event = crate::notify::OBJECT_CREATED_POST;
        }
        r.extensions_mut().insert(changes);
    }
    Ok(r)
}

/// A stream that passes each item of `inner` (and its end, as `None`) through `f`, which
/// may replace it, end the stream (`None`) or add a last item at the end.
fn checked_stream<S, T, F>(inner: S, mut f: F) -> impl futures::Stream<Item = T> + Send
where
    S: futures::Stream + Send + Unpin,
    F: FnMut(Option<S::Item>) -> Option<T> + Send,
{
    let mut inner = Some(inner);
    futures::stream::poll_fn(move |cx| {
        let Some(s) = inner.as_mut() else {
            return std::task::Poll::Ready(None);
        };
        match s.poll_next_unpin(cx) {
            std::task::Poll::Pending => std::task::Poll::Pending,
            std::task::Poll::Ready(Some(item)) => std::task::Poll::Ready(f(Some(item))),
            std::task::Poll::Ready(None) => {
                inner = None;
                std::task::Poll::Ready(f(None))
            }
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn b64(s: &str) -> String {
        base64::engine::general_purpose::STANDARD.encode(s)
    }

    fn fields(f: &[(&str, &str)]) -> Vec<(String, String)> {
        f.iter()
            .map(|(a, b)| (a.to_string(), b.to_string()))
            .collect()
    }

    #[test]
    fn policy_conditions() {
        let p = parse_policy(&b64(
            r#"{"expiration":"2030-01-01T00:00:00.000Z","conditions":[
            {"bucket":"photos"},["starts-with","$key","user/"],{"acl":"public-read"},
            ["content-length-range",1,1048576],["eq","$Content-Type","image/jpeg"],
            ["starts-with","$x-amz-meta-tag",""]]}"#,
        ))
        .expect("policy");
        let now = 1_800_000_000;
        let ok = fields(&[
            ("key", "user/a.jpg"),
            ("acl", "public-read"),
            ("Content-Type", "image/jpeg"),
            ("x-amz-meta-tag", "anything"),
            ("policy", "…"),
            ("x-amz-signature", "…"),
            ("x-ignore-me", "1"),
        ]);
        assert_eq!(p.check(now, &ok, "photos"), Ok(Some((1, 1_048_576))));
        let code = |f: &[(String, String)], b: &str, t: i64| p.check(t, f, b).err().map(|e| e.code);
        assert_eq!(code(&ok, "other", now), Some("AccessDenied"));
        assert_eq!(code(&ok, "photos", 1_893_456_000), Some("AccessDenied"));
        let mut bad_key = ok.clone();
        bad_key[0].1 = "admin/a.jpg".into();
        assert_eq!(code(&bad_key, "photos", now), Some("AccessDenied"));
        let mut extra = ok.clone();
        extra.push(("success_action_status".into(), "201".into()));
        let err = p.check(now, &extra, "photos").expect_err("extra field");
        assert!(
            err.message.contains("Extra input fields"),
            "{}",
            err.message
        );
    }

    #[test]
    fn policy_documents() {
        let code = |doc: &str| parse_policy(&b64(doc)).err().map(|e| e.code);
        assert_eq!(code("not json"), Some("InvalidPolicyDocument"));
        assert_eq!(code(r#"{"conditions":[]}"#), Some("InvalidPolicyDocument"));
        assert_eq!(
            code(r#"{"expiration":"2030-01-01T00:00:00Z","conditions":[["in","$key","a"]]}"#),
            Some("InvalidPolicyDocument")
        );
        assert_eq!(
            code(
                r#"{"expiration":"2030-01-01T00:00:00Z","conditions":[["content-length-range",5,1]]}"#
            ),
            Some("InvalidPolicyDocument")
        );
        assert_eq!(
            parse_policy("%%%").err().map(|e| e.code),
            Some("InvalidPolicyDocument")
        );
    }

    #[test]
    fn form_fields_become_put_headers() {
        let h = put_headers(
            &fields(&[
                ("key", "k"),
                ("ACL", "private"),
                ("Cache-Control", "no-cache"),
                ("Content-MD5", "1B2M2Y8AsgTpgAmY7PhCfg=="),
                ("X-Amz-Meta-Colour", "blue"),
                ("x-amz-signature", "s"),
                ("policy", "p"),
                ("success_action_status", "201"),
            ]),
            Some("image/png"),
        );
        assert_eq!(
            h,
            fields(&[
                ("x-amz-acl", "private"),
                ("cache-control", "no-cache"),
                ("content-md5", "1B2M2Y8AsgTpgAmY7PhCfg=="),
                ("x-amz-meta-colour", "blue"),
                ("content-type", "image/png"),
            ])
        );
    }
}
