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
use futures::{Stream, StreamExt};
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

const KIND: &str = "x-cairn-sse";
const KEY_ID: &str = "x-cairn-sse-key-id";
const SEALED: &str = "x-cairn-sse-sealed";
const CONTEXT: &str = "x-cairn-sse-context";
const CUSTOMER_MD5: &str = "x-cairn-sse-customer-key-md5";
const BUCKET_KEY: &str = "x-cairn-sse-bucket-key";

/// Prefix of the SSE-C headers of the object a request addresses.
pub const CUSTOMER: &str = "x-amz-server-side-encryption-customer-";

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

/// Writes that cannot encrypt yet (multipart uploads, copies) are refused when their
/// bucket's default encryption would apply: never stored in the clear instead.
pub async fn refuse_unencryptable_write(
    state: &S3State,
    ctx: &Ctx,
    bucket: &str,
    what: &str,
) -> Result<(), S3Error> {
    match for_write(state, ctx, bucket).await? {
        Requested::None => Ok(()),
        _ => Err(S3Error::new(
            "NotImplemented",
            StatusCode::NOT_IMPLEMENTED,
            format!("{what} into a bucket with default encryption are not implemented yet."),
        )),
    }
}

/// What a sealed key is bound to: the object's bucket and key.
fn binding(bucket: &str, key: &str) -> Vec<u8> {
    format!("{bucket}/{key}").into_bytes()
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
    let h = &info.headers;
    let Some(kind) = h.get(KIND) else {
        return Ok(None);
    };
    let kind = match kind.as_str() {
        "AES256" => Kind::S3,
        "aws:kms" => Kind::Kms,
        "SSE-C" => Kind::Customer,
        other => {
            tracing::error!(kind = other, key = %info.key, "unknown encryption in metadata");
            return Err(S3Error::internal());
        }
    };
    let sealed = h
        .get(SEALED)
        .and_then(|s| base64::engine::general_purpose::STANDARD.decode(s).ok())
        .ok_or_else(|| {
            tracing::error!(key = %info.key, "encrypted object without a sealed key");
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

/// The size clients see: the plaintext's.
pub fn plain_size(info: &ObjectInfo) -> u64 {
    if is_encrypted(info) {
        format::plain_size(info.size).unwrap_or(0)
    } else {
        info.size
    }
}

/// The key to read `info` with, given the request's SSE-C headers under `prefix` (the
/// object's own, or a copy source's). `Ok(None)`: stored in the clear.
pub fn open(
    state: &S3State,
    ctx: &Ctx,
    info: &ObjectInfo,
    prefix: &str,
) -> Result<Option<(Envelope, ObjectKey)>, S3Error> {
    let env = envelope(info)?;
    let customer = customer_key(ctx, prefix)?;
    let not_applicable =
        || S3Error::invalid_request("The encryption parameters are not applicable to this object.");
    let Some(env) = env else {
        return match customer {
            Some(_) => Err(not_applicable()),
            None => Ok(None),
        };
    };
    let bound = binding(&info.bucket, &info.key);
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
                    tracing::error!(key = %info.key, "the object key does not unseal");
                }
                kms_error(e)
            })?;
            ObjectKey::from_bytes(plain)
        }
    };
    Ok(Some((env, key)))
}

/// Copies read the source's stored bytes as they are: of an encrypted source that would be
/// ciphertext under a key bound to the source. Refused until copies re-encrypt.
pub fn refuse_encrypted_copy_source(src: &ObjectInfo) -> Result<(), S3Error> {
    if is_encrypted(src) {
        return Err(S3Error::new(
            "NotImplemented",
            StatusCode::NOT_IMPLEMENTED,
            "Copying a server-side encrypted object is not implemented yet.",
        ));
    }
    Ok(())
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
    md5: md5::Md5,
    expected_md5: Option<[u8; 16]>,
    etag: Option<Arc<Mutex<Option<String>>>>,
    input: Vec<u8>,
    out: Vec<u8>,
    pos: usize,
}

impl<'a> EncryptingBody<'a> {
    pub fn new(
        inner: &'a mut (dyn AsyncRead + Unpin + Send),
        key: PackageKey,
        expected_md5: Option<[u8; 16]>,
        etag: Option<Arc<Mutex<Option<String>>>>,
    ) -> EncryptingBody<'a> {
        EncryptingBody {
            inner,
            enc: Some(Encryptor::new(key)),
            md5: md5::Md5::default(),
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
                this.md5.update(&this.input[..n]);
                if let Some(enc) = this.enc.as_mut() {
                    enc.update(&this.input[..n], &mut this.out);
                }
                continue;
            }
            if let Some(enc) = this.enc.take() {
                enc.finish(&mut this.out);
            }
            let digest: [u8; 16] = std::mem::take(&mut this.md5).finalize().into();
            if this.expected_md5.is_some_and(|want| want != digest) {
                return Poll::Ready(Err(BodyError::ContentMd5Mismatch.into_io()));
            }
            if let Some(slot) = &this.etag {
                *slot.lock() = Some(hex::encode(digest));
            }
        }
    }
}

/// The plaintext of `len` bytes of a part of `size` plaintext bytes, from the stored
/// bytes of `range` (already narrowed to) streamed by `inner`.
pub fn decrypt_stream(
    inner: impl Stream<Item = std::io::Result<Bytes>> + Send + 'static,
    key: PackageKey,
    range: CipherRange,
    len: u64,
    size: u64,
) -> impl Stream<Item = std::io::Result<Bytes>> + Send {
    let dec = Decryptor::new(key, &range, len, size);
    let inner = inner.boxed();
    futures::stream::unfold((inner, Some(dec)), |(mut inner, dec)| async move {
        let mut dec = dec?;
        let fail = |e: format::SseError| {
            tracing::error!(error = %e, "encrypted object failed to decrypt");
            std::io::Error::other(e.to_string())
        };
        loop {
            match inner.next().await {
                Some(Ok(chunk)) => {
                    let mut out = Vec::with_capacity(chunk.len() + format::PACKAGE);
                    if let Err(e) = dec.update(&chunk, &mut out) {
                        return Some((Err(fail(e)), (inner, None)));
                    }
                    if !out.is_empty() {
                        return Some((Ok(Bytes::from(out)), (inner, Some(dec))));
                    }
                }
                Some(Err(e)) => return Some((Err(e), (inner, None))),
                None => {
                    let mut out = Vec::new();
                    return match dec.finish(&mut out) {
                        Ok(()) if out.is_empty() => None,
                        Ok(()) => Some((Ok(Bytes::from(out)), (inner, None))),
                        Err(e) => Some((Err(fail(e)), (inner, None))),
                    };
                }
            }
        }
    })
}
