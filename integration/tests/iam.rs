//! Identity and access against the real binary: users, groups, policies and access keys
//! made with `cairn admin`, then used by aws-sdk-s3, boto3, the AWS CLI, s3cmd and curl
//! (anonymous). One server per test.

use std::io::Write;
use std::process::{Command, Stdio};
use std::time::Duration;

use aws_sdk_s3::primitives::ByteStream;
use cairn_integration::{admin, client, require_tool, Server, ACCESS_KEY, REGION, SECRET_KEY};

fn rt() -> tokio::runtime::Runtime {
    tokio::runtime::Runtime::new().expect("runtime")
}

fn sdk(s: &Server, access: &str, secret: &str, token: Option<&str>) -> aws_sdk_s3::Client {
    use aws_sdk_s3::config::{BehaviorVersion, Credentials, Region};
    let conf = aws_sdk_s3::Config::builder()
        .behavior_version(BehaviorVersion::latest())
        .region(Region::new(REGION))
        .endpoint_url(&s.endpoint)
        .force_path_style(true)
        .credentials_provider(Credentials::new(
            access,
            secret,
            token.map(String::from),
            None,
            "test",
        ))
        .retry_config(aws_sdk_s3::config::retry::RetryConfig::disabled())
        .http_client(aws_smithy_http_client::Builder::new().build_http())
        .build();
    aws_sdk_s3::Client::from_conf(conf)
}

/// The value after `name` on a line of `out` (`cairn admin accesskey create`'s output).
fn field(out: &str, name: &str) -> String {
    out.lines()
        .find_map(|l| l.strip_prefix(name))
        .map(|v| v.trim().to_string())
        .unwrap_or_else(|| panic!("no {name} in {out}"))
}

/// `cairn admin ...` that must succeed.
fn ok(s: &Server, args: &[&str]) -> String {
    let (code, out) = admin(&s.endpoint, args);
    assert_eq!(code, 0, "cairn admin {args:?}: {out}");
    out
}

/// The S3 error code of a failed SDK call ("" when it succeeded).
fn code<T, E: aws_sdk_s3::error::ProvideErrorMetadata>(r: Result<T, E>) -> String {
    match r {
        Ok(_) => String::new(),
        Err(e) => e.code().unwrap_or("?").to_string(),
    }
}

async fn put(c: &aws_sdk_s3::Client, bucket: &str, key: &str) -> String {
    code(
        c.put_object()
            .bucket(bucket)
            .key(key)
            .body(ByteStream::from_static(b"data"))
            .send()
            .await,
    )
}

async fn get(c: &aws_sdk_s3::Client, bucket: &str, key: &str) -> String {
    code(c.get_object().bucket(bucket).key(key).send().await)
}

async fn list(c: &aws_sdk_s3::Client, bucket: &str, prefix: &str) -> String {
    code(
        c.list_objects_v2()
            .bucket(bucket)
            .prefix(prefix)
            .send()
            .await,
    )
}

async fn delete(c: &aws_sdk_s3::Client, bucket: &str, key: &str) -> String {
    code(c.delete_object().bucket(bucket).key(key).send().await)
}

fn write_policy(dir: &std::path::Path, name: &str, doc: &str) -> String {
    let p = dir.join(format!("{name}.json"));
    std::fs::write(&p, doc).expect("policy file");
    p.to_str().expect("utf8").to_string()
}

#[test]
fn users_groups_policies_and_keys_decide_what_each_identity_may_do() {
    let s = Server::start();
    let work = tempfile::tempdir().expect("tmp");
    let rt = rt();
    let root = client(&s);
    rt.block_on(async {
        root.create_bucket()
            .bucket("data")
            .send()
            .await
            .expect("bucket");
        for k in ["pub/a", "secret/s", "home/alice/x", "home/bob/y"] {
            assert_eq!(put(&root, "data", k).await, "");
        }
    });

    // readonly: GET and LIST, not PUT or DELETE.
    ok(&s, &["user", "add", "reader", "reader-secret-1"]);
    ok(&s, &["policy", "attach", "readonly", "--user", "reader"]);
    let reader = sdk(&s, "reader", "reader-secret-1", None);
    rt.block_on(async {
        assert_eq!(get(&reader, "data", "pub/a").await, "");
        assert_eq!(list(&reader, "data", "").await, "");
        assert!(reader.list_buckets().send().await.is_ok());
        assert_eq!(put(&reader, "data", "pub/new").await, "AccessDenied");
        assert_eq!(delete(&reader, "data", "pub/a").await, "AccessDenied");
    });

    // `cairn bench` with a user's keys: the read-only user measures GETs of objects the
    // root user prepared, and its PUT run fails with AccessDenied counted.
    let bench = |access: &str, secret: &str, op: &str, keep: bool| {
        let out = Command::new(cairn_integration::binary())
            .args([
                "bench",
                "--endpoint",
                &s.endpoint,
                "--access-key",
                access,
                "--secret-key",
                secret,
                "--op",
                op,
                "--size",
                "4KiB",
                "--concurrency",
                "2",
                "--duration",
                "1s",
                "--objects",
                "4",
                "--bucket",
                "benchb",
            ])
            .args(keep.then_some("--keep-data"))
            .env_remove("CAIRN_ROOT_USER")
            .env_remove("CAIRN_ROOT_PASSWORD")
            .output()
            .expect("cairn bench");
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        (out.status.code(), text)
    };
    // Root keeps its objects for the reader (by default a run removes what it wrote).
    let (code_root, text) = bench(ACCESS_KEY, SECRET_KEY, "get", true);
    assert_eq!(code_root, Some(0), "root bench: {text}");
    let (code_reader, text) = bench("reader", "reader-secret-1", "get", false);
    assert_eq!(code_reader, Some(0), "read-only bench of GET: {text}");
    assert!(text.contains("GET"), "{text}");
    let (code_put, text) = bench("reader", "reader-secret-1", "put", false);
    assert_eq!(code_put, Some(1), "read-only bench of PUT: {text}");
    assert!(text.contains("AccessDenied"), "{text}");

    // A policy with ${aws:username}: each user in its own home.
    let homes = write_policy(
        work.path(),
        "homes",
        r#"{"Version":"2012-10-17","Statement":[
            {"Effect":"Allow","Action":["s3:GetObject","s3:PutObject","s3:DeleteObject"],
             "Resource":["arn:aws:s3:::data/home/${aws:username}/*"]},
            {"Effect":"Allow","Action":"s3:ListBucket","Resource":"arn:aws:s3:::data",
             "Condition":{"StringLike":{"s3:prefix":["home/${aws:username}/*"]}}}]}"#,
    );
    ok(&s, &["policy", "create", "homes", &homes]);
    // The secret from stdin (`-`).
    let mut child = Command::new(cairn_integration::binary())
        .args([
            "admin",
            "user",
            "add",
            "alice",
            "-",
            "--endpoint",
            &s.endpoint,
        ])
        .env("CAIRN_ROOT_USER", ACCESS_KEY)
        .env("CAIRN_ROOT_PASSWORD", SECRET_KEY)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("spawn");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(b"alice-secret-1\n")
        .expect("write");
    assert!(child.wait().expect("wait").success());
    ok(&s, &["policy", "attach", "homes", "--user", "alice"]);
    let alice = sdk(&s, "alice", "alice-secret-1", None);
    rt.block_on(async {
        assert_eq!(put(&alice, "data", "home/alice/new").await, "");
        assert_eq!(get(&alice, "data", "home/alice/x").await, "");
        assert_eq!(list(&alice, "data", "home/alice/").await, "");
        assert_eq!(put(&alice, "data", "home/bob/new").await, "AccessDenied");
        assert_eq!(get(&alice, "data", "home/bob/y").await, "AccessDenied");
        assert_eq!(list(&alice, "data", "home/bob/").await, "AccessDenied");
        assert_eq!(list(&alice, "data", "").await, "AccessDenied");
        // A write that also sets a public ACL or tags needs those actions too: alice may
        // write her home, not publish it (x-amz-acl: private grants nothing more).
        let with = |acl: Option<aws_sdk_s3::types::ObjectCannedAcl>, tags: Option<&str>| {
            alice
                .put_object()
                .bucket("data")
                .key("home/alice/extra")
                .set_acl(acl)
                .set_tagging(tags.map(String::from))
                .body(ByteStream::from_static(b"x"))
                .send()
        };
        use aws_sdk_s3::types::ObjectCannedAcl as Canned;
        assert_eq!(
            code(with(Some(Canned::PublicRead), None).await),
            "AccessDenied"
        );
        assert_eq!(code(with(None, Some("k=v")).await), "AccessDenied");
        assert_eq!(code(with(Some(Canned::Private), None).await), "");
        // DeleteObjects is decided per key.
        let del = alice
            .delete_objects()
            .bucket("data")
            .delete(
                aws_sdk_s3::types::Delete::builder()
                    .objects(
                        aws_sdk_s3::types::ObjectIdentifier::builder()
                            .key("home/alice/new")
                            .build()
                            .expect("id"),
                    )
                    .objects(
                        aws_sdk_s3::types::ObjectIdentifier::builder()
                            .key("home/bob/y")
                            .build()
                            .expect("id"),
                    )
                    .build()
                    .expect("delete"),
            )
            .send()
            .await
            .expect("delete objects");
        assert_eq!(del.deleted().len(), 1, "{del:?}");
        assert_eq!(del.errors()[0].code(), Some("AccessDenied"));
        assert_eq!(get(&root, "data", "home/bob/y").await, "");
    });

    // An explicit Deny beats readwrite's Allow.
    let deny = write_policy(
        work.path(),
        "deny",
        r#"{"Version":"2012-10-17","Statement":[{"Effect":"Deny","Action":"s3:GetObject","Resource":"arn:aws:s3:::data/secret/*"}]}"#,
    );
    ok(&s, &["policy", "create", "no-secrets", &deny]);
    ok(&s, &["user", "add", "writer", "writer-secret-1"]);
    ok(&s, &["policy", "attach", "readwrite", "--user", "writer"]);
    ok(&s, &["policy", "attach", "no-secrets", "--user", "writer"]);
    let writer = sdk(&s, "writer", "writer-secret-1", None);
    rt.block_on(async {
        assert_eq!(get(&writer, "data", "pub/a").await, "");
        assert_eq!(put(&writer, "data", "pub/w").await, "");
        assert_eq!(get(&writer, "data", "secret/s").await, "AccessDenied");
    });

    // A disabled user is refused; enabled again, it works.
    ok(&s, &["user", "disable", "reader"]);
    rt.block_on(async {
        assert_eq!(get(&reader, "data", "pub/a").await, "InvalidAccessKeyId");
    });
    let info = ok(&s, &["user", "info", "reader", "--json"]);
    let v: serde_json::Value = serde_json::from_str(&info).expect("json");
    assert_eq!(v["enabled"], false);
    ok(&s, &["user", "enable", "reader"]);
    rt.block_on(async {
        assert_eq!(get(&reader, "data", "pub/a").await, "");
    });

    // Group policies apply to members only.
    ok(&s, &["user", "add", "gina", "gina-secret-1"]);
    let gina = sdk(&s, "gina", "gina-secret-1", None);
    rt.block_on(async {
        assert_eq!(put(&gina, "data", "g").await, "AccessDenied");
    });
    ok(&s, &["group", "add", "devs", "gina"]);
    ok(&s, &["policy", "attach", "readwrite", "--group", "devs"]);
    let g: serde_json::Value =
        serde_json::from_str(&ok(&s, &["group", "info", "devs", "--json"])).expect("json");
    assert_eq!(g["members"][0], "gina");
    rt.block_on(async {
        assert_eq!(put(&gina, "data", "g").await, "");
    });
    // A disabled group's policies stop applying; enabled again, they apply again.
    ok(&s, &["group", "disable", "devs"]);
    let g: serde_json::Value =
        serde_json::from_str(&ok(&s, &["group", "info", "devs", "--json"])).expect("json");
    assert_eq!(g["enabled"], false);
    rt.block_on(async {
        assert_eq!(put(&gina, "data", "g1").await, "AccessDenied");
    });
    ok(&s, &["group", "enable", "devs"]);
    rt.block_on(async {
        assert_eq!(put(&gina, "data", "g1").await, "");
    });
    ok(&s, &["group", "remove", "devs", "gina"]);
    rt.block_on(async {
        assert_eq!(put(&gina, "data", "g2").await, "AccessDenied");
    });

    // An access key with its own policy: the owner's permissions ∩ the key's.
    let only_get = write_policy(
        work.path(),
        "onlyget",
        r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"s3:GetObject","Resource":"arn:aws:s3:::*"}]}"#,
    );
    let out = ok(
        &s,
        &[
            "accesskey",
            "create",
            "--user",
            "alice",
            "--policy",
            &only_get,
        ],
    );
    let (k, sk) = (field(&out, "AccessKey:"), field(&out, "SecretKey:"));
    let limited = sdk(&s, &k, &sk, None);
    rt.block_on(async {
        assert_eq!(get(&limited, "data", "home/alice/x").await, "");
        assert_eq!(put(&limited, "data", "home/alice/k").await, "AccessDenied");
        // The key's policy allows GET everywhere; its owner's does not.
        assert_eq!(get(&limited, "data", "pub/a").await, "AccessDenied");
    });
    let keys = ok(&s, &["accesskey", "list", "--user", "alice", "--json"]);
    assert!(keys.contains(&k), "{keys}");
    // Nor can the limited key make itself a key without its limit (its owner's would be).
    let out = Command::new(cairn_integration::binary())
        .args(["admin", "accesskey", "create", "--endpoint", &s.endpoint])
        .env("CAIRN_ROOT_USER", &k)
        .env("CAIRN_ROOT_PASSWORD", &sk)
        .output()
        .expect("run");
    assert!(!out.status.success(), "a limited key made a key");
    assert!(String::from_utf8_lossy(&out.stderr).contains("AccessDenied"));
    assert_eq!(
        ok(&s, &["accesskey", "list", "--user", "alice", "--json"]),
        keys,
        "a key was made"
    );
    // An expiring key stops working when it expires.
    let out = ok(
        &s,
        &["accesskey", "create", "--user", "writer", "--expiry", "2s"],
    );
    let expiring = sdk(
        &s,
        &field(&out, "AccessKey:"),
        &field(&out, "SecretKey:"),
        None,
    );
    rt.block_on(async {
        assert_eq!(get(&expiring, "data", "pub/a").await, "");
        tokio::time::sleep(Duration::from_millis(2500)).await;
        assert_eq!(get(&expiring, "data", "pub/a").await, "ExpiredToken");
    });
    ok(&s, &["accesskey", "remove", &k]);
    rt.block_on(async {
        assert_eq!(
            get(&limited, "data", "home/alice/x").await,
            "InvalidAccessKeyId"
        );
    });

    // A user without admin rights cannot manage users.
    let mut c = Command::new(cairn_integration::binary());
    let out = c
        .args([
            "admin",
            "user",
            "add",
            "mallory",
            "mallory-secret",
            "--endpoint",
            &s.endpoint,
        ])
        .env("CAIRN_ROOT_USER", "writer")
        .env("CAIRN_ROOT_PASSWORD", "writer-secret-1")
        .output()
        .expect("run");
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("AccessDenied"));

    // A generated secret is printed once; the drives never hold a plain secret.
    let out = ok(&s, &["user", "add", "gen-user"]);
    let generated = field(&out, "SecretKey:");
    assert!(generated.len() >= 20, "{out}");
    fn walk(dir: &std::path::Path, out: &mut Vec<std::path::PathBuf>) {
        for e in std::fs::read_dir(dir).into_iter().flatten().flatten() {
            if e.path().is_dir() {
                walk(&e.path(), out);
            } else {
                out.push(e.path());
            }
        }
    }
    let mut files = Vec::new();
    for d in &s.drives {
        walk(d, &mut files);
    }
    let records: Vec<_> = files
        .iter()
        .filter(|f| f.to_string_lossy().contains("/iam/users/"))
        .collect();
    assert!(
        records.len() >= 4 * 4,
        "user records on every drive: {records:?}"
    );
    for f in &files {
        let raw = std::fs::read(f).unwrap_or_default();
        let raw = String::from_utf8_lossy(&raw);
        for secret in ["reader-secret-1", "alice-secret-1", generated.as_str()] {
            assert!(
                !raw.contains(secret),
                "{} holds a plain secret",
                f.display()
            );
        }
    }
    let users = ok(&s, &["user", "list", "--json"]);
    let users: serde_json::Value = serde_json::from_str(&users).expect("json");
    assert_eq!(users.as_array().map(|a| a.len()), Some(5), "{users}");
    ok(&s, &["user", "remove", "gen-user"]);
    let (code, out) = admin(&s.endpoint, &["user", "info", "gen-user"]);
    assert_ne!(code, 0, "{out}");
}

#[test]
fn identities_survive_a_restart() {
    let dir = tempfile::tempdir().expect("tmp");
    let paths: Vec<_> = (0..4).map(|i| dir.path().join(format!("d{i}"))).collect();
    let rt = rt();
    {
        let s = Server::start_on(&paths, &[]);
        ok(&s, &["user", "add", "keeper", "keeper-secret-1"]);
        ok(&s, &["policy", "attach", "readwrite", "--user", "keeper"]);
        let c = sdk(&s, "keeper", "keeper-secret-1", None);
        rt.block_on(async {
            c.create_bucket().bucket("kept").send().await.expect("bucket");
            assert_eq!(put(&c, "kept", "k").await, "");
            let policy = r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Principal":"*","Action":"s3:GetObject","Resource":"arn:aws:s3:::kept/*"}]}"#;
            client(&s)
                .put_bucket_policy()
                .bucket("kept")
                .policy(policy)
                .send()
                .await
                .expect("policy");
        });
    }
    let s = Server::start_on(&paths, &[]);
    let c = sdk(&s, "keeper", "keeper-secret-1", None);
    rt.block_on(async {
        assert_eq!(get(&c, "kept", "k").await, "");
        assert_eq!(put(&c, "kept", "k2").await, "");
    });
    let anon = ureq::get(&format!("{}/kept/k", s.endpoint))
        .call()
        .expect("anonymous GET");
    assert_eq!(anon.status(), 200);
}

/// A session made with an access key goes with the key: it ends no later than the key
/// expires, and at once when the key is removed (or disabled).
#[test]
fn sessions_made_with_an_access_key_end_with_the_key() {
    if !require_tool("python3") {
        return;
    }
    let s = Server::start_with(4, &[]);
    ok(&s, &["user", "add", "keyowner", "keyowner-secret-1"]);
    ok(&s, &["policy", "attach", "readwrite", "--user", "keyowner"]);
    let out = ok(
        &s,
        &[
            "accesskey",
            "create",
            "--user",
            "keyowner",
            "--expiry",
            "1h",
        ],
    );
    let (ak, sk) = (field(&out, "AccessKey:"), field(&out, "SecretKey:"));
    let script = r#"
import sys, time, datetime, subprocess, boto3, botocore
ep, ak, sk, cairn = sys.argv[1:5]
cfg = botocore.config.Config(retries={"max_attempts": 1})
sts = boto3.client("sts", endpoint_url=ep, region_name="us-east-1",
    aws_access_key_id=ak, aws_secret_access_key=sk, config=cfg)
c = sts.assume_role(RoleArn="arn:aws:iam::000000000000:role/any", RoleSessionName="k1", DurationSeconds=43200)["Credentials"]
left = (c["Expiration"] - datetime.datetime.now(datetime.timezone.utc)).total_seconds()
assert left <= 3600 + 5, f"a session outlives its key: {left} s left"
s3 = boto3.client("s3", endpoint_url=ep, region_name="us-east-1",
    aws_access_key_id=c["AccessKeyId"], aws_secret_access_key=c["SecretAccessKey"],
    aws_session_token=c["SessionToken"], config=cfg)
s3.create_bucket(Bucket="keyed")
s3.put_object(Bucket="keyed", Key="k", Body=b"x")
print("REMOVE", flush=True)
sys.stdin.readline()
try:
    s3.get_object(Bucket="keyed", Key="k")
    print("STILL WORKS")
except botocore.exceptions.ClientError as e:
    print("REFUSED", e.response["Error"]["Code"])
"#;
    if !require_tool("python3") {
        return;
    }
    let mut child = std::process::Command::new("python3")
        .arg("-c")
        .arg(script)
        .args([s.endpoint.as_str(), &ak, &sk, "x"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("python3");
    let mut stdout = std::io::BufReader::new(child.stdout.take().expect("stdout"));
    let mut line = String::new();
    std::io::BufRead::read_line(&mut stdout, &mut line).expect("read");
    if !line.starts_with("REMOVE") {
        let out = child.wait_with_output().expect("wait");
        let err = String::from_utf8_lossy(&out.stderr);
        if err.contains("No module named 'boto3'") {
            assert!(
                std::env::var_os("CI").is_none(),
                "boto3 is required under CI"
            );
            return;
        }
        panic!("{line}{err}");
    }
    ok(&s, &["accesskey", "remove", &ak]);
    std::io::Write::write_all(&mut child.stdin.take().expect("stdin"), b"go\n").expect("write");
    let mut rest = String::new();
    std::io::Read::read_to_string(&mut stdout, &mut rest).expect("read");
    let out = child.wait_with_output().expect("wait");
    assert!(
        rest.contains("REFUSED InvalidAccessKeyId"),
        "{rest}{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// boto3 against STS: AssumeRole with the user's own keys, the session's credentials and
/// token, a session policy, an expired session (the server shortens the minimum for tests).
#[test]
fn sts_sessions_are_temporary_and_bounded() {
    if !require_tool("python3") {
        return;
    }
    let s = Server::start_with(4, &[("CAIRN_TEST_STS_MIN_SECS", "2")]);
    ok(&s, &["user", "add", "sess", "sess-secret-1"]);
    ok(&s, &["policy", "attach", "readwrite", "--user", "sess"]);
    let script = r#"
import sys, time, boto3, botocore
ep = sys.argv[1]
cfg = botocore.config.Config(retries={"max_attempts": 1})
# The 2 s session below is shorter than the AWS model allows: the client must not refuse it.
loose = botocore.config.Config(retries={"max_attempts": 1}, parameter_validation=False)
sts = boto3.client("sts", endpoint_url=ep, region_name="us-east-1",
    aws_access_key_id="sess", aws_secret_access_key="sess-secret-1", config=loose)
def s3_with(c):
    return boto3.client("s3", endpoint_url=ep, region_name="us-east-1",
        aws_access_key_id=c["AccessKeyId"], aws_secret_access_key=c["SecretAccessKey"],
        aws_session_token=c["SessionToken"], config=cfg)
def code(f):
    try:
        f()
        return ""
    except botocore.exceptions.ClientError as e:
        return e.response["Error"]["Code"]
c = sts.assume_role(RoleArn="arn:aws:iam::000000000000:role/any", RoleSessionName="s1", DurationSeconds=3600)["Credentials"]
s3 = s3_with(c)
s3.create_bucket(Bucket="sts-bucket")
s3.put_object(Bucket="sts-bucket", Key="k", Body=b"x")
assert s3.get_object(Bucket="sts-bucket", Key="k")["Body"].read() == b"x"
# Without its token the session key is refused.
bare = boto3.client("s3", endpoint_url=ep, region_name="us-east-1",
    aws_access_key_id=c["AccessKeyId"], aws_secret_access_key=c["SecretAccessKey"], config=cfg)
assert code(lambda: bare.list_objects_v2(Bucket="sts-bucket")) == "InvalidToken"
# A session policy narrows the session.
ro = '{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"s3:GetObject","Resource":"arn:aws:s3:::*"}]}'
c2 = sts.assume_role(RoleArn="arn:aws:iam::000000000000:role/any", RoleSessionName="s2", Policy=ro)["Credentials"]
s3ro = s3_with(c2)
assert s3ro.get_object(Bucket="sts-bucket", Key="k")["Body"].read() == b"x"
assert code(lambda: s3ro.put_object(Bucket="sts-bucket", Key="k2", Body=b"y")) == "AccessDenied"
# A SigV2 presigned URL of the session carries its token (botocore moves the signed header
# into the query).
import urllib.request
v2 = boto3.client("s3", endpoint_url=ep, region_name="us-east-1",
    aws_access_key_id=c["AccessKeyId"], aws_secret_access_key=c["SecretAccessKey"],
    aws_session_token=c["SessionToken"],
    config=botocore.config.Config(signature_version="s3", s3={"addressing_style": "path"}))
url = v2.generate_presigned_url("get_object", Params={"Bucket": "sts-bucket", "Key": "k"}, ExpiresIn=300)
assert "x-amz-security-token=" in url, url
assert urllib.request.urlopen(url).read() == b"x"
# AWS's parameter constraints: session names 2-64 of [\w+=,.@-], ARNs of 20+, policies of
# at most 2,048 characters.
arn = "arn:aws:iam::000000000000:role/any"
assert code(lambda: sts.assume_role(RoleArn=arn, RoleSessionName="a")) == "ValidationError"
assert code(lambda: sts.assume_role(RoleArn=arn, RoleSessionName="bad name")) == "ValidationError"
assert code(lambda: sts.assume_role(RoleArn="arn:short", RoleSessionName="s5")) == "ValidationError"
big = '{"Version":"2012-10-17","Statement":[' + ",".join(
    ['{"Effect":"Allow","Action":"s3:GetObject","Resource":"arn:aws:s3:::b%d/*"}' % i for i in range(40)]) + "]}"
assert len(big) > 2048
assert code(lambda: sts.assume_role(RoleArn=arn, RoleSessionName="s5", Policy=big)) == "ValidationError"
# Without credentials STS says so.
import urllib.error
try:
    urllib.request.urlopen(urllib.request.Request(ep + "/", data=b"Action=AssumeRole&Version=2011-06-15", method="POST"))
    raise SystemExit("unsigned AssumeRole was answered")
except urllib.error.HTTPError as e:
    body = e.read().decode()
    assert e.code == 403 and "<Code>MissingAuthenticationToken</Code>" in body, body
# A signed call without the API version (or another one) is refused as AWS refuses it.
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials
for form in ("Action=AssumeRole", "Action=AssumeRole&Version=2020-01-01"):
    r = AWSRequest(method="POST", url=ep + "/", data=form,
        headers={"Content-Type": "application/x-www-form-urlencoded"})
    SigV4Auth(Credentials("sess", "sess-secret-1"), "sts", "us-east-1").add_auth(r)
    p = r.prepare()
    try:
        urllib.request.urlopen(urllib.request.Request(p.url, data=form.encode(), headers=dict(p.headers), method="POST"))
        raise SystemExit(f"AssumeRole without its version was answered: {form}")
    except urllib.error.HTTPError as e:
        body = e.read().decode()
        assert e.code == 400 and "<Code>InvalidAction</Code>" in body, body
# Out-of-range durations are refused.
assert code(lambda: sts.assume_role(RoleArn="arn:aws:iam::000000000000:role/any", RoleSessionName="s3", DurationSeconds=43201)) == "InvalidParameterValue"
# An expired session is refused.
c3 = sts.assume_role(RoleArn="arn:aws:iam::000000000000:role/any", RoleSessionName="s4", DurationSeconds=2)["Credentials"]
s3short = s3_with(c3)
s3short.list_objects_v2(Bucket="sts-bucket")
time.sleep(3)
assert code(lambda: s3short.list_objects_v2(Bucket="sts-bucket")) == "ExpiredToken"
print("sts checks passed")
"#;
    let Some(text) = cairn_integration::boto3(script, &[&s.endpoint]) else {
        return;
    };
    assert!(text.contains("sts checks passed"), "{text}");
}

fn curl(url: &str, extra: &[&str]) -> (u16, String) {
    let out = Command::new("curl")
        .args(["-s", "-o", "/dev/stderr", "-w", "%{http_code}"])
        .args(extra)
        .arg(url)
        .output()
        .expect("curl");
    let status = String::from_utf8_lossy(&out.stdout)
        .trim()
        .parse()
        .unwrap_or(0);
    (status, String::from_utf8_lossy(&out.stderr).into_owned())
}

/// Bucket policies and ACLs make things public for curl without credentials, through the
/// AWS CLI's and s3cmd's ACL options; a public access block takes it back.
#[test]
fn public_access_by_policy_and_acl_and_its_block() {
    if !require_tool("curl") {
        return;
    }
    let s = Server::start();
    let rt = rt();
    let root = client(&s);
    rt.block_on(async {
        root.create_bucket()
            .bucket("site")
            .send()
            .await
            .expect("bucket");
        for k in ["public/index.html", "private/notes"] {
            assert_eq!(put(&root, "site", k).await, "");
        }
    });
    let url = |k: &str| format!("{}/site/{k}", s.endpoint);
    assert_eq!(curl(&url("public/index.html"), &[]).0, 403);
    // One prefix public by policy, the rest private; listing allowed for that prefix only.
    let policy = r#"{"Version":"2012-10-17","Statement":[
        {"Sid":"read","Effect":"Allow","Principal":"*","Action":"s3:GetObject","Resource":"arn:aws:s3:::site/public/*"},
        {"Sid":"list","Effect":"Allow","Principal":{"AWS":["*"]},"Action":"s3:ListBucket","Resource":"arn:aws:s3:::site",
         "Condition":{"StringLike":{"s3:prefix":"public/*"}}}]}"#;
    rt.block_on(async {
        root.put_bucket_policy()
            .bucket("site")
            .policy(policy)
            .send()
            .await
            .expect("put policy");
        let got = root
            .get_bucket_policy()
            .bucket("site")
            .send()
            .await
            .expect("get");
        assert!(got.policy().is_some_and(|p| p.contains("site/public")));
        let st = root
            .get_bucket_policy_status()
            .bucket("site")
            .send()
            .await
            .expect("status");
        assert_eq!(st.policy_status().and_then(|p| p.is_public()), Some(true));
    });
    let (status, body) = curl(&url("public/index.html"), &[]);
    assert_eq!((status, body.as_str()), (200, "data"));
    assert_eq!(curl(&url("private/notes"), &[]).0, 403);
    let (status, body) = curl(
        &format!("{}/site?list-type=2&prefix=public/", s.endpoint),
        &[],
    );
    assert_eq!(status, 200, "{body}");
    assert!(
        body.contains("public/index.html") && !body.contains("private"),
        "{body}"
    );
    assert_eq!(
        curl(&format!("{}/site?list-type=2", s.endpoint), &[]).0,
        403
    );
    assert_eq!(
        curl(&url("public/new"), &["-X", "PUT", "--data", "x"]).0,
        403
    );
    assert_eq!(curl(&url("public/index.html"), &["-X", "DELETE"]).0, 403);
    // A bad policy is refused with MalformedPolicy.
    rt.block_on(async {
        let e = root
            .put_bucket_policy()
            .bucket("site")
            .policy(r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Principal":"*","Action":"s3:GetObject","Resource":"arn:aws:s3:::other/*"}]}"#)
            .send()
            .await;
        assert_eq!(code(e), "MalformedPolicy");
    });

    // ACLs through the AWS CLI and s3cmd.
    let work = tempfile::tempdir().expect("tmp");
    let file = work.path().join("f.txt");
    std::fs::write(&file, b"acl-data").expect("write");
    if require_tool("aws") {
        let out = Command::new("aws")
            .args([
                "--endpoint-url",
                &s.endpoint,
                "s3",
                "cp",
                file.to_str().expect("utf8"),
                "s3://site/acl/cli.txt",
                "--acl",
                "public-read",
            ])
            .env("AWS_ACCESS_KEY_ID", ACCESS_KEY)
            .env("AWS_SECRET_ACCESS_KEY", SECRET_KEY)
            .env("AWS_DEFAULT_REGION", "us-east-1")
            .env("AWS_CONFIG_FILE", "/dev/null")
            .env("AWS_SHARED_CREDENTIALS_FILE", "/dev/null")
            .env_remove("AWS_CA_BUNDLE")
            .output()
            .expect("aws");
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let (status, body) = curl(&url("acl/cli.txt"), &[]);
        assert_eq!((status, body.as_str()), (200, "acl-data"));
    }
    if require_tool("s3cmd") {
        let cfg = work.path().join("s3cmd.cfg");
        std::fs::write(
            &cfg,
            format!(
                "[default]\naccess_key = {ACCESS_KEY}\nsecret_key = {SECRET_KEY}\nhost_base = 127.0.0.1:{port}\nhost_bucket = 127.0.0.1:{port}\nuse_https = False\nbucket_location = us-east-1\n",
                port = s.port
            ),
        )
        .expect("cfg");
        let out = Command::new("s3cmd")
            .arg("-c")
            .arg(&cfg)
            .args([
                "put",
                "--acl-public",
                file.to_str().expect("utf8"),
                "s3://site/acl/s3cmd.txt",
            ])
            .output()
            .expect("s3cmd");
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let (status, body) = curl(&url("acl/s3cmd.txt"), &[]);
        assert_eq!((status, body.as_str()), (200, "acl-data"));
    }
    rt.block_on(async {
        // The ACL reads back with its AllUsers grant.
        assert_eq!(put(&root, "site", "acl/sdk").await, "");
        root.put_object_acl()
            .bucket("site")
            .key("acl/sdk")
            .acl(aws_sdk_s3::types::ObjectCannedAcl::PublicRead)
            .send()
            .await
            .expect("put acl");
        let acl = root
            .get_object_acl()
            .bucket("site")
            .key("acl/sdk")
            .send()
            .await
            .expect("acl");
        assert!(acl
            .grants()
            .iter()
            .any(|g| g.grantee().and_then(|g| g.uri())
                == Some("http://acs.amazonaws.com/groups/global/AllUsers")));
    });
    assert_eq!(curl(&url("acl/sdk"), &[]).0, 200);

    // The public access block overrides both policy and ACLs.
    rt.block_on(async {
        root.put_public_access_block()
            .bucket("site")
            .public_access_block_configuration(
                aws_sdk_s3::types::PublicAccessBlockConfiguration::builder()
                    .block_public_acls(true)
                    .ignore_public_acls(true)
                    .block_public_policy(true)
                    .restrict_public_buckets(true)
                    .build(),
            )
            .send()
            .await
            .expect("pab");
    });
    assert_eq!(curl(&url("public/index.html"), &[]).0, 403);
    assert_eq!(curl(&url("acl/sdk"), &[]).0, 403);
    rt.block_on(async {
        let e = root
            .put_object()
            .bucket("site")
            .key("acl/blocked")
            .acl(aws_sdk_s3::types::ObjectCannedAcl::PublicRead)
            .body(ByteStream::from_static(b"x"))
            .send()
            .await;
        assert_eq!(code(e), "AccessDenied");
        let e = root
            .put_bucket_policy()
            .bucket("site")
            .policy(policy)
            .send()
            .await;
        assert_eq!(code(e), "AccessDenied");
        root.delete_public_access_block()
            .bucket("site")
            .send()
            .await
            .expect("delete pab");
    });
    assert_eq!(curl(&url("public/index.html"), &[]).0, 200);

    // BucketOwnerEnforced disables ACLs.
    rt.block_on(async {
        root.create_bucket()
            .bucket("enforced")
            .object_ownership(aws_sdk_s3::types::ObjectOwnership::BucketOwnerEnforced)
            .send()
            .await
            .expect("bucket");
        let e = root
            .put_object()
            .bucket("enforced")
            .key("k")
            .acl(aws_sdk_s3::types::ObjectCannedAcl::PublicRead)
            .body(ByteStream::from_static(b"x"))
            .send()
            .await;
        assert_eq!(code(e), "AccessControlListNotSupported");
        let o = root
            .get_bucket_ownership_controls()
            .bucket("enforced")
            .send()
            .await
            .expect("ownership");
        let rule = &o.ownership_controls().expect("controls").rules()[0];
        assert_eq!(rule.object_ownership().as_str(), "BucketOwnerEnforced");
    });
}
