"""Conformance regressions: what real clients send, checked against AWS's answers.

Usage: python3 conformance.py ENDPOINT ACCESS_KEY SECRET_KEY [CHECK ...]
Runs every check (or the named ones), prints one line per check ("ok NAME" or
"FAIL NAME: why") and exits non-zero when any failed. Each check names the bug it guards.
"""
import base64
import datetime
import hashlib
import io
import json
import os
import shutil
import struct
import subprocess
import sys
import tempfile
import traceback
import urllib.error
import urllib.request
import zlib

import boto3
import botocore.auth
from botocore.config import Config
from botocore.exceptions import ClientError

endpoint, access, secret = sys.argv[1:4]
only = set(sys.argv[4:])
common = dict(endpoint_url=endpoint, aws_access_key_id=access,
              aws_secret_access_key=secret, region_name="us-east-1")
s3 = boto3.client("s3", **common)
CHECKS = []


def check(f):
    CHECKS.append(f)
    return f


def error_of(fn, *args, **kwargs):
    """Run a boto3 call that must fail; return (status, code, response)."""
    try:
        fn(*args, **kwargs)
    except ClientError as e:
        r = e.response
        return r["ResponseMetadata"]["HTTPStatusCode"], r["Error"].get("Code"), r
    raise AssertionError(f"{fn.__name__} succeeded, an error was expected")


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args, **kwargs):
        return None  # a redirect is an answer to check, never followed


_opener = urllib.request.build_opener(_NoRedirect)


def http(method, url, data=None, headers=None):
    req = urllib.request.Request(url, data=data, method=method, headers=headers or {})
    try:
        with _opener.open(req) as r:
            return r.status, dict(r.headers), r.read()
    except urllib.error.HTTPError as e:
        return e.code, dict(e.headers), e.read()


def code_of(body):
    text = body.decode(errors="replace")
    return text.split("<Code>")[1].split("</Code>")[0] if "<Code>" in text else ""


def bucket(name, **kwargs):
    try:
        s3.create_bucket(Bucket=name, **kwargs)
    except ClientError as e:
        if e.response["Error"]["Code"] != "BucketAlreadyOwnedByYou":
            raise
    return name


# --- CRCs as AWS defines them (reflected, init and xorout all ones) -----------------------

def _table(poly, width):
    mask = (1 << width) - 1
    out = []
    for i in range(256):
        c = i
        for _ in range(8):
            c = (c >> 1) ^ poly if c & 1 else c >> 1
        out.append(c & mask)
    return out


_T32C = _table(0x82F63B78, 32)
_T64 = _table(0x9A6C9329AC4BC9B5, 64)


def _crc(data, table, width):
    mask = (1 << width) - 1
    c = mask
    for b in data:
        c = table[(c ^ b) & 0xFF] ^ (c >> 8)
    return c ^ mask


def crc_b64(algo, data):
    if algo == "CRC32":
        raw = struct.pack(">I", zlib.crc32(data))
    elif algo == "CRC32C":
        raw = struct.pack(">I", _crc(data, _T32C, 32))
    elif algo == "CRC64NVME":
        raw = struct.pack(">Q", _crc(data, _T64, 64))
    else:
        raise ValueError(algo)
    return base64.b64encode(raw).decode()


# --- the checks --------------------------------------------------------------------------

@check
def region_us_is_us_east_1():
    """s3cmd's default bucket_location = US signs with region 'US'."""
    us = boto3.client("s3", **{**common, "region_name": "US"})
    us.list_buckets()
    b = bucket("conf-region-us")
    us.put_object(Bucket=b, Key="k", Body=b"us")
    assert us.get_object(Bucket=b, Key="k")["Body"].read() == b"us"
    # EU is a legacy constraint for eu-west-1: not this server's region.
    status, code, _ = error_of(s3.create_bucket, Bucket="conf-region-eu",
                               CreateBucketConfiguration={"LocationConstraint": "EU"})
    assert (status, code) == (400, "IllegalLocationConstraintException"), (status, code)
    # Naming this server's own region is fine.
    bucket("conf-region-own", CreateBucketConfiguration={"LocationConstraint": "us-east-1"})


@check
def s3cmd_default_configuration():
    """s3cmd with nothing but keys and host set: region US, SigV4, path style."""
    if not shutil.which("s3cmd"):
        if os.environ.get("CI"):
            raise AssertionError("s3cmd is required under CI")
        print("SKIPPED s3cmd_default_configuration: s3cmd not on PATH")
        return
    host = endpoint.split("://", 1)[1]
    with tempfile.TemporaryDirectory() as work:
        cfg = os.path.join(work, "s3cfg")
        with open(cfg, "w") as f:
            f.write(f"[default]\naccess_key = {access}\nsecret_key = {secret}\n"
                    f"host_base = {host}\nhost_bucket = {host}\nuse_https = False\n")
        src = os.path.join(work, "f.txt")
        with open(src, "wb") as f:
            f.write(b"s3cmd default config\n" * 100)
        run = lambda *a: subprocess.run(["s3cmd", "-c", cfg, *a], capture_output=True,
                                        text=True, timeout=120)
        for args in (["ls"], ["mb", "s3://conf-s3cmd"], ["put", src, "s3://conf-s3cmd/f.txt"],
                     ["ls", "s3://conf-s3cmd"], ["get", "--force", "s3://conf-s3cmd/f.txt",
                                                 os.path.join(work, "back")]):
            r = run(*args)
            assert r.returncode == 0, (args, r.stdout, r.stderr)
        assert open(os.path.join(work, "back"), "rb").read() == open(src, "rb").read()


@check
def date_header_with_minus_0000_zone():
    """botocore signs with `Date: ... -0000` (and no x-amz-date) when a Date header is set."""
    c = boto3.client("s3", **common)
    seen = []

    def add_date(request, **_):
        request.headers["Date"] = "placeholder"

    def record(request, **_):
        seen.append(request.headers.get("Date"))

    c.meta.events.register("before-sign.s3.*", add_date)
    c.meta.events.register("before-send.s3.*", record)
    b = bucket("conf-date")
    c.put_object(Bucket=b, Key="d", Body=b"dated")
    assert c.get_object(Bucket=b, Key="d")["Body"].read() == b"dated"
    c.list_objects_v2(Bucket=b)
    seen = [d.decode() if isinstance(d, bytes) else d for d in seen]
    assert seen and all(d and d.endswith("-0000") for d in seen), seen


def skewed_client(seconds):
    c = boto3.client("s3", **{**common, "config": Config(retries={"max_attempts": 1})})
    real = botocore.auth.get_current_datetime
    botocore.auth.get_current_datetime = lambda: real() + datetime.timedelta(seconds=seconds)
    return c, lambda: setattr(botocore.auth, "get_current_datetime", real)


@check
def clock_skew_is_request_time_too_skewed():
    for skew in (3600, -3600):
        c, restore = skewed_client(skew)
        try:
            status, code, _ = error_of(c.list_buckets)
        finally:
            restore()
        assert (status, code) == (403, "RequestTimeTooSkewed"), (skew, status, code)


@check
def presigned_expiry_out_of_range_is_403():
    b = bucket("conf-presign")
    s3.put_object(Bucket=b, Key="p", Body=b"presigned")
    v4 = boto3.client("s3", **{**common, "config": Config(signature_version="s3v4")})
    url = v4.generate_presigned_url("get_object", Params={"Bucket": b, "Key": "p"}, ExpiresIn=60)
    assert http("GET", url)[0] == 200
    for expires in (-7, 0, 609901):
        url = v4.generate_presigned_url("get_object", Params={"Bucket": b, "Key": "p"},
                                        ExpiresIn=expires)
        status, _, body = http("GET", url)
        assert status == 403, (expires, status, body)
        assert code_of(body) in ("AccessDenied", "AuthorizationQueryParametersError"), body


@check
def sigv2_bucket_level_requests():
    """botocore's SigV2 signs the bucket resource as `/bucket/`."""
    v2 = boto3.client("s3", **{**common, "config": Config(signature_version="s3")})
    v2.create_bucket(Bucket="conf-sigv2")
    v2.head_bucket(Bucket="conf-sigv2")
    v2.put_object(Bucket="conf-sigv2", Key="a b/c", Body=b"v2")
    listed = v2.list_objects(Bucket="conf-sigv2", Prefix="a b/")
    assert [o["Key"] for o in listed["Contents"]] == ["a b/c"], listed
    v2.list_objects_v2(Bucket="conf-sigv2", MaxKeys=1)
    v2.get_bucket_versioning(Bucket="conf-sigv2")
    v2.get_bucket_location(Bucket="conf-sigv2")
    assert v2.get_object(Bucket="conf-sigv2", Key="a b/c")["Body"].read() == b"v2"
    v2.delete_object(Bucket="conf-sigv2", Key="a b/c")
    v2.delete_bucket(Bucket="conf-sigv2")


PART = 5 * 1024 * 1024


def multipart(b, key, algo, ctype, parts):
    up = s3.create_multipart_upload(Bucket=b, Key=key, ChecksumAlgorithm=algo,
                                    ChecksumType=ctype)
    uid = up["UploadId"]
    assert up.get("ChecksumType") == ctype, up
    done = []
    for n, data in enumerate(parts, 1):
        r = s3.upload_part(Bucket=b, Key=key, UploadId=uid, PartNumber=n, Body=data,
                           **{f"Checksum{algo}": crc_b64(algo, data)})
        done.append({"PartNumber": n, "ETag": r["ETag"], f"Checksum{algo}": crc_b64(algo, data)})
    return uid, done


@check
def multipart_full_object_checksums():
    b = bucket("conf-mpu-full")
    parts = [os.urandom(PART), os.urandom(1000)]
    whole = b"".join(parts)
    for algo in ("CRC32", "CRC32C", "CRC64NVME"):
        key = f"full-{algo}"
        uid, done = multipart(b, key, algo, "FULL_OBJECT", parts)
        want = crc_b64(algo, whole)
        # A wrong full-object value is refused.
        status, code, _ = error_of(
            s3.complete_multipart_upload, Bucket=b, Key=key, UploadId=uid,
            MultipartUpload={"Parts": done}, ChecksumType="FULL_OBJECT",
            **{f"Checksum{algo}": crc_b64(algo, b"not the object")})
        assert (status, code) == (400, "BadDigest"), (algo, status, code)
        r = s3.complete_multipart_upload(Bucket=b, Key=key, UploadId=uid,
                                         MultipartUpload={"Parts": done},
                                         ChecksumType="FULL_OBJECT",
                                         **{f"Checksum{algo}": want})
        assert r.get(f"Checksum{algo}") == want, (algo, r)
        assert r.get("ChecksumType") == "FULL_OBJECT", r
        h = s3.head_object(Bucket=b, Key=key, ChecksumMode="ENABLED")
        assert h.get(f"Checksum{algo}") == want, (algo, h)
        assert h.get("ChecksumType") == "FULL_OBJECT", h
        g = s3.get_object(Bucket=b, Key=key, ChecksumMode="ENABLED")
        assert g.get(f"Checksum{algo}") == want and g["Body"].read() == whole, algo


@check
def multipart_composite_checksums():
    b = bucket("conf-mpu-composite")
    parts = [os.urandom(PART), os.urandom(2000)]
    for algo in ("CRC32", "SHA256"):
        key = f"composite-{algo}"
        if algo == "SHA256":
            sums = [base64.b64encode(hashlib.sha256(p).digest()).decode() for p in parts]
            up = s3.create_multipart_upload(Bucket=b, Key=key, ChecksumAlgorithm=algo)
            uid = up["UploadId"]
            done = []
            for n, (data, sm) in enumerate(zip(parts, sums), 1):
                r = s3.upload_part(Bucket=b, Key=key, UploadId=uid, PartNumber=n, Body=data,
                                   ChecksumSHA256=sm)
                done.append({"PartNumber": n, "ETag": r["ETag"], "ChecksumSHA256": sm})
            raw = b"".join(base64.b64decode(x) for x in sums)
            want = base64.b64encode(hashlib.sha256(raw).digest()).decode() + "-2"
        else:
            uid, done = multipart(b, key, algo, "COMPOSITE", parts)
            raw = b"".join(base64.b64decode(crc_b64(algo, p)) for p in parts)
            want = crc_b64(algo, raw) + "-2"
        r = s3.complete_multipart_upload(Bucket=b, Key=key, UploadId=uid,
                                         MultipartUpload={"Parts": done},
                                         **{f"Checksum{algo}": want})
        assert r.get(f"Checksum{algo}") == want, (algo, r, want)
        h = s3.head_object(Bucket=b, Key=key, ChecksumMode="ENABLED")
        assert h.get(f"Checksum{algo}") == want, (algo, h)
        assert h.get("ChecksumType") == "COMPOSITE", h


@check
def complete_multipart_twice_is_idempotent():
    b = bucket("conf-mpu-twice")
    up = s3.create_multipart_upload(Bucket=b, Key="twice")
    uid = up["UploadId"]
    p1 = s3.upload_part(Bucket=b, Key="twice", UploadId=uid, PartNumber=1, Body=os.urandom(PART))
    p2 = s3.upload_part(Bucket=b, Key="twice", UploadId=uid, PartNumber=2, Body=b"tail")
    parts = {"Parts": [{"PartNumber": 1, "ETag": p1["ETag"]}, {"PartNumber": 2, "ETag": p2["ETag"]}]}
    first = s3.complete_multipart_upload(Bucket=b, Key="twice", UploadId=uid, MultipartUpload=parts)
    again = s3.complete_multipart_upload(Bucket=b, Key="twice", UploadId=uid, MultipartUpload=parts)
    assert first["ETag"] == again["ETag"], (first, again)
    # Different parts than were completed: the upload is gone.
    other = {"Parts": [{"PartNumber": 1, "ETag": p1["ETag"]}]}
    status, code, _ = error_of(s3.complete_multipart_upload, Bucket=b, Key="twice",
                               UploadId=uid, MultipartUpload=other)
    assert (status, code) == (404, "NoSuchUpload"), (status, code)


@check
def list_buckets_pagination():
    for n in ("conf-lb-a", "conf-lb-b", "conf-lb-c"):
        bucket(n)
    every = [b["Name"] for b in s3.list_buckets()["Buckets"]]
    assert every == sorted(every) and len(every) >= 3, every
    seen, token = [], None
    while True:
        kw = {"MaxBuckets": 1}
        if token:
            kw["ContinuationToken"] = token
        r = s3.list_buckets(**kw)
        assert len(r["Buckets"]) <= 1, r["Buckets"]
        seen += [b["Name"] for b in r["Buckets"]]
        token = r.get("ContinuationToken")
        if not token:
            break
    assert seen == every, (seen, every)
    r = s3.list_buckets(Prefix="conf-lb-")
    assert [b["Name"] for b in r["Buckets"]] == ["conf-lb-a", "conf-lb-b", "conf-lb-c"], r
    assert r.get("Prefix") == "conf-lb-", r
    r = s3.list_buckets(Prefix="conf-lb-", MaxBuckets=2)
    assert [b["Name"] for b in r["Buckets"]] == ["conf-lb-a", "conf-lb-b"], r
    r = s3.list_buckets(Prefix="conf-lb-", MaxBuckets=2, ContinuationToken=r["ContinuationToken"])
    assert [b["Name"] for b in r["Buckets"]] == ["conf-lb-c"] and "ContinuationToken" not in r, r


@check
def max_keys_zero_is_not_truncated():
    b = bucket("conf-maxkeys")
    s3.put_object(Bucket=b, Key="x", Body=b"x")
    for fn in (s3.list_objects_v2, s3.list_objects):
        r = fn(Bucket=b, MaxKeys=0)
        assert r["IsTruncated"] is False and "Contents" not in r, r
    r = s3.list_object_versions(Bucket=b, MaxKeys=0)
    assert r["IsTruncated"] is False and "Versions" not in r, r


@check
def content_encoding_kept_byte_for_byte():
    b = bucket("conf-encoding")
    for value in ("deflate, gzip", "gzip,  br", "identity"):
        s3.put_object(Bucket=b, Key="e", Body=b"zzz", ContentEncoding=value)
        assert s3.head_object(Bucket=b, Key="e")["ContentEncoding"] == value, value
    # An aws-chunked upload with a checksum trailer (what the SDKs stream): the coding is
    # sent as `aws-chunked,<the client's>` and only aws-chunked is dropped.
    data = b"chunked body"
    body = (f"{len(data):x}\r\n".encode() + data + b"\r\n0\r\n"
            + f"x-amz-checksum-crc32:{crc_b64('CRC32', data)}\r\n\r\n".encode())
    status, _, answer = signed_request("PUT", f"/{b}/chunked", body, {
        "Content-Encoding": "aws-chunked,deflate, gzip",
        "x-amz-content-sha256": "STREAMING-UNSIGNED-PAYLOAD-TRAILER",
        "x-amz-trailer": "x-amz-checksum-crc32",
        "x-amz-decoded-content-length": str(len(data)),
    })
    assert status == 200, (status, answer)
    h = s3.head_object(Bucket=b, Key="chunked")
    assert h["ContentEncoding"] == "deflate, gzip", h.get("ContentEncoding")
    assert s3.get_object(Bucket=b, Key="chunked")["Body"].read() == data


def signed_request(method, path, body=b"", headers=None):
    """A request signed with SigV4 exactly as given (headers and body untouched)."""
    from botocore.auth import SigV4Auth
    from botocore.awsrequest import AWSRequest
    from botocore.credentials import Credentials
    req = AWSRequest(method=method, url=endpoint + path, data=body, headers=headers or {})
    SigV4Auth(Credentials(access, secret), "s3", "us-east-1").add_auth(req)
    return http(method, endpoint + path, body, dict(req.headers.items()))


@check
def checksum_header_errors():
    b = bucket("conf-checksum-errors")
    url = lambda k: f"{endpoint}/{b}/{k}"
    # Well-formed but wrong: BadDigest.
    status, code, _ = error_of(s3.put_object, Bucket=b, Key="bad", Body=b"abc",
                               ChecksumCRC32=crc_b64("CRC32", b"xyz"))
    assert (status, code) == (400, "BadDigest"), (status, code)
    # Not a CRC32 at all (bad base64, wrong length): InvalidRequest.
    for value in ("!!!!", base64.b64encode(b"12345678").decode()):
        status, code, _ = error_of(s3.put_object, Bucket=b, Key="bad", Body=b"abc",
                                   ChecksumCRC32=value)
        assert (status, code) == (400, "InvalidRequest"), (value, status, code)


@check
def upload_part_copy_unsatisfiable_range():
    b = bucket("conf-partcopy")
    s3.put_object(Bucket=b, Key="src", Body=b"0123456789")
    up = s3.create_multipart_upload(Bucket=b, Key="dst")
    status, code, _ = error_of(s3.upload_part_copy, Bucket=b, Key="dst",
                               UploadId=up["UploadId"], PartNumber=1,
                               CopySource={"Bucket": b, "Key": "src"},
                               CopySourceRange="bytes=0-21")
    assert status in (400, 416) and code == "InvalidRange", (status, code)
    s3.abort_multipart_upload(Bucket=b, Key="dst", UploadId=up["UploadId"])


@check
def head_of_deleted_key_carries_delete_marker():
    b = bucket("conf-head-marker")
    s3.put_bucket_versioning(Bucket=b, VersioningConfiguration={"Status": "Enabled"})
    s3.put_object(Bucket=b, Key="gone", Body=b"x")
    marker = s3.delete_object(Bucket=b, Key="gone")
    status, _, r = error_of(s3.head_object, Bucket=b, Key="gone")
    headers = r["ResponseMetadata"]["HTTPHeaders"]
    assert status == 404 and headers.get("x-amz-delete-marker") == "true", headers
    assert headers.get("x-amz-version-id") == marker["VersionId"], headers
    # A key that never existed: no marker header.
    status, _, r = error_of(s3.head_object, Bucket=b, Key="never")
    assert status == 404 and "x-amz-delete-marker" not in r["ResponseMetadata"]["HTTPHeaders"]


@check
def get_object_attributes():
    b = bucket("conf-attributes")
    s3.put_object(Bucket=b, Key="single", Body=b"attributes!",
                  ChecksumCRC32C=crc_b64("CRC32C", b"attributes!"))
    r = s3.get_object_attributes(Bucket=b, Key="single",
                                 ObjectAttributes=["ETag", "Checksum", "ObjectSize",
                                                   "StorageClass", "ObjectParts"])
    assert r["ETag"] == hashlib.md5(b"attributes!").hexdigest(), r
    assert r["ObjectSize"] == 11 and r["StorageClass"] == "STANDARD", r
    assert r["Checksum"]["ChecksumCRC32C"] == crc_b64("CRC32C", b"attributes!"), r
    assert r["Checksum"]["ChecksumType"] == "FULL_OBJECT", r
    assert "ObjectParts" not in r, r
    assert "LastModified" in r, r
    # Only what was asked for.
    r = s3.get_object_attributes(Bucket=b, Key="single", ObjectAttributes=["ObjectSize"])
    assert r["ObjectSize"] == 11 and "ETag" not in r and "Checksum" not in r, r
    # A multipart object's parts, paginated, with their checksums.
    parts = [os.urandom(PART), os.urandom(PART), b"end"]
    uid, done = multipart(b, "multi", "CRC32", "COMPOSITE", parts)
    s3.complete_multipart_upload(Bucket=b, Key="multi", UploadId=uid,
                                 MultipartUpload={"Parts": done})
    r = s3.get_object_attributes(Bucket=b, Key="multi", MaxParts=2,
                                 ObjectAttributes=["ObjectParts", "Checksum", "ETag"])
    op = r["ObjectParts"]
    assert op["TotalPartsCount"] == 3 and op["IsTruncated"] is True, op
    assert [p["PartNumber"] for p in op["Parts"]] == [1, 2], op
    assert op["Parts"][0]["ChecksumCRC32"] == crc_b64("CRC32", parts[0]), op
    assert op["Parts"][0]["Size"] == PART, op
    assert r["ETag"].endswith("-3") and r["Checksum"]["ChecksumType"] == "COMPOSITE", r
    r = s3.get_object_attributes(Bucket=b, Key="multi", MaxParts=2,
                                 PartNumberMarker=op["NextPartNumberMarker"],
                                 ObjectAttributes=["ObjectParts"])
    assert [p["PartNumber"] for p in r["ObjectParts"]["Parts"]] == [3], r
    assert r["ObjectParts"]["IsTruncated"] is False, r
    # A version by id; a missing key.
    s3.put_bucket_versioning(Bucket=b, VersioningConfiguration={"Status": "Enabled"})
    v1 = s3.put_object(Bucket=b, Key="v", Body=b"one")["VersionId"]
    s3.put_object(Bucket=b, Key="v", Body=b"three")
    r = s3.get_object_attributes(Bucket=b, Key="v", VersionId=v1, ObjectAttributes=["ObjectSize"])
    assert r["ObjectSize"] == 3 and r["VersionId"] == v1, r
    status, code, _ = error_of(s3.get_object_attributes, Bucket=b, Key="nope",
                               ObjectAttributes=["ETag"])
    assert (status, code) == (404, "NoSuchKey"), (status, code)
    status, code, _ = error_of(s3.get_object_attributes, Bucket=b, Key="v",
                               ObjectAttributes=["Colour"])
    assert (status, code) == (400, "InvalidArgument"), (status, code)


@check
def cors_rules_preflight_and_actual_requests():
    b = bucket("conf-cors")
    s3.put_object(Bucket=b, Key="page.txt", Body=b"for the browser")
    status, code, _ = error_of(s3.get_bucket_cors, Bucket=b)
    assert (status, code) == (404, "NoSuchCORSConfiguration"), (status, code)
    # No rules (and no server default): a preflight is refused.
    pre = lambda origin, method, hdrs=None: http("OPTIONS", f"{endpoint}/{b}/page.txt", headers={
        "Origin": origin, "Access-Control-Request-Method": method,
        **({"Access-Control-Request-Headers": hdrs} if hdrs else {})})
    status, _, body = pre("https://app.example.com", "GET")
    assert status == 403 and code_of(body) == "AccessForbidden", (status, body)
    # The server's default (CAIRN_CORS_ALLOW_ORIGIN) covers buckets without rules.
    default = os.environ.get("CAIRN_CORS_ALLOW_ORIGIN")
    if default:
        status, h, _ = pre(default, "DELETE", "x-amz-date")
        assert status == 200, (status, h)
        assert {k.lower(): v for k, v in h.items()}["access-control-allow-origin"] == default
    rules = {"CORSRules": [
        {"ID": "app", "AllowedOrigins": ["https://*.example.com"], "AllowedMethods": ["GET", "PUT"],
         "AllowedHeaders": ["content-type", "x-amz-*"], "ExposeHeaders": ["ETag"],
         "MaxAgeSeconds": 600},
        {"AllowedOrigins": ["*"], "AllowedMethods": ["GET"]},
    ]}
    s3.put_bucket_cors(Bucket=b, CORSConfiguration=rules)
    got = s3.get_bucket_cors(Bucket=b)["CORSRules"]
    assert got[0]["AllowedOrigins"] == ["https://*.example.com"] and got[0]["MaxAgeSeconds"] == 600, got
    assert got[0]["ID"] == "app" and got[1]["AllowedMethods"] == ["GET"], got
    # A browser's preflight for a PUT with headers: allowed by the first rule.
    status, h, _ = pre("https://app.example.com", "PUT", "Content-Type, X-Amz-Meta-Colour")
    h = {k.lower(): v for k, v in h.items()}
    assert status == 200, (status, h)
    assert h["access-control-allow-origin"] == "https://app.example.com", h
    assert h["access-control-allow-methods"] == "GET, PUT", h
    assert h["access-control-allow-headers"].lower() == "content-type, x-amz-meta-colour", h
    assert h["access-control-max-age"] == "600" and h["access-control-expose-headers"] == "ETag", h
    assert h["access-control-allow-credentials"] == "true" and "Origin" in h["vary"], h
    # A header no rule allows, a method no rule allows, no Origin at all.
    assert pre("https://app.example.com", "PUT", "Authorization-Extra")[0] == 403
    assert pre("https://elsewhere.test", "PUT")[0] == 403
    assert pre("https://elsewhere.test", "PATCH")[0] == 400
    if default:  # the bucket's own rules replace the default
        assert pre(default, "DELETE")[0] == 403
    status, _, body = http("OPTIONS", f"{endpoint}/{b}/page.txt",
                           headers={"Access-Control-Request-Method": "GET"})
    assert status == 400 and code_of(body) == "BadRequest", (status, body)
    # The wildcard rule answers `*` (no credentials).
    status, h, _ = pre("https://elsewhere.test", "GET")
    h = {k.lower(): v for k, v in h.items()}
    assert status == 200 and h["access-control-allow-origin"] == "*", h
    assert "access-control-allow-credentials" not in h, h
    # An actual (signed) request with an Origin gets the headers; errors too.
    c = boto3.client("s3", **common)
    seen = []
    c.meta.events.register("before-sign.s3.*",
                           lambda request, **_: request.headers.__setitem__("Origin", "https://app.example.com"))
    c.meta.events.register("after-call.s3.*",
                           lambda http_response, **_: seen.append(dict(http_response.headers)))
    assert c.get_object(Bucket=b, Key="page.txt")["Body"].read() == b"for the browser"
    h = {k.lower(): v for k, v in seen[-1].items()}
    assert h.get("access-control-allow-origin") == "https://app.example.com", h
    assert h.get("access-control-expose-headers") == "ETag" and h.get("vary") == "Origin", h
    try:
        c.get_object(Bucket=b, Key="missing")
    except ClientError as e:
        h = {k.lower(): v for k, v in e.response["ResponseMetadata"]["HTTPHeaders"].items()}
        assert h.get("access-control-allow-origin") == "https://app.example.com", h
    # Invalid rules, then deleting the configuration.
    status, code, _ = error_of(s3.put_bucket_cors, Bucket=b, CORSConfiguration={"CORSRules": [
        {"AllowedOrigins": ["*"], "AllowedMethods": ["PATCH"]}]})
    assert (status, code) == (400, "InvalidRequest"), (status, code)
    s3.delete_bucket_cors(Bucket=b)
    assert pre("https://app.example.com", "GET")[0] == 403
    status, code, _ = error_of(s3.get_bucket_cors, Bucket=b)
    assert code == "NoSuchCORSConfiguration", code


@check
def expected_bucket_owner():
    b = bucket("conf-owner")
    s3.put_object(Bucket=b, Key="k", Body=b"mine")
    owner = s3.list_buckets()["Owner"]["ID"]
    s3.head_object(Bucket=b, Key="k", ExpectedBucketOwner=owner)
    s3.list_objects_v2(Bucket=b, ExpectedBucketOwner=owner)
    for call, kw in ((s3.head_object, {"Key": "k"}), (s3.list_objects_v2, {}),
                     (s3.put_object, {"Key": "k2", "Body": b"x"})):
        status, code, _ = error_of(call, Bucket=b, ExpectedBucketOwner="111122223333", **kw)
        # A HEAD's error has no body: the client knows only the status.
        assert status == 403 and code in ("AccessDenied", "403"), (call.__name__, status, code)
    status, code, _ = error_of(s3.copy_object, Bucket=b, Key="copy",
                               CopySource={"Bucket": b, "Key": "k"},
                               ExpectedSourceBucketOwner="111122223333")
    assert (status, code) == (403, "AccessDenied"), (status, code)
    s3.copy_object(Bucket=b, Key="copy", CopySource={"Bucket": b, "Key": "k"},
                   ExpectedSourceBucketOwner=owner, ExpectedBucketOwner=owner)


def form_post(url, fields, file_bytes, filename="upload.bin", content_type=None):
    """POST a multipart/form-data body as a browser does (fields first, then the file)."""
    boundary = "----cairnFormBoundary7MA4YWxkTrZu0gW"
    parts = []
    for k, v in fields.items():
        parts.append(f'--{boundary}\r\nContent-Disposition: form-data; name="{k}"\r\n\r\n{v}\r\n'.encode())
    head = f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="{filename}"\r\n'
    if content_type:
        head += f"Content-Type: {content_type}\r\n"
    parts.append((head + "\r\n").encode() + file_bytes + b"\r\n")
    parts.append(f"--{boundary}--\r\n".encode())
    return http("POST", url, b"".join(parts),
                {"Content-Type": f"multipart/form-data; boundary={boundary}"})


@check
def browser_post_uploads():
    b = bucket("conf-post")
    for version in ("s3v4", "s3"):
        c = boto3.client("s3", **{**common, "config": Config(signature_version=version)})
        post = c.generate_presigned_post(
            b, "uploads/${filename}",
            Fields={"success_action_status": "201", "x-amz-meta-origin": "form"},
            Conditions=[{"success_action_status": "201"}, ["starts-with", "$x-amz-meta-origin", ""],
                        ["content-length-range", 1, 1000]],
            ExpiresIn=300)
        body = f"posted with {version}".encode()
        status, h, answer = form_post(post["url"], post["fields"], body, f"{version}.txt", "text/plain")
        assert status == 201, (version, status, answer)
        assert b"<Key>uploads/" + version.encode() + b".txt</Key>" in answer, answer
        key = f"uploads/{version}.txt"
        got = s3.get_object(Bucket=b, Key=key)
        assert got["Body"].read() == body and got["Metadata"] == {"origin": "form"}, got
        assert got["ContentType"] == "text/plain", got["ContentType"]
        # Too large for the policy: refused, nothing stored.
        fields = dict(post["fields"], key="uploads/big")
        status, _, answer = form_post(post["url"], fields, b"x" * 1001)
        assert status == 403 or code_of(answer) == "EntityTooLarge", (status, answer)
        # A field the policy does not cover, a tampered key, a bad signature.
        status, _, answer = form_post(post["url"], dict(post["fields"], **{"x-amz-meta-extra": "1"}), b"x")
        assert status == 403 and code_of(answer) == "AccessDenied", (status, answer)
        sig = "x-amz-signature" if version == "s3v4" else "signature"
        forged = dict(post["fields"])
        forged[sig] = forged[sig][:-2] + ("00" if not forged[sig].endswith("00") else "11")
        status, _, answer = form_post(post["url"], forged, b"x")
        assert status == 403 and code_of(answer) == "SignatureDoesNotMatch", (status, answer)
    # An expired policy.
    c = boto3.client("s3", **{**common, "config": Config(signature_version="s3v4")})
    post = c.generate_presigned_post(b, "late", ExpiresIn=-10)
    status, _, answer = form_post(post["url"], post["fields"], b"late")
    assert status == 403 and b"Policy expired" in answer, (status, answer)
    # A redirect after success.
    post = c.generate_presigned_post(b, "redirected", Fields={"success_action_redirect": "http://127.0.0.1:9/done"},
                                     Conditions=[{"success_action_redirect": "http://127.0.0.1:9/done"}])
    status, h, _ = form_post(post["url"], post["fields"], b"r")
    h = {k.lower(): v for k, v in h.items()}
    assert status == 303 and h["location"].startswith("http://127.0.0.1:9/done?bucket=conf-post&key=redirected&etag="), (status, h)
    # Anonymous forms need a bucket policy that lets anyone write; without one: AccessDenied.
    status, _, answer = form_post(f"{endpoint}/{b}", {"key": "anon"}, b"anonymous")
    assert status == 403 and code_of(answer) == "AccessDenied", (status, answer)
    s3.put_public_access_block(Bucket=b, PublicAccessBlockConfiguration={
        "BlockPublicAcls": False, "IgnorePublicAcls": False,
        "BlockPublicPolicy": False, "RestrictPublicBuckets": False})
    s3.put_bucket_policy(Bucket=b, Policy=json.dumps({"Version": "2012-10-17", "Statement": [{
        "Effect": "Allow", "Principal": "*", "Action": "s3:PutObject",
        "Resource": f"arn:aws:s3:::{b}/drop/*"}]}))
    status, _, answer = form_post(f"{endpoint}/{b}", {"key": "drop/anon"}, b"anonymous")
    assert status == 204, (status, answer)
    assert s3.get_object(Bucket=b, Key="drop/anon")["Body"].read() == b"anonymous"
    status, _, answer = form_post(f"{endpoint}/{b}", {"key": "elsewhere"}, b"anonymous")
    assert status == 403, (status, answer)
    # Not a form at all.
    status, _, answer = http("POST", f"{endpoint}/{b}", b"plain", {"Content-Type": "text/plain"})
    assert status == 400 and code_of(answer) == "MalformedPOSTRequest", (status, answer)


@check
def storage_classes():
    b = bucket("conf-class")
    s3.put_object(Bucket=b, Key="rrs", Body=b"reduced", StorageClass="REDUCED_REDUNDANCY")
    s3.put_object(Bucket=b, Key="std", Body=b"standard", StorageClass="STANDARD")
    h = s3.head_object(Bucket=b, Key="rrs")
    assert h.get("StorageClass") == "REDUCED_REDUNDANCY", h
    assert "StorageClass" not in s3.head_object(Bucket=b, Key="std")  # as AWS: STANDARD is implied
    assert s3.get_object(Bucket=b, Key="rrs")["Body"].read() == b"reduced"
    listed = {o["Key"]: o["StorageClass"] for o in s3.list_objects_v2(Bucket=b)["Contents"]}
    assert listed == {"rrs": "REDUCED_REDUNDANCY", "std": "STANDARD"}, listed
    versions = {v["Key"]: v["StorageClass"] for v in s3.list_object_versions(Bucket=b)["Versions"]}
    assert versions == listed, versions
    attrs = s3.get_object_attributes(Bucket=b, Key="rrs", ObjectAttributes=["StorageClass"])
    assert attrs["StorageClass"] == "REDUCED_REDUNDANCY", attrs
    # A copy takes the class it asks for, not the source's.
    s3.copy_object(Bucket=b, Key="copy", CopySource={"Bucket": b, "Key": "rrs"})
    assert "StorageClass" not in s3.head_object(Bucket=b, Key="copy")
    s3.copy_object(Bucket=b, Key="copy2", CopySource={"Bucket": b, "Key": "std"},
                   StorageClass="REDUCED_REDUNDANCY")
    assert s3.head_object(Bucket=b, Key="copy2")["StorageClass"] == "REDUCED_REDUNDANCY"
    # Multipart.
    up = s3.create_multipart_upload(Bucket=b, Key="mp", StorageClass="REDUCED_REDUNDANCY")
    p = s3.upload_part(Bucket=b, Key="mp", UploadId=up["UploadId"], PartNumber=1, Body=b"part")
    s3.complete_multipart_upload(Bucket=b, Key="mp", UploadId=up["UploadId"],
                                 MultipartUpload={"Parts": [{"PartNumber": 1, "ETag": p["ETag"]}]})
    assert s3.head_object(Bucket=b, Key="mp")["StorageClass"] == "REDUCED_REDUNDANCY"
    # Classes Cairn does not have.
    for cls in ("GLACIER", "DEEP_ARCHIVE", "ONEZONE_IA", "EXPRESS_ONEZONE"):
        status, code, _ = error_of(s3.put_object, Bucket=b, Key="x", Body=b"x", StorageClass=cls)
        assert (status, code) == (400, "InvalidStorageClass"), (cls, status, code)



# --- Found by an independent black-box run (session 30) ----------------------------------

@check
def list_multipart_uploads_pages_with_a_delimiter():
    """Truncated pages name where the next starts, also when the last entry is a prefix."""
    b = bucket("conf-mpu-pages")
    keys = ["a/1", "a/2", "a/b/3", "b/1", "c", "c"]
    ids = [s3.create_multipart_upload(Bucket=b, Key=k)["UploadId"] for k in keys]
    try:
        def walk(**kw):
            seen, marker, pages = [], {}, 0
            while True:
                r = s3.list_multipart_uploads(Bucket=b, MaxUploads=1, **kw, **marker)
                pages += 1
                assert pages < 20, "paging does not end"
                seen += [p["Prefix"] for p in r.get("CommonPrefixes", [])]
                seen += [(u["Key"], u["UploadId"]) for u in r.get("Uploads", [])]
                if not r["IsTruncated"]:
                    return seen
                marker = {"KeyMarker": r["NextKeyMarker"]}
                if r.get("NextUploadIdMarker"):
                    marker["UploadIdMarker"] = r["NextUploadIdMarker"]
        c_ids = [i for k, i in zip(keys, ids) if k == "c"]
        got = walk(Delimiter="/")
        assert got[:2] == ["a/", "b/"] and sorted(x[1] for x in got[2:]) == sorted(c_ids), got
        assert len(got) == 4, got
        # Without a delimiter every upload once, two of the same key included.
        got = walk()
        assert sorted(i for _, i in got) == sorted(ids) and len(got) == 6, got
        # A key marker that is a prefix already shown skips everything under it.
        r = s3.list_multipart_uploads(Bucket=b, Delimiter="/", KeyMarker="a/")
        assert [p["Prefix"] for p in r.get("CommonPrefixes", [])] == ["b/"], r
    finally:
        for k, i in zip(keys, ids):
            s3.abort_multipart_upload(Bucket=b, Key=k, UploadId=i)


@check
def anonymous_get_cannot_override_response_headers():
    b = bucket("conf-anon-overrides")
    s3.put_object(Bucket=b, Key="pub/x", Body=b"public", ContentType="text/plain")
    s3.put_bucket_policy(Bucket=b, Policy=json.dumps({
        "Version": "2012-10-17",
        "Statement": [{"Effect": "Allow", "Principal": "*", "Action": "s3:GetObject",
                       "Resource": f"arn:aws:s3:::{b}/pub/*"}]}))
    url = f"{endpoint}/{b}/pub/x"
    assert http("GET", url)[0] == 200
    status, _, body = http("GET", url + "?response-content-type=text%2Fhtml")
    assert (status, code_of(body)) == (400, "InvalidRequest"), (status, body)
    # Signed, the same override is honoured.
    r = s3.get_object(Bucket=b, Key="pub/x", ResponseContentType="text/html")
    assert r["ContentType"] == "text/html", r["ContentType"]


@check
def range_and_part_number_together_are_refused():
    b = bucket("conf-range-part")
    s3.put_object(Bucket=b, Key="o", Body=b"0123456789")
    status, _, body = signed_request("GET", f"/{b}/o?partNumber=1", headers={"Range": "bytes=0-1"})
    assert (status, code_of(body)) == (400, "InvalidRequest"), (status, body)


@check
def delete_marker_by_version_id_has_last_modified():
    b = bucket("conf-marker-405")
    s3.put_bucket_versioning(Bucket=b, VersioningConfiguration={"Status": "Enabled"})
    s3.put_object(Bucket=b, Key="k", Body=b"x")
    marker = s3.delete_object(Bucket=b, Key="k")["VersionId"]
    listed = s3.list_object_versions(Bucket=b, Prefix="k")["DeleteMarkers"][0]["LastModified"]
    for method in ("GET", "HEAD"):
        status, headers, _ = signed_request(method, f"/{b}/k?versionId={marker}")
        headers = {k.lower(): v for k, v in headers.items()}
        assert status == 405 and headers.get("x-amz-delete-marker") == "true", (method, headers)
        when = datetime.datetime.strptime(headers["last-modified"], "%a, %d %b %Y %H:%M:%S GMT")
        assert when.replace(tzinfo=datetime.timezone.utc) == listed.replace(microsecond=0), (
            headers["last-modified"], listed)


@check
def unsatisfiable_range_names_the_size():
    b = bucket("conf-416")
    s3.put_object(Bucket=b, Key="ten", Body=b"0123456789")
    s3.put_object(Bucket=b, Key="empty", Body=b"")
    for key, size in (("ten", 10), ("empty", 0)):
        status, headers, body = signed_request("GET", f"/{b}/{key}", headers={"Range": "bytes=20-"})
        headers = {k.lower(): v for k, v in headers.items()}
        assert (status, code_of(body)) == (416, "InvalidRange"), (key, status, body)
        assert headers.get("content-range") == f"bytes */{size}", (key, headers)


@check
def reserved_bucket_names_are_invalid():
    for name in ("xn--abc", "sthree-abc", "amzn-s3-demo-x", "abc-s3alias", "abc--ol-s3",
                 "abc.mrap"):
        status, code, _ = error_of(s3.create_bucket, Bucket=name)
        assert (status, code) == (400, "InvalidBucketName"), (name, status, code)
    # boto3 takes `--x-s3` names for directory buckets and signs them otherwise.
    status, _, body = signed_request("PUT", "/abc--x-s3")
    assert (status, code_of(body)) == (400, "InvalidBucketName"), (status, body)
    # Close to reserved, but not: fine.
    s3.create_bucket(Bucket="conf-xn-abc")
    s3.delete_bucket(Bucket="conf-xn-abc")


@check
def list_objects_v1_next_marker_only_with_a_delimiter():
    b = bucket("conf-v1-marker")
    for k in ("a", "b", "c/1", "c/2", "d"):
        s3.put_object(Bucket=b, Key=k, Body=b"x")
    r = s3.list_objects(Bucket=b, MaxKeys=1)
    assert r["IsTruncated"] and "NextMarker" not in r, r
    r = s3.list_objects(Bucket=b, MaxKeys=3, Delimiter="/")
    assert r["IsTruncated"] and r["NextMarker"] == "c/", r
    r = s3.list_objects(Bucket=b, Marker=r["NextMarker"], Delimiter="/")
    assert [o["Key"] for o in r["Contents"]] == ["d"] and not r.get("CommonPrefixes"), r


def body_headers(text):
    """Content-MD5 and the signed payload hash of a small XML body."""
    data = text.encode()
    return {"Content-MD5": base64.b64encode(hashlib.md5(data).digest()).decode(),
            "x-amz-content-sha256": hashlib.sha256(data).hexdigest()}


@check
def configuration_of_another_document_type_is_malformed():
    b = bucket("conf-wrong-root")
    for sub, good in (
        ("publicAccessBlock", "<PublicAccessBlockConfiguration><BlockPublicAcls>true</BlockPublicAcls>"
                              "</PublicAccessBlockConfiguration>"),
        ("versioning", "<VersioningConfiguration><Status>Enabled</Status></VersioningConfiguration>"),
        ("tagging", "<Tagging><TagSet><Tag><Key>k</Key><Value>v</Value></Tag></TagSet></Tagging>"),
    ):
        # Another root around the same fields, or an empty document of another type.
        root = good[1:good.index(">")]
        for bad in ("<X/>", good.replace(root, "Other")):
            status, _, body = signed_request("PUT", f"/{b}?{sub}", bad.encode(), body_headers(bad))
            assert (status, code_of(body)) == (400, "MalformedXML"), (sub, bad, status, body)
        status, _, body = signed_request("PUT", f"/{b}?{sub}", good.encode(), body_headers(good))
        assert status in (200, 204), (sub, status, body)


@check
def bucket_policy_action_must_fit_a_resource():
    """`s3:ListBucket` on the bucket's objects grants nothing: refused, as S3 refuses it."""
    b = bucket("conf-policy-fit")
    doc = lambda action, resource: json.dumps({"Version": "2012-10-17", "Statement": [{
        "Effect": "Allow", "Principal": {"AWS": ["*"]}, "Action": action,
        "Resource": resource}]})
    own = f"arn:aws:s3:::{b}"
    for action, resource in (("s3:ListBucket", f"{own}/*"), ("s3:GetObject", own),
                             (["s3:GetObject", "s3:ListBucket"], f"{own}/*")):
        status, code, _ = error_of(s3.put_bucket_policy, Bucket=b, Policy=doc(action, resource))
        assert (status, code) == (400, "MalformedPolicy"), (action, resource, status, code)
    s3.put_bucket_policy(Bucket=b, Policy=doc(["s3:GetObject", "s3:ListBucket"], [own, f"{own}/*"]))
    s3.put_bucket_policy(Bucket=b, Policy=doc("s3:*", f"{own}/*"))
    s3.delete_bucket_policy(Bucket=b)


@check
def many_short_metadata_entries():
    """S3 bounds metadata by size (2 KiB), not by how many headers carry it."""
    import http.client
    # Python reads at most 100 response headers unless told otherwise.
    http.client._MAXHEADERS = max(http.client._MAXHEADERS, 1000)
    b = bucket("conf-many-meta")
    meta = {f"k{i}": "v" for i in range(150)}
    s3.put_object(Bucket=b, Key="m", Body=b"x", Metadata=meta)
    assert s3.head_object(Bucket=b, Key="m")["Metadata"] == meta


@check
def one_auth_mechanism_per_request():
    b = bucket("conf-one-auth")
    s3.put_object(Bucket=b, Key="o", Body=b"x")
    assert signed_request("GET", f"/{b}/o")[0] == 200
    for q in ("X-Amz-Signature=abc", "X-Amz-Algorithm=AWS4-HMAC-SHA256", "X-Amz-Credential=x"):
        status, _, body = signed_request("GET", f"/{b}/o?{q}")
        assert (status, code_of(body)) == (400, "InvalidArgument"), (q, status, body)


@check
def listed_keys_with_control_characters_stay_readable():
    """A CR, tab or LF in a key comes back as itself from a listing without encoding-type."""
    import xml.etree.ElementTree as ET
    b = bucket("conf-ctrl-keys")
    keys = ["ctl/a\rb", "ctl/c\td", "ctl/e\nf"]
    for k in keys:
        s3.put_object(Bucket=b, Key=k, Body=b"x")
    status, _, body = signed_request("GET", f"/{b}?list-type=2&prefix=ctl%2F")
    assert status == 200, (status, body)
    ns = "{http://s3.amazonaws.com/doc/2006-03-01/}"
    got = [e.text for e in ET.fromstring(body).iter(ns + "Key")]
    assert got == sorted(keys), got

@check
def selectors_a_method_does_not_act_on_are_refused():
    """`DELETE /b/k?acl` is no operation: 405, the object stays (it was a plain delete)."""
    b = bucket("conf-selectors")
    s3.put_object(Bucket=b, Key="keep", Body=b"precious")
    for method, path in (("DELETE", f"/{b}/keep?acl"), ("DELETE", f"/{b}/keep?legal-hold"),
                         ("DELETE", f"/{b}/keep?retention"), ("PUT", f"/{b}/keep?attributes"),
                         ("PUT", f"/{b}/keep?uploads"), ("DELETE", f"/{b}?versioning"),
                         ("DELETE", f"/{b}?uploads"), ("PUT", "/conf-selectors-new?location")):
        data = b"<junk/>" if method == "PUT" else b""
        status, _, body = signed_request(method, path, data,
                                         {"x-amz-content-sha256": hashlib.sha256(data).hexdigest()})
        assert (status, code_of(body)) == (405, "MethodNotAllowed"), (method, path, status, body)
    assert s3.get_object(Bucket=b, Key="keep")["Body"].read() == b"precious"
    s3.head_bucket(Bucket=b)
    assert error_of(s3.head_bucket, Bucket="conf-selectors-new")[0] == 404


@check
def browser_post_checks_its_content_md5_field():
    b = bucket("conf-post-md5")
    c = boto3.client("s3", **{**common, "config": Config(signature_version="s3v4")})
    post = c.generate_presigned_post(b, "md5", Conditions=[["starts-with", "$Content-MD5", ""]])
    good = base64.b64encode(hashlib.md5(b"filedata").digest()).decode()
    wrong = base64.b64encode(hashlib.md5(b"zz").digest()).decode()
    for value, expect in ((wrong, "BadDigest"), ("not-base64!!", "InvalidDigest")):
        status, _, answer = form_post(post["url"], dict(post["fields"], **{"Content-MD5": value}), b"filedata")
        assert (status, code_of(answer)) == (400, expect), (value, status, answer)
    assert error_of(s3.head_object, Bucket=b, Key="md5")[0] == 404
    status, _, answer = form_post(post["url"], dict(post["fields"], **{"Content-MD5": good}), b"filedata")
    assert status == 204, (status, answer)


@check
def version_ids_are_case_sensitive():
    b = bucket("conf-vcase")
    s3.put_bucket_versioning(Bucket=b, VersioningConfiguration={"Status": "Enabled"})
    vid = s3.put_object(Bucket=b, Key="k", Body=b"data")["VersionId"]
    upper = vid.upper()
    assert upper != vid
    status, _, body = signed_request("DELETE", f"/{b}/k?versionId={upper}")
    assert status == 400 and code_of(body) == "InvalidArgument", (status, body)
    assert s3.get_object(Bucket=b, Key="k", VersionId=vid)["Body"].read() == b"data"
    up = s3.create_multipart_upload(Bucket=b, Key="m")["UploadId"]
    assert error_of(s3.abort_multipart_upload, Bucket=b, Key="m", UploadId=up.upper())[1] == "NoSuchUpload"
    s3.abort_multipart_upload(Bucket=b, Key="m", UploadId=up)


@check
def delete_objects_errors_name_their_version():
    b = bucket("conf-del-errors")
    s3.put_bucket_versioning(Bucket=b, VersioningConfiguration={"Status": "Enabled"})
    out = s3.delete_objects(Bucket=b, Delete={"Objects": [{"Key": "k", "VersionId": "not-a-version"}]})
    errs = out.get("Errors", [])
    assert len(errs) == 1 and errs[0].get("VersionId") == "not-a-version", out


@check
def object_lock_writes_need_a_digest():
    """AWS refuses a PutObject with lock parameters (or a default retention) without
    Content-MD5 or a checksum: damaged bytes must never be locked."""
    b = "conf-lock-digest"
    try:
        s3.create_bucket(Bucket=b, ObjectLockEnabledForBucket=True)
    except ClientError as e:
        if e.response["Error"]["Code"] != "BucketAlreadyOwnedByYou":
            raise
    until = (datetime.datetime.now(datetime.timezone.utc) + datetime.timedelta(days=1)).strftime("%Y-%m-%dT%H:%M:%SZ")
    lock = {"x-amz-object-lock-mode": "GOVERNANCE", "x-amz-object-lock-retain-until-date": until,
            "x-amz-content-sha256": hashlib.sha256(b"data").hexdigest()}
    status, _, body = signed_request("PUT", f"/{b}/bare", b"data", dict(lock))
    assert (status, code_of(body)) == (400, "InvalidRequest"), (status, body)
    md5 = base64.b64encode(hashlib.md5(b"data").digest()).decode()
    status, _, body = signed_request("PUT", f"/{b}/md5", b"data", dict(lock, **{"Content-MD5": md5}))
    assert status == 200, (status, body)
    status, _, body = signed_request("PUT", f"/{b}/crc", b"data",
                                     dict(lock, **{"x-amz-checksum-crc32": crc_b64("CRC32", b"data")}))
    assert status == 200, (status, body)
    # Without lock parameters and without a default retention nothing more is needed.
    signed = {"x-amz-content-sha256": hashlib.sha256(b"data").hexdigest()}
    assert signed_request("PUT", f"/{b}/plain", b"data", dict(signed))[0] == 200
    s3.put_object_lock_configuration(Bucket=b, ObjectLockConfiguration={
        "ObjectLockEnabled": "Enabled", "Rule": {"DefaultRetention": {"Mode": "GOVERNANCE", "Days": 1}}})
    status, _, body = signed_request("PUT", f"/{b}/default", b"data", dict(signed))
    assert (status, code_of(body)) == (400, "InvalidRequest"), (status, body)


@check
def multipart_checksums_through_parts_copies_and_listings():
    """A CRC32 upload: parts must carry CRC32 (checked at UploadPart), a copied part gets
    its checksum computed, ListParts and ListMultipartUploads show them, `aws s3 cp` of a
    multipart copy with --checksum-algorithm works."""
    b = bucket("conf-mp-checksums")
    src = os.urandom(6 * 1024 * 1024)
    s3.put_object(Bucket=b, Key="src", Body=src)
    key = "dst"
    up = s3.create_multipart_upload(Bucket=b, Key=key, ChecksumAlgorithm="CRC32")["UploadId"]
    # A part with another algorithm is refused where it is sent.
    st, code, r = error_of(s3.upload_part, Bucket=b, Key=key, UploadId=up, PartNumber=1,
                           Body=b"abc", ChecksumAlgorithm="SHA256")
    assert (st, code) == (400, "InvalidRequest") and "Checksum Type mismatch" in r["Error"]["Message"], r["Error"]
    part1 = src[:5 * 1024 * 1024]
    copied = s3.upload_part_copy(Bucket=b, Key=key, UploadId=up, PartNumber=1,
                                 CopySource={"Bucket": b, "Key": "src"},
                                 CopySourceRange=f"bytes=0-{len(part1) - 1}")["CopyPartResult"]
    assert copied.get("ChecksumCRC32") == crc_b64("CRC32", part1), copied
    part2 = s3.upload_part(Bucket=b, Key=key, UploadId=up, PartNumber=2, Body=b"tail",
                           ChecksumAlgorithm="CRC32")
    listed = s3.list_parts(Bucket=b, Key=key, UploadId=up)
    assert listed.get("ChecksumAlgorithm") == "CRC32", listed
    assert [p.get("ChecksumCRC32") for p in listed["Parts"]] == [crc_b64("CRC32", part1), crc_b64("CRC32", b"tail")], listed["Parts"]
    uploads = [u for u in s3.list_multipart_uploads(Bucket=b)["Uploads"] if u["UploadId"] == up]
    assert uploads and uploads[0].get("ChecksumAlgorithm") == "CRC32", uploads
    # Completed from ListParts' answer, as a resuming client does.
    done = s3.complete_multipart_upload(Bucket=b, Key=key, UploadId=up, MultipartUpload={"Parts": [
        {"PartNumber": p["PartNumber"], "ETag": p["ETag"], "ChecksumCRC32": p["ChecksumCRC32"]}
        for p in listed["Parts"]]})
    assert done["Location"].startswith("http://") and done["Location"].endswith(f"/{b}/{key}"), done["Location"]
    assert s3.get_object(Bucket=b, Key=key)["Body"].read() == part1 + b"tail"


@check
def copy_object_computes_the_checksum_it_is_asked_for():
    b = bucket("conf-copy-checksum")
    s3.put_object(Bucket=b, Key="src", Body=b"copy me", ChecksumAlgorithm="SHA256")
    out = s3.copy_object(Bucket=b, Key="dst", CopySource={"Bucket": b, "Key": "src"},
                         ChecksumAlgorithm="CRC32C")["CopyObjectResult"]
    assert out.get("ChecksumCRC32C") == crc_b64("CRC32C", b"copy me"), out
    h = s3.head_object(Bucket=b, Key="dst", ChecksumMode="ENABLED")
    assert h.get("ChecksumCRC32C") == crc_b64("CRC32C", b"copy me") and "ChecksumSHA256" not in h, h
    # The source already has the asked-for checksum: the store copies the bytes and keeps it.
    sha = base64.b64encode(hashlib.sha256(b"copy me").digest()).decode()
    out = s3.copy_object(Bucket=b, Key="same", CopySource={"Bucket": b, "Key": "src"},
                         ChecksumAlgorithm="SHA256")["CopyObjectResult"]
    assert out.get("ChecksumSHA256") == sha, out
    h = s3.head_object(Bucket=b, Key="same", ChecksumMode="ENABLED")
    assert h.get("ChecksumSHA256") == sha and s3.get_object(Bucket=b, Key="same")["Body"].read() == b"copy me", h
    status, _, body = signed_request("PUT", f"/{b}/bad", b"", {
        "x-amz-copy-source": f"/{b}/src", "x-amz-checksum-algorithm": "BOGUS",
        "x-amz-content-sha256": hashlib.sha256(b"").hexdigest()})
    assert (status, code_of(body)) == (400, "InvalidRequest"), (status, body)


@check
def encryption_headers_on_reads_are_refused():
    b = bucket("conf-sse-reads")
    s3.put_object(Bucket=b, Key="k", Body=b"x")
    for method in ("GET", "HEAD"):
        status, _, body = signed_request(method, f"/{b}/k", b"", {
            "x-amz-server-side-encryption": "AES256",
            "x-amz-content-sha256": hashlib.sha256(b"").hexdigest()})
        assert status == 400, (method, status, body)
        if method == "GET":
            assert code_of(body) == "InvalidArgument", body


@check
def part_number_one_of_a_single_part_object_is_a_range():
    b = bucket("conf-part-one")
    s3.put_object(Bucket=b, Key="ten", Body=b"0123456789")
    got = s3.get_object(Bucket=b, Key="ten", PartNumber=1)
    assert got["ResponseMetadata"]["HTTPStatusCode"] == 206, got["ResponseMetadata"]
    assert got["ContentRange"] == "bytes 0-9/10" and got["Body"].read() == b"0123456789", got
    h = s3.head_object(Bucket=b, Key="ten", PartNumber=1)
    assert h["ResponseMetadata"]["HTTPStatusCode"] == 206 and h["ContentRange"] == "bytes 0-9/10", h


@check
def deleted_ownership_controls_are_not_found():
    b = bucket("conf-ownership", ObjectOwnership="BucketOwnerEnforced")
    rules = s3.get_bucket_ownership_controls(Bucket=b)["OwnershipControls"]["Rules"]
    assert rules == [{"ObjectOwnership": "BucketOwnerEnforced"}], rules
    s3.delete_bucket_ownership_controls(Bucket=b)
    st, code, _ = error_of(s3.get_bucket_ownership_controls, Bucket=b)
    assert (st, code) == (404, "OwnershipControlsNotFoundError"), (st, code)
    # Without controls ACLs are honoured (ObjectWriter), as in S3.
    s3.put_object(Bucket=b, Key="k", Body=b"x", ACL="public-read")
    s3.put_bucket_ownership_controls(Bucket=b, OwnershipControls={"Rules": [{"ObjectOwnership": "BucketOwnerPreferred"}]})
    rules = s3.get_bucket_ownership_controls(Bucket=b)["OwnershipControls"]["Rules"]
    assert rules == [{"ObjectOwnership": "BucketOwnerPreferred"}], rules


@check
def full_object_upload_takes_parts_without_a_checksum():
    b = bucket("conf-full-object")
    up = s3.create_multipart_upload(Bucket=b, Key="k", ChecksumAlgorithm="CRC32",
                                    ChecksumType="FULL_OBJECT")["UploadId"]
    sha = hashlib.sha256(b"part").hexdigest()
    status, _, body = signed_request("PUT", f"/{b}/k?partNumber=1&uploadId={up}", b"part",
                                     {"x-amz-content-sha256": sha})
    assert status == 200, (status, body)
    parts = s3.list_parts(Bucket=b, Key="k", UploadId=up)["Parts"]
    assert parts[0].get("ChecksumCRC32") == crc_b64("CRC32", b"part"), parts
    s3.abort_multipart_upload(Bucket=b, Key="k", UploadId=up)


@check
def repeated_metadata_headers_are_joined():
    b = bucket("conf-meta-repeat")
    sha = hashlib.sha256(b"x").hexdigest()
    # urllib sends one header per name: sign and send the repeated form by hand.
    import http.client
    from botocore.auth import SigV4Auth
    from botocore.awsrequest import AWSRequest
    from botocore.credentials import Credentials
    req = AWSRequest(method="PUT", url=f"{endpoint}/{b}/k", data=b"x",
                     headers={"x-amz-meta-a": "first,second", "x-amz-content-sha256": sha})
    SigV4Auth(Credentials(access, secret), "s3", "us-east-1").add_auth(req)
    host = endpoint.split("//", 1)[1]
    c = http.client.HTTPConnection(host)
    c.putrequest("PUT", f"/{b}/k", skip_host=True, skip_accept_encoding=True)
    for k, v in req.headers.items():
        if k.lower() == "x-amz-meta-a":
            c.putheader("x-amz-meta-a", "first")
            c.putheader("x-amz-meta-a", "second")
        elif k.lower() != "host":
            c.putheader(k, v)
    c.putheader("Host", host)
    c.putheader("Content-Length", "1")
    c.endheaders(b"x")
    r = c.getresponse()
    assert r.status == 200, (r.status, r.read())
    assert s3.head_object(Bucket=b, Key="k")["Metadata"] == {"a": "first,second"}


@check
def list_multipart_uploads_encodes_keys_when_asked():
    b = bucket("conf-mpu-encoding")
    up = s3.create_multipart_upload(Bucket=b, Key="p%q r+s")["UploadId"]
    status, _, body = signed_request("GET", f"/{b}?uploads&encoding-type=url&prefix=p%25")
    text = body.decode()
    assert status == 200 and "<EncodingType>url</EncodingType>" in text, text
    assert "<Key>p%25q%20r%2Bs</Key>" in text and "<Prefix>p%25</Prefix>" in text, text
    s3.abort_multipart_upload(Bucket=b, Key="p%q r+s", UploadId=up)


@check
def a_tag_needs_a_value():
    b = bucket("conf-tag-value")
    s3.put_object(Bucket=b, Key="o", Body=b"x")
    doc = "<Tagging><TagSet><Tag><Key>nv</Key></Tag></TagSet></Tagging>"
    status, _, body = signed_request("PUT", f"/{b}/o?tagging", doc.encode(), body_headers(doc))
    assert (status, code_of(body)) == (400, "MalformedXML"), (status, body)
    doc = "<Tagging><TagSet><Tag><Key>e</Key><Value></Value></Tag></TagSet></Tagging>"
    status, _, body = signed_request("PUT", f"/{b}/o?tagging", doc.encode(), body_headers(doc))
    assert status == 200, (status, body)
    assert s3.get_object_tagging(Bucket=b, Key="o")["TagSet"] == [{"Key": "e", "Value": ""}]


@check
def copy_onto_itself_adds_a_checksum():
    b = bucket("conf-copy-self-checksum")
    s3.put_object(Bucket=b, Key="k", Body=b"self")
    out = s3.copy_object(Bucket=b, Key="k", CopySource={"Bucket": b, "Key": "k"},
                         ChecksumAlgorithm="SHA256")["CopyObjectResult"]
    assert out.get("ChecksumSHA256") == base64.b64encode(hashlib.sha256(b"self").digest()).decode(), out


failed = 0
for f in CHECKS:
    if only and f.__name__ not in only:
        continue
    try:
        f()
        print(f"ok {f.__name__}", flush=True)
    except Exception as e:  # report every check, not just the first failure
        failed += 1
        detail = "".join(traceback.format_exception_only(type(e), e)).strip()
        print(f"FAIL {f.__name__}: {detail}", flush=True)
        traceback.print_exc()
sys.exit(1 if failed else 0)
