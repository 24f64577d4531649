use crate::Error;

/// The seam to a GF(2^8) Reed-Solomon implementation.
///
/// Implementations must use the klauspost/reedsolomon encoding matrix (a Vandermonde matrix
/// whose top square is made the identity), so that shards stay byte-compatible with MinIO's.
pub trait Codec: Send + Sync {
    /// Fill the parity shards (the last `parity` entries) from the data shards.
    /// All slices have the same length.
    fn encode(&self, shards: &mut [&mut [u8]]) -> Result<(), Error>;

    /// Rebuild the `None` entries from the present ones; only the data shards when
    /// `data_only` is set.
    fn reconstruct(&self, shards: &mut [Option<Vec<u8>>], data_only: bool) -> Result<(), Error>;
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
    fn encode(&self, shards: &mut [&mut [u8]]) -> Result<(), Error> {
        match &self.inner {
            Some(rs) => rs.encode(shards).map_err(codec_err),
            None => Ok(()),
        }
    }

    fn reconstruct(&self, shards: &mut [Option<Vec<u8>>], data_only: bool) -> Result<(), Error> {
        match &self.inner {
            Some(rs) if data_only => rs.reconstruct_data(shards).map_err(codec_err),
            Some(rs) => rs.reconstruct(shards).map_err(codec_err),
            None if shards.iter().all(Option::is_some) => Ok(()),
            None => Err(Error::TooFewShards {
                have: shards.iter().filter(|s| s.is_some()).count(),
                need: shards.len(),
            }),
        }
    }
}
