//! Erasure coding and bitrot protection for Cairn.
//!
//! This crate owns the math and the framing, never the I/O policy:
//!
//! * [`Codec`] is the one small seam to a GF(2^8) Reed-Solomon implementation.
//!   [`ReedSolomonCodec`] wraps `reed-solomon-erasure`, whose Vandermonde-derived
//!   encoding matrix is the one of klauspost/reedsolomon (and so MinIO): shards
//!   written by Cairn are byte-identical to theirs for the same geometry.
//!   `GfniCodec` (x86-64) computes the same bytes with `vgf2p8affineqb`, 1.7–3x faster;
//!   [`best_codec`] picks it when the CPU has GFNI and AVX-512.
//! * [`Erasure`] cuts a stream block by block (default 1 MiB) into `data` +
//!   `parity` shards of `ceil(block / data)` bytes, decodes from any `data`
//!   shards and rebuilds any missing shard.
//! * [`bitrot`] frames a shard file as `[blake3(chunk)][chunk]...`, one chunk
//!   per erasure block, and verifies every chunk as it is read.
//!
//! No tokio, no filesystem: callers feed buffers or `std::io` streams.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock};

pub mod bitrot;
mod codec;
mod error;
mod gf;
#[cfg(target_arch = "x86_64")]
mod gfni;

pub use codec::{Codec, ReedSolomonCodec};
#[cfg(target_arch = "x86_64")]
pub use gfni::GfniCodec;

/// The fastest codec this CPU runs for a geometry: [`GfniCodec`] where GFNI and AVX-512 are
/// available, else [`ReedSolomonCodec`]. Both produce the same bytes.
pub fn best_codec(data: usize, parity: usize) -> Result<Box<dyn Codec>, Error> {
    #[cfg(target_arch = "x86_64")]
    if let Some(c) = GfniCodec::new(data, parity) {
        return Ok(Box::new(c));
    }
    Ok(Box::new(ReedSolomonCodec::new(data, parity)?))
}

/// Largest geometry (data + parity shards) [`shared_codec`] keeps: erasure sets are at most
/// this wide, so the codecs kept are bounded by the geometries a deployment uses.
const SHARED_MAX_SHARDS: usize = 64;

/// [`best_codec`] for a geometry, built once per process and shared: building one derives
/// its encoding matrix (and for `reed-solomon-erasure`, its cache of inverted decoding
/// matrices starts empty), which a read of a small object would otherwise pay every time.
/// Geometries wider than [`SHARED_MAX_SHARDS`] get a codec of their own.
pub fn shared_codec(data: usize, parity: usize) -> Result<Arc<dyn Codec>, Error> {
    type Codecs = HashMap<(usize, usize), Arc<dyn Codec>>;
    static CODECS: OnceLock<Mutex<Codecs>> = OnceLock::new();
    if data == 0 || data.saturating_add(parity) > MAX_SHARDS {
        return Err(Error::InvalidGeometry {
            data,
            parity,
            block_size: 0,
        });
    }
    if data + parity > SHARED_MAX_SHARDS {
        return Ok(Arc::from(best_codec(data, parity)?));
    }
    let codecs = CODECS.get_or_init(Default::default);
    // A poisoned lock only means another thread panicked while holding it: the map is
    // still whole (an insert either happened or did not).
    let lock = || codecs.lock().unwrap_or_else(|e| e.into_inner());
    if let Some(c) = lock().get(&(data, parity)) {
        return Ok(c.clone());
    }
    let codec: Arc<dyn Codec> = Arc::from(best_codec(data, parity)?);
    Ok(lock().entry((data, parity)).or_insert(codec).clone())
}
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
    codec: Arc<dyn Codec>,
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
    /// A geometry of `data` + `parity` shards cutting blocks of `block_size` bytes, with
    /// the fastest codec this CPU runs ([`best_codec`], shared: [`shared_codec`]).
    pub fn new(data: usize, parity: usize, block_size: usize) -> Result<Self, Error> {
        Self::check(data, parity, block_size)?;
        Ok(Erasure {
            data,
            parity,
            block_size,
            codec: shared_codec(data, parity)?,
        })
    }

    /// The same geometry with a given codec (benches and tests compare codecs).
    pub fn with_codec(
        data: usize,
        parity: usize,
        block_size: usize,
        codec: Box<dyn Codec>,
    ) -> Result<Self, Error> {
        Self::check(data, parity, block_size)?;
        Ok(Erasure {
            data,
            parity,
            block_size,
            codec: Arc::from(codec),
        })
    }

    fn check(data: usize, parity: usize, block_size: usize) -> Result<(), Error> {
        if data == 0 || data + parity > MAX_SHARDS || block_size == 0 {
            return Err(Error::InvalidGeometry {
                data,
                parity,
                block_size,
            });
        }
        Ok(())
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

    /// Cut one block into `data + parity` owned shards of `chunk_len(block.len())` bytes each
    /// (the tail zero-padded). Convenient; [`Erasure::encode_into`] avoids the copies.
    pub fn encode_block(&self, block: &[u8]) -> Result<Vec<Vec<u8>>, Error> {
        let mut pad = Vec::new();
        let mut parity = Vec::new();
        let data = self.encode_into(block, &mut pad, &mut parity)?;
        let mut shards: Vec<Vec<u8>> = data.iter().map(|s| s.to_vec()).collect();
        shards.extend(parity);
        Ok(shards)
    }

    /// Encode one block without copying its data. Returns the `data` shards as slices of
    /// `block`, except the tail shards that a short block leaves incomplete, which are
    /// zero-padded into `pad`; fills `parity` (buffers are reused across calls).
    pub fn encode_into<'a>(
        &self,
        block: &'a [u8],
        pad: &'a mut Vec<u8>,
        parity: &mut Vec<Vec<u8>>,
    ) -> Result<Vec<&'a [u8]>, Error> {
        if block.len() > self.block_size {
            return Err(Error::BlockTooLarge {
                len: block.len(),
                block_size: self.block_size,
            });
        }
        let chunk = self.chunk_len(block.len());
        parity.resize_with(self.parity, Vec::new);
        for p in parity.iter_mut() {
            p.clear();
            p.resize(chunk, 0);
        }
        if chunk == 0 {
            return Ok(vec![&[][..]; self.data]);
        }
        let whole = block.len() / chunk;
        let (head, tail) = block.split_at(whole * chunk);
        pad.clear();
        pad.extend_from_slice(tail);
        pad.resize((self.data - whole) * chunk, 0);
        let mut data: Vec<&'a [u8]> = head.chunks(chunk).collect();
        data.extend(pad.chunks(chunk));
        let mut parity_refs: Vec<&mut [u8]> = parity.iter_mut().map(Vec::as_mut_slice).collect();
        self.codec.encode_sep(&data, &mut parity_refs)?;
        Ok(data)
    }

    /// Encode one block given as consecutive `pieces` (at most `block_size` bytes in all)
    /// into every shard's frame for a shard file (`[blake3(chunk)][chunk]`, as
    /// [`bitrot::frame`] lays them out): data shards first, then parity, each in a buffer of
    /// its own. The data is copied from the pieces straight into its frames (zero-padded at
    /// a short block's tail), so a block need not be contiguous in memory, and the parity
    /// is encoded in place after its hash's room.
    pub fn encode_framed<P: AsRef<[u8]>>(&self, pieces: &[P]) -> Result<Vec<Vec<u8>>, Error> {
        let len = pieces
            .iter()
            .try_fold(0usize, |n, p| n.checked_add(p.as_ref().len()))
            .filter(|&n| n <= self.block_size)
            .ok_or_else(|| Error::BlockTooLarge {
                len: pieces
                    .iter()
                    .map(|p| p.as_ref().len())
                    .fold(0, usize::saturating_add),
                block_size: self.block_size,
            })?;
        let chunk = self.chunk_len(len);
        let framed = bitrot::HASH_LEN + chunk;
        let mut frames = Vec::with_capacity(self.total_shards());
        let mut bytes = pieces.iter().map(AsRef::as_ref).filter(|p| !p.is_empty());
        let mut piece: &[u8] = &[];
        for _ in 0..self.data {
            let mut frame = Vec::with_capacity(framed);
            frame.resize(bitrot::HASH_LEN, 0);
            while frame.len() < framed {
                if piece.is_empty() {
                    match bytes.next() {
                        Some(p) => piece = p,
                        None => break,
                    }
                }
                let take = (framed - frame.len()).min(piece.len());
                let (now, rest) = piece.split_at(take);
                frame.extend_from_slice(now);
                piece = rest;
            }
            frame.resize(framed, 0);
            frames.push(frame);
        }
        frames.resize_with(self.total_shards(), || vec![0; framed]);
        if chunk > 0 {
            let (data, parity) = frames.split_at_mut(self.data);
            let data: Vec<&[u8]> = data.iter().map(|f| &f[bitrot::HASH_LEN..]).collect();
            let mut parity: Vec<&mut [u8]> = parity
                .iter_mut()
                .map(|f| &mut f[bitrot::HASH_LEN..])
                .collect();
            self.codec.encode_sep(&data, &mut parity)?;
        }
        for f in &mut frames {
            let (hash, chunk) = f.split_at_mut(bitrot::HASH_LEN);
            hash.copy_from_slice(&bitrot::hash(chunk));
        }
        Ok(frames)
    }

    /// Append the `block_len` bytes of one block to `out`, rebuilding missing data shards
    /// directly in `out`.
    ///
    /// `shards` holds `data + parity` entries, `None` where a shard is missing or failed its
    /// bitrot check; every present shard must be `chunk_len(block_len)` bytes long. Present
    /// shards are not modified.
    pub fn decode_block(
        &self,
        shards: &mut [Option<Vec<u8>>],
        block_len: usize,
        out: &mut Vec<u8>,
    ) -> Result<(), Error> {
        let chunk = self.chunk_len(block_len);
        self.check_shards(shards, chunk)?;
        let start = out.len();
        out.resize(start + self.data * chunk, 0);
        let dst = &mut out[start..];
        let (data_shards, parity_shards) = shards.split_at_mut(self.data);
        let mut missing = false;
        for (i, s) in data_shards.iter().enumerate() {
            match s {
                Some(s) => dst[i * chunk..(i + 1) * chunk].copy_from_slice(s),
                None => missing = true,
            }
        }
        if missing && chunk > 0 {
            let mut scratch: Vec<Vec<u8>> = parity_shards
                .iter()
                .filter(|p| p.is_none())
                .map(|_| vec![0u8; chunk])
                .collect();
            let mut scratch = scratch.iter_mut();
            let mut slices: Vec<(&mut [u8], bool)> = Vec::with_capacity(self.total_shards());
            for (i, d) in dst.chunks_mut(chunk).enumerate() {
                slices.push((d, data_shards[i].is_some()));
            }
            for p in parity_shards.iter_mut() {
                match p {
                    Some(p) => slices.push((p.as_mut_slice(), true)),
                    None => {
                        let s = scratch.next().ok_or(Error::Codec("scratch".into()))?;
                        slices.push((s.as_mut_slice(), false));
                    }
                }
            }
            self.codec.reconstruct(&mut slices, true)?;
        }
        out.truncate(start + block_len);
        Ok(())
    }

    /// The missing data shards of one block, rebuilt from the shards `present` (data then
    /// parity, each `chunk` bytes, `None` where missing or bad), which are only read:
    /// `(shard index, bytes)` for each data shard that is `None`.
    pub fn rebuild_data(
        &self,
        present: &[Option<&[u8]>],
        chunk: usize,
    ) -> Result<Vec<(usize, Vec<u8>)>, Error> {
        if present.len() != self.total_shards() {
            return Err(Error::ShardCount {
                got: present.len(),
                want: self.total_shards(),
            });
        }
        if let Some((shard, s)) = present
            .iter()
            .enumerate()
            .find_map(|(i, s)| s.filter(|s| s.len() != chunk).map(|s| (i, s)))
        {
            return Err(Error::ShardLength {
                shard,
                got: s.len(),
                want: chunk,
            });
        }
        let mut rebuilt: Vec<(usize, Vec<u8>)> = (0..self.data)
            .filter(|&i| present[i].is_none())
            .map(|i| (i, vec![0u8; chunk]))
            .collect();
        let have = present.iter().filter(|s| s.is_some()).count();
        if have < self.data {
            return Err(Error::TooFewShards {
                have,
                need: self.data,
            });
        }
        if rebuilt.is_empty() || chunk == 0 {
            return Ok(rebuilt);
        }
        let mut lost: Vec<(usize, &mut [u8])> = rebuilt
            .iter_mut()
            .map(|(i, b)| (*i, b.as_mut_slice()))
            .collect();
        self.codec.rebuild_data(present, &mut lost)?;
        Ok(rebuilt)
    }

    /// Rebuild every missing shard (data and parity) of one block, as heal needs.
    pub fn reconstruct(&self, shards: &mut [Option<Vec<u8>>], chunk: usize) -> Result<(), Error> {
        self.check_shards(shards, chunk)?;
        if shards.iter().all(Option::is_some) {
            return Ok(());
        }
        let present: Vec<bool> = shards.iter().map(Option::is_some).collect();
        for s in shards.iter_mut() {
            s.get_or_insert_with(|| vec![0u8; chunk]);
        }
        let mut slices: Vec<(&mut [u8], bool)> = shards
            .iter_mut()
            .zip(present)
            .filter_map(|(s, p)| s.as_mut().map(|s| (s.as_mut_slice(), p)))
            .collect();
        self.codec.reconstruct(&mut slices, false)
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
