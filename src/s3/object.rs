//! Object operations: PUT, GET/HEAD (ranges, conditionals, overrides), DELETE, DeleteObjects
//! and CopyObject.

use std::collections::BTreeMap;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use axum::body::Body;
use base64::Engine;
use futures::TryStreamExt;
use http::{HeaderValue, Response, StatusCode};

use super::error::S3Error;
use super::xml::{self, NS};
use super::{
    body, bucket_key, empty, features, http_date, iso8601, version_header, xml_response, Ctx,
    S3State,
};
use crate::bucket::Versioning;
use crate::checksum::ChecksumType;
use crate::object::{ByteRange, ObjectInfo, PutOptions, VersionRef, MAX_OBJECT_SIZE};

/// Headers kept with an object and returned on GET/HEAD.
const STORED_HEADERS: &[&str] = &[
    "content-type",
    "content-encoding",
    "content-disposition",
    "content-language",
    "cache-control",
    "expires",
];
const MAX_USER_META: usize = 2048;

/// A Content-Encoding as the client sent it, less the `aws-chunked` coding (which describes
/// the request body only): every other byte is kept, so it comes back exactly as stored.
fn without_aws_chunked(v: &str) -> String {
    if !v
        .split(',')
        .any(|c| c.trim().eq_ignore_ascii_case("aws-chunked"))
    {
        return v.to_string();
    }
    v.split(',')
        .filter(|c| !c.trim().eq_ignore_ascii_case("aws-chunked"))
        .collect::<Vec<_>>()
        .join(",")
        .trim()
        .to_string()
}

/// Metadata a write carries in its headers.
pub(super) fn put_options(ctx: &Ctx) -> Result<PutOptions, S3Error> {
    let mut headers = BTreeMap::new();
    for name in STORED_HEADERS {
        if let Some(v) = ctx.header(name) {
            let v = if *name == "content-encoding" {
                without_aws_chunked(v)
            } else {
                v.to_string()
            };
            if !v.is_empty() {
                headers.insert(name.to_string(), v);
            }
        }
    }
    headers
        .entry("content-type".to_string())
        .or_insert_with(|| "binary/octet-stream".to_string());
    // STANDARD is the default and is not stored; other classes were vetted by features.rs.
    if let Some(class) = ctx
        .header(crate::object::STORAGE_CLASS_HEADER)
        .filter(|c| *c != "STANDARD")
    {
        headers.insert(
            crate::object::STORAGE_CLASS_HEADER.into(),
            class.to_string(),
        );
    }
    let mut user_meta = BTreeMap::new();
    let mut meta_size = 0;
    for (n, v) in &ctx.headers {
        if let Some(k) = n.strip_prefix("x-amz-meta-") {
            meta_size += k.len() + v.len();
            // A name sent more than once keeps every value, comma-separated, as S3 does.
            user_meta
                .entry(k.to_string())
                .and_modify(|old: &mut String| {
                    old.push(',');
                    old.push_str(v);
                })
                .or_insert_with(|| v.clone());
        }
    }
    if meta_size > MAX_USER_META {
        return Err(S3Error::new(
            "MetadataTooLarge",
            StatusCode::BAD_REQUEST,
            "Your metadata headers exceed the maximum allowed metadata size.",
        ));
    }
    let content_md5 = match ctx.header("content-md5") {
        Some(v) => Some(
            base64::engine::general_purpose::STANDARD
                .decode(v.trim())
                .ok()
                .and_then(|b| <[u8; 16]>::try_from(b).ok())
                .ok_or_else(|| {
                    S3Error::new(
                        "InvalidDigest",
                        StatusCode::BAD_REQUEST,
                        "The Content-MD5 you specified is not valid.",
                    )
                })?,
        ),
        None => None,
    };
    if let Some(tags) = super::tagging::requested(ctx)?.filter(|t| !t.is_empty()) {
        headers.insert(
            super::tagging::TAGS_HEADER.to_string(),
            super::tagging::to_query(&tags),
        );
    }
    Ok(PutOptions {
        headers,
        user_meta,
        content_md5,
        ..Default::default()
    })
}

fn insert(r: &mut Response<Body>, name: &'static str, value: &str) {
    if let Ok(v) = HeaderValue::from_str(value) {
        r.headers_mut().insert(name, v);
    }
}

fn insert_owned(r: &mut Response<Body>, name: &str, value: &str) {
    if let (Ok(n), Ok(v)) = (
        http::HeaderName::from_bytes(name.as_bytes()),
        HeaderValue::from_str(value),
    ) {
        r.headers_mut().insert(n, v);
    }
}

fn checksum_headers(r: &mut Response<Body>, checksums: &BTreeMap<String, String>) {
    for (alg, value) in checksums {
        insert_owned(
            r,
            &format!("x-amz-checksum-{}", alg.to_ascii_lowercase()),
            value,
        );
    }
}

/// An upload's body and metadata: the declared size (refused above `max`), the verified
/// body reader, and the write options that will receive the checksums computed on it.
pub(super) struct Upload {
    pub size: Option<u64>,
    pub reader: body::BodyReader,
    pub opts: PutOptions,
    pub computed: body::Computed,
}

pub(super) fn upload(ctx: &Ctx, body: Body, max: u64) -> Result<Upload, S3Error> {
    let size = body::declared_length(&ctx.verified, &ctx.headers)?;
    if size.is_some_and(|s| s > max) {
        return Err(crate::object::ObjectError::EntityTooLarge.into());
    }
    let mut opts = put_options(ctx)?;
    let (reader, computed) = body::reader(body, &ctx.verified, &ctx.headers)?;
    opts.computed_checksums = Some(computed.clone());
    Ok(Upload {
        size,
        reader,
        opts,
        computed,
    })
}

/// The response to a stored upload: its ETag and the checksums verified on its body.
pub(super) fn stored(etag: &str, computed: &body::Computed) -> Response<Body> {
    let mut r = empty(StatusCode::OK);
    insert(&mut r, "etag", &format!("\"{etag}\""));
    checksum_headers(&mut r, &computed.lock());
    r
}

pub async fn put(state: &S3State, ctx: &Ctx, body: Body) -> Result<Response<Body>, S3Error> {
    let (bucket, key) = bucket_key(ctx)?;
    let condition = features::write_condition(ctx)?;
    let acl = super::access::object_write_acl(state, ctx).await?;
    let lock = super::objectlock::for_new_version(state, ctx, bucket).await?;
    if ctx.method != http::Method::POST {
        super::objectlock::require_digest(ctx, &lock)?;
    }
    let encryption = super::sse::for_write(state, ctx, bucket).await?;
    let mut up = upload(ctx, body, MAX_OBJECT_SIZE)?;
    up.opts.condition = condition;
    if let Some(acl) = acl {
        up.opts.headers.insert(super::authz::ACL_HEADER.into(), acl);
    }
    super::objectlock::store_in(&mut up.opts.headers, &lock);
    let old = replaced_size(state, bucket, key).await;
    let quota = state.quotas.reserve(bucket, key, up.size, old).await?;
    let info = match super::sse::seal(state, &encryption, bucket, key)? {
        None => {
            state
                .store
                .put_object(bucket, key, &mut up.reader, up.size, up.opts)
                .await?
        }
        Some((object_key, envelope)) => {
            // The store keeps the ciphertext.
            up.opts.headers.extend(envelope);
            let size = up.size.map(crate::sse::encrypted_size);
            let kind = encryption.kind().unwrap_or(super::sse::Kind::S3);
            let mut sealed = super::sse::EncryptingBody::for_write(
                &mut up.reader,
                object_key.part_key(1, &[]),
                kind,
                &mut up.opts,
            )?;
            state
                .store
                .put_object(bucket, key, &mut sealed, size, up.opts)
                .await?
        }
    };
    quota.commit_object(info.size, old);
    let mut r = stored(&info.etag, &up.computed);
    if let Some(env) = super::sse::envelope(&info)? {
        for (name, value) in super::sse::response_headers(&env) {
            insert(&mut r, name, &value);
        }
    }
    version_header(state, &mut r, bucket, info.version_id).await;
    super::lifecycle::expiration_header(state, &mut r, &info).await;
    created(&mut r, crate::notify::OBJECT_CREATED_PUT, key, &info);
    Ok(r)
}

/// Report a new version of `key` to event notifications (a response extension the S3
/// layer takes off).
pub(super) fn created(r: &mut Response<Body>, event: &'static str, key: &str, info: &ObjectInfo) {
    r.extensions_mut()
        .insert(crate::notify::Changes::one(crate::notify::Change {
            event,
            key: key.to_string(),
            size: Some(super::sse::plain_size(info)),
            etag: Some(info.etag.clone()),
            version_id: info.version_id.map(|v| super::version_str(Some(v))),
        }));
}

/// `by_id`: a version was named (removing a delete marker is a removal, not a new marker).
fn removed(key: &str, d: &crate::object::Deleted, by_id: bool) -> crate::notify::Change {
    crate::notify::Change {
        event: if d.delete_marker && !by_id {
            crate::notify::OBJECT_REMOVED_MARKER
        } else {
            crate::notify::OBJECT_REMOVED_DELETE
        },
        key: key.to_string(),
        size: None,
        etag: None,
        version_id: d.versioned.then(|| super::version_str(d.version_id)),
    }
}

enum Precondition {
    Pass,
    NotModified,
    Failed,
}

fn etag_matches(list: &str, etag: &str) -> bool {
    list.split(',')
        .map(|e| e.trim().trim_start_matches("W/").trim_matches('"'))
        .any(|e| e == "*" || e == etag)
}

fn parse_date(v: Option<&str>) -> Option<SystemTime> {
    v.and_then(crate::auth::parse_http_date)
}

/// Evaluate conditional headers (`prefix` is `if-` or `x-amz-copy-source-if-`) per RFC 7232
/// precedence, against a modification time truncated to seconds.
fn preconditions(ctx: &Ctx, prefix: &str, info: &ObjectInfo) -> Precondition {
    let h = |n: &str| ctx.header(&format!("{prefix}{n}"));
    let mtime = UNIX_EPOCH + Duration::from_secs((info.mod_time / 1_000_000_000).max(0) as u64);
    let if_match = h("match");
    if let Some(m) = if_match {
        if !etag_matches(m, &info.etag) {
            return Precondition::Failed;
        }
    } else if parse_date(h("unmodified-since")).is_some_and(|d| mtime > d) {
        return Precondition::Failed;
    }
    let if_none_match = h("none-match");
    if let Some(m) = if_none_match {
        if etag_matches(m, &info.etag) {
            return Precondition::NotModified;
        }
    } else if parse_date(h("modified-since")).is_some_and(|d| mtime <= d) {
        return Precondition::NotModified;
    }
    Precondition::Pass
}

/// A `Range: bytes=...` header resolved against `size`. `Ok(None)`: serve everything
/// (no header, or one we do not understand, as RFC 7233 allows).
fn parse_range(v: Option<&str>, size: u64) -> Result<Option<ByteRange>, S3Error> {
    let Some(spec) = v.and_then(|v| v.trim().strip_prefix("bytes=")) else {
        return Ok(None);
    };
    if spec.contains(',') {
        return Ok(None);
    }
    let Some((a, b)) = spec.trim().split_once('-') else {
        return Ok(None);
    };
    let (a, b) = (a.trim(), b.trim());
    let range = match (a.parse::<u64>().ok(), b.parse::<u64>().ok()) {
        (Some(start), _) if !b.is_empty() && b.parse::<u64>().is_err() => {
            let _ = start;
            return Ok(None);
        }
        (Some(start), Some(end)) if end >= start => ByteRange {
            start,
            len: end
                .min(size.saturating_sub(1))
                .saturating_add(1)
                .saturating_sub(start),
        },
        (Some(_), Some(_)) => return Ok(None),
        (Some(start), None) => ByteRange {
            start,
            len: size.saturating_sub(start),
        },
        (None, Some(n)) if a.is_empty() => {
            if n == 0 {
                return Err(unsatisfiable(size));
            }
            let n = n.min(size);
            ByteRange {
                start: size - n,
                len: n,
            }
        }
        _ => return Ok(None),
    };
    if range.start >= size || range.len == 0 {
        return Err(unsatisfiable(size));
    }
    Ok(Some(range))
}

/// A range outside an object of `size` bytes: 416 with the size (RFC 9110 §14.4).
fn unsatisfiable(size: u64) -> S3Error {
    S3Error::invalid_range().with_header("content-range", format!("bytes */{size}"))
}

/// The query parameters that set a GET's response headers, and the header each sets.
const RESPONSE_OVERRIDES: [(&str, &str); 6] = [
    ("response-content-type", "content-type"),
    ("response-content-language", "content-language"),
    ("response-expires", "expires"),
    ("response-cache-control", "cache-control"),
    ("response-content-disposition", "content-disposition"),
    ("response-content-encoding", "content-encoding"),
];

/// The body of a GET: the reader's bytes, decrypted package by package for an encrypted
/// object (`segments`).
fn stream_response(
    reader: crate::object::ObjectReader,
    segments: Option<Vec<super::sse::Segment>>,
) -> Response<Body> {
    match segments {
        None => Response::new(Body::from_stream(reader.into_stream().map_err(|e| {
            tracing::error!(error = %e, "object stream failed mid-response");
            std::io::Error::other(e.to_string())
        }))),
        Some(segments) => Response::new(Body::from_stream(super::sse::decrypt_stream(
            reader, segments,
        ))),
    }
}

pub async fn get(state: &S3State, ctx: &Ctx, head: bool) -> Result<Response<Body>, S3Error> {
    let (bucket, key) = bucket_key(ctx)?;
    // What the request asks is checked before the object is looked at.
    if ctx.verified.is_anonymous()
        && RESPONSE_OVERRIDES
            .iter()
            .any(|(p, _)| ctx.query(p).is_some())
    {
        return Err(S3Error::invalid_request(
            "Response header overrides (response-*) need a signed or presigned request",
        ));
    }
    if ctx.query("partNumber").is_some() && ctx.header("range").is_some() {
        return Err(S3Error::invalid_request(
            "A Range header and the partNumber parameter cannot be used together",
        ));
    }
    let which = super::version_ref(ctx)?;
    // A HEAD reads no data: the metadata's agreement is all it needs (no reader, so no
    // lock for an object of several blocks).
    let (mut reader, info) = if head {
        (None, state.store.head_version(bucket, key, which).await?)
    } else {
        let reader = state.store.get_version(bucket, key, which, None).await?;
        let info = reader.info().clone();
        (Some(reader), info)
    };
    match preconditions(ctx, "if-", &info) {
        Precondition::Pass => {}
        Precondition::Failed => return Err(S3Error::precondition_failed()),
        Precondition::NotModified => {
            let mut r = empty(StatusCode::NOT_MODIFIED);
            insert(&mut r, "etag", &format!("\"{}\"", info.etag));
            insert(&mut r, "last-modified", &http_date(info.mod_time));
            return Ok(r);
        }
    }
    let multipart = info.etag.contains('-');
    // An encrypted object: its key (SSE-C: from the request, checked), its plaintext size.
    let sealed = super::sse::open(state, ctx, &info, super::sse::CUSTOMER)?;
    let size = super::sse::plain_size(&info);
    let range = match ctx.query("partNumber") {
        Some(p) => {
            let n: u32 = p
                .parse()
                .ok()
                .filter(|n| (1..=10_000).contains(n))
                .ok_or_else(|| {
                    S3Error::invalid_argument(
                        "Part number must be an integer between 1 and 10000, inclusive",
                    )
                })?;
            let mut start = 0;
            let mut found = None;
            for (num, size) in &super::sse::plain_parts(&info) {
                if *num == n {
                    found = Some(ByteRange { start, len: *size });
                    break;
                }
                start += size;
            }
            match found {
                // A part read is a ranged read (206 with Content-Range), also of an
                // object uploaded in one part; an empty object has no bytes to range.
                Some(r) if r.len > 0 => Some(r),
                Some(_) => None,
                None => {
                    return Err(S3Error::new(
                        "InvalidPartNumber",
                        StatusCode::RANGE_NOT_SATISFIABLE,
                        "The requested partnumber is not satisfiable",
                    ))
                }
            }
        }
        None => parse_range(ctx.header("range"), size)?,
    };
    let (start, len) = range.map_or((0, size), |r| {
        (r.start, r.len.min(size.saturating_sub(r.start)))
    });
    // Of an encrypted object, only the packages holding the range are read.
    let segments = match &sealed {
        Some((_, object_key)) => {
            let (stored, segments) = super::sse::plan(&info, object_key, start, len)?;
            if let Some(reader) = reader.as_mut() {
                reader.narrow(stored)?;
                // The packages authenticate every byte: shards are checked only when one
                // fails ([`super::sse::decrypt_stream`]).
                reader.read_unchecked();
            }
            Some(segments)
        }
        None => {
            if let (Some(r), Some(reader)) = (range, reader.as_mut()) {
                reader.narrow(r)?;
            }
            None
        }
    };
    let len = match &reader {
        Some(reader) if sealed.is_none() => reader.remaining(),
        _ => len,
    };
    let mut resp = match reader {
        None => Response::new(Body::empty()),
        Some(mut reader) => {
            // A read that fails at its first block is still answered with an error.
            reader.ready().await?;
            stream_response(reader, segments)
        }
    };
    if let Some((env, _)) = &sealed {
        for (name, value) in super::sse::response_headers(env) {
            insert(&mut resp, name, &value);
        }
    }
    *resp.status_mut() = if range.is_some() {
        StatusCode::PARTIAL_CONTENT
    } else {
        StatusCode::OK
    };
    insert(&mut resp, "content-length", &len.to_string());
    insert(&mut resp, "etag", &format!("\"{}\"", info.etag));
    insert(&mut resp, "last-modified", &http_date(info.mod_time));
    insert(&mut resp, "accept-ranges", "bytes");
    version_header(state, &mut resp, bucket, info.version_id).await;
    if which == crate::object::VersionRef::Latest {
        super::lifecycle::expiration_header(state, &mut resp, &info).await;
    }
    let tags = super::tagging::of(&info.headers).len();
    if tags > 0 {
        insert(&mut resp, "x-amz-tagging-count", &tags.to_string());
    }
    for (name, value) in super::objectlock::response_headers(&info) {
        insert(&mut resp, name, &value);
    }
    if let Some(r) = range {
        let end = r.start + len.saturating_sub(1);
        insert(
            &mut resp,
            "content-range",
            &format!("bytes {}-{end}/{size}", r.start),
        );
    }
    if multipart && ctx.has_query("partNumber") {
        insert(
            &mut resp,
            "x-amz-mp-parts-count",
            &info.parts.len().to_string(),
        );
    }
    for (name, value) in info
        .headers
        .iter()
        .filter(|(n, _)| !n.starts_with("x-cairn-"))
    {
        insert_owned(&mut resp, name, value);
    }
    for (k, v) in &info.user_meta {
        insert_owned(&mut resp, &format!("x-amz-meta-{k}"), v);
    }
    if ctx
        .header("x-amz-checksum-mode")
        .is_some_and(|m| m.eq_ignore_ascii_case("enabled"))
        && range.is_none()
    {
        checksum_headers(&mut resp, &info.checksums);
        if let Some(v) = info.checksums.values().next() {
            let kind = crate::checksum::ChecksumType::of_value(v).name();
            insert(&mut resp, "x-amz-checksum-type", kind);
        }
    }
    for (param, header) in RESPONSE_OVERRIDES {
        if let Some(v) = ctx.query(param) {
            insert(&mut resp, header, v);
        }
    }
    Ok(resp)
}

/// The size of the object a quota-tracked write to `bucket/key` replaces (`None`: none, or
/// no quota covers it, so nobody needs to know). With versioning enabled a write replaces
/// nothing; suspended, it replaces the null version.
pub(super) async fn replaced_size(state: &S3State, bucket: &str, key: &str) -> Option<u64> {
    if !state.quotas.covers(bucket, key).await {
        return None;
    }
    let which = match state.store.versioning(bucket).await.ok()? {
        None => VersionRef::Latest,
        Some(Versioning::Suspended) => VersionRef::Id(None),
        Some(Versioning::Enabled) => return None,
    };
    let info = state.store.head_version(bucket, key, which).await.ok()?;
    Some(info.size)
}

/// Delete one object or version, telling the quotas that cover it. A delete marker frees
/// nothing; removing a version frees its size.
async fn delete_one(
    state: &S3State,
    bucket: &str,
    key: &str,
    which: VersionRef,
    bypass: bool,
) -> Result<crate::object::Deleted, S3Error> {
    let size = match which {
        // What a marker replaces (suspended: the null version; enabled: nothing).
        VersionRef::Latest => replaced_size(state, bucket, key).await,
        VersionRef::Id(_) if state.quotas.covers(bucket, key).await => state
            .store
            .head_version(bucket, key, which)
            .await
            .ok()
            .map(|i| i.size),
        VersionRef::Id(_) => None,
    };
    let deleted = state
        .store
        .delete_version(bucket, key, which, bypass)
        .await?;
    if let Some(size) = size {
        state.quotas.deleted(bucket, key, size);
    }
    Ok(deleted)
}

pub async fn delete(state: &S3State, ctx: &Ctx) -> Result<Response<Body>, S3Error> {
    let (bucket, key) = bucket_key(ctx)?;
    let which = super::version_ref(ctx)?;
    let config = super::authz::bucket_of(state, bucket).await?;
    let bypass = super::objectlock::may_bypass(state, ctx, config.as_deref(), key);
    let deleted = delete_one(state, bucket, key, which, bypass).await?;
    let mut r = empty(StatusCode::NO_CONTENT);
    if deleted.versioned {
        insert_owned(
            &mut r,
            "x-amz-version-id",
            &super::version_str(deleted.version_id),
        );
    }
    if deleted.delete_marker {
        insert(&mut r, "x-amz-delete-marker", "true");
    }
    r.extensions_mut()
        .insert(crate::notify::Changes::one(removed(
            key,
            &deleted,
            ctx.has_query("versionId"),
        )));
    Ok(r)
}

pub async fn delete_many(
    state: &S3State,
    ctx: &Ctx,
    body: Body,
) -> Result<Response<Body>, S3Error> {
    let bucket = ctx
        .target
        .bucket
        .as_deref()
        .ok_or_else(|| S3Error::invalid_request("missing bucket"))?;
    let raw = body::read_small(body, &ctx.verified, &ctx.headers, 2 << 20).await?;
    let text = String::from_utf8(raw).map_err(|_| S3Error::malformed_xml())?;
    let req: xml::DeleteRequest = xml::from_xml(&text, "Delete")?;
    if req.objects.is_empty() || req.objects.len() > 1000 {
        return Err(S3Error::malformed_xml());
    }
    super::bucket::require_bucket(state, bucket).await?;
    let config = super::authz::bucket_of(state, bucket).await?;
    let quiet = req.quiet.unwrap_or(false);
    let mut changes = crate::notify::Changes::default();
    let mut result = xml::DeleteResult {
        xmlns: NS,
        deleted: Vec::new(),
        errors: Vec::new(),
    };
    for o in req.objects {
        let which = match o.version_id.as_deref() {
            None => Ok(VersionRef::Latest),
            Some(v) => super::parse_version(v).map(VersionRef::Id),
        };
        let outcome = match which {
            Err(e) => Err(e),
            Ok(which) => {
                let mut need = super::authz::need_of(super::Op::DeleteObject, true);
                if which != VersionRef::Latest {
                    need.action = "s3:DeleteObjectVersion";
                }
                let q = super::authz::Question {
                    need,
                    bucket: Some(bucket),
                    key: Some(&o.key),
                    object_acl: None,
                };
                match super::authz::require(state, ctx, config.as_deref(), &q) {
                    Ok(()) => {
                        let bypass =
                            super::objectlock::may_bypass(state, ctx, config.as_deref(), &o.key);
                        delete_one(state, bucket, &o.key, which, bypass).await
                    }
                    Err(e) => Err(e),
                }
            }
        };
        if let Ok(d) = &outcome {
            changes.0.push(removed(&o.key, d, o.version_id.is_some()));
        }
        match outcome {
            Ok(d) if !quiet => {
                let id = d.versioned.then(|| super::version_str(d.version_id));
                let by_id = o.version_id.is_some();
                result.deleted.push(xml::DeletedXml {
                    key: o.key,
                    version_id: if by_id { o.version_id } else { None },
                    delete_marker: d.delete_marker.then_some(true),
                    delete_marker_version_id: if d.delete_marker { id } else { None },
                })
            }
            Ok(_) => {}
            Err(e) => result.errors.push(xml::DeleteErrorXml {
                key: o.key,
                version_id: o.version_id,
                code: e.code.to_string(),
                message: e.message,
            }),
        }
    }
    let mut r = xml_response(&result)?;
    r.extensions_mut().insert(changes);
    Ok(r)
}

/// Check `x-amz-copy-source-if-*` against the source.
pub(super) fn copy_preconditions(ctx: &Ctx, src: &ObjectInfo) -> Result<(), S3Error> {
    match preconditions(ctx, "x-amz-copy-source-if-", src) {
        Precondition::Pass => Ok(()),
        _ => Err(S3Error::precondition_failed()),
    }
}

pub async fn copy(state: &S3State, ctx: &Ctx) -> Result<Response<Body>, S3Error> {
    let (bucket, key) = bucket_key(ctx)?;
    let condition = features::write_condition(ctx)?;
    // The copy's encryption is its request's, else its bucket's default — never the
    // source's.
    let asked = super::sse::requested(state, ctx)?;
    let changes_encryption = asked.kind().is_some();
    let encryption = match asked {
        super::sse::Requested::None => super::sse::for_write(state, ctx, bucket).await?,
        asked => asked,
    };
    let (src_bucket, src_key, src_version) = super::copy_source(ctx)?;
    let checksum_alg = super::body::requested_algorithm(ctx)?;
    let replace = match ctx.header("x-amz-metadata-directive") {
        None | Some("COPY") => false,
        Some("REPLACE") => true,
        Some(_) => return Err(S3Error::invalid_argument("Unknown metadata directive.")),
    };
    if src_bucket == bucket
        && src_key == key
        && !replace
        && !changes_encryption
        && checksum_alg.is_none()
        && src_version == VersionRef::Latest
    {
        return Err(S3Error::invalid_request(
            "This copy request is illegal because it is trying to copy an object to itself without changing the object's metadata, storage class, website redirect location or encryption attributes.",
        ));
    }
    let mut reader = state
        .store
        .get_version(&src_bucket, &src_key, src_version, None)
        .await
        .map_err(copy_source_error)?;
    reader.confirm().await.map_err(copy_source_error)?;
    let src = reader.info().clone();
    copy_preconditions(ctx, &src)?;
    // A copy gets the ACL its request asks for, never the source's.
    let acl = super::access::object_write_acl(state, ctx).await?;
    let mut opts = if replace {
        put_options(ctx)?
    } else {
        crate::object::PutOptions {
            headers: src.headers.clone(),
            user_meta: src.user_meta.clone(),
            checksums: src.checksums.clone(),
            ..Default::default()
        }
    };
    opts.headers.remove(super::authz::ACL_HEADER);
    super::sse::strip(&mut opts.headers);
    // The copy was not made by the source's multipart upload, and its storage class is the
    // request's (STANDARD unless asked), never the source's.
    opts.headers.remove(crate::object::UPLOAD_HEADER);
    opts.headers.remove(crate::object::STORAGE_CLASS_HEADER);
    if let Some(class) = ctx
        .header(crate::object::STORAGE_CLASS_HEADER)
        .filter(|c| *c != "STANDARD")
    {
        opts.headers.insert(
            crate::object::STORAGE_CLASS_HEADER.into(),
            class.to_string(),
        );
    }
    if let Some(acl) = acl {
        opts.headers.insert(super::authz::ACL_HEADER.into(), acl);
    }
    // Tags follow their own directive: the source's (COPY, the default) or the request's.
    let tags = match ctx.header("x-amz-tagging-directive") {
        None | Some("COPY") => src.headers.get(super::tagging::TAGS_HEADER).cloned(),
        Some("REPLACE") => super::tagging::requested(ctx)?
            .filter(|t| !t.is_empty())
            .map(|t| super::tagging::to_query(&t)),
        Some(_) => return Err(S3Error::invalid_argument("Unknown tagging directive.")),
    };
    match tags {
        Some(t) => opts.headers.insert(super::tagging::TAGS_HEADER.into(), t),
        None => opts.headers.remove(super::tagging::TAGS_HEADER),
    };
    // Lock state is the destination's own (requested or its bucket's default), never the
    // source's.
    let lock = super::objectlock::for_new_version(state, ctx, bucket).await?;
    super::objectlock::store_in(&mut opts.headers, &lock);
    // `x-amz-checksum-algorithm`: the copy's checksum is of that algorithm over the whole
    // object — the source's if it has that one, else computed on the bytes copied.
    let mut compute = None;
    if let Some(alg) = checksum_alg {
        let full = src
            .checksums
            .get(alg.name())
            .filter(|v| ChecksumType::of_value(v) == ChecksumType::FullObject)
            .cloned();
        opts.checksums.clear();
        match full {
            Some(v) => {
                opts.checksums.insert(alg.name().to_string(), v);
            }
            None => compute = Some(alg),
        }
    }
    let old = replaced_size(state, bucket, key).await;
    let info =
        if encryption.kind().is_none() && !super::sse::is_encrypted(&src) && compute.is_none() {
            // Stored in the clear on both sides: the store copies the bytes as they are.
            super::sse::open(state, ctx, &src, super::sse::COPY_SOURCE_CUSTOMER)?;
            drop(reader);
            let quota = state
                .quotas
                .reserve(bucket, key, Some(src.size), old)
                .await?;
            let info = state
                .store
                .copy_object(
                    (&src_bucket, &src_key, src_version),
                    bucket,
                    key,
                    Some(opts),
                    condition,
                )
                .await
                .map_err(copy_source_error)?;
            quota.commit_object(info.size, old);
            info
        } else {
            // The bytes pass through the server: decrypted from the source's key, sealed
            // under the copy's own, and checksummed when the copy asks for a checksum the
            // source does not have.
            let (stream, len) =
                super::sse::plaintext(state, ctx, reader, None, super::sse::COPY_SOURCE_CUSTOMER)?;
            let body = tokio_util::io::StreamReader::new(stream);
            let (mut body, _) = super::body::computing(body, compute, &mut opts);
            opts.condition = condition;
            let sealing = super::sse::seal(state, &encryption, bucket, key)?;
            let size = match sealing {
                Some(_) => crate::sse::encrypted_size(len),
                None => len,
            };
            let quota = state.quotas.reserve(bucket, key, Some(size), old).await?;
            let mut sealed;
            let reader: &mut (dyn tokio::io::AsyncRead + Unpin + Send) = match sealing {
                None => &mut body,
                Some((object_key, envelope)) => {
                    opts.headers.extend(envelope);
                    let kind = encryption.kind().unwrap_or(super::sse::Kind::S3);
                    sealed = super::sse::EncryptingBody::for_write(
                        &mut body,
                        object_key.part_key(1, &[]),
                        kind,
                        &mut opts,
                    )?;
                    &mut sealed
                }
            };
            let info = state
                .store
                .put_object(bucket, key, reader, Some(size), opts)
                .await?;
            quota.commit_object(info.size, old);
            info
        };
    let mut r = xml_response(&xml::CopyObjectResult {
        xmlns: NS,
        last_modified: iso8601(info.mod_time),
        etag: format!("\"{}\"", info.etag),
        checksums: xml::ChecksumXml::all(&info.checksums),
        checksum_type: xml::ChecksumXml::type_of(&info.checksums),
    })?;
    copy_source_version_header(state, &mut r, &src_bucket, &src).await;
    if let Some(env) = super::sse::envelope(&info)? {
        for (name, value) in super::sse::response_headers(&env) {
            insert(&mut r, name, &value);
        }
    }
    version_header(state, &mut r, bucket, info.version_id).await;
    super::lifecycle::expiration_header(state, &mut r, &info).await;
    created(&mut r, crate::notify::OBJECT_CREATED_COPY, key, &info);
    Ok(r)
}

/// A copy whose source is a delete marker: S3 answers 404 (latest) or 400 (by id).
pub(super) fn copy_source_error(e: crate::object::ObjectError) -> S3Error {
    match e {
        crate::object::ObjectError::DeleteMarker { by_id: true, .. } => S3Error::invalid_request(
            "The source of a copy request may not specifically refer to a delete marker by version id.",
        ),
        crate::object::ObjectError::DeleteMarker { by_id: false, .. } => {
            crate::object::ObjectError::NoSuchKey.into()
        }
        e => e.into(),
    }
}

/// `x-amz-copy-source-version-id`: the version a copy read, when its bucket is versioned.
pub(super) async fn copy_source_version_header(
    state: &S3State,
    r: &mut Response<Body>,
    src_bucket: &str,
    src: &ObjectInfo,
) {
    let versioned =
        src.version_id.is_some() || matches!(state.store.versioning(src_bucket).await, Ok(Some(_)));
    if versioned {
        insert_owned(
            r,
            "x-amz-copy-source-version-id",
            &super::version_str(src.version_id),
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn content_encoding_loses_only_aws_chunked() {
        for (sent, stored) in [
            ("deflate, gzip", "deflate, gzip"),
            ("gzip,  br", "gzip,  br"),
            ("aws-chunked", ""),
            ("aws-chunked,deflate, gzip", "deflate, gzip"),
            ("gzip, aws-chunked", "gzip"),
            ("gzip, AWS-Chunked, br", "gzip, br"),
        ] {
            assert_eq!(without_aws_chunked(sent), stored, "{sent}");
        }
    }

    #[test]
    fn ranges() {
        let r = |v: &str, size| parse_range(Some(v), size);
        assert_eq!(
            r("bytes=0-9", 100),
            Ok(Some(ByteRange { start: 0, len: 10 }))
        );
        assert_eq!(
            r("bytes=90-200", 100),
            Ok(Some(ByteRange { start: 90, len: 10 }))
        );
        assert_eq!(
            r("bytes=10-", 100),
            Ok(Some(ByteRange { start: 10, len: 90 }))
        );
        assert_eq!(
            r("bytes=-10", 100),
            Ok(Some(ByteRange { start: 90, len: 10 }))
        );
        assert_eq!(
            r("bytes=-200", 100),
            Ok(Some(ByteRange { start: 0, len: 100 }))
        );
        assert_eq!(
            r("bytes=100-", 100).map_err(|e| e.code),
            Err("InvalidRange")
        );
        assert_eq!(r("bytes=5-1", 100), Ok(None));
        assert_eq!(r("items=0-1", 100), Ok(None));
        assert_eq!(r("bytes=0-1,4-5", 100), Ok(None));
        assert_eq!(r("bytes=0-0", 0).map_err(|e| e.code), Err("InvalidRange"));
    }

    #[test]
    fn etag_lists() {
        assert!(etag_matches("\"abc\"", "abc"));
        assert!(etag_matches("\"x\", \"abc\"", "abc"));
        assert!(etag_matches("*", "abc"));
        assert!(!etag_matches("\"abd\"", "abc"));
    }
}
