//! Lifecycle against the real binary with aws-sdk-s3, one lifecycle "day" shortened to 5 s
//! (`CAIRN_LIFECYCLE_DEBUG_DAY`): the configuration's round trip and AWS's errors, then
//! expiry of current versions (a delete marker on a versioned bucket, removal on an
//! unversioned one), of noncurrent versions (keeping the newest ones asked for), of delete
//! markers left alone, of incomplete uploads, tag and size filters, `x-amz-expiration`, a
//! locked version surviving a rule that would remove it, and `cairn admin info` showing
//! the passes. One server for the whole file.

use std::time::{Duration, Instant};

use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_s3::types::{
    AbortIncompleteMultipartUpload, BucketLifecycleConfiguration, ExpirationStatus,
    LifecycleExpiration, LifecycleRule, LifecycleRuleAndOperator, LifecycleRuleFilter,
    NoncurrentVersionExpiration, ObjectLockMode, Tag, Transition, TransitionStorageClass,
};
use aws_sdk_s3::Client;
use cairn_integration::{client, Server};

const DAY: &str = "5s";

fn rule(id: &str, prefix: &str) -> aws_sdk_s3::types::builders::LifecycleRuleBuilder {
    LifecycleRule::builder()
        .id(id)
        .status(ExpirationStatus::Enabled)
        .filter(LifecycleRuleFilter::builder().prefix(prefix).build())
}

fn days(n: i32) -> LifecycleExpiration {
    LifecycleExpiration::builder().days(n).build()
}

fn noncurrent(days: i32, keep: Option<i32>) -> NoncurrentVersionExpiration {
    NoncurrentVersionExpiration::builder()
        .noncurrent_days(days)
        .set_newer_noncurrent_versions(keep)
        .build()
}

async fn put_rules(c: &Client, bucket: &str, rules: Vec<LifecycleRule>) -> Result<(), String> {
    c.put_bucket_lifecycle_configuration()
        .bucket(bucket)
        .lifecycle_configuration(
            BucketLifecycleConfiguration::builder()
                .set_rules(Some(rules))
                .build()
                .expect("configuration"),
        )
        .send()
        .await
        .map(|_| ())
        .map_err(|e| {
            e.as_service_error()
                .and_then(|s| s.meta().code().map(String::from))
                .unwrap_or_else(|| format!("{e:?}"))
        })
}

async fn make_bucket(c: &Client, bucket: &str, versioned: bool) {
    c.create_bucket()
        .bucket(bucket)
        .send()
        .await
        .expect("bucket");
    if versioned {
        cairn_integration::enable_versioning(c, bucket).await;
    }
}

async fn put(
    c: &Client,
    bucket: &str,
    key: &str,
) -> aws_sdk_s3::operation::put_object::PutObjectOutput {
    c.put_object()
        .bucket(bucket)
        .key(key)
        .body(ByteStream::from(key.as_bytes().to_vec()))
        .send()
        .await
        .unwrap_or_else(|e| panic!("put {key}: {e:?}"))
}

/// `(key, version id, is a delete marker)` of every version under `prefix`.
async fn versions(c: &Client, bucket: &str, prefix: &str) -> Vec<(String, String, bool)> {
    let r = c
        .list_object_versions()
        .bucket(bucket)
        .prefix(prefix)
        .send()
        .await
        .expect("list versions");
    let mut out: Vec<(String, String, bool)> = r
        .versions()
        .iter()
        .map(|v| {
            (
                v.key().unwrap_or_default().into(),
                v.version_id().unwrap_or_default().into(),
                false,
            )
        })
        .chain(r.delete_markers().iter().map(|m| {
            (
                m.key().unwrap_or_default().into(),
                m.version_id().unwrap_or_default().into(),
                true,
            )
        }))
        .collect();
    out.sort();
    out
}

/// Poll `f` every half second for up to a minute (twelve lifecycle days).
async fn eventually<F, Fut>(what: &str, mut f: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = Instant::now() + Duration::from_secs(60);
    while Instant::now() < deadline {
        if f().await {
            return;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    panic!("lifecycle never got there: {what}");
}

#[tokio::test]
async fn lifecycle_expires_what_its_rules_say_and_nothing_else() {
    let s = Server::start_with(4, &[("CAIRN_LIFECYCLE_DEBUG_DAY", DAY)]);
    let c = client(&s);

    // ---- the configuration ----
    make_bucket(&c, "lc-v", true).await;
    let none = c
        .get_bucket_lifecycle_configuration()
        .bucket("lc-v")
        .send()
        .await
        .expect_err("no configuration yet");
    assert_eq!(
        none.as_service_error().and_then(|e| e.meta().code()),
        Some("NoSuchLifecycleConfiguration")
    );
    let transition = rule("t", "")
        .transitions(
            Transition::builder()
                .days(30)
                .storage_class(TransitionStorageClass::Glacier)
                .build(),
        )
        .build()
        .expect("rule");
    assert_eq!(
        put_rules(&c, "lc-v", vec![transition]).await,
        Err("NotImplemented".into())
    );
    let a = rule("same", "a/")
        .expiration(days(1))
        .build()
        .expect("rule");
    let b = rule("same", "b/")
        .expiration(days(1))
        .build()
        .expect("rule");
    assert_eq!(
        put_rules(&c, "lc-v", vec![a, b]).await,
        Err("InvalidArgument".into())
    );
    let zero = rule("z", "").expiration(days(0)).build().expect("rule");
    assert_eq!(
        put_rules(&c, "lc-v", vec![zero]).await,
        Err("InvalidArgument".into())
    );
    let nothing = rule("n", "").build().expect("rule");
    assert_eq!(
        put_rules(&c, "lc-v", vec![nothing]).await,
        Err("InvalidRequest".into())
    );

    let tagged = LifecycleRuleFilter::builder()
        .and(
            LifecycleRuleAndOperator::builder()
                .prefix("tag/")
                .tags(
                    Tag::builder()
                        .key("class")
                        .value("tmp")
                        .build()
                        .expect("tag"),
                )
                .object_size_greater_than(5)
                .build(),
        )
        .build();
    let rules = vec![
        rule("current", "cur/")
            .expiration(days(1))
            .build()
            .expect("rule"),
        rule("noncurrent", "nc/")
            .noncurrent_version_expiration(noncurrent(1, Some(1)))
            .build()
            .expect("rule"),
        rule("markers", "dm/")
            .noncurrent_version_expiration(noncurrent(1, None))
            .build()
            .expect("rule"),
        rule("markers-alone", "dm/")
            .expiration(
                LifecycleExpiration::builder()
                    .expired_object_delete_marker(true)
                    .build(),
            )
            .build()
            .expect("rule"),
        rule("uploads", "mpu/")
            .abort_incomplete_multipart_upload(
                AbortIncompleteMultipartUpload::builder()
                    .days_after_initiation(1)
                    .build(),
            )
            .build()
            .expect("rule"),
        LifecycleRule::builder()
            .id("tagged")
            .status(ExpirationStatus::Enabled)
            .filter(tagged)
            .expiration(days(1))
            .build()
            .expect("rule"),
        rule("off", "keep/")
            .status(ExpirationStatus::Disabled)
            .expiration(days(1))
            .build()
            .expect("rule"),
    ];
    put_rules(&c, "lc-v", rules).await.expect("put rules");
    let got = c
        .get_bucket_lifecycle_configuration()
        .bucket("lc-v")
        .send()
        .await
        .expect("get rules");
    let ids: Vec<&str> = got.rules().iter().filter_map(|r| r.id()).collect();
    assert_eq!(
        ids,
        [
            "current",
            "noncurrent",
            "markers",
            "markers-alone",
            "uploads",
            "tagged",
            "off"
        ]
    );
    let t = &got.rules()[5];
    let and = t.filter().and_then(|f| f.and()).expect("and filter");
    assert_eq!(and.prefix(), Some("tag/"));
    assert_eq!(and.tags().len(), 1);
    assert_eq!(and.object_size_greater_than(), Some(5));
    assert_eq!(
        got.rules()[1]
            .noncurrent_version_expiration()
            .and_then(|n| n.newer_noncurrent_versions()),
        Some(1)
    );

    // ---- objects for every rule ----
    let cur = put(&c, "lc-v", "cur/a").await;
    let exp = cur.expiration().expect("x-amz-expiration on PUT");
    assert!(
        exp.contains("rule-id=\"current\"") && exp.contains("expiry-date=\""),
        "{exp}"
    );
    let head = c
        .head_object()
        .bucket("lc-v")
        .key("cur/a")
        .send()
        .await
        .expect("head");
    assert_eq!(head.expiration(), Some(exp));
    assert!(
        put(&c, "lc-v", "keep/a").await.expiration().is_none(),
        "a disabled rule"
    );
    let nc1 = put(&c, "lc-v", "nc/k").await.version_id.expect("id");
    let nc2 = put(&c, "lc-v", "nc/k").await.version_id.expect("id");
    let nc3 = put(&c, "lc-v", "nc/k").await.version_id.expect("id");
    put(&c, "lc-v", "dm/k").await;
    c.delete_object()
        .bucket("lc-v")
        .key("dm/k")
        .send()
        .await
        .expect("marker");
    let upload = c
        .create_multipart_upload()
        .bucket("lc-v")
        .key("mpu/big")
        .send()
        .await
        .expect("upload");
    let upload_id = upload.upload_id().expect("upload id").to_string();
    for (key, tags) in [
        ("tag/hit", "class=tmp"),
        ("tag/untagged", ""),
        ("tag/h", "class=tmp"),
    ] {
        c.put_object()
            .bucket("lc-v")
            .key(key)
            .tagging(tags)
            .body(ByteStream::from(key.as_bytes().to_vec()))
            .send()
            .await
            .expect("tagged put");
    }

    // ---- what the passes do ----
    // A current version expires into a delete marker; the version itself stays.
    let cur_id = cur.version_id.clone().expect("id");
    eventually("cur/a gets a delete marker", || async {
        let v = versions(&c, "lc-v", "cur/").await;
        v.len() == 2 && v.iter().any(|v| v.2) && v.iter().any(|v| !v.2 && v.1 == cur_id)
    })
    .await;
    let gone = c.get_object().bucket("lc-v").key("cur/a").send().await;
    assert!(gone.is_err(), "the latest is a delete marker");
    // Noncurrent versions go, except the newest noncurrent one the rule keeps.
    eventually(
        "nc/k keeps its latest and one noncurrent version",
        || async {
            let v: Vec<String> = versions(&c, "lc-v", "nc/")
                .await
                .into_iter()
                .map(|v| v.1)
                .collect();
            v.len() == 2 && v.contains(&nc2) && v.contains(&nc3)
        },
    )
    .await;
    assert!(!versions(&c, "lc-v", "nc/").await.iter().any(|v| v.1 == nc1));
    // A deleted key loses its noncurrent version, then the marker left alone.
    eventually("dm/k disappears entirely", || async {
        versions(&c, "lc-v", "dm/").await.is_empty()
    })
    .await;
    // The incomplete upload is aborted.
    eventually("the incomplete upload is aborted", || async {
        c.list_multipart_uploads()
            .bucket("lc-v")
            .send()
            .await
            .map(|r| {
                r.uploads()
                    .iter()
                    .all(|u| u.upload_id() != Some(upload_id.as_str()))
            })
            .unwrap_or(false)
    })
    .await;
    // Only the tagged object larger than 5 bytes ("tag/hit", not "tag/h") expires.
    eventually("tag/hit expires", || async {
        versions(&c, "lc-v", "tag/hit").await.iter().any(|v| v.2)
    })
    .await;
    for key in ["tag/untagged", "tag/h", "keep/a"] {
        assert!(
            !versions(&c, "lc-v", key)
                .await
                .iter()
                .any(|v| v.0 == key && v.2),
            "{key} must not expire"
        );
    }

    // ---- an unversioned bucket: expiry removes the object ----
    make_bucket(&c, "lc-plain", false).await;
    put_rules(
        &c,
        "lc-plain",
        vec![rule("all", "").expiration(days(1)).build().expect("rule")],
    )
    .await
    .expect("rules");
    put(&c, "lc-plain", "x").await;
    eventually("lc-plain/x is removed", || async {
        versions(&c, "lc-plain", "").await.is_empty()
    })
    .await;

    // ---- object lock: a locked version outlives a rule that would remove it ----
    c.create_bucket()
        .bucket("lc-lock")
        .object_lock_enabled_for_bucket(true)
        .send()
        .await
        .expect("locked bucket");
    put_rules(
        &c,
        "lc-lock",
        vec![rule("purge", "")
            .expiration(days(1))
            .noncurrent_version_expiration(noncurrent(1, None))
            .build()
            .expect("rule")],
    )
    .await
    .expect("rules");
    let until = aws_sdk_s3::primitives::DateTime::from_secs(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .expect("clock")
            .as_secs() as i64
            + 3600,
    );
    let locked = c
        .put_object()
        .bucket("lc-lock")
        .key("k")
        .object_lock_mode(ObjectLockMode::Compliance)
        .object_lock_retain_until_date(until)
        .body(ByteStream::from_static(b"keep me"))
        .send()
        .await
        .expect("locked put")
        .version_id
        .expect("id");
    // The rule expires the current version (a marker), then would remove it as
    // noncurrent: the lock keeps it.
    eventually(
        "the locked version is noncurrent behind a marker",
        || async { versions(&c, "lc-lock", "").await.iter().any(|v| v.2) },
    )
    .await;
    eventually("a pass counted the version it had to keep", || async {
        let (code, out) = cairn_integration::admin(&s.endpoint, &["info", "--json"]);
        code == 0
            && serde_json::from_str::<serde_json::Value>(&out)
                .ok()
                .and_then(|v| v["heal"]["lifecycle"]["kept_by_lock"].as_u64())
                .is_some_and(|n| n > 0)
    })
    .await;
    let body = c
        .get_object()
        .bucket("lc-lock")
        .key("k")
        .version_id(&locked)
        .send()
        .await
        .expect("the locked version is still there")
        .body
        .collect()
        .await
        .expect("body")
        .into_bytes();
    assert_eq!(&body[..], b"keep me");

    // ---- the operator sees the passes ----
    let (code, out) = cairn_integration::admin(&s.endpoint, &["info"]);
    assert_eq!(code, 0, "{out}");
    let line = out
        .lines()
        .find(|l| l.starts_with("Lifecycle: last pass"))
        .unwrap_or_else(|| panic!("no lifecycle line in {out}"));
    assert!(line.contains("expired since start"), "{line}");
    let (_, json) = cairn_integration::admin(&s.endpoint, &["info", "--json"]);
    let v: serde_json::Value = serde_json::from_str(&json).expect("json");
    assert!(
        v["heal"]["lifecycle"]["total_expired"]
            .as_u64()
            .unwrap_or(0)
            >= 6,
        "{json}"
    );
    assert!(
        s.log().contains("CAIRN_LIFECYCLE_DEBUG_DAY"),
        "the shortened day is announced"
    );

    // Deleting the configuration stops it.
    c.delete_bucket_lifecycle()
        .bucket("lc-plain")
        .send()
        .await
        .expect("delete rules");
    put(&c, "lc-plain", "stays").await;
    tokio::time::sleep(Duration::from_secs(12)).await;
    assert_eq!(versions(&c, "lc-plain", "").await.len(), 1);
}
