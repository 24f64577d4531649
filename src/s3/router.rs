//! Typed routing: a request's method, target and query become one [`Op`] before any handler
//! runs. Subresources we do not implement answer `NotImplemented`, never a silent success.

use http::Method;

use super::error::S3Error;
use super::Ctx;

/// Bucket and key a request addresses (decoded).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    pub bucket: Option<String>,
    pub key: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    ListBuckets,
    CreateBucket,
    HeadBucket,
    DeleteBucket,
    GetBucketLocation,
    GetBucketVersioning,
    GetAcl,
    PutAcl,
    ListObjects { v2: bool },
    DeleteObjects,
    PutObject,
    CopyObject,
    GetObject,
    HeadObject,
    DeleteObject,
    CreateMultipartUpload,
    UploadPart,
    UploadPartCopy,
    CompleteMultipartUpload,
    AbortMultipartUpload,
    ListParts,
    ListMultipartUploads,
}

/// S3 subresources Cairn does not implement (yet).
const UNIMPLEMENTED: &[&str] = &[
    "accelerate",
    "analytics",
    "attributes",
    "cors",
    "encryption",
    "intelligent-tiering",
    "inventory",
    "legal-hold",
    "lifecycle",
    "logging",
    "metadataTable",
    "metrics",
    "notification",
    "object-lock",
    "ownershipControls",
    "policy",
    "policyStatus",
    "publicAccessBlock",
    "replication",
    "requestPayment",
    "restore",
    "retention",
    "select",
    "session",
    "tagging",
    "torrent",
    "versions",
    "website",
];

/// Split a raw path (and an optional virtual-host bucket) into bucket and key.
pub fn target(raw_path: &str, host_bucket: Option<&str>) -> Result<Target, S3Error> {
    let decoded = percent_encoding::percent_decode_str(raw_path)
        .decode_utf8()
        .map_err(|_| S3Error::invalid_argument("the request path is not valid UTF-8"))?;
    let path = decoded.strip_prefix('/').unwrap_or(&decoded);
    let (bucket, key) = match host_bucket {
        Some(b) => (Some(b.to_string()), path),
        None => match path.split_once('/') {
            Some((b, k)) => (Some(b.to_string()), k),
            None if path.is_empty() => (None, ""),
            None => (Some(path.to_string()), ""),
        },
    };
    Ok(Target {
        bucket,
        key: (!key.is_empty()).then(|| key.to_string()),
    })
}

pub fn route(ctx: &Ctx) -> Result<Op, S3Error> {
    if let Some(sub) = UNIMPLEMENTED.iter().find(|s| ctx.has_query(s)) {
        return Err(S3Error::not_implemented(&format!(
            "The '{sub}' subresource"
        )));
    }
    if let Some(v) = ctx.query("versionId") {
        if v != "null" {
            return Err(S3Error::invalid_argument("Invalid version id specified"));
        }
    }
    let m = &ctx.method;
    let Some(_) = &ctx.target.bucket else {
        return match *m {
            Method::GET => Ok(Op::ListBuckets),
            _ => Err(S3Error::method_not_allowed()),
        };
    };
    let has = |q: &str| ctx.has_query(q);
    let copy = ctx.header("x-amz-copy-source").is_some();
    if ctx.target.key.is_none() {
        return match *m {
            Method::GET if has("location") => Ok(Op::GetBucketLocation),
            Method::GET if has("versioning") => Ok(Op::GetBucketVersioning),
            Method::GET if has("uploads") => Ok(Op::ListMultipartUploads),
            Method::GET if has("acl") => Ok(Op::GetAcl),
            Method::GET => Ok(Op::ListObjects {
                v2: ctx.query("list-type") == Some("2"),
            }),
            Method::PUT if has("acl") => Ok(Op::PutAcl),
            Method::PUT if has("versioning") => Err(S3Error::not_implemented("Bucket versioning")),
            Method::PUT => Ok(Op::CreateBucket),
            Method::HEAD => Ok(Op::HeadBucket),
            Method::DELETE => Ok(Op::DeleteBucket),
            Method::POST if has("delete") => Ok(Op::DeleteObjects),
            Method::POST => Err(S3Error::not_implemented("POST object (browser upload)")),
            _ => Err(S3Error::method_not_allowed()),
        };
    }
    match *m {
        Method::GET if has("uploadId") => Ok(Op::ListParts),
        Method::GET if has("acl") => Ok(Op::GetAcl),
        Method::GET => Ok(Op::GetObject),
        Method::HEAD => Ok(Op::HeadObject),
        Method::PUT if has("uploadId") || has("partNumber") => {
            if !(has("uploadId") && has("partNumber")) {
                return Err(S3Error::invalid_argument(
                    "UploadPart needs both partNumber and uploadId",
                ));
            }
            Ok(if copy {
                Op::UploadPartCopy
            } else {
                Op::UploadPart
            })
        }
        Method::PUT if has("acl") => Ok(Op::PutAcl),
        Method::PUT if copy => Ok(Op::CopyObject),
        Method::PUT => Ok(Op::PutObject),
        Method::DELETE if has("uploadId") => Ok(Op::AbortMultipartUpload),
        Method::DELETE => Ok(Op::DeleteObject),
        Method::POST if has("uploads") => Ok(Op::CreateMultipartUpload),
        Method::POST if has("uploadId") => Ok(Op::CompleteMultipartUpload),
        Method::POST => Err(S3Error::not_implemented("This POST operation")),
        _ => Err(S3Error::method_not_allowed()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::auth::{Payload, Verified};

    fn ctx(method: Method, path: &str, query: &[(&str, &str)], headers: &[(&str, &str)]) -> Ctx {
        Ctx {
            method,
            target: target(path, None).expect("target"),
            query: query
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            headers: headers
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            verified: Verified {
                access_key: "k".into(),
                payload: Payload::Unsigned,
            },
            request_id: "r".into(),
        }
    }

    #[test]
    fn targets() {
        assert_eq!(
            target("/", None).expect("ok"),
            Target {
                bucket: None,
                key: None
            }
        );
        assert_eq!(
            target("/b/a%2Fb//c", None).expect("ok"),
            Target {
                bucket: Some("b".into()),
                key: Some("a/b//c".into())
            }
        );
        assert_eq!(
            target("/b/", None).expect("ok"),
            Target {
                bucket: Some("b".into()),
                key: None
            }
        );
        assert_eq!(
            target("/k%20x", Some("vb")).expect("ok"),
            Target {
                bucket: Some("vb".into()),
                key: Some("k x".into())
            }
        );
        assert!(target("/b/%ff", None).is_err());
    }

    #[test]
    fn routes() {
        let r =
            |m: Method, p: &str, q: &[(&str, &str)], h: &[(&str, &str)]| route(&ctx(m, p, q, h));
        assert_eq!(r(Method::GET, "/", &[], &[]), Ok(Op::ListBuckets));
        assert_eq!(
            r(Method::GET, "/b", &[("list-type", "2")], &[]),
            Ok(Op::ListObjects { v2: true })
        );
        assert_eq!(
            r(Method::PUT, "/b/k", &[], &[("x-amz-copy-source", "/a/b")]),
            Ok(Op::CopyObject)
        );
        assert_eq!(
            r(
                Method::PUT,
                "/b/k",
                &[("partNumber", "1"), ("uploadId", "u")],
                &[]
            ),
            Ok(Op::UploadPart)
        );
        assert_eq!(
            r(Method::POST, "/b/k", &[("uploads", "")], &[]),
            Ok(Op::CreateMultipartUpload)
        );
        assert_eq!(
            r(Method::POST, "/b", &[("delete", "")], &[]),
            Ok(Op::DeleteObjects)
        );
        assert_eq!(
            r(Method::GET, "/b", &[("cors", "")], &[]).map_err(|e| e.code),
            Err("NotImplemented")
        );
        assert_eq!(
            r(Method::PUT, "/b/k", &[("tagging", "")], &[]).map_err(|e| e.code),
            Err("NotImplemented")
        );
        assert_eq!(
            r(Method::PATCH, "/b/k", &[], &[]).map_err(|e| e.code),
            Err("MethodNotAllowed")
        );
    }
}
