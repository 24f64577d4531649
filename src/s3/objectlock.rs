//! Object lock: the bucket's configuration (`?object-lock`), each version's retention
//! (`?retention`) and legal hold (`?legal-hold`), the `x-amz-object-lock-*` headers of
//! writes and reads, and who may bypass a governance retention. The object layer refuses
//! to remove a protected version; this layer decides what a request sets and asks for.

use axum::body::Body;
use http::{Response, StatusCode};
use serde::{Deserialize, Serialize};

use super::access::{bucket, small_text, update};
use super::error::S3Error;
use super::xml::{self, NS};
use super::{bucket_key, version_header};
use super::{empty, version_ref, xml_response, Ctx, S3State};
use crate::bucket::{DefaultRetention, ObjectLock, Versioning};
use crate::object::retention::{now_secs, LockMode, Retention};
use crate::object::{ObjectError, ObjectInfo};

/// The longest default retention AWS accepts (100 years).
const MAX_DAYS: u32 = 36_500;

fn invalid_request(message: &str) -> S3Error {
    S3Error::invalid_request(message.to_string())
}

fn no_lock_configuration() -> S3Error {
    invalid_request("Bucket is missing Object Lock Configuration")
}

/// `2030-01-01T00:00:00Z` (fractions allowed) as seconds since the epoch.
fn parse_date(v: &str) -> Option<i64> {
    time::OffsetDateTime::parse(v.trim(), &time::format_description::well_known::Rfc3339)
        .ok()
        .map(|t| t.unix_timestamp())
}

fn show_date(secs: i64) -> String {
    super::iso8601(secs.saturating_mul(1_000_000_000))
}

/// `x-amz-bucket-object-lock-enabled` on CreateBucket: object lock on, versioning enabled.
pub fn create_bucket_lock(ctx: &Ctx) -> Result<Option<ObjectLock>, S3Error> {
    match ctx.header("x-amz-bucket-object-lock-enabled") {
        None => Ok(None),
        Some(v) if v.eq_ignore_ascii_case("true") => Ok(Some(ObjectLock::default())),
        Some(v) if v.eq_ignore_ascii_case("false") => Ok(None),
        Some(_) => Err(S3Error::invalid_argument(
            "x-amz-bucket-object-lock-enabled must be true or false",
        )),
    }
}

/// The lock state a new version gets: what the write asks for in `x-amz-object-lock-*`,
/// else the bucket's default retention. Refused on a bucket without object lock.
pub async fn for_new_version(
    state: &S3State,
    ctx: &Ctx,
    bucket: &str,
) -> Result<Retention, S3Error> {
    let mode = ctx.header("x-amz-object-lock-mode");
    let until = ctx.header("x-amz-object-lock-retain-until-date");
    let hold = ctx.header("x-amz-object-lock-legal-hold");
    let config = super::authz::bucket_of(state, bucket)
        .await?
        .ok_or_else(S3Error::no_such_bucket)?;
    let Some(lock) = &config.config.object_lock else {
        if mode.is_some() || until.is_some() || hold.is_some() {
            return Err(no_lock_configuration());
        }
        return Ok(Retention::default());
    };
    let retention = match (mode, until) {
        (Some(m), Some(u)) => {
            let mode = LockMode::parse(m)
                .ok_or_else(|| S3Error::invalid_argument("Unknown wormMode directive."))?;
            let until = parse_date(u).ok_or_else(|| {
                S3Error::invalid_argument("The retain until date must be an ISO 8601 date")
            })?;
            if until <= now_secs() {
                return Err(S3Error::invalid_argument(
                    "The retain until date must be in the future!",
                ));
            }
            Some((mode, until))
        }
        (None, None) => lock.default_retention.map(|d| {
            (
                d.mode,
                now_secs().saturating_add(i64::from(d.days) * 86_400),
            )
        }),
        _ => return Err(S3Error::invalid_argument(
            "x-amz-object-lock-retain-until-date and x-amz-object-lock-mode must both be supplied",
        )),
    };
    let legal_hold = match hold {
        None | Some("OFF") => false,
        Some("ON") => true,
        Some(_) => {
            return Err(S3Error::invalid_argument(
                "Legal Hold must be either of 'ON' or 'OFF'",
            ))
        }
    };
    Ok(Retention {
        retention,
        legal_hold,
    })
}

/// AWS's rule for a PutObject whose version gets a retention or legal hold (asked for, or
/// the bucket's default): the body must come with an integrity check — `Content-MD5` or a
/// checksum (`x-amz-checksum-*`, `x-amz-sdk-checksum-algorithm`, or one in the trailer) —
/// so bytes damaged on the way are never locked where nobody can replace them.
pub fn require_digest(ctx: &Ctx, lock: &Retention) -> Result<(), S3Error> {
    if lock.retention.is_none() && !lock.legal_hold {
        return Ok(());
    }
    let has_digest = ctx.headers.iter().any(|(n, _)| n == "content-md5")
        || super::body::declared_checksum(&ctx.headers)?.is_some();
    if has_digest {
        return Ok(());
    }
    Err(S3Error::invalid_request(
        "Content-MD5 OR x-amz-checksum- HTTP header is required for Put Object requests with Object Lock parameters",
    ))
}

/// Put a new version's lock state among the headers it is stored with.
pub fn store_in(headers: &mut std::collections::BTreeMap<String, String>, lock: &Retention) {
    for (name, value) in lock.headers() {
        match value {
            Some(v) => headers.insert(name, v),
            None => headers.remove(&name),
        };
    }
}

/// `x-amz-object-lock-*` on GET and HEAD.
pub fn response_headers(info: &ObjectInfo) -> Vec<(&'static str, String)> {
    let lock = Retention::of(&info.headers);
    let mut out = Vec::new();
    if let Some((mode, until)) = lock.retention {
        out.push(("x-amz-object-lock-mode", mode.as_str().to_string()));
        out.push(("x-amz-object-lock-retain-until-date", show_date(until)));
    }
    if lock.legal_hold {
        out.push(("x-amz-object-lock-legal-hold", "ON".to_string()));
    }
    out
}

/// Whether the request asks to bypass governance retention and may: the header, and
/// `s3:BypassGovernanceRetention` on the object.
pub fn may_bypass(
    state: &S3State,
    ctx: &Ctx,
    bucket: Option<&crate::bucket::Bucket>,
    key: &str,
) -> bool {
    if !ctx
        .header("x-amz-bypass-governance-retention")
        .is_some_and(|v| v.eq_ignore_ascii_case("true"))
    {
        return false;
    }
    let q = super::authz::Question {
        need: super::authz::Need {
            action: "s3:BypassGovernanceRetention",
            on: super::authz::On::Object,
            acl: None,
        },
        bucket: ctx.target.bucket.as_deref(),
        key: Some(key),
        object_acl: None,
    };
    super::authz::require(state, ctx, bucket, &q).is_ok()
}

// ---- the bucket's configuration ----

#[derive(Serialize, Deserialize, Default)]
#[serde(rename = "ObjectLockConfiguration")]
struct LockConfigXml {
    #[serde(rename = "@xmlns", default, skip_deserializing)]
    xmlns: &'static str,
    #[serde(rename = "ObjectLockEnabled", default)]
    enabled: Option<String>,
    #[serde(rename = "Rule", default, skip_serializing_if = "Option::is_none")]
    rule: Option<RuleXml>,
}

#[derive(Serialize, Deserialize)]
struct RuleXml {
    #[serde(rename = "DefaultRetention")]
    default_retention: DefaultRetentionXml,
}

#[derive(Serialize, Deserialize)]
struct DefaultRetentionXml {
    #[serde(rename = "Mode", default)]
    mode: Option<String>,
    #[serde(rename = "Days", default, skip_serializing_if = "Option::is_none")]
    days: Option<i64>,
    #[serde(rename = "Years", default, skip_serializing_if = "Option::is_none")]
    years: Option<i64>,
}

pub async fn get_configuration(state: &S3State, ctx: &Ctx) -> Result<Response<Body>, S3Error> {
    let b = bucket(state, ctx).await?;
    let Some(lock) = &b.config.object_lock else {
        return Err(S3Error::new(
            "ObjectLockConfigurationNotFoundError",
            StatusCode::NOT_FOUND,
            "Object Lock configuration does not exist for this bucket",
        ));
    };
    xml_response(&LockConfigXml {
        xmlns: NS,
        enabled: Some("Enabled".into()),
        rule: lock.default_retention.map(|d| RuleXml {
            default_retention: DefaultRetentionXml {
                mode: Some(d.mode.as_str().into()),
                days: (!d.in_years).then_some(i64::from(d.days)),
                years: d.in_years.then_some(i64::from(d.days / 365)),
            },
        }),
    })
}

pub async fn put_configuration(
    state: &S3State,
    ctx: &Ctx,
    body: Body,
) -> Result<Response<Body>, S3Error> {
    let b = bucket(state, ctx).await?;
    let text = small_text(ctx, body).await?;
    let x: LockConfigXml = xml::from_xml(&text, "ObjectLockConfiguration")?;
    if x.enabled.as_deref() != Some("Enabled") {
        return Err(S3Error::malformed_xml());
    }
    // Object lock needs every write to make a version: on an existing bucket, versioning
    // must be on already.
    if b.config.object_lock.is_none() && b.config.versioning != Some(Versioning::Enabled) {
        return Err(S3Error::new(
            "InvalidBucketState",
            StatusCode::CONFLICT,
            "Versioning must be 'Enabled' on the bucket to apply a Object Lock configuration",
        ));
    }
    let default_retention = match x.rule {
        None => None,
        Some(r) => {
            let d = r.default_retention;
            let mode = d
                .mode
                .as_deref()
                .and_then(LockMode::parse)
                .ok_or_else(S3Error::malformed_xml)?;
            let positive = |n: i64| {
                u32::try_from(n).ok().filter(|n| *n > 0).ok_or_else(|| {
                    S3Error::invalid_argument(
                        "Default retention period must be a positive integer value",
                    )
                })
            };
            let (days, in_years) = match (d.days, d.years) {
                (Some(days), None) => (positive(days)?, false),
                (None, Some(years)) => (positive(years)?.saturating_mul(365), true),
                _ => return Err(S3Error::malformed_xml()),
            };
            if days > MAX_DAYS {
                return Err(S3Error::invalid_argument(
                    "Default retention period is too large",
                ));
            }
            Some(DefaultRetention {
                mode,
                days,
                in_years,
            })
        }
    };
    update(state, ctx, |c| {
        c.object_lock = Some(ObjectLock { default_retention });
        Ok(())
    })
    .await?;
    Ok(empty(StatusCode::OK))
}

// ---- a version's retention and legal hold ----

#[derive(Serialize, Deserialize)]
#[serde(rename = "Retention")]
struct RetentionXml {
    #[serde(rename = "@xmlns", default, skip_deserializing)]
    xmlns: &'static str,
    #[serde(rename = "Mode", default, skip_serializing_if = "Option::is_none")]
    mode: Option<String>,
    #[serde(
        rename = "RetainUntilDate",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    until: Option<String>,
}

#[derive(Serialize, Deserialize)]
#[serde(rename = "LegalHold")]
struct LegalHoldXml {
    #[serde(rename = "@xmlns", default, skip_deserializing)]
    xmlns: &'static str,
    #[serde(rename = "Status", default)]
    status: Option<String>,
}

fn no_object_lock() -> S3Error {
    S3Error::new(
        "NoSuchObjectLockConfiguration",
        StatusCode::NOT_FOUND,
        "The specified object does not have a ObjectLock configuration",
    )
}

/// The bucket of the request, which must have object lock.
async fn locked_bucket(
    state: &S3State,
    ctx: &Ctx,
) -> Result<std::sync::Arc<crate::bucket::Bucket>, S3Error> {
    let b = bucket(state, ctx).await?;
    if b.config.object_lock.is_none() {
        return Err(no_lock_configuration());
    }
    Ok(b)
}

pub async fn get_retention(state: &S3State, ctx: &Ctx) -> Result<Response<Body>, S3Error> {
    locked_bucket(state, ctx).await?;
    let (b, k) = bucket_key(ctx)?;
    let info = state.store.head_version(b, k, version_ref(ctx)?).await?;
    let Some((mode, until)) = Retention::of(&info.headers).retention else {
        return Err(no_object_lock());
    };
    let mut r = xml_response(&RetentionXml {
        xmlns: NS,
        mode: Some(mode.as_str().into()),
        until: Some(show_date(until)),
    })?;
    version_header(state, &mut r, b, info.version_id).await;
    Ok(r)
}

pub async fn put_retention(
    state: &S3State,
    ctx: &Ctx,
    body: Body,
) -> Result<Response<Body>, S3Error> {
    let config = locked_bucket(state, ctx).await?;
    let (b, k) = bucket_key(ctx)?;
    let text = small_text(ctx, body).await?;
    let x: RetentionXml = xml::from_xml(&text, "Retention")?;
    let wanted = match (x.mode.as_deref(), x.until.as_deref()) {
        (Some(m), Some(u)) => {
            let mode = LockMode::parse(m).ok_or_else(S3Error::malformed_xml)?;
            let until = parse_date(u).ok_or_else(S3Error::malformed_xml)?;
            if until <= now_secs() {
                return Err(S3Error::invalid_argument(
                    "The retain until date must be in the future!",
                ));
            }
            Some((mode, until))
        }
        // An empty retention removes it (where that is allowed).
        (None, None) => None,
        _ => return Err(S3Error::malformed_xml()),
    };
    let bypass = may_bypass(state, ctx, Some(config.as_ref()), k);
    let info = state
        .store
        .update_object_headers(b, k, version_ref(ctx)?, |current| {
            let mut lock = Retention::of(&current.headers);
            let now = now_secs();
            if let Some((mode, until)) = lock.retention.filter(|(_, u)| *u > now) {
                let weaker = match wanted {
                    None => true,
                    Some((m, u)) => u < until || (mode == LockMode::Compliance && m != mode),
                };
                // A compliance retention can only be extended; a governance one can be
                // shortened or removed only by whoever may bypass it.
                if weaker && (mode == LockMode::Compliance || !bypass) {
                    return Err(ObjectError::ObjectLocked);
                }
            }
            lock.retention = wanted;
            Ok(lock.headers())
        })
        .await?;
    let mut r = empty(StatusCode::OK);
    version_header(state, &mut r, b, info.version_id).await;
    Ok(r)
}

pub async fn get_legal_hold(state: &S3State, ctx: &Ctx) -> Result<Response<Body>, S3Error> {
    locked_bucket(state, ctx).await?;
    let (b, k) = bucket_key(ctx)?;
    let info = state.store.head_version(b, k, version_ref(ctx)?).await?;
    let lock = Retention::of(&info.headers);
    let mut r = xml_response(&LegalHoldXml {
        xmlns: NS,
        status: Some(if lock.legal_hold { "ON" } else { "OFF" }.into()),
    })?;
    version_header(state, &mut r, b, info.version_id).await;
    Ok(r)
}

pub async fn put_legal_hold(
    state: &S3State,
    ctx: &Ctx,
    body: Body,
) -> Result<Response<Body>, S3Error> {
    locked_bucket(state, ctx).await?;
    let (b, k) = bucket_key(ctx)?;
    let text = small_text(ctx, body).await?;
    let x: LegalHoldXml = xml::from_xml(&text, "LegalHold")?;
    let on = match x.status.as_deref() {
        Some("ON") => true,
        Some("OFF") => false,
        _ => return Err(S3Error::malformed_xml()),
    };
    let info = state
        .store
        .update_object_headers(b, k, version_ref(ctx)?, |current| {
            let mut lock = Retention::of(&current.headers);
            lock.legal_hold = on;
            Ok(lock.headers())
        })
        .await?;
    let mut r = empty(StatusCode::OK);
    version_header(state, &mut r, b, info.version_id).await;
    Ok(r)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates_parse_as_aws_writes_them() {
        assert_eq!(parse_date("2030-01-01T00:00:00Z"), Some(1_893_456_000));
        assert_eq!(parse_date("2030-01-01T00:00:00.000Z"), Some(1_893_456_000));
        assert_eq!(parse_date("2030-01-01T01:00:00+01:00"), Some(1_893_456_000));
        assert_eq!(parse_date("tomorrow"), None);
        assert_eq!(show_date(1_893_456_000), "2030-01-01T00:00:00.000Z");
    }
}
