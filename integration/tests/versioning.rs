//! Bucket versioning and tags against the real binary: aws-sdk-s3 through every versioned
//! operation (ids, delete markers, the null version, suspended writes, listings paged across
//! versions and markers, copies and batch deletes by version), boto3 emptying a versioned
//! bucket the way backup tools and test harnesses do before deleting it, object lock
//! (governance with and without the bypass permission, compliance against root, legal hold,
//! default retention, multipart under lock), and object and bucket tags with AWS's limits.
//! One server per test.

use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_s3::primitives::DateTime;
use aws_sdk_s3::types::{
    BucketVersioningStatus, CompletedMultipartUpload, CompletedPart, DefaultRetention, Delete,
    ObjectIdentifier, ObjectLockConfiguration, ObjectLockEnabled, ObjectLockLegalHold,
    ObjectLockLegalHoldStatus, ObjectLockMode, ObjectLockRetention, ObjectLockRetentionMode,
    ObjectLockRule, Tag, Tagging, TaggingDirective, VersioningConfiguration,
};
use aws_sdk_s3::Client;
use cairn_integration::{client, Server};

async fn put(c: &Client, bucket: &str, key: &str, body: &[u8]) -> Option<String> {
    c.put_object()
        .bucket(bucket)
        .key(key)
        .body(ByteStream::from(body.to_vec()))
        .send()
        .await
        .unwrap_or_else(|e| panic!("put {key}: {e:?}"))
        .version_id
}

async fn get(c: &Client, bucket: &str, key: &str, version: Option<&str>) -> Vec<u8> {
    c.get_object()
        .bucket(bucket)
        .key(key)
        .set_version_id(version.map(String::from))
        .send()
        .await
        .unwrap_or_else(|e| panic!("get {key}@{version:?}: {e:?}"))
        .body
        .collect()
        .await
        .expect("body")
        .into_bytes()
        .to_vec()
}

async fn set_versioning(c: &Client, bucket: &str, status: BucketVersioningStatus) {
    c.put_bucket_versioning()
        .bucket(bucket)
        .versioning_configuration(VersioningConfiguration::builder().status(status).build())
        .send()
        .await
        .expect("put versioning");
}

/// A listing entry: key, version id, whether it is the key's latest.
type Entry = (String, String, bool);

/// Every version and every delete marker of the bucket (the SDK hands them over in two
/// lists, each in listing order), read `page` entries at a time.
async fn all_versions(c: &Client, bucket: &str, page: i32) -> (Vec<Entry>, Vec<Entry>) {
    let (mut versions, mut markers) = (Vec::new(), Vec::new());
    let (mut key_marker, mut version_marker): (Option<String>, Option<String>) = (None, None);
    loop {
        let r = c
            .list_object_versions()
            .bucket(bucket)
            .max_keys(page)
            .set_key_marker(key_marker.clone())
            .set_version_id_marker(version_marker.clone())
            .send()
            .await
            .expect("list versions");
        assert!(r.versions().len() + r.delete_markers().len() <= page as usize);
        for v in r.versions() {
            versions.push((
                v.key().unwrap_or_default().to_string(),
                v.version_id().unwrap_or_default().to_string(),
                v.is_latest().unwrap_or(false),
            ));
        }
        for m in r.delete_markers() {
            markers.push((
                m.key().unwrap_or_default().to_string(),
                m.version_id().unwrap_or_default().to_string(),
                m.is_latest().unwrap_or(false),
            ));
        }
        if !r.is_truncated().unwrap_or(false) {
            return (versions, markers);
        }
        key_marker = r.next_key_marker().map(String::from);
        version_marker = r.next_version_id_marker().map(String::from);
        assert!(key_marker.is_some(), "a truncated page says where to go on");
    }
}

fn entry(key: &str, id: &str, latest: bool) -> Entry {
    (key.to_string(), id.to_string(), latest)
}

#[tokio::test]
async fn versioning_end_to_end_with_the_sdk() {
    let s = Server::start_with(4, &[]);
    let c = client(&s);
    let b = "ver";
    c.create_bucket().bucket(b).send().await.expect("bucket");
    // Never versioned: no status, no version ids, every object listed as the null version.
    let v = c
        .get_bucket_versioning()
        .bucket(b)
        .send()
        .await
        .expect("get");
    assert_eq!(v.status(), None);
    assert_eq!(put(&c, b, "old", b"before versioning").await, None);
    assert_eq!(
        all_versions(&c, b, 1000).await,
        (vec![entry("old", "null", true)], vec![])
    );

    set_versioning(&c, b, BucketVersioningStatus::Enabled).await;
    let v = c
        .get_bucket_versioning()
        .bucket(b)
        .send()
        .await
        .expect("get");
    assert_eq!(v.status(), Some(&BucketVersioningStatus::Enabled));
    let mut ids = Vec::new();
    for body in [&b"one"[..], b"two", b"three"] {
        ids.push(put(&c, b, "k", body).await.expect("a version id"));
    }
    assert!(ids[0] != ids[1] && ids[1] != ids[2]);
    assert_eq!(get(&c, b, "k", None).await, b"three");
    assert_eq!(get(&c, b, "k", Some(&ids[0])).await, b"one");
    assert_eq!(get(&c, b, "old", Some("null")).await, b"before versioning");
    let head = c
        .head_object()
        .bucket(b)
        .key("k")
        .version_id(&ids[1])
        .send()
        .await
        .expect("head");
    assert_eq!(head.version_id(), Some(ids[1].as_str()));
    assert_eq!(head.content_length(), Some(3));
    let missing = c
        .get_object()
        .bucket(b)
        .key("k")
        .version_id("0190a1b2c3d4e5f60718293a4b5c6d7e")
        .send()
        .await
        .expect_err("no such version");
    assert_eq!(
        missing
            .as_service_error()
            .and_then(|e| { aws_sdk_s3::error::ProvideErrorMetadata::code(e).map(String::from) }),
        Some("NoSuchVersion".to_string())
    );
    let bad = c
        .get_object()
        .bucket(b)
        .key("k")
        .version_id("not-a-version")
        .send()
        .await
        .expect_err("invalid id");
    assert_eq!(bad.raw_response().map(|r| r.status().as_u16()), Some(400));

    // A delete without an id puts a marker on top.
    let d = c
        .delete_object()
        .bucket(b)
        .key("k")
        .send()
        .await
        .expect("delete");
    assert_eq!(d.delete_marker(), Some(true));
    let marker = d.version_id().expect("marker id").to_string();
    let gone = c
        .get_object()
        .bucket(b)
        .key("k")
        .send()
        .await
        .expect_err("deleted");
    let raw = gone.raw_response().expect("response");
    assert_eq!(raw.status().as_u16(), 404);
    assert_eq!(raw.headers().get("x-amz-delete-marker"), Some("true"));
    assert_eq!(raw.headers().get("x-amz-version-id"), Some(marker.as_str()));
    let by_id = c
        .get_object()
        .bucket(b)
        .key("k")
        .version_id(&marker)
        .send()
        .await
        .expect_err("a marker has no body");
    assert_eq!(by_id.raw_response().map(|r| r.status().as_u16()), Some(405));
    let listed = c.list_objects_v2().bucket(b).send().await.expect("list");
    let keys: Vec<&str> = listed.contents().iter().filter_map(|o| o.key()).collect();
    assert_eq!(keys, ["old"], "a deleted key is not listed");

    // Listing pages of two cross versions and markers, in key order, newest first.
    let want = (
        vec![
            entry("k", &ids[2], false),
            entry("k", &ids[1], false),
            entry("k", &ids[0], false),
            entry("old", "null", true),
        ],
        vec![entry("k", &marker, true)],
    );
    assert_eq!(all_versions(&c, b, 2).await, want);
    assert_eq!(all_versions(&c, b, 1000).await, want);

    // Copy from an old version.
    let copied = c
        .copy_object()
        .bucket(b)
        .key("copy")
        .copy_source(format!("{b}/k?versionId={}", ids[0]))
        .send()
        .await
        .expect("copy a version");
    assert_eq!(copied.copy_source_version_id(), Some(ids[0].as_str()));
    assert!(copied.version_id().is_some());
    assert_eq!(get(&c, b, "copy", None).await, b"one");

    // Batch delete by version: the marker (the object comes back) and one version.
    let del = c
        .delete_objects()
        .bucket(b)
        .delete(
            Delete::builder()
                .objects(
                    ObjectIdentifier::builder()
                        .key("k")
                        .version_id(&marker)
                        .build()
                        .expect("id"),
                )
                .objects(
                    ObjectIdentifier::builder()
                        .key("k")
                        .version_id(&ids[2])
                        .build()
                        .expect("id"),
                )
                .build()
                .expect("delete"),
        )
        .send()
        .await
        .expect("delete objects");
    assert!(del.errors().is_empty(), "{:?}", del.errors());
    assert_eq!(del.deleted().len(), 2);
    assert!(del
        .deleted()
        .iter()
        .any(|d| d.version_id() == Some(marker.as_str()) && d.delete_marker() == Some(true)));
    assert_eq!(get(&c, b, "k", None).await, b"two");

    // Suspended: a write replaces the null version and keeps the others.
    set_versioning(&c, b, BucketVersioningStatus::Suspended).await;
    assert_eq!(put(&c, b, "k", b"null a").await.as_deref(), Some("null"));
    assert_eq!(put(&c, b, "k", b"null b").await.as_deref(), Some("null"));
    assert_eq!(get(&c, b, "k", Some("null")).await, b"null b");
    assert_eq!(get(&c, b, "k", Some(&ids[1])).await, b"two");
    let d = c
        .delete_object()
        .bucket(b)
        .key("k")
        .send()
        .await
        .expect("delete");
    assert_eq!(d.delete_marker(), Some(true));
    assert_eq!(d.version_id(), Some("null"));

    // Versions keep the bucket from being deleted; once each is removed it can be.
    let refused = c
        .delete_bucket()
        .bucket(b)
        .send()
        .await
        .expect_err("not empty");
    assert_eq!(
        refused.raw_response().map(|r| r.status().as_u16()),
        Some(409)
    );
    let (versions, markers) = all_versions(&c, b, 1000).await;
    assert_eq!(markers, [entry("k", "null", true)]);
    for (key, id, _) in versions.into_iter().chain(markers) {
        c.delete_object()
            .bucket(b)
            .key(&key)
            .version_id(&id)
            .send()
            .await
            .expect("delete version");
    }
    assert_eq!(all_versions(&c, b, 1000).await, (vec![], vec![]));
    c.delete_bucket()
        .bucket(b)
        .send()
        .await
        .expect("delete bucket");
}

/// boto3's resource API empties a versioned bucket as backup tools and test harnesses do
/// (`bucket.object_versions.delete()`), then deletes it; its paginator pages through
/// versions and markers.
#[test]
fn boto3_empties_a_versioned_bucket() {
    let s = Server::start_with(4, &[]);
    let script = r#"
import sys, boto3, botocore
ep = sys.argv[1]
cfg = botocore.config.Config(retries={"max_attempts": 1})
s3 = boto3.resource("s3", endpoint_url=ep, region_name="us-east-1",
    aws_access_key_id=sys.argv[2], aws_secret_access_key=sys.argv[3], config=cfg)
cl = s3.meta.client
b = s3.create_bucket(Bucket="boto-ver")
b.Versioning().enable()
assert cl.get_bucket_versioning(Bucket="boto-ver")["Status"] == "Enabled"
for i in range(7):
    for n in range(3):
        cl.put_object(Bucket="boto-ver", Key=f"dir/k{i}", Body=f"{i}.{n}".encode())
    if i % 2 == 0:
        cl.delete_object(Bucket="boto-ver", Key=f"dir/k{i}")
seen, markers = 0, 0
for page in cl.get_paginator("list_object_versions").paginate(Bucket="boto-ver", PaginationConfig={"PageSize": 4}):
    seen += len(page.get("Versions", []))
    markers += len(page.get("DeleteMarkers", []))
assert (seen, markers) == (21, 4), (seen, markers)
listed = cl.list_objects_v2(Bucket="boto-ver").get("KeyCount")
assert listed == 3, listed
b.object_versions.delete()
assert "Versions" not in cl.list_object_versions(Bucket="boto-ver")
b.delete()
print("boto3 versioning checks passed")
"#;
    let keys = [cairn_integration::ACCESS_KEY, cairn_integration::SECRET_KEY];
    let Some(text) = cairn_integration::boto3(script, &[&s.endpoint, keys[0], keys[1]]) else {
        return;
    };
    assert!(text.contains("boto3 versioning checks passed"), "{text}");
}

/// A key with 50 versions (and markers) loses its copy on one drive; `cairn admin heal`
/// rebuilds every version there byte-exact, proven by then destroying the key on `parity`
/// other drives and reading every version again.
#[tokio::test]
async fn heal_rebuilds_all_fifty_versions_of_a_key() {
    let s = Server::start_with(4, &[("CAIRN_HEAL_SPEED", "fast")]);
    let c = client(&s);
    let b = "healver";
    c.create_bucket().bucket(b).send().await.expect("bucket");
    set_versioning(&c, b, BucketVersioningStatus::Enabled).await;
    let mut versions = Vec::new();
    for i in 0..50u32 {
        // Inline and erasure-coded sizes both.
        let len = if i % 5 == 0 {
            300_000
        } else {
            1_000 + i as usize
        };
        let body: Vec<u8> = (0..len as u32)
            .map(|x| (x.wrapping_mul(2_654_435_761) ^ i) as u8)
            .collect();
        let id = put(&c, b, "k", &body).await.expect("id");
        versions.push((id, body));
        if i % 10 == 9 {
            c.delete_object()
                .bucket(b)
                .key("k")
                .send()
                .await
                .expect("marker");
        }
    }
    std::fs::remove_dir_all(s.drives[0].join(b).join("k")).expect("lose the key on drive 0");
    let (code, out) = cairn_integration::admin(&s.endpoint, &["heal", "--bucket", b]);
    assert_eq!(code, 0, "{out}");
    for d in [1, 2] {
        std::fs::remove_dir_all(s.drives[d].join(b).join("k")).expect("destroy a copy");
    }
    for (id, body) in &versions {
        assert!(
            get(&c, b, "k", Some(id)).await == *body,
            "version {id} differs"
        );
    }
    let (listed, markers) = all_versions(&c, b, 1000).await;
    assert_eq!((listed.len(), markers.len()), (50, 5));
    assert!(markers[0].2, "the last marker is the latest version");
}

/// A multipart upload of one small part, begun by `create` (a configured
/// CreateMultipartUpload for `b/key`).
async fn upload_one_part(
    c: &Client,
    b: &str,
    key: &str,
    create: aws_sdk_s3::operation::create_multipart_upload::builders::CreateMultipartUploadFluentBuilder,
) -> aws_sdk_s3::operation::complete_multipart_upload::CompleteMultipartUploadOutput {
    let up = create.send().await.expect("create");
    let id = up.upload_id().expect("id").to_string();
    let part = c
        .upload_part()
        .bucket(b)
        .key(key)
        .upload_id(&id)
        .part_number(1)
        .body(ByteStream::from_static(b"part"))
        .send()
        .await
        .expect("part");
    c.complete_multipart_upload()
        .bucket(b)
        .key(key)
        .upload_id(&id)
        .multipart_upload(
            CompletedMultipartUpload::builder()
                .parts(
                    CompletedPart::builder()
                        .part_number(1)
                        .e_tag(part.e_tag().unwrap_or_default())
                        .build(),
                )
                .build(),
        )
        .send()
        .await
        .expect("complete")
}

fn tagging(pairs: &[(&str, &str)]) -> Tagging {
    let mut t = Tagging::builder();
    for (k, v) in pairs {
        t = t.tag_set(Tag::builder().key(*k).value(*v).build().expect("tag"));
    }
    t.build().expect("tagging")
}

async fn object_tags(c: &Client, b: &str, k: &str, version: Option<&str>) -> Vec<(String, String)> {
    let r = c
        .get_object_tagging()
        .bucket(b)
        .key(k)
        .set_version_id(version.map(String::from))
        .send()
        .await
        .unwrap_or_else(|e| panic!("tags of {k}: {e:?}"));
    r.tag_set()
        .iter()
        .map(|t| (t.key().to_string(), t.value().to_string()))
        .collect()
}

fn pairs(p: &[(&str, &str)]) -> Vec<(String, String)> {
    p.iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

fn error_code<E: aws_sdk_s3::error::ProvideErrorMetadata>(e: &E) -> String {
    e.code().unwrap_or("?").to_string()
}

#[tokio::test]
async fn tags_on_objects_versions_and_buckets_with_their_limits() {
    let s = Server::start_with(4, &[]);
    let c = client(&s);
    let b = "tags";
    c.create_bucket().bucket(b).send().await.expect("bucket");
    // On PUT (URL query form), counted on GET and HEAD, read and replaced by `?tagging`.
    c.put_object()
        .bucket(b)
        .key("k")
        .tagging("team=storage&note=two%20words")
        .body(ByteStream::from_static(b"x"))
        .send()
        .await
        .expect("put with tags");
    assert_eq!(
        object_tags(&c, b, "k", None).await,
        pairs(&[("team", "storage"), ("note", "two words")])
    );
    let got = c.get_object().bucket(b).key("k").send().await.expect("get");
    assert_eq!(got.tag_count(), Some(2));
    c.put_object_tagging()
        .bucket(b)
        .key("k")
        .tagging(tagging(&[("ключ", "значение + / @ : = . _ -")]))
        .send()
        .await
        .expect("unicode tags");
    assert_eq!(
        object_tags(&c, b, "k", None).await,
        pairs(&[("ключ", "значение + / @ : = . _ -")])
    );
    // AWS's limits and errors.
    let eleven: Vec<(String, String)> = (0..11).map(|i| (format!("k{i}"), "v".into())).collect();
    let many: Vec<(&str, &str)> = eleven
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    for (tags, code) in [
        (many.clone(), "BadRequest"),
        (vec![("aws:reserved", "v")], "InvalidTag"),
        (vec![("bad*char", "v")], "InvalidTag"),
        (vec![("dup", "1"), ("dup", "2")], "InvalidTag"),
    ] {
        let e = c
            .put_object_tagging()
            .bucket(b)
            .key("k")
            .tagging(tagging(&tags))
            .send()
            .await
            .expect_err("refused");
        assert_eq!(
            e.as_service_error().map(error_code),
            Some(code.to_string()),
            "{tags:?}"
        );
    }
    let long = "k".repeat(129);
    let e = c
        .put_object()
        .bucket(b)
        .key("long")
        .tagging(format!("{long}=v"))
        .body(ByteStream::from_static(b"x"))
        .send()
        .await
        .expect_err("a 129-character key");
    assert_eq!(
        e.as_service_error().map(error_code),
        Some("InvalidTag".to_string())
    );
    // Copies take the source's tags, or the request's with REPLACE.
    c.copy_object()
        .bucket(b)
        .key("copy")
        .copy_source(format!("{b}/k"))
        .send()
        .await
        .expect("copy");
    assert_eq!(object_tags(&c, b, "copy", None).await.len(), 1);
    c.copy_object()
        .bucket(b)
        .key("copy2")
        .copy_source(format!("{b}/k"))
        .tagging_directive(TaggingDirective::Replace)
        .tagging("fresh=1")
        .send()
        .await
        .expect("copy replacing tags");
    assert_eq!(
        object_tags(&c, b, "copy2", None).await,
        pairs(&[("fresh", "1")])
    );
    // Multipart uploads carry the tags of their creation.
    let create = c
        .create_multipart_upload()
        .bucket(b)
        .key("mp")
        .tagging("mp=yes");
    upload_one_part(&c, b, "mp", create).await;
    assert_eq!(
        object_tags(&c, b, "mp", None).await,
        pairs(&[("mp", "yes")])
    );
    c.delete_object_tagging()
        .bucket(b)
        .key("mp")
        .send()
        .await
        .expect("delete tags");
    assert!(object_tags(&c, b, "mp", None).await.is_empty());

    // Each version has its own tags.
    set_versioning(&c, b, BucketVersioningStatus::Enabled).await;
    let v1 = c
        .put_object()
        .bucket(b)
        .key("v")
        .tagging("n=1")
        .body(ByteStream::from_static(b"1"))
        .send()
        .await
        .expect("v1")
        .version_id
        .expect("id");
    put(&c, b, "v", b"2").await;
    let r = c
        .put_object_tagging()
        .bucket(b)
        .key("v")
        .version_id(&v1)
        .tagging(tagging(&[("n", "one")]))
        .send()
        .await
        .expect("tag an old version");
    assert_eq!(r.version_id(), Some(v1.as_str()));
    assert_eq!(
        object_tags(&c, b, "v", Some(&v1)).await,
        pairs(&[("n", "one")])
    );
    assert!(object_tags(&c, b, "v", None).await.is_empty());

    // Bucket tags: none yet is NoSuchTagSet; at most 50.
    let e = c
        .get_bucket_tagging()
        .bucket(b)
        .send()
        .await
        .expect_err("none");
    assert_eq!(
        e.as_service_error().map(error_code),
        Some("NoSuchTagSet".to_string())
    );
    c.put_bucket_tagging()
        .bucket(b)
        .tagging(tagging(&[("env", "test"), ("owner", "cairn")]))
        .send()
        .await
        .expect("bucket tags");
    let got = c.get_bucket_tagging().bucket(b).send().await.expect("get");
    assert_eq!(got.tag_set().len(), 2);
    let fifty_one: Vec<(String, String)> = (0..51).map(|i| (format!("k{i}"), "v".into())).collect();
    let refs: Vec<(&str, &str)> = fifty_one
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    let e = c
        .put_bucket_tagging()
        .bucket(b)
        .tagging(tagging(&refs))
        .send()
        .await
        .expect_err("51 tags");
    assert_eq!(
        e.as_service_error().map(error_code),
        Some("InvalidTag".to_string())
    );
    c.delete_bucket_tagging()
        .bucket(b)
        .send()
        .await
        .expect("delete");
    assert!(c.get_bucket_tagging().bucket(b).send().await.is_err());
}

fn in_secs(secs: i64) -> DateTime {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock")
        .as_secs() as i64;
    DateTime::from_secs(now + secs)
}

async fn delete_version(
    c: &Client,
    b: &str,
    k: &str,
    id: &str,
    bypass: bool,
) -> Result<(), String> {
    let mut req = c.delete_object().bucket(b).key(k).version_id(id);
    if bypass {
        req = req.bypass_governance_retention(true);
    }
    req.send().await.map(|_| ()).map_err(|e| {
        e.as_service_error()
            .map(error_code)
            .unwrap_or_else(|| format!("{e:?}"))
    })
}

#[tokio::test]
async fn object_lock_keeps_versions_until_their_date() {
    let s = Server::start_with(4, &[]);
    let root = client(&s);
    let b = "locked";
    // A bucket made with object lock is versioned, and stays so.
    root.create_bucket()
        .bucket(b)
        .object_lock_enabled_for_bucket(true)
        .send()
        .await
        .expect("bucket");
    let v = root
        .get_bucket_versioning()
        .bucket(b)
        .send()
        .await
        .expect("get");
    assert_eq!(v.status(), Some(&BucketVersioningStatus::Enabled));
    let e = root
        .put_bucket_versioning()
        .bucket(b)
        .versioning_configuration(
            VersioningConfiguration::builder()
                .status(BucketVersioningStatus::Suspended)
                .build(),
        )
        .send()
        .await
        .expect_err("cannot suspend");
    assert_eq!(
        e.as_service_error().map(error_code),
        Some("InvalidBucketState".to_string())
    );
    // Lock headers on a bucket without lock are refused.
    root.create_bucket()
        .bucket("plain")
        .send()
        .await
        .expect("plain");
    let e = root
        .put_object()
        .bucket("plain")
        .key("k")
        .object_lock_mode(ObjectLockMode::Governance)
        .object_lock_retain_until_date(in_secs(3600))
        .body(ByteStream::from_static(b"x"))
        .send()
        .await
        .expect_err("no lock configuration");
    assert_eq!(
        e.as_service_error().map(error_code),
        Some("InvalidRequest".to_string())
    );

    // GOVERNANCE: only with the bypass header and the permission.
    let gov = root
        .put_object()
        .bucket(b)
        .key("gov")
        .object_lock_mode(ObjectLockMode::Governance)
        .object_lock_retain_until_date(in_secs(3600))
        .body(ByteStream::from_static(b"governed"))
        .send()
        .await
        .expect("put under governance")
        .version_id
        .expect("id");
    let head = root
        .head_object()
        .bucket(b)
        .key("gov")
        .send()
        .await
        .expect("head");
    assert_eq!(head.object_lock_mode(), Some(&ObjectLockMode::Governance));
    assert!(head.object_lock_retain_until_date().is_some());
    let work = tempfile::tempdir().expect("tmp");
    let no_bypass = work.path().join("nobypass.json");
    std::fs::write(
        &no_bypass,
        r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"s3:*","Resource":"arn:aws:s3:::*"},{"Effect":"Deny","Action":"s3:BypassGovernanceRetention","Resource":"arn:aws:s3:::*"}]}"#,
    )
    .expect("policy");
    for args in [
        vec!["user", "add", "operator", "operator-secret-1"],
        vec![
            "policy",
            "create",
            "nobypass",
            no_bypass.to_str().expect("utf8"),
        ],
        vec!["policy", "attach", "nobypass", "--user", "operator"],
    ] {
        let (code, out) = cairn_integration::admin(&s.endpoint, &args);
        assert_eq!(code, 0, "{args:?}: {out}");
    }
    let operator =
        cairn_integration::client_for(&s.endpoint, "operator", "operator-secret-1", false);
    assert_eq!(
        delete_version(&root, b, "gov", &gov, false).await,
        Err("AccessDenied".into())
    );
    assert_eq!(
        delete_version(&operator, b, "gov", &gov, true).await,
        Err("AccessDenied".into()),
        "the bypass needs s3:BypassGovernanceRetention"
    );
    // Shortening a governance retention is a bypass too.
    let shorter = ObjectLockRetention::builder()
        .mode(ObjectLockRetentionMode::Governance)
        .retain_until_date(in_secs(60))
        .build();
    assert!(root
        .put_object_retention()
        .bucket(b)
        .key("gov")
        .retention(shorter.clone())
        .send()
        .await
        .is_err());
    root.put_object_retention()
        .bucket(b)
        .key("gov")
        .retention(shorter)
        .bypass_governance_retention(true)
        .send()
        .await
        .expect("root may shorten with the bypass");
    assert_eq!(delete_version(&root, b, "gov", &gov, true).await, Ok(()));

    // COMPLIANCE: nobody, root included, before the date; it can only be extended.
    let comp = root
        .put_object()
        .bucket(b)
        .key("comp")
        .object_lock_mode(ObjectLockMode::Compliance)
        .object_lock_retain_until_date(in_secs(3600))
        .body(ByteStream::from_static(b"kept"))
        .send()
        .await
        .expect("put under compliance")
        .version_id
        .expect("id");
    assert_eq!(
        delete_version(&root, b, "comp", &comp, true).await,
        Err("AccessDenied".into())
    );
    let weaker = ObjectLockRetention::builder()
        .mode(ObjectLockRetentionMode::Governance)
        .retain_until_date(in_secs(7200))
        .build();
    assert!(root
        .put_object_retention()
        .bucket(b)
        .key("comp")
        .retention(weaker)
        .bypass_governance_retention(true)
        .send()
        .await
        .is_err());
    root.put_object_retention()
        .bucket(b)
        .key("comp")
        .retention(
            ObjectLockRetention::builder()
                .mode(ObjectLockRetentionMode::Compliance)
                .retain_until_date(in_secs(7200))
                .build(),
        )
        .send()
        .await
        .expect("extend");
    let r = root
        .get_object_retention()
        .bucket(b)
        .key("comp")
        .send()
        .await
        .expect("get retention");
    assert_eq!(
        r.retention().and_then(|r| r.mode()),
        Some(&ObjectLockRetentionMode::Compliance)
    );
    // A delete without a version id still just adds a marker.
    let d = root
        .delete_object()
        .bucket(b)
        .key("comp")
        .send()
        .await
        .expect("marker");
    assert_eq!(d.delete_marker(), Some(true));
    assert_eq!(get(&root, b, "comp", Some(&comp)).await, b"kept");
    let del = root
        .delete_objects()
        .bucket(b)
        .delete(
            Delete::builder()
                .objects(
                    ObjectIdentifier::builder()
                        .key("comp")
                        .version_id(&comp)
                        .build()
                        .expect("id"),
                )
                .build()
                .expect("delete"),
        )
        .bypass_governance_retention(true)
        .send()
        .await
        .expect("delete objects answers");
    assert_eq!(
        del.errors().len(),
        1,
        "a compliance version is not deleted in a batch"
    );

    // Legal hold: blocks deletion until removed.
    let held = root
        .put_object()
        .bucket(b)
        .key("held")
        .object_lock_legal_hold_status(ObjectLockLegalHoldStatus::On)
        .body(ByteStream::from_static(b"h"))
        .send()
        .await
        .expect("held")
        .version_id
        .expect("id");
    assert_eq!(
        delete_version(&root, b, "held", &held, true).await,
        Err("AccessDenied".into())
    );
    root.put_object_legal_hold()
        .bucket(b)
        .key("held")
        .legal_hold(
            ObjectLockLegalHold::builder()
                .status(ObjectLockLegalHoldStatus::Off)
                .build(),
        )
        .send()
        .await
        .expect("release");
    assert_eq!(delete_version(&root, b, "held", &held, false).await, Ok(()));

    // A default retention applies to new versions, multipart ones included.
    root.put_object_lock_configuration()
        .bucket(b)
        .object_lock_configuration(
            ObjectLockConfiguration::builder()
                .object_lock_enabled(ObjectLockEnabled::Enabled)
                .rule(
                    ObjectLockRule::builder()
                        .default_retention(
                            DefaultRetention::builder()
                                .mode(ObjectLockRetentionMode::Governance)
                                .days(1)
                                .build(),
                        )
                        .build(),
                )
                .build(),
        )
        .send()
        .await
        .expect("default retention");
    let got = root
        .get_object_lock_configuration()
        .bucket(b)
        .send()
        .await
        .expect("get configuration");
    let days = got
        .object_lock_configuration()
        .and_then(|c| c.rule())
        .and_then(|r| r.default_retention())
        .and_then(|d| d.days());
    assert_eq!(days, Some(1));
    let plain = put(&root, b, "defaulted", b"d").await.expect("id");
    assert_eq!(
        delete_version(&root, b, "defaulted", &plain, false).await,
        Err("AccessDenied".into())
    );
    let create = root.create_multipart_upload().bucket(b).key("mp");
    let done = upload_one_part(&root, b, "mp", create).await;
    let mp = done.version_id().expect("id").to_string();
    let head = root
        .head_object()
        .bucket(b)
        .key("mp")
        .send()
        .await
        .expect("head");
    assert_eq!(head.object_lock_mode(), Some(&ObjectLockMode::Governance));
    assert_eq!(
        delete_version(&root, b, "mp", &mp, false).await,
        Err("AccessDenied".into())
    );
    assert_eq!(delete_version(&root, b, "mp", &mp, true).await, Ok(()));
    // The bucket cannot go while it holds protected versions.
    assert!(root.delete_bucket().bucket(b).send().await.is_err());
}
