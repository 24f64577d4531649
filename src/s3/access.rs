//! Access settings of buckets and objects: bucket policies and their status, public
//! access blocks, object ownership controls, ACLs (canned, grant headers and
//! AccessControlPolicy bodies), and STS AssumeRole.

use std::collections::BTreeMap;

use axum::body::Body;
use http::{Response, StatusCode};
use serde::{Deserialize, Serialize};

use super::error::S3Error;
use super::xml::{self, NS};
use super::{body, empty, xml_response, Ctx, S3State};
use crate::bucket::{BucketError, ObjectOwnership, PublicAccessBlock};
use crate::iam::acl::{self, Acl, Grant, Grantee, Permission};
use crate::iam::policy::Policy;
use crate::object::ObjectError;

fn bucket_name(ctx: &Ctx) -> Result<&str, S3Error> {
    ctx.target
        .bucket
        .as_deref()
        .ok_or_else(|| S3Error::invalid_request("missing bucket"))
}

pub(super) async fn bucket(
    state: &S3State,
    ctx: &Ctx,
) -> Result<std::sync::Arc<crate::bucket::Bucket>, S3Error> {
    let name = bucket_name(ctx)?;
    if !crate::object::valid_bucket_name(name) {
        return Err(S3Error::no_such_bucket());
    }
    state
        .store
        .buckets()
        .get(name)
        .await
        .map_err(ObjectError::from)?
        .ok_or_else(S3Error::no_such_bucket)
}

fn bucket_error(e: BucketError) -> S3Error {
    match e {
        BucketError::Invalid(m) => S3Error::invalid_request(m),
        e => ObjectError::from(e).into(),
    }
}

pub(super) async fn update<F>(state: &S3State, ctx: &Ctx, change: F) -> Result<(), S3Error>
where
    F: FnOnce(&mut crate::bucket::BucketConfig) -> Result<(), BucketError>,
{
    bucket(state, ctx).await?;
    state
        .store
        .buckets()
        .update(bucket_name(ctx)?, change)
        .await
        .map_err(bucket_error)?;
    Ok(())
}

/// PUT of a bucket configuration subresource: the body (at most `limit` bytes of UTF-8)
/// parsed and validated by `parse`, then stored in the bucket's record by `set`.
pub(super) async fn put_config<T>(
    state: &S3State,
    ctx: &Ctx,
    body: Body,
    limit: usize,
    parse: impl FnOnce(&str) -> Result<T, S3Error>,
    set: impl FnOnce(&mut crate::bucket::BucketConfig, T),
) -> Result<Response<Body>, S3Error> {
    bucket(state, ctx).await?;
    let raw = body::read_small(body, &ctx.verified, &ctx.headers, limit).await?;
    let text = String::from_utf8(raw).map_err(|_| S3Error::malformed_xml())?;
    let value = parse(&text)?;
    update(state, ctx, |c| {
        set(c, value);
        Ok(())
    })
    .await?;
    Ok(empty(StatusCode::OK))
}

/// DELETE of a bucket configuration subresource: `clear` removes it from the record.
pub(super) async fn delete_config(
    state: &S3State,
    ctx: &Ctx,
    clear: impl FnOnce(&mut crate::bucket::BucketConfig),
) -> Result<Response<Body>, S3Error> {
    update(state, ctx, |c| {
        clear(c);
        Ok(())
    })
    .await?;
    Ok(empty(StatusCode::NO_CONTENT))
}

/// A configuration body (at most 64 KiB of UTF-8).
pub(super) async fn small_text(ctx: &Ctx, body: Body) -> Result<String, S3Error> {
    let raw = body::read_small(body, &ctx.verified, &ctx.headers, 64 * 1024).await?;
    String::from_utf8(raw).map_err(|_| S3Error::malformed_xml())
}

// ---- bucket policy ----

pub async fn get_policy(state: &S3State, ctx: &Ctx) -> Result<Response<Body>, S3Error> {
    let b = bucket(state, ctx).await?;
    let Some(p) = &b.config.policy else {
        return Err(S3Error::new(
            "NoSuchBucketPolicy",
            StatusCode::NOT_FOUND,
            "The bucket policy does not exist",
        ));
    };
    let mut r = Response::new(Body::from(p.clone()));
    r.headers_mut().insert(
        "content-type",
        http::HeaderValue::from_static("application/json"),
    );
    Ok(r)
}

pub async fn put_policy(state: &S3State, ctx: &Ctx, body: Body) -> Result<Response<Body>, S3Error> {
    let b = bucket(state, ctx).await?;
    let raw = body::read_small(
        body,
        &ctx.verified,
        &ctx.headers,
        crate::iam::policy::MAX_POLICY_SIZE + 1,
    )
    .await?;
    let text = String::from_utf8(raw).map_err(|_| malformed_policy("not UTF-8"))?;
    let policy =
        Policy::parse_resource_policy(&text, &b.config.name).map_err(|e| malformed_policy(&e.0))?;
    policy
        .check_actions_apply(|action, pattern| {
            super::authz::action_applies(&b.config.name, action, pattern)
        })
        .map_err(|e| malformed_policy(&e.0))?;
    if policy.is_public() && b.public_access_block().block_public_policy {
        return Err(S3Error::new(
            "AccessDenied",
            StatusCode::FORBIDDEN,
            "Access Denied: the public access block of the bucket blocks public policies",
        ));
    }
    update(state, ctx, |c| {
        c.policy = Some(text);
        Ok(())
    })
    .await?;
    Ok(empty(StatusCode::NO_CONTENT))
}

fn malformed_policy(why: &str) -> S3Error {
    S3Error::new("MalformedPolicy", StatusCode::BAD_REQUEST, why.to_string())
}

pub async fn delete_policy(state: &S3State, ctx: &Ctx) -> Result<Response<Body>, S3Error> {
    update(state, ctx, |c| {
        c.policy = None;
        Ok(())
    })
    .await?;
    Ok(empty(StatusCode::NO_CONTENT))
}

#[derive(Serialize)]
#[serde(rename = "PolicyStatus")]
struct PolicyStatusXml {
    #[serde(rename = "@xmlns")]
    xmlns: &'static str,
    #[serde(rename = "IsPublic")]
    is_public: bool,
}

pub async fn policy_status(state: &S3State, ctx: &Ctx) -> Result<Response<Body>, S3Error> {
    let b = bucket(state, ctx).await?;
    let Some(p) = &b.policy else {
        return Err(S3Error::new(
            "NoSuchBucketPolicy",
            StatusCode::NOT_FOUND,
            "The bucket policy does not exist",
        ));
    };
    xml_response(&PolicyStatusXml {
        xmlns: NS,
        is_public: p.is_public(),
    })
}

// ---- public access block ----

#[derive(Serialize, Deserialize, Default)]
#[serde(rename = "PublicAccessBlockConfiguration")]
struct PublicAccessBlockXml {
    #[serde(rename = "@xmlns", default, skip_deserializing)]
    xmlns: &'static str,
    #[serde(rename = "BlockPublicAcls", default)]
    block_public_acls: bool,
    #[serde(rename = "IgnorePublicAcls", default)]
    ignore_public_acls: bool,
    #[serde(rename = "BlockPublicPolicy", default)]
    block_public_policy: bool,
    #[serde(rename = "RestrictPublicBuckets", default)]
    restrict_public_buckets: bool,
}

pub async fn get_public_access_block(
    state: &S3State,
    ctx: &Ctx,
) -> Result<Response<Body>, S3Error> {
    let b = bucket(state, ctx).await?;
    let Some(p) = b.config.public_access_block else {
        return Err(S3Error::new(
            "NoSuchPublicAccessBlockConfiguration",
            StatusCode::NOT_FOUND,
            "The public access block configuration was not found",
        ));
    };
    xml_response(&PublicAccessBlockXml {
        xmlns: NS,
        block_public_acls: p.block_public_acls,
        ignore_public_acls: p.ignore_public_acls,
        block_public_policy: p.block_public_policy,
        restrict_public_buckets: p.restrict_public_buckets,
    })
}

pub async fn put_public_access_block(
    state: &S3State,
    ctx: &Ctx,
    body: Body,
) -> Result<Response<Body>, S3Error> {
    bucket(state, ctx).await?;
    let text = small_text(ctx, body).await?;
    let x: PublicAccessBlockXml = xml::from_xml(&text, "PublicAccessBlockConfiguration")?;
    let pab = PublicAccessBlock {
        block_public_acls: x.block_public_acls,
        ignore_public_acls: x.ignore_public_acls,
        block_public_policy: x.block_public_policy,
        restrict_public_buckets: x.restrict_public_buckets,
    };
    update(state, ctx, |c| {
        c.public_access_block = Some(pab);
        Ok(())
    })
    .await?;
    Ok(empty(StatusCode::OK))
}

pub async fn delete_public_access_block(
    state: &S3State,
    ctx: &Ctx,
) -> Result<Response<Body>, S3Error> {
    update(state, ctx, |c| {
        c.public_access_block = None;
        Ok(())
    })
    .await?;
    Ok(empty(StatusCode::NO_CONTENT))
}

// ---- ownership controls ----

#[derive(Serialize, Deserialize)]
#[serde(rename = "OwnershipControls")]
struct OwnershipControlsXml {
    #[serde(rename = "@xmlns", default, skip_deserializing)]
    xmlns: &'static str,
    #[serde(rename = "Rule")]
    rules: Vec<OwnershipRule>,
}

#[derive(Serialize, Deserialize)]
struct OwnershipRule {
    #[serde(rename = "ObjectOwnership")]
    object_ownership: String,
}

pub async fn get_ownership(state: &S3State, ctx: &Ctx) -> Result<Response<Body>, S3Error> {
    let b = bucket(state, ctx).await?;
    if b.config.ownership_removed {
        return Err(S3Error::new(
            "OwnershipControlsNotFoundError",
            StatusCode::NOT_FOUND,
            "The bucket ownership controls were not found",
        ));
    }
    xml_response(&OwnershipControlsXml {
        xmlns: NS,
        rules: vec![OwnershipRule {
            object_ownership: b.config.ownership.as_str().to_string(),
        }],
    })
}

pub async fn put_ownership(
    state: &S3State,
    ctx: &Ctx,
    body: Body,
) -> Result<Response<Body>, S3Error> {
    bucket(state, ctx).await?;
    let text = small_text(ctx, body).await?;
    let x: OwnershipControlsXml = xml::from_xml(&text, "OwnershipControls")?;
    let [rule] = x.rules.as_slice() else {
        return Err(S3Error::malformed_xml());
    };
    let o = ObjectOwnership::parse(&rule.object_ownership).ok_or_else(S3Error::malformed_xml)?;
    update(state, ctx, |c| {
        c.ownership = o;
        c.ownership_removed = false;
        Ok(())
    })
    .await?;
    Ok(empty(StatusCode::OK))
}

pub async fn delete_ownership(state: &S3State, ctx: &Ctx) -> Result<Response<Body>, S3Error> {
    update(state, ctx, |c| {
        c.ownership = ObjectOwnership::ObjectWriter;
        c.ownership_removed = true;
        Ok(())
    })
    .await?;
    Ok(empty(StatusCode::NO_CONTENT))
}

// ---- ACLs ----

fn acl_not_supported() -> S3Error {
    S3Error::new(
        "AccessControlListNotSupported",
        StatusCode::BAD_REQUEST,
        "The bucket does not allow ACLs",
    )
}

/// A grantee of a grant header: `id="..."`, `uri="..."`; e-mail grantees cannot be
/// resolved here.
fn parse_grantee(s: &str) -> Result<Grantee, S3Error> {
    let (kind, value) = s
        .trim()
        .split_once('=')
        .ok_or_else(|| S3Error::invalid_argument(format!("invalid grantee {s:?}")))?;
    let value = value.trim().trim_matches('"').to_string();
    match kind.trim().to_ascii_lowercase().as_str() {
        "id" => Ok(Grantee::User(value)),
        "uri"
            if [acl::ALL_USERS, acl::AUTHENTICATED_USERS, acl::LOG_DELIVERY]
                .contains(&value.as_str()) =>
        {
            Ok(Grantee::Group(value))
        }
        "emailaddress" => Err(S3Error::new(
            "UnresolvableGrantByEmailAddress",
            StatusCode::BAD_REQUEST,
            "The e-mail address you provided does not match any account on record.",
        )),
        _ => Err(S3Error::invalid_argument(format!("invalid grantee {s:?}"))),
    }
}

/// The ACL a request's `x-amz-acl` or `x-amz-grant-*` headers ask for, if any.
/// `owner` owns the resource, `bucket_owner` its bucket.
pub fn requested_acl(ctx: &Ctx, owner: &str, bucket_owner: &str) -> Result<Option<Acl>, S3Error> {
    let canned = ctx.header("x-amz-acl");
    let grants: Vec<(&str, Permission, &str)> = super::authz::GRANT_HEADERS
        .iter()
        .filter_map(|(h, p)| ctx.header(h).map(|v| (*h, *p, v)))
        .collect();
    match (canned, grants.is_empty()) {
        (Some(_), false) => Err(S3Error::invalid_request(
            "Specifying both Canned ACLs and Header Grants is not allowed",
        )),
        (Some(c), true) => Acl::canned(c, owner, bucket_owner)
            .map(Some)
            .ok_or_else(|| S3Error::invalid_argument(format!("unknown canned ACL {c:?}"))),
        (None, true) => Ok(None),
        (None, false) => {
            let mut acl = Acl {
                owner: owner.to_string(),
                grants: Vec::new(),
            };
            for (_, permission, value) in grants {
                for g in value.split(',').filter(|g| !g.trim().is_empty()) {
                    acl.grants.push(Grant {
                        grantee: parse_grantee(g)?,
                        permission,
                    });
                }
            }
            Ok(Some(acl))
        }
    }
}

/// Check an ACL a write carries against the bucket's settings: refused when ACLs are
/// disabled (unless it is what BucketOwnerEnforced means anyway) or when the public access
/// block blocks public ACLs.
pub fn admit_acl(b: &crate::bucket::Bucket, acl: &Acl, ctx: &Ctx) -> Result<(), S3Error> {
    if !b.config.ownership.acls_enabled() {
        let harmless = matches!(
            ctx.header("x-amz-acl"),
            Some("private" | "bucket-owner-full-control")
        );
        if !harmless || acl.is_public() {
            return Err(acl_not_supported());
        }
    }
    if acl.is_public() && b.public_access_block().block_public_acls {
        return Err(S3Error::new(
            "AccessDenied",
            StatusCode::FORBIDDEN,
            "Access Denied: the public access block of the bucket blocks public ACLs",
        ));
    }
    Ok(())
}

/// The stored form of the ACL an object write asks for (`None`: none asked, the object
/// gets the owner-only default). Refused as the bucket's settings say.
pub async fn object_write_acl(state: &S3State, ctx: &Ctx) -> Result<Option<String>, S3Error> {
    let owner = state.owner.id.clone();
    let Some(acl) = requested_acl(ctx, &owner, &owner)? else {
        return Ok(None);
    };
    let b = bucket(state, ctx).await?;
    admit_acl(&b, &acl, ctx)?;
    if !b.config.ownership.acls_enabled() {
        return Ok(None);
    }
    Ok(Some(serde_json::to_string(&acl).unwrap_or_default()))
}

/// The configuration of a bucket a CreateBucket request asks for.
pub fn new_bucket_config(
    state: &S3State,
    ctx: &Ctx,
    name: &str,
) -> Result<crate::bucket::BucketConfig, S3Error> {
    let ownership = match ctx.header("x-amz-object-ownership") {
        Some(v) => ObjectOwnership::parse(v).ok_or_else(|| {
            S3Error::invalid_argument(format!("invalid x-amz-object-ownership {v:?}"))
        })?,
        None => state.default_ownership,
    };
    let owner = state.owner.id.clone();
    let mut config = crate::bucket::BucketConfig::new(name, 0, &owner, ownership);
    if let Some(acl) = requested_acl(ctx, &owner, &owner)? {
        if !ownership.acls_enabled() && acl != Acl::private(&owner) {
            return Err(acl_not_supported());
        }
        if ownership.acls_enabled() {
            config.acl = Some(acl);
        }
    }
    Ok(config)
}

#[derive(Serialize, Deserialize)]
#[serde(rename = "AccessControlPolicy")]
struct AclXml {
    #[serde(rename = "@xmlns", default, skip_deserializing)]
    xmlns: &'static str,
    #[serde(rename = "Owner", default)]
    owner: Option<xml::OwnerIn>,
    #[serde(rename = "AccessControlList", default)]
    list: GrantsXml,
}

#[derive(Serialize, Deserialize, Default)]
struct GrantsXml {
    #[serde(rename = "Grant", default)]
    grants: Vec<GrantXml>,
}

#[derive(Serialize, Deserialize)]
struct GrantXml {
    #[serde(rename = "Grantee")]
    grantee: GranteeXml,
    #[serde(rename = "Permission")]
    permission: String,
}

#[derive(Serialize, Deserialize, Default)]
struct GranteeXml {
    #[serde(rename = "@xmlns:xsi", default, skip_deserializing)]
    xmlns_xsi: &'static str,
    #[serde(rename = "@xsi:type", alias = "@type", default)]
    kind: String,
    #[serde(rename = "ID", default, skip_serializing_if = "Option::is_none")]
    id: Option<String>,
    #[serde(
        rename = "DisplayName",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    display_name: Option<String>,
    #[serde(rename = "URI", default, skip_serializing_if = "Option::is_none")]
    uri: Option<String>,
    #[serde(
        rename = "EmailAddress",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    email: Option<String>,
}

fn acl_from_xml(text: &str, owner: &str) -> Result<Acl, S3Error> {
    let x: AclXml = xml::from_xml(text, "AccessControlPolicy")?;
    if let Some(o) = &x.owner {
        if o.id.as_deref().is_some_and(|id| id != owner) {
            return Err(S3Error::new(
                "AccessDenied",
                StatusCode::FORBIDDEN,
                "Access Denied: the ACL names another owner",
            ));
        }
    }
    let mut acl = Acl {
        owner: owner.to_string(),
        grants: Vec::new(),
    };
    for g in x.list.grants {
        let permission = Permission::parse(&g.permission).ok_or_else(S3Error::malformed_xml)?;
        let grantee = match (g.grantee.id, g.grantee.uri, g.grantee.email) {
            (Some(id), None, None) => Grantee::User(id),
            (None, Some(uri), None) => parse_grantee(&format!("uri={uri}"))?,
            (None, None, Some(e)) => parse_grantee(&format!("emailAddress={e}"))?,
            _ => return Err(S3Error::malformed_xml()),
        };
        acl.grants.push(Grant {
            grantee,
            permission,
        });
    }
    Ok(acl)
}

fn acl_to_xml(acl: &Acl, state: &S3State) -> AclXml {
    let name_of = |id: &str| {
        if id == state.owner.id {
            Some(state.owner.display_name.clone())
        } else {
            None
        }
    };
    AclXml {
        xmlns: NS,
        owner: Some(xml::OwnerIn {
            id: Some(acl.owner.clone()),
            display_name: name_of(&acl.owner),
        }),
        list: GrantsXml {
            grants: acl
                .grants
                .iter()
                .map(|g| GrantXml {
                    grantee: match &g.grantee {
                        Grantee::User(id) => GranteeXml {
                            xmlns_xsi: "http://www.w3.org/2001/XMLSchema-instance",
                            kind: "CanonicalUser".into(),
                            id: Some(id.clone()),
                            display_name: name_of(id),
                            ..Default::default()
                        },
                        Grantee::Group(uri) => GranteeXml {
                            xmlns_xsi: "http://www.w3.org/2001/XMLSchema-instance",
                            kind: "Group".into(),
                            uri: Some(uri.clone()),
                            ..Default::default()
                        },
                    },
                    permission: g.permission.as_str().to_string(),
                })
                .collect(),
        },
    }
}

pub async fn get_acl(state: &S3State, ctx: &Ctx) -> Result<Response<Body>, S3Error> {
    let b = bucket(state, ctx).await?;
    let acl = match &ctx.target.key {
        Some(key) => {
            let which = super::version_ref(ctx)?;
            let info = state.store.head_version(&b.config.name, key, which).await?;
            super::authz::object_acl(&info.headers)
        }
        None => b.config.acl.clone(),
    }
    .unwrap_or_else(|| Acl::private(&state.owner.id));
    xml_response(&acl_to_xml(&acl, state))
}

pub async fn put_acl(state: &S3State, ctx: &Ctx, body: Body) -> Result<Response<Body>, S3Error> {
    let b = bucket(state, ctx).await?;
    let owner = state.owner.id.clone();
    let text = small_text(ctx, body).await?;
    let acl = match requested_acl(ctx, &owner, &owner)? {
        Some(a) if text.trim().is_empty() => a,
        Some(_) => {
            return Err(S3Error::invalid_request(
                "Specify an ACL either in headers or in the body, not both",
            ))
        }
        None if text.trim().is_empty() => {
            return Err(S3Error::new(
                "MissingSecurityHeader",
                StatusCode::BAD_REQUEST,
                "Your request was missing a required header: x-amz-acl",
            ))
        }
        None => acl_from_xml(&text, &owner)?,
    };
    if !b.config.ownership.acls_enabled() {
        // BucketOwnerEnforced: only the ACL every object has anyway.
        if acl != Acl::private(&owner) {
            return Err(acl_not_supported());
        }
        return Ok(empty(StatusCode::OK));
    }
    admit_acl(&b, &acl, ctx)?;
    match &ctx.target.key {
        Some(key) => {
            let value = serde_json::to_string(&acl).unwrap_or_default();
            let which = super::version_ref(ctx)?;
            state
                .store
                .set_object_header(
                    &b.config.name,
                    key,
                    which,
                    super::authz::ACL_HEADER,
                    Some(value),
                )
                .await?;
        }
        None => {
            update(state, ctx, |c| {
                c.acl = Some(acl);
                Ok(())
            })
            .await?
        }
    }
    Ok(empty(StatusCode::OK))
}

// ---- STS ----

#[derive(Serialize)]
#[serde(rename = "AssumeRoleResponse")]
struct AssumeRoleResponse {
    #[serde(rename = "@xmlns")]
    xmlns: &'static str,
    #[serde(rename = "AssumeRoleResult")]
    result: AssumeRoleResult,
    #[serde(rename = "ResponseMetadata")]
    metadata: ResponseMetadata,
}

#[derive(Serialize)]
struct AssumeRoleResult {
    #[serde(rename = "Credentials")]
    credentials: CredentialsXml,
    #[serde(rename = "AssumedRoleUser")]
    user: AssumedRoleUser,
}

#[derive(Serialize)]
struct CredentialsXml {
    #[serde(rename = "AccessKeyId")]
    access_key: String,
    #[serde(rename = "SecretAccessKey")]
    secret_key: String,
    #[serde(rename = "SessionToken")]
    token: String,
    #[serde(rename = "Expiration")]
    expiration: String,
}

#[derive(Serialize)]
struct AssumedRoleUser {
    #[serde(rename = "Arn")]
    arn: String,
    #[serde(rename = "AssumedRoleId")]
    id: String,
}

#[derive(Serialize)]
struct ResponseMetadata {
    #[serde(rename = "RequestId")]
    request_id: String,
}

#[derive(Serialize)]
#[serde(rename = "ErrorResponse")]
struct StsErrorXml<'a> {
    #[serde(rename = "@xmlns")]
    xmlns: &'static str,
    #[serde(rename = "Error")]
    error: StsErrorBody<'a>,
    #[serde(rename = "RequestId")]
    request_id: &'a str,
}

#[derive(Serialize)]
struct StsErrorBody<'a> {
    #[serde(rename = "Type")]
    kind: &'static str,
    #[serde(rename = "Code")]
    code: &'a str,
    #[serde(rename = "Message")]
    message: &'a str,
}

/// An error of an STS call, in the query protocol's shape (`ErrorResponse`).
pub fn sts_error_response(e: &S3Error, request_id: &str) -> Response<Body> {
    let body = xml::to_xml(&StsErrorXml {
        xmlns: "https://sts.amazonaws.com/doc/2011-06-15/",
        error: StsErrorBody {
            kind: if e.status.is_server_error() {
                "Receiver"
            } else {
                "Sender"
            },
            code: e.code,
            message: &e.message,
        },
        request_id,
    })
    .unwrap_or_default();
    let mut r = Response::new(Body::from(body));
    *r.status_mut() = e.status;
    r.headers_mut()
        .insert("content-type", http::HeaderValue::from_static("text/xml"));
    r
}

fn sts_error(code: &'static str, message: impl Into<String>) -> S3Error {
    S3Error::new(code, StatusCode::BAD_REQUEST, message)
}

/// AWS's constraints on AssumeRole's parameters, checked as STS does (`ValidationError`).
/// `RoleArn` and `RoleSessionName` may be left out (MinIO's clients do; the session is the
/// caller's own user), but when given they must have AWS's shape, so a request that would
/// fail against AWS fails here too.
fn check_sts_params(params: &BTreeMap<String, String>) -> Result<(), S3Error> {
    let invalid = |field: &str, value: &str, rule: &str| {
        // The value is the caller's own, but a session policy can be long: name it only.
        let shown = if field == "policy" {
            String::new()
        } else {
            format!(" '{value}'")
        };
        Err(sts_error(
            "ValidationError",
            format!("1 validation error detected: Value{shown} at '{field}' failed to satisfy constraint: {rule}"),
        ))
    };
    if let Some(name) = params.get("RoleSessionName") {
        let n = name.chars().count();
        if !(2..=64).contains(&n) {
            return invalid(
                "roleSessionName",
                name,
                "Member must have length between 2 and 64",
            );
        }
        let allowed = |c: char| c.is_ascii_alphanumeric() || "_+=,.@-".contains(c);
        if !name.chars().all(allowed) {
            return invalid(
                "roleSessionName",
                name,
                "Member must satisfy regular expression pattern: [\\w+=,.@-]*",
            );
        }
    }
    if let Some(arn) = params.get("RoleArn") {
        let n = arn.chars().count();
        if !(20..=2048).contains(&n) {
            return invalid(
                "roleArn",
                arn,
                "Member must have length between 20 and 2048",
            );
        }
    }
    if let Some(policy) = params.get("Policy") {
        if policy.chars().count() > 2048 {
            return invalid(
                "policy",
                policy,
                "Member must have length less than or equal to 2048",
            );
        }
    }
    Ok(())
}

pub async fn assume_role(
    state: &S3State,
    ctx: &Ctx,
    body: Body,
) -> Result<Response<Body>, S3Error> {
    let Some(identity) = ctx.identity.clone() else {
        return Err(super::authz::denied());
    };
    if !ctx.verified.sts {
        return Err(sts_error(
            "InvalidParameterValue",
            "STS requests must be signed for the service 'sts'",
        ));
    }
    let raw = body::read_small(body, &ctx.verified, &ctx.headers, 64 * 1024).await?;
    let form =
        String::from_utf8(raw).map_err(|_| sts_error("InvalidParameterValue", "not UTF-8"))?;
    let mut params: BTreeMap<String, String> =
        crate::auth::parse_query(&form).into_iter().collect();
    for (k, v) in &ctx.query {
        params.entry(k.clone()).or_insert_with(|| v.clone());
    }
    match params.get("Action").map(String::as_str) {
        Some("AssumeRole") => {}
        Some(other) => {
            return Err(sts_error(
                "InvalidAction",
                format!("Could not find operation {other} for version 2011-06-15"),
            ))
        }
        None => return Err(sts_error("MissingAction", "Missing Action")),
    }
    // Clients send the API version they speak; another would read our answer wrongly.
    match params.get("Version").map(String::as_str) {
        Some("2011-06-15") => {}
        other => {
            return Err(sts_error(
                "InvalidAction",
                format!(
                    "Could not find operation AssumeRole for version {}",
                    other.unwrap_or("NO_VERSION_SPECIFIED")
                ),
            ))
        }
    }
    let duration = match params.get("DurationSeconds") {
        Some(d) => Some(std::time::Duration::from_secs(d.parse::<u64>().map_err(
            |_| sts_error("InvalidParameterValue", "DurationSeconds must be a number"),
        )?)),
        None => None,
    };
    check_sts_params(&params)?;
    let policy = params.get("Policy").map(String::as_str);
    let key = state
        .iam
        .assume_role(&identity, duration, policy)
        .await
        .map_err(|e| match e {
            crate::iam::IamError::Invalid(m) => sts_error("InvalidParameterValue", m),
            crate::iam::IamError::Policy(e) => sts_error("MalformedPolicyDocument", e.0),
            e => {
                tracing::warn!(error = %e, "AssumeRole failed");
                S3Error::internal()
            }
        })?;
    let session = params
        .get("RoleSessionName")
        .cloned()
        .unwrap_or_else(|| "cairn".into());
    xml_response(&AssumeRoleResponse {
        xmlns: "https://sts.amazonaws.com/doc/2011-06-15/",
        result: AssumeRoleResult {
            credentials: CredentialsXml {
                access_key: key.access_key.clone(),
                secret_key: key.secret_key,
                token: key.session_token.unwrap_or_default(),
                expiration: key.expiry.unwrap_or_default(),
            },
            user: AssumedRoleUser {
                arn: format!(
                    "arn:aws:sts:::assumed-role/{}/{session}",
                    identity.user_name()
                ),
                id: format!("{}:{session}", key.access_key),
            },
        },
        metadata: ResponseMetadata {
            request_id: ctx.request_id.clone(),
        },
    })
}
