//! Decoding of `Content-Encoding: aws-chunked` bodies: `hex-size[;chunk-signature=sig]\r\n`
//! `data\r\n` ... a zero-size chunk, then optional trailing headers (checksums) with an
//! optional trailer signature. Every chunk signature is verified before its bytes are passed on.

use std::sync::Arc;

use bytes::Bytes;
use futures::Stream;
use parking_lot::Mutex;
use thiserror::Error;
use tokio::io::{AsyncBufRead, AsyncBufReadExt, AsyncReadExt};

use super::ChunkSigner;

/// Largest chunk accepted (clients use 64 KiB to a few MiB).
pub const MAX_CHUNK: usize = 16 << 20;
const MAX_LINE: usize = 4096;

/// Why a request body was rejected; carried inside `std::io::Error` through readers.
#[derive(Debug, Error, Clone, PartialEq, Eq)]
pub enum BodyError {
    #[error("chunk signature does not match")]
    Signature,
    #[error("malformed aws-chunked body: {0}")]
    Malformed(String),
    #[error("body does not match x-amz-content-sha256")]
    Sha256Mismatch,
    #[error("body does not match the {0} checksum")]
    ChecksumMismatch(String),
    #[error("invalid checksum value for {0}")]
    InvalidChecksum(String),
    /// An encrypted upload's plaintext does not match its `Content-MD5`.
    #[error("body does not match Content-MD5")]
    ContentMd5Mismatch,
}

impl BodyError {
    pub fn into_io(self) -> std::io::Error {
        std::io::Error::other(self)
    }

    /// The body error inside an I/O error, if that is what it carries.
    pub fn from_io(e: &std::io::Error) -> Option<&BodyError> {
        e.get_ref()
            .and_then(|inner| inner.downcast_ref::<BodyError>())
    }
}

/// Trailing headers, filled in once the last chunk has been read.
pub type Trailers = Arc<Mutex<Option<Vec<(String, String)>>>>;

struct State<R> {
    reader: R,
    signer: Option<ChunkSigner>,
    signed_trailer: bool,
    trailers: Trailers,
    done: bool,
}

async fn read_line<R: AsyncBufRead + Unpin>(r: &mut R) -> std::io::Result<String> {
    let mut line = Vec::new();
    let n = (&mut *r)
        .take(MAX_LINE as u64)
        .read_until(b'\n', &mut line)
        .await?;
    if n == 0 {
        return Err(BodyError::Malformed("unexpected end of body".into()).into_io());
    }
    if !line.ends_with(b"\r\n") {
        return Err(BodyError::Malformed("line not terminated by CRLF".into()).into_io());
    }
    line.truncate(line.len() - 2);
    String::from_utf8(line)
        .map_err(|_| BodyError::Malformed("non-UTF-8 chunk header".into()).into_io())
}

async fn next_chunk<R: AsyncBufRead + Unpin>(st: &mut State<R>) -> std::io::Result<Option<Bytes>> {
    if st.done {
        return Ok(None);
    }
    let header = read_line(&mut st.reader).await?;
    let (size_hex, ext) = header.split_once(';').unwrap_or((header.as_str(), ""));
    let size = usize::from_str_radix(size_hex.trim(), 16)
        .map_err(|_| BodyError::Malformed(format!("bad chunk size {size_hex:?}")).into_io())?;
    if size > MAX_CHUNK {
        return Err(BodyError::Malformed("chunk too large".into()).into_io());
    }
    let mut data = vec![0u8; size];
    st.reader
        .read_exact(&mut data)
        .await
        .map_err(|_| BodyError::Malformed("truncated chunk".into()).into_io())?;
    if let Some(signer) = st.signer.as_mut() {
        let sig = ext
            .strip_prefix("chunk-signature=")
            .ok_or_else(|| BodyError::Malformed("missing chunk-signature".into()).into_io())?;
        signer
            .verify_chunk(&data, sig)
            .map_err(|_| BodyError::Signature.into_io())?;
    }
    if size > 0 {
        if !read_line(&mut st.reader).await?.is_empty() {
            return Err(BodyError::Malformed("chunk not followed by CRLF".into()).into_io());
        }
        return Ok(Some(Bytes::from(data)));
    }
    // Last chunk: trailing headers until an empty line.
    st.done = true;
    let mut trailers = Vec::new();
    let mut signed_text = Vec::new();
    let mut trailer_sig = None;
    loop {
        let line = match read_line(&mut st.reader).await {
            Ok(l) => l,
            // Some clients end the body right after the last chunk.
            Err(_) if trailers.is_empty() && !st.signed_trailer => break,
            Err(e) => return Err(e),
        };
        if line.is_empty() {
            break;
        }
        let (name, value) = line
            .split_once(':')
            .ok_or_else(|| BodyError::Malformed("bad trailer line".into()).into_io())?;
        let name = name.trim().to_ascii_lowercase();
        if name == "x-amz-trailer-signature" {
            trailer_sig = Some(value.trim().to_string());
            continue;
        }
        signed_text.extend_from_slice(format!("{name}:{}\n", value.trim()).as_bytes());
        trailers.push((name, value.trim().to_string()));
    }
    if st.signed_trailer {
        let (Some(signer), Some(sig)) = (st.signer.as_mut(), trailer_sig) else {
            return Err(BodyError::Malformed("missing trailer signature".into()).into_io());
        };
        signer
            .verify_trailer(&signed_text, &sig)
            .map_err(|_| BodyError::Signature.into_io())?;
    }
    *st.trailers.lock() = Some(trailers);
    Ok(None)
}

/// Decode an aws-chunked body from `reader`. With a `signer` every chunk signature (and the
/// trailer signature when `signed_trailer`) is checked. Trailing headers land in `trailers`.
pub fn decode<R: AsyncBufRead + Unpin + Send + 'static>(
    reader: R,
    signer: Option<ChunkSigner>,
    signed_trailer: bool,
    trailers: Trailers,
) -> impl Stream<Item = std::io::Result<Bytes>> + Send {
    let st = State {
        reader,
        signer,
        signed_trailer,
        trailers,
        done: false,
    };
    futures::stream::try_unfold(st, |mut st| async move {
        Ok(next_chunk(&mut st).await?.map(|b| (b, st)))
    })
}
