//! GetObjectAttributes (`GET /bucket/key?attributes`): the attributes named in
//! `x-amz-object-attributes` (ETag, Checksum, ObjectParts, StorageClass, ObjectSize) of the
//! latest version or of `versionId`, without the object's data. Parts are paginated with
//! `x-amz-max-parts` (default and at most 1,000) and `x-amz-part-number-marker`.

use std::collections::BTreeMap;

use axum::body::Body;
use http::{HeaderValue, Response};
use serde::Serialize;

use super::error::S3Error;
use super::xml::NS;
use super::{bucket_key, version_header};
use super::{http_date, version_ref, xml_response, Ctx, S3State};
use crate::checksum::{ChecksumAlg, ChecksumType};

const ATTRIBUTES: [&str; 5] = [
    "ETag",
    "Checksum",
    "ObjectParts",
    "StorageClass",
    "ObjectSize",
];
const MAX_PARTS: usize = 1000;

#[derive(Serialize, Default)]
struct ChecksumXml {
    #[serde(rename = "ChecksumCRC32", skip_serializing_if = "Option::is_none")]
    crc32: Option<String>,
    #[serde(rename = "ChecksumCRC32C", skip_serializing_if = "Option::is_none")]
    crc32c: Option<String>,
    #[serde(rename = "ChecksumCRC64NVME", skip_serializing_if = "Option::is_none")]
    crc64nvme: Option<String>,
    #[serde(rename = "ChecksumSHA1", skip_serializing_if = "Option::is_none")]
    sha1: Option<String>,
    #[serde(rename = "ChecksumSHA256", skip_serializing_if = "Option::is_none")]
    sha256: Option<String>,
    #[serde(rename = "ChecksumType", skip_serializing_if = "Option::is_none")]
    kind: Option<&'static str>,
}

impl ChecksumXml {
    /// The stored checksums; `None` when there are none. Composite object checksums are
    /// shown as AWS shows them here: without their `-N` suffix.
    fn of(checksums: &BTreeMap<String, String>, with_type: bool) -> Option<ChecksumXml> {
        let get = |a: ChecksumAlg| {
            checksums
                .get(a.name())
                .map(|v| v.split('-').next().unwrap_or_default().to_string())
        };
        let x = ChecksumXml {
            crc32: get(ChecksumAlg::Crc32),
            crc32c: get(ChecksumAlg::Crc32c),
            crc64nvme: get(ChecksumAlg::Crc64Nvme),
            sha1: get(ChecksumAlg::Sha1),
            sha256: get(ChecksumAlg::Sha256),
            kind: checksums
                .values()
                .next()
                .filter(|_| with_type)
                .map(|v| ChecksumType::of_value(v).name()),
        };
        (!checksums.is_empty()).then_some(x)
    }
}

#[derive(Serialize)]
struct PartXml {
    #[serde(flatten)]
    checksum: ChecksumXml,
    #[serde(rename = "PartNumber")]
    number: u32,
    #[serde(rename = "Size")]
    size: u64,
}

#[derive(Serialize)]
struct ObjectPartsXml {
    #[serde(rename = "IsTruncated")]
    truncated: bool,
    #[serde(rename = "MaxParts")]
    max_parts: usize,
    #[serde(
        rename = "NextPartNumberMarker",
        skip_serializing_if = "Option::is_none"
    )]
    next_marker: Option<u32>,
    #[serde(rename = "PartNumberMarker")]
    marker: u32,
    #[serde(rename = "Part")]
    parts: Vec<PartXml>,
    #[serde(rename = "PartsCount")]
    count: usize,
}

#[derive(Serialize)]
#[serde(rename = "GetObjectAttributesResponse")]
struct AttributesXml {
    #[serde(rename = "@xmlns")]
    xmlns: &'static str,
    #[serde(rename = "ETag", skip_serializing_if = "Option::is_none")]
    etag: Option<String>,
    #[serde(rename = "Checksum", skip_serializing_if = "Option::is_none")]
    checksum: Option<ChecksumXml>,
    #[serde(rename = "ObjectParts", skip_serializing_if = "Option::is_none")]
    parts: Option<ObjectPartsXml>,
    #[serde(rename = "StorageClass", skip_serializing_if = "Option::is_none")]
    storage_class: Option<&'static str>,
    #[serde(rename = "ObjectSize", skip_serializing_if = "Option::is_none")]
    size: Option<u64>,
}

/// The attributes asked for: at least one, each one S3 knows.
fn requested(ctx: &Ctx) -> Result<Vec<&'static str>, S3Error> {
    let mut out = Vec::new();
    for name in ctx
        .headers
        .iter()
        .filter(|(n, _)| n == "x-amz-object-attributes")
        .flat_map(|(_, v)| v.split(','))
        .map(str::trim)
        .filter(|n| !n.is_empty())
    {
        let known = ATTRIBUTES
            .iter()
            .find(|a| **a == name)
            .ok_or_else(|| S3Error::invalid_argument("Invalid attribute name specified."))?;
        if !out.contains(known) {
            out.push(*known);
        }
    }
    if out.is_empty() {
        return Err(S3Error::invalid_argument(
            "The x-amz-object-attributes header specifying the attributes to be retrieved is either missing or empty",
        ));
    }
    Ok(out)
}

fn number_header(ctx: &Ctx, name: &str, default: usize) -> Result<usize, S3Error> {
    match ctx.header(name) {
        None => Ok(default),
        Some(v) => v.trim().parse().map_err(|_| {
            S3Error::invalid_argument(format!("{name} must be a non-negative integer"))
        }),
    }
}

pub async fn get(state: &S3State, ctx: &Ctx) -> Result<Response<Body>, S3Error> {
    let (bucket, key) = bucket_key(ctx)?;
    // As AWS: s3:GetObject (or s3:GetObjectVersion) too, besides the attributes action the
    // router's table checked.
    match super::authz::authorize(state, ctx, super::router::Op::GetObject).await? {
        super::authz::AclCheck::Done => {}
        super::authz::AclCheck::Object(need) => {
            super::authz::object_acl_allows(state, ctx, need).await?
        }
    }
    let wanted = requested(ctx)?;
    let max_parts = number_header(ctx, "x-amz-max-parts", MAX_PARTS)?.clamp(1, MAX_PARTS);
    let marker = u32::try_from(number_header(ctx, "x-amz-part-number-marker", 0)?)
        .map_err(|_| S3Error::invalid_argument("x-amz-part-number-marker is too large"))?;
    let info = state
        .store
        .head_version(bucket, key, version_ref(ctx)?)
        .await?;
    // An SSE-C object's attributes need its key, as its reads do.
    super::sse::open(state, ctx, &info, super::sse::CUSTOMER)?;
    let has = |a: &str| wanted.contains(&a);
    // Parts are listed for multipart objects, and (as AWS) each part only when the object
    // has checksums of its parts.
    let multipart = info.etag.contains('-');
    let part_sums = info.part_checksums.iter().any(|c| !c.is_empty());
    let parts = (has("ObjectParts") && multipart).then(|| {
        let after: Vec<PartXml> = super::sse::plain_parts(&info)
            .iter()
            .zip(
                info.part_checksums
                    .iter()
                    .chain(std::iter::repeat(&BTreeMap::new())),
            )
            .filter(|((n, _), _)| *n > marker)
            .map(|((n, size), sums)| PartXml {
                checksum: ChecksumXml::of(sums, false).unwrap_or_default(),
                number: *n,
                size: *size,
            })
            .collect();
        let truncated = part_sums && after.len() > max_parts;
        let page: Vec<PartXml> = if part_sums {
            after.into_iter().take(max_parts).collect()
        } else {
            Vec::new()
        };
        ObjectPartsXml {
            truncated,
            max_parts,
            next_marker: page.last().map(|p| p.number).filter(|_| truncated),
            marker,
            parts: page,
            count: info.parts.len(),
        }
    });
    let mut r = xml_response(&AttributesXml {
        xmlns: NS,
        etag: has("ETag").then(|| info.etag.clone()),
        checksum: if has("Checksum") {
            ChecksumXml::of(&info.checksums, true)
        } else {
            None
        },
        parts,
        storage_class: has("StorageClass").then(|| crate::object::storage_class(&info.headers)),
        size: has("ObjectSize").then_some(super::sse::plain_size(&info)),
    })?;
    if let Ok(v) = HeaderValue::from_str(&http_date(info.mod_time)) {
        r.headers_mut().insert("last-modified", v);
    }
    version_header(state, &mut r, bucket, info.version_id).await;
    Ok(r)
}
