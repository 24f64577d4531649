//! Bucket versioning: its configuration (`?versioning`) and the version listing
//! (`?versions`). What a version is, and how writes, reads and deletes treat versions,
//! belongs to the object layer; this maps it to S3's XML.

use axum::body::Body;
use http::{Response, StatusCode};

use super::access::{bucket, small_text, update};
use super::bucket::{listing_params, url_encode, ListingParams};
use super::error::S3Error;
use super::xml::{self, NS};
use super::{empty, iso8601, parse_version, version_str, xml_response, Ctx, S3State};
use crate::bucket::Versioning;
use crate::object::ListOptions;

fn status_name(v: Option<Versioning>) -> Option<&'static str> {
    v.map(|v| match v {
        Versioning::Enabled => "Enabled",
        Versioning::Suspended => "Suspended",
    })
}

pub async fn get(state: &S3State, ctx: &Ctx) -> Result<Response<Body>, S3Error> {
    let b = bucket(state, ctx).await?;
    xml_response(&xml::VersioningConfiguration {
        xmlns: NS,
        status: status_name(b.config.versioning),
    })
}

pub async fn put(state: &S3State, ctx: &Ctx, body: Body) -> Result<Response<Body>, S3Error> {
    let b = bucket(state, ctx).await?;
    let text = small_text(ctx, body).await?;
    let x: xml::VersioningIn = xml::from_xml(&text, "VersioningConfiguration")?;
    match x.mfa_delete.as_deref() {
        None | Some("Disabled") => {}
        Some("Enabled") => return Err(S3Error::not_implemented("MFA delete")),
        Some(_) => return Err(S3Error::malformed_xml()),
    }
    let state_wanted = match x.status.as_deref() {
        Some("Enabled") => Versioning::Enabled,
        Some("Suspended") => Versioning::Suspended,
        // No status: nothing to change (as S3 answers an empty configuration).
        None => return Ok(empty(StatusCode::OK)),
        Some(_) => return Err(S3Error::malformed_xml()),
    };
    if b.config.object_lock.is_some() && state_wanted != Versioning::Enabled {
        return Err(S3Error::new(
            "InvalidBucketState",
            StatusCode::CONFLICT,
            "An Object Lock configuration is present on this bucket, so the versioning state cannot be changed.",
        ));
    }
    update(state, ctx, |c| {
        c.versioning = Some(state_wanted);
        Ok(())
    })
    .await?;
    Ok(empty(StatusCode::OK))
}

/// `ListObjectVersions`: every version and delete marker, in key order, newest first.
pub async fn list(state: &S3State, ctx: &Ctx) -> Result<Response<Body>, S3Error> {
    let name = bucket(state, ctx).await?.config.name.clone();
    let ListingParams {
        max_keys,
        url,
        prefix,
        delimiter,
    } = listing_params(ctx)?;
    let key_marker = ctx.query("key-marker").unwrap_or("").to_string();
    let version_marker = match ctx.query("version-id-marker").filter(|v| !v.is_empty()) {
        None => None,
        Some(_) if key_marker.is_empty() => {
            return Err(S3Error::invalid_argument(
                "A version-id marker cannot be specified without a key marker.",
            ))
        }
        Some(v) => Some(parse_version(v)?),
    };
    let page = state
        .store
        .list_versions(
            &name,
            &ListOptions {
                prefix: prefix.clone(),
                delimiter: delimiter.clone(),
                start_after: key_marker.clone(),
                max_keys,
                every_key: false,
                pool: None,
            },
            version_marker,
        )
        .await?;
    let enc = |s: String| if url { url_encode(&s) } else { s };
    let entries = page
        .versions
        .into_iter()
        .map(|(v, is_latest)| {
            let (key, version_id) = (enc(v.key.clone()), version_str(v.version_id));
            let last_modified = iso8601(v.mod_time);
            let owner = state.owner.clone();
            if v.delete_marker {
                xml::VersionEntry::DeleteMarker(xml::DeleteMarkerXml {
                    key,
                    version_id,
                    is_latest,
                    last_modified,
                    owner,
                })
            } else {
                xml::VersionEntry::Version(xml::VersionXml {
                    key,
                    version_id,
                    is_latest,
                    last_modified,
                    etag: format!("\"{}\"", v.etag),
                    size: super::sse::plain_size(&v),
                    storage_class: crate::object::storage_class(&v.headers),
                    owner,
                })
            }
        })
        .collect();
    xml_response(&xml::ListVersionsResult {
        xmlns: NS,
        name,
        prefix: enc(prefix),
        key_marker: enc(key_marker),
        version_id_marker: ctx.query("version-id-marker").unwrap_or("").to_string(),
        next_key_marker: page.next_key_marker.map(enc),
        next_version_id_marker: page.next_version_marker.map(version_str),
        max_keys,
        delimiter: delimiter.map(enc),
        encoding_type: url.then_some("url"),
        is_truncated: page.truncated,
        entries,
        common_prefixes: page
            .common_prefixes
            .into_iter()
            .map(|p| xml::CommonPrefixXml { prefix: enc(p) })
            .collect(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions_and_markers_interleave_in_listing_order() {
        let owner = xml::Owner {
            id: "o".into(),
            display_name: "o".into(),
        };
        let body = xml::to_xml(&xml::ListVersionsResult {
            xmlns: NS,
            name: "b".into(),
            prefix: String::new(),
            key_marker: String::new(),
            version_id_marker: String::new(),
            next_key_marker: None,
            next_version_id_marker: None,
            max_keys: 1000,
            delimiter: None,
            encoding_type: None,
            is_truncated: false,
            entries: vec![
                xml::VersionEntry::DeleteMarker(xml::DeleteMarkerXml {
                    key: "a".into(),
                    version_id: "2".into(),
                    is_latest: true,
                    last_modified: "t".into(),
                    owner: owner.clone(),
                }),
                xml::VersionEntry::Version(xml::VersionXml {
                    key: "a".into(),
                    version_id: "1".into(),
                    is_latest: false,
                    last_modified: "t".into(),
                    etag: "\"e\"".into(),
                    size: 3,
                    storage_class: "STANDARD",
                    owner,
                }),
            ],
            common_prefixes: vec![],
        })
        .expect("xml");
        let marker = body
            .find("<DeleteMarker><Key>a</Key><VersionId>2</VersionId><IsLatest>true</IsLatest>");
        let version =
            body.find("<Version><Key>a</Key><VersionId>1</VersionId><IsLatest>false</IsLatest>");
        assert!(marker.is_some() && version.is_some(), "{body}");
        assert!(marker < version, "{body}");
        assert!(body.contains("<IsTruncated>false</IsTruncated>"), "{body}");
    }
}
