//! Erasure coding and bitrot protection for Cairn.
//!
//! This crate owns the math and the framing, never the I/O policy:
//!
//! * [`Codec`] is the one small seam to a GF(2^8) Reed-Solomon implementation.
//!   [`ReedSolomonCodec`] wraps `reed-solomon-erasure`, whose Vandermonde-derived
//!   encoding matrix is the one of klauspost/reedsolomon (and so MinIO): shards
//!   written by Cairn are byte-identical to theirs for the same geometry.
//! * [`Erasure`] cuts a stream block by block (default 1 MiB) into `data` +
//!   `parity` shards of `ceil(block / data)` bytes, decodes from any `data`
//!   shards and rebuilds any missing shard.
//! * [`bitrot`] frames a shard file as `[blake3(chunk)][chunk]...`, one chunk
//!   per erasure block, and verifies every chunk as it is read.
//!
//! No tokio, no filesystem: callers feed buffers or `std::io` streams.

pub mod bitrot;
mod codec;
mod error;

pub use codec::{Codec, ReedSolomonCodec};
pub use error::Error;

/// Largest number of shards (data + parity) of one erasure set: GF(2^8) allows 256.
pub const MAX_SHARDS: usize = 256;
/// Default erasure block size: 1 MiB of object data per encode step.
pub const DEFAULT_BLOCK_SIZE: usize = 1 << 20;

/// An erasure geometry plus its codec: the unit every object is cut with.
pub struct Erasure {
    data: usize,
    parity: usize,
    block_size: usize,
    codec: Box<dyn Codec>,
}

impl std::fmt::Debug for Erasure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Erasure")
            .field("data", &self.data)
            .field("parity", &self.parity)
            .field("block_size", &self.block_size)
            .finish()
    }
}

impl Erasure {
    /// A geometry of `data` + `parity` shards cutting blocks of `block_size` bytes.
    pub fn new(data: usize, parity: usize, block_size: usize) -> Result<Self, Error> {
        if data == 0 || data + parity > MAX_SHARDS || block_size == 0 {
            return Err(Error::InvalidGeometry {
                data,
                parity,
                block_size,
            });
        }
        Ok(Erasure {
            data,
            parity,
            block_size,
            codec: Box::new(ReedSolomonCodec::new(data, parity)?),
        })
    }

    pub fn data_shards(&self) -> usize {
        self.data
    }
    pub fn parity_shards(&self) -> usize {
        self.parity
    }
    pub fn total_shards(&self) -> usize {
        self.data + self.parity
    }
    pub fn block_size(&self) -> usize {
        self.block_size
    }

    /// Bytes of one shard chunk for a full block: `ceil(block_size / data)`.
    pub fn shard_size(&self) -> usize {
        self.chunk_len(self.block_size)
    }

    /// Bytes of one shard chunk for a block of `block_len` bytes (the last block may be short).
    pub fn chunk_len(&self, block_len: usize) -> usize {
        block_len.div_ceil(self.data)
    }

    /// Number of erasure blocks an object of `size` bytes is cut into.
    pub fn block_count(&self, size: u64) -> u64 {
        size.div_ceil(self.block_size as u64)
    }

    /// Length of block `index` of an object of `size` bytes.
    pub fn block_len(&self, size: u64, index: u64) -> usize {
        let start = index * self.block_size as u64;
        size.saturating_sub(start).min(self.block_size as u64) as usize
    }

    /// Payload bytes (without hashes) one shard file holds for an object of `size` bytes.
    pub fn shard_payload_size(&self, size: u64) -> u64 {
        let full = size / self.block_size as u64;
        let rem = (size % self.block_size as u64) as usize;
        full * self.shard_size() as u64 + self.chunk_len(rem) as u64
    }

    /// Size on disk of one shard file, bitrot hashes included, for an object of `size` bytes.
    pub fn shard_file_size(&self, size: u64) -> u64 {
        self.shard_payload_size(size) + self.block_count(size) * bitrot::HASH_LEN as u64
    }

    /// Offset in a shard file where the framed chunk of block `index` starts.
    pub fn chunk_offset(&self, index: u64) -> u64 {
        index * (self.shard_size() + bitrot::HASH_LEN) as u64
    }

    /// Cut one block into `data + parity` shards of `chunk_len(block.len())` bytes each.
    /// The last data shard is zero-padded.
    pub fn encode_block(&self, block: &[u8]) -> Result<Vec<Vec<u8>>, Error> {
        if block.len() > self.block_size {
            return Err(Error::BlockTooLarge {
                len: block.len(),
                block_size: self.block_size,
            });
        }
        let chunk = self.chunk_len(block.len());
        let mut shards: Vec<Vec<u8>> = Vec::with_capacity(self.total_shards());
        for i in 0..self.data {
            let start = (i * chunk).min(block.len());
            let end = ((i + 1) * chunk).min(block.len());
            let mut s = Vec::with_capacity(chunk);
            s.extend_from_slice(&block[start..end]);
            s.resize(chunk, 0);
            shards.push(s);
        }
        for _ in 0..self.parity {
            shards.push(vec![0u8; chunk]);
        }
        if chunk > 0 {
            let mut refs: Vec<&mut [u8]> = shards.iter_mut().map(|s| s.as_mut_slice()).collect();
            self.codec.encode(&mut refs)?;
        }
        Ok(shards)
    }

    /// Rebuild the missing data shards of one block and append its `block_len` bytes to `out`.
    ///
    /// `shards` holds `data + parity` entries, `None` where a shard is missing or failed its
    /// bitrot check; every present shard must be `chunk_len(block_len)` bytes long.
    pub fn decode_block(
        &self,
        shards: &mut [Option<Vec<u8>>],
        block_len: usize,
        out: &mut Vec<u8>,
    ) -> Result<(), Error> {
        self.check_shards(shards, self.chunk_len(block_len))?;
        if shards[..self.data].iter().any(Option::is_none) {
            self.codec.reconstruct(shards, true)?;
        }
        let mut remaining = block_len;
        for s in shards[..self.data].iter().flatten() {
            let take = remaining.min(s.len());
            out.extend_from_slice(&s[..take]);
            remaining -= take;
        }
        Ok(())
    }

    /// Rebuild every missing shard (data and parity) of one block, as heal needs.
    pub fn reconstruct(&self, shards: &mut [Option<Vec<u8>>], chunk: usize) -> Result<(), Error> {
        self.check_shards(shards, chunk)?;
        if shards.iter().any(Option::is_none) {
            self.codec.reconstruct(shards, false)?;
        }
        Ok(())
    }

    fn check_shards(&self, shards: &[Option<Vec<u8>>], chunk: usize) -> Result<(), Error> {
        if shards.len() != self.total_shards() {
            return Err(Error::ShardCount {
                got: shards.len(),
                want: self.total_shards(),
            });
        }
        let have = shards.iter().filter(|s| s.is_some()).count();
        if have < self.data {
            return Err(Error::TooFewShards {
                have,
                need: self.data,
            });
        }
        if let Some((index, s)) = shards
            .iter()
            .enumerate()
            .find_map(|(i, s)| s.as_ref().filter(|s| s.len() != chunk).map(|s| (i, s)))
        {
            return Err(Error::ShardLength {
                shard: index,
                got: s.len(),
                want: chunk,
            });
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests;
