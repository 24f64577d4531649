// The AWS SDK for JavaScript v3 and MinIO's JavaScript SDK against a Cairn endpoint, each
// with a realistic workload and its default settings (checksums, signer). The one flag
// set: `forcePathStyle` for the AWS SDK, which its documentation asks for with a custom
// endpoint that has no per-bucket DNS names (MinIO's SDK uses path style for IP endpoints
// by itself).
//
// Usage: node clients.mjs ENDPOINT ACCESS_KEY SECRET_KEY
// Prints "ok <check>" per check and exits non-zero on the first failure.
import assert from "node:assert/strict";
import { createHash, randomBytes } from "node:crypto";
import {
  S3Client,
  CreateBucketCommand,
  PutObjectCommand,
  GetObjectCommand,
  HeadObjectCommand,
  ListObjectsV2Command,
  CopyObjectCommand,
  DeleteObjectsCommand,
  DeleteBucketCommand,
  CreateMultipartUploadCommand,
  UploadPartCommand,
  CompleteMultipartUploadCommand,
  ListObjectVersionsCommand,
  PutBucketVersioningCommand,
} from "@aws-sdk/client-s3";
import { getSignedUrl } from "@aws-sdk/s3-request-presigner";
import * as Minio from "minio";

const [endpoint, accessKeyId, secretAccessKey] = process.argv.slice(2);
const md5 = (b) => createHash("md5").update(b).digest("hex");
const text = async (body) => Buffer.from(await body.transformToByteArray());

async function awsSdk() {
  const s3 = new S3Client({
    endpoint,
    region: "us-east-1",
    credentials: { accessKeyId, secretAccessKey },
    forcePathStyle: true,
  });
  const Bucket = "js-aws";
  await s3.send(new CreateBucketCommand({ Bucket }));
  // Small objects (the SDK adds a CRC32 checksum by default).
  for (const k of ["a.txt", "b.txt", "c d.txt", "dir/é.txt"]) {
    await s3.send(new PutObjectCommand({ Bucket, Key: k, Body: `body of ${k}`, ContentType: "text/plain" }));
  }
  const got = await s3.send(new GetObjectCommand({ Bucket, Key: "c d.txt" }));
  assert.equal((await text(got.Body)).toString(), "body of c d.txt");
  assert.equal(got.ContentType, "text/plain");
  // A ranged and a conditional read.
  const ranged = await s3.send(new GetObjectCommand({ Bucket, Key: "a.txt", Range: "bytes=0-3" }));
  assert.equal((await text(ranged.Body)).toString(), "body");
  assert.equal(ranged.ContentRange, "bytes 0-3/13");
  const head = await s3.send(new HeadObjectCommand({ Bucket, Key: "a.txt" }));
  await assert.rejects(
    s3.send(new GetObjectCommand({ Bucket, Key: "a.txt", IfNoneMatch: head.ETag })),
    (e) => e.$metadata.httpStatusCode === 304,
  );
  // Multipart with the SDK's default part checksums (two parts).
  const parts = [randomBytes(5 * 1024 * 1024), randomBytes(1234)];
  const up = await s3.send(new CreateMultipartUploadCommand({ Bucket, Key: "big.bin", ChecksumAlgorithm: "CRC32" }));
  const done = [];
  for (const [i, Body] of parts.entries()) {
    const r = await s3.send(new UploadPartCommand({ Bucket, Key: "big.bin", UploadId: up.UploadId, PartNumber: i + 1, Body, ChecksumAlgorithm: "CRC32" }));
    done.push({ PartNumber: i + 1, ETag: r.ETag, ChecksumCRC32: r.ChecksumCRC32 });
  }
  const completed = await s3.send(new CompleteMultipartUploadCommand({ Bucket, Key: "big.bin", UploadId: up.UploadId, MultipartUpload: { Parts: done } }));
  assert.match(completed.ETag, /-2"$/);
  const big = await s3.send(new GetObjectCommand({ Bucket, Key: "big.bin" }));
  assert.equal(md5(await text(big.Body)), md5(Buffer.concat(parts)));
  // Listing with pagination.
  const keys = [];
  let ContinuationToken;
  do {
    const page = await s3.send(new ListObjectsV2Command({ Bucket, MaxKeys: 2, ContinuationToken }));
    assert.ok((page.Contents ?? []).length <= 2);
    keys.push(...(page.Contents ?? []).map((o) => o.Key));
    ContinuationToken = page.NextContinuationToken;
  } while (ContinuationToken);
  assert.deepEqual(keys, ["a.txt", "b.txt", "big.bin", "c d.txt", "dir/é.txt"]);
  // Copy, presigned GET, versions listing, multi-delete.
  await s3.send(new CopyObjectCommand({ Bucket, Key: "copy.txt", CopySource: `${Bucket}/${encodeURIComponent("dir/é.txt")}` }));
  const copied = await s3.send(new GetObjectCommand({ Bucket, Key: "copy.txt" }));
  assert.equal((await text(copied.Body)).toString(), "body of dir/é.txt");
  const url = await getSignedUrl(s3, new GetObjectCommand({ Bucket, Key: "b.txt" }), { expiresIn: 60 });
  const fetched = await fetch(url);
  assert.equal(fetched.status, 200);
  assert.equal(await fetched.text(), "body of b.txt");
  await s3.send(new PutBucketVersioningCommand({ Bucket, VersioningConfiguration: { Status: "Enabled" } }));
  await s3.send(new PutObjectCommand({ Bucket, Key: "a.txt", Body: "second" }));
  const versions = await s3.send(new ListObjectVersionsCommand({ Bucket, Prefix: "a.txt" }));
  assert.equal(versions.Versions.length, 2);
  const all = await s3.send(new ListObjectVersionsCommand({ Bucket }));
  const objects = all.Versions.map((v) => ({ Key: v.Key, VersionId: v.VersionId }));
  const del = await s3.send(new DeleteObjectsCommand({ Bucket, Delete: { Objects: objects } }));
  assert.equal((del.Errors ?? []).length, 0, JSON.stringify(del.Errors));
  await s3.send(new DeleteBucketCommand({ Bucket }));
  console.log("ok aws-sdk-js-v3");
}

async function minioSdk() {
  const u = new URL(endpoint);
  const mc = new Minio.Client({
    endPoint: u.hostname,
    port: Number(u.port),
    useSSL: u.protocol === "https:",
    accessKey: accessKeyId,
    secretKey: secretAccessKey,
  });
  const bucket = "js-minio";
  await mc.makeBucket(bucket);
  assert.ok(await mc.bucketExists(bucket));
  const small = Buffer.from("hello from minio-js");
  await mc.putObject(bucket, "small.txt", small, small.length, { "Content-Type": "text/plain", "X-Amz-Meta-Origin": "js" });
  // Large enough for the SDK's own multipart upload (its part size is 5 MiB minimum).
  const big = randomBytes(12 * 1024 * 1024 + 17);
  await mc.putObject(bucket, "big.bin", big, big.length, { partSize: 5 * 1024 * 1024 });
  const stat = await mc.statObject(bucket, "big.bin");
  assert.equal(stat.size, big.length);
  const chunks = [];
  for await (const c of await mc.getObject(bucket, "big.bin")) chunks.push(c);
  assert.equal(md5(Buffer.concat(chunks)), md5(big));
  const part = [];
  for await (const c of await mc.getPartialObject(bucket, "small.txt", 6, 4)) part.push(c);
  assert.equal(Buffer.concat(part).toString(), "from");
  const meta = await mc.statObject(bucket, "small.txt");
  assert.equal(meta.metaData.origin, "js");
  await mc.copyObject(bucket, "copy.txt", `/${bucket}/small.txt`);
  const listed = [];
  for await (const o of mc.listObjectsV2(bucket, "", true)) listed.push(o.name);
  assert.deepEqual(listed.sort(), ["big.bin", "copy.txt", "small.txt"]);
  const url = await mc.presignedGetObject(bucket, "copy.txt", 60);
  const fetched = await fetch(url);
  assert.equal(await fetched.text(), "hello from minio-js");
  await mc.removeObjects(bucket, listed);
  await mc.removeBucket(bucket);
  console.log("ok minio-js");
}

try {
  await awsSdk();
  await minioSdk();
} catch (e) {
  console.error("FAIL", e);
  process.exit(1);
}
