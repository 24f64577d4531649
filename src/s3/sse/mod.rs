//! Server-side encryption on the S3 surface: which encryption a request asks for (SSE-S3,
//! SSE-KMS, SSE-C) with AWS's errors, the envelope stored with an object (in its
//! `x-cairn-sse*` headers, never shown to clients), the upload reader that seals a body
//! before the store erasure-codes it, and the stream that opens a download — only the
//! packages a range needs.
//!
//! The stored object is the ciphertext: its size is [`crate::sse::encrypted_size`] of the
//! plaintext's, which is where the plaintext size is read back from ([`plain_size`]).

use std::collections::BTreeMap;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use base64::Engine;
use bytes::Bytes;
use futures::{Stream, StreamExt, TryStreamExt};
use http::StatusCode;
use md5::Digest;
use parking_lot::Mutex;
use tokio::io::{AsyncRead, ReadBuf};

use super::error::S3Error;
use super::{Ctx, S3State};
use crate::auth::chunked::BodyError;
use crate::kms::KmsError;
use crate::object::ObjectInfo;
use crate::sse::{self as format, CipherRange, Decryptor, Encryptor, ObjectKey, PackageKey};

use crate::sse::envelope::{binding, BUCKET_KEY, CONTEXT, CUSTOMER_MD5, KEY_ID, KIND, SEALED};

/// Where a multipart upload's part keeps its salt (hex), in the part's metadata.
const PART_SALT: &str = "sse-salt";

/// Prefix of the SSE-C headers of the object a request addresses.
pub const CUSTOMER: &str = "x-amz-server-side-encryption-customer-";
/// Prefix of the SSE-C headers of a copy's source.
pub const COPY_SOURCE_CUSTOMER: &str = "x-amz-copy-source-server-side-encryption-customer-";

/// How an object is encrypted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    S3,
    Kms,
    Customer,
}

impl Kind {
    fn stored(self) -> &'static str {
        match self {
            Kind::S3 => "AES256",
            Kind::Kms => "aws:kms",
            Kind::Customer => "SSE-C",
        }
    }
}

/// What a write asks for.
#[derive(Debug)]
pub enum Requested {
    None,
    /// SSE-S3 or SSE-KMS: a data key from the KMS.
    Managed {
        kind: Kind,
        key_id: String,
        /// `x-amz-server-side-encryption-context` as sent (base64 JSON), echoed back.
        context: Option<String>,
        bucket_key: bool,
    },
    /// SSE-C: the client's key (never stored) and its MD5 (echoed back).
    Customer(CustomerKey),
}

pub struct CustomerKey {
    key: [u8; 32],
    md5: String,
}

impl std::fmt::Debug for CustomerKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CustomerKey")
            .field("md5", &self.md5)
            .finish_non_exhaustive()
    }
}

fn invalid(msg: &str) -> S3Error {
    S3Error::new("InvalidArgument", StatusCode::BAD_REQUEST, msg)
}

fn kms_error(e: KmsError) -> S3Error {
    match e {
        KmsError::NotConfigured => S3Error::new(
            "NotImplemented",
            StatusCode::NOT_IMPLEMENTED,
            "Server side encryption specified but KMS is not configured (CAIRN_KMS_SECRET_KEY).",
        ),
        KmsError::NoSuchKey(k) => S3Error::new(
            "KMS.NotFoundException",
            StatusCode::BAD_REQUEST,
            format!("Key '{k}' does not exist."),
        ),
        KmsError::Unverified(k) => {
            tracing::debug!(key = k, "a seal waits for the KMS key's check");
            S3Error::new(
                "ServiceUnavailable",
                StatusCode::SERVICE_UNAVAILABLE,
                format!("KMS key '{k}' is not checked against this deployment's record of it yet; retry shortly."),
            )
        }
        KmsError::Mismatch(k) => S3Error::new(
            "KMS.KMSInvalidStateException",
            StatusCode::BAD_REQUEST,
            format!("KMS key '{k}' is not the key this deployment sealed with under that name."),
        ),
        KmsError::Unseal => S3Error::new(
            "InternalError",
            StatusCode::INTERNAL_SERVER_ERROR,
            "The object's sealed key does not open under the KMS key it names: the key's bytes differ from those it was sealed with, or the object's metadata was damaged.",
        ),
        other => {
            tracing::error!(error = %other, "KMS call failed");
            S3Error::internal()
        }
    }
}

/// `CAIRN_SSE_C_INSECURE=on` (tests only): SSE-C keys accepted over plain HTTP. Read once,
/// not on every request.
fn sse_c_insecure() -> bool {
    static ON: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    *ON.get_or_init(|| std::env::var("CAIRN_SSE_C_INSECURE").as_deref() == Ok("on"))
}

/// The SSE-C key headers under `prefix`, all three or none, checked as AWS checks them.
pub fn customer_key(ctx: &Ctx, prefix: &str) -> Result<Option<CustomerKey>, S3Error> {
    let h = |n: &str| ctx.header(&format!("{prefix}{n}"));
    let (alg, key, md5) = (h("algorithm"), h("key"), h("key-md5"));
    if alg.is_none() && key.is_none() && md5.is_none() {
        return Ok(None);
    }
    let Some(alg) = alg else {
        return Err(invalid("Requests specifying Server Side Encryption with Customer provided keys must provide a valid encryption algorithm."));
    };
    if alg != "AES256" {
        return Err(S3Error::new(
            "InvalidEncryptionAlgorithmError",
            StatusCode::BAD_REQUEST,
            "The encryption request you specified is not valid. The valid value is AES256.",
        ));
    }
    let Some(key) = key else {
        return Err(invalid("Requests specifying Server Side Encryption with Customer provided keys must provide an appropriate secret key."));
    };
    let Some(md5) = md5 else {
        return Err(invalid("Requests specifying Server Side Encryption with Customer provided keys must provide the client calculated MD5 of the secret key."));
    };
    let b64 = base64::engine::general_purpose::STANDARD;
    let key: [u8; 32] = b64
        .decode(key.trim())
        .ok()
        .and_then(|k| <[u8; 32]>::try_from(k).ok())
        .ok_or_else(|| invalid("The secret key was invalid for the specified algorithm."))?;
    let want = b64.encode(md5::Md5::digest(key));
    if md5.trim() != want {
        return Err(invalid(
            "The calculated MD5 hash of the key did not match the hash that was provided.",
        ));
    }
    if !ctx.secure && !sse_c_insecure() {
        return Err(S3Error::invalid_request(
            "Requests specifying Server Side Encryption with Customer provided keys must be made over a secure connection.",
        ));
    }
    Ok(Some(CustomerKey { key, md5: want }))
}

/// The encryption a write asks for, checked against the KMS.
pub fn requested(state: &S3State, ctx: &Ctx) -> Result<Requested, S3Error> {
    let sse = ctx.header("x-amz-server-side-encryption");
    let key_id = ctx.header("x-amz-server-side-encryption-aws-kms-key-id");
    let context = ctx.header("x-amz-server-side-encryption-context");
    let bucket_key = match ctx.header("x-amz-server-side-encryption-bucket-key-enabled") {
        None => false,
        Some(v) if v.eq_ignore_ascii_case("true") => true,
        Some(v) if v.eq_ignore_ascii_case("false") => false,
        Some(_) => {
            return Err(invalid(
                "x-amz-server-side-encryption-bucket-key-enabled must be true or false.",
            ))
        }
    };
    let customer = customer_key(ctx, CUSTOMER)?;
    if let Some(c) = customer {
        if sse.is_some() || key_id.is_some() || context.is_some() {
            return Err(invalid("Server Side Encryption with Customer provided key is incompatible with the encryption method specified."));
        }
        return Ok(Requested::Customer(c));
    }
    let kind = match sse {
        None if key_id.is_none() && context.is_none() && !bucket_key => return Ok(Requested::None),
        None => {
            return Err(invalid(
                "Specifying KMS settings requires x-amz-server-side-encryption: aws:kms.",
            ))
        }
        Some("AES256") => Kind::S3,
        Some("aws:kms") => Kind::Kms,
        Some("aws:kms:dsse") => {
            return Err(S3Error::new(
                "NotImplemented",
                StatusCode::NOT_IMPLEMENTED,
                "Dual-layer server-side encryption (aws:kms:dsse) is not implemented.",
            ))
        }
        Some(_) => return Err(invalid("The encryption method specified is not supported.")),
    };
    if kind == Kind::S3 && (key_id.is_some() || context.is_some()) {
        return Err(invalid(
            "Specifying KMS settings requires x-amz-server-side-encryption: aws:kms.",
        ));
    }
    if let Some(c) = context {
        let ok = base64::engine::general_purpose::STANDARD
            .decode(c.trim())
            .ok()
            .and_then(|j| serde_json::from_slice::<BTreeMap<String, String>>(&j).ok())
            .is_some();
        if !ok {
            return Err(invalid(
                "The encryption context must be base64-encoded JSON of string pairs.",
            ));
        }
    }
    let kms = state
        .kms
        .as_ref()
        .ok_or(KmsError::NotConfigured)
        .map_err(kms_error)?;
    // A key id may be given as an ARN (`arn:aws:kms:...:key/<id>`): the id is its end.
    let key_id = match key_id.map(|k| k.rsplit('/').next().unwrap_or(k).trim()) {
        Some(k) if kind == Kind::Kms => {
            if !kms.has_key(k) {
                return Err(kms_error(KmsError::NoSuchKey(k.to_string())));
            }
            k.to_string()
        }
        _ => kms
            .default_key()
            .ok_or(KmsError::NotConfigured)
            .map_err(kms_error)?
            .to_string(),
    };
    Ok(Requested::Managed {
        kind,
        key_id,
        context: context.map(str::to_string),
        bucket_key,
    })
}

impl Requested {
    /// The encryption asked for, if any.
    pub fn kind(&self) -> Option<Kind> {
        match self {
            Requested::None => None,
            Requested::Managed { kind, .. } => Some(*kind),
            Requested::Customer(_) => Some(Kind::Customer),
        }
    }
}

/// Drop a stored envelope from headers being copied to a new object (which gets its own,
/// or none).
pub fn strip(headers: &mut BTreeMap<String, String>) {
    headers.retain(|k, _| !k.starts_with(KIND));
}

/// What a write gets: what it asked for, else its bucket's default encryption.
pub async fn for_write(state: &S3State, ctx: &Ctx, bucket: &str) -> Result<Requested, S3Error> {
    let asked = requested(state, ctx)?;
    if !matches!(asked, Requested::None) {
        return Ok(asked);
    }
    // A bucket whose settings cannot be read fails the write (it might ask for
    // encryption); one that does not exist is answered for by the write itself.
    let b = match state.store.buckets().get(bucket).await {
        Ok(Some(b)) => b,
        Ok(None) => return Ok(Requested::None),
        Err(e) => return Err(crate::object::ObjectError::from(e).into()),
    };
    let Some(d) = &b.config.encryption else {
        return Ok(Requested::None);
    };
    let kms = state
        .kms
        .as_ref()
        .ok_or(KmsError::NotConfigured)
        .map_err(kms_error)?;
    let key_id = match &d.kms_key_id {
        Some(k) => k.clone(),
        None => kms
            .default_key()
            .ok_or(KmsError::NotConfigured)
            .map_err(kms_error)?
            .to_string(),
    };
    Ok(Requested::Managed {
        kind: if d.algorithm == "aws:kms" {
            Kind::Kms
        } else {
            Kind::S3
        },
        key_id,
        context: None,
        bucket_key: d.bucket_key,
    })
}

/// The headers that store an object's encryption (its sealed key and how to open it).
pub type EnvelopeHeaders = BTreeMap<String, String>;

/// A new object key for `bucket/key` as `req` asks, and the headers that store it sealed.
pub fn seal(
    state: &S3State,
    req: &Requested,
    bucket: &str,
    key: &str,
) -> Result<Option<(ObjectKey, EnvelopeHeaders)>, S3Error> {
    let b64 = base64::engine::general_purpose::STANDARD;
    let mut h = BTreeMap::new();
    let object = match req {
        Requested::None => return Ok(None),
        Requested::Managed {
            kind,
            key_id,
            context,
            bucket_key,
        } => {
            let kms = state
                .kms
                .as_ref()
                .ok_or(KmsError::NotConfigured)
                .map_err(kms_error)?;
            let dk = kms
                .generate_data_key(Some(key_id), &binding(bucket, key))
                .map_err(kms_error)?;
            h.insert(KIND.into(), kind.stored().into());
            h.insert(KEY_ID.into(), dk.key_id.clone());
            h.insert(SEALED.into(), b64.encode(&dk.sealed));
            if let Some(c) = context {
                h.insert(CONTEXT.into(), c.clone());
            }
            if *bucket_key {
                h.insert(BUCKET_KEY.into(), "true".into());
            }
            ObjectKey::from_bytes(dk.plaintext)
        }
        Requested::Customer(c) => {
            let object = ObjectKey::random().map_err(|_| S3Error::internal())?;
            let sealed = format::seal_with_customer_key(&c.key, &object, &binding(bucket, key))
                .map_err(|_| S3Error::internal())?;
            h.insert(KIND.into(), Kind::Customer.stored().into());
            h.insert(SEALED.into(), b64.encode(sealed));
            h.insert(CUSTOMER_MD5.into(), c.md5.clone());
            object
        }
    };
    Ok(Some((object, h)))
}

/// How a stored object is encrypted.
#[derive(Debug, Clone)]
pub struct Envelope {
    pub kind: Kind,
    key_id: Option<String>,
    sealed: Vec<u8>,
    context: Option<String>,
    customer_md5: Option<String>,
    bucket_key: bool,
}

/// The envelope in an object's stored headers (`None`: stored in the clear).
pub fn envelope(info: &ObjectInfo) -> Result<Option<Envelope>, S3Error> {
    envelope_in(&info.headers, &info.key)
}

/// The envelope in the stored headers of `key` (an object's, or a multipart upload's).
pub fn envelope_in(h: &BTreeMap<String, String>, key: &str) -> Result<Option<Envelope>, S3Error> {
    let Some(kind) = h.get(KIND) else {
        return Ok(None);
    };
    let kind = match kind.as_str() {
        "AES256" => Kind::S3,
        "aws:kms" => Kind::Kms,
        "SSE-C" => Kind::Customer,
        other => {
            tracing::error!(kind = other, key, "unknown encryption in metadata");
            return Err(S3Error::internal());
        }
    };
    let sealed = h
        .get(SEALED)
        .and_then(|s| base64::engine::general_purpose::STANDARD.decode(s).ok())
        .ok_or_else(|| {
            tracing::error!(key, "encrypted object without a sealed key");
            S3Error::internal()
        })?;
    Ok(Some(Envelope {
        kind,
        key_id: h.get(KEY_ID).cloned(),
        sealed,
        context: h.get(CONTEXT).cloned(),
        customer_md5: h.get(CUSTOMER_MD5).cloned(),
        bucket_key: h.contains_key(BUCKET_KEY),
    }))
}

/// Whether an object is stored encrypted.
pub fn is_encrypted(info: &ObjectInfo) -> bool {
    info.headers.contains_key(KIND)
}

/// The size clients see: the plaintext's (of an encrypted object, the sum of its parts').
pub fn plain_size(info: &ObjectInfo) -> u64 {
    if !is_encrypted(info) {
        return info.size;
    }
    if info.parts.is_empty() {
        return format::plain_size(info.size).unwrap_or(0);
    }
    plain_parts(info).iter().map(|(_, n)| n).sum()
}

/// (part number, size) of each part as clients see them: the plaintext's.
pub fn plain_parts(info: &ObjectInfo) -> Vec<(u32, u64)> {
    if !is_encrypted(info) {
        return info.parts.clone();
    }
    info.parts
        .iter()
        .map(|&(n, stored)| (n, format::plain_size(stored).unwrap_or(0)))
        .collect()
}

/// The plaintext size of an uploaded part (stored encrypted when it has a salt).
pub fn plain_part_size(stored: u64, meta: &BTreeMap<String, String>) -> u64 {
    if meta.contains_key(PART_SALT) {
        format::plain_size(stored).unwrap_or(0)
    } else {
        stored
    }
}

/// A new salt for an uploaded part: its key and the part metadata that keeps the salt.
pub fn salted_part_key(
    key: &ObjectKey,
    number: u32,
) -> Result<(PackageKey, BTreeMap<String, String>), S3Error> {
    let salt = format::part_salt().map_err(|_| S3Error::internal())?;
    let meta = BTreeMap::from([(PART_SALT.to_string(), hex::encode(salt))]);
    Ok((key.part_key(number, &salt), meta))
}

/// The key of part `number` as stored: salted (a multipart upload's part) or not.
fn stored_part_key(
    key: &ObjectKey,
    number: u32,
    meta: Option<&BTreeMap<String, String>>,
) -> Result<PackageKey, S3Error> {
    let salt = match meta.and_then(|m| m.get(PART_SALT)) {
        None => Vec::new(),
        Some(h) => hex::decode(h).map_err(|_| {
            tracing::error!(part = number, "unreadable part salt in metadata");
            S3Error::internal()
        })?,
    };
    Ok(key.part_key(number, &salt))
}

/// One part's share of a decrypted read.
pub struct Segment {
    key: PackageKey,
    range: CipherRange,
    /// Plaintext bytes wanted from the segment, and the part's plaintext size.
    len: u64,
    size: u64,
    /// Offset of `range` in the object's stored bytes.
    at: u64,
}

/// How to read `len` plaintext bytes from `start` of an encrypted object: the stored
/// bytes to read (one contiguous range) and the parts they cross.
pub fn plan(
    info: &ObjectInfo,
    key: &ObjectKey,
    start: u64,
    len: u64,
) -> Result<(crate::object::ByteRange, Vec<Segment>), S3Error> {
    let single = [(1, info.size)];
    let parts: &[(u32, u64)] = if info.parts.is_empty() {
        &single
    } else {
        &info.parts
    };
    let end = start.saturating_add(len);
    let (mut plain_at, mut stored_at) = (0u64, 0u64);
    let mut first: Option<u64> = None;
    let mut total = 0u64;
    let mut segments = Vec::new();
    for (i, &(number, stored)) in parts.iter().enumerate() {
        let size = format::plain_size(stored).ok_or_else(|| {
            tracing::error!(key = %info.key, part = number, stored, "encrypted part of impossible size");
            S3Error::internal()
        })?;
        let (lo, hi) = (plain_at, plain_at + size);
        // An empty read (of an empty object) still opens the first part's final package.
        let wanted = if len == 0 {
            i == 0
        } else {
            start < hi && end > lo
        };
        if wanted {
            let from = start.max(lo) - lo;
            let to = end.min(hi) - lo;
            let range = format::cipher_range(from, to.saturating_sub(from), size);
            first.get_or_insert(stored_at + range.start);
            total += range.len;
            segments.push(Segment {
                key: stored_part_key(key, number, info.part_meta.get(i))?,
                range,
                len: to.saturating_sub(from),
                size,
                at: stored_at + range.start,
            });
        }
        plain_at = hi;
        stored_at += stored;
    }
    let Some(first) = first else {
        return Err(S3Error::invalid_range());
    };
    Ok((
        crate::object::ByteRange {
            start: first,
            len: total,
        },
        segments,
    ))
}

/// The key to read `info` with, given the request's SSE-C headers under `prefix` (the
/// object's own, or a copy source's). `Ok(None)`: stored in the clear.
pub fn open(
    state: &S3State,
    ctx: &Ctx,
    info: &ObjectInfo,
    prefix: &str,
) -> Result<Option<(Envelope, ObjectKey)>, S3Error> {
    open_headers(state, ctx, &info.headers, &info.bucket, &info.key, prefix)
}

/// [`open`] for the stored headers of `bucket/key`: an object's or a multipart upload's
/// (whose parts are sealed under the key its upload was started with).
pub fn open_headers(
    state: &S3State,
    ctx: &Ctx,
    headers: &BTreeMap<String, String>,
    bucket: &str,
    key: &str,
    prefix: &str,
) -> Result<Option<(Envelope, ObjectKey)>, S3Error> {
    let env = envelope_in(headers, key)?;
    let customer = customer_key(ctx, prefix)?;
    let not_applicable =
        || S3Error::invalid_request("The encryption parameters are not applicable to this object.");
    let Some(env) = env else {
        return match customer {
            Some(_) => Err(not_applicable()),
            None => Ok(None),
        };
    };
    let bound = binding(bucket, key);
    let object = key;
    let key = match (env.kind, customer) {
        (Kind::Customer, Some(c)) => format::open_with_customer_key(&c.key, &env.sealed, &bound)
            .map_err(|_| {
                S3Error::new(
                    "AccessDenied",
                    StatusCode::FORBIDDEN,
                    "The provided customer key does not match the key the object was encrypted with.",
                )
            })?,
        (Kind::Customer, None) => {
            return Err(S3Error::invalid_request(
                "The object was stored using a form of Server Side Encryption. The correct parameters must be provided to retrieve the object.",
            ))
        }
        (_, Some(_)) => return Err(not_applicable()),
        (_, None) => {
            let kms = state.kms.as_ref().ok_or(KmsError::NotConfigured).map_err(kms_error)?;
            let key_id = env.key_id.as_deref().unwrap_or_default();
            let plain = kms.decrypt(key_id, &env.sealed, &bound).map_err(|e| {
                if e == KmsError::Unseal {
                    tracing::error!(key = object, "the object key does not unseal");
                }
                kms_error(e)
            })?;
            ObjectKey::from_bytes(plain)
        }
    };
    Ok(Some((env, key)))
}

/// The response headers that describe an object's encryption.
pub fn response_headers(env: &Envelope) -> Vec<(&'static str, String)> {
    let mut v = Vec::new();
    match env.kind {
        Kind::S3 => v.push(("x-amz-server-side-encryption", "AES256".to_string())),
        Kind::Kms => {
            v.push(("x-amz-server-side-encryption", "aws:kms".to_string()));
            if let Some(k) = &env.key_id {
                v.push(("x-amz-server-side-encryption-aws-kms-key-id", k.clone()));
            }
            if let Some(c) = &env.context {
                v.push(("x-amz-server-side-encryption-context", c.clone()));
            }
        }
        Kind::Customer => {
            v.push((
                "x-amz-server-side-encryption-customer-algorithm",
                "AES256".to_string(),
            ));
            if let Some(m) = &env.customer_md5 {
                v.push(("x-amz-server-side-encryption-customer-key-md5", m.clone()));
            }
        }
    }
    if env.bucket_key {
        v.push((
            "x-amz-server-side-encryption-bucket-key-enabled",
            "true".to_string(),
        ));
    }
    v
}

/// An upload body sealed on its way to the store: reads plaintext from `inner`, yields
/// packages. At the end it checks `Content-MD5` against the plaintext and, for SSE-S3,
/// leaves the plaintext's MD5 in `etag` (AWS's ETag of an SSE-S3 object).
pub struct EncryptingBody<'a> {
    inner: &'a mut (dyn AsyncRead + Unpin + Send),
    enc: Option<Encryptor>,
    md5: Option<md5::Md5>,
    expected_md5: Option<[u8; 16]>,
    etag: Option<Arc<Mutex<Option<String>>>>,
    input: Vec<u8>,
    out: Vec<u8>,
    pos: usize,
}

impl<'a> EncryptingBody<'a> {
    /// Seal `inner` under `key` for a store write with `opts`: the write's Content-MD5 is
    /// checked here, on the plaintext, and the ETag is given here, so the store does not
    /// hash the ciphertext: an SSE-S3 write's is the plaintext's MD5 (AWS's), SSE-KMS and
    /// SSE-C writes get a random one (as AWS, not an MD5 of the plaintext).
    pub fn for_write(
        inner: &'a mut (dyn AsyncRead + Unpin + Send),
        key: PackageKey,
        kind: Kind,
        opts: &mut crate::object::PutOptions,
    ) -> Result<EncryptingBody<'a>, S3Error> {
        let expected = opts.content_md5.take();
        let plain_md5 = kind == Kind::S3;
        let etag = Arc::new(Mutex::new(None));
        if !plain_md5 {
            let random = format::part_salt().map_err(|_| S3Error::internal())?;
            *etag.lock() = Some(hex::encode(&random[..16]));
        }
        opts.etag = Some(etag.clone());
        opts.block_size = Some(format::BLOCK);
        let hash = plain_md5 || expected.is_some();
        Ok(EncryptingBody::new(
            inner,
            key,
            expected,
            plain_md5.then_some(etag),
            hash,
        ))
    }

    /// `hash`: compute the plaintext's MD5 (for `expected_md5`, or to leave in `etag`).
    pub fn new(
        inner: &'a mut (dyn AsyncRead + Unpin + Send),
        key: PackageKey,
        expected_md5: Option<[u8; 16]>,
        etag: Option<Arc<Mutex<Option<String>>>>,
        hash: bool,
    ) -> EncryptingBody<'a> {
        EncryptingBody {
            inner,
            enc: Some(Encryptor::new(key)),
            md5: hash.then(md5::Md5::default),
            expected_md5,
            etag,
            input: vec![0; format::PACKAGE],
            out: Vec::with_capacity(2 * (format::PACKAGE + format::TAG)),
            pos: 0,
        }
    }
}

impl AsyncRead for EncryptingBody<'_> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        let this = self.get_mut();
        loop {
            if this.pos < this.out.len() {
                let n = (this.out.len() - this.pos).min(buf.remaining());
                buf.put_slice(&this.out[this.pos..this.pos + n]);
                this.pos += n;
                return Poll::Ready(Ok(()));
            }
            this.out.clear();
            this.pos = 0;
            if this.enc.is_none() {
                return Poll::Ready(Ok(()));
            }
            let mut rb = ReadBuf::new(&mut this.input);
            match Pin::new(&mut *this.inner).poll_read(cx, &mut rb) {
                Poll::Pending => return Poll::Pending,
                Poll::Ready(Err(e)) => return Poll::Ready(Err(e)),
                Poll::Ready(Ok(())) => {}
            }
            let n = rb.filled().len();
            if n > 0 {
                if let Some(h) = this.md5.as_mut() {
                    h.update(&this.input[..n]);
                }
                if let Some(enc) = this.enc.as_mut() {
                    enc.update(&this.input[..n], &mut this.out);
                }
                continue;
            }
            if let Some(enc) = this.enc.take() {
                enc.finish(&mut this.out);
            }
            if let Some(h) = this.md5.take() {
                let digest: [u8; 16] = h.finalize().into();
                if this.expected_md5.is_some_and(|want| want != digest) {
                    return Poll::Ready(Err(BodyError::ContentMd5Mismatch.into_io()));
                }
                if let Some(slot) = &this.etag {
                    *slot.lock() = Some(hex::encode(digest));
                }
            }
        }
    }
}

/// Where a decrypted read takes the stored bytes of its range from.
pub trait Stored: Send + 'static {
    /// The next stored bytes, in order; `None` at the end of the range.
    fn next(&mut self) -> futures::future::BoxFuture<'_, std::io::Result<Option<Bytes>>>;
    /// A package failed to open: give the stored bytes again from offset `at` of the
    /// object (the failed package's first byte), checked against the drives' bitrot
    /// hashes this time. False when they were checked already: the failure stands.
    fn recheck_from(&mut self, at: u64) -> bool;
}

impl Stored for crate::object::ObjectReader {
    fn next(&mut self) -> futures::future::BoxFuture<'_, std::io::Result<Option<Bytes>>> {
        Box::pin(async move {
            self.next_chunk().await.map_err(|e| {
                tracing::error!(error = %e, "object stream failed mid-response");
                std::io::Error::other(e.to_string())
            })
        })
    }

    fn recheck_from(&mut self, at: u64) -> bool {
        crate::object::ObjectReader::recheck_from(self, at)
    }
}

/// One part of a decrypted read: its decryptor and where its stored bytes are.
struct Part {
    dec: Decryptor,
    /// Stored bytes of the part still to come.
    left: u64,
    /// The part's stored range (offset in the part, first package) and its offset in the
    /// object.
    range: CipherRange,
    at: u64,
}

impl Part {
    /// Set the part back to the start of the package its decryptor expects next (the one
    /// that failed): the object offset the stored bytes must come again from.
    fn rewind(&mut self) -> u64 {
        let done =
            (self.dec.first() - self.range.first_package) * (format::PACKAGE + format::TAG) as u64;
        self.left = self.range.len.saturating_sub(done);
        self.at + done
    }
}

/// The plaintext of a [`plan`]'s segments, from the stored bytes of its range: each
/// part's packages opened under its own key, every one checked. A package that fails to
/// open has the stored bytes read again from its start with the drives' bitrot checks
/// ([`Stored::recheck_from`]; a reader may skip them while the packages authenticate), so a
/// rotten shard is rebuilt around rather than failing the read; only a package that fails
/// on checked bytes fails the stream.
pub fn decrypt_stream(
    stored: impl Stored,
    segments: Vec<Segment>,
) -> impl Stream<Item = std::io::Result<Bytes>> + Send {
    let parts: std::collections::VecDeque<Part> = segments
        .into_iter()
        .map(|s| Part {
            dec: Decryptor::new(s.key, &s.range, s.len, s.size),
            left: s.range.len,
            range: s.range,
            at: s.at,
        })
        .collect();
    let fail = |e: format::SseError| {
        tracing::error!(error = %e, "encrypted object failed to decrypt");
        std::io::Error::other(e.to_string())
    };
    let ready: std::collections::VecDeque<std::io::Result<Bytes>> = Default::default();
    futures::stream::unfold(
        (stored, parts, ready, false),
        move |(mut stored, mut parts, mut ready, mut done)| async move {
            loop {
                if let Some(b) = ready.pop_front() {
                    return Some((b, (stored, parts, ready, done)));
                }
                if done {
                    return None;
                }
                let opened = match stored.next().await {
                    Ok(Some(chunk)) => open_chunk(chunk, &mut parts, &mut ready),
                    Ok(None) => {
                        // The stored bytes ended: whatever part is still open is short.
                        done = true;
                        let mut out = Vec::new();
                        let ended = match parts.front_mut() {
                            Some(part) => part.dec.finish(&mut out).and(match parts.get(1) {
                                None => Ok(()),
                                Some(next) => Err(format::SseError::Truncated(next.dec.first())),
                            }),
                            None => Ok(()),
                        };
                        if !out.is_empty() {
                            ready.push_back(Ok(Bytes::from(out)));
                        }
                        ended
                    }
                    Err(e) => {
                        ready.push_back(Err(e));
                        done = true;
                        Ok(())
                    }
                };
                if let Err(e) = opened {
                    let again = matches!(e, format::SseError::Package(_))
                        && parts
                            .front_mut()
                            .is_some_and(|part| stored.recheck_from(part.rewind()));
                    if again {
                        tracing::warn!(error = %e, "encrypted package failed: reading it again with bitrot checks");
                        done = false;
                    } else {
                        ready.push_back(Err(fail(e)));
                        done = true;
                    }
                }
            }
        },
    )
}

/// Open one chunk of stored bytes, queueing its plaintext as frames in order (those of the
/// packages before a failed one too). Whole packages are opened where they lie in the chunk
/// when the chunk is uniquely owned (a shard payload read for this request: the usual
/// case), and their plaintext handed out as slices of it, without a copy; a shared chunk is
/// copied once first. Packages split across chunks are gathered. On a failure the current
/// part (first of `parts`) is the one whose package failed.
fn open_chunk(
    chunk: Bytes,
    parts: &mut std::collections::VecDeque<Part>,
    ready: &mut std::collections::VecDeque<std::io::Result<Bytes>>,
) -> Result<(), format::SseError> {
    let mut buf = chunk
        .try_into_mut()
        .unwrap_or_else(|shared| bytes::BytesMut::from(&shared[..]));
    let mut pieces = Vec::new();
    let opened = open_pieces(&mut buf, parts, &mut pieces);
    let buf = buf.freeze();
    ready.extend(pieces.into_iter().map(|p| {
        Ok(match p {
            Piece::At(r) => buf.slice(r),
            Piece::Gathered(v) => Bytes::from(v),
        })
    }));
    opened
}

/// A piece of plaintext from a chunk: a range of the chunk (opened in place) or bytes
/// gathered from several chunks.
enum Piece {
    At(std::ops::Range<usize>),
    Gathered(Vec<u8>),
}

/// [`open_chunk`]'s work on the chunk's bytes: each piece of plaintext appended to `pieces`
/// as it is opened.
fn open_pieces(
    buf: &mut [u8],
    parts: &mut std::collections::VecDeque<Part>,
    pieces: &mut Vec<Piece>,
) -> Result<(), format::SseError> {
    const FULL: usize = format::PACKAGE + format::TAG;
    let mut pos = 0;
    while pos < buf.len() {
        let Some(part) = parts.front_mut() else {
            return Err(format::SseError::Trailing);
        };
        // This part's stored bytes in the chunk.
        let n = part.left.min((buf.len() - pos) as u64) as usize;
        let end = pos + n;
        while pos < end {
            let gathered = part.dec.gathered();
            if gathered == 0 && end - pos >= FULL {
                let keep = part.dec.open_in_place(&mut buf[pos..pos + FULL])?;
                if !keep.is_empty() {
                    pieces.push(Piece::At(pos + keep.start..pos + keep.end));
                }
                pos += FULL;
                part.left -= FULL as u64;
                continue;
            }
            // A package split across chunks (or the part's short last one): gathered, and
            // opened once complete; then whole packages are opened in place again.
            let take = if gathered == 0 {
                end - pos
            } else {
                (FULL - gathered).min(end - pos)
            };
            let mut out = Vec::new();
            part.dec.update(&buf[pos..pos + take], &mut out)?;
            if !out.is_empty() {
                pieces.push(Piece::Gathered(out));
            }
            pos += take;
            part.left -= take as u64;
        }
        if part.left == 0 {
            let mut out = Vec::new();
            part.dec.finish(&mut out)?;
            if !out.is_empty() {
                pieces.push(Piece::Gathered(out));
            }
            parts.pop_front();
        }
    }
    Ok(())
}

/// A stored object's bytes as plaintext, for a copy: `range` (of the plaintext, checked)
/// or all of it, decrypted with the key the request gives for the source (its SSE-C
/// headers under `prefix`) or the KMS's. Also the plaintext length.
pub fn plaintext(
    state: &S3State,
    ctx: &Ctx,
    mut reader: crate::object::ObjectReader,
    range: Option<crate::object::ByteRange>,
    prefix: &str,
) -> Result<
    (
        futures::stream::BoxStream<'static, std::io::Result<Bytes>>,
        u64,
    ),
    S3Error,
> {
    let info = reader.info().clone();
    let opened = open(state, ctx, &info, prefix)?;
    let size = plain_size(&info);
    let (start, len) = range.map_or((0, size), |r| (r.start, r.len));
    match opened {
        None => {
            if let Some(r) = range {
                reader.narrow(r)?;
            }
            let len = reader.remaining();
            let stream = reader.into_stream().map_err(|e| {
                tracing::error!(error = %e, "copy source stream failed");
                std::io::Error::other(e.to_string())
            });
            Ok((stream.boxed(), len))
        }
        Some((_, key)) => {
            let (span, segments) = plan(&info, &key, start, len)?;
            reader.narrow(span)?;
            // The packages authenticate every byte: shards are checked only when one fails.
            reader.read_unchecked();
            Ok((decrypt_stream(reader, segments).boxed(), len))
        }
    }
}

#[cfg(test)]
mod tests;
