//! Bitrot framing of shard files: `[blake3(chunk) (32 bytes)][chunk]` repeated, one chunk per
//! erasure block. Every chunk is verified before a single byte of it is handed out.

use std::io::{Read, Write};

use crate::Error;

/// Length of the blake3 hash that precedes every chunk.
pub const HASH_LEN: usize = 32;

/// The blake3 hash of one chunk.
pub fn hash(chunk: &[u8]) -> [u8; HASH_LEN] {
    *blake3::hash(chunk).as_bytes()
}

/// Frame one chunk: its hash followed by the chunk bytes.
pub fn frame(chunk: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(HASH_LEN + chunk.len());
    out.extend_from_slice(&hash(chunk));
    out.extend_from_slice(chunk);
    out
}

/// Verify one framed chunk (`[hash][chunk]`) of shard `shard`, chunk number `chunk`;
/// returns the verified payload.
pub fn verify_framed(framed: &[u8], shard: usize, chunk: u64) -> Result<&[u8], Error> {
    if framed.len() < HASH_LEN {
        return Err(Error::Truncated { shard, chunk });
    }
    let (expected, payload) = framed.split_at(HASH_LEN);
    // blake3's Hash comparison is constant-time.
    if blake3::hash(payload) != blake3::Hash::from_bytes(to_array(expected)) {
        return Err(Error::Bitrot { shard, chunk });
    }
    Ok(payload)
}

fn to_array(s: &[u8]) -> [u8; HASH_LEN] {
    let mut a = [0u8; HASH_LEN];
    a.copy_from_slice(&s[..HASH_LEN]);
    a
}

/// Writes chunks to a shard stream, each preceded by its hash.
pub struct BitrotWriter<W: Write> {
    inner: W,
}

impl<W: Write> BitrotWriter<W> {
    pub fn new(inner: W) -> Self {
        BitrotWriter { inner }
    }

    pub fn write_chunk(&mut self, chunk: &[u8]) -> std::io::Result<()> {
        self.inner.write_all(&hash(chunk))?;
        self.inner.write_all(chunk)
    }

    pub fn into_inner(self) -> W {
        self.inner
    }
}

/// Reads and verifies the chunks of one shard stream holding `payload_size` bytes of
/// payload cut in chunks of `shard_size` (the last one may be shorter).
pub struct BitrotReader<R: Read> {
    inner: R,
    shard: usize,
    shard_size: usize,
    remaining: u64,
    chunk: u64,
    buf: Vec<u8>,
}

impl<R: Read> BitrotReader<R> {
    /// `shard` is the index reported in errors.
    pub fn new(inner: R, shard: usize, shard_size: usize, payload_size: u64) -> Self {
        BitrotReader {
            inner,
            shard,
            shard_size,
            remaining: payload_size,
            chunk: 0,
            buf: Vec::with_capacity(HASH_LEN + shard_size),
        }
    }

    /// The next verified chunk, or `None` at the end of the shard.
    pub fn next_chunk(&mut self) -> Result<Option<&[u8]>, Error> {
        if self.remaining == 0 {
            return Ok(None);
        }
        let len = self.remaining.min(self.shard_size as u64) as usize;
        self.buf.resize(HASH_LEN + len, 0);
        let (shard, chunk) = (self.shard, self.chunk);
        self.inner.read_exact(&mut self.buf).map_err(|e| {
            if e.kind() == std::io::ErrorKind::UnexpectedEof {
                Error::Truncated { shard, chunk }
            } else {
                Error::Io { shard, source: e }
            }
        })?;
        self.remaining -= len as u64;
        self.chunk += 1;
        verify_framed(&self.buf, shard, chunk).map(Some)
    }
}

/// Verify a whole shard stream (the scanner's deep check): every chunk's hash and the exact
/// length, with nothing trailing.
pub fn verify_stream<R: Read>(
    inner: R,
    shard: usize,
    shard_size: usize,
    payload_size: u64,
) -> Result<(), Error> {
    let mut reader = BitrotReader::new(inner, shard, shard_size, payload_size);
    while reader.next_chunk()?.is_some() {}
    let mut extra = [0u8; 1];
    match reader.inner.read(&mut extra) {
        Ok(0) => Ok(()),
        Ok(_) => Err(Error::ShardLength {
            shard,
            got: 0,
            want: 0,
        }),
        Err(e) => Err(Error::Io { shard, source: e }),
    }
}
