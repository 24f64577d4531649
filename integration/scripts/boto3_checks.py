"""boto3 with default settings against a Cairn endpoint.

Usage: python3 boto3_checks.py ENDPOINT ACCESS_KEY SECRET_KEY WORKDIR
Exits non-zero (with a traceback) on the first failed check.
"""
import base64
import hashlib
import os
import sys
import time
import urllib.error
import urllib.request

import boto3
from botocore.config import Config

endpoint, access, secret, workdir = sys.argv[1:5]
common = dict(endpoint_url=endpoint, aws_access_key_id=access,
              aws_secret_access_key=secret, region_name="us-east-1")
s3 = boto3.client("s3", **common)  # default settings: checksums on, default signer


def http(method, url, data=None):
    req = urllib.request.Request(url, data=data, method=method)
    try:
        with urllib.request.urlopen(req) as r:
            return r.status, r.read()
    except urllib.error.HTTPError as e:
        return e.code, e.read()


def code_of(body):
    text = body.decode()
    return text.split("<Code>")[1].split("</Code>")[0] if "<Code>" in text else ""


s3.create_bucket(Bucket="boto")

# Managed transfer of a 100 MiB file (multipart, default checksums).
src = os.path.join(workdir, "hundred.bin")
with open(src, "wb") as f:
    for i in range(100):
        f.write(hashlib.sha256(str(i).encode()).digest() * 32768)
s3.upload_file(src, "boto", "transfer/hundred.bin")
dst = os.path.join(workdir, "hundred.back")
s3.download_file("boto", "transfer/hundred.bin", dst)
digest = lambda p: hashlib.sha256(open(p, "rb").read()).hexdigest()
assert digest(src) == digest(dst), "managed transfer round trip differs"
head = s3.head_object(Bucket="boto", Key="transfer/hundred.bin")
assert head["ContentLength"] == 100 * 1024 * 1024, head
assert head["ETag"].strip('"').endswith("-13"), head["ETag"]

# Checksums: SHA256 stored and validated by boto3 on the way back.
s3.put_object(Bucket="boto", Key="sum", Body=b"checksum me", ChecksumAlgorithm="SHA256")
got = s3.get_object(Bucket="boto", Key="sum", ChecksumMode="ENABLED")
assert got["Body"].read() == b"checksum me"
want = base64.b64encode(hashlib.sha256(b"checksum me").digest()).decode()
assert got.get("ChecksumSHA256") == want, (got.get("ChecksumSHA256"), want)

s3.put_object(Bucket="boto", Key="pre.txt", Body=b"presigned content")

# generate_presigned_url with default settings (SigV2 query auth for custom endpoints), and
# with the V2 signer forced; both must work, expire and refuse tampering.
for label, client in (("default", s3), ("s3 (v2)", boto3.client("s3", config=Config(signature_version="s3"), **common))):
    url = client.generate_presigned_url("get_object", Params={"Bucket": "boto", "Key": "pre.txt"}, ExpiresIn=300)
    status, body = http("GET", url)
    assert (status, body) == (200, b"presigned content"), (label, status, body, url)
    if "Signature=" in url:
        bad = url.replace("Signature=", "Signature=AAAA")
        status, body = http("GET", bad)
        assert status == 403 and code_of(body) == "SignatureDoesNotMatch", (label, status, body)
    short = client.generate_presigned_url("get_object", Params={"Bucket": "boto", "Key": "pre.txt"}, ExpiresIn=1)
    time.sleep(2.1)
    status, body = http("GET", short)
    assert status == 403 and code_of(body) == "AccessDenied", (label, status, body)
    print(f"presigned {label}: {'V2' if 'AWSAccessKeyId=' in url else 'V4'} query auth ok")

# SigV4 presigned GET and PUT.
v4 = boto3.client("s3", config=Config(signature_version="s3v4"), **common)
put_url = v4.generate_presigned_url("put_object", Params={"Bucket": "boto", "Key": "v4.txt"}, ExpiresIn=300)
status, _ = http("PUT", put_url, data=b"via v4 presigned put")
assert status == 200, status
get_url = v4.generate_presigned_url("get_object", Params={"Bucket": "boto", "Key": "v4.txt"}, ExpiresIn=300)
assert http("GET", get_url) == (200, b"via v4 presigned put")
status, body = http("GET", get_url.replace("v4.txt", "v5.txt"))
assert status == 403 and code_of(body) == "SignatureDoesNotMatch", (status, body)

# Listing with the paginator, then batch delete.
for i in range(25):
    s3.put_object(Bucket="boto", Key=f"many/{i:03d}", Body=b"x")
keys = [o["Key"] for page in s3.get_paginator("list_objects_v2").paginate(Bucket="boto", Prefix="many/", PaginationConfig={"PageSize": 7}) for o in page.get("Contents", [])]
assert keys == [f"many/{i:03d}" for i in range(25)], keys
resp = s3.delete_objects(Bucket="boto", Delete={"Objects": [{"Key": k} for k in keys]})
assert len(resp.get("Deleted", [])) == 25, resp
assert s3.list_objects_v2(Bucket="boto", Prefix="many/")["KeyCount"] == 0
print("boto3 checks passed")
