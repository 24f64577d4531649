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
    /// The bucket came from the `Host` header (virtual-hosted style).
    pub virtual_host: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    ListBuckets,
    CreateBucket,
    HeadBucket,
    DeleteBucket,
    GetBucketLocation,
    GetBucketVersioning,
    PutBucketVersioning,
    ListObjectVersions,
    GetObjectTagging,
    PutObjectTagging,
    DeleteObjectTagging,
    GetBucketTagging,
    PutBucketTagging,
    DeleteBucketTagging,
    GetObjectLockConfiguration,
    PutObjectLockConfiguration,
    GetObjectRetention,
    PutObjectRetention,
    GetObjectLegalHold,
    PutObjectLegalHold,
    GetObjectAttributes,
    /// A browser form upload (`POST /bucket`, multipart/form-data).
    PostObject,
    GetBucketLifecycle,
    PutBucketLifecycle,
    DeleteBucketLifecycle,
    GetBucketCors,
    PutBucketCors,
    DeleteBucketCors,
    GetBucketEncryption,
    PutBucketEncryption,
    DeleteBucketEncryption,
    GetBucketNotification,
    PutBucketNotification,
    GetAcl,
    PutAcl,
    ListObjects {
        v2: bool,
    },
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
    GetBucketPolicy,
    PutBucketPolicy,
    DeleteBucketPolicy,
    GetBucketPolicyStatus,
    GetPublicAccessBlock,
    PutPublicAccessBlock,
    DeletePublicAccessBlock,
    GetOwnershipControls,
    PutOwnershipControls,
    DeleteOwnershipControls,
    /// STS `POST /` with `Action=AssumeRole`.
    AssumeRole,
}

impl Op {
    /// Every operation the router produces, in the order of [`Op::name`]'s table.
    pub const ALL: [Op; 61] = [
        Op::ListBuckets,
        Op::CreateBucket,
        Op::HeadBucket,
        Op::DeleteBucket,
        Op::GetBucketLocation,
        Op::GetBucketVersioning,
        Op::PutBucketVersioning,
        Op::ListObjectVersions,
        Op::GetObjectTagging,
        Op::PutObjectTagging,
        Op::DeleteObjectTagging,
        Op::GetBucketTagging,
        Op::PutBucketTagging,
        Op::DeleteBucketTagging,
        Op::GetObjectLockConfiguration,
        Op::PutObjectLockConfiguration,
        Op::GetObjectRetention,
        Op::PutObjectRetention,
        Op::GetObjectLegalHold,
        Op::PutObjectLegalHold,
        Op::GetObjectAttributes,
        Op::PostObject,
        Op::GetBucketLifecycle,
        Op::PutBucketLifecycle,
        Op::DeleteBucketLifecycle,
        Op::GetBucketCors,
        Op::PutBucketCors,
        Op::DeleteBucketCors,
        Op::GetBucketEncryption,
        Op::PutBucketEncryption,
        Op::DeleteBucketEncryption,
        Op::GetBucketNotification,
        Op::PutBucketNotification,
        Op::GetAcl,
        Op::PutAcl,
        Op::ListObjects { v2: false },
        Op::ListObjects { v2: true },
        Op::DeleteObjects,
        Op::PutObject,
        Op::CopyObject,
        Op::GetObject,
        Op::HeadObject,
        Op::DeleteObject,
        Op::CreateMultipartUpload,
        Op::UploadPart,
        Op::UploadPartCopy,
        Op::CompleteMultipartUpload,
        Op::AbortMultipartUpload,
        Op::ListParts,
        Op::ListMultipartUploads,
        Op::GetBucketPolicy,
        Op::PutBucketPolicy,
        Op::DeleteBucketPolicy,
        Op::GetBucketPolicyStatus,
        Op::GetPublicAccessBlock,
        Op::PutPublicAccessBlock,
        Op::DeletePublicAccessBlock,
        Op::GetOwnershipControls,
        Op::PutOwnershipControls,
        Op::DeleteOwnershipControls,
        Op::AssumeRole,
    ];

    /// The operation's name (S3's, except `ListObjects`/`ListObjectsV2` and `GetAcl`/`PutAcl`,
    /// which cover buckets and objects).
    pub fn name(self) -> &'static str {
        match self {
            Op::ListObjects { v2: false } => "ListObjects",
            Op::ListObjects { v2: true } => "ListObjectsV2",
            Op::ListBuckets => "ListBuckets",
            Op::CreateBucket => "CreateBucket",
            Op::HeadBucket => "HeadBucket",
            Op::DeleteBucket => "DeleteBucket",
            Op::GetBucketLocation => "GetBucketLocation",
            Op::GetBucketVersioning => "GetBucketVersioning",
            Op::PutBucketVersioning => "PutBucketVersioning",
            Op::ListObjectVersions => "ListObjectVersions",
            Op::GetObjectTagging => "GetObjectTagging",
            Op::PutObjectTagging => "PutObjectTagging",
            Op::DeleteObjectTagging => "DeleteObjectTagging",
            Op::GetBucketTagging => "GetBucketTagging",
            Op::PutBucketTagging => "PutBucketTagging",
            Op::DeleteBucketTagging => "DeleteBucketTagging",
            Op::GetObjectLockConfiguration => "GetObjectLockConfiguration",
            Op::PutObjectLockConfiguration => "PutObjectLockConfiguration",
            Op::GetObjectRetention => "GetObjectRetention",
            Op::PutObjectRetention => "PutObjectRetention",
            Op::GetObjectLegalHold => "GetObjectLegalHold",
            Op::PutObjectLegalHold => "PutObjectLegalHold",
            Op::GetObjectAttributes => "GetObjectAttributes",
            Op::PostObject => "PostObject",
            Op::GetBucketLifecycle => "GetBucketLifecycleConfiguration",
            Op::PutBucketLifecycle => "PutBucketLifecycleConfiguration",
            Op::DeleteBucketLifecycle => "DeleteBucketLifecycle",
            Op::GetBucketCors => "GetBucketCors",
            Op::PutBucketCors => "PutBucketCors",
            Op::DeleteBucketCors => "DeleteBucketCors",
            Op::GetBucketNotification => "GetBucketNotificationConfiguration",
            Op::PutBucketNotification => "PutBucketNotificationConfiguration",
            Op::GetBucketEncryption => "GetBucketEncryption",
            Op::PutBucketEncryption => "PutBucketEncryption",
            Op::DeleteBucketEncryption => "DeleteBucketEncryption",
            Op::GetAcl => "GetAcl",
            Op::PutAcl => "PutAcl",
            Op::DeleteObjects => "DeleteObjects",
            Op::PutObject => "PutObject",
            Op::CopyObject => "CopyObject",
            Op::GetObject => "GetObject",
            Op::HeadObject => "HeadObject",
            Op::DeleteObject => "DeleteObject",
            Op::CreateMultipartUpload => "CreateMultipartUpload",
            Op::UploadPart => "UploadPart",
            Op::UploadPartCopy => "UploadPartCopy",
            Op::CompleteMultipartUpload => "CompleteMultipartUpload",
            Op::AbortMultipartUpload => "AbortMultipartUpload",
            Op::ListParts => "ListParts",
            Op::ListMultipartUploads => "ListMultipartUploads",
            Op::GetBucketPolicy => "GetBucketPolicy",
            Op::PutBucketPolicy => "PutBucketPolicy",
            Op::DeleteBucketPolicy => "DeleteBucketPolicy",
            Op::GetBucketPolicyStatus => "GetBucketPolicyStatus",
            Op::GetPublicAccessBlock => "GetPublicAccessBlock",
            Op::PutPublicAccessBlock => "PutPublicAccessBlock",
            Op::DeletePublicAccessBlock => "DeletePublicAccessBlock",
            Op::GetOwnershipControls => "GetBucketOwnershipControls",
            Op::PutOwnershipControls => "PutBucketOwnershipControls",
            Op::DeleteOwnershipControls => "DeleteBucketOwnershipControls",
            Op::AssumeRole => "AssumeRole",
        }
    }

    /// Position in [`Op::ALL`].
    pub fn index(self) -> usize {
        Op::ALL.iter().position(|o| *o == self).unwrap_or(0)
    }
}

/// S3 subresources Cairn does not implement (yet).
const UNIMPLEMENTED: &[&str] = &[
    "accelerate",
    "analytics",
    "intelligent-tiering",
    "inventory",
    "logging",
    "metadataTable",
    "metrics",
    "replication",
    "requestPayment",
    "restore",
    "select",
    "session",
    "torrent",
    "website",
];

/// Subresources of buckets only: on an object they name nothing.
const BUCKET_ONLY: &[&str] = &[
    "policy",
    "policyStatus",
    "publicAccessBlock",
    "ownershipControls",
    "location",
    "versioning",
    "versions",
    "object-lock",
    "lifecycle",
    "cors",
    "notification",
];

/// Subresources of objects only: on a bucket they name nothing.
const OBJECT_ONLY: &[&str] = &["attributes", "retention", "legal-hold"];

/// Query parameters that select an operation rather than parameterise one. A request
/// carrying one that its method does not act on (`DELETE /b/k?acl`, `PUT /b/k?attributes`)
/// is no operation: it must not fall through to a plain delete, write or bucket creation.
const SELECTORS: &[&str] = &[
    "acl",
    "attributes",
    "cors",
    "delete",
    "encryption",
    "legal-hold",
    "lifecycle",
    "location",
    "notification",
    "object-lock",
    "ownershipControls",
    "policy",
    "policyStatus",
    "publicAccessBlock",
    "retention",
    "tagging",
    "uploadId",
    "uploads",
    "versioning",
    "versions",
];

/// Operations no selector belongs to (see [`SELECTORS`]).
fn plain(op: Op) -> bool {
    matches!(
        op,
        Op::ListObjects { .. }
            | Op::CreateBucket
            | Op::HeadBucket
            | Op::DeleteBucket
            | Op::GetObject
            | Op::HeadObject
            | Op::PutObject
            | Op::CopyObject
            | Op::DeleteObject
    )
}

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
        virtual_host: host_bucket.is_some(),
    })
}

pub fn route(ctx: &Ctx) -> Result<Op, S3Error> {
    let op = select(ctx)?;
    if plain(op) && SELECTORS.iter().any(|s| ctx.has_query(s)) {
        return Err(S3Error::method_not_allowed());
    }
    Ok(op)
}

fn select(ctx: &Ctx) -> Result<Op, S3Error> {
    if let Some(sub) = UNIMPLEMENTED.iter().find(|s| ctx.has_query(s)) {
        return Err(S3Error::not_implemented(&format!(
            "The '{sub}' subresource"
        )));
    }
    if let Some(v) = ctx.query("versionId") {
        super::parse_version(v)?;
    }
    let m = &ctx.method;
    let Some(_) = &ctx.target.bucket else {
        return match *m {
            Method::GET => Ok(Op::ListBuckets),
            Method::POST if ctx.verified.sts || ctx.verified.is_anonymous() => Ok(Op::AssumeRole),
            _ => Err(S3Error::method_not_allowed()),
        };
    };
    let has = |q: &str| ctx.has_query(q);
    let copy = ctx.header("x-amz-copy-source").is_some();
    if ctx.target.key.is_none() {
        if let Some(sub) = OBJECT_ONLY.iter().find(|s| has(s)) {
            return Err(S3Error::invalid_request(format!(
                "The '{sub}' subresource applies to objects, not buckets"
            )));
        }
        return match *m {
            Method::GET if has("policyStatus") => Ok(Op::GetBucketPolicyStatus),
            Method::GET if has("policy") => Ok(Op::GetBucketPolicy),
            Method::PUT if has("policy") => Ok(Op::PutBucketPolicy),
            Method::DELETE if has("policy") => Ok(Op::DeleteBucketPolicy),
            Method::GET if has("publicAccessBlock") => Ok(Op::GetPublicAccessBlock),
            Method::PUT if has("publicAccessBlock") => Ok(Op::PutPublicAccessBlock),
            Method::DELETE if has("publicAccessBlock") => Ok(Op::DeletePublicAccessBlock),
            Method::GET if has("ownershipControls") => Ok(Op::GetOwnershipControls),
            Method::PUT if has("ownershipControls") => Ok(Op::PutOwnershipControls),
            Method::DELETE if has("ownershipControls") => Ok(Op::DeleteOwnershipControls),
            Method::GET if has("location") => Ok(Op::GetBucketLocation),
            Method::GET if has("versioning") => Ok(Op::GetBucketVersioning),
            Method::GET if has("versions") => Ok(Op::ListObjectVersions),
            Method::GET if has("tagging") => Ok(Op::GetBucketTagging),
            Method::PUT if has("tagging") => Ok(Op::PutBucketTagging),
            Method::DELETE if has("tagging") => Ok(Op::DeleteBucketTagging),
            Method::GET if has("object-lock") => Ok(Op::GetObjectLockConfiguration),
            Method::PUT if has("object-lock") => Ok(Op::PutObjectLockConfiguration),
            Method::GET if has("lifecycle") => Ok(Op::GetBucketLifecycle),
            Method::PUT if has("lifecycle") => Ok(Op::PutBucketLifecycle),
            Method::DELETE if has("lifecycle") => Ok(Op::DeleteBucketLifecycle),
            Method::GET if has("cors") => Ok(Op::GetBucketCors),
            Method::PUT if has("cors") => Ok(Op::PutBucketCors),
            Method::DELETE if has("cors") => Ok(Op::DeleteBucketCors),
            Method::GET if has("notification") => Ok(Op::GetBucketNotification),
            Method::PUT if has("notification") => Ok(Op::PutBucketNotification),
            Method::GET if has("encryption") => Ok(Op::GetBucketEncryption),
            Method::PUT if has("encryption") => Ok(Op::PutBucketEncryption),
            Method::DELETE if has("encryption") => Ok(Op::DeleteBucketEncryption),
            Method::GET if has("uploads") => Ok(Op::ListMultipartUploads),
            Method::GET if has("acl") => Ok(Op::GetAcl),
            Method::GET => Ok(Op::ListObjects {
                v2: ctx.query("list-type") == Some("2"),
            }),
            Method::PUT if has("acl") => Ok(Op::PutAcl),
            Method::PUT if has("versioning") => Ok(Op::PutBucketVersioning),
            Method::PUT => Ok(Op::CreateBucket),
            Method::HEAD => Ok(Op::HeadBucket),
            Method::DELETE => Ok(Op::DeleteBucket),
            Method::POST if has("delete") => Ok(Op::DeleteObjects),
            Method::POST if ctx.query.is_empty() => Ok(Op::PostObject),
            Method::POST => Err(S3Error::not_implemented("This POST operation")),
            _ => Err(S3Error::method_not_allowed()),
        };
    }
    if let Some(sub) = BUCKET_ONLY.iter().find(|s| has(s)) {
        return Err(S3Error::invalid_request(format!(
            "The '{sub}' subresource applies to buckets, not objects"
        )));
    }
    let op = match *m {
        Method::GET if has("uploadId") => Ok(Op::ListParts),
        Method::GET if has("acl") => Ok(Op::GetAcl),
        Method::GET if has("tagging") => Ok(Op::GetObjectTagging),
        Method::PUT if has("tagging") && !has("uploadId") => Ok(Op::PutObjectTagging),
        Method::DELETE if has("tagging") => Ok(Op::DeleteObjectTagging),
        Method::GET if has("retention") => Ok(Op::GetObjectRetention),
        Method::PUT if has("retention") => Ok(Op::PutObjectRetention),
        Method::GET if has("legal-hold") => Ok(Op::GetObjectLegalHold),
        Method::GET if has("attributes") => Ok(Op::GetObjectAttributes),
        Method::PUT if has("legal-hold") => Ok(Op::PutObjectLegalHold),
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
    }?;
    // A version id where the operation has no versions to choose from would be ignored:
    // refused instead (`null`, the only version of an unversioned object, is accepted).
    if ctx.query("versionId").is_some_and(|v| v != "null") && !takes_version(op) {
        return Err(S3Error::invalid_argument(
            "This operation does not take a version id",
        ));
    }
    Ok(op)
}

/// Object operations that act on the version `versionId` names.
fn takes_version(op: Op) -> bool {
    matches!(
        op,
        Op::GetObject
            | Op::HeadObject
            | Op::DeleteObject
            | Op::GetAcl
            | Op::PutAcl
            | Op::GetObjectTagging
            | Op::PutObjectTagging
            | Op::DeleteObjectTagging
            | Op::GetObjectRetention
            | Op::PutObjectRetention
            | Op::GetObjectLegalHold
            | Op::PutObjectLegalHold
            | Op::GetObjectAttributes
    )
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
                sts: false,
            },
            request_id: "r".into(),
            identity: None,
            client_ip: None,
            secure: false,
            now_secs: 0,
        }
    }

    #[test]
    fn targets() {
        assert_eq!(
            target("/", None).expect("ok"),
            Target {
                bucket: None,
                key: None,
                virtual_host: false,
            }
        );
        assert_eq!(
            target("/b/a%2Fb//c", None).expect("ok"),
            Target {
                bucket: Some("b".into()),
                key: Some("a/b//c".into()),
                virtual_host: false,
            }
        );
        assert_eq!(
            target("/b/", None).expect("ok"),
            Target {
                bucket: Some("b".into()),
                key: None,
                virtual_host: false,
            }
        );
        assert_eq!(
            target("/k%20x", Some("vb")).expect("ok"),
            Target {
                bucket: Some("vb".into()),
                key: Some("k x".into()),
                virtual_host: true,
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
            r(Method::GET, "/b", &[("cors", "")], &[]),
            Ok(Op::GetBucketCors)
        );
        assert_eq!(
            r(Method::GET, "/b", &[("website", "")], &[]).map_err(|e| e.code),
            Err("NotImplemented")
        );
        assert_eq!(
            r(Method::GET, "/b/k", &[("attributes", "")], &[]),
            Ok(Op::GetObjectAttributes)
        );
        assert_eq!(
            r(Method::GET, "/b", &[("attributes", "")], &[]).map_err(|e| e.code),
            Err("InvalidRequest")
        );
        assert_eq!(
            r(Method::PUT, "/b/k", &[("tagging", "")], &[]),
            Ok(Op::PutObjectTagging)
        );
        assert_eq!(
            r(Method::DELETE, "/b", &[("tagging", "")], &[]),
            Ok(Op::DeleteBucketTagging)
        );
        assert_eq!(
            r(Method::GET, "/b", &[("versions", "")], &[]),
            Ok(Op::ListObjectVersions)
        );
        // A selector its method does not act on is no operation: never a plain delete,
        // write or bucket creation.
        for (m, p, q) in [
            (Method::DELETE, "/b/k", "acl"),
            (Method::DELETE, "/b/k", "legal-hold"),
            (Method::DELETE, "/b/k", "retention"),
            (Method::DELETE, "/b", "versioning"),
            (Method::DELETE, "/b", "uploads"),
            (Method::DELETE, "/b", "uploadId"),
            (Method::PUT, "/b/k", "attributes"),
            (Method::PUT, "/b/k", "uploads"),
            (Method::PUT, "/b", "location"),
            (Method::PUT, "/b", "versions"),
            (Method::HEAD, "/b/k", "acl"),
            (Method::GET, "/b", "delete"),
        ] {
            assert_eq!(
                r(m.clone(), p, &[(q, "")], &[]).map_err(|e| e.code),
                Err("MethodNotAllowed"),
                "{m} {p}?{q}"
            );
        }
        let id = "0190a1b2c3d4e5f60718293a4b5c6d7e";
        assert_eq!(
            r(Method::GET, "/b/k", &[("versionId", id)], &[]),
            Ok(Op::GetObject)
        );
        // A version id where the operation has none to choose is refused, not ignored.
        assert_eq!(
            r(
                Method::GET,
                "/b/k",
                &[("uploadId", "u"), ("versionId", id)],
                &[]
            )
            .map_err(|e| e.code),
            Err("InvalidArgument")
        );
        assert_eq!(
            r(Method::GET, "/b/k", &[("versionId", "nope")], &[]).map_err(|e| e.code),
            Err("InvalidArgument")
        );
        assert_eq!(
            r(Method::GET, "/b/k", &[("versions", "")], &[]).map_err(|e| e.code),
            Err("InvalidRequest")
        );
        assert_eq!(
            r(Method::PATCH, "/b/k", &[], &[]).map_err(|e| e.code),
            Err("MethodNotAllowed")
        );
    }

    /// docs/s3-compatibility.md lists every operation the router produces as supported or
    /// partial, and nothing else as such.
    #[test]
    fn compatibility_table_matches_the_router() {
        let doc = include_str!("../../docs/s3-compatibility.md");
        let table = doc
            .split("## Operations")
            .nth(1)
            .and_then(|t| t.split("\n## ").next())
            .expect("an Operations section");
        let mut listed = std::collections::BTreeMap::new();
        for row in table
            .lines()
            .filter(|l| l.starts_with("| ") && !l.starts_with("| operation"))
        {
            let cells: Vec<&str> = row.split('|').map(str::trim).collect();
            let (names, status) = (cells[1], cells[2]);
            assert!(
                ["supported", "partial", "NotImplemented"].contains(&status),
                "{row}"
            );
            for name in names.split(", ") {
                let name = name.split(" (").next().unwrap_or(name).trim();
                assert!(
                    listed.insert(name.to_string(), status).is_none(),
                    "{name} twice"
                );
            }
        }
        // The router's names, with the ACL operations split into bucket and object.
        let mut routed: Vec<&str> = Op::ALL
            .iter()
            .flat_map(|op| match op {
                Op::GetAcl => vec!["GetBucketAcl", "GetObjectAcl"],
                Op::PutAcl => vec!["PutBucketAcl", "PutObjectAcl"],
                op => vec![op.name()],
            })
            .collect();
        routed.sort_unstable();
        for name in &routed {
            let status = listed
                .get(*name)
                .unwrap_or_else(|| panic!("{name} is not in the table"));
            assert!(
                *status != "NotImplemented",
                "{name} is routed but listed NotImplemented"
            );
        }
        for (name, status) in &listed {
            if *status != "NotImplemented" {
                assert!(
                    routed.contains(&name.as_str()),
                    "{name} is listed {status} but not routed"
                );
            }
        }
        // Every subresource refused as unimplemented is named in the table.
        for sub in UNIMPLEMENTED {
            assert!(
                table.contains(&format!("`?{sub}`")),
                "?{sub} missing from the table"
            );
        }
    }
}
