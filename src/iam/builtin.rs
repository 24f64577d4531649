//! The built-in policies, with MinIO's names. `readonly` also allows listing (MinIO's
//! allows only GetObject and GetBucketLocation, which leaves clients unable to browse).

pub const BUILTIN: [(&str, &str); 5] = [
    (
        "readonly",
        r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":["s3:GetBucketLocation","s3:GetObject","s3:GetObjectVersion","s3:GetObjectAcl","s3:GetObjectVersionAcl","s3:GetObjectTagging","s3:GetObjectVersionTagging","s3:GetObjectAttributes","s3:GetObjectVersionAttributes","s3:GetBucketAcl","s3:GetBucketPolicy","s3:GetBucketPolicyStatus","s3:GetBucketVersioning","s3:GetBucketOwnershipControls","s3:GetBucketPublicAccessBlock","s3:GetBucketTagging","s3:GetLifecycleConfiguration","s3:ListBucket","s3:ListBucketVersions","s3:ListAllMyBuckets","s3:ListBucketMultipartUploads","s3:ListMultipartUploadParts"],"Resource":["arn:aws:s3:::*"]}]}"#,
    ),
    (
        "readwrite",
        r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":["s3:*"],"Resource":["arn:aws:s3:::*"]}]}"#,
    ),
    (
        "writeonly",
        r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":["s3:PutObject","s3:AbortMultipartUpload","s3:ListMultipartUploadParts","s3:GetBucketLocation"],"Resource":["arn:aws:s3:::*"]}]}"#,
    ),
    (
        "diagnostics",
        r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":["admin:ServerInfo","admin:ServerTrace","admin:Prometheus","admin:ConsoleLog","admin:TopLocksInfo","admin:OBDInfo","admin:Profiling","admin:BandwidthMonitor"],"Resource":["arn:aws:s3:::*"]}]}"#,
    ),
    (
        "consoleAdmin",
        r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":["admin:*","s3:*","kms:*"],"Resource":["arn:aws:s3:::*"]}]}"#,
    ),
];

pub fn is_builtin(name: &str) -> bool {
    BUILTIN.iter().any(|(n, _)| *n == name)
}
