//! Bucket and prefix quotas through S3 clients: the error S3 clients see, overwrites and
//! deletes counted, multipart parts counted, prefix scopes, and the admin CLI.

use aws_sdk_s3::error::ProvideErrorMetadata;
use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_s3::types::{CompletedMultipartUpload, CompletedPart};
use aws_sdk_s3::Client;
use cairn_integration::{binary, client, Server, ACCESS_KEY, SECRET_KEY};

fn admin(server: &Server, args: &[&str]) -> (bool, String) {
    let out = std::process::Command::new(binary())
        .arg("admin")
        .args(args)
        .arg("--endpoint")
        .arg(&server.endpoint)
        .env("CAIRN_ROOT_USER", ACCESS_KEY)
        .env("CAIRN_ROOT_PASSWORD", SECRET_KEY)
        .output()
        .expect("cairn admin");
    (
        out.status.success(),
        format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ),
    )
}

async fn put(c: &Client, bucket: &str, key: &str, len: usize) -> Result<(), String> {
    c.put_object()
        .bucket(bucket)
        .key(key)
        .body(ByteStream::from(vec![3u8; len]))
        .send()
        .await
        .map(|_| ())
        .map_err(|e| e.into_service_error().code().unwrap_or("?").to_string())
}

const KIB: usize = 1024;

#[tokio::test]
async fn quotas_refuse_writes_that_would_pass_them() {
    let server = Server::start();
    let c = client(&server);
    c.create_bucket()
        .bucket("qqq")
        .send()
        .await
        .expect("bucket");
    let (ok, out) = admin(&server, &["bucket", "quota", "set", "qqq", "1MiB"]);
    assert!(ok, "{out}");
    put(&c, "qqq", "a", 600 * KIB).await.expect("within quota");
    assert_eq!(
        put(&c, "qqq", "b", 600 * KIB).await,
        Err("XMinioAdminBucketQuotaExceeded".to_string())
    );
    // Overwriting counts the replaced object, not both.
    put(&c, "qqq", "a", 700 * KIB)
        .await
        .expect("overwrite within quota");
    // Deleting frees space.
    c.delete_object()
        .bucket("qqq")
        .key("a")
        .send()
        .await
        .expect("delete");
    put(&c, "qqq", "b", 900 * KIB).await.expect("after delete");
    let (ok, out) = admin(&server, &["bucket", "quota", "get", "qqq", "--json"]);
    assert!(ok, "{out}");
    assert!(out.contains("\"used\": 921600"), "{out}");
    assert!(out.contains("\"objects\": 1"), "{out}");

    // Multipart: parts count as they are uploaded.
    let (ok, out) = admin(&server, &["bucket", "quota", "set", "qqq", "8MiB"]);
    assert!(ok, "{out}");
    let up = c
        .create_multipart_upload()
        .bucket("qqq")
        .key("mp")
        .send()
        .await
        .expect("create mpu");
    let id = up.upload_id().expect("id");
    let part = |n: i32| {
        c.upload_part()
            .bucket("qqq")
            .key("mp")
            .upload_id(id)
            .part_number(n)
            .body(ByteStream::from(vec![n as u8; 5 << 20]))
            .send()
    };
    let p1 = part(1).await.expect("part 1 fits");
    let e = part(2).await.expect_err("part 2 passes the quota");
    assert_eq!(
        e.into_service_error().code(),
        Some("XMinioAdminBucketQuotaExceeded")
    );
    c.complete_multipart_upload()
        .bucket("qqq")
        .key("mp")
        .upload_id(id)
        .multipart_upload(
            CompletedMultipartUpload::builder()
                .parts(
                    CompletedPart::builder()
                        .part_number(1)
                        .e_tag(p1.e_tag().expect("etag"))
                        .build(),
                )
                .build(),
        )
        .send()
        .await
        .expect("complete");
    put(&c, "qqq", "small", 100 * KIB).await.expect("room left");
    assert_eq!(
        put(&c, "qqq", "big", 3 << 20).await,
        Err("XMinioAdminBucketQuotaExceeded".to_string())
    );

    // A prefix quota limits that prefix only.
    c.create_bucket()
        .bucket("ppp")
        .send()
        .await
        .expect("bucket");
    let (ok, out) = admin(&server, &["bucket", "quota", "set", "ppp/team-a", "100KiB"]);
    assert!(ok, "{out}");
    put(&c, "ppp", "team-b/x", 1 << 20)
        .await
        .expect("other prefix unlimited");
    put(&c, "ppp", "team-a/x", 60 * KIB)
        .await
        .expect("within prefix quota");
    assert_eq!(
        put(&c, "ppp", "team-a/y", 60 * KIB).await,
        Err("XMinioAdminBucketQuotaExceeded".to_string())
    );
    // Removing the quota lifts the limit.
    let (ok, out) = admin(&server, &["bucket", "quota", "set", "ppp/team-a", "0"]);
    assert!(ok && out.contains("no quota"), "{out}");
    put(&c, "ppp", "team-a/y", 60 * KIB)
        .await
        .expect("no quota any more");
    // Errors: unknown bucket, bad size.
    let (ok, out) = admin(&server, &["bucket", "quota", "set", "nope", "1MiB"]);
    assert!(!ok && out.contains("NoSuchBucket"), "{out}");
    let (ok, out) = admin(&server, &["bucket", "quota", "set", "qqq", "lots"]);
    assert!(!ok && out.contains("invalid size"), "{out}");
}
