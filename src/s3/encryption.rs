//! Bucket default encryption (`?encryption`): one rule, SSE-S3 or SSE-KMS, kept in the
//! bucket's configuration record; uploads that ask for no encryption get it.

use axum::body::Body;
use http::{Response, StatusCode};
use serde::{Deserialize, Serialize};

use super::access::{bucket, delete_config, put_config};
use super::error::S3Error;
use super::xml::{self, NS};
use super::{xml_response, Ctx, S3State};
use crate::bucket::DefaultEncryption;

const MAX_BODY: usize = 16 * 1024;

#[derive(Serialize, Deserialize, Default)]
#[serde(rename = "ServerSideEncryptionConfiguration")]
struct ConfigXml {
    #[serde(rename = "@xmlns", default, skip_deserializing)]
    xmlns: &'static str,
    #[serde(rename = "Rule", default)]
    rules: Vec<RuleXml>,
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct RuleXml {
    #[serde(rename = "ApplyServerSideEncryptionByDefault")]
    default: Option<ByDefaultXml>,
    #[serde(
        rename = "BucketKeyEnabled",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    bucket_key: Option<bool>,
    /// Newer AWS field (which encryption types writes may ask for): refused, not honoured.
    #[serde(rename = "BlockedEncryptionTypes", default, skip_serializing)]
    blocked: Option<serde::de::IgnoredAny>,
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct ByDefaultXml {
    #[serde(rename = "SSEAlgorithm")]
    algorithm: String,
    #[serde(
        rename = "KMSMasterKeyID",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    kms_key_id: Option<String>,
}

fn invalid(msg: &str) -> S3Error {
    S3Error::new("InvalidArgument", StatusCode::BAD_REQUEST, msg)
}

fn parse(state: &S3State, text: &str) -> Result<DefaultEncryption, S3Error> {
    let x: ConfigXml = xml::from_xml(text, "ServerSideEncryptionConfiguration")?;
    let [rule] = <[RuleXml; 1]>::try_from(x.rules).map_err(|_| {
        S3Error::new(
            "MalformedXML",
            StatusCode::BAD_REQUEST,
            "A server-side encryption configuration has exactly one Rule.",
        )
    })?;
    if rule.blocked.is_some() {
        return Err(S3Error::new(
            "NotImplemented",
            StatusCode::NOT_IMPLEMENTED,
            "BlockedEncryptionTypes is not implemented.",
        ));
    }
    let d = rule.default.ok_or_else(|| {
        S3Error::new(
            "MalformedXML",
            StatusCode::BAD_REQUEST,
            "ApplyServerSideEncryptionByDefault is required.",
        )
    })?;
    let kms_key_id = d
        .kms_key_id
        .map(|k| k.trim().rsplit('/').next().unwrap_or_default().to_string())
        .filter(|k| !k.is_empty());
    let algorithm = match d.algorithm.as_str() {
        "AES256" if kms_key_id.is_some() => {
            return Err(invalid(
                "a KMSMasterKeyID is allowed only with SSEAlgorithm aws:kms.",
            ))
        }
        "AES256" | "aws:kms" => d.algorithm,
        "aws:kms:dsse" => {
            return Err(S3Error::new(
                "NotImplemented",
                StatusCode::NOT_IMPLEMENTED,
                "Dual-layer server-side encryption (aws:kms:dsse) is not implemented.",
            ))
        }
        _ => {
            return Err(invalid(
                "The SSEAlgorithm is not valid: use AES256 or aws:kms.",
            ))
        }
    };
    // The KMS must be able to serve the rule now, not fail every later upload.
    let kms = state.kms.as_ref().ok_or_else(|| {
        S3Error::new(
            "NotImplemented",
            StatusCode::NOT_IMPLEMENTED,
            "Server side encryption specified but KMS is not configured (CAIRN_KMS_SECRET_KEY).",
        )
    })?;
    if let Some(k) = &kms_key_id {
        if !kms.has_key(k) {
            return Err(S3Error::new(
                "KMS.NotFoundException",
                StatusCode::BAD_REQUEST,
                format!("Key '{k}' does not exist."),
            ));
        }
    }
    Ok(DefaultEncryption {
        algorithm,
        kms_key_id,
        bucket_key: rule.bucket_key.unwrap_or(false),
    })
}

pub async fn get(state: &S3State, ctx: &Ctx) -> Result<Response<Body>, S3Error> {
    let b = bucket(state, ctx).await?;
    let Some(e) = &b.config.encryption else {
        return Err(S3Error::new(
            "ServerSideEncryptionConfigurationNotFoundError",
            StatusCode::NOT_FOUND,
            "The server side encryption configuration was not found",
        ));
    };
    xml_response(&ConfigXml {
        xmlns: NS,
        rules: vec![RuleXml {
            default: Some(ByDefaultXml {
                algorithm: e.algorithm.clone(),
                kms_key_id: e.kms_key_id.clone(),
            }),
            bucket_key: Some(e.bucket_key),
            blocked: None,
        }],
    })
}

pub async fn put(state: &S3State, ctx: &Ctx, body: Body) -> Result<Response<Body>, S3Error> {
    put_config(
        state,
        ctx,
        body,
        MAX_BODY,
        |t| parse(state, t),
        |c, v| c.encryption = Some(v),
    )
    .await
}

pub async fn delete(state: &S3State, ctx: &Ctx) -> Result<Response<Body>, S3Error> {
    delete_config(state, ctx, |c| c.encryption = None).await
}
