//! Authorization of S3 requests: every operation's IAM action, resource and ACL
//! permission (one table, [`need`]), the request's condition keys, and the decision that
//! combines the identity's policies, the bucket policy, the public access block and ACLs
//! (an explicit Deny anywhere wins; then any Allow; else AccessDenied).

use std::borrow::Cow;
use std::net::IpAddr;
use std::sync::Arc;

use super::error::S3Error;
use super::router::Op;
use super::{Ctx, S3State};
use crate::bucket::Bucket;
use crate::iam::acl::{self, Acl, Permission, Requester};
use crate::iam::{Context, Decision, Identity, Keys, Principal};

/// What a resource an action names is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum On {
    /// `arn:aws:s3:::*`
    Account,
    /// `arn:aws:s3:::bucket`
    Bucket,
    /// `arn:aws:s3:::bucket/key`
    Object,
}

/// What an operation needs: its IAM action, what it acts on, and the ACL permission that
/// grants it (on the bucket's ACL for bucket resources and writes, on the object's for
/// object reads).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Need {
    pub action: &'static str,
    pub on: On,
    pub acl: Option<(On, Permission)>,
}

const fn need(action: &'static str, on: On, acl: Option<(On, Permission)>) -> Need {
    Need { action, on, acl }
}

/// The one table of S3 operations to IAM actions (the AWS list).
pub fn need_of(op: Op, object: bool) -> Need {
    use On::*;
    use Permission::*;
    match op {
        Op::ListBuckets => need("s3:ListAllMyBuckets", Account, None),
        Op::CreateBucket => need("s3:CreateBucket", Bucket, None),
        Op::HeadBucket => need("s3:ListBucket", Bucket, Some((Bucket, Read))),
        Op::DeleteBucket => need("s3:DeleteBucket", Bucket, None),
        Op::GetBucketLocation => need("s3:GetBucketLocation", Bucket, None),
        Op::GetBucketVersioning => need("s3:GetBucketVersioning", Bucket, None),
        Op::PutBucketVersioning => need("s3:PutBucketVersioning", Bucket, None),
        Op::ListObjectVersions => need("s3:ListBucketVersions", Bucket, Some((Bucket, Read))),
        Op::GetObjectTagging => need("s3:GetObjectTagging", Object, None),
        Op::PutObjectTagging => need("s3:PutObjectTagging", Object, None),
        Op::DeleteObjectTagging => need("s3:DeleteObjectTagging", Object, None),
        Op::GetBucketTagging => need("s3:GetBucketTagging", Bucket, None),
        Op::PutBucketTagging | Op::DeleteBucketTagging => need("s3:PutBucketTagging", Bucket, None),
        Op::GetObjectLockConfiguration => need("s3:GetBucketObjectLockConfiguration", Bucket, None),
        Op::PutObjectLockConfiguration => need("s3:PutBucketObjectLockConfiguration", Bucket, None),
        Op::GetObjectRetention => need("s3:GetObjectRetention", Object, None),
        Op::PutObjectRetention => need("s3:PutObjectRetention", Object, None),
        Op::GetObjectLegalHold => need("s3:GetObjectLegalHold", Object, None),
        Op::PutObjectLegalHold => need("s3:PutObjectLegalHold", Object, None),
        Op::GetObjectAttributes => need("s3:GetObjectAttributes", Object, Some((Object, Read))),
        Op::GetBucketLifecycle => need("s3:GetLifecycleConfiguration", Bucket, None),
        Op::PutBucketLifecycle | Op::DeleteBucketLifecycle => {
            need("s3:PutLifecycleConfiguration", Bucket, None)
        }
        Op::GetBucketCors => need("s3:GetBucketCORS", Bucket, None),
        Op::PutBucketCors | Op::DeleteBucketCors => need("s3:PutBucketCORS", Bucket, None),
        Op::GetBucketEncryption => need("s3:GetEncryptionConfiguration", Bucket, None),
        Op::GetBucketNotification => need("s3:GetBucketNotification", Bucket, None),
        Op::PutBucketNotification => need("s3:PutBucketNotification", Bucket, None),
        Op::PutBucketEncryption | Op::DeleteBucketEncryption => {
            need("s3:PutEncryptionConfiguration", Bucket, None)
        }
        Op::GetAcl if object => need("s3:GetObjectAcl", Object, Some((Object, ReadAcp))),
        Op::GetAcl => need("s3:GetBucketAcl", Bucket, Some((Bucket, ReadAcp))),
        Op::PutAcl if object => need("s3:PutObjectAcl", Object, Some((Object, WriteAcp))),
        Op::PutAcl => need("s3:PutBucketAcl", Bucket, Some((Bucket, WriteAcp))),
        Op::ListObjects { .. } => need("s3:ListBucket", Bucket, Some((Bucket, Read))),
        // Each key is authorised as s3:DeleteObject by the handler.
        Op::DeleteObjects => need("s3:DeleteObject", Object, Some((Bucket, Write))),
        // A form upload is authorised as the PutObject it makes, once its form is read.
        Op::PutObject | Op::CopyObject | Op::PostObject => {
            need("s3:PutObject", Object, Some((Bucket, Write)))
        }
        Op::GetObject | Op::HeadObject => need("s3:GetObject", Object, Some((Object, Read))),
        Op::DeleteObject => need("s3:DeleteObject", Object, Some((Bucket, Write))),
        Op::CreateMultipartUpload
        | Op::UploadPart
        | Op::UploadPartCopy
        | Op::CompleteMultipartUpload => need("s3:PutObject", Object, Some((Bucket, Write))),
        Op::AbortMultipartUpload => need("s3:AbortMultipartUpload", Object, Some((Bucket, Write))),
        Op::ListParts => need("s3:ListMultipartUploadParts", Object, Some((Bucket, Read))),
        Op::ListMultipartUploads => need(
            "s3:ListBucketMultipartUploads",
            Bucket,
            Some((Bucket, Read)),
        ),
        Op::GetBucketPolicy => need("s3:GetBucketPolicy", Bucket, None),
        Op::PutBucketPolicy => need("s3:PutBucketPolicy", Bucket, None),
        Op::DeleteBucketPolicy => need("s3:DeleteBucketPolicy", Bucket, None),
        Op::GetBucketPolicyStatus => need("s3:GetBucketPolicyStatus", Bucket, None),
        Op::GetPublicAccessBlock => need("s3:GetBucketPublicAccessBlock", Bucket, None),
        Op::PutPublicAccessBlock | Op::DeletePublicAccessBlock => {
            need("s3:PutBucketPublicAccessBlock", Bucket, None)
        }
        Op::GetOwnershipControls => need("s3:GetBucketOwnershipControls", Bucket, None),
        Op::PutOwnershipControls | Op::DeleteOwnershipControls => {
            need("s3:PutBucketOwnershipControls", Bucket, None)
        }
        // Any authenticated identity may ask for credentials of its own.
        Op::AssumeRole => need("sts:AssumeRole", Account, None),
    }
}

/// Reading or deleting one version by id is its own action.
pub fn versioned(need: Need, ctx: &Ctx) -> Need {
    if !ctx.has_query("versionId") {
        return need;
    }
    Need {
        action: version_action(need.action),
        ..need
    }
}

/// What an action acts on, for the actions of the table above (and their by-version
/// forms); `None` for any other.
pub fn action_target(action: &str) -> Option<On> {
    use std::sync::OnceLock;
    static KNOWN: OnceLock<Vec<(&'static str, On)>> = OnceLock::new();
    let known = KNOWN.get_or_init(|| {
        let mut v = Vec::new();
        for op in Op::ALL {
            for object in [false, true] {
                let n = need_of(op, object);
                v.push((n.action, n.on));
                v.push((version_action(n.action), n.on));
            }
        }
        v
    });
    known
        .iter()
        .find(|(a, _)| a.eq_ignore_ascii_case(action))
        .map(|(_, on)| *on)
}

/// Whether `action` acts on something the resource pattern `pattern` of bucket `bucket`'s
/// policy names (`None`: an action this table does not know).
pub fn action_applies(bucket: &str, action: &str, pattern: &str) -> Option<bool> {
    let arn = format!("arn:aws:s3:::{bucket}");
    let matches =
        |text: &str| crate::iam::policy::wildcard(pattern.as_bytes(), text.as_bytes(), false);
    Some(match action_target(action)? {
        On::Account => false,
        On::Bucket => matches(&arn),
        On::Object => pattern.starts_with(&format!("{arn}/")) || matches(&format!("{arn}/x")),
    })
}

/// The action for one version by id of an object action (the same action if none).
fn version_action(action: &'static str) -> &'static str {
    match action {
        "s3:GetObject" => "s3:GetObjectVersion",
        "s3:DeleteObject" => "s3:DeleteObjectVersion",
        "s3:GetObjectAcl" => "s3:GetObjectVersionAcl",
        "s3:PutObjectAcl" => "s3:PutObjectVersionAcl",
        "s3:GetObjectTagging" => "s3:GetObjectVersionTagging",
        "s3:GetObjectAttributes" => "s3:GetObjectVersionAttributes",
        "s3:PutObjectTagging" => "s3:PutObjectVersionTagging",
        "s3:DeleteObjectTagging" => "s3:DeleteObjectVersionTagging",
        other => other,
    }
}

pub fn arn(bucket: Option<&str>, key: Option<&str>, on: On) -> String {
    match (on, bucket, key) {
        (On::Object, Some(b), Some(k)) => format!("arn:aws:s3:::{b}/{k}"),
        (On::Object, Some(b), None) => format!("arn:aws:s3:::{b}/*"),
        (On::Bucket, Some(b), _) => format!("arn:aws:s3:::{b}"),
        _ => "arn:aws:s3:::*".to_string(),
    }
}

/// A request's condition keys, computed when a policy asks.
pub struct RequestKeys<'a> {
    pub ctx: &'a Ctx,
    pub identity: Option<&'a Identity>,
}

impl Keys for RequestKeys<'_> {
    fn get(&self, key: &str) -> Option<Vec<Cow<'_, str>>> {
        let one = |s: Option<&str>| s.map(|v| vec![Cow::Owned(v.to_string())]);
        let owned = |s: String| Some(vec![Cow::Owned(s)]);
        let ctx = self.ctx;
        match key {
            "aws:sourceip" => ctx.client_ip.map(|ip| vec![Cow::Owned(ip.to_string())]),
            "aws:securetransport" => owned(ctx.secure.to_string()),
            "aws:currenttime" => owned(crate::iam::rfc3339(ctx.now_secs)),
            "aws:epochtime" => owned(ctx.now_secs.to_string()),
            "aws:username" => self
                .identity
                .filter(|i| !i.is_root())
                .map(|i| vec![Cow::Owned(i.user_name().to_string())]),
            "aws:userid" => self
                .identity
                .map(|i| vec![Cow::Owned(i.user_name().to_string())]),
            "aws:principaltype" => owned(
                self.identity
                    .map_or("Anonymous", |i| i.principal_type())
                    .to_string(),
            ),
            "aws:referer" => one(ctx.header("referer")),
            "aws:useragent" => one(ctx.header("user-agent")),
            "s3:prefix" => one(ctx.query("prefix")),
            "s3:delimiter" => one(ctx.query("delimiter")),
            "s3:max-keys" => one(ctx.query("max-keys")),
            "s3:versionid" => one(ctx.query("versionId")),
            "s3:x-amz-acl" => one(ctx.header("x-amz-acl")),
            "s3:x-amz-server-side-encryption" => one(ctx.header("x-amz-server-side-encryption")),
            "s3:x-amz-copy-source" => one(ctx.header("x-amz-copy-source")),
            "s3:x-amz-metadata-directive" => one(ctx.header("x-amz-metadata-directive")),
            "s3:x-amz-storage-class" => one(ctx.header("x-amz-storage-class")),
            "s3:object-lock-mode" => one(ctx.header("x-amz-object-lock-mode")),
            "s3:object-lock-retain-until-date" => {
                one(ctx.header("x-amz-object-lock-retain-until-date"))
            }
            "s3:object-lock-legal-hold" => one(ctx.header("x-amz-object-lock-legal-hold")),
            "s3:signatureversion" => one(if ctx.verified.is_anonymous() {
                None
            } else if ctx
                .header("authorization")
                .is_some_and(|a| a.starts_with("AWS "))
            {
                Some("AWS")
            } else {
                Some("AWS4-HMAC-SHA256")
            }),
            k if k.starts_with("s3:requestobjecttag/") => {
                let want = &k["s3:requestobjecttag/".len()..];
                let tags = ctx.header("x-amz-tagging")?;
                crate::auth::parse_query(tags)
                    .into_iter()
                    .find(|(t, _)| t.eq_ignore_ascii_case(want))
                    .map(|(_, v)| vec![Cow::Owned(v)])
            }
            // Object tags are not stored yet: no existing object has any.
            _ => None,
        }
    }
}

/// Who asks, for ACLs.
fn requester<'a>(identity: Option<&'a Identity>, root_id: &'a str, ids: &'a str) -> Requester<'a> {
    match identity {
        None => Requester::Anonymous,
        Some(i) if i.is_root() => Requester::User(root_id),
        Some(_) => Requester::User(ids),
    }
}

/// One authorization question: may the request's identity do `need` on `bucket/key`?
pub struct Question<'a> {
    pub need: Need,
    pub bucket: Option<&'a str>,
    pub key: Option<&'a str>,
    /// The object's ACL, when the question is about an existing object's.
    pub object_acl: Option<&'a Acl>,
}

/// The combined decision: `Allow`, `NotApplicable` (no Allow anywhere: implicitly
/// denied) or `Deny` (explicitly).
pub fn decide(state: &S3State, ctx: &Ctx, bucket: Option<&Bucket>, q: &Question) -> Decision {
    let identity = ctx.identity.as_deref();
    if identity.is_some_and(|i| i.is_root()) {
        return Decision::Allow;
    }
    let resource = arn(q.bucket, q.key, q.need.on);
    let keys = RequestKeys { ctx, identity };
    let principal = match identity {
        None => Principal::Anonymous,
        Some(i) => i.principal(&ctx.verified.access_key),
    };
    let pctx = Context {
        action: q.need.action,
        resource: &resource,
        principal,
        keys: &keys,
    };
    let mut decision = identity.map_or(Decision::NotApplicable, |i| i.decide(&pctx));
    if decision == Decision::Deny {
        return Decision::Deny;
    }
    let inline_ok = identity.is_none_or(|i| i.inline_allows(&pctx));
    if let Some(b) = bucket {
        let pab = b.public_access_block();
        if let Some(p) = &b.policy {
            let d = p.evaluate(&pctx);
            let restricted = pab.restrict_public_buckets && identity.is_none() && p.is_public();
            match d {
                Decision::Deny => return Decision::Deny,
                Decision::Allow if restricted || !inline_ok => {}
                d => decision = decision.and(d),
            }
        }
        if decision != Decision::Allow && inline_ok && b.config.ownership.acls_enabled() {
            if let Some((on, perm)) = q.need.acl {
                let user_id = identity.map(|i| acl::canonical_id(i.user_name()));
                let who = requester(identity, &state.owner.id, user_id.as_deref().unwrap_or(""));
                let acl = match on {
                    On::Object => q.object_acl,
                    _ => b.config.acl.as_ref(),
                };
                let owner_acl;
                let acl = match acl {
                    Some(a) => a,
                    None => {
                        owner_acl = Acl::private(&state.owner.id);
                        &owner_acl
                    }
                };
                if acl.allows(who, perm, pab.ignore_public_acls) {
                    decision = Decision::Allow;
                }
            }
        }
    }
    if decision == Decision::Allow {
        Decision::Allow
    } else {
        Decision::NotApplicable
    }
}

/// AccessDenied, as S3 says it.
pub fn denied() -> S3Error {
    S3Error::new(
        "AccessDenied",
        http::StatusCode::FORBIDDEN,
        "Access Denied.",
    )
}

/// Decide and turn a refusal into `AccessDenied`.
pub fn require(
    state: &S3State,
    ctx: &Ctx,
    bucket: Option<&Bucket>,
    q: &Question,
) -> Result<(), S3Error> {
    match decide(state, ctx, bucket, q) {
        Decision::Allow => Ok(()),
        _ => Err(denied()),
    }
}

/// Authorise a routed request before its handler runs. Object-level reads that only an
/// object's ACL could allow are decided by [`object_acl_allows`] once the object is read.
pub async fn authorize(state: &S3State, ctx: &Ctx, op: Op) -> Result<AclCheck, S3Error> {
    if ctx.identity.as_ref().is_some_and(|i| i.is_root()) {
        return Ok(AclCheck::Done);
    }
    if op == Op::DeleteObjects {
        // Each key is authorised by the handler.
        return Ok(AclCheck::Done);
    }
    if op == Op::AssumeRole {
        return match ctx.identity {
            Some(_) => Ok(AclCheck::Done),
            // STS's answer to a call without credentials.
            None => Err(S3Error::new(
                "MissingAuthenticationToken",
                http::StatusCode::FORBIDDEN,
                "Request is missing Authentication Token",
            )),
        };
    }
    let need = versioned(need_of(op, ctx.target.key.is_some()), ctx);
    let bucket_name = ctx.target.bucket.as_deref();
    let bucket: Option<Arc<Bucket>> = match bucket_name {
        Some(b) if crate::object::valid_bucket_name(b) && op != Op::CreateBucket => state
            .store
            .buckets()
            .get(b)
            .await
            .map_err(crate::object::ObjectError::from)?,
        _ => None,
    };
    let q = Question {
        need,
        bucket: bucket_name,
        key: ctx.target.key.as_deref(),
        object_acl: None,
    };
    match decide(state, ctx, bucket.as_deref(), &q) {
        Decision::Allow => {}
        Decision::Deny => return Err(denied()),
        Decision::NotApplicable => {
            // An object's own ACL may still allow a read of it or of its ACL.
            let object_acl = matches!(need.acl, Some((On::Object, _)))
                && bucket
                    .as_ref()
                    .is_some_and(|b| b.config.ownership.acls_enabled());
            if object_acl {
                return Ok(AclCheck::Object(need));
            }
            // A missing bucket answers NoSuchBucket to those who could see it, AWS-style
            // AccessDenied to the rest.
            return Err(denied());
        }
    }
    if matches!(op, Op::CopyObject | Op::UploadPartCopy) {
        copy_source_allowed(state, ctx).await?;
    }
    if matches!(
        op,
        Op::PutObject | Op::CopyObject | Op::CreateMultipartUpload
    ) {
        for extra in implied_ops(ctx) {
            let q = Question {
                need: need_of(extra, true),
                bucket: bucket_name,
                key: ctx.target.key.as_deref(),
                object_acl: None,
            };
            require(state, ctx, bucket.as_deref(), &q)?;
        }
    }
    Ok(AclCheck::Done)
}

/// What an object write asks besides the write, each needing its own action as in AWS's
/// PutObject: an ACL that grants anyone but the owner (`s3:PutObjectAcl` — else a user
/// without it could publish objects), tags (`s3:PutObjectTagging`), a retention
/// (`s3:PutObjectRetention`) or a legal hold (`s3:PutObjectLegalHold`). `x-amz-acl:
/// private` (and `bucket-owner-*`), which many clients send with every write, grants
/// nothing more and needs nothing more.
fn implied_ops(ctx: &Ctx) -> Vec<Op> {
    let mut ops = Vec::new();
    let granting = ctx.header("x-amz-acl").is_some_and(|a| {
        let a = a.trim().to_ascii_lowercase();
        a != "private" && !a.starts_with("bucket-owner-")
    }) || GRANT_HEADERS.iter().any(|(h, _)| ctx.header(h).is_some());
    if granting {
        ops.push(Op::PutAcl);
    }
    if ctx.header("x-amz-tagging").is_some() {
        ops.push(Op::PutObjectTagging);
    }
    if ctx.header("x-amz-object-lock-mode").is_some()
        || ctx.header("x-amz-object-lock-retain-until-date").is_some()
    {
        ops.push(Op::PutObjectRetention);
    }
    if ctx.header("x-amz-object-lock-legal-hold").is_some() {
        ops.push(Op::PutObjectLegalHold);
    }
    ops
}

/// What is left to check once the object is read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AclCheck {
    Done,
    Object(Need),
}

/// The copy source must be readable too.
async fn copy_source_allowed(state: &S3State, ctx: &Ctx) -> Result<(), S3Error> {
    let Some(src) = ctx.header("x-amz-copy-source") else {
        return Ok(());
    };
    let src = src.split('?').next().unwrap_or(src);
    let decoded = percent_encoding::percent_decode_str(src.trim_start_matches('/'))
        .decode_utf8_lossy()
        .into_owned();
    let Some((b, k)) = decoded.split_once('/') else {
        return Ok(()); // The handler answers the malformed source.
    };
    let bucket = bucket_of(state, b).await?;
    let mut need = need_of(Op::GetObject, true);
    if ctx
        .header("x-amz-copy-source")
        .is_some_and(|s| s.contains("?versionId="))
    {
        need.action = "s3:GetObjectVersion";
    }
    let q = Question {
        need,
        bucket: Some(b),
        key: Some(k),
        object_acl: None,
    };
    require(state, ctx, bucket.as_deref(), &q)
}

/// `x-amz-expected-bucket-owner` (and a copy's `x-amz-source-expected-bucket-owner`): the
/// request names the owner its bucket must have; a bucket owned by anyone else answers
/// `AccessDenied`, as AWS does. A bucket that does not exist is left to the operation.
pub(super) async fn check_expected_owners(state: &S3State, ctx: &Ctx) -> Result<(), S3Error> {
    let source = match ctx.header("x-amz-source-expected-bucket-owner") {
        Some(owner) => super::copy_source(ctx)
            .ok()
            .map(|(bucket, _, _)| (bucket, owner)),
        None => None,
    };
    let target = ctx
        .header("x-amz-expected-bucket-owner")
        .zip(ctx.target.bucket.clone())
        .map(|(owner, bucket)| (bucket, owner));
    for (bucket, expected) in target.into_iter().chain(source) {
        if let Some(b) = bucket_of(state, &bucket).await? {
            if b.config.owner != expected.trim() {
                return Err(S3Error::new(
                    "AccessDenied",
                    http::StatusCode::FORBIDDEN,
                    "Access Denied",
                ));
            }
        }
    }
    Ok(())
}

/// A bucket's cached configuration (`None`: no such bucket).
pub(super) async fn bucket_of(state: &S3State, name: &str) -> Result<Option<Arc<Bucket>>, S3Error> {
    Ok(state
        .store
        .buckets()
        .get(name)
        .await
        .map_err(crate::object::ObjectError::from)?)
}

/// The headers that grant a permission to a named grantee, and what each grants.
pub(super) const GRANT_HEADERS: [(&str, Permission); 5] = [
    ("x-amz-grant-read", Permission::Read),
    ("x-amz-grant-write", Permission::Write),
    ("x-amz-grant-read-acp", Permission::ReadAcp),
    ("x-amz-grant-write-acp", Permission::WriteAcp),
    ("x-amz-grant-full-control", Permission::FullControl),
];

/// The object's ACL, stored among its headers.
pub const ACL_HEADER: &str = "x-cairn-acl";

pub fn object_acl(headers: &std::collections::BTreeMap<String, String>) -> Option<Acl> {
    headers
        .get(ACL_HEADER)
        .and_then(|v| serde_json::from_str(v).ok())
}

/// Decide a request [`authorize`] left to the object's ACL.
pub async fn object_acl_allows(state: &S3State, ctx: &Ctx, need: Need) -> Result<(), S3Error> {
    let (Some(b), Some(k)) = (ctx.target.bucket.as_deref(), ctx.target.key.as_deref()) else {
        return Err(denied());
    };
    let info = match state.store.head_object(b, k).await {
        Ok(i) => i,
        // Without permission to read it, a missing object is AccessDenied (as AWS).
        Err(_) => return Err(denied()),
    };
    let acl = object_acl(&info.headers).unwrap_or_else(|| Acl::private(&state.owner.id));
    let bucket = bucket_of(state, b).await?;
    let q = Question {
        need,
        bucket: Some(b),
        key: Some(k),
        object_acl: Some(&acl),
    };
    require(state, ctx, bucket.as_deref(), &q)
}

/// The client's address.
pub fn client_ip(parts: &http::request::Parts) -> Option<IpAddr> {
    parts
        .extensions
        .get::<crate::conn::ClientAddr>()
        .map(|a| a.0.ip())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_known_action_acts_on_one_kind_of_resource() {
        for op in Op::ALL {
            for object in [false, true] {
                let n = need_of(op, object);
                assert_eq!(action_target(n.action), Some(n.on), "{}", n.action);
                assert_eq!(action_target(version_action(n.action)), Some(n.on));
            }
        }
    }

    #[test]
    fn actions_apply_to_the_resources_of_their_kind() {
        let a = |action, pattern| action_applies("b", action, pattern);
        assert_eq!(a("s3:ListBucket", "arn:aws:s3:::b/*"), Some(false));
        assert_eq!(a("s3:listbucket", "arn:aws:s3:::b/*"), Some(false));
        assert_eq!(a("s3:ListBucket", "arn:aws:s3:::b"), Some(true));
        assert_eq!(a("s3:ListBucket", "arn:aws:s3:::*"), Some(true));
        assert_eq!(a("s3:ListBucket", "arn:aws:s3:::b*"), Some(true));
        assert_eq!(a("s3:GetObject", "arn:aws:s3:::b"), Some(false));
        assert_eq!(a("s3:GetObject", "arn:aws:s3:::b/photos/*"), Some(true));
        assert_eq!(a("s3:GetObjectVersion", "arn:aws:s3:::b/k"), Some(true));
        assert_eq!(a("s3:GetObject", "arn:aws:s3:::b*"), Some(true));
        assert_eq!(a("s3:ListAllMyBuckets", "arn:aws:s3:::b"), Some(false));
        // Actions this table does not know are not judged.
        assert_eq!(
            a("s3:GetReplicationConfiguration", "arn:aws:s3:::b/*"),
            None
        );
    }

    #[test]
    fn a_bucket_policy_whose_action_fits_no_resource_is_refused() {
        let check = |doc: &str| {
            crate::iam::Policy::parse_resource_policy(doc, "b")
                .expect("parses")
                .check_actions_apply(|a, p| action_applies("b", a, p))
        };
        let stmt = |action: &str, resource: &str| {
            format!(
                r#"{{"Version":"2012-10-17","Statement":[{{"Effect":"Allow","Principal":"*","Action":{action},"Resource":{resource}}}]}}"#
            )
        };
        assert!(check(&stmt(r#""s3:ListBucket""#, r#""arn:aws:s3:::b/*""#)).is_err());
        assert!(check(&stmt(
            r#"["s3:GetObject","s3:ListBucket"]"#,
            r#""arn:aws:s3:::b/*""#
        ))
        .is_err());
        for (action, resource) in [
            (r#""s3:ListBucket""#, r#""arn:aws:s3:::b""#),
            (
                r#"["s3:GetObject","s3:ListBucket"]"#,
                r#"["arn:aws:s3:::b","arn:aws:s3:::b/*"]"#,
            ),
            (r#""s3:*""#, r#""arn:aws:s3:::b/*""#),
            (r#""s3:Get*""#, r#""arn:aws:s3:::b""#),
            (
                r#""s3:GetReplicationConfiguration""#,
                r#""arn:aws:s3:::b/*""#,
            ),
            (r#""s3:GetObject""#, r#""arn:aws:s3:::b/${aws:username}/*""#),
        ] {
            assert!(
                check(&stmt(action, resource)).is_ok(),
                "{action} on {resource}"
            );
        }
    }
}
