//! The one place where failures become S3 errors: code, HTTP status and message. Internal
//! details never reach the client; they are logged where the error is handled.

use http::StatusCode;

use crate::auth::chunked::BodyError;
use crate::auth::AuthError;
use crate::object::ObjectError;

/// Every error code Cairn answers with and the HTTP statuses it may carry, as the AWS S3
/// error reference ("Error responses", "List of error codes") gives them; a few are from
/// the AWS references of other operations (noted). A test checks every `S3Error::new` in
/// the source against this table, so a new code or status is looked up before it is used.
pub const ERROR_CODES: &[(&str, &[u16])] = &[
    ("AccessControlListNotSupported", &[400]),
    // A CORS preflight no rule allows.
    ("AccessForbidden", &[403]),
    ("AccessDenied", &[403]),
    ("AuthorizationHeaderMalformed", &[400]),
    // 400 for malformed query parameters; 403 for an X-Amz-Expires out of range.
    ("AuthorizationQueryParametersError", &[400, 403]),
    ("BadDigest", &[400]),
    ("BadRequest", &[400]),
    ("BucketAlreadyOwnedByYou", &[409]),
    ("BucketNotEmpty", &[409]),
    ("ConditionalRequestConflict", &[409]),
    ("EntityTooLarge", &[400]),
    ("EntityTooSmall", &[400]),
    ("ExpiredToken", &[400]),
    ("IllegalLocationConstraintException", &[400]),
    ("IncompleteBody", &[400]),
    ("InternalError", &[500]),
    ("InvalidAccessKeyId", &[403]),
    ("InvalidArgument", &[400]),
    ("InvalidBucketName", &[400]),
    ("InvalidBucketState", &[409]),
    ("InvalidDigest", &[400]),
    ("InvalidEncryptionAlgorithmError", &[400]),
    ("InvalidLocationConstraint", &[400]),
    ("InvalidPart", &[400]),
    ("InvalidPartNumber", &[416]),
    ("InvalidPartOrder", &[400]),
    ("InvalidRange", &[416]),
    ("InvalidRequest", &[400]),
    ("InvalidStorageClass", &[400]),
    ("InvalidTag", &[400]),
    ("InvalidToken", &[400]),
    ("KeyTooLongError", &[400]),
    // AWS KMS's error for an unknown key id, as S3 passes it on.
    ("KMS.NotFoundException", &[400]),
    // MinIO's answer when the drives are full (not AWS's: S3 never fills); SDKs do not
    // retry a 507, as they would a 503.
    ("XMinioStorageFull", &[507]),
    // AWS KMS's error for a key in a state that cannot seal (here: other bytes than its
    // name stood for), as S3 passes it on.
    ("KMS.KMSInvalidStateException", &[400]),
    ("MalformedPolicy", &[400]),
    // GetBucketOwnershipControls of a bucket whose controls were deleted.
    ("OwnershipControlsNotFoundError", &[404]),
    // STS (AssumeRole): a call without credentials.
    ("MissingAuthenticationToken", &[403]),
    ("MalformedPOSTRequest", &[400]),
    ("InvalidPolicyDocument", &[400]),
    ("MalformedXML", &[400]),
    ("MaxMessageLengthExceeded", &[400]),
    ("MetadataTooLarge", &[400]),
    ("MethodNotAllowed", &[405]),
    ("MissingContentLength", &[411]),
    ("MissingSecurityHeader", &[400]),
    ("NoSuchBucket", &[404]),
    ("NoSuchBucketPolicy", &[404]),
    ("NoSuchCORSConfiguration", &[404]),
    ("NoSuchKey", &[404]),
    // PutBucketEncryption's reference: a bucket without default encryption.
    ("ServerSideEncryptionConfigurationNotFoundError", &[404]),
    ("NoSuchLifecycleConfiguration", &[404]),
    // GetObjectLockConfiguration on a bucket without one (GetObjectLockConfiguration).
    ("ObjectLockConfigurationNotFoundError", &[404]),
    // Retention or legal hold asked of a version that has none (GetObjectRetention).
    ("NoSuchObjectLockConfiguration", &[404]),
    ("NoSuchPublicAccessBlockConfiguration", &[404]),
    ("NoSuchTagSet", &[404]),
    ("NoSuchUpload", &[404]),
    ("NoSuchVersion", &[404]),
    ("NotImplemented", &[501]),
    ("PreconditionFailed", &[412]),
    ("RequestTimeTooSkewed", &[403]),
    ("ServiceUnavailable", &[503]),
    ("SignatureDoesNotMatch", &[403]),
    ("SlowDown", &[503]),
    ("UnresolvableGrantByEmailAddress", &[400]),
    ("XAmzContentSHA256Mismatch", &[400]),
    // MinIO's answer to a write past a bucket quota, which MinIO clients know.
    ("XMinioAdminBucketQuotaExceeded", &[400]),
];

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct S3Error {
    pub code: &'static str,
    pub message: String,
    pub status: StatusCode,
    /// Headers the error response carries (a delete marker's `x-amz-delete-marker`).
    pub headers: Vec<(&'static str, String)>,
}

impl S3Error {
    pub fn new(code: &'static str, status: StatusCode, message: impl Into<String>) -> S3Error {
        S3Error {
            code,
            message: message.into(),
            status,
            headers: Vec::new(),
        }
    }

    /// The same error, its response carrying `name: value`.
    pub fn with_header(mut self, name: &'static str, value: String) -> S3Error {
        self.headers.push((name, value));
        self
    }

    pub fn invalid_argument(message: impl Into<String>) -> S3Error {
        S3Error::new("InvalidArgument", StatusCode::BAD_REQUEST, message)
    }

    pub fn invalid_request(message: impl Into<String>) -> S3Error {
        S3Error::new("InvalidRequest", StatusCode::BAD_REQUEST, message)
    }

    pub fn malformed_xml() -> S3Error {
        S3Error::new(
            "MalformedXML",
            StatusCode::BAD_REQUEST,
            "The XML you provided was not well-formed or did not validate against our published schema.",
        )
    }

    pub fn not_implemented(what: &str) -> S3Error {
        S3Error::new(
            "NotImplemented",
            StatusCode::NOT_IMPLEMENTED,
            format!("{what} is not implemented."),
        )
    }

    pub fn method_not_allowed() -> S3Error {
        S3Error::new(
            "MethodNotAllowed",
            StatusCode::METHOD_NOT_ALLOWED,
            "The specified method is not allowed against this resource.",
        )
    }

    pub fn precondition_failed() -> S3Error {
        S3Error::new(
            "PreconditionFailed",
            StatusCode::PRECONDITION_FAILED,
            "At least one of the pre-conditions you specified did not hold",
        )
    }

    pub fn internal() -> S3Error {
        S3Error::new(
            "InternalError",
            StatusCode::INTERNAL_SERVER_ERROR,
            "We encountered an internal error. Please try again.",
        )
    }

    pub fn no_such_bucket() -> S3Error {
        S3Error::new(
            "NoSuchBucket",
            StatusCode::NOT_FOUND,
            "The specified bucket does not exist",
        )
    }

    pub fn invalid_range() -> S3Error {
        S3Error::new(
            "InvalidRange",
            StatusCode::RANGE_NOT_SATISFIABLE,
            "The requested range is not satisfiable",
        )
    }
}

impl From<AuthError> for S3Error {
    fn from(e: AuthError) -> S3Error {
        let msg = e.to_string();
        match e {
            AuthError::AccessDenied(_) => S3Error::new("AccessDenied", StatusCode::FORBIDDEN, msg),
            AuthError::InvalidAccessKeyId => {
                S3Error::new("InvalidAccessKeyId", StatusCode::FORBIDDEN, msg)
            }
            AuthError::SignatureDoesNotMatch => {
                S3Error::new("SignatureDoesNotMatch", StatusCode::FORBIDDEN, msg)
            }
            AuthError::RequestTimeTooSkewed => {
                S3Error::new("RequestTimeTooSkewed", StatusCode::FORBIDDEN, msg)
            }
            AuthError::AuthorizationHeaderMalformed(_) => {
                S3Error::new("AuthorizationHeaderMalformed", StatusCode::BAD_REQUEST, msg)
            }
            AuthError::AuthorizationQueryParametersError(_) => S3Error::new(
                "AuthorizationQueryParametersError",
                StatusCode::BAD_REQUEST,
                msg,
            ),
            AuthError::ExpiresOutOfRange(_) => S3Error::new(
                "AuthorizationQueryParametersError",
                StatusCode::FORBIDDEN,
                msg,
            ),
            AuthError::InvalidArgument(_) => {
                S3Error::new("InvalidArgument", StatusCode::BAD_REQUEST, msg)
            }
            AuthError::InvalidRequest(_) => {
                S3Error::new("InvalidRequest", StatusCode::BAD_REQUEST, msg)
            }
            AuthError::ContentSha256Mismatch => {
                S3Error::new("XAmzContentSHA256Mismatch", StatusCode::BAD_REQUEST, msg)
            }
        }
    }
}

impl From<&BodyError> for S3Error {
    fn from(e: &BodyError) -> S3Error {
        match e {
            BodyError::Signature => AuthError::SignatureDoesNotMatch.into(),
            BodyError::Malformed(m) => {
                S3Error::new("IncompleteBody", StatusCode::BAD_REQUEST, m.clone())
            }
            BodyError::Sha256Mismatch => AuthError::ContentSha256Mismatch.into(),
            BodyError::ChecksumMismatch(alg) => S3Error::new(
                "BadDigest",
                StatusCode::BAD_REQUEST,
                format!("The {alg} you specified did not match the calculated checksum."),
            ),
            BodyError::InvalidChecksum(alg) => S3Error::invalid_request(format!(
                "Value for x-amz-checksum-{alg} header is invalid."
            )),
            BodyError::ContentMd5Mismatch => S3Error::new(
                "BadDigest",
                StatusCode::BAD_REQUEST,
                "The Content-MD5 you specified did not match what we received.",
            ),
        }
    }
}

impl From<crate::quota::QuotaError> for S3Error {
    fn from(e: crate::quota::QuotaError) -> S3Error {
        match e {
            crate::quota::QuotaError::Object(e) => e.into(),
            // MinIO's code and status, which MinIO clients already understand.
            e @ crate::quota::QuotaError::Exceeded { .. } => S3Error::new(
                "XMinioAdminBucketQuotaExceeded",
                StatusCode::BAD_REQUEST,
                format!("Bucket quota exceeded: {e}"),
            ),
        }
    }
}

impl From<ObjectError> for S3Error {
    fn from(e: ObjectError) -> S3Error {
        use StatusCode as S;
        match e {
            ObjectError::NoSuchBucket => S3Error::no_such_bucket(),
            ObjectError::NoSuchKey => S3Error::new("NoSuchKey", S::NOT_FOUND, "The specified key does not exist."),
            ObjectError::ObjectLocked => S3Error::new(
                "AccessDenied",
                S::FORBIDDEN,
                "Access Denied because object protected by object lock.",
            ),
            ObjectError::NoSuchVersion => S3Error::new(
                "NoSuchVersion",
                S::NOT_FOUND,
                "The specified version does not exist.",
            ),
            ObjectError::DeleteMarker {
                version_id,
                by_id,
                mod_time,
            } => {
                // A marker asked for by id: 405, with when the marker was made.
                let e = if by_id {
                    S3Error::method_not_allowed()
                        .with_header("last-modified", crate::s3::http_date(mod_time))
                } else {
                    S3Error::new("NoSuchKey", S::NOT_FOUND, "The specified key does not exist.")
                };
                e.with_header("x-amz-delete-marker", "true".into())
                    .with_header("x-amz-version-id", crate::s3::version_str(version_id))
            }
            ObjectError::BucketExists => S3Error::new(
                "BucketAlreadyOwnedByYou",
                S::CONFLICT,
                "Your previous request to create the named bucket succeeded and you already own it.",
            ),
            ObjectError::BucketNotEmpty => S3Error::new(
                "BucketNotEmpty",
                S::CONFLICT,
                "The bucket you tried to delete is not empty",
            ),
            ObjectError::InvalidBucketName => S3Error::new(
                "InvalidBucketName",
                S::BAD_REQUEST,
                "The specified bucket is not valid.",
            ),
            ObjectError::KeyTooLong => S3Error::new("KeyTooLongError", S::BAD_REQUEST, "Your key is too long"),
            ObjectError::InvalidKey(m) => S3Error::new("InvalidArgument", S::BAD_REQUEST, format!("Object name is not supported: {m}")),
            ObjectError::NoSuchUpload => S3Error::new(
                "NoSuchUpload",
                S::NOT_FOUND,
                "The specified multipart upload does not exist. The upload ID may be invalid, or the upload may have been aborted or completed.",
            ),
            ObjectError::InvalidPart(m) => S3Error::new(
                "InvalidPart",
                S::BAD_REQUEST,
                format!("One or more of the specified parts could not be found. The part may not have been uploaded, or the specified entity tag may not match the part's entity tag. ({m})"),
            ),
            ObjectError::InvalidPartOrder => S3Error::new(
                "InvalidPartOrder",
                S::BAD_REQUEST,
                "The list of parts was not in ascending order. Parts must be ordered by part number.",
            ),
            ObjectError::EntityTooSmall(n) => S3Error::new(
                "EntityTooSmall",
                S::BAD_REQUEST,
                format!("Your proposed upload is smaller than the minimum allowed object size (part {n})."),
            ),
            ObjectError::EntityTooLarge => S3Error::new(
                "EntityTooLarge",
                S::BAD_REQUEST,
                "Your proposed upload exceeds the maximum allowed object size.",
            ),
            ObjectError::InvalidRange => S3Error::invalid_range(),
            ObjectError::IncompleteBody { .. } => S3Error::new(
                "IncompleteBody",
                S::BAD_REQUEST,
                "You did not provide the number of bytes specified by the Content-Length HTTP header.",
            ),
            ObjectError::BadDigest => S3Error::new(
                "BadDigest",
                S::BAD_REQUEST,
                "The Content-MD5 you specified did not match what we received.",
            ),
            ObjectError::InvalidArgument(m) => S3Error::invalid_argument(m),
            ObjectError::InvalidRequest(m) => S3Error::invalid_request(m),
            ObjectError::LockLost | ObjectError::WriteQuorum { .. } | ObjectError::ReadQuorum { .. } => S3Error::new(
                "ServiceUnavailable",
                S::SERVICE_UNAVAILABLE,
                "Storage resources are insufficient for the request; please retry.",
            ),
            ObjectError::StorageFull { .. } => S3Error::new(
                "XMinioStorageFull",
                S::INSUFFICIENT_STORAGE,
                "Storage backend has reached its minimum free drive threshold. Please delete a few objects to proceed.",
            ),
            ObjectError::PreconditionFailed => S3Error::precondition_failed(),
            ObjectError::ConditionalConflict => S3Error::new(
                "ConditionalRequestConflict",
                S::CONFLICT,
                "A conflicting operation occurred. If using PutObject you can retry the request. If using multipart upload you should initiate another CreateMultipartUpload request and re-upload each part.",
            ),
            ObjectError::Moved => S3Error::new(
                "SlowDown",
                S::SERVICE_UNAVAILABLE,
                "The object moved between server pools during the request; please retry.",
            ),
            ObjectError::Replaced => S3Error::new(
                "SlowDown",
                S::SERVICE_UNAVAILABLE,
                "The object was replaced while it was being read; please retry.",
            ),
            ObjectError::LockTimeout => S3Error::new(
                "SlowDown",
                S::SERVICE_UNAVAILABLE,
                "Please reduce your request rate.",
            ),
            ObjectError::Body(io) => match BodyError::from_io(&io) {
                Some(b) => b.into(),
                None => S3Error::new(
                    "IncompleteBody",
                    S::BAD_REQUEST,
                    "The request body could not be read completely.",
                ),
            },
            ObjectError::Internal(m) => {
                tracing::error!(error = %m, "internal error");
                S3Error::internal()
            }
        }
    }
}

#[cfg(test)]
mod code_table {
    use super::ERROR_CODES;

    fn status_of(name: &str) -> Option<u16> {
        Some(match name {
            "BAD_REQUEST" => 400,
            "FORBIDDEN" => 403,
            "NOT_FOUND" => 404,
            "METHOD_NOT_ALLOWED" => 405,
            "CONFLICT" => 409,
            "LENGTH_REQUIRED" => 411,
            "PRECONDITION_FAILED" => 412,
            "RANGE_NOT_SATISFIABLE" => 416,
            "INTERNAL_SERVER_ERROR" => 500,
            "NOT_IMPLEMENTED" => 501,
            "SERVICE_UNAVAILABLE" => 503,
            "INSUFFICIENT_STORAGE" => 507,
            _ => return None,
        })
    }

    fn sources(dir: &std::path::Path, out: &mut Vec<(String, String)>) {
        for e in std::fs::read_dir(dir).expect("read src").flatten() {
            let p = e.path();
            if p.is_dir() {
                sources(&p, out);
            } else if p.extension().is_some_and(|x| x == "rs") {
                let text = std::fs::read_to_string(&p).expect("read source");
                out.push((p.display().to_string(), text));
            }
        }
    }

    /// Every `S3Error::new` with a literal code in the source uses a code of the
    /// table with one of its statuses.
    #[test]
    fn every_error_in_the_source_is_in_the_aws_table() {
        let mut files = Vec::new();
        sources(
            &std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("src"),
            &mut files,
        );
        let mut seen = 0;
        for (path, text) in &files {
            // Not this test's own text.
            let text = text.split("mod code_table").next().unwrap_or_default();
            for (at, _) in text.match_indices("S3Error::new(") {
                let rest = &text[at + "S3Error::new(".len()..];
                let rest = rest.trim_start();
                // The table's own constructor takes a parameter, not a literal.
                let Some(lit) = rest.strip_prefix('"') else {
                    continue;
                };
                let Some((code, after)) = lit.split_once('"') else {
                    panic!("{path}: unterminated code");
                };
                let status = after
                    .trim_start_matches([',', ' ', '\n'])
                    .split(|c: char| !(c.is_ascii_alphanumeric() || c == '_' || c == ':'))
                    .next()
                    .unwrap_or_default();
                let name = status.rsplit("::").next().unwrap_or_default();
                let status = status_of(name)
                    .unwrap_or_else(|| panic!("{path}: {code} with unknown status {name}"));
                let allowed = ERROR_CODES
                    .iter()
                    .find(|(c, _)| *c == code)
                    .unwrap_or_else(|| panic!("{path}: {code} is not in the AWS table"));
                assert!(
                    allowed.1.contains(&status),
                    "{path}: {code} with {status}, AWS gives {:?}",
                    allowed.1
                );
                seen += 1;
            }
        }
        assert!(seen > 50, "only {seen} errors found in the source");
    }
}
