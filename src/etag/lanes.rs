//! MD5's compression function over up to [`LANES`] independent messages at once.
//!
//! One MD5 stream is a chain of dependent 32-bit operations, so a core runs it at about
//! 0.65 GB/s however wide its vectors are. Sixteen *different* streams, though, can share one
//! pass: lane `l` of every vector holds stream `l`'s state, and each instruction advances all
//! sixteen (the "multi-buffer" technique of Intel's ISA-L crypto library). The code below is
//! plain Rust over `[u32; LANES]` arrays; compiled for AVX-512 (or AVX2) the compiler keeps
//! each array in one register (or two) and every line of a step becomes one vector
//! instruction, including the rotates (`vprold`) and the bit-select functions.
//!
//! The digests are those of MD5 (RFC 1321), checked against the `md-5` crate in the tests.

/// How many messages one pass advances.
pub const LANES: usize = 16;

/// MD5's initial state (RFC 1321, 3.3).
pub const INIT: [u32; 4] = [0x6745_2301, 0xefcd_ab89, 0x98ba_dcfe, 0x1032_5476];

/// `floor(abs(sin(i + 1)) * 2^32)` (RFC 1321, 3.4).
const T: [u32; 64] = [
    0xd76a_a478,
    0xe8c7_b756,
    0x2420_70db,
    0xc1bd_ceee,
    0xf57c_0faf,
    0x4787_c62a,
    0xa830_4613,
    0xfd46_9501,
    0x6980_98d8,
    0x8b44_f7af,
    0xffff_5bb1,
    0x895c_d7be,
    0x6b90_1122,
    0xfd98_7193,
    0xa679_438e,
    0x49b4_0821,
    0xf61e_2562,
    0xc040_b340,
    0x265e_5a51,
    0xe9b6_c7aa,
    0xd62f_105d,
    0x0244_1453,
    0xd8a1_e681,
    0xe7d3_fbc8,
    0x21e1_cde6,
    0xc337_07d6,
    0xf4d5_0d87,
    0x455a_14ed,
    0xa9e3_e905,
    0xfcef_a3f8,
    0x676f_02d9,
    0x8d2a_4c8a,
    0xfffa_3942,
    0x8771_f681,
    0x6d9d_6122,
    0xfde5_380c,
    0xa4be_ea44,
    0x4bde_cfa9,
    0xf6bb_4b60,
    0xbebf_bc70,
    0x289b_7ec6,
    0xeaa1_27fa,
    0xd4ef_3085,
    0x0488_1d05,
    0xd9d4_d039,
    0xe6db_99e5,
    0x1fa2_7cf8,
    0xc4ac_5665,
    0xf429_2244,
    0x432a_ff97,
    0xab94_23a7,
    0xfc93_a039,
    0x655b_59c3,
    0x8f0c_cc92,
    0xffef_f47d,
    0x8584_5dd1,
    0x6fa8_7e4f,
    0xfe2c_e6e0,
    0xa301_4314,
    0x4e08_11a1,
    0xf753_7e82,
    0xbd3a_f235,
    0x2ad7_d2bb,
    0xeb86_d391,
];

#[inline(always)]
fn f(b: u32, c: u32, d: u32) -> u32 {
    d ^ (b & (c ^ d))
}
#[inline(always)]
fn g(b: u32, c: u32, d: u32) -> u32 {
    c ^ (d & (b ^ c))
}
#[inline(always)]
fn h(b: u32, c: u32, d: u32) -> u32 {
    b ^ c ^ d
}
#[inline(always)]
fn i(b: u32, c: u32, d: u32) -> u32 {
    c ^ (b | !d)
}

/// One 64-byte block of every lane: `x[w][l]` is little-endian word `w` of lane `l`'s block.
#[inline(always)]
fn compress<const L: usize>(s: &mut [[u32; L]; 4], x: &[[u32; L]; 16]) {
    let [mut a, mut b, mut c, mut d] = *s;
    macro_rules! step {
        ($fun:ident, $a:ident, $b:ident, $c:ident, $d:ident, $k:expr, $s:expr, $t:expr) => {
            // `a + x + t` does not wait for `b`: only the last four operations are on the
            // chain from one step to the next.
            for l in 0..L {
                let v = $a[l]
                    .wrapping_add(x[$k][l].wrapping_add(T[$t]))
                    .wrapping_add($fun($b[l], $c[l], $d[l]));
                $a[l] = $b[l].wrapping_add(v.rotate_left($s));
            }
        };
    }
    macro_rules! four {
        ($fun:ident, $t:expr, [$k0:expr, $k1:expr, $k2:expr, $k3:expr], [$s0:expr, $s1:expr, $s2:expr, $s3:expr]) => {
            step!($fun, a, b, c, d, $k0, $s0, $t);
            step!($fun, d, a, b, c, $k1, $s1, $t + 1);
            step!($fun, c, d, a, b, $k2, $s2, $t + 2);
            step!($fun, b, c, d, a, $k3, $s3, $t + 3);
        };
    }
    const R1: [u32; 4] = [7, 12, 17, 22];
    const R2: [u32; 4] = [5, 9, 14, 20];
    const R3: [u32; 4] = [4, 11, 16, 23];
    const R4: [u32; 4] = [6, 10, 15, 21];
    four!(f, 0, [0, 1, 2, 3], [R1[0], R1[1], R1[2], R1[3]]);
    four!(f, 4, [4, 5, 6, 7], [R1[0], R1[1], R1[2], R1[3]]);
    four!(f, 8, [8, 9, 10, 11], [R1[0], R1[1], R1[2], R1[3]]);
    four!(f, 12, [12, 13, 14, 15], [R1[0], R1[1], R1[2], R1[3]]);
    four!(g, 16, [1, 6, 11, 0], [R2[0], R2[1], R2[2], R2[3]]);
    four!(g, 20, [5, 10, 15, 4], [R2[0], R2[1], R2[2], R2[3]]);
    four!(g, 24, [9, 14, 3, 8], [R2[0], R2[1], R2[2], R2[3]]);
    four!(g, 28, [13, 2, 7, 12], [R2[0], R2[1], R2[2], R2[3]]);
    four!(h, 32, [5, 8, 11, 14], [R3[0], R3[1], R3[2], R3[3]]);
    four!(h, 36, [1, 4, 7, 10], [R3[0], R3[1], R3[2], R3[3]]);
    four!(h, 40, [13, 0, 3, 6], [R3[0], R3[1], R3[2], R3[3]]);
    four!(h, 44, [9, 12, 15, 2], [R3[0], R3[1], R3[2], R3[3]]);
    four!(i, 48, [0, 7, 14, 5], [R4[0], R4[1], R4[2], R4[3]]);
    four!(i, 52, [12, 3, 10, 1], [R4[0], R4[1], R4[2], R4[3]]);
    four!(i, 56, [8, 15, 6, 13], [R4[0], R4[1], R4[2], R4[3]]);
    four!(i, 60, [4, 11, 2, 9], [R4[0], R4[1], R4[2], R4[3]]);
    for l in 0..L {
        s[0][l] = s[0][l].wrapping_add(a[l]);
        s[1][l] = s[1][l].wrapping_add(b[l]);
        s[2][l] = s[2][l].wrapping_add(c[l]);
        s[3][l] = s[3][l].wrapping_add(d[l]);
    }
}

/// Advances one state over `data` (a multiple of 64 bytes; a shorter tail is ignored).
pub fn compress_one(state: &mut [u32; 4], data: &[u8]) {
    let mut s = state.map(|v| [v]);
    let mut x = [[0u32; 1]; 16];
    for block in data.chunks_exact(64) {
        for (w, word) in block.chunks_exact(4).enumerate() {
            x[w][0] = u32::from_le_bytes([word[0], word[1], word[2], word[3]]);
        }
        compress(&mut s, &x);
    }
    *state = s.map(|v| v[0]);
}

/// Advances `states[l]` over `inputs[l]` for every lane at once. All inputs have the same
/// length, a multiple of 64 bytes; at most [`LANES`] of them. The pass is 4, 8 or 16 lanes
/// wide, whichever is the narrowest that fits (a narrower pass costs less per block).
pub fn compress_many(states: &mut [[u32; 4]], inputs: &[&[u8]]) {
    match inputs.len() {
        0..=4 => compress_width::<4>(states, inputs),
        5..=8 => compress_width::<8>(states, inputs),
        _ => compress_width::<16>(states, inputs),
    }
}

fn compress_width<const L: usize>(states: &mut [[u32; 4]], inputs: &[&[u8]]) {
    assert!(states.len() == inputs.len() && inputs.len() <= L && L <= LANES);
    let Some(first) = inputs.first() else {
        return;
    };
    assert!(inputs.iter().all(|i| i.len() == first.len()) && first.len() % 64 == 0);
    // Lanes without a message of their own repeat the first one; their results are dropped.
    let mut lanes = [*first; LANES];
    lanes[..inputs.len()].copy_from_slice(inputs);
    let mut s = [[0u32; L]; 4];
    for (l, st) in states.iter().enumerate() {
        for w in 0..4 {
            s[w][l] = st[w];
        }
    }
    run(&mut s, &lanes, first.len() / 64);
    for (l, st) in states.iter_mut().enumerate() {
        for w in 0..4 {
            st[w] = s[w][l];
        }
    }
}

/// The kernel this CPU runs, picked once.
fn run<const L: usize>(s: &mut [[u32; L]; 4], lanes: &[&[u8]; LANES], blocks: usize) {
    #[cfg(target_arch = "x86_64")]
    {
        use std::sync::OnceLock;
        static KERNEL: OnceLock<u8> = OnceLock::new();
        let kernel = *KERNEL.get_or_init(|| {
            if std::arch::is_x86_feature_detected!("avx512f")
                && std::arch::is_x86_feature_detected!("avx512vl")
            {
                2
            } else if std::arch::is_x86_feature_detected!("avx2") {
                1
            } else {
                0
            }
        });
        match kernel {
            #[allow(unsafe_code)]
            // SAFETY: the CPU was checked above for the features this function is built for.
            2 => return unsafe { run_avx512(s, lanes, blocks) },
            #[allow(unsafe_code)]
            // SAFETY: as above, for AVX2.
            1 => return unsafe { run_avx2(s, lanes, blocks) },
            _ => {}
        }
    }
    run_portable(s, lanes, blocks)
}

/// AVX-512: each lane's block is one 64-byte load, and sixteen rows become sixteen columns
/// (word `w` of every lane) in registers; a narrower pass uses the first `L` words of each.
/// Left to itself the compiler gathers the columns one word at a time, which took half the
/// time of the whole pass.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f,avx512vl")]
fn run_avx512<const L: usize>(s: &mut [[u32; L]; 4], lanes: &[&[u8]; LANES], blocks: usize) {
    use std::arch::x86_64::__m512i;
    let mut x = [[0u32; L]; 16];
    let mut rows = [zerocopy::transmute!([0u8; 64]); LANES];
    for b in 0..blocks {
        let at = b * 64;
        for (row, lane) in rows.iter_mut().zip(&lanes[..L]) {
            let block: [u8; 64] = match lane[at..at + 64].try_into() {
                Ok(block) => block,
                Err(_) => unreachable!("a 64-byte range"),
            };
            *row = zerocopy::transmute!(block);
        }
        transpose16(&mut rows);
        for (col, row) in x.iter_mut().zip(&rows) {
            let row: __m512i = *row;
            let words: [u32; LANES] = zerocopy::transmute!(row);
            col.copy_from_slice(&words[..L]);
        }
        compress(s, &x);
    }
}

/// Transposes a 16x16 matrix of 32-bit words held as sixteen rows.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
fn transpose16(r: &mut [std::arch::x86_64::__m512i; 16]) {
    use std::arch::x86_64::*;
    // Pairs of rows interleaved by 32-bit words, then by 64-bit words (within 128-bit lanes).
    let mut t = *r;
    for i in 0..8 {
        t[2 * i] = _mm512_unpacklo_epi32(r[2 * i], r[2 * i + 1]);
        t[2 * i + 1] = _mm512_unpackhi_epi32(r[2 * i], r[2 * i + 1]);
    }
    for i in 0..4 {
        let q = 4 * i;
        r[q] = _mm512_unpacklo_epi64(t[q], t[q + 2]);
        r[q + 1] = _mm512_unpackhi_epi64(t[q], t[q + 2]);
        r[q + 2] = _mm512_unpacklo_epi64(t[q + 1], t[q + 3]);
        r[q + 3] = _mm512_unpackhi_epi64(t[q + 1], t[q + 3]);
    }
    // Now r[4i + j] holds, in 128-bit lane k, words 4k..4k+4 of column j of rows 4i..4i+4:
    // gather the 128-bit lanes across registers.
    for h in 0..2 {
        for j in 0..4 {
            let (a, b) = (r[8 * h + j], r[8 * h + 4 + j]);
            t[8 * h + j] = _mm512_shuffle_i32x4::<0x88>(a, b);
            t[8 * h + 4 + j] = _mm512_shuffle_i32x4::<0xdd>(a, b);
        }
    }
    for j in 0..8 {
        r[j] = _mm512_shuffle_i32x4::<0x88>(t[j], t[8 + j]);
        r[8 + j] = _mm512_shuffle_i32x4::<0xdd>(t[j], t[8 + j]);
    }
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
fn run_avx2<const L: usize>(s: &mut [[u32; L]; 4], lanes: &[&[u8]; LANES], blocks: usize) {
    run_portable(s, lanes, blocks)
}

#[inline(always)]
fn run_portable<const L: usize>(s: &mut [[u32; L]; 4], lanes: &[&[u8]; LANES], blocks: usize) {
    let mut x = [[0u32; L]; 16];
    for b in 0..blocks {
        let at = b * 64;
        for (l, lane) in lanes[..L].iter().enumerate() {
            let block = &lane[at..at + 64];
            for (w, word) in block.chunks_exact(4).enumerate() {
                x[w][l] = u32::from_le_bytes([word[0], word[1], word[2], word[3]]);
            }
        }
        compress(s, &x);
    }
}

/// MD5's padding for a message of `len` bytes whose last `tail.len() < 64` bytes are `tail`:
/// the one or two final blocks.
pub fn final_blocks(tail: &[u8], len: u64) -> ([u8; 128], usize) {
    debug_assert!(tail.len() < 64);
    let mut out = [0u8; 128];
    out[..tail.len()].copy_from_slice(tail);
    out[tail.len()] = 0x80;
    let n = if tail.len() < 56 { 64 } else { 128 };
    out[n - 8..n].copy_from_slice(&len.wrapping_mul(8).to_le_bytes());
    (out, n)
}

/// The digest bytes of a final state.
pub fn digest(state: &[u32; 4]) -> [u8; 16] {
    let mut out = [0u8; 16];
    for (o, w) in out.chunks_exact_mut(4).zip(state) {
        o.copy_from_slice(&w.to_le_bytes());
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use md5::Digest;

    fn md5_of(data: &[u8]) -> [u8; 16] {
        let full = data.len() / 64 * 64;
        let mut s = INIT;
        compress_one(&mut s, &data[..full]);
        let (pad, n) = final_blocks(&data[full..], data.len() as u64);
        compress_one(&mut s, &pad[..n]);
        digest(&s)
    }

    #[test]
    fn one_lane_is_md5() {
        for len in [0, 1, 55, 56, 63, 64, 65, 119, 120, 1000, 4096 + 17] {
            let data: Vec<u8> = (0..len).map(|i| (i * 31 + len) as u8).collect();
            assert_eq!(
                md5_of(&data),
                <[u8; 16]>::from(md5::Md5::digest(&data)),
                "{len}"
            );
        }
    }

    #[cfg(target_arch = "x86_64")]
    #[test]
    fn transpose16_transposes() {
        if !std::arch::is_x86_feature_detected!("avx512f") {
            return;
        }
        let mut rows = [zerocopy::transmute!([0u32; 16]); 16];
        for (i, row) in rows.iter_mut().enumerate() {
            let words: [u32; 16] = std::array::from_fn(|j| (i * 16 + j) as u32);
            *row = zerocopy::transmute!(words);
        }
        #[allow(unsafe_code)]
        // SAFETY: the CPU has AVX-512F, checked above.
        unsafe {
            transpose16(&mut rows)
        };
        for (j, row) in rows.iter().enumerate() {
            let words: [u32; 16] = zerocopy::transmute!(*row);
            let want: [u32; 16] = std::array::from_fn(|i| (i * 16 + j) as u32);
            assert_eq!(words, want, "column {j}");
        }
    }

    proptest::proptest! {
        #[test]
        fn every_lane_is_its_own_md5(lanes in 1usize..=LANES, blocks in 0usize..40, seed: u8) {
            let inputs: Vec<Vec<u8>> = (0..lanes)
                .map(|l| (0..blocks * 64).map(|i| (i * 7 + l * 13 + seed as usize) as u8).collect())
                .collect();
            let slices: Vec<&[u8]> = inputs.iter().map(Vec::as_slice).collect();
            let mut states = vec![INIT; lanes];
            compress_many(&mut states, &slices);
            for (st, input) in states.iter().zip(&inputs) {
                let mut one = INIT;
                compress_one(&mut one, input);
                proptest::prop_assert_eq!(*st, one);
            }
        }
    }
}
