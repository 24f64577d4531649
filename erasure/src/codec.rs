use crate::Error;

/// The seam to a GF(2^8) Reed-Solomon implementation.
///
/// Implementations must use the klauspost/reedsolomon encoding matrix (a Vandermonde matrix
/// whose top square is made the identity), so that shards stay byte-compatible with MinIO's.
pub trait Codec: Send + Sync {
    /// Fill the parity shards from the data shards. All slices have the same length.
    fn encode_sep(&self, data: &[&[u8]], parity: &mut [&mut [u8]]) -> Result<(), Error>;

    /// Rebuild, in place, the shards flagged `false` from those flagged `true`; only the
    /// data shards when `data_only` is set. All slices have the same length.
    fn reconstruct(&self, shards: &mut [(&mut [u8], bool)], data_only: bool) -> Result<(), Error>;

    /// Rebuild lost data shards into `lost` (`(shard index, output)`) from the shards
    /// `present` (data then parity, `None` where missing), which are only read: a read
    /// that holds its shards as shared buffers rebuilds what it lacks without copying what
    /// it has. All slices have the same length.
    ///
    /// The default copies the shards and calls [`Codec::reconstruct`].
    fn rebuild_data(
        &self,
        present: &[Option<&[u8]>],
        lost: &mut [(usize, &mut [u8])],
    ) -> Result<(), Error> {
        let len = present
            .iter()
            .flatten()
            .map(|s| s.len())
            .next()
            .unwrap_or(0);
        let mut owned: Vec<Vec<u8>> = present
            .iter()
            .map(|p| p.map_or_else(|| vec![0u8; len], <[u8]>::to_vec))
            .collect();
        let mut slices: Vec<(&mut [u8], bool)> = owned
            .iter_mut()
            .zip(present)
            .map(|(o, p)| (o.as_mut_slice(), p.is_some()))
            .collect();
        self.reconstruct(&mut slices, true)?;
        for (i, out) in lost.iter_mut() {
            let src = owned.get(*i).ok_or(Error::ShardCount {
                got: *i,
                want: present.len(),
            })?;
            out.copy_from_slice(src);
        }
        Ok(())
    }
}

/// `reed-solomon-erasure`'s GF(2^8) codec (with its SIMD kernels under the `simd` feature).
/// With zero parity shards it degenerates to plain striping.
pub struct ReedSolomonCodec {
    inner: Option<reed_solomon_erasure::galois_8::ReedSolomon>,
}

impl ReedSolomonCodec {
    pub fn new(data: usize, parity: usize) -> Result<Self, Error> {
        let inner = if parity == 0 {
            None
        } else {
            Some(
                reed_solomon_erasure::galois_8::ReedSolomon::new(data, parity)
                    .map_err(|e| Error::Codec(format!("{e:?}")))?,
            )
        };
        Ok(ReedSolomonCodec { inner })
    }
}

fn codec_err(e: reed_solomon_erasure::Error) -> Error {
    match e {
        reed_solomon_erasure::Error::TooFewShardsPresent => {
            Error::TooFewShards { have: 0, need: 0 }
        }
        other => Error::Codec(format!("{other:?}")),
    }
}

impl Codec for ReedSolomonCodec {
    fn encode_sep(&self, data: &[&[u8]], parity: &mut [&mut [u8]]) -> Result<(), Error> {
        match &self.inner {
            Some(rs) => rs.encode_sep(data, parity).map_err(codec_err),
            None => Ok(()),
        }
    }

    fn reconstruct(&self, shards: &mut [(&mut [u8], bool)], data_only: bool) -> Result<(), Error> {
        match &self.inner {
            Some(rs) if data_only => rs.reconstruct_data(shards).map_err(codec_err),
            Some(rs) => rs.reconstruct(shards).map_err(codec_err),
            None if shards.iter().all(|s| s.1) => Ok(()),
            None => Err(Error::TooFewShards {
                have: shards.iter().filter(|s| s.1).count(),
                need: shards.len(),
            }),
        }
    }
}
