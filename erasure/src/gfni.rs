//! A klauspost-compatible GF(2^8) codec on GFNI.
//!
//! Multiplying a byte by a constant of GF(2^8) is linear over GF(2): an 8x8 bit matrix, which
//! `vgf2p8affineqb` applies to all 64 bytes of a vector in one instruction, for any field
//! polynomial (`vgf2p8mulb` is fixed to AES's 0x11b, so it cannot be used for 0x11d). One
//! output vector of a parity shard is then `d` affine products XORed together, with no lookup
//! tables, where the nibble-table (`pshufb`) kernels of ISA-L and `reed-solomon-erasure` spend
//! two shuffles, two masks and a shift per input vector.
//!
//! The same kernel serves encoding (parity rows of the encoding matrix) and reconstruction
//! (rows of the inverted sub-matrix of the shards present), so both stay byte-identical to
//! [`crate::ReedSolomonCodec`] (tests compare them on random geometries, lengths and losses).

use crate::gf::{self, Matrix};
use crate::{Codec, Error};
use std::arch::x86_64::__m512i;

/// Output rows computed together: the inputs are read once per group, and `4` accumulators
/// plus the input vector stay in registers.
const GROUP: usize = 4;

pub struct GfniCodec {
    data: usize,
    parity: usize,
    /// `(data + parity) x data`, the top square the identity.
    matrix: Matrix,
    /// The parity rows, ready for the kernel.
    encode: Prepared,
}

/// Whether this CPU runs the kernel (AVX-512F/BW and GFNI).
pub fn supported() -> bool {
    is_x86_feature_detected!("avx512f")
        && is_x86_feature_detected!("avx512bw")
        && is_x86_feature_detected!("gfni")
}

impl GfniCodec {
    /// `None` when the CPU lacks GFNI/AVX-512 or there are no parity shards (then
    /// [`crate::ReedSolomonCodec`] is used).
    pub fn new(data: usize, parity: usize) -> Option<GfniCodec> {
        if parity == 0 || !supported() {
            return None;
        }
        let matrix = gf::encoding_matrix(data, data + parity)?;
        let parity_rows: Vec<&[u8]> = matrix[data..].iter().map(Vec::as_slice).collect();
        let encode = Prepared::new(&parity_rows);
        Some(GfniCodec {
            data,
            parity,
            matrix,
            encode,
        })
    }
}

fn same_length(lens: impl Iterator<Item = usize>) -> Result<usize, Error> {
    let mut lens = lens.peekable();
    let first = lens.peek().copied().unwrap_or(0);
    if lens.all(|l| l == first) {
        Ok(first)
    } else {
        Err(Error::Codec("shards of different lengths".into()))
    }
}

/// Rows of coefficients as the kernel takes them: per group of up to [`GROUP`] output rows,
/// `affine[k * G + j]` multiplies input `k` into output `j` of the group.
struct Prepared {
    groups: Vec<Vec<u64>>,
}

impl Prepared {
    fn new(rows: &[&[u8]]) -> Prepared {
        let groups = rows
            .chunks(GROUP)
            .map(|g| {
                let n = g.first().map_or(0, |r| r.len());
                (0..n)
                    .flat_map(|k| g.iter().map(move |r| gf::affine_matrix(r[k])))
                    .collect()
            })
            .collect();
        Prepared { groups }
    }

    /// `outputs[r] = XOR_k rows[r][k] * inputs[k]` over GF(2^8).
    fn apply(&self, inputs: &[&[u8]], outputs: &mut [&mut [u8]]) {
        for (affine, outs) in self.groups.iter().zip(outputs.chunks_mut(GROUP)) {
            // SAFETY: a GfniCodec exists only where `supported()` found AVX-512F/BW and GFNI,
            // the features these kernels are compiled for; they touch memory only through
            // slices.
            #[allow(unsafe_code)]
            unsafe {
                match outs.len() {
                    4 => strip::<4>(affine, inputs, outs),
                    3 => strip::<3>(affine, inputs, outs),
                    2 => strip::<2>(affine, inputs, outs),
                    _ => strip::<1>(affine, inputs, outs),
                }
            }
        }
    }
}

/// `G` output rows over every 64-byte column; `affine[k * G + j]` multiplies input `k` into
/// output `j`. The tail (under 64 bytes) goes through a zero-padded copy.
#[target_feature(enable = "avx512f,avx512bw,gfni")]
fn strip<const G: usize>(affine: &[u64], inputs: &[&[u8]], outputs: &mut [&mut [u8]]) {
    use std::arch::x86_64::*;
    let n = inputs.len();
    let mats: Vec<__m512i> = affine
        .iter()
        .map(|&m| _mm512_set1_epi64(m as i64))
        .collect();
    let ins: Vec<&[[u8; 64]]> = inputs.iter().map(|s| s.as_chunks::<64>().0).collect();
    let len = outputs.first().map_or(0, |o| o.len());
    let body = len / 64;
    let store = |outputs: &mut [&mut [u8]], c: usize, acc: [__m512i; G]| {
        for (out, v) in outputs.iter_mut().zip(acc) {
            let bytes: [u8; 64] = zerocopy::transmute!(v);
            out[c * 64..(c + 1) * 64].copy_from_slice(&bytes);
        }
    };
    // Four columns per step: independent accumulator chains hide the affine latency.
    let mut c = 0;
    while c + 4 <= body {
        let acc = columns::<G, 4>(&mats, n, |k| {
            let x = &ins[k][c..c + 4];
            [
                zerocopy::transmute!(x[0]),
                zerocopy::transmute!(x[1]),
                zerocopy::transmute!(x[2]),
                zerocopy::transmute!(x[3]),
            ]
        });
        for (u, a) in acc.into_iter().enumerate() {
            store(outputs, c + u, a);
        }
        c += 4;
    }
    while c < body {
        let [a] = columns::<G, 1>(&mats, n, |k| [zerocopy::transmute!(ins[k][c])]);
        store(outputs, c, a);
        c += 1;
    }
    let tail = len - body * 64;
    if tail > 0 {
        let [acc] = columns::<G, 1>(&mats, n, |k| {
            let mut buf = [0u8; 64];
            buf[..tail].copy_from_slice(&inputs[k][body * 64..]);
            [zerocopy::transmute!(buf)]
        });
        for (out, v) in outputs.iter_mut().zip(acc) {
            let bytes: [u8; 64] = zerocopy::transmute!(v);
            out[body * 64..].copy_from_slice(&bytes[..tail]);
        }
    }
}

/// `U` adjacent 64-byte columns of `G` outputs: `n` affine products per output, XORed.
#[target_feature(enable = "avx512f,avx512bw,gfni")]
#[inline]
fn columns<const G: usize, const U: usize>(
    mats: &[__m512i],
    n: usize,
    load: impl Fn(usize) -> [__m512i; U],
) -> [[__m512i; G]; U] {
    use std::arch::x86_64::*;
    let mut acc = [[_mm512_setzero_si512(); G]; U];
    for k in 0..n {
        let xs = load(k);
        for (x, acc) in xs.into_iter().zip(acc.iter_mut()) {
            for (j, a) in acc.iter_mut().enumerate() {
                *a = _mm512_xor_si512(*a, _mm512_gf2p8affine_epi64_epi8::<0>(x, mats[k * G + j]));
            }
        }
    }
    acc
}

impl Codec for GfniCodec {
    fn encode_sep(&self, data: &[&[u8]], parity: &mut [&mut [u8]]) -> Result<(), Error> {
        if data.len() != self.data || parity.len() != self.parity {
            return Err(Error::ShardCount {
                got: data.len() + parity.len(),
                want: self.data + self.parity,
            });
        }
        same_length(
            data.iter()
                .map(|s| s.len())
                .chain(parity.iter().map(|s| s.len())),
        )?;
        self.encode.apply(data, parity);
        Ok(())
    }

    fn rebuild_data(
        &self,
        present: &[Option<&[u8]>],
        lost: &mut [(usize, &mut [u8])],
    ) -> Result<(), Error> {
        let total = self.data + self.parity;
        if present.len() != total || lost.iter().any(|(i, _)| *i >= self.data) {
            return Err(Error::ShardCount {
                got: present.len(),
                want: total,
            });
        }
        same_length(
            present
                .iter()
                .flatten()
                .map(|s| s.len())
                .chain(lost.iter().map(|(_, o)| o.len())),
        )?;
        // Through the inverse of the rows of the first `data` shards present.
        let used: Vec<(usize, &[u8])> = present
            .iter()
            .enumerate()
            .filter_map(|(i, s)| s.map(|s| (i, s)))
            .take(self.data)
            .collect();
        if used.len() < self.data {
            return Err(Error::TooFewShards {
                have: used.len(),
                need: self.data,
            });
        }
        if lost.is_empty() {
            return Ok(());
        }
        let sub: Matrix = used.iter().map(|(i, _)| self.matrix[*i].clone()).collect();
        let inverse =
            gf::invert(&sub).ok_or_else(|| Error::Codec("singular decode matrix".into()))?;
        let rows: Vec<&[u8]> = lost.iter().map(|(i, _)| inverse[*i].as_slice()).collect();
        let inputs: Vec<&[u8]> = used.iter().map(|(_, s)| *s).collect();
        let mut outputs: Vec<&mut [u8]> = lost.iter_mut().map(|(_, o)| &mut **o).collect();
        Prepared::new(&rows).apply(&inputs, &mut outputs);
        Ok(())
    }

    fn reconstruct(&self, shards: &mut [(&mut [u8], bool)], data_only: bool) -> Result<(), Error> {
        let total = self.data + self.parity;
        if shards.len() != total {
            return Err(Error::ShardCount {
                got: shards.len(),
                want: total,
            });
        }
        same_length(shards.iter().map(|s| s.0.len()))?;
        let have = shards.iter().filter(|s| s.1).count();
        if have < self.data {
            return Err(Error::TooFewShards {
                have,
                need: self.data,
            });
        }
        // Data shards first: from the first `data` shards present, through the inverse of
        // their rows of the encoding matrix.
        let used: Vec<usize> = (0..total)
            .filter(|&i| shards[i].1)
            .take(self.data)
            .collect();
        let lost_data: Vec<usize> = (0..self.data).filter(|&i| !shards[i].1).collect();
        if !lost_data.is_empty() {
            let sub: Matrix = used.iter().map(|&i| self.matrix[i].clone()).collect();
            let inverse =
                gf::invert(&sub).ok_or_else(|| Error::Codec("singular decode matrix".into()))?;
            let rows: Vec<&[u8]> = lost_data.iter().map(|&i| inverse[i].as_slice()).collect();
            let (inputs, mut outputs) = split(shards, &used, &lost_data);
            Prepared::new(&rows).apply(&inputs, &mut outputs);
        }
        if data_only {
            return Ok(());
        }
        // Then parity, re-encoded from the (now whole) data.
        let lost_parity: Vec<usize> = (self.data..total).filter(|&i| !shards[i].1).collect();
        if !lost_parity.is_empty() {
            let rows: Vec<&[u8]> = lost_parity
                .iter()
                .map(|&i| self.matrix[i].as_slice())
                .collect();
            let data: Vec<usize> = (0..self.data).collect();
            let (inputs, mut outputs) = split(shards, &data, &lost_parity);
            Prepared::new(&rows).apply(&inputs, &mut outputs);
        }
        Ok(())
    }
}

/// Borrow the shards at `read` (ascending) and at `write` (ascending, disjoint from `read`).
fn split<'a>(
    shards: &'a mut [(&mut [u8], bool)],
    read: &[usize],
    write: &[usize],
) -> (Vec<&'a [u8]>, Vec<&'a mut [u8]>) {
    let mut inputs = Vec::with_capacity(read.len());
    let mut outputs = Vec::with_capacity(write.len());
    for (i, (s, _)) in shards.iter_mut().enumerate() {
        if read.contains(&i) {
            inputs.push(&**s);
        } else if write.contains(&i) {
            outputs.push(&mut **s);
        }
    }
    (inputs, outputs)
}
