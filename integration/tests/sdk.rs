//! The AWS SDK for Rust against a real `cairn server`: every S3 operation Cairn implements.

use std::time::Duration;

use aws_sdk_s3::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_s3::presigning::PresigningConfig;
use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_s3::types::{
    ChecksumAlgorithm, ChecksumMode, CompletedMultipartUpload, CompletedPart, Delete,
    MetadataDirective, ObjectIdentifier,
};
use aws_sdk_s3::Client;
use cairn_integration::{client, Server, ACCESS_KEY, SECRET_KEY};
use md5::{Digest, Md5};

fn client_with(server: &Server, secret: &str, access: &str) -> Client {
    cairn_integration::client_for(&server.endpoint, access, secret, true)
}

/// (S3 error code, HTTP status) of a failed call.
fn failure<T: std::fmt::Debug, E: ProvideErrorMetadata + std::fmt::Debug>(
    r: Result<T, SdkError<E, aws_sdk_s3::config::http::HttpResponse>>,
) -> (String, u16) {
    let err = r.expect_err("the call must fail");
    let status = err.raw_response().map(|r| r.status().as_u16()).unwrap_or(0);
    let code = err.code().unwrap_or("").to_string();
    (code, status)
}

fn data(len: usize, seed: u8) -> Vec<u8> {
    (0..len)
        .map(|i| {
            (i as u32)
                .wrapping_mul(2_654_435_761)
                .rotate_left(seed as u32) as u8
        })
        .collect()
}

fn md5_hex(b: &[u8]) -> String {
    hex::encode(Md5::digest(b))
}

async fn body(out: aws_sdk_s3::operation::get_object::GetObjectOutput) -> Vec<u8> {
    out.body
        .collect()
        .await
        .expect("body")
        .into_bytes()
        .to_vec()
}

#[tokio::test]
async fn buckets() {
    let s = Server::start();
    let c = client(&s);
    c.create_bucket()
        .bucket("alpha")
        .send()
        .await
        .expect("create");
    c.create_bucket()
        .bucket("beta")
        .send()
        .await
        .expect("create");
    assert_eq!(
        failure(c.create_bucket().bucket("alpha").send().await),
        ("BucketAlreadyOwnedByYou".into(), 409)
    );
    assert_eq!(
        failure(c.create_bucket().bucket("Bad_Name").send().await),
        ("InvalidBucketName".into(), 400)
    );
    let names: Vec<String> = c
        .list_buckets()
        .send()
        .await
        .expect("list")
        .buckets()
        .iter()
        .filter_map(|b| b.name().map(String::from))
        .collect();
    assert_eq!(names, ["alpha", "beta"]);
    c.head_bucket().bucket("alpha").send().await.expect("head");
    assert_eq!(failure(c.head_bucket().bucket("nope").send().await).1, 404);
    let loc = c
        .get_bucket_location()
        .bucket("alpha")
        .send()
        .await
        .expect("location");
    assert!(loc
        .location_constraint()
        .is_none_or(|l| l.as_str().is_empty()));
    let v = c
        .get_bucket_versioning()
        .bucket("alpha")
        .send()
        .await
        .expect("versioning");
    assert!(v.status().is_none());
    c.put_object()
        .bucket("alpha")
        .key("k")
        .body(ByteStream::from_static(b"x"))
        .send()
        .await
        .expect("put");
    assert_eq!(
        failure(c.delete_bucket().bucket("alpha").send().await),
        ("BucketNotEmpty".into(), 409)
    );
    c.delete_object()
        .bucket("alpha")
        .key("k")
        .send()
        .await
        .expect("delete");
    c.delete_bucket()
        .bucket("alpha")
        .send()
        .await
        .expect("delete bucket");
    assert_eq!(
        failure(c.delete_bucket().bucket("alpha").send().await),
        ("NoSuchBucket".into(), 404)
    );
    assert_eq!(
        failure(c.get_bucket_cors().bucket("beta").send().await),
        ("NoSuchCORSConfiguration".into(), 404)
    );
    assert_eq!(
        failure(c.get_bucket_website().bucket("beta").send().await),
        ("NotImplemented".into(), 501)
    );
}

#[tokio::test]
async fn objects_ranges_conditionals_metadata() {
    let s = Server::start();
    let c = client(&s);
    c.create_bucket()
        .bucket("objs")
        .send()
        .await
        .expect("create");
    let payload = data(3 << 20, 1);
    let put = c
        .put_object()
        .bucket("objs")
        .key("dir/file.bin")
        .content_type("application/x-test")
        .cache_control("max-age=60")
        .content_disposition("attachment")
        .metadata("color", "blue")
        .body(ByteStream::from(payload.clone()))
        .send()
        .await
        .expect("put");
    let etag = put.e_tag().expect("etag").to_string();
    assert_eq!(etag, format!("\"{}\"", md5_hex(&payload)));
    let head = c
        .head_object()
        .bucket("objs")
        .key("dir/file.bin")
        .send()
        .await
        .expect("head");
    assert_eq!(head.content_length(), Some(payload.len() as i64));
    assert_eq!(head.content_type(), Some("application/x-test"));
    assert_eq!(head.cache_control(), Some("max-age=60"));
    assert_eq!(head.content_disposition(), Some("attachment"));
    assert_eq!(
        head.metadata()
            .and_then(|m| m.get("color"))
            .map(String::as_str),
        Some("blue")
    );
    let got = body(
        c.get_object()
            .bucket("objs")
            .key("dir/file.bin")
            .send()
            .await
            .expect("get"),
    )
    .await;
    assert_eq!(got, payload);

    // Ranges: a-b, a-, -n, and past the end.
    let size = payload.len();
    for (range, want) in [
        ("bytes=0-9".to_string(), &payload[0..10]),
        (format!("bytes={}-", size - 100), &payload[size - 100..]),
        ("bytes=-77".to_string(), &payload[size - 77..]),
        (
            format!("bytes={}-{}", (1 << 20) - 5, (1 << 20) + 5),
            &payload[(1 << 20) - 5..(1 << 20) + 6],
        ),
    ] {
        let out = c
            .get_object()
            .bucket("objs")
            .key("dir/file.bin")
            .range(&range)
            .send()
            .await
            .expect("range");
        assert_eq!(
            out.content_range().map(|s| s.starts_with("bytes ")),
            Some(true)
        );
        assert_eq!(body(out).await, want, "{range}");
    }
    assert_eq!(
        failure(
            c.get_object()
                .bucket("objs")
                .key("dir/file.bin")
                .range(format!("bytes={size}-"))
                .send()
                .await
        ),
        ("InvalidRange".into(), 416)
    );

    // Conditionals.
    c.get_object()
        .bucket("objs")
        .key("dir/file.bin")
        .if_match(&etag)
        .send()
        .await
        .expect("if-match");
    assert_eq!(
        failure(
            c.get_object()
                .bucket("objs")
                .key("dir/file.bin")
                .if_match("\"nope\"")
                .send()
                .await
        ),
        ("PreconditionFailed".into(), 412)
    );
    assert_eq!(
        failure(
            c.get_object()
                .bucket("objs")
                .key("dir/file.bin")
                .if_none_match(&etag)
                .send()
                .await
        )
        .1,
        304
    );
    let later = aws_sdk_s3::primitives::DateTime::from_secs(4_000_000_000);
    let earlier = aws_sdk_s3::primitives::DateTime::from_secs(1_000_000_000);
    assert_eq!(
        failure(
            c.get_object()
                .bucket("objs")
                .key("dir/file.bin")
                .if_modified_since(later)
                .send()
                .await
        )
        .1,
        304
    );
    c.get_object()
        .bucket("objs")
        .key("dir/file.bin")
        .if_modified_since(earlier)
        .send()
        .await
        .expect("modified");
    assert_eq!(
        failure(
            c.get_object()
                .bucket("objs")
                .key("dir/file.bin")
                .if_unmodified_since(earlier)
                .send()
                .await
        )
        .1,
        412
    );

    // response-* overrides.
    let out = c
        .get_object()
        .bucket("objs")
        .key("dir/file.bin")
        .response_content_type("text/plain")
        .response_content_disposition("inline")
        .send()
        .await
        .expect("overrides");
    assert_eq!(out.content_type(), Some("text/plain"));
    assert_eq!(out.content_disposition(), Some("inline"));

    // Missing things.
    assert_eq!(
        failure(c.get_object().bucket("objs").key("nope").send().await),
        ("NoSuchKey".into(), 404)
    );
    assert_eq!(
        failure(c.get_object().bucket("nope").key("k").send().await),
        ("NoSuchBucket".into(), 404)
    );
    assert_eq!(
        failure(c.head_object().bucket("objs").key("nope").send().await).1,
        404
    );

    // Copy: metadata COPY and REPLACE, conditional copy, copy onto itself.
    let copy = c
        .copy_object()
        .bucket("objs")
        .key("copy.bin")
        .copy_source("objs/dir/file.bin")
        .send()
        .await
        .expect("copy");
    assert_eq!(
        copy.copy_object_result().and_then(|r| r.e_tag()),
        Some(etag.as_str())
    );
    let head = c
        .head_object()
        .bucket("objs")
        .key("copy.bin")
        .send()
        .await
        .expect("head copy");
    assert_eq!(
        head.metadata()
            .and_then(|m| m.get("color"))
            .map(String::as_str),
        Some("blue")
    );
    c.copy_object()
        .bucket("objs")
        .key("copy.bin")
        .copy_source("objs/copy.bin")
        .metadata_directive(MetadataDirective::Replace)
        .metadata("color", "green")
        .content_type("text/x-new")
        .send()
        .await
        .expect("replace metadata in place");
    let head = c
        .head_object()
        .bucket("objs")
        .key("copy.bin")
        .send()
        .await
        .expect("head");
    assert_eq!(
        head.metadata()
            .and_then(|m| m.get("color"))
            .map(String::as_str),
        Some("green")
    );
    assert_eq!(head.content_type(), Some("text/x-new"));
    assert_eq!(
        body(
            c.get_object()
                .bucket("objs")
                .key("copy.bin")
                .send()
                .await
                .expect("get")
        )
        .await,
        payload
    );
    assert_eq!(
        failure(
            c.copy_object()
                .bucket("objs")
                .key("c2")
                .copy_source("objs/dir/file.bin")
                .copy_source_if_match("\"other\"")
                .send()
                .await
        ),
        ("PreconditionFailed".into(), 412)
    );
    assert_eq!(
        failure(
            c.copy_object()
                .bucket("objs")
                .key("copy.bin")
                .copy_source("objs/copy.bin")
                .send()
                .await
        ),
        ("InvalidRequest".into(), 400)
    );

    // DeleteObjects, verbose and quiet.
    let ids = |keys: &[&str]| {
        Delete::builder().set_objects(Some(
            keys.iter()
                .map(|k| ObjectIdentifier::builder().key(*k).build().expect("id"))
                .collect(),
        ))
    };
    let out = c
        .delete_objects()
        .bucket("objs")
        .delete(ids(&["copy.bin", "never-existed"]).build().expect("delete"))
        .send()
        .await
        .expect("delete objects");
    assert_eq!(out.deleted().len(), 2);
    let out = c
        .delete_objects()
        .bucket("objs")
        .delete(ids(&["dir/file.bin"]).quiet(true).build().expect("delete"))
        .send()
        .await
        .expect("quiet delete");
    assert!(out.deleted().is_empty() && out.errors().is_empty());
    assert_eq!(
        failure(
            c.head_object()
                .bucket("objs")
                .key("dir/file.bin")
                .send()
                .await
        )
        .1,
        404
    );
}

#[tokio::test]
async fn listing() {
    let s = Server::start();
    let c = client(&s);
    c.create_bucket()
        .bucket("list")
        .send()
        .await
        .expect("create");
    let keys = ["a.txt", "b/1", "b/2", "b/c/3", "d e/f", "z"];
    for k in keys {
        c.put_object()
            .bucket("list")
            .key(k)
            .body(ByteStream::from_static(b"v"))
            .send()
            .await
            .expect("put");
    }
    let all = c
        .list_objects_v2()
        .bucket("list")
        .fetch_owner(true)
        .send()
        .await
        .expect("list");
    let got: Vec<&str> = all.contents().iter().filter_map(|o| o.key()).collect();
    assert_eq!(got, keys);
    assert_eq!(all.key_count(), Some(6));
    assert!(all.contents()[0].owner().is_some());
    let delim = c
        .list_objects_v2()
        .bucket("list")
        .delimiter("/")
        .send()
        .await
        .expect("list");
    let prefixes: Vec<&str> = delim
        .common_prefixes()
        .iter()
        .filter_map(|p| p.prefix())
        .collect();
    assert_eq!(prefixes, ["b/", "d e/"]);
    let files: Vec<&str> = delim.contents().iter().filter_map(|o| o.key()).collect();
    assert_eq!(files, ["a.txt", "z"]);
    let sub = c
        .list_objects_v2()
        .bucket("list")
        .prefix("b/")
        .delimiter("/")
        .send()
        .await
        .expect("list");
    assert_eq!(
        sub.contents()
            .iter()
            .filter_map(|o| o.key())
            .collect::<Vec<_>>(),
        ["b/1", "b/2"]
    );
    assert_eq!(
        sub.common_prefixes()
            .iter()
            .filter_map(|p| p.prefix())
            .collect::<Vec<_>>(),
        ["b/c/"]
    );
    // Pagination with continuation tokens.
    let mut seen = Vec::new();
    let mut token = None;
    loop {
        let page = c
            .list_objects_v2()
            .bucket("list")
            .max_keys(2)
            .set_continuation_token(token.clone())
            .send()
            .await
            .expect("page");
        seen.extend(
            page.contents()
                .iter()
                .filter_map(|o| o.key().map(String::from)),
        );
        if page.is_truncated() != Some(true) {
            break;
        }
        token = page.next_continuation_token().map(String::from);
    }
    assert_eq!(seen, keys);
    let after = c
        .list_objects_v2()
        .bucket("list")
        .start_after("b/2")
        .send()
        .await
        .expect("start-after");
    assert_eq!(
        after
            .contents()
            .iter()
            .filter_map(|o| o.key())
            .collect::<Vec<_>>(),
        ["b/c/3", "d e/f", "z"]
    );
    // ListObjects v1 with markers, and url encoding.
    let v1 = c
        .list_objects()
        .bucket("list")
        .marker("b/c/3")
        .max_keys(1)
        .send()
        .await
        .expect("v1");
    assert_eq!(
        v1.contents()
            .iter()
            .filter_map(|o| o.key())
            .collect::<Vec<_>>(),
        ["d e/f"]
    );
    assert_eq!(v1.is_truncated(), Some(true));
    let enc = c
        .list_objects_v2()
        .bucket("list")
        .prefix("d e")
        .encoding_type(aws_sdk_s3::types::EncodingType::Url)
        .send()
        .await
        .expect("encoded");
    assert_eq!(
        enc.contents()
            .iter()
            .filter_map(|o| o.key())
            .collect::<Vec<_>>(),
        ["d%20e/f"]
    );
    assert_eq!(
        failure(c.list_objects_v2().bucket("missing").send().await),
        ("NoSuchBucket".into(), 404)
    );
}

#[tokio::test]
async fn multipart_64mib_in_8mib_parts() {
    let s = Server::start();
    let c = client(&s);
    c.create_bucket()
        .bucket("mpu")
        .send()
        .await
        .expect("create");
    let part_size = 8 << 20;
    let whole = data(64 << 20, 3);
    let up = c
        .create_multipart_upload()
        .bucket("mpu")
        .key("big")
        .content_type("video/mp4")
        .send()
        .await
        .expect("create");
    let id = up.upload_id().expect("id").to_string();
    let mut parts = Vec::new();
    for (i, chunk) in whole.chunks(part_size).enumerate() {
        let n = i as i32 + 1;
        let out = c
            .upload_part()
            .bucket("mpu")
            .key("big")
            .upload_id(&id)
            .part_number(n)
            .body(ByteStream::from(chunk.to_vec()))
            .send()
            .await
            .expect("part");
        assert_eq!(
            out.e_tag(),
            Some(format!("\"{}\"", md5_hex(chunk)).as_str())
        );
        parts.push(
            CompletedPart::builder()
                .part_number(n)
                .e_tag(out.e_tag().expect("etag"))
                .build(),
        );
    }
    let listed = c
        .list_parts()
        .bucket("mpu")
        .key("big")
        .upload_id(&id)
        .send()
        .await
        .expect("list parts");
    assert_eq!(listed.parts().len(), 8);
    let uploads = c
        .list_multipart_uploads()
        .bucket("mpu")
        .send()
        .await
        .expect("uploads");
    assert_eq!(
        uploads
            .uploads()
            .iter()
            .filter_map(|u| u.upload_id())
            .collect::<Vec<_>>(),
        [id.as_str()]
    );
    let done = c
        .complete_multipart_upload()
        .bucket("mpu")
        .key("big")
        .upload_id(&id)
        .multipart_upload(
            CompletedMultipartUpload::builder()
                .set_parts(Some(parts))
                .build(),
        )
        .send()
        .await
        .expect("complete");
    let mut cat = Vec::new();
    for chunk in whole.chunks(part_size) {
        cat.extend(Md5::digest(chunk));
    }
    assert_eq!(
        done.e_tag(),
        Some(format!("\"{}-8\"", md5_hex(&cat)).as_str())
    );
    let got = body(
        c.get_object()
            .bucket("mpu")
            .key("big")
            .send()
            .await
            .expect("get"),
    )
    .await;
    assert!(got == whole, "multipart object differs");
    // Ranged reads across part boundaries, and by part number.
    for start in [part_size - 1, 3 * part_size - 10, 7 * part_size + 5] {
        let end = start + part_size + 20;
        let end = end.min(whole.len() - 1);
        let out = c
            .get_object()
            .bucket("mpu")
            .key("big")
            .range(format!("bytes={start}-{end}"))
            .send()
            .await
            .expect("range");
        assert!(body(out).await == whole[start..=end], "range {start}-{end}");
    }
    let p3 = c
        .get_object()
        .bucket("mpu")
        .key("big")
        .part_number(3)
        .send()
        .await
        .expect("part 3");
    assert_eq!(p3.parts_count(), Some(8));
    assert!(body(p3).await == whole[2 * part_size..3 * part_size]);
    let head = c
        .head_object()
        .bucket("mpu")
        .key("big")
        .send()
        .await
        .expect("head");
    assert_eq!(head.content_type(), Some("video/mp4"));

    // UploadPartCopy with a range, then abort.
    let up2 = c
        .create_multipart_upload()
        .bucket("mpu")
        .key("copy")
        .send()
        .await
        .expect("create");
    let id2 = up2.upload_id().expect("id").to_string();
    let copied = c
        .upload_part_copy()
        .bucket("mpu")
        .key("copy")
        .upload_id(&id2)
        .part_number(1)
        .copy_source("mpu/big")
        .copy_source_range("bytes=100-6291555")
        .send()
        .await
        .expect("part copy");
    let etag = copied
        .copy_part_result()
        .and_then(|r| r.e_tag())
        .expect("etag")
        .to_string();
    assert_eq!(etag, format!("\"{}\"", md5_hex(&whole[100..6_291_556])));
    c.abort_multipart_upload()
        .bucket("mpu")
        .key("copy")
        .upload_id(&id2)
        .send()
        .await
        .expect("abort");
    assert_eq!(
        failure(
            c.list_parts()
                .bucket("mpu")
                .key("copy")
                .upload_id(&id2)
                .send()
                .await
        ),
        ("NoSuchUpload".into(), 404)
    );
}

#[tokio::test]
async fn multipart_errors() {
    let s = Server::start();
    let c = client(&s);
    c.create_bucket()
        .bucket("mpe")
        .send()
        .await
        .expect("create");
    let id = c
        .create_multipart_upload()
        .bucket("mpe")
        .key("k")
        .send()
        .await
        .expect("create")
        .upload_id()
        .expect("id")
        .to_string();
    let mut parts = Vec::new();
    for (n, len) in [(1, 1 << 20), (2, 1 << 20)] {
        let out = c
            .upload_part()
            .bucket("mpe")
            .key("k")
            .upload_id(&id)
            .part_number(n)
            .body(ByteStream::from(data(len, n as u8)))
            .send()
            .await
            .expect("part");
        parts.push(
            CompletedPart::builder()
                .part_number(n)
                .e_tag(out.e_tag().expect("etag"))
                .build(),
        );
    }
    let complete = |parts: Vec<CompletedPart>| {
        c.complete_multipart_upload()
            .bucket("mpe")
            .key("k")
            .upload_id(&id)
            .multipart_upload(
                CompletedMultipartUpload::builder()
                    .set_parts(Some(parts))
                    .build(),
            )
            .send()
    };
    // A part below 5 MiB that is not the last one.
    assert_eq!(
        failure(complete(parts.clone()).await),
        ("EntityTooSmall".into(), 400)
    );
    // A part that was never uploaded.
    let missing = vec![
        parts[0].clone(),
        CompletedPart::builder()
            .part_number(7)
            .e_tag("\"00000000000000000000000000000000\"")
            .build(),
    ];
    assert_eq!(
        failure(complete(missing).await),
        ("InvalidPart".into(), 400)
    );
    let reversed = vec![parts[1].clone(), parts[0].clone()];
    assert_eq!(
        failure(complete(reversed).await),
        ("InvalidPartOrder".into(), 400)
    );
    assert_eq!(
        failure(
            c.upload_part()
                .bucket("mpe")
                .key("k")
                .upload_id("not-an-upload")
                .part_number(1)
                .body(ByteStream::from_static(b"x"))
                .send()
                .await
        ),
        ("NoSuchUpload".into(), 404)
    );
}

#[tokio::test]
async fn presigned_get_and_put() {
    let s = Server::start();
    let c = client(&s);
    c.create_bucket()
        .bucket("pre")
        .send()
        .await
        .expect("create");
    let cfg = PresigningConfig::expires_in(Duration::from_secs(300)).expect("config");
    let put = c
        .put_object()
        .bucket("pre")
        .key("p.txt")
        .presigned(cfg.clone())
        .await
        .expect("presign put");
    let resp = ureq::put(put.uri())
        .send(&b"presigned body"[..])
        .expect("presigned PUT");
    assert_eq!(resp.status(), 200);
    let get = c
        .get_object()
        .bucket("pre")
        .key("p.txt")
        .presigned(cfg)
        .await
        .expect("presign get");
    let mut resp = ureq::get(get.uri()).call().expect("presigned GET");
    assert_eq!(
        resp.body_mut().read_to_vec().expect("body"),
        b"presigned body"
    );
    // Tampered: another key with the same signature.
    let tampered = get.uri().replace("p.txt", "q.txt");
    let err = ureq::get(&tampered).call().expect_err("tampered URL");
    assert!(matches!(err, ureq::Error::StatusCode(403)), "{err:?}");
    // Expired.
    let short = PresigningConfig::expires_in(Duration::from_secs(1)).expect("config");
    let get = c
        .get_object()
        .bucket("pre")
        .key("p.txt")
        .presigned(short)
        .await
        .expect("presign");
    tokio::time::sleep(Duration::from_millis(2100)).await;
    let err = ureq::get(get.uri()).call().expect_err("expired URL");
    assert!(matches!(err, ureq::Error::StatusCode(403)), "{err:?}");
}

#[tokio::test]
async fn checksums_are_verified_stored_and_returned() {
    let s = Server::start();
    let c = client(&s);
    c.create_bucket()
        .bucket("sums")
        .send()
        .await
        .expect("create");
    for alg in [
        ChecksumAlgorithm::Crc32,
        ChecksumAlgorithm::Crc32C,
        ChecksumAlgorithm::Crc64Nvme,
        ChecksumAlgorithm::Sha1,
        ChecksumAlgorithm::Sha256,
    ] {
        let key = format!("obj-{}", alg.as_str());
        let put = c
            .put_object()
            .bucket("sums")
            .key(&key)
            .checksum_algorithm(alg.clone())
            .body(ByteStream::from(data(100_000, 9)))
            .send()
            .await
            .expect("put with checksum");
        let out = c
            .get_object()
            .bucket("sums")
            .key(&key)
            .checksum_mode(ChecksumMode::Enabled)
            .send()
            .await
            .expect("get");
        let stored = match alg {
            ChecksumAlgorithm::Crc32 => (put.checksum_crc32(), out.checksum_crc32()),
            ChecksumAlgorithm::Crc32C => (put.checksum_crc32_c(), out.checksum_crc32_c()),
            ChecksumAlgorithm::Crc64Nvme => (put.checksum_crc64_nvme(), out.checksum_crc64_nvme()),
            ChecksumAlgorithm::Sha1 => (put.checksum_sha1(), out.checksum_sha1()),
            _ => (put.checksum_sha256(), out.checksum_sha256()),
        };
        assert!(stored.0.is_some(), "{alg:?} returned on PUT");
        assert_eq!(stored.0, stored.1, "{alg:?} returned on GET");
        assert_eq!(body(out).await.len(), 100_000);
    }
    // A wrong Content-MD5 is refused before anything is stored.
    assert_eq!(
        failure(
            c.put_object()
                .bucket("sums")
                .key("bad-md5")
                .content_md5("AAAAAAAAAAAAAAAAAAAAAA==")
                .body(ByteStream::from_static(b"hello"))
                .send()
                .await
        ),
        ("BadDigest".into(), 400)
    );
    assert_eq!(
        failure(c.head_object().bucket("sums").key("bad-md5").send().await).1,
        404
    );
    // A wrong x-amz-checksum value.
    assert_eq!(
        failure(
            c.put_object()
                .bucket("sums")
                .key("bad-crc")
                .checksum_crc32("AAAAAA==")
                .body(ByteStream::from_static(b"hello"))
                .send()
                .await
        ),
        ("BadDigest".into(), 400)
    );
}

#[tokio::test]
async fn auth_failures() {
    let s = Server::start();
    let good = client(&s);
    good.create_bucket()
        .bucket("auth")
        .send()
        .await
        .expect("create");
    let wrong_secret = client_with(&s, "not-the-secret", ACCESS_KEY);
    assert_eq!(
        failure(wrong_secret.list_buckets().send().await),
        ("SignatureDoesNotMatch".into(), 403)
    );
    let unknown = client_with(&s, SECRET_KEY, "NOSUCHKEY");
    assert_eq!(
        failure(unknown.list_buckets().send().await),
        ("InvalidAccessKeyId".into(), 403)
    );
    // Anonymous.
    let err = ureq::get(&format!("{}/auth", s.endpoint))
        .call()
        .expect_err("anonymous");
    assert!(matches!(err, ureq::Error::StatusCode(403)), "{err:?}");
}

#[tokio::test]
async fn keys_and_limits() {
    let s = Server::start();
    let c = client(&s);
    c.create_bucket()
        .bucket("keys")
        .send()
        .await
        .expect("create");
    let long = "k".repeat(1025);
    assert_eq!(
        failure(
            c.put_object()
                .bucket("keys")
                .key(&long)
                .body(ByteStream::from_static(b"x"))
                .send()
                .await
        ),
        ("KeyTooLongError".into(), 400)
    );
    let ok_long = format!("{}/{}", "a".repeat(200), "b".repeat(200));
    c.put_object()
        .bucket("keys")
        .key(&ok_long)
        .body(ByteStream::from_static(b"x"))
        .send()
        .await
        .expect("long key");
    // Keys that look like paths are data: stored and returned as given, never escaping.
    let tricky = [
        "../../etc/passwd",
        "a/../b",
        "./x",
        "/leading",
        "sp ace/ü/%41",
        "dir/",
    ];
    for (i, k) in tricky.iter().enumerate() {
        c.put_object()
            .bucket("keys")
            .key(*k)
            .body(ByteStream::from(vec![i as u8; 10]))
            .send()
            .await
            .expect("put tricky key");
        let got = body(
            c.get_object()
                .bucket("keys")
                .key(*k)
                .send()
                .await
                .expect("get"),
        )
        .await;
        assert_eq!(got, vec![i as u8; 10], "{k}");
    }
    let listed: Vec<String> = c
        .list_objects_v2()
        .bucket("keys")
        .send()
        .await
        .expect("list")
        .contents()
        .iter()
        .filter_map(|o| o.key().map(String::from))
        .collect();
    for k in tricky {
        assert!(listed.iter().any(|l| l == k), "{k} listed");
    }
    for d in &s.drives {
        let top: Vec<String> = std::fs::read_dir(d)
            .expect("drive")
            .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
            .collect();
        let mut top = top;
        top.sort();
        assert_eq!(
            top,
            [".cairn.sys", "keys"],
            "nothing outside the bucket directory"
        );
    }
    assert!(!std::path::Path::new("/etc/passwd.cairn").exists());
}

#[tokio::test]
async fn one_gib_streams_in_bounded_memory() {
    let s = Server::start();
    let c = client(&s);
    c.create_bucket()
        .bucket("huge")
        .send()
        .await
        .expect("create");
    let dir = tempfile::tempdir().expect("tmp");
    let path = dir.path().join("one-gib");
    {
        use std::io::Write;
        let mut f = std::io::BufWriter::new(std::fs::File::create(&path).expect("file"));
        let block = data(1 << 20, 5);
        for i in 0..1024u32 {
            let mut b = block.clone();
            b[..4].copy_from_slice(&i.to_le_bytes());
            f.write_all(&b).expect("write");
        }
    }
    let mut md5 = Md5::new();
    {
        use std::io::Read;
        let mut f = std::fs::File::open(&path).expect("open");
        let mut buf = vec![0u8; 1 << 20];
        loop {
            let n = f.read(&mut buf).expect("read");
            if n == 0 {
                break;
            }
            md5.update(&buf[..n]);
        }
    }
    let sent = hex::encode(md5.finalize());
    c.put_object()
        .bucket("huge")
        .key("gib")
        .body(ByteStream::from_path(&path).await.expect("stream"))
        .send()
        .await
        .expect("1 GiB put");
    let out = c
        .get_object()
        .bucket("huge")
        .key("gib")
        .send()
        .await
        .expect("get");
    assert_eq!(out.content_length(), Some(1 << 30));
    let mut stream = out.body;
    let mut md5 = Md5::new();
    let mut n = 0u64;
    while let Some(chunk) = stream.try_next().await.expect("chunk") {
        n += chunk.len() as u64;
        md5.update(&chunk);
    }
    assert_eq!(n, 1 << 30);
    assert_eq!(hex::encode(md5.finalize()), sent);
    let peak = s.peak_rss_kib() / 1024;
    println!("server peak RSS after a 1 GiB PUT + GET: {peak} MiB");
    assert!(peak > 0 && peak < 200, "server peak RSS {peak} MiB");
}

#[tokio::test]
async fn health_probes_and_graceful_shutdown() {
    let s = Server::start();
    for p in [
        "/health/live",
        "/health/ready",
        "/minio/health/live",
        "/minio/health/ready",
    ] {
        let r = ureq::get(&format!("{}{p}", s.endpoint))
            .call()
            .expect("probe");
        assert_eq!(r.status(), 200, "{p}");
    }
    let c = client(&s);
    c.create_bucket()
        .bucket("bye")
        .send()
        .await
        .expect("create");
    let status = s.terminate();
    assert!(status.success(), "exit status {status:?}");
}
