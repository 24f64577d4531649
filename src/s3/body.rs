//! Request bodies: from the HTTP body to a verified byte stream for the object layer.
//!
//! Layers, innermost first: the raw body; the aws-chunked decoder (chunk signatures and
//! trailers) when the payload is streamed; then a verifier that hashes what passes and, at
//! the end, checks the declared SHA-256 and `x-amz-checksum-*` value before reporting EOF —
//! so a bad body fails the write before anything is committed.

use std::collections::BTreeMap;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use axum::body::Body;
use base64::Engine;
use bytes::Bytes;
use futures::TryStreamExt;
use parking_lot::Mutex;
use sha2::Digest;
use tokio::io::{AsyncRead, ReadBuf};
use tokio_util::io::StreamReader;

use super::error::S3Error;
use crate::auth::chunked::{self, BodyError, Trailers};
use crate::auth::{Payload, Verified};
use crate::checksum::{b64, ChecksumAlg, ChecksumHasher};

/// The most of an unwanted request body the server reads (and discards) so that the client
/// gets its response. A server that answers early (auth failure, missing bucket, quota) and
/// closes with unread bytes in its socket makes the kernel send a reset, which can destroy
/// the response before the client reads it; the client then sees "connection reset" instead
/// of the S3 error. Beyond this, the connection is closed.
const DRAIN_LIMIT: u64 = 256 << 20;
/// How long the server keeps draining an unwanted body.
const DRAIN_TIME: std::time::Duration = std::time::Duration::from_secs(30);

/// A request body that is read to its end in the background when a handler drops it early,
/// up to [`DRAIN_LIMIT`] bytes and [`DRAIN_TIME`]. A client that sent `Expect: 100-continue`
/// and has not been asked for its body yet is not asked now: it reads the response instead.
pub struct Drained {
    inner: Option<Body>,
    polled: bool,
    /// The body answered its end. (`is_end_stream` cannot tell for a chunked body: hyper's
    /// says `false` even after its last chunk.)
    ended: bool,
    expect_continue: bool,
    left: Unread,
}

/// Whether a request's body was dropped before its end ([`drained`]): its answer must then
/// say `Connection: close`. The connection cannot carry another request until the rest of
/// the body is read, and the drain may give up (its limits, or the client pausing) and close
/// it — after the client, told nothing, had already sent its next request on it, which then
/// meets a reset (seen under a burst of uploads answered `SlowDown`).
#[derive(Debug, Clone, Default)]
pub struct Unread(Arc<std::sync::atomic::AtomicBool>);

impl Unread {
    pub fn get(&self) -> bool {
        self.0.load(std::sync::atomic::Ordering::Relaxed)
    }
}

/// Wraps a request body so that it is drained if dropped before its end; `left` is set when
/// that happens.
pub fn drained(body: Body, headers: &http::HeaderMap, left: Unread) -> Body {
    let expect_continue = headers
        .get(http::header::EXPECT)
        .is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(b"100-continue"));
    Body::new(Drained {
        inner: Some(body),
        polled: false,
        ended: false,
        expect_continue,
        left,
    })
}

impl http_body::Body for Drained {
    type Data = Bytes;
    type Error = axum::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<http_body::Frame<Bytes>, axum::Error>>> {
        self.polled = true;
        let frame = match self.inner.as_mut() {
            Some(b) => Pin::new(b).poll_frame(cx),
            None => Poll::Ready(None),
        };
        if matches!(frame, Poll::Ready(None)) {
            self.ended = true;
        }
        frame
    }

    fn is_end_stream(&self) -> bool {
        self.ended || self.inner.as_ref().is_none_or(|b| b.is_end_stream())
    }

    fn size_hint(&self) -> http_body::SizeHint {
        self.inner
            .as_ref()
            .map_or_else(|| http_body::SizeHint::with_exact(0), |b| b.size_hint())
    }
}

impl Drop for Drained {
    fn drop(&mut self) {
        let Some(body) = self.inner.take() else {
            return;
        };
        if self.ended || http_body::Body::is_end_stream(&body) {
            return;
        }
        self.left
            .0
            .store(true, std::sync::atomic::Ordering::Relaxed);
        if self.expect_continue && !self.polled {
            return;
        }
        if let Ok(rt) = tokio::runtime::Handle::try_current() {
            rt.spawn(drain(body));
        }
    }
}

async fn drain(body: Body) {
    use http_body_util::BodyExt;
    let mut body = body;
    let mut read = 0u64;
    let end = tokio::time::Instant::now() + DRAIN_TIME;
    while read <= DRAIN_LIMIT {
        match tokio::time::timeout_at(end, body.frame()).await {
            Ok(Some(Ok(frame))) => {
                read += frame.data_ref().map_or(0, |d| d.len() as u64);
            }
            _ => break,
        }
    }
    tracing::trace!(read, "drained an unread request body");
}

/// Where the expected checksum value comes from.
enum Expected {
    Header(String),
    Trailer(Trailers),
    /// The client named the algorithm but sends no value: compute and store only.
    None,
}

/// Checksums computed on the body once it verified, keyed by algorithm name.
pub type Computed = Arc<Mutex<BTreeMap<String, String>>>;

/// Verifying reader at the end of the pipeline.
pub struct BodyReader {
    inner: Pin<Box<dyn AsyncRead + Send>>,
    sha256: Option<(sha2::Sha256, Vec<u8>)>,
    checksum: Option<(ChecksumAlg, ChecksumHasher, Expected)>,
    computed: Computed,
    done: bool,
}

impl BodyReader {
    fn finish(&mut self) -> Result<(), BodyError> {
        if let Some((h, want)) = self.sha256.take() {
            if h.finalize().as_slice() != want.as_slice() {
                return Err(BodyError::Sha256Mismatch);
            }
        }
        if let Some((alg, h, expected)) = self.checksum.take() {
            let got = b64(&h.finish());
            let want =
                match expected {
                    Expected::Header(v) => Some(v),
                    Expected::Trailer(t) => {
                        let header = alg.header();
                        let value = t.lock().as_ref().and_then(|t| {
                            t.iter().find(|(n, _)| *n == header).map(|(_, v)| v.clone())
                        });
                        Some(value.ok_or_else(|| {
                            BodyError::Malformed(format!("missing trailer {header}"))
                        })?)
                    }
                    Expected::None => None,
                };
            if let Some(want) = want {
                if !alg.valid_value(&want) {
                    return Err(BodyError::InvalidChecksum(alg.name().to_ascii_lowercase()));
                }
                if want != got {
                    return Err(BodyError::ChecksumMismatch(alg.name().to_string()));
                }
            }
            self.computed.lock().insert(alg.name().to_string(), got);
        }
        Ok(())
    }
}

impl AsyncRead for BodyReader {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        if self.done {
            return Poll::Ready(Ok(()));
        }
        let before = buf.filled().len();
        match self.inner.as_mut().poll_read(cx, buf) {
            Poll::Ready(Ok(())) => {}
            other => return other,
        }
        let new = &buf.filled()[before..];
        if new.is_empty() && buf.remaining() > 0 {
            self.done = true;
            return Poll::Ready(self.finish().map_err(BodyError::into_io));
        }
        let this = &mut *self;
        if let Some((h, _)) = this.sha256.as_mut() {
            h.update(new);
        }
        if let Some((_, h, _)) = this.checksum.as_mut() {
            h.update(new);
        }
        Poll::Ready(Ok(()))
    }
}

fn header<'a>(headers: &'a [(String, String)], name: &str) -> Option<&'a str> {
    headers
        .iter()
        .find(|(n, _)| n == name)
        .map(|(_, v)| v.as_str())
}

/// The payload length the client declares: `x-amz-decoded-content-length` for aws-chunked
/// bodies, else `Content-Length`; `None` for a chunked transfer of unknown length.
pub fn declared_length(
    verified: &Verified,
    headers: &[(String, String)],
) -> Result<Option<u64>, S3Error> {
    let streaming = matches!(
        verified.payload,
        Payload::StreamingSigned { .. } | Payload::StreamingUnsignedTrailer
    ) || header(headers, "content-encoding")
        .is_some_and(|e| e.split(',').any(|p| p.trim() == "aws-chunked"));
    let name = if streaming {
        "x-amz-decoded-content-length"
    } else {
        "content-length"
    };
    match header(headers, name) {
        Some(v) => v
            .trim()
            .parse::<u64>()
            .map(Some)
            .map_err(|_| S3Error::invalid_argument(format!("invalid {name}"))),
        None if header(headers, "transfer-encoding").is_some_and(|t| t.contains("chunked"))
            && !streaming =>
        {
            Ok(None)
        }
        None => Err(S3Error::new(
            "MissingContentLength",
            http::StatusCode::LENGTH_REQUIRED,
            "You must provide the Content-Length HTTP header.",
        )),
    }
}

/// Build the verified body reader for an upload.
pub fn reader(
    body: axum::body::Body,
    verified: &Verified,
    headers: &[(String, String)],
) -> Result<(BodyReader, Computed), S3Error> {
    let raw = StreamReader::new(body.into_data_stream().map_err(std::io::Error::other));
    let trailers = Trailers::default();
    let inner: Pin<Box<dyn AsyncRead + Send>> = match &verified.payload {
        Payload::StreamingSigned { signer, trailer } => Box::pin(StreamReader::new(
            chunked::decode(raw, Some(signer.clone()), *trailer, trailers.clone()),
        )),
        Payload::StreamingUnsignedTrailer => Box::pin(StreamReader::new(chunked::decode(
            raw,
            None,
            false,
            trailers.clone(),
        ))),
        _ => Box::pin(raw),
    };
    let sha256 = match &verified.payload {
        Payload::Sha256(hex_digest) => Some((
            sha2::Sha256::new(),
            hex::decode(hex_digest)
                .map_err(|_| S3Error::invalid_argument("invalid x-amz-content-sha256"))?,
        )),
        _ => None,
    };
    let checksum = checksum_plan(headers, trailers)?;
    let computed = Computed::default();
    Ok((
        BodyReader {
            inner,
            sha256,
            checksum,
            computed: computed.clone(),
            done: false,
        },
        computed,
    ))
}

/// The checksum algorithm a request's body comes with, as [`reader`] picks it: its
/// `x-amz-checksum-*` header, else the trailer it announces, else
/// `x-amz-sdk-checksum-algorithm`. Malformed checksum headers are refused here already.
pub fn declared_checksum(headers: &[(String, String)]) -> Result<Option<ChecksumAlg>, S3Error> {
    Ok(checksum_plan(headers, Trailers::default())?.map(|(alg, _, _)| alg))
}

/// `x-amz-checksum-algorithm` (CreateMultipartUpload, CopyObject), if sent and known.
pub(super) fn requested_algorithm(ctx: &super::Ctx) -> Result<Option<ChecksumAlg>, S3Error> {
    let Some(alg) = ctx.header("x-amz-checksum-algorithm") else {
        return Ok(None);
    };
    ChecksumAlg::parse(alg.trim()).map(Some).ok_or_else(|| {
        S3Error::invalid_request("Checksum algorithm provided is unsupported. Please try again with any of the valid types: [CRC32, CRC32C, CRC64NVME, SHA1, SHA256]")
    })
}

/// A request body of any shape, boxed.
pub type DynReader = Box<dyn AsyncRead + Unpin + Send>;

/// `inner` as it is when `alg` is `None`; otherwise a reader computing `alg`'s checksum of the
/// bytes it passes on, stored with the object through `opts` (a copied object or part, or a
/// part sent without the upload's checksum). The returned map holds the value once `inner`
/// ends.
pub fn computing(
    inner: impl AsyncRead + Unpin + Send + 'static,
    alg: Option<ChecksumAlg>,
    opts: &mut crate::object::PutOptions,
) -> (DynReader, Option<Computed>) {
    let Some(alg) = alg else {
        return (Box::new(inner), None);
    };
    let computed = Computed::default();
    opts.computed_checksums = Some(computed.clone());
    let reader = BodyReader {
        inner: Box::pin(inner),
        sha256: None,
        checksum: Some((alg, ChecksumHasher::new(alg), Expected::None)),
        computed: computed.clone(),
        done: false,
    };
    (Box::new(reader), Some(computed))
}

fn checksum_plan(
    headers: &[(String, String)],
    trailers: Trailers,
) -> Result<Option<(ChecksumAlg, ChecksumHasher, Expected)>, S3Error> {
    let mut found = ChecksumAlg::ALL
        .into_iter()
        .filter_map(|a| header(headers, &a.header()).map(|v| (a, v.trim().to_string())));
    if let Some((alg, value)) = found.next() {
        if found.next().is_some() {
            return Err(S3Error::invalid_request("Expecting a single x-amz-checksum- header. Multiple checksum Types are not allowed."));
        }
        if !alg.valid_value(&value) {
            return Err(S3Error::invalid_request(format!(
                "Value for {} header is invalid.",
                alg.header()
            )));
        }
        return Ok(Some((
            alg,
            ChecksumHasher::new(alg),
            Expected::Header(value),
        )));
    }
    if let Some(t) = header(headers, "x-amz-trailer") {
        let name = t.trim().to_ascii_lowercase();
        let alg = name
            .strip_prefix("x-amz-checksum-")
            .and_then(ChecksumAlg::parse)
            .ok_or_else(|| S3Error::invalid_argument(format!("unsupported trailer {name}")))?;
        return Ok(Some((
            alg,
            ChecksumHasher::new(alg),
            Expected::Trailer(trailers),
        )));
    }
    if let Some(a) = header(headers, "x-amz-sdk-checksum-algorithm") {
        let alg = ChecksumAlg::parse(a.trim()).ok_or_else(|| {
            S3Error::invalid_argument(format!("unsupported checksum algorithm {a}"))
        })?;
        return Ok(Some((alg, ChecksumHasher::new(alg), Expected::None)));
    }
    Ok(None)
}

/// Read a small request body (XML) whole, verifying it like an upload; at most `limit` bytes.
pub async fn read_small(
    body: axum::body::Body,
    verified: &Verified,
    headers: &[(String, String)],
    limit: usize,
) -> Result<Vec<u8>, S3Error> {
    use tokio::io::AsyncReadExt;
    let (reader, _) = reader(body, verified, headers)?;
    let mut out = Vec::new();
    let n = reader
        .take(limit as u64 + 1)
        .read_to_end(&mut out)
        .await
        .map_err(|e| match BodyError::from_io(&e) {
            Some(b) => S3Error::from(b),
            None => S3Error::new(
                "IncompleteBody",
                http::StatusCode::BAD_REQUEST,
                "The request body could not be read.",
            ),
        })?;
    if n > limit {
        return Err(S3Error::new(
            "MaxMessageLengthExceeded",
            http::StatusCode::BAD_REQUEST,
            "Your request was too big.",
        ));
    }
    if let Some(md5) = header(headers, "content-md5") {
        let want = base64::engine::general_purpose::STANDARD
            .decode(md5.trim())
            .map_err(|_| {
                S3Error::new(
                    "InvalidDigest",
                    http::StatusCode::BAD_REQUEST,
                    "The Content-MD5 you specified is not valid.",
                )
            })?;
        if md5::Md5::digest(&out).as_slice() != want.as_slice() {
            return Err(S3Error::new(
                "BadDigest",
                http::StatusCode::BAD_REQUEST,
                "The Content-MD5 you specified did not match what we received.",
            ));
        }
    }
    Ok(out)
}
