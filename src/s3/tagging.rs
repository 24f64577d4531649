//! Tags: the `?tagging` subresource of objects (any version) and buckets, and the
//! `x-amz-tagging` header of writes, with AWS's limits and errors. An object's tags are kept
//! among its version's stored headers (`x-cairn-tags`, URL-query encoded); a bucket's in its
//! configuration record.

use axum::body::Body;
use http::{Response, StatusCode};
use serde::{Deserialize, Serialize};

use super::access::{bucket, small_text, update};
use super::error::S3Error;
use super::xml::{self, NS};
use super::{bucket_key, version_header};
use super::{empty, version_ref, xml_response, Ctx, S3State};
use crate::object::tags;

pub use crate::object::tags::HEADER as TAGS_HEADER;
pub const MAX_OBJECT_TAGS: usize = 10;
pub const MAX_BUCKET_TAGS: usize = 50;
const MAX_KEY_CHARS: usize = 128;
const MAX_VALUE_CHARS: usize = 256;

pub use crate::object::tags::Tags;

fn invalid_tag(message: &str) -> S3Error {
    S3Error::new("InvalidTag", StatusCode::BAD_REQUEST, message)
}

/// Letters, digits and spaces in any script, and `+ - = . _ : / @` (AWS's rule).
fn allowed(c: char) -> bool {
    c.is_alphanumeric() || c == ' ' || "+-=._:/@".contains(c)
}

/// AWS's limits on a tag set of at most `max` tags.
pub fn validate(tags: &Tags, max: usize) -> Result<(), S3Error> {
    if tags.len() > max {
        return Err(if max == MAX_OBJECT_TAGS {
            S3Error::new(
                "BadRequest",
                StatusCode::BAD_REQUEST,
                "Object tags cannot be greater than 10",
            )
        } else {
            invalid_tag("Bucket tag count cannot be greater than 50")
        });
    }
    for (i, (k, v)) in tags.iter().enumerate() {
        let n = k.chars().count();
        if n == 0 || n > MAX_KEY_CHARS {
            return Err(invalid_tag(
                "The TagKey you have provided is invalid (1 to 128 characters)",
            ));
        }
        if v.chars().count() > MAX_VALUE_CHARS {
            return Err(invalid_tag(
                "The TagValue you have provided is too long, max 256",
            ));
        }
        if !k.chars().all(allowed) {
            return Err(invalid_tag("The TagKey you have provided is invalid"));
        }
        if !v.chars().all(allowed) {
            return Err(invalid_tag("The TagValue you have provided is invalid"));
        }
        if k.starts_with("aws:") {
            return Err(invalid_tag("Your TagKey cannot be prefixed with aws:"));
        }
        if tags[..i].iter().any(|(other, _)| other == k) {
            return Err(invalid_tag(
                "Cannot provide multiple Tags with the same key",
            ));
        }
    }
    Ok(())
}

/// Tags in URL query form (`x-amz-tagging: k1=v1&k2=v2`), as clients send them.
pub fn parse_query(v: &str) -> Result<Tags, S3Error> {
    tags::decode(v).ok_or_else(|| {
        S3Error::invalid_argument(
            "The header 'x-amz-tagging' shall be encoded as UTF-8 then URLEncoded URL query parameters without tag name duplicates.",
        )
    })
}

pub use crate::object::tags::{encode as to_query, of};

/// The tags a write asks for in `x-amz-tagging` (validated), if any.
pub fn requested(ctx: &Ctx) -> Result<Option<Tags>, S3Error> {
    let Some(v) = ctx.header("x-amz-tagging") else {
        return Ok(None);
    };
    let tags = parse_query(v)?;
    validate(&tags, MAX_OBJECT_TAGS)?;
    Ok(Some(tags))
}

#[derive(Serialize)]
#[serde(rename = "Tagging")]
struct TaggingOut {
    #[serde(rename = "@xmlns")]
    xmlns: &'static str,
    #[serde(rename = "TagSet")]
    tag_set: TagSetXml,
}

#[derive(Serialize, Deserialize, Default)]
struct TagSetXml {
    #[serde(rename = "Tag", default)]
    tags: Vec<TagXml>,
}

#[derive(Serialize, Deserialize)]
struct TagXml {
    #[serde(rename = "Key")]
    key: String,
    /// Required, as in S3's `Tag` (an empty value is `<Value></Value>`).
    #[serde(rename = "Value")]
    value: String,
}

#[derive(Deserialize)]
struct TaggingIn {
    #[serde(rename = "TagSet")]
    tag_set: TagSetXml,
}

fn tagging_xml(tags: Tags) -> Result<Response<Body>, S3Error> {
    xml_response(&TaggingOut {
        xmlns: NS,
        tag_set: TagSetXml {
            tags: tags
                .into_iter()
                .map(|(key, value)| TagXml { key, value })
                .collect(),
        },
    })
}

async fn tags_of_body(ctx: &Ctx, body: Body, max: usize) -> Result<Tags, S3Error> {
    let text = small_text(ctx, body).await?;
    let x: TaggingIn = xml::from_xml(&text, "Tagging")?;
    let tags: Tags = x
        .tag_set
        .tags
        .into_iter()
        .map(|t| (t.key, t.value))
        .collect();
    validate(&tags, max)?;
    Ok(tags)
}

/// Set (`Some`) or remove an object version's tags; the version changed.
async fn set_object_tags(
    state: &S3State,
    ctx: &Ctx,
    tags: Option<Tags>,
) -> Result<crate::object::ObjectInfo, S3Error> {
    let (b, k) = bucket_key(ctx)?;
    let value = tags.filter(|t| !t.is_empty()).map(|t| to_query(&t));
    Ok(state
        .store
        .set_object_header(b, k, version_ref(ctx)?, TAGS_HEADER, value)
        .await?)
}

pub async fn get_object(state: &S3State, ctx: &Ctx) -> Result<Response<Body>, S3Error> {
    let (b, k) = bucket_key(ctx)?;
    let info = state.store.head_version(b, k, version_ref(ctx)?).await?;
    let mut r = tagging_xml(of(&info.headers))?;
    version_header(state, &mut r, b, info.version_id).await;
    Ok(r)
}

pub async fn put_object(state: &S3State, ctx: &Ctx, body: Body) -> Result<Response<Body>, S3Error> {
    let tags = tags_of_body(ctx, body, MAX_OBJECT_TAGS).await?;
    let info = set_object_tags(state, ctx, Some(tags)).await?;
    let mut r = empty(StatusCode::OK);
    version_header(state, &mut r, &info.bucket, info.version_id).await;
    Ok(r)
}

pub async fn delete_object(state: &S3State, ctx: &Ctx) -> Result<Response<Body>, S3Error> {
    let info = set_object_tags(state, ctx, None).await?;
    let mut r = empty(StatusCode::NO_CONTENT);
    version_header(state, &mut r, &info.bucket, info.version_id).await;
    Ok(r)
}

pub async fn get_bucket(state: &S3State, ctx: &Ctx) -> Result<Response<Body>, S3Error> {
    let b = bucket(state, ctx).await?;
    if b.config.tags.is_empty() {
        return Err(S3Error::new(
            "NoSuchTagSet",
            StatusCode::NOT_FOUND,
            "The TagSet does not exist",
        ));
    }
    tagging_xml(b.config.tags.clone())
}

pub async fn put_bucket(state: &S3State, ctx: &Ctx, body: Body) -> Result<Response<Body>, S3Error> {
    bucket(state, ctx).await?;
    let tags = tags_of_body(ctx, body, MAX_BUCKET_TAGS).await?;
    update(state, ctx, |c| {
        c.tags = tags;
        Ok(())
    })
    .await?;
    Ok(empty(StatusCode::NO_CONTENT))
}

pub async fn delete_bucket(state: &S3State, ctx: &Ctx) -> Result<Response<Body>, S3Error> {
    update(state, ctx, |c| {
        c.tags.clear();
        Ok(())
    })
    .await?;
    Ok(empty(StatusCode::NO_CONTENT))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tags(pairs: &[(&str, &str)]) -> Tags {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn query_form_round_trips() {
        let t = tags(&[("a b", "c&d=e"), ("ключ", "ü/@:+"), ("empty", "")]);
        assert_eq!(parse_query(&to_query(&t)).expect("parse"), t);
        assert_eq!(
            parse_query("k1=v1&k2=v%202&k3").expect("parse"),
            tags(&[("k1", "v1"), ("k2", "v 2"), ("k3", "")])
        );
        assert!(parse_query("a=1&a=2").is_err(), "duplicate keys");
        assert!(parse_query("a=%ff").is_err(), "not UTF-8");
    }

    #[test]
    fn limits_follow_aws() {
        let code = |t: &Tags, max| validate(t, max).err().map(|e| e.code);
        let ten: Tags = (0..10).map(|i| (format!("k{i}"), "v".into())).collect();
        assert_eq!(code(&ten, MAX_OBJECT_TAGS), None);
        let eleven: Tags = (0..11).map(|i| (format!("k{i}"), "v".into())).collect();
        assert_eq!(code(&eleven, MAX_OBJECT_TAGS), Some("BadRequest"));
        assert_eq!(code(&eleven, MAX_BUCKET_TAGS), None);
        let long_key = tags(&[(&"k".repeat(129), "v")]);
        assert_eq!(code(&long_key, 10), Some("InvalidTag"));
        let max_key = tags(&[(&"é".repeat(128), &"v".repeat(256))]);
        assert_eq!(
            code(&max_key, 10),
            None,
            "limits count characters, not bytes"
        );
        assert_eq!(
            code(&tags(&[("k", &"v".repeat(257))]), 10),
            Some("InvalidTag")
        );
        assert_eq!(code(&tags(&[("", "v")]), 10), Some("InvalidTag"));
        assert_eq!(code(&tags(&[("a*b", "v")]), 10), Some("InvalidTag"));
        assert_eq!(code(&tags(&[("aws:x", "v")]), 10), Some("InvalidTag"));
        assert_eq!(
            code(&tags(&[("a", "1"), ("a", "2")]), 10),
            Some("InvalidTag")
        );
    }
}
