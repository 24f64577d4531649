//! The `?lifecycle` subresource (Put/Get/DeleteBucketLifecycleConfiguration) and the
//! `x-amz-expiration` header of the objects a rule will expire. The rules themselves and
//! what they decide live in [`crate::lifecycle`]; this layer is XML in and out.

use axum::body::Body;
use http::{Response, StatusCode};
use serde::de::IgnoredAny;
use serde::{Deserialize, Serialize};

use super::access::{bucket, delete_config, put_config};
use super::error::S3Error;
use super::xml::{self, NS};
use super::{xml_response, Ctx, S3State};
use crate::lifecycle::{
    Expiration, Filter, Lifecycle, NoncurrentExpiration, Place, Rule, RuleError, VersionFacts,
};
use crate::object::ObjectInfo;

/// The largest configuration body read (1000 rules with tags fit easily).
const MAX_BODY: usize = 1024 * 1024;

#[derive(Serialize, Deserialize, Default)]
#[serde(rename = "LifecycleConfiguration")]
struct LifecycleXml {
    #[serde(rename = "@xmlns", default, skip_deserializing)]
    xmlns: &'static str,
    #[serde(rename = "Rule", default)]
    rules: Vec<RuleXml>,
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct RuleXml {
    #[serde(rename = "ID", default, skip_serializing_if = "Option::is_none")]
    id: Option<String>,
    #[serde(rename = "Filter", default, skip_serializing_if = "Option::is_none")]
    filter: Option<FilterXml>,
    /// The deprecated rule-level prefix.
    #[serde(rename = "Prefix", default, skip_serializing_if = "Option::is_none")]
    prefix: Option<String>,
    #[serde(rename = "Status", default)]
    status: Option<String>,
    #[serde(
        rename = "Expiration",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    expiration: Option<ExpirationXml>,
    #[serde(
        rename = "NoncurrentVersionExpiration",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    noncurrent: Option<NoncurrentXml>,
    #[serde(
        rename = "AbortIncompleteMultipartUpload",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    abort: Option<AbortXml>,
    #[serde(rename = "Transition", default, skip_serializing)]
    transitions: Vec<IgnoredAny>,
    #[serde(rename = "NoncurrentVersionTransition", default, skip_serializing)]
    noncurrent_transitions: Vec<IgnoredAny>,
}

#[derive(Serialize, Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct FilterXml {
    #[serde(rename = "Prefix", default, skip_serializing_if = "Option::is_none")]
    prefix: Option<String>,
    #[serde(rename = "Tag", default, skip_serializing_if = "Option::is_none")]
    tag: Option<TagXml>,
    #[serde(
        rename = "ObjectSizeGreaterThan",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    size_greater_than: Option<i64>,
    #[serde(
        rename = "ObjectSizeLessThan",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    size_less_than: Option<i64>,
    #[serde(rename = "And", default, skip_serializing_if = "Option::is_none")]
    and: Option<AndXml>,
}

#[derive(Serialize, Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct AndXml {
    #[serde(rename = "Prefix", default, skip_serializing_if = "Option::is_none")]
    prefix: Option<String>,
    #[serde(rename = "Tag", default, skip_serializing_if = "Vec::is_empty")]
    tags: Vec<TagXml>,
    #[serde(
        rename = "ObjectSizeGreaterThan",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    size_greater_than: Option<i64>,
    #[serde(
        rename = "ObjectSizeLessThan",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    size_less_than: Option<i64>,
}

#[derive(Serialize, Deserialize, Clone)]
#[serde(deny_unknown_fields)]
struct TagXml {
    #[serde(rename = "Key")]
    key: String,
    #[serde(rename = "Value", default)]
    value: String,
}

#[derive(Serialize, Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct ExpirationXml {
    #[serde(rename = "Date", default, skip_serializing_if = "Option::is_none")]
    date: Option<String>,
    #[serde(rename = "Days", default, skip_serializing_if = "Option::is_none")]
    days: Option<i64>,
    #[serde(
        rename = "ExpiredObjectDeleteMarker",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    delete_marker: Option<bool>,
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct NoncurrentXml {
    #[serde(
        rename = "NoncurrentDays",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    days: Option<i64>,
    #[serde(
        rename = "NewerNoncurrentVersions",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    newer_versions: Option<i64>,
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct AbortXml {
    #[serde(rename = "DaysAfterInitiation", default)]
    days: Option<i64>,
}

fn rule_error(e: RuleError) -> S3Error {
    match e {
        RuleError::InvalidArgument(m) => S3Error::invalid_argument(m),
        RuleError::InvalidRequest(m) => S3Error::invalid_request(m),
        RuleError::Malformed(_) => S3Error::malformed_xml(),
    }
}

/// A day count from XML: a positive integer (0 and negatives are refused by validation
/// with the message for their element; larger than `u32` cannot be meant).
fn days(n: i64, element: &str) -> Result<u32, S3Error> {
    u32::try_from(n.max(0))
        .map_err(|_| S3Error::invalid_argument(format!("'{element}' is too large")))
}

fn size(n: i64) -> Result<u64, S3Error> {
    u64::try_from(n)
        .map_err(|_| S3Error::invalid_argument("Object size filters must be non-negative integers"))
}

/// `2030-01-01T00:00:00Z` (or a bare date) as seconds since the epoch.
fn parse_date(v: &str) -> Option<i64> {
    let v = v.trim();
    if let Ok(t) = time::OffsetDateTime::parse(v, &time::format_description::well_known::Rfc3339) {
        return Some(t.unix_timestamp());
    }
    let fmt = time::macros::format_description!("[year]-[month]-[day]");
    time::Date::parse(v, fmt)
        .ok()
        .map(|d| d.midnight().assume_utc().unix_timestamp())
}

fn filter_from(x: Option<FilterXml>, legacy: Option<String>) -> Result<(Filter, bool), S3Error> {
    let x = match (x, legacy) {
        (Some(_), Some(_)) => return Err(S3Error::malformed_xml()),
        (None, Some(prefix)) => {
            return Ok((
                Filter {
                    prefix,
                    ..Filter::default()
                },
                true,
            ))
        }
        (None, None) => return Ok((Filter::default(), false)),
        (Some(x), None) => x,
    };
    let given = [
        x.prefix.is_some(),
        x.tag.is_some(),
        x.size_greater_than.is_some(),
        x.size_less_than.is_some(),
        x.and.is_some(),
    ]
    .iter()
    .filter(|g| **g)
    .count();
    // A filter is one predicate, or several under <And>.
    if given > 1 {
        return Err(S3Error::malformed_xml());
    }
    let mut f = Filter {
        prefix: x.prefix.unwrap_or_default(),
        tags: x.tag.into_iter().map(|t| (t.key, t.value)).collect(),
        size_greater_than: x.size_greater_than.map(size).transpose()?,
        size_less_than: x.size_less_than.map(size).transpose()?,
        and: false,
    };
    if let Some(and) = x.and {
        f = Filter {
            prefix: and.prefix.unwrap_or_default(),
            tags: and.tags.into_iter().map(|t| (t.key, t.value)).collect(),
            size_greater_than: and.size_greater_than.map(size).transpose()?,
            size_less_than: and.size_less_than.map(size).transpose()?,
            and: true,
        };
        if f.tags
            .iter()
            .enumerate()
            .any(|(i, (k, _))| f.tags[..i].iter().any(|(o, _)| o == k))
        {
            return Err(S3Error::invalid_request(
                "Duplicate Tag Keys are not allowed.".to_string(),
            ));
        }
    }
    Ok((f, false))
}

fn rule_from(x: RuleXml) -> Result<Rule, S3Error> {
    if !x.transitions.is_empty() || !x.noncurrent_transitions.is_empty() {
        return Err(S3Error::not_implemented(
            "Lifecycle transitions to other storage classes",
        ));
    }
    let enabled = match x.status.as_deref() {
        Some("Enabled") => true,
        Some("Disabled") => false,
        _ => return Err(S3Error::malformed_xml()),
    };
    let (filter, legacy_prefix) = filter_from(x.filter, x.prefix)?;
    let expiration = match x.expiration {
        None => None,
        Some(e) => Some(match (e.days, e.date, e.delete_marker) {
            (Some(d), None, None) => Expiration::Days(days(d, "Days")?),
            (None, Some(date), None) => Expiration::Date(parse_date(&date).ok_or_else(|| {
                S3Error::invalid_argument("'Date' must be an ISO 8601 date at midnight GMT")
            })?),
            (None, None, Some(m)) => Expiration::DeleteMarker(m),
            (None, None, None) | (Some(_), Some(_), _) => return Err(S3Error::malformed_xml()),
            (_, _, Some(_)) => {
                return Err(S3Error::invalid_argument(
                    "ExpiredObjectDeleteMarker cannot be specified with Days or Date in a Lifecycle Expiration Policy",
                ))
            }
        }),
    };
    let noncurrent = match x.noncurrent {
        None => None,
        Some(n) => {
            let d = n.days.ok_or_else(S3Error::malformed_xml)?;
            Some(NoncurrentExpiration {
                days: days(d, "NoncurrentDays")?,
                newer_versions: n
                    .newer_versions
                    .map(|k| days(k, "NewerNoncurrentVersions"))
                    .transpose()?,
            })
        }
    };
    let abort_upload_days = match x.abort {
        None => None,
        Some(a) => Some(days(
            a.days.ok_or_else(S3Error::malformed_xml)?,
            "DaysAfterInitiation",
        )?),
    };
    Ok(Rule {
        // AWS names a rule that comes without an id.
        id: x
            .id
            .unwrap_or_else(|| uuid::Uuid::new_v4().simple().to_string()),
        enabled,
        filter,
        legacy_prefix,
        expiration,
        noncurrent,
        abort_upload_days,
    })
}

fn tag_xml(tags: &[(String, String)]) -> Vec<TagXml> {
    tags.iter()
        .map(|(k, v)| TagXml {
            key: k.clone(),
            value: v.clone(),
        })
        .collect()
}

fn rule_xml(r: &Rule) -> RuleXml {
    let f = &r.filter;
    let filter = if r.legacy_prefix {
        None
    } else if f.and {
        Some(FilterXml {
            and: Some(AndXml {
                prefix: (!f.prefix.is_empty()).then(|| f.prefix.clone()),
                tags: tag_xml(&f.tags),
                size_greater_than: f.size_greater_than.and_then(|n| i64::try_from(n).ok()),
                size_less_than: f.size_less_than.and_then(|n| i64::try_from(n).ok()),
            }),
            ..FilterXml::default()
        })
    } else {
        let tag = tag_xml(&f.tags).into_iter().next();
        let (greater, less) = (
            f.size_greater_than.and_then(|n| i64::try_from(n).ok()),
            f.size_less_than.and_then(|n| i64::try_from(n).ok()),
        );
        let bare = tag.is_none() && greater.is_none() && less.is_none();
        Some(FilterXml {
            prefix: bare.then(|| f.prefix.clone()),
            tag,
            size_greater_than: greater,
            size_less_than: less,
            and: None,
        })
    };
    RuleXml {
        id: Some(r.id.clone()),
        filter,
        prefix: r.legacy_prefix.then(|| f.prefix.clone()),
        status: Some(if r.enabled { "Enabled" } else { "Disabled" }.into()),
        expiration: r.expiration.map(|e| match e {
            Expiration::Days(d) => ExpirationXml {
                days: Some(i64::from(d)),
                ..ExpirationXml::default()
            },
            Expiration::Date(s) => ExpirationXml {
                date: Some(super::iso8601(s.saturating_mul(1_000_000_000))),
                ..ExpirationXml::default()
            },
            Expiration::DeleteMarker(m) => ExpirationXml {
                delete_marker: Some(m),
                ..ExpirationXml::default()
            },
        }),
        noncurrent: r.noncurrent.map(|n| NoncurrentXml {
            days: Some(i64::from(n.days)),
            newer_versions: n.newer_versions.map(i64::from),
        }),
        abort: r.abort_upload_days.map(|d| AbortXml {
            days: Some(i64::from(d)),
        }),
        transitions: Vec::new(),
        noncurrent_transitions: Vec::new(),
    }
}

/// Parse and validate a `LifecycleConfiguration` body.
pub fn parse(text: &str) -> Result<Lifecycle, S3Error> {
    let x: LifecycleXml = xml::from_xml(text, "LifecycleConfiguration")?;
    let lc = Lifecycle {
        rules: x
            .rules
            .into_iter()
            .map(rule_from)
            .collect::<Result<_, _>>()?,
    };
    lc.validate().map_err(rule_error)?;
    Ok(lc)
}

fn no_configuration() -> S3Error {
    S3Error::new(
        "NoSuchLifecycleConfiguration",
        StatusCode::NOT_FOUND,
        "The lifecycle configuration does not exist",
    )
}

pub async fn get(state: &S3State, ctx: &Ctx) -> Result<Response<Body>, S3Error> {
    let b = bucket(state, ctx).await?;
    let Some(lc) = &b.config.lifecycle else {
        return Err(no_configuration());
    };
    xml_response(&LifecycleXml {
        xmlns: NS,
        rules: lc.rules.iter().map(rule_xml).collect(),
    })
}

pub async fn put(state: &S3State, ctx: &Ctx, body: Body) -> Result<Response<Body>, S3Error> {
    put_config(state, ctx, body, MAX_BODY, parse, |c, v| {
        c.lifecycle = Some(v)
    })
    .await
}

pub async fn delete(state: &S3State, ctx: &Ctx) -> Result<Response<Body>, S3Error> {
    delete_config(state, ctx, |c| c.lifecycle = None).await
}

/// `x-amz-expiration` for the current version `info`, if a rule will expire it.
pub async fn expiration_header(state: &S3State, r: &mut Response<Body>, info: &ObjectInfo) {
    if info.delete_marker {
        return;
    }
    let Ok(Some(b)) = super::authz::bucket_of(state, &info.bucket).await else {
        return;
    };
    let Some(lc) = &b.config.lifecycle else {
        return;
    };
    let tags = crate::object::tags::of(&info.headers);
    let facts = VersionFacts {
        key: &info.key,
        size: info.size,
        mod_time: info.mod_time,
        tags: &tags,
        delete_marker: false,
        place: Place::Current { only: false },
    };
    if let Some((due, rule)) = lc.expiration(&facts, state.lifecycle_day) {
        let value = format!(
            "expiry-date=\"{}\", rule-id=\"{}\"",
            super::http_date(due),
            rule.replace('\\', "\\\\").replace('"', "\\\"")
        );
        if let Ok(v) = http::HeaderValue::from_str(&value) {
            r.headers_mut().insert("x-amz-expiration", v);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn code(text: &str) -> String {
        parse(text)
            .err()
            .map(|e| e.code.to_string())
            .unwrap_or_default()
    }

    #[test]
    fn configurations_parse_and_render_back() {
        let text = r#"<LifecycleConfiguration xmlns="http://s3.amazonaws.com/doc/2006-03-01/">
            <Rule><ID>logs</ID><Filter><And><Prefix>logs/</Prefix>
              <Tag><Key>a</Key><Value>1</Value></Tag><Tag><Key>b</Key><Value>2</Value></Tag>
              <ObjectSizeGreaterThan>10</ObjectSizeGreaterThan></And></Filter>
              <Status>Enabled</Status><Expiration><Days>3</Days></Expiration>
              <NoncurrentVersionExpiration><NoncurrentDays>2</NoncurrentDays>
              <NewerNoncurrentVersions>5</NewerNoncurrentVersions></NoncurrentVersionExpiration>
            </Rule>
            <Rule><ID>old</ID><Prefix>tmp/</Prefix><Status>Disabled</Status>
              <Expiration><Date>2030-01-01T00:00:00Z</Date></Expiration>
              <AbortIncompleteMultipartUpload><DaysAfterInitiation>1</DaysAfterInitiation></AbortIncompleteMultipartUpload>
            </Rule>
            <Rule><Filter></Filter><Status>Enabled</Status>
              <Expiration><ExpiredObjectDeleteMarker>true</ExpiredObjectDeleteMarker></Expiration></Rule>
            </LifecycleConfiguration>"#;
        let lc = parse(text).expect("valid");
        assert_eq!(lc.rules.len(), 3);
        let r = &lc.rules[0];
        assert_eq!(r.filter.prefix, "logs/");
        assert_eq!(r.filter.tags.len(), 2);
        assert_eq!(r.filter.size_greater_than, Some(10));
        assert_eq!(r.expiration, Some(Expiration::Days(3)));
        assert_eq!(
            r.noncurrent,
            Some(NoncurrentExpiration {
                days: 2,
                newer_versions: Some(5)
            })
        );
        assert!(lc.rules[1].legacy_prefix && !lc.rules[1].enabled);
        assert_eq!(
            lc.rules[1].expiration,
            Some(Expiration::Date(1_893_456_000))
        );
        assert_eq!(lc.rules[2].expiration, Some(Expiration::DeleteMarker(true)));
        assert!(!lc.rules[2].id.is_empty());
        // What GET returns parses back to the same rules.
        let out = xml::to_xml(&LifecycleXml {
            xmlns: NS,
            rules: lc.rules.iter().map(rule_xml).collect(),
        })
        .expect("renders");
        assert_eq!(parse(&out).expect("round trip"), lc);
    }

    #[test]
    fn bad_configurations_get_aws_errors() {
        let rule = |inner: &str| {
            format!("<LifecycleConfiguration><Rule>{inner}</Rule></LifecycleConfiguration>")
        };
        assert_eq!(
            code(&rule("<ID>a</ID><Filter/><Status>Enabled</Status><Transition><Days>1</Days><StorageClass>GLACIER</StorageClass></Transition>")),
            "NotImplemented"
        );
        assert_eq!(
            code(&rule(
                "<ID>a</ID><Filter/><Status>On</Status><Expiration><Days>1</Days></Expiration>"
            )),
            "MalformedXML"
        );
        assert_eq!(
            code(&rule("<ID>a</ID><Filter/><Status>Enabled</Status><Expiration><Days>0</Days></Expiration>")),
            "InvalidArgument"
        );
        assert_eq!(
            code(&rule("<ID>a</ID><Filter/><Status>Enabled</Status><Expiration><Days>-1</Days></Expiration>")),
            "InvalidArgument"
        );
        assert_eq!(
            code(&rule("<ID>a</ID><Filter/><Status>Enabled</Status><Expiration><Days>1</Days><ExpiredObjectDeleteMarker>true</ExpiredObjectDeleteMarker></Expiration>")),
            "InvalidArgument"
        );
        assert_eq!(
            code(&rule("<ID>a</ID><Filter/><Status>Enabled</Status><Expiration><Date>2030-01-01T10:00:00Z</Date></Expiration>")),
            "InvalidArgument"
        );
        assert_eq!(
            code(&rule("<ID>a</ID><Filter><Prefix>x</Prefix><Tag><Key>k</Key><Value>v</Value></Tag></Filter><Status>Enabled</Status><Expiration><Days>1</Days></Expiration>")),
            "MalformedXML"
        );
        assert_eq!(
            code(&rule("<ID>a</ID><Filter/><Status>Enabled</Status><Bogus/><Expiration><Days>1</Days></Expiration>")),
            "MalformedXML"
        );
        assert_eq!(
            code(&rule("<ID>a</ID><Filter/><Status>Enabled</Status>")),
            "InvalidRequest"
        );
        assert_eq!(code("<LifecycleConfiguration/>"), "MalformedXML");
        assert_eq!(code("not xml"), "MalformedXML");
    }
}
