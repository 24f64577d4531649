//! Multipart upload operations.

use axum::body::Body;
use http::{HeaderValue, Response, StatusCode};

use super::error::S3Error;
use super::object::{
    copy_preconditions, copy_source_error, copy_source_version_header, put_options, stored, upload,
};
use super::xml::{self, NS};
use super::{body, bucket_key, iso8601, version_header, xml_response, Ctx, S3State};
use crate::checksum::{ChecksumAlg, ChecksumType};
use crate::object::CompleteChecksums;
use crate::object::{ByteRange, MAX_PART_SIZE};

fn upload_id(ctx: &Ctx) -> Result<&str, S3Error> {
    ctx.query("uploadId")
        .ok_or_else(|| S3Error::invalid_argument("missing uploadId"))
}

fn part_number(ctx: &Ctx) -> Result<u32, S3Error> {
    ctx.query("partNumber")
        .and_then(|p| p.parse().ok())
        .filter(|n| (1..=10_000).contains(n))
        .ok_or_else(|| {
            S3Error::invalid_argument(
                "Part number must be an integer between 1 and 10000, inclusive",
            )
        })
}

/// `x-amz-checksum-algorithm` and `x-amz-checksum-type` of CreateMultipartUpload, checked
/// as AWS does; the type defaults by algorithm.
fn upload_checksum(ctx: &Ctx) -> Result<Option<(ChecksumAlg, ChecksumType)>, S3Error> {
    let kind = match ctx.header("x-amz-checksum-type") {
        None => None,
        Some(t) => Some(ChecksumType::parse(t.trim()).ok_or_else(|| {
            S3Error::invalid_request("Value for x-amz-checksum-type header is invalid.")
        })?),
    };
    let Some(alg) = super::body::requested_algorithm(ctx)? else {
        return match kind {
            Some(_) => Err(S3Error::invalid_request(
                "The x-amz-checksum-type header can only be used with the x-amz-checksum-algorithm header.",
            )),
            None => Ok(None),
        };
    };
    let kind = kind.unwrap_or(ChecksumType::default_for(alg));
    if !kind.allows(alg) {
        return Err(S3Error::invalid_request(format!(
            "The {} checksum type cannot be used with the {} checksum algorithm.",
            kind.name(),
            alg.name().to_ascii_lowercase()
        )));
    }
    Ok(Some((alg, kind)))
}

pub async fn create(state: &S3State, ctx: &Ctx) -> Result<Response<Body>, S3Error> {
    let (bucket, key) = bucket_key(ctx)?;
    let encryption = super::sse::for_write(state, ctx, bucket).await?;
    let checksum = upload_checksum(ctx)?;
    let mut opts = put_options(ctx)?;
    opts.upload_checksum = checksum;
    if let Some(acl) = super::access::object_write_acl(state, ctx).await? {
        opts.headers.insert(super::authz::ACL_HEADER.into(), acl);
    }
    let lock = super::objectlock::for_new_version(state, ctx, bucket).await?;
    super::objectlock::store_in(&mut opts.headers, &lock);
    // Every part is sealed under one object key, made (and stored sealed) now.
    let envelope = match super::sse::seal(state, &encryption, bucket, key)? {
        Some((_, envelope)) => {
            opts.headers.extend(envelope.clone());
            // Every part's blocks hold whole packages.
            opts.block_size = Some(crate::sse::BLOCK);
            super::sse::envelope_in(&envelope, key)?
        }
        None => None,
    };
    let id = state.store.create_multipart(bucket, key, opts).await?;
    let mut r = xml_response(&xml::InitiateMultipartUploadResult {
        xmlns: NS,
        bucket: bucket.to_string(),
        key: key.to_string(),
        upload_id: id,
    })?;
    if let Some((alg, kind)) = checksum {
        let h = r.headers_mut();
        h.insert(
            "x-amz-checksum-algorithm",
            HeaderValue::from_static(alg.name()),
        );
        h.insert("x-amz-checksum-type", HeaderValue::from_static(kind.name()));
    }
    if let Some(env) = &envelope {
        sse_headers(&mut r, env);
    }
    Ok(r)
}

fn sse_headers(r: &mut Response<Body>, env: &super::sse::Envelope) {
    for (name, value) in super::sse::response_headers(env) {
        if let Ok(v) = HeaderValue::from_str(&value) {
            r.headers_mut().insert(name, v);
        }
    }
}

/// The envelope and key an encrypted upload's parts are sealed under.
type Sealing = (super::sse::Envelope, crate::sse::ObjectKey);

/// What a part of an upload is stored with: the key it is sealed under (SSE-C: the
/// request's key, checked against the upload's), if the upload is encrypted, and the
/// checksum algorithm and type the upload was created with.
async fn upload_key(
    state: &S3State,
    ctx: &Ctx,
    bucket: &str,
    key: &str,
    id: &str,
) -> Result<(Option<Sealing>, Option<(ChecksumAlg, ChecksumType)>), S3Error> {
    let settings = state.store.upload_settings(bucket, key, id).await?;
    let sealing = super::sse::open_headers(
        state,
        ctx,
        &settings.headers,
        bucket,
        key,
        super::sse::CUSTOMER,
    )?;
    Ok((sealing, settings.checksum))
}

/// A part of an upload created with a checksum algorithm comes with that algorithm's
/// checksum or none: another algorithm is refused (AWS's rule; the upload could not be
/// completed with it), and so is none for a composite checksum, made of the parts' own.
/// Returns the algorithm to compute on a part that came without (a full-object upload's).
fn check_part_checksum(
    ctx: &Ctx,
    upload: Option<(ChecksumAlg, ChecksumType)>,
) -> Result<Option<ChecksumAlg>, S3Error> {
    let Some((want, kind)) = upload else {
        return Ok(None);
    };
    let sent = super::body::declared_checksum(&ctx.headers)?;
    match sent {
        Some(alg) if alg == want => return Ok(None),
        None if kind == ChecksumType::FullObject => return Ok(Some(want)),
        _ => {}
    }
    Err(S3Error::invalid_request(format!(
        "Checksum Type mismatch occurred, expected checksum Type: {}, actual checksum Type: {}",
        want.name().to_ascii_lowercase(),
        sent.map_or("null".to_string(), |a| a.name().to_ascii_lowercase())
    )))
}

/// Store one part from `body` (`len` plaintext bytes, if known), sealed under the
/// upload's key when it has one.
#[allow(clippy::too_many_arguments)]
async fn store_part(
    state: &S3State,
    (bucket, key, id, number): (&str, &str, &str, u32),
    sealing: Option<&Sealing>,
    body: &mut (dyn tokio::io::AsyncRead + Unpin + Send),
    len: Option<u64>,
    mut opts: crate::object::PutOptions,
) -> Result<crate::object::UploadedPart, S3Error> {
    let Some((env, object_key)) = sealing else {
        let quota = state.quotas.reserve(bucket, key, len, None).await?;
        let part = state
            .store
            .put_part(bucket, key, id, number, body, len, opts)
            .await?;
        quota.commit_part(part.size);
        return Ok(part);
    };
    let (part_key, meta) = super::sse::salted_part_key(object_key, number)?;
    opts.part_meta = meta;
    let size = len.map(crate::sse::encrypted_size);
    let quota = state.quotas.reserve(bucket, key, size, None).await?;
    let mut sealed = super::sse::EncryptingBody::for_write(body, part_key, env.kind, &mut opts)?;
    let part = state
        .store
        .put_part(bucket, key, id, number, &mut sealed, size, opts)
        .await?;
    quota.commit_part(part.size);
    Ok(part)
}

pub async fn upload_part(
    state: &S3State,
    ctx: &Ctx,
    body: Body,
) -> Result<Response<Body>, S3Error> {
    let (bucket, key) = bucket_key(ctx)?;
    let (id, number) = (upload_id(ctx)?, part_number(ctx)?);
    let (sealing, checksum) = upload_key(state, ctx, bucket, key, id).await?;
    let compute = check_part_checksum(ctx, checksum)?;
    let mut up = upload(ctx, body, MAX_PART_SIZE)?;
    let (mut reader, computed) = super::body::computing(up.reader, compute, &mut up.opts);
    let computed = computed.unwrap_or(up.computed);
    let part = store_part(
        state,
        (bucket, key, id, number),
        sealing.as_ref(),
        &mut reader,
        up.size,
        up.opts,
    )
    .await?;
    let mut r = stored(&part.etag, &computed);
    if let Some((env, _)) = &sealing {
        sse_headers(&mut r, env);
    }
    Ok(r)
}

/// `x-amz-copy-source-range: bytes=a-b`, inclusive, within the source.
fn copy_range(ctx: &Ctx, size: u64) -> Result<Option<ByteRange>, S3Error> {
    let Some(v) = ctx.header("x-amz-copy-source-range") else {
        return Ok(None);
    };
    // Not of the form `bytes=first-last`: InvalidArgument; outside the source: InvalidRange.
    let bad = || {
        S3Error::invalid_argument(
            "The x-amz-copy-source-range value must be of the form bytes=first-last where first and last are the zero-based offsets of the first and last bytes to copy",
        )
    };
    let (a, b) = v
        .trim()
        .strip_prefix("bytes=")
        .and_then(|s| s.split_once('-'))
        .ok_or_else(bad)?;
    let (a, b): (u64, u64) = (a.parse().map_err(|_| bad())?, b.parse().map_err(|_| bad())?);
    if a > b || b >= size {
        return Err(S3Error::new(
            "InvalidRange",
            http::StatusCode::RANGE_NOT_SATISFIABLE,
            format!("Range specified is not valid for source object of size: {size}"),
        ));
    }
    Ok(Some(ByteRange {
        start: a,
        len: b - a + 1,
    }))
}

pub async fn upload_part_copy(state: &S3State, ctx: &Ctx) -> Result<Response<Body>, S3Error> {
    let (bucket, key) = bucket_key(ctx)?;
    let (id, number) = (upload_id(ctx)?, part_number(ctx)?);
    let (src_bucket, src_key, src_version) = super::copy_source(ctx)?;
    let (sealing, checksum) = upload_key(state, ctx, bucket, key, id).await?;
    let mut reader = state
        .store
        .get_version(&src_bucket, &src_key, src_version, None)
        .await
        .map_err(copy_source_error)?;
    reader.confirm().await.map_err(copy_source_error)?;
    let src = reader.info().clone();
    copy_preconditions(ctx, &src)?;
    let range = copy_range(ctx, super::sse::plain_size(&src))?;
    // An encrypted source is read as plaintext (its key from the request's copy-source
    // SSE-C headers or the KMS), and sealed again under the upload's key.
    let (stream, len) =
        super::sse::plaintext(state, ctx, reader, range, super::sse::COPY_SOURCE_CUSTOMER)?;
    if len > MAX_PART_SIZE {
        return Err(crate::object::ObjectError::EntityTooLarge.into());
    }
    let body = tokio_util::io::StreamReader::new(stream);
    // An upload with a checksum algorithm gets the copied bytes' checksum with the part.
    let mut opts = crate::object::PutOptions::default();
    let (mut body, _) = super::body::computing(body, checksum.map(|(alg, _)| alg), &mut opts);
    let part = store_part(
        state,
        (bucket, key, id, number),
        sealing.as_ref(),
        &mut body,
        Some(len),
        opts,
    )
    .await?;
    let mut r = xml_response(&xml::CopyPartResult {
        xmlns: NS,
        last_modified: iso8601(part.mod_time),
        etag: format!("\"{}\"", part.etag),
        checksums: xml::ChecksumXml::all(&part.checksums),
    })?;
    copy_source_version_header(state, &mut r, &src_bucket, &src).await;
    if let Some((env, _)) = &sealing {
        sse_headers(&mut r, env);
    }
    Ok(r)
}

pub async fn complete(state: &S3State, ctx: &Ctx, body: Body) -> Result<Response<Body>, S3Error> {
    let (bucket, key) = bucket_key(ctx)?;
    let id = upload_id(ctx)?;
    let condition = super::features::write_condition(ctx)?;
    check_customer_key(state, ctx, bucket, key, id).await?;
    // `x-amz-checksum-*` here is the whole object's checksum, not the XML body's.
    let body_headers: Vec<(String, String)> = ctx
        .headers
        .iter()
        .filter(|(n, _)| !n.starts_with("x-amz-checksum-"))
        .cloned()
        .collect();
    let raw = body::read_small(body, &ctx.verified, &body_headers, 4 << 20).await?;
    let text = String::from_utf8(raw).map_err(|_| S3Error::malformed_xml())?;
    let req: xml::CompleteMultipartUpload = xml::from_xml(&text, "CompleteMultipartUpload")?;
    if req.parts.is_empty() {
        return Err(S3Error::malformed_xml());
    }
    let mut checks = CompleteChecksums {
        parts: req
            .parts
            .iter()
            .map(xml::CompletedPartXml::checksums)
            .collect(),
        kind: match ctx.header("x-amz-checksum-type") {
            None => None,
            Some(t) => Some(ChecksumType::parse(t.trim()).ok_or_else(|| {
                S3Error::invalid_request("Value for x-amz-checksum-type header is invalid.")
            })?),
        },
        expected: None,
    };
    for alg in ChecksumAlg::ALL {
        if let Some(v) = ctx.header(&alg.header()) {
            if checks.expected.is_some() {
                return Err(S3Error::invalid_request("Expecting a single x-amz-checksum- header. Multiple checksum Types are not allowed."));
            }
            checks.expected = Some((alg, v.trim().to_string()));
        }
    }
    let parts: Vec<(u32, String)> = req
        .parts
        .into_iter()
        .map(|p| (p.part_number, p.etag.trim().trim_matches('"').to_string()))
        .collect();
    let tracked = state.quotas.covers(bucket, key).await;
    let old = super::object::replaced_size(state, bucket, key).await;
    let (info, replayed) = state
        .store
        .complete_multipart_checked(bucket, key, id, &parts, condition.as_ref(), &checks)
        .await?;
    // A retried Complete changed nothing: its usage was counted the first time.
    if tracked && !replayed {
        state.quotas.completed(bucket, key, info.size, old);
    }
    let mut r = xml_response(&xml::CompleteMultipartUploadResult {
        xmlns: NS,
        location: super::object_url(ctx, bucket, key),
        bucket: bucket.to_string(),
        key: key.to_string(),
        etag: format!("\"{}\"", info.etag),
        checksums: xml::ChecksumXml::all(&info.checksums),
        checksum_type: xml::ChecksumXml::type_of(&info.checksums),
    })?;
    if let Some(env) = super::sse::envelope(&info)? {
        sse_headers(&mut r, &env);
    }
    version_header(state, &mut r, bucket, info.version_id).await;
    super::lifecycle::expiration_header(state, &mut r, &info).await;
    if !replayed {
        super::object::created(&mut r, crate::notify::OBJECT_CREATED_COMPLETE, key, &info);
    }
    Ok(r)
}

/// SSE-C headers on a request that does not need them (Complete, ListParts): if sent,
/// they must be the upload's key.
async fn check_customer_key(
    state: &S3State,
    ctx: &Ctx,
    bucket: &str,
    key: &str,
    id: &str,
) -> Result<(), S3Error> {
    let sent = ctx
        .headers
        .iter()
        .any(|(n, _)| n.starts_with(super::sse::CUSTOMER));
    if sent {
        upload_key(state, ctx, bucket, key, id).await?;
    }
    Ok(())
}

pub async fn abort(state: &S3State, ctx: &Ctx) -> Result<Response<Body>, S3Error> {
    let (bucket, key) = bucket_key(ctx)?;
    let id = upload_id(ctx)?;
    // Parts of an aborted upload stop counting against the quota.
    let pending = if state.quotas.covers(bucket, key).await {
        let mut total = 0;
        let mut marker = 0;
        while let Ok(l) = state.store.list_parts(bucket, key, id, marker, 1000).await {
            total += l.parts.iter().map(|p| p.size).sum::<u64>();
            match l.next_marker {
                Some(m) if l.truncated => marker = m,
                _ => break,
            }
        }
        total
    } else {
        0
    };
    state.store.abort_multipart(bucket, key, id).await?;
    state.quotas.parts_done(bucket, key, pending);
    Ok(super::empty(StatusCode::NO_CONTENT))
}

fn max_param(ctx: &Ctx, name: &str) -> Result<usize, S3Error> {
    match ctx.query(name) {
        Some(v) => v
            .parse::<i64>()
            .ok()
            .filter(|n| *n >= 0)
            .map(|n| n.min(1000) as usize)
            .ok_or_else(|| {
                S3Error::invalid_argument(format!("{name} must be a non-negative integer"))
            }),
        None => Ok(1000),
    }
}

pub async fn list_parts(state: &S3State, ctx: &Ctx) -> Result<Response<Body>, S3Error> {
    let (bucket, key) = bucket_key(ctx)?;
    let id = upload_id(ctx)?;
    let marker: u32 = match ctx.query("part-number-marker") {
        Some(v) => v
            .parse()
            .map_err(|_| S3Error::invalid_argument("invalid part-number-marker"))?,
        None => 0,
    };
    let max = max_param(ctx, "max-parts")?;
    check_customer_key(state, ctx, bucket, key, id).await?;
    let listing = state.store.list_parts(bucket, key, id, marker, max).await?;
    xml_response(&xml::ListPartsResult {
        xmlns: NS,
        bucket: bucket.to_string(),
        key: key.to_string(),
        upload_id: id.to_string(),
        initiator: state.owner.clone(),
        owner: state.owner.clone(),
        storage_class: "STANDARD",
        part_number_marker: marker,
        next_part_number_marker: listing.next_marker,
        max_parts: max,
        is_truncated: listing.truncated,
        parts: listing
            .parts
            .into_iter()
            .map(|p| xml::PartXml {
                part_number: p.number,
                last_modified: iso8601(p.mod_time),
                etag: format!("\"{}\"", p.etag),
                size: super::sse::plain_part_size(p.size, &p.meta),
                checksums: xml::ChecksumXml::all(&p.checksums),
            })
            .collect(),
        checksum_algorithm: listing.checksum.map(|(a, _)| a.name()),
        checksum_type: listing.checksum.map(|(_, t)| t.name()),
    })
}

pub async fn list_uploads(state: &S3State, ctx: &Ctx) -> Result<Response<Body>, S3Error> {
    let bucket = ctx
        .target
        .bucket
        .as_deref()
        .ok_or_else(|| S3Error::invalid_request("missing bucket"))?;
    super::bucket::require_bucket(state, bucket).await?;
    let prefix = ctx.query("prefix").unwrap_or("");
    let delimiter = ctx.query("delimiter").filter(|d| !d.is_empty());
    let key_marker = ctx.query("key-marker").unwrap_or("");
    let id_marker = ctx.query("upload-id-marker").unwrap_or("");
    let max = max_param(ctx, "max-uploads")?;
    let url = super::bucket::url_encoding(ctx)?;
    // With `encoding-type=url` the keys, markers, prefixes and delimiter are encoded.
    let enc = |s: &str| {
        if url {
            super::bucket::url_encode(s)
        } else {
            s.to_string()
        }
    };
    let all = state.store.list_uploads(bucket, prefix).await?;
    // Uploads of one key are listed oldest first: an upload-id marker names the last one
    // a page showed, so that key's uploads resume after it.
    let resume = (!id_marker.is_empty())
        .then(|| {
            all.iter()
                .position(|u| u.key == key_marker && u.upload_id == id_marker)
        })
        .flatten();
    let mut uploads = Vec::new();
    let mut prefixes: Vec<String> = Vec::new();
    let mut truncated = false;
    // Where the next page starts: the last upload shown, or the last common prefix.
    let mut next: Option<(String, Option<String>)> = None;
    for (i, u) in all.into_iter().enumerate() {
        let after_marker = match u.key.as_str().cmp(key_marker) {
            std::cmp::Ordering::Greater => true,
            std::cmp::Ordering::Less => false,
            std::cmp::Ordering::Equal => match resume {
                Some(at) => i > at,
                None => !id_marker.is_empty() && u.upload_id.as_str() > id_marker,
            },
        };
        if !after_marker {
            continue;
        }
        if let Some(d) = delimiter {
            if let Some(pos) = u.key[prefix.len()..].find(d) {
                let cp = u.key[..prefix.len() + pos + d.len()].to_string();
                // A prefix at or before the marker was shown on an earlier page.
                if cp.as_str() <= key_marker || prefixes.contains(&cp) {
                    continue;
                }
                if uploads.len() + prefixes.len() == max {
                    truncated = true;
                    break;
                }
                next = Some((cp.clone(), None));
                prefixes.push(cp);
                continue;
            }
        }
        if uploads.len() + prefixes.len() == max {
            truncated = true;
            break;
        }
        next = Some((u.key.clone(), Some(u.upload_id.clone())));
        uploads.push(xml::UploadXml {
            key: enc(&u.key),
            upload_id: u.upload_id,
            initiator: state.owner.clone(),
            owner: state.owner.clone(),
            storage_class: "STANDARD",
            initiated: iso8601(u.initiated),
            checksum_algorithm: u.checksum.map(|(a, _)| a.name()),
            checksum_type: u.checksum.map(|(_, t)| t.name()),
        });
    }
    let (next_key, next_id) = match next.filter(|_| truncated) {
        Some((k, id)) => (Some(k), id),
        None => (None, None),
    };
    xml_response(&xml::ListMultipartUploadsResult {
        xmlns: NS,
        bucket: bucket.to_string(),
        key_marker: enc(key_marker),
        upload_id_marker: id_marker.to_string(),
        next_key_marker: next_key.as_deref().map(enc),
        next_upload_id_marker: next_id,
        prefix: enc(prefix),
        delimiter: delimiter.map(enc),
        max_uploads: max,
        is_truncated: truncated,
        uploads,
        common_prefixes: prefixes
            .iter()
            .map(|p| xml::CommonPrefixXml { prefix: enc(p) })
            .collect(),
        encoding_type: url.then_some("url"),
    })
}
