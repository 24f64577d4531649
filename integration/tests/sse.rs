//! Server-side encryption end to end: the real binary over HTTPS with a built-in KMS of two
//! keys, driven by boto3 (`verify=` a private CA): SSE-S3, SSE-KMS with either key, SSE-C,
//! ranges across package boundaries, the errors AWS gives, proof on the drives that no
//! shard or metadata file holds the plaintext or the customer key, and hostile damage —
//! ciphertext flipped on more drives than parity, a shard of one object copied over
//! another's — that ends in an error, never in wrong bytes.

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use base64::Engine;
use cairn_integration::{files_named, require_tool, Pki, Server, ACCESS_KEY, SECRET_KEY};

/// Run a boto3 script (the shared prelude defines `s3`, `ca`, `marker`, `data`) against
/// `endpoint`; its output. `None` when boto3 is missing outside CI.
fn boto(endpoint: &str, ca: &Path, marker: &str, body: &str) -> Option<String> {
    const PRELUDE: &str = r#"
import base64, hashlib, sys, boto3, botocore
from botocore.config import Config
ep, ca, ak, sk, marker = sys.argv[1:6]
marker = bytes.fromhex(marker)
s3 = boto3.client("s3", endpoint_url=ep, aws_access_key_id=ak, aws_secret_access_key=sk,
    region_name="us-east-1", verify=ca if ca != "-" else None,
    config=Config(s3={"addressing_style": "path"}, retries={"max_attempts": 1}))
# 700 KiB + 123: eleven 64 KiB packages and a short one; the marker at both ends and
# across the first package boundary.
data = bytearray(hashlib.shake_256(b"cairn-sse").digest(700 * 1024 + 123))
for at in (0, 65536 - 20, len(data) - len(marker)):
    data[at:at + len(marker)] = marker
data = bytes(data)
def code(f):
    try:
        f()
        return "OK"
    except botocore.exceptions.ClientError as e:
        return "%s %s" % (e.response["ResponseMetadata"]["HTTPStatusCode"], e.response["Error"]["Code"])
"#;
    if !require_tool("python3") {
        return None;
    }
    let out = Command::new("python3")
        .arg("-c")
        .arg(format!("{PRELUDE}\n{body}"))
        .arg(endpoint)
        .arg(ca)
        .arg(ACCESS_KEY)
        .arg(SECRET_KEY)
        .arg(marker)
        .env_remove("AWS_CA_BUNDLE")
        .env_remove("REQUESTS_CA_BUNDLE")
        .output()
        .expect("python3");
    let text =
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    if text.contains("No module named 'boto3'") && std::env::var_os("CI").is_none() {
        eprintln!("SKIPPED: boto3 not importable");
        return None;
    }
    assert!(out.status.success(), "script failed:\n{text}");
    Some(text)
}

fn kms_spec() -> String {
    let b64 = base64::engine::general_purpose::STANDARD;
    format!(
        "first-key:{},second-key:{}",
        b64.encode([0x11u8; 32]),
        b64.encode([0x22u8; 32])
    )
}

/// The shard files (`part.1`) of `enc/<key>` on every drive, in drive order.
fn shard_of_key(drives: &[std::path::PathBuf], key: &str) -> Vec<std::path::PathBuf> {
    drives
        .iter()
        .flat_map(|d| files_named(&d.join("enc").join(key), "part.1"))
        .collect()
}

/// Every file under the drives that contains `needle`.
fn files_containing(drives: &[std::path::PathBuf], needle: &[u8]) -> Vec<String> {
    let mut hits = Vec::new();
    for d in drives {
        let mut stack = vec![d.clone()];
        while let Some(p) = stack.pop() {
            if p.is_dir() {
                if let Ok(rd) = std::fs::read_dir(&p) {
                    stack.extend(rd.flatten().map(|e| e.path()));
                }
            } else if let Ok(bytes) = std::fs::read(&p) {
                if bytes.windows(needle.len()).any(|w| w == needle) {
                    hits.push(p.display().to_string());
                }
            }
        }
    }
    hits
}

/// Multipart uploads (every kind, a part sent twice, ranges across parts), UploadPartCopy
/// and CopyObject between encryption kinds.
const MULTIPART_AND_COPY: &str = r#"
ckey = bytes([0x5c] * 32)
ssec = dict(SSECustomerAlgorithm="AES256", SSECustomerKey=ckey)
big = data * 8
parts = [big, big[7:] + big[:7], data]
whole = b"".join(parts)
b1, b2 = len(parts[0]), len(parts[0]) + len(parts[1])
def mp(key, create, per_part):
    u = s3.create_multipart_upload(Bucket="enc", Key=key, **create)
    etags = []
    for i, p in enumerate(parts):
        etags.append(s3.upload_part(Bucket="enc", Key=key, UploadId=u["UploadId"], PartNumber=i + 1, Body=p, **per_part)["ETag"])
    # Part 2 sent again (same number, same bytes): replaces the first.
    etags[1] = s3.upload_part(Bucket="enc", Key=key, UploadId=u["UploadId"], PartNumber=2, Body=parts[1], **per_part)["ETag"]
    listed = [p["Size"] for p in s3.list_parts(Bucket="enc", Key=key, UploadId=u["UploadId"])["Parts"]]
    done = [{"ETag": e, "PartNumber": i + 1} for i, e in enumerate(etags)]
    if key == "mp-c":
        print("MP-PART-NOKEY", code(lambda: s3.upload_part(Bucket="enc", Key=key, UploadId=u["UploadId"], PartNumber=4, Body=b"x")))
        print("MP-PART-WRONGKEY", code(lambda: s3.upload_part(Bucket="enc", Key=key, UploadId=u["UploadId"], PartNumber=4, Body=b"x",
            SSECustomerAlgorithm="AES256", SSECustomerKey=bytes(32))))
        print("MP-COMPLETE-WRONGKEY", code(lambda: s3.complete_multipart_upload(Bucket="enc", Key=key, UploadId=u["UploadId"],
            MultipartUpload={"Parts": done}, SSECustomerAlgorithm="AES256", SSECustomerKey=bytes(32))))
    c = s3.complete_multipart_upload(Bucket="enc", Key=key, UploadId=u["UploadId"], MultipartUpload={"Parts": done})
    ok = s3.get_object(Bucket="enc", Key=key, **per_part)["Body"].read() == whole
    for a, b in ((b1 - 10, b1 + 10), (b1 - 70000, b2 + 5), (b2 + 3, len(whole) - 1), (0, 0), (b2 - 1, b2)):
        r = s3.get_object(Bucket="enc", Key=key, Range="bytes=%d-%d" % (a, b), **per_part)
        ok = ok and r["Body"].read() == whole[a:b + 1]
    ok = ok and s3.get_object(Bucket="enc", Key=key, PartNumber=2, **per_part)["Body"].read() == parts[1]
    h = s3.head_object(Bucket="enc", Key=key, **per_part)
    size = [o["Size"] for o in s3.list_objects_v2(Bucket="enc", Prefix=key)["Contents"]] == [len(whole)]
    print("MP enc/%s" % key, u.get("ServerSideEncryption") or u.get("SSECustomerAlgorithm"), ok,
        h["ContentLength"] == len(whole) and size, listed == [len(p) for p in parts])
    return c
c = mp("mp-s3", dict(ServerSideEncryption="AES256"), {})
want = hashlib.md5(b"".join(hashlib.md5(p).digest() for p in parts)).hexdigest() + "-3"
print("MP-ETAG-S3", c["ETag"] == '"%s"' % want)
mp("mp-kms", dict(ServerSideEncryption="aws:kms", SSEKMSKeyId="second-key"), {})
mp("mp-c", ssec, ssec)
# UploadPartCopy into an SSE-C upload: a range of an SSE-S3 multipart object across its
# first part boundary, then a whole SSE-C object (its key in the copy-source headers).
u = s3.create_multipart_upload(Bucket="enc", Key="pc", **ssec)
n = 5 * 1024 * 1024 + 100
src = dict(CopySourceSSECustomerAlgorithm="AES256", CopySourceSSECustomerKey=ckey)
e1 = s3.upload_part_copy(Bucket="enc", Key="pc", UploadId=u["UploadId"], PartNumber=1,
    CopySource={"Bucket": "enc", "Key": "mp-s3"}, CopySourceRange="bytes=%d-%d" % (b1 - 50, b1 - 50 + n - 1), **ssec)
e2 = s3.upload_part_copy(Bucket="enc", Key="pc", UploadId=u["UploadId"], PartNumber=2,
    CopySource={"Bucket": "enc", "Key": "c.bin"}, **ssec, **src)
print("PART-COPY-NOKEY", code(lambda: s3.upload_part_copy(Bucket="enc", Key="pc", UploadId=u["UploadId"], PartNumber=3,
    CopySource={"Bucket": "enc", "Key": "c.bin"}, **ssec)))
s3.complete_multipart_upload(Bucket="enc", Key="pc", UploadId=u["UploadId"], MultipartUpload={"Parts": [
    {"ETag": e1["CopyPartResult"]["ETag"], "PartNumber": 1}, {"ETag": e2["CopyPartResult"]["ETag"], "PartNumber": 2}]})
got = s3.get_object(Bucket="enc", Key="pc", **ssec)["Body"].read()
print("PART-COPY", got == whole[b1 - 50:b1 - 50 + n] + data, e1.get("SSECustomerAlgorithm") == "AES256")
# CopyObject between kinds.
s3.copy_object(Bucket="enc", Key="copy-plain", CopySource={"Bucket": "enc", "Key": "s3.bin"})
h = s3.head_object(Bucket="enc", Key="copy-plain")
print("COPY-PLAIN", h.get("ServerSideEncryption"), s3.get_object(Bucket="enc", Key="copy-plain")["Body"].read() == data)
# (decrypted on purpose: not left for the search of the drives below)
s3.delete_object(Bucket="enc", Key="copy-plain")
r = s3.copy_object(Bucket="enc", Key="copy-kms", CopySource={"Bucket": "enc", "Key": "c.bin"}, ServerSideEncryption="aws:kms", **src)
print("COPY-C-TO-KMS", r["ServerSideEncryption"], r["SSEKMSKeyId"], s3.get_object(Bucket="enc", Key="copy-kms")["Body"].read() == data)
nkey = bytes([0x77] * 32)
r = s3.copy_object(Bucket="enc", Key="copy-c", CopySource={"Bucket": "enc", "Key": "kms2.bin"}, SSECustomerAlgorithm="AES256", SSECustomerKey=nkey)
print("COPY-KMS-TO-C", r["SSECustomerAlgorithm"],
    s3.get_object(Bucket="enc", Key="copy-c", SSECustomerAlgorithm="AES256", SSECustomerKey=nkey)["Body"].read() == data,
    code(lambda: s3.get_object(Bucket="enc", Key="copy-c", **ssec)))
r = s3.copy_object(Bucket="enc", Key="copy-s3", CopySource={"Bucket": "enc", "Key": "mp-kms"}, ServerSideEncryption="AES256")
print("COPY-MP-TO-S3", r["ServerSideEncryption"], r["CopyObjectResult"]["ETag"] == '"%s"' % hashlib.md5(whole).hexdigest(),
    s3.get_object(Bucket="enc", Key="copy-s3", Range="bytes=%d-%d" % (b1 - 5, b1 + 5))["Body"].read() == whole[b1 - 5:b1 + 6])
print("COPY-NOKEY", code(lambda: s3.copy_object(Bucket="enc", Key="x", CopySource={"Bucket": "enc", "Key": "c.bin"})))
# SSE-C key rotation by copying an object onto itself.
s3.put_object(Bucket="enc", Key="c2.bin", Body=data, **ssec)
s3.copy_object(Bucket="enc", Key="c2.bin", CopySource={"Bucket": "enc", "Key": "c2.bin"}, **src,
    SSECustomerAlgorithm="AES256", SSECustomerKey=nkey)
print("ROTATE-C", s3.get_object(Bucket="enc", Key="c2.bin", SSECustomerAlgorithm="AES256", SSECustomerKey=nkey)["Body"].read() == data,
    code(lambda: s3.get_object(Bucket="enc", Key="c2.bin", **ssec)))
s3.put_object(Bucket="enc", Key="self.bin", Body=data, ServerSideEncryption="AES256")
r = s3.copy_object(Bucket="enc", Key="self.bin", CopySource={"Bucket": "enc", "Key": "self.bin"}, ServerSideEncryption="aws:kms")
print("SELF-TO-KMS", s3.head_object(Bucket="enc", Key="self.bin")["ServerSideEncryption"], s3.get_object(Bucket="enc", Key="self.bin")["Body"].read() == data)
print("SELF-SAME", code(lambda: s3.copy_object(Bucket="enc", Key="self.bin", CopySource={"Bucket": "enc", "Key": "self.bin"})))
"#;

#[test]
fn sse_s3_kms_and_c_round_trip_over_https_and_leave_no_plaintext_on_the_drives() {
    let pki = Pki::new("SSE Test CA");
    let certs = pki.certs_dir("certs", &["127.0.0.1"]);
    let spec = kms_spec();
    let s = Server::start_with(
        4,
        &[
            ("CAIRN_CERTS_DIR", certs.to_str().expect("utf-8")),
            ("CAIRN_KMS_SECRET_KEY", &spec),
        ],
    );
    assert!(s.endpoint.starts_with("https://"));
    // 64 random bytes, in hex for the script.
    let marker: Vec<u8> = (0..64u32)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8 ^ 0xa5)
        .collect();
    let customer_key = [0x5cu8; 32];
    let script = r#"
ckey = bytes([0x5c] * 32)
ssec = dict(SSECustomerAlgorithm="AES256", SSECustomerKey=ckey)
s3.create_bucket(Bucket="enc")
r = s3.put_object(Bucket="enc", Key="s3.bin", Body=data, ServerSideEncryption="AES256")
print("PUT-S3", r["ServerSideEncryption"], r["ETag"] == '"%s"' % hashlib.md5(data).hexdigest())
r = s3.put_object(Bucket="enc", Key="kms1.bin", Body=data, ServerSideEncryption="aws:kms")
print("PUT-KMS1", r["ServerSideEncryption"], r["SSEKMSKeyId"], r["ETag"] != '"%s"' % hashlib.md5(data).hexdigest())
r = s3.put_object(Bucket="enc", Key="kms2.bin", Body=data, ServerSideEncryption="aws:kms",
    SSEKMSKeyId="arn:aws:kms:us-east-1:000000000000:key/second-key")
print("PUT-KMS2", r["SSEKMSKeyId"])
r = s3.put_object(Bucket="enc", Key="c.bin", Body=data, **ssec)
print("PUT-C", r["SSECustomerAlgorithm"], r["SSECustomerKeyMD5"] == base64.b64encode(hashlib.md5(ckey).digest()).decode())
r = s3.put_object(Bucket="enc", Key="empty.bin", Body=b"", ServerSideEncryption="AES256")
print("EMPTY", len(s3.get_object(Bucket="enc", Key="empty.bin")["Body"].read()))
for key, extra in (("s3.bin", {}), ("kms1.bin", {}), ("kms2.bin", {}), ("c.bin", ssec)):
    full = s3.get_object(Bucket="enc", Key=key, **extra)
    ok = full["Body"].read() == data and full["ContentLength"] == len(data)
    # Ranges: inside one package, across one boundary, across several, the last bytes.
    for a, b in ((5, 100), (65530, 65545), (65536, 65536 * 3 + 7), (100, 700 * 1024), (len(data) - 10, len(data) - 1)):
        r = s3.get_object(Bucket="enc", Key=key, Range="bytes=%d-%d" % (a, b), **extra)
        ok = ok and r["Body"].read() == data[a:b + 1] and r["ContentRange"] == "bytes %d-%d/%d" % (a, b, len(data))
    h = s3.head_object(Bucket="enc", Key=key, **extra)
    print("READ", key, ok, h["ContentLength"], h.get("ServerSideEncryption"), h.get("SSEKMSKeyId"), h.get("SSECustomerAlgorithm"))
sizes = {o["Key"]: o["Size"] for o in s3.list_objects_v2(Bucket="enc")["Contents"]}
print("LIST", sizes["s3.bin"] == len(data), sizes["c.bin"] == len(data), sizes["empty.bin"])
a = s3.get_object_attributes(Bucket="enc", Key="kms1.bin", ObjectAttributes=["ObjectSize"])
print("ATTRS", a["ObjectSize"] == len(data))
# The errors AWS gives.
print("C-NOKEY", code(lambda: s3.get_object(Bucket="enc", Key="c.bin")))
print("C-WRONG", code(lambda: s3.get_object(Bucket="enc", Key="c.bin", SSECustomerAlgorithm="AES256", SSECustomerKey=bytes(32))))
print("C-HEAD-NOKEY", code(lambda: s3.head_object(Bucket="enc", Key="c.bin")))
print("C-ON-PLAIN", code(lambda: s3.get_object(Bucket="enc", Key="s3.bin", **ssec)))
print("BAD-ALG", code(lambda: s3.put_object(Bucket="enc", Key="x", Body=b"x", ServerSideEncryption="AES512")))
print("NO-KEY-ID", code(lambda: s3.put_object(Bucket="enc", Key="x", Body=b"x", ServerSideEncryption="aws:kms", SSEKMSKeyId="nope")))
print("MD5", code(lambda: s3.put_object(Bucket="enc", Key="bad-md5", Body=b"abc", ServerSideEncryption="AES256",
    ContentMD5=base64.b64encode(hashlib.md5(b"abd").digest()).decode())))
# Bucket default encryption.
s3.create_bucket(Bucket="defenc")
print("NOCONF", code(lambda: s3.get_bucket_encryption(Bucket="defenc")))
s3.put_bucket_encryption(Bucket="defenc", ServerSideEncryptionConfiguration={"Rules": [
    {"ApplyServerSideEncryptionByDefault": {"SSEAlgorithm": "aws:kms", "KMSMasterKeyID": "second-key"}, "BucketKeyEnabled": True}]})
rule = s3.get_bucket_encryption(Bucket="defenc")["ServerSideEncryptionConfiguration"]["Rules"][0]
print("CONF", rule["ApplyServerSideEncryptionByDefault"]["SSEAlgorithm"], rule["ApplyServerSideEncryptionByDefault"]["KMSMasterKeyID"], rule["BucketKeyEnabled"])
r = s3.put_object(Bucket="defenc", Key="d.bin", Body=data)
h = s3.head_object(Bucket="defenc", Key="d.bin")
print("DEFAULT", r["ServerSideEncryption"], h["ServerSideEncryption"], h["SSEKMSKeyId"], s3.get_object(Bucket="defenc", Key="d.bin")["Body"].read() == data)
r = s3.put_object(Bucket="defenc", Key="own.bin", Body=b"x", ServerSideEncryption="AES256")
print("OWN", r["ServerSideEncryption"])
u = s3.create_multipart_upload(Bucket="defenc", Key="mp")
e = s3.upload_part(Bucket="defenc", Key="mp", UploadId=u["UploadId"], PartNumber=1, Body=data)["ETag"]
s3.complete_multipart_upload(Bucket="defenc", Key="mp", UploadId=u["UploadId"], MultipartUpload={"Parts": [{"ETag": e, "PartNumber": 1}]})
h = s3.head_object(Bucket="defenc", Key="mp")
print("DEF-MULTIPART", u["ServerSideEncryption"], h["ServerSideEncryption"], h["SSEKMSKeyId"], s3.get_object(Bucket="defenc", Key="mp")["Body"].read() == data)
r = s3.copy_object(Bucket="defenc", Key="c2", CopySource={"Bucket": "enc", "Key": "s3.bin"})
print("DEF-COPY", r["ServerSideEncryption"], s3.get_object(Bucket="defenc", Key="c2")["Body"].read() == data)
print("BAD-RULE", code(lambda: s3.put_bucket_encryption(Bucket="defenc", ServerSideEncryptionConfiguration={"Rules": [
    {"ApplyServerSideEncryptionByDefault": {"SSEAlgorithm": "AES256", "KMSMasterKeyID": "second-key"}}]})))
print("BAD-KEY", code(lambda: s3.put_bucket_encryption(Bucket="defenc", ServerSideEncryptionConfiguration={"Rules": [
    {"ApplyServerSideEncryptionByDefault": {"SSEAlgorithm": "aws:kms", "KMSMasterKeyID": "nope"}}]})))
s3.delete_bucket_encryption(Bucket="defenc")
print("DELETED", code(lambda: s3.get_bucket_encryption(Bucket="defenc")), "ServerSideEncryption" in s3.put_object(Bucket="defenc", Key="p", Body=b"x"))
"#;
    let marker_hex = hex::encode(&marker);
    let Some(out) = boto(&s.endpoint, &pki.ca_pem, &marker_hex, script) else {
        return;
    };
    for want in [
        "PUT-S3 AES256 True",
        "PUT-KMS1 aws:kms first-key True",
        "PUT-KMS2 second-key",
        "PUT-C AES256 True",
        "EMPTY 0",
        "READ s3.bin True 716923 AES256 None None",
        "READ kms1.bin True 716923 aws:kms first-key None",
        "READ kms2.bin True 716923 aws:kms second-key None",
        "READ c.bin True 716923 None None AES256",
        "LIST True True 0",
        "ATTRS True",
        "C-NOKEY 400 InvalidRequest",
        "C-WRONG 403 AccessDenied",
        "C-HEAD-NOKEY 400",
        "C-ON-PLAIN 400 InvalidRequest",
        "BAD-ALG 400 InvalidArgument",
        "NO-KEY-ID 400 KMS.NotFoundException",
        "MD5 400 BadDigest",
        "NOCONF 404 ServerSideEncryptionConfigurationNotFoundError",
        "CONF aws:kms second-key True",
        "DEFAULT aws:kms aws:kms second-key True",
        "OWN AES256",
        "DEF-MULTIPART aws:kms aws:kms second-key True",
        "DEF-COPY aws:kms True",
        "BAD-RULE 400 InvalidArgument",
        "BAD-KEY 400 KMS.NotFoundException",
        "DELETED 404 ServerSideEncryptionConfigurationNotFoundError False",
    ] {
        assert!(out.contains(want), "missing {want:?} in:\n{out}");
    }

    let Some(out) = boto(&s.endpoint, &pki.ca_pem, &marker_hex, MULTIPART_AND_COPY) else {
        return;
    };
    for want in [
        "MP enc/mp-s3 AES256 True True True",
        "MP enc/mp-kms aws:kms True True True",
        "MP enc/mp-c AES256 True True True",
        "MP-ETAG-S3 True",
        "MP-PART-NOKEY 400 InvalidRequest",
        "MP-PART-WRONGKEY 403 AccessDenied",
        "MP-COMPLETE-WRONGKEY 403 AccessDenied",
        "PART-COPY True True",
        "PART-COPY-NOKEY 400 InvalidRequest",
        "COPY-PLAIN None True",
        "COPY-C-TO-KMS aws:kms first-key True",
        "COPY-KMS-TO-C AES256 True 403 AccessDenied",
        "COPY-MP-TO-S3 AES256 True True",
        "COPY-NOKEY 400 InvalidRequest",
        "ROTATE-C True 403 AccessDenied",
        "SELF-TO-KMS aws:kms True",
        "SELF-SAME 400 InvalidRequest",
    ] {
        assert!(out.contains(want), "missing {want:?} in:\n{out}");
    }

    // On the drives: neither the plaintext (the marker) nor the customer key, anywhere.
    let hits = files_containing(&s.drives, &marker);
    assert!(hits.is_empty(), "plaintext on disk: {hits:?}");
    let hits = files_containing(&s.drives, &customer_key);
    assert!(hits.is_empty(), "customer key on disk: {hits:?}");

    // Heal rebuilds an SSE-C object's lost shards without its key (it moves ciphertext).
    let c_shards = shard_of_key(&s.drives, "c.bin");
    assert_eq!(c_shards.len(), 4, "{c_shards:?}");
    for p in c_shards.iter().take(2) {
        std::fs::remove_file(p).expect("lose a shard");
    }
    let out = Command::new(cairn_integration::binary())
        .args([
            "admin",
            "heal",
            "--bucket",
            "enc",
            "--endpoint",
            &s.endpoint,
        ])
        .arg("--ca-cert")
        .arg(&pki.ca_pem)
        .env("CAIRN_ROOT_USER", ACCESS_KEY)
        .env("CAIRN_ROOT_PASSWORD", SECRET_KEY)
        .output()
        .expect("cairn admin heal");
    assert!(
        out.status.success(),
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(shard_of_key(&s.drives, "c.bin").len(), 4, "not healed");
    let out = boto(
        &s.endpoint,
        &pki.ca_pem,
        &marker_hex,
        r#"
got = s3.get_object(Bucket="enc", Key="c.bin", SSECustomerAlgorithm="AES256", SSECustomerKey=bytes([0x5c] * 32))["Body"].read()
print("HEALED", got == data)
"#,
    )
    .expect("boto3");
    assert!(out.contains("HEALED True"), "{out}");
    assert!(files_containing(&s.drives, &marker).is_empty());

    // A shard of one object copied over another's at the same position: detected, never
    // served as the other's bytes (the copy's own bitrot frames are intact, so only the
    // authentication of the packages can tell).
    let shard_of = |key: &str| shard_of_key(&s.drives, key);
    let (a, b) = (shard_of("kms1.bin"), shard_of("kms2.bin"));
    assert_eq!(a.len(), 4, "{a:?}");
    assert_eq!(b.len(), 4, "{b:?}");
    // Every drive: b's shard replaced by a's from the same drive (same shard position).
    for (src, dst) in a.iter().zip(&b) {
        std::fs::copy(src, dst).expect("swap shard");
    }
    // What a GET of `enc/<key>` gives: `SERVED <bytes right>` or `REFUSED <error>`.
    let read = |key: &str| {
        let script = format!(
            r#"
try:
    got = s3.get_object(Bucket="enc", Key="{key}")["Body"].read()
    print("SERVED", got == data)
except Exception as e:
    print("REFUSED", type(e).__name__)
"#
        );
        boto(&s.endpoint, &pki.ca_pem, &marker_hex, &script).expect("boto3")
    };
    let out = read("kms2.bin");
    eprintln!("swapped shards: {out}");
    assert!(
        out.contains("REFUSED") || out.contains("SERVED True"),
        "a swapped shard was served as data: {out}"
    );
    assert!(!out.contains("SERVED False"), "{out}");

    // Ciphertext flipped on as many drives as parity (2 of EC 2+2): the right bytes (a GET
    // of an encrypted object skips the bitrot check while its packages authenticate, and
    // reads again checked from the first package that does not), and the damage healed.
    // A byte in every 4 KiB of a shard file flipped.
    let flip = |p: &std::path::PathBuf| {
        let mut bytes = std::fs::read(p).expect("read shard");
        let n = bytes.len();
        for i in (100..n).step_by(4096) {
            bytes[i] ^= 0x40;
        }
        std::fs::write(p, bytes).expect("write shard");
    };
    let before: Vec<Vec<u8>> = shard_of("kms1.bin")
        .iter()
        .map(|p| std::fs::read(p).expect("read shard"))
        .collect();
    shard_of("kms1.bin").iter().skip(1).take(2).for_each(flip);
    let out = read("kms1.bin");
    assert!(out.contains("SERVED True"), "flipped on 2 drives: {out}");
    let healed = (0..100).any(|_| {
        let now: Vec<Vec<u8>> = shard_of("kms1.bin")
            .iter()
            .map(|p| std::fs::read(p).unwrap_or_default())
            .collect();
        now == before || {
            std::thread::sleep(std::time::Duration::from_millis(200));
            false
        }
    });
    assert!(healed, "the shards a GET found rotten were not healed");

    // Ciphertext flipped on more drives than parity (3 of EC 2+2): an error, never bytes.
    shard_of("s3.bin").iter().take(3).for_each(flip);
    let out = read("s3.bin");
    eprintln!("flipped on 3 drives: {out}");
    assert!(out.contains("REFUSED"), "{out}");
}

#[test]
fn without_a_kms_or_tls_encryption_is_refused_not_faked() {
    // No KMS, plain HTTP, and no CAIRN_SSE_C_INSECURE.
    let s = Server::start();
    let Some(out) = boto(
        &s.endpoint,
        Path::new("-"),
        "00",
        r#"
s3.create_bucket(Bucket="plain")
print("SSE-S3", code(lambda: s3.put_object(Bucket="plain", Key="k", Body=b"x", ServerSideEncryption="AES256")))
print("SSE-KMS", code(lambda: s3.put_object(Bucket="plain", Key="k", Body=b"x", ServerSideEncryption="aws:kms")))
print("LIST", s3.list_objects_v2(Bucket="plain").get("KeyCount"))
print("BUCKET-DEFAULT", code(lambda: s3.put_bucket_encryption(Bucket="plain", ServerSideEncryptionConfiguration={"Rules": [
    {"ApplyServerSideEncryptionByDefault": {"SSEAlgorithm": "AES256"}}]})))
"#,
    ) else {
        return;
    };
    for want in [
        "SSE-S3 501 NotImplemented",
        "SSE-KMS 501 NotImplemented",
        "LIST 0",
        "BUCKET-DEFAULT 501 NotImplemented",
    ] {
        assert!(out.contains(want), "missing {want:?} in:\n{out}");
    }
    // SSE-C over plain HTTP: refused (a hand-signed request, so nothing but the server
    // decides), and nothing stored.
    use md5::Digest;
    let b64 = base64::engine::general_purpose::STANDARD;
    let key = [7u8; 32];
    let headers = vec![
        (
            "x-amz-server-side-encryption-customer-algorithm".to_string(),
            "AES256".to_string(),
        ),
        (
            "x-amz-server-side-encryption-customer-key".to_string(),
            b64.encode(key),
        ),
        (
            "x-amz-server-side-encryption-customer-key-md5".to_string(),
            b64.encode(md5::Md5::digest(key)),
        ),
    ];
    let host = format!("127.0.0.1:{}", s.port);
    let body = b"secret";
    let signed = cairn::auth::sign_request_with(
        "PUT",
        "/plain/ssec",
        "",
        &host,
        &hex::encode(<sha2::Sha256 as sha2::Digest>::digest(body)),
        &headers,
        ACCESS_KEY,
        SECRET_KEY,
        "us-east-1",
        std::time::SystemTime::now(),
    );
    let mut req = http::Request::builder()
        .method("PUT")
        .uri(format!("{}/plain/ssec", s.endpoint));
    for (k, v) in signed.iter().chain(&headers) {
        req = req.header(k, v);
    }
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .build()
        .into();
    let mut resp = agent
        .run(req.body(body.to_vec()).expect("request"))
        .expect("send");
    let status = resp.status().as_u16();
    let text = resp.body_mut().read_to_string().unwrap_or_default();
    assert_eq!(status, 400, "{text}");
    assert!(
        text.contains("<Code>InvalidRequest</Code>") && text.contains("secure connection"),
        "{text}"
    );
}

/// The SHA-256 of every shard file (`part.1`) of `bucket/key` on the drives, sorted.
fn data_fingerprint(drives: &[std::path::PathBuf], bucket: &str, key: &str) -> Vec<String> {
    let mut v: Vec<String> = drives
        .iter()
        .flat_map(|d| files_named(&d.join(bucket).join(key), "part.1"))
        .map(|p| {
            hex::encode(<sha2::Sha256 as sha2::Digest>::digest(
                std::fs::read(&p).expect("read shard"),
            ))
        })
        .collect();
    v.sort();
    v
}

/// `cairn admin kms rotate --status --json` as JSON.
fn rotation(endpoint: &str) -> serde_json::Value {
    let (code, out) = cairn_integration::admin(endpoint, &["kms", "rotate", "--status", "--json"]);
    assert_eq!(code, 0, "{out}");
    serde_json::from_str(&out).unwrap_or_else(|e| panic!("{e}: {out}"))
}

#[test]
fn kms_rotation_reseals_every_key_resumes_after_kill_9_and_lets_the_old_key_go() {
    let dir = tempfile::tempdir().expect("tempdir");
    let drives: Vec<std::path::PathBuf> =
        (1..=4).map(|i| dir.path().join(format!("d{i}"))).collect();
    let b64 = base64::engine::general_purpose::STANDARD;
    let old = format!("old:{}", b64.encode([0x31u8; 32]));
    let both = format!("new:{},{old}", b64.encode([0x32u8; 32]));
    let new = format!("new:{}", b64.encode([0x32u8; 32]));
    const N: usize = 300;
    let s = Server::start_on(&drives, &[("CAIRN_KMS_SECRET_KEY", &old)]);
    let Some(out) = boto(
        &s.endpoint,
        Path::new("-"),
        "00",
        &format!(
            r#"
s3.create_bucket(Bucket="rot")
for i in range({N}):
    s3.put_object(Bucket="rot", Key="obj/%04d" % i, Body=b"%d" % i * 100, ServerSideEncryption="AES256")
s3.put_object(Bucket="rot", Key="kms.bin", Body=data, ServerSideEncryption="aws:kms", SSEKMSKeyId="old")
s3.put_object(Bucket="rot", Key="plain.bin", Body=data)
s3.create_bucket(Bucket="kdef")
s3.put_bucket_encryption(Bucket="kdef", ServerSideEncryptionConfiguration={{"Rules": [{{"ApplyServerSideEncryptionByDefault": {{"SSEAlgorithm": "aws:kms", "KMSMasterKeyID": "old"}}}}]}})
s3.create_bucket(Bucket="ver")
s3.put_bucket_versioning(Bucket="ver", VersioningConfiguration={{"Status": "Enabled"}})
v1 = s3.put_object(Bucket="ver", Key="v", Body=b"first", ServerSideEncryption="AES256")["VersionId"]
s3.put_object(Bucket="ver", Key="v", Body=b"second", ServerSideEncryption="aws:kms")
u = s3.create_multipart_upload(Bucket="rot", Key="mp", ServerSideEncryption="AES256")["UploadId"]
e = s3.upload_part(Bucket="rot", Key="mp", UploadId=u, PartNumber=1, Body=data)["ETag"]
print("UPLOAD", u, e, v1)
"#
        ),
    ) else {
        return;
    };
    let line = out
        .lines()
        .find(|l| l.starts_with("UPLOAD "))
        .unwrap_or_else(|| panic!("{out}"));
    let fields: Vec<&str> = line.split(' ').collect();
    let (upload, etag, v1) = (fields[1], fields[2], fields[3]);
    let before = data_fingerprint(&drives, "rot", "kms.bin");
    assert_eq!(before.len(), 4);
    drop(s);

    // The new key first (the default for new objects), the old one still there to open
    // what it sealed. Slow pacing, so the kill lands mid-way.
    let env = [
        ("CAIRN_KMS_SECRET_KEY", both.as_str()),
        ("CAIRN_HEAL_SPEED", "slow"),
    ];
    let s = Server::start_on(&drives, &env);
    let (code, out) = cairn_integration::admin(&s.endpoint, &["kms", "rotate", "--from", "nope"]);
    assert_ne!(code, 0);
    assert!(out.contains("KMS.NotFoundException"), "{out}");
    let (code, out) =
        cairn_integration::admin(&s.endpoint, &["kms", "rotate", "--from", "old", "--detach"]);
    assert_eq!(code, 0, "{out}");
    let (code, out) = cairn_integration::admin(&s.endpoint, &["kms", "rotate", "--detach"]);
    assert_ne!(code, 0, "a second rotation started: {out}");
    assert!(out.contains("RotationRunning"), "{out}");
    cairn_integration::wait_until(
        "a third of the keys re-sealed",
        Duration::from_secs(60),
        || rotation(&s.endpoint)["resealed"].as_u64().unwrap_or(0) >= (N / 3) as u64,
    );
    let at_kill = rotation(&s.endpoint);
    assert_eq!(at_kill["state"], "running", "{at_kill}");
    drop(s); // SIGKILL

    // Restarted: it resumes by itself and finishes.
    let s = Server::start_on(&drives, &env);
    let resumed = rotation(&s.endpoint);
    assert_eq!(resumed["id"], at_kill["id"], "{resumed}");
    cairn_integration::wait_until("the rotation to finish", Duration::from_secs(120), || {
        rotation(&s.endpoint)["state"] != "running"
    });
    let done = rotation(&s.endpoint);
    assert_eq!(done["state"], "done", "{done}");
    assert_eq!(done["failed"], 0, "{done}");
    assert_eq!(done["uploads_resealed"], 1, "{done}");
    // The bucket whose default encryption named the old key now names the new one.
    assert_eq!(done["buckets_updated"], 1, "{done}");
    assert!(s.log().contains("KMS key rotation resumed"), "{}", s.log());
    let (code, out) = cairn_integration::admin(&s.endpoint, &["kms", "status"]);
    assert_eq!(code, 0, "{out}");
    assert!(
        out.contains("new (default)") && out.contains("Done"),
        "{out}"
    );
    drop(s);

    // Without the old key: everything reads back, the upload completes, and the data
    // itself was never rewritten.
    let s = Server::start_on(&drives, &[("CAIRN_KMS_SECRET_KEY", &new)]);
    let out = boto(
        &s.endpoint,
        Path::new("-"),
        "00",
        &format!(
            r#"
ok = all(s3.get_object(Bucket="rot", Key="obj/%04d" % i)["Body"].read() == b"%d" % i * 100 for i in range({N}))
h = s3.head_object(Bucket="rot", Key="kms.bin")
print("OBJECTS", ok, h["SSEKMSKeyId"], s3.get_object(Bucket="rot", Key="kms.bin")["Body"].read() == data)
print("PLAIN", s3.get_object(Bucket="rot", Key="plain.bin")["Body"].read() == data)
print("VERSIONS", s3.get_object(Bucket="ver", Key="v", VersionId="{v1}")["Body"].read(), s3.get_object(Bucket="ver", Key="v")["Body"].read())
s3.complete_multipart_upload(Bucket="rot", Key="mp", UploadId="{upload}", MultipartUpload={{"Parts": [{{"ETag": '{etag}', "PartNumber": 1}}]}})
print("UPLOAD", s3.get_object(Bucket="rot", Key="mp")["Body"].read() == data)
d = s3.get_bucket_encryption(Bucket="kdef")["ServerSideEncryptionConfiguration"]["Rules"][0]["ApplyServerSideEncryptionByDefault"]
s3.put_object(Bucket="kdef", Key="after", Body=b"x")
print("DEFAULT", d["KMSMasterKeyID"], s3.head_object(Bucket="kdef", Key="after")["SSEKMSKeyId"])
"#
        ),
    )
    .expect("boto3");
    for want in [
        "OBJECTS True new True",
        "PLAIN True",
        "VERSIONS b'first' b'second'",
        "UPLOAD True",
        "DEFAULT new new",
    ] {
        assert!(out.contains(want), "missing {want:?} in:\n{out}");
    }
    assert_eq!(
        data_fingerprint(&drives, "rot", "kms.bin"),
        before,
        "the rotation rewrote object data"
    );
}

#[test]
fn a_kms_key_given_with_other_bytes_than_its_name_sealed_with_stops_the_start() {
    let dir = tempfile::tempdir().expect("tempdir");
    let drives: Vec<std::path::PathBuf> =
        (1..=4).map(|i| dir.path().join(format!("d{i}"))).collect();
    let b64 = base64::engine::general_purpose::STANDARD;
    let right = format!("k1:{}", b64.encode([0x41u8; 32]));
    let wrong = format!("k1:{}", b64.encode([0x42u8; 32]));
    let s = Server::start_on(&drives, &[("MINIO_KMS_SECRET_KEY", &right)]);
    let script = r#"
s3.create_bucket(Bucket="mmm")
s3.put_object(Bucket="mmm", Key="a", Body=data, ServerSideEncryption="AES256")
print("PUT", s3.head_object(Bucket="mmm", Key="a")["ServerSideEncryption"])
"#;
    // The refusal below needs no client: the name is recorded at the first start.
    let out = boto(&s.endpoint, Path::new("-"), "00", script);
    if let Some(out) = &out {
        assert!(out.contains("PUT AES256"), "{out}");
    }
    drop(s);

    // The same name with other bytes: the server does not start (it would seal new objects
    // that the right key could not open), and says why, naming the variable it read.
    let (status, log) = cairn_integration::run_server_until_exit(
        &drives,
        &[("MINIO_KMS_SECRET_KEY", &wrong)],
        Duration::from_secs(60),
    );
    assert!(!status.success(), "started with a wrong key:\n{log}");
    assert!(
        log.contains("KMS key \"k1\" in MINIO_KMS_SECRET_KEY is not the key this deployment sealed objects with"),
        "{log}"
    );
    assert!(
        !log.contains(&wrong[3..]) && !log.contains(&right[3..]),
        "a key in the log:\n{log}"
    );

    // The right key again, and a new name beside it: what was sealed opens, new seals work.
    let both = format!("k2:{},{right}", b64.encode([0x43u8; 32]));
    let s = Server::start_on(&drives, &[("MINIO_KMS_SECRET_KEY", &both)]);
    if out.is_none() {
        return;
    }
    let out = boto(
        &s.endpoint,
        Path::new("-"),
        "00",
        r#"
print("GET", s3.get_object(Bucket="mmm", Key="a")["Body"].read() == data)
s3.put_object(Bucket="mmm", Key="b", Body=data, ServerSideEncryption="aws:kms", SSEKMSKeyId="k1")
s3.put_object(Bucket="mmm", Key="c", Body=data, ServerSideEncryption="aws:kms")
print("NEW", s3.head_object(Bucket="mmm", Key="c")["SSEKMSKeyId"], s3.get_object(Bucket="mmm", Key="b")["Body"].read() == data)
"#,
    )
    .expect("boto3");
    assert!(
        out.contains("GET True") && out.contains("NEW k2 True"),
        "{out}"
    );
}
