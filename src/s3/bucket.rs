//! Bucket operations and object listings.

use axum::body::Body;
use base64::Engine;
use http::{Response, StatusCode};

use super::error::S3Error;
use super::xml::{self, NS};
use super::{body, empty, iso8601, xml_response, Ctx, S3State};
use crate::object::ListOptions;

fn bucket(ctx: &Ctx) -> Result<&str, S3Error> {
    ctx.target
        .bucket
        .as_deref()
        .ok_or_else(|| S3Error::invalid_request("missing bucket"))
}

/// Fails with `NoSuchBucket` unless the bucket exists.
pub(super) async fn require_bucket(state: &S3State, name: &str) -> Result<(), S3Error> {
    if state.store.bucket_exists(name).await? {
        Ok(())
    } else {
        Err(S3Error::no_such_bucket())
    }
}

/// ListBuckets, paginated as AWS has done since 2024: `max-buckets` (1–10,000),
/// `continuation-token` (opaque: the last name of the previous page), `prefix`, and
/// `bucket-region` (this server's region lists everything, another nothing).
pub async fn list_buckets(state: &S3State, ctx: &Ctx) -> Result<Response<Body>, S3Error> {
    let max = match ctx.query("max-buckets") {
        None => None,
        Some(v) => Some(
            v.parse::<usize>()
                .ok()
                .filter(|n| (1..=10_000).contains(n))
                .ok_or_else(|| {
                    S3Error::invalid_argument("max-buckets must be an integer from 1 to 10000")
                })?,
        ),
    };
    let after = continuation_token(ctx)?.filter(|t| !t.is_empty());
    let prefix = ctx.query("prefix").unwrap_or("");
    let other_region = ctx.query("bucket-region").is_some_and(|r| {
        !r.is_empty()
            && crate::auth::canonical_region(r) != crate::auth::canonical_region(&state.region)
    });
    let mut buckets = state.store.list_buckets().await?;
    buckets.sort_by(|a, b| a.name.cmp(&b.name));
    buckets.retain(|b| {
        !other_region && b.name.starts_with(prefix) && after.as_ref().is_none_or(|a| b.name > *a)
    });
    let mut continuation_token = None;
    if let Some(max) = max {
        if buckets.len() > max {
            buckets.truncate(max);
            continuation_token = buckets.last().map(|b| token_for(&b.name));
        }
    }
    xml_response(&xml::ListAllMyBucketsResult {
        xmlns: NS,
        owner: state.owner.clone(),
        buckets: xml::Buckets {
            bucket: buckets
                .into_iter()
                .map(|b| xml::BucketXml {
                    name: b.name,
                    creation_date: iso8601(b.created),
                    bucket_region: state.region.clone(),
                })
                .collect(),
        },
        continuation_token,
        prefix: ctx.query("prefix").map(str::to_string),
    })
}

pub async fn create(state: &S3State, ctx: &Ctx, body: Body) -> Result<Response<Body>, S3Error> {
    let name = bucket(ctx)?;
    if !crate::object::valid_bucket_name(name) || crate::api::reserved_bucket_name(name) {
        return Err(crate::object::ObjectError::InvalidBucketName.into());
    }
    let lock = super::objectlock::create_bucket_lock(ctx)?;
    let raw = body::read_small(body, &ctx.verified, &ctx.headers, 64 * 1024).await?;
    let text = String::from_utf8(raw).map_err(|_| S3Error::malformed_xml())?;
    if !text.trim().is_empty() {
        let cfg: xml::CreateBucketConfiguration =
            xml::from_xml(&text, "CreateBucketConfiguration")?;
        if let Some(loc) = cfg.location_constraint.filter(|l| !l.is_empty()) {
            check_location(&loc, &state.region)?;
        }
    }
    let mut config = super::access::new_bucket_config(state, ctx, name)?;
    if lock.is_some() {
        // Object lock needs every write to make a version.
        config.object_lock = lock;
        config.versioning = Some(crate::bucket::Versioning::Enabled);
    }
    state.store.create_bucket(config).await?;
    let mut r = empty(StatusCode::OK);
    if let Ok(v) = format!("/{name}").parse() {
        r.headers_mut().insert("location", v);
    }
    Ok(r)
}

/// The `continuation-token` of a listing: the opaque form of where the previous page ended.
fn continuation_token(ctx: &Ctx) -> Result<Option<String>, S3Error> {
    ctx.query("continuation-token")
        .map(|t| {
            base64::engine::general_purpose::STANDARD
                .decode(t)
                .ok()
                .and_then(|b| String::from_utf8(b).ok())
                .ok_or_else(|| {
                    S3Error::invalid_argument("The continuation token provided is incorrect")
                })
        })
        .transpose()
}

/// The `continuation-token` that resumes a listing after `last`.
fn token_for(last: &str) -> String {
    base64::engine::general_purpose::STANDARD.encode(last.as_bytes())
}

/// A CreateBucket location constraint, answered as AWS does: this server's region (or `US`,
/// the legacy name of us-east-1) is fine; `EU` (legacy eu-west-1) or another region is
/// `IllegalLocationConstraintException`; anything else is not a location at all.
fn check_location(loc: &str, region: &str) -> Result<(), S3Error> {
    let canonical = |r| match crate::auth::canonical_region(r) {
        "EU" => "eu-west-1",
        r => r,
    };
    if canonical(loc) == canonical(region) {
        return Ok(());
    }
    let looks_like_region = loc == "EU"
        || loc.split('-').count() >= 3
            && loc
                .split('-')
                .next_back()
                .is_some_and(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()))
            && loc
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-');
    if looks_like_region {
        return Err(S3Error::new(
            "IllegalLocationConstraintException",
            StatusCode::BAD_REQUEST,
            format!("The {loc} location constraint is incompatible for the region specific endpoint this request was sent to ({region})."),
        ));
    }
    Err(S3Error::new(
        "InvalidLocationConstraint",
        StatusCode::BAD_REQUEST,
        "The specified location-constraint is not valid",
    ))
}

pub async fn head(state: &S3State, ctx: &Ctx) -> Result<Response<Body>, S3Error> {
    let name = bucket(ctx)?;
    if !crate::object::valid_bucket_name(name) {
        return Err(S3Error::no_such_bucket());
    }
    require_bucket(state, name).await?;
    let mut r = empty(StatusCode::OK);
    if let Ok(v) = state.region.parse() {
        r.headers_mut().insert("x-amz-bucket-region", v);
    }
    Ok(r)
}

pub async fn delete(state: &S3State, ctx: &Ctx) -> Result<Response<Body>, S3Error> {
    let name = bucket(ctx)?;
    state.store.delete_bucket(name).await?;
    state.quotas.bucket_deleted(name).await;
    Ok(empty(StatusCode::NO_CONTENT))
}

pub async fn location(state: &S3State, ctx: &Ctx) -> Result<Response<Body>, S3Error> {
    require_bucket(state, bucket(ctx)?).await?;
    // As AWS: us-east-1 is reported as an empty constraint.
    let region = if state.region == "us-east-1" {
        String::new()
    } else {
        state.region.clone()
    };
    xml_response(&xml::LocationConstraintXml { xmlns: NS, region })
}

pub(super) fn url_encode(s: &str) -> String {
    crate::auth::uri_encode_key(s)
}

/// What every listing takes: `max-keys`, `encoding-type=url`, `prefix`, `delimiter`.
pub(super) struct ListingParams {
    pub max_keys: usize,
    pub url: bool,
    pub prefix: String,
    pub delimiter: Option<String>,
}

/// `encoding-type=url` of a listing (the only encoding S3 knows).
pub(super) fn url_encoding(ctx: &Ctx) -> Result<bool, S3Error> {
    match ctx.query("encoding-type") {
        Some("url") => Ok(true),
        Some(_) => Err(S3Error::invalid_argument(
            "Invalid Encoding Method specified in Request",
        )),
        None => Ok(false),
    }
}

pub(super) fn listing_params(ctx: &Ctx) -> Result<ListingParams, S3Error> {
    let max_keys = match ctx.query("max-keys") {
        Some(v) => v
            .parse::<i64>()
            .ok()
            .filter(|n| *n >= 0)
            .ok_or_else(|| S3Error::invalid_argument("max-keys must be a non-negative integer"))?
            .min(1000) as usize,
        None => 1000,
    };
    Ok(ListingParams {
        max_keys,
        url: url_encoding(ctx)?,
        prefix: ctx.query("prefix").unwrap_or("").to_string(),
        delimiter: ctx
            .query("delimiter")
            .filter(|d| !d.is_empty())
            .map(String::from),
    })
}

pub async fn list_objects(state: &S3State, ctx: &Ctx, v2: bool) -> Result<Response<Body>, S3Error> {
    let name = bucket(ctx)?;
    let ListingParams {
        max_keys,
        url,
        prefix,
        delimiter,
    } = listing_params(ctx)?;
    let token = if v2 { continuation_token(ctx)? } else { None };
    let start_after = if v2 {
        token
            .clone()
            .or_else(|| ctx.query("start-after").map(String::from))
    } else {
        ctx.query("marker").map(String::from)
    };
    let page = state
        .store
        .list_objects(
            name,
            &ListOptions {
                prefix: prefix.clone(),
                delimiter: delimiter.clone(),
                start_after: start_after.clone().unwrap_or_default(),
                max_keys,
                every_key: false,
                pool: None,
            },
        )
        .await?;
    let enc = |s: String| if url { url_encode(&s) } else { s };
    let fetch_owner = !v2 || ctx.query("fetch-owner") == Some("true");
    let contents: Vec<xml::ContentsXml> = page
        .objects
        .iter()
        .map(|o| xml::ContentsXml {
            key: enc(o.key.clone()),
            last_modified: iso8601(o.mod_time),
            etag: format!("\"{}\"", o.etag),
            size: super::sse::plain_size(o),
            storage_class: crate::object::storage_class(&o.headers),
            owner: fetch_owner.then(|| state.owner.clone()),
        })
        .collect();
    let key_count = page.objects.len() + page.common_prefixes.len();
    let next = page.next_marker.clone();
    let result = xml::ListBucketResult {
        xmlns: NS,
        name: name.to_string(),
        prefix: enc(prefix),
        marker: (!v2).then(|| enc(start_after.clone().unwrap_or_default())),
        // V1 names the next marker only under a delimiter; without one a client resumes
        // after the page's last key (AWS's ListObjects).
        next_marker: if v2 || delimiter.is_none() {
            None
        } else {
            next.clone().map(enc)
        },
        continuation_token: if v2 {
            ctx.query("continuation-token").map(String::from)
        } else {
            None
        },
        next_continuation_token: if v2 {
            next.map(|n| token_for(&n))
        } else {
            None
        },
        start_after: if v2 {
            ctx.query("start-after").map(|s| enc(s.to_string()))
        } else {
            None
        },
        key_count: v2.then_some(key_count),
        max_keys,
        delimiter: delimiter.map(enc),
        encoding_type: url.then(|| "url".to_string()),
        is_truncated: page.truncated,
        contents,
        common_prefixes: page
            .common_prefixes
            .into_iter()
            .map(|p| xml::CommonPrefixXml { prefix: enc(p) })
            .collect(),
    };
    xml_response(&result)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn location_constraints_get_the_aws_answers() {
        let code = |loc, region| check_location(loc, region).err().map(|e| e.code);
        assert_eq!(code("us-east-1", "us-east-1"), None);
        assert_eq!(code("US", "us-east-1"), None);
        assert_eq!(code("eu-central-1", "eu-central-1"), None);
        assert_eq!(code("EU", "eu-west-1"), None);
        for other in ["EU", "eu-west-1", "ap-southeast-2", "us-gov-west-1"] {
            assert_eq!(
                code(other, "us-east-1"),
                Some("IllegalLocationConstraintException"),
                "{other}"
            );
        }
        for junk in ["nowhere", "eu-west-one", "EU-WEST-1", "-1"] {
            assert_eq!(
                code(junk, "us-east-1"),
                Some("InvalidLocationConstraint"),
                "{junk}"
            );
        }
    }
}
