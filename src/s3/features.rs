//! Which feature-carrying request headers Cairn honours, per operation. A header an
//! operation can carry (per the S3 API) but Cairn does not honour there is refused with the
//! S3 error — never stored without, never ignored. Subresources are decided in
//! [`super::router`]; this table covers headers.
//!
//! Headers that only describe the request (signing, content length, SDK telemetry) are not
//! features and are not listed. Neither are headers an operation cannot carry (S3 itself
//! ignores those), except where S3 refuses them: SSE-S3/KMS headers on reads and parts
//! ([`Refusal::NotForThisOperation`]).

use http::StatusCode;

use super::error::S3Error;
use super::router::Op;
use super::Ctx;
use crate::object::WriteCondition;

/// How a refusal is answered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    NotImplemented,
    InvalidStorageClass,
    /// The feature exists but the operation takes no such header (AWS: 400
    /// `InvalidArgument`, "... header is not supported for this operation").
    NotForThisOperation,
}

/// One feature header: where S3 lets it appear, and where Cairn honours it.
#[derive(Debug)]
pub struct Feature {
    /// Lower-case header name.
    pub header: &'static str,
    /// What the header asks for, for the error message.
    pub what: &'static str,
    /// Operations whose requests can carry it.
    pub carried_by: &'static [Op],
    /// Of those, the operations that honour it (their handlers read and act on it).
    pub honoured_by: &'static [Op],
    /// Values that ask for nothing beyond what Cairn does anyway, accepted wherever the
    /// header is carried (compared case-sensitively, as S3 does).
    pub neutral: &'static [&'static str],
    pub refusal: Refusal,
}

use Op::*;

/// Writes that create an object from scratch and carry its settings.
const OBJECT_WRITES: &[Op] = &[PutObject, CopyObject, CreateMultipartUpload];
/// Requests that carry SSE-C key headers for the object they address.
const SSE_C: &[Op] = &[
    GetObject,
    HeadObject,
    GetObjectAttributes,
    PutObject,
    CopyObject,
    CreateMultipartUpload,
    UploadPart,
    UploadPartCopy,
    CompleteMultipartUpload,
    ListParts,
];
/// The SSE-C headers of a copy's source.
const SSE_C_SOURCE: &[Op] = &[CopyObject, UploadPartCopy];
const ACL_CARRIERS: &[Op] = &[
    CreateBucket,
    PutObject,
    CopyObject,
    CreateMultipartUpload,
    PutAcl,
];
const CONDITIONAL_READS: &[Op] = &[GetObject, HeadObject];
/// Reads, and writes conditional on the object they replace.
const CONDITIONS_HONOURED: &[Op] = &[
    GetObject,
    HeadObject,
    PutObject,
    CopyObject,
    CompleteMultipartUpload,
];
const CONDITIONAL: &[Op] = &[
    GetObject,
    HeadObject,
    PutObject,
    CopyObject,
    CompleteMultipartUpload,
    DeleteObject,
];

const fn refused(header: &'static str, what: &'static str, carried_by: &'static [Op]) -> Feature {
    Feature {
        header,
        what,
        carried_by,
        honoured_by: &[],
        neutral: &[],
        refusal: Refusal::NotImplemented,
    }
}

const fn honoured(header: &'static str, what: &'static str, ops: &'static [Op]) -> Feature {
    Feature {
        header,
        what,
        carried_by: ops,
        honoured_by: ops,
        neutral: &[],
        refusal: Refusal::NotImplemented,
    }
}

/// Requests that address an existing object or one of an upload's parts: the object's
/// own encryption decides (SSE-S3/KMS headers there are AWS's 400).
const NOT_SSE: &[Op] = &[GetObject, HeadObject, UploadPart, UploadPartCopy];

/// A header S3 refuses on these operations, where it means nothing.
const fn not_for(header: &'static str, carried_by: &'static [Op]) -> Feature {
    Feature {
        header,
        what: header,
        carried_by,
        honoured_by: &[],
        neutral: &[],
        refusal: Refusal::NotForThisOperation,
    }
}

/// An ETag condition: honoured on reads and on writes, not on deletes.
const fn condition(header: &'static str) -> Feature {
    Feature {
        header,
        what: "Conditional deletes",
        carried_by: CONDITIONAL,
        honoured_by: CONDITIONS_HONOURED,
        neutral: &[],
        refusal: Refusal::NotImplemented,
    }
}

/// The table.
pub const FEATURES: &[Feature] = &[
    honoured(
        "x-amz-server-side-encryption",
        "Server-side encryption",
        OBJECT_WRITES,
    ),
    honoured(
        "x-amz-server-side-encryption-aws-kms-key-id",
        "Server-side encryption",
        OBJECT_WRITES,
    ),
    honoured(
        "x-amz-server-side-encryption-context",
        "Server-side encryption",
        OBJECT_WRITES,
    ),
    honoured(
        "x-amz-server-side-encryption-bucket-key-enabled",
        "Server-side encryption",
        OBJECT_WRITES,
    ),
    honoured(
        "x-amz-server-side-encryption-customer-algorithm",
        "Server-side encryption with customer keys",
        SSE_C,
    ),
    honoured(
        "x-amz-server-side-encryption-customer-key",
        "Server-side encryption with customer keys",
        SSE_C,
    ),
    honoured(
        "x-amz-server-side-encryption-customer-key-md5",
        "Server-side encryption with customer keys",
        SSE_C,
    ),
    honoured(
        "x-amz-copy-source-server-side-encryption-customer-algorithm",
        "Server-side encryption with customer keys",
        SSE_C_SOURCE,
    ),
    honoured(
        "x-amz-copy-source-server-side-encryption-customer-key",
        "Server-side encryption with customer keys",
        SSE_C_SOURCE,
    ),
    honoured(
        "x-amz-copy-source-server-side-encryption-customer-key-md5",
        "Server-side encryption with customer keys",
        SSE_C_SOURCE,
    ),
    honoured(
        "x-amz-tagging",
        "Object tagging",
        &[PutObject, CopyObject, CreateMultipartUpload],
    ),
    honoured("x-amz-tagging-directive", "Object tagging", &[CopyObject]),
    honoured("x-amz-object-lock-mode", "Object lock", OBJECT_WRITES),
    honoured(
        "x-amz-object-lock-retain-until-date",
        "Object lock",
        OBJECT_WRITES,
    ),
    honoured("x-amz-object-lock-legal-hold", "Object lock", OBJECT_WRITES),
    honoured(
        "x-amz-bucket-object-lock-enabled",
        "Object lock",
        &[CreateBucket],
    ),
    // ACLs: canned and grant headers, on buckets at creation, on objects when written.
    honoured("x-amz-acl", "ACLs", ACL_CARRIERS),
    honoured("x-amz-grant-full-control", "ACL grants", ACL_CARRIERS),
    honoured("x-amz-grant-read", "ACL grants", ACL_CARRIERS),
    honoured("x-amz-grant-read-acp", "ACL grants", ACL_CARRIERS),
    honoured("x-amz-grant-write", "ACL grants", &[CreateBucket, PutAcl]),
    honoured("x-amz-grant-write-acp", "ACL grants", ACL_CARRIERS),
    honoured(
        "x-amz-object-ownership",
        "Object ownership",
        &[CreateBucket],
    ),
    // STANDARD and REDUCED_REDUNDANCY (a lower parity, CAIRN_STORAGE_CLASS_RRS) are the
    // classes Cairn has; the handlers store the class, every other is refused.
    Feature {
        header: "x-amz-storage-class",
        what: "Storage classes other than STANDARD and REDUCED_REDUNDANCY",
        carried_by: OBJECT_WRITES,
        honoured_by: &[],
        neutral: &crate::object::STORAGE_CLASSES,
        refusal: Refusal::InvalidStorageClass,
    },
    refused(
        "x-amz-website-redirect-location",
        "Website redirects",
        OBJECT_WRITES,
    ),
    refused(
        "x-amz-write-offset-bytes",
        "Appending to objects",
        &[PutObject],
    ),
    refused(
        "x-amz-mfa",
        "MFA delete",
        &[DeleteObject, DeleteObjects, PutBucketVersioning],
    ),
    // Composite or full-object checksums of multipart uploads.
    honoured(
        "x-amz-checksum-type",
        "Multipart checksum types",
        &[CreateMultipartUpload, CompleteMultipartUpload],
    ),
    condition("if-match"),
    condition("if-none-match"),
    Feature {
        header: "if-modified-since",
        what: "Date conditions",
        carried_by: CONDITIONAL_READS,
        honoured_by: CONDITIONAL_READS,
        neutral: &[],
        refusal: Refusal::NotImplemented,
    },
    Feature {
        header: "if-unmodified-since",
        what: "Date conditions",
        carried_by: CONDITIONAL_READS,
        honoured_by: CONDITIONAL_READS,
        neutral: &[],
        refusal: Refusal::NotImplemented,
    },
    refused(
        "x-amz-if-match-last-modified-time",
        "Conditional deletes",
        &[DeleteObject],
    ),
    not_for("x-amz-server-side-encryption", NOT_SSE),
    not_for("x-amz-server-side-encryption-aws-kms-key-id", NOT_SSE),
    not_for("x-amz-server-side-encryption-context", NOT_SSE),
    not_for("x-amz-server-side-encryption-bucket-key-enabled", NOT_SSE),
    refused(
        "x-amz-if-match-size",
        "Conditional deletes",
        &[DeleteObject],
    ),
];

impl Feature {
    fn refuse(&self) -> S3Error {
        match self.refusal {
            Refusal::NotImplemented => S3Error::not_implemented(self.what),
            Refusal::InvalidStorageClass => S3Error::new(
                "InvalidStorageClass",
                StatusCode::BAD_REQUEST,
                "The storage class you specified is not valid",
            ),
            Refusal::NotForThisOperation => S3Error::invalid_argument(format!(
                "{} header is not supported for this operation.",
                self.header
            )),
        }
    }
}

/// Refuse any feature header `op` can carry but Cairn does not honour for it.
pub fn check(op: Op, ctx: &Ctx) -> Result<(), S3Error> {
    for f in FEATURES {
        if !f.carried_by.contains(&op) || f.honoured_by.contains(&op) {
            continue;
        }
        if let Some(v) = ctx.header(f.header) {
            if !f.neutral.contains(&v.trim()) {
                return Err(f.refuse());
            }
        }
    }
    Ok(())
}

/// The condition a write puts on the object it replaces: `If-None-Match: *` (create only)
/// or `If-Match: <etag>[, <etag>...]` (replace only that object; `*` any object).
pub fn write_condition(ctx: &Ctx) -> Result<Option<WriteCondition>, S3Error> {
    match (ctx.header("if-none-match"), ctx.header("if-match")) {
        (None, None) => Ok(None),
        (Some(_), Some(_)) => Err(S3Error::not_implemented(
            "If-Match together with If-None-Match on a write",
        )),
        (Some(v), None) if v.trim() == "*" => Ok(Some(WriteCondition::Absent)),
        (Some(_), None) => Err(S3Error::not_implemented(
            "If-None-Match with a value other than '*' on a write",
        )),
        (None, Some(v)) => {
            let tags: Vec<String> = v
                .split(',')
                .map(|t| t.trim().trim_matches('"').to_string())
                .filter(|t| !t.is_empty())
                .collect();
            if tags.is_empty() || v.contains("W/") {
                return Err(S3Error::invalid_argument(
                    "If-Match must name an entity tag (or '*')",
                ));
            }
            Ok(Some(WriteCondition::Match(tags)))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::auth::{Payload, Verified};
    use http::Method;

    /// Every operation the router produces.
    pub(crate) const ALL_OPS: &[Op] = &Op::ALL;

    fn ctx(headers: &[(&str, &str)]) -> Ctx {
        Ctx {
            method: Method::PUT,
            target: super::super::router::target("/b/k", None).expect("target"),
            query: Default::default(),
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
    fn every_unhonoured_header_is_refused_on_every_operation_that_carries_it() {
        for f in FEATURES {
            for g in FEATURES.iter().filter(|g| g.header == f.header) {
                assert!(
                    !f.honoured_by
                        .iter()
                        .any(|op| g.carried_by.contains(op) && !g.honoured_by.contains(op)),
                    "{}: both honoured and refused on one operation",
                    f.header
                );
            }
            assert!(
                f.honoured_by.iter().all(|o| f.carried_by.contains(o)),
                "{}: honoured where it cannot be carried",
                f.header
            );
            for op in ALL_OPS {
                let c = ctx(&[(f.header, "surely-not-neutral")]);
                let r = check(*op, &c);
                if f.carried_by.contains(op) && !f.honoured_by.contains(op) {
                    let e = r.expect_err(f.header);
                    let want = match f.refusal {
                        Refusal::NotImplemented => "NotImplemented",
                        Refusal::InvalidStorageClass => "InvalidStorageClass",
                        Refusal::NotForThisOperation => "InvalidArgument",
                    };
                    assert_eq!(e.code, want, "{} on {op:?}", f.header);
                } else if !FEATURES.iter().any(|g| {
                    // Another row of the same header may refuse it here.
                    g.header == f.header && g.carried_by.contains(op) && !g.honoured_by.contains(op)
                }) {
                    assert!(r.is_ok(), "{} on {op:?}: {r:?}", f.header);
                }
                for v in f.neutral {
                    assert!(
                        check(*op, &ctx(&[(f.header, v)])).is_ok(),
                        "{} {v}",
                        f.header
                    );
                }
            }
        }
    }

    #[test]
    fn write_conditions() {
        let w = |h: &[(&str, &str)]| write_condition(&ctx(h)).map_err(|e| e.code);
        assert_eq!(w(&[]), Ok(None));
        assert_eq!(
            w(&[("if-none-match", "*")]),
            Ok(Some(WriteCondition::Absent))
        );
        assert_eq!(w(&[("if-none-match", "\"abc\"")]), Err("NotImplemented"));
        assert_eq!(
            w(&[("if-match", "\"abc\", \"def\"")]),
            Ok(Some(WriteCondition::Match(vec![
                "abc".into(),
                "def".into()
            ])))
        );
        assert_eq!(w(&[("if-match", "\"\"")]), Err("InvalidArgument"));
        assert_eq!(
            w(&[("if-match", "*"), ("if-none-match", "*")]),
            Err("NotImplemented")
        );
    }
}
