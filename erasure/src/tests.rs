use proptest::prelude::*;

use crate::bitrot::{self, BitrotReader, BitrotWriter, HASH_LEN};
use crate::{Erasure, Error};

/// Small blocks keep property tests fast while exercising multi-block objects.
const BLOCK: usize = 4096;

/// Encode a whole object into per-shard framed files, the way the object layer stores them.
fn encode_object(e: &Erasure, data: &[u8]) -> Vec<Vec<u8>> {
    let mut files: Vec<BitrotWriter<Vec<u8>>> = (0..e.total_shards())
        .map(|_| BitrotWriter::new(Vec::new()))
        .collect();
    for block in data.chunks(e.block_size()) {
        let shards = e.encode_block(block).expect("encode");
        for (f, s) in files.iter_mut().zip(&shards) {
            f.write_chunk(s).expect("write to vec");
        }
    }
    files.into_iter().map(BitrotWriter::into_inner).collect()
}

/// Decode an object from framed shard files (`None` = lost), verifying every chunk, and
/// rebuild every shard file as heal would.
fn decode_object(
    e: &Erasure,
    files: &[Option<Vec<u8>>],
    size: u64,
) -> Result<(Vec<u8>, Vec<Vec<u8>>), Error> {
    let payload = e.shard_payload_size(size);
    let mut readers: Vec<Option<BitrotReader<&[u8]>>> = files
        .iter()
        .enumerate()
        .map(|(i, f)| {
            f.as_deref()
                .map(|f| BitrotReader::new(f, i, e.shard_size(), payload))
        })
        .collect();
    let mut out = Vec::new();
    let mut rebuilt: Vec<BitrotWriter<Vec<u8>>> = (0..e.total_shards())
        .map(|_| BitrotWriter::new(Vec::new()))
        .collect();
    for index in 0..e.block_count(size) {
        let block_len = e.block_len(size, index);
        let mut shards: Vec<Option<Vec<u8>>> = Vec::new();
        for r in readers.iter_mut() {
            let chunk = match r {
                Some(reader) => match reader.next_chunk() {
                    Ok(Some(c)) => Some(c.to_vec()),
                    Ok(None) => None,
                    Err(Error::Bitrot { .. } | Error::Truncated { .. }) => {
                        *r = None;
                        None
                    }
                    Err(other) => return Err(other),
                },
                None => None,
            };
            shards.push(chunk);
        }
        let mut full = shards.clone();
        e.decode_block(&mut shards, block_len, &mut out)?;
        e.reconstruct(&mut full, e.chunk_len(block_len))?;
        for (w, s) in rebuilt.iter_mut().zip(&full) {
            w.write_chunk(s.as_deref().expect("reconstructed"))
                .expect("write to vec");
        }
    }
    Ok((
        out,
        rebuilt.into_iter().map(BitrotWriter::into_inner).collect(),
    ))
}

fn sizes() -> impl Strategy<Value = usize> {
    prop_oneof![
        Just(0),
        Just(1),
        Just(BLOCK - 1),
        Just(BLOCK),
        Just(BLOCK + 1),
        Just(3 * BLOCK + 17),
        0..5 * BLOCK,
    ]
}

fn geometry() -> impl Strategy<Value = (usize, usize)> {
    (1usize..=16).prop_flat_map(|d| (Just(d), 0..=d.min(8)))
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(96))]

    /// Lose and corrupt up to `parity` shards: the object comes back byte-exact and every
    /// rebuilt shard file equals the original.
    #[test]
    fn survives_parity_losses_and_flips(
        (data_n, parity_n) in geometry(),
        size in sizes(),
        seed in any::<u64>(),
        damage in prop::collection::vec((any::<prop::sample::Index>(), any::<bool>(), any::<prop::sample::Index>()), 0..=8),
    ) {
        let e = Erasure::new(data_n, parity_n, BLOCK).expect("geometry");
        let data: Vec<u8> = (0..size).map(|i| (seed.wrapping_mul(i as u64 + 1) >> 13) as u8).collect();
        let originals = encode_object(&e, &data);
        for f in &originals {
            prop_assert_eq!(f.len() as u64, e.shard_file_size(size as u64));
        }
        let mut files: Vec<Option<Vec<u8>>> = originals.iter().cloned().map(Some).collect();
        let mut damaged = std::collections::BTreeSet::new();
        for (which, lose, at) in damage.into_iter().take(parity_n) {
            let i = which.index(files.len());
            if !damaged.insert(i) { continue; }
            if lose {
                files[i] = None;
            } else if let Some(f) = files[i].as_mut() {
                if !f.is_empty() {
                    let pos = at.index(f.len());
                    f[pos] ^= 0x5a;
                }
            }
        }
        let (out, rebuilt) = decode_object(&e, &files, size as u64).expect("decode within parity");
        prop_assert!(out == data, "decoded bytes differ");
        prop_assert!(rebuilt == originals, "rebuilt shards differ");
    }

    /// Rebuilding lost data shards from shared (read-only) shards gives the originals, with
    /// every codec, whichever `parity` shards are missing.
    #[test]
    fn rebuild_data_gives_the_lost_data_shards(
        (data_n, parity_n) in geometry(),
        size in 1usize..=BLOCK,
        lose in prop::collection::vec(any::<prop::sample::Index>(), 0..=8),
    ) {
        let data: Vec<u8> = (0..size).map(|i| (i * 7 + 3) as u8).collect();
        let codecs: Vec<Box<dyn crate::Codec>> = vec![
            crate::best_codec(data_n, parity_n).expect("codec"),
            Box::new(crate::ReedSolomonCodec::new(data_n, parity_n).expect("codec")),
        ];
        for codec in codecs {
            let e = Erasure::with_codec(data_n, parity_n, BLOCK, codec).expect("geometry");
            let shards = e.encode_block(&data).expect("encode");
            let mut present: Vec<Option<&[u8]>> = shards.iter().map(|s| Some(s.as_slice())).collect();
            let n = present.len();
            for i in lose.iter().take(parity_n) {
                present[i.index(n)] = None;
            }
            let rebuilt = e.rebuild_data(&present, e.chunk_len(size)).expect("rebuild");
            let lost: Vec<usize> = (0..data_n).filter(|&i| present[i].is_none()).collect();
            prop_assert_eq!(rebuilt.iter().map(|(i, _)| *i).collect::<Vec<_>>(), lost);
            for (i, b) in &rebuilt {
                prop_assert!(b == &shards[*i], "shard {} rebuilt wrong", i);
            }
        }
    }

    /// Losing `parity + 1` shards is a clean error, never wrong bytes.
    #[test]
    fn parity_plus_one_losses_fail_cleanly(
        (data_n, parity_n) in geometry(),
        size in 1usize..3 * BLOCK,
        start in any::<prop::sample::Index>(),
    ) {
        let e = Erasure::new(data_n, parity_n, BLOCK).expect("geometry");
        let data: Vec<u8> = (0..size).map(|i| i as u8).collect();
        let mut files: Vec<Option<Vec<u8>>> = encode_object(&e, &data).into_iter().map(Some).collect();
        let n = files.len();
        let first = start.index(n);
        for k in 0..=parity_n {
            files[(first + k) % n] = None;
        }
        let result = decode_object(&e, &files, size as u64);
        prop_assert!(matches!(result, Err(Error::TooFewShards { .. })), "got {:?}", result.map(|r| r.0.len()));
    }
}

#[test]
fn shard_sizes_follow_the_geometry() {
    let e = Erasure::new(4, 2, 1 << 20).expect("geometry");
    assert_eq!(e.shard_size(), 262_144);
    let five_mib = 5u64 << 20;
    assert_eq!(e.shard_payload_size(five_mib), 5 * 262_144);
    assert_eq!(e.shard_file_size(five_mib), 5 * (262_144 + HASH_LEN as u64));
    assert_eq!(e.shard_file_size(0), 0);
    // 1 MiB + 1 byte: one full chunk plus a 1-byte chunk (ceil(1/4)).
    assert_eq!(e.shard_payload_size((1 << 20) + 1), 262_144 + 1);
    assert_eq!(e.chunk_offset(3), 3 * (262_144 + HASH_LEN as u64));
}

#[test]
fn geometries_up_to_256_shards() {
    assert!(Erasure::new(128, 128, 1 << 20).is_ok());
    assert!(Erasure::new(200, 57, 1 << 20).is_err());
    assert!(Erasure::new(0, 2, 1 << 20).is_err());
}

#[test]
fn a_block_framed_from_pieces_is_its_shards_framed() {
    for (data_n, parity_n) in [(1, 0), (1, 1), (2, 2), (4, 4), (5, 3), (12, 4)] {
        let e = Erasure::new(data_n, parity_n, BLOCK).expect("geometry");
        for len in [0, 1, 7, BLOCK / 3, BLOCK - 1, BLOCK] {
            let block: Vec<u8> = (0..len).map(|i| (i * 31 + len) as u8).collect();
            let want: Vec<Vec<u8>> = e
                .encode_block(&block)
                .expect("encode")
                .iter()
                .map(|s| bitrot::frame(s))
                .collect();
            // Whole, cut at odd places (empty pieces among them), and byte by byte.
            let cuts = [len / 3, len / 3, len / 2 + 1, len.saturating_sub(1)];
            let mut at = 0;
            let mut pieces: Vec<&[u8]> = Vec::new();
            for c in cuts.into_iter().filter(|&c| c <= len) {
                pieces.push(&block[at.min(c)..c]);
                at = at.max(c);
            }
            pieces.push(&block[at..]);
            let bytes: Vec<&[u8]> = block.chunks(1).collect();
            let small = len <= 4096;
            for (how, pieces) in [
                ("whole", vec![&block[..]]),
                ("cut", pieces),
                ("bytes", bytes),
            ] {
                if how == "bytes" && !small {
                    continue;
                }
                let framed = e.encode_framed(&pieces).expect("encode");
                assert_eq!(framed, want, "{data_n}+{parity_n}, {len} bytes, {how}");
                for (i, f) in framed.iter().enumerate() {
                    bitrot::verify_framed(f, i, 0).expect("a frame that verifies");
                }
            }
        }
    }
    let e = Erasure::new(2, 2, BLOCK).expect("geometry");
    let over = vec![0u8; BLOCK / 2 + 1];
    assert!(matches!(
        e.encode_framed(&[&over[..], &over[..]]),
        Err(Error::BlockTooLarge { .. })
    ));
}

#[test]
fn codecs_are_shared_per_geometry_and_decode_alike() {
    let a = crate::shared_codec(4, 4).expect("codec");
    assert!(std::sync::Arc::ptr_eq(
        &a,
        &crate::shared_codec(4, 4).expect("again")
    ));
    assert!(!std::sync::Arc::ptr_eq(
        &a,
        &crate::shared_codec(4, 2).expect("other")
    ));
    assert!(crate::shared_codec(0, 2).is_err());
    assert!(crate::shared_codec(200, 57).is_err());
    // Two reads of the same block through erasures sharing a codec rebuild the same lost
    // shards: the shared decoding state serves both.
    let data: Vec<u8> = (0..100_000u32).map(|i| (i * 7 % 251) as u8).collect();
    let e = Erasure::new(4, 4, 1 << 20).expect("geometry");
    let shards = e.encode_block(&data).expect("encode");
    let chunk = shards[0].len();
    let mut present: Vec<Option<&[u8]>> = shards.iter().map(|s| Some(s.as_slice())).collect();
    present[0] = None;
    present[2] = None;
    for _ in 0..2 {
        let other = Erasure::new(4, 4, 1 << 20).expect("geometry");
        let rebuilt = other.rebuild_data(&present, chunk).expect("rebuild");
        assert_eq!(rebuilt.len(), 2);
        for (i, b) in rebuilt {
            assert_eq!(b, shards[i], "shard {i}");
        }
    }
}

#[test]
fn bitrot_reader_names_the_shard_and_chunk() {
    let mut w = BitrotWriter::new(Vec::new());
    w.write_chunk(b"hello").expect("vec");
    w.write_chunk(b"world").expect("vec");
    let mut file = w.into_inner();
    assert!(bitrot::verify_stream(&file[..], 7, 5, 10).is_ok());
    file[HASH_LEN + 5 + HASH_LEN + 1] ^= 1;
    let mut r = BitrotReader::new(&file[..], 7, 5, 10);
    assert_eq!(r.next_chunk().expect("first chunk ok"), Some(&b"hello"[..]));
    assert!(matches!(
        r.next_chunk(),
        Err(Error::Bitrot { shard: 7, chunk: 1 })
    ));
    assert!(matches!(
        bitrot::verify_stream(&file[..], 7, 5, 10),
        Err(Error::Bitrot { shard: 7, chunk: 1 })
    ));
    assert!(matches!(
        bitrot::verify_stream(&file[..20], 7, 5, 10),
        Err(Error::Truncated { shard: 7, chunk: 0 })
    ));
}

/// Independent reconstruction of the klauspost/reedsolomon default encoding matrix:
/// `vandermonde(total, data) * inverse(top data x data square)`, over GF(2^8) with the
/// polynomial 0x11d. Parity computed with it must equal the codec's, byte for byte.
pub(crate) mod klauspost_matrix {
    use super::*;

    /// Shift-and-add multiplication in GF(2^8) mod 0x11d (also checks `gf`'s tables).
    pub(crate) fn mul(a: u8, b: u8) -> u8 {
        let (mut a, mut b, mut p) = (a as u16, b, 0u16);
        while b != 0 {
            if b & 1 != 0 {
                p ^= a;
            }
            a <<= 1;
            if a & 0x100 != 0 {
                a ^= 0x11d;
            }
            b >>= 1;
        }
        p as u8
    }

    fn pow(a: u8, n: usize) -> u8 {
        (0..n).fold(1u8, |acc, _| mul(acc, a))
    }

    fn inv(a: u8) -> u8 {
        (1..=255u8)
            .find(|&b| mul(a, b) == 1)
            .expect("nonzero has an inverse")
    }

    fn invert(mut m: Vec<Vec<u8>>) -> Vec<Vec<u8>> {
        let n = m.len();
        let mut r: Vec<Vec<u8>> = (0..n)
            .map(|i| (0..n).map(|j| u8::from(i == j)).collect())
            .collect();
        for c in 0..n {
            let p = (c..n).find(|&i| m[i][c] != 0).expect("invertible");
            m.swap(c, p);
            r.swap(c, p);
            let f = inv(m[c][c]);
            for j in 0..n {
                m[c][j] = mul(m[c][j], f);
                r[c][j] = mul(r[c][j], f);
            }
            for i in 0..n {
                if i != c && m[i][c] != 0 {
                    let f = m[i][c];
                    for j in 0..n {
                        m[i][j] ^= mul(f, m[c][j]);
                        r[i][j] ^= mul(f, r[c][j]);
                    }
                }
            }
        }
        r
    }

    #[test]
    #[allow(clippy::needless_range_loop)] // index math over several matrices reads clearest
    fn parity_matches_the_klauspost_matrix() {
        for (d, p) in [(2, 2), (4, 2), (8, 4), (12, 4), (5, 3)] {
            let vm: Vec<Vec<u8>> = (0..d + p)
                .map(|r| (0..d).map(|c| pow(r as u8, c)).collect())
                .collect();
            let top_inv = invert(vm[..d].to_vec());
            let matrix: Vec<Vec<u8>> = vm
                .iter()
                .map(|row| {
                    (0..d)
                        .map(|j| (0..d).fold(0u8, |acc, k| acc ^ mul(row[k], top_inv[k][j])))
                        .collect()
                })
                .collect();
            let block: Vec<u8> = (0..d * 37).map(|i| (i * 131 + 7) as u8).collect();
            let e = Erasure::new(d, p, block.len()).expect("geometry");
            let shards = e.encode_block(&block).expect("encode");
            for (r, row) in matrix.iter().enumerate() {
                for b in 0..37 {
                    let want = (0..d).fold(0u8, |acc, k| acc ^ mul(row[k], shards[k][b]));
                    assert_eq!(shards[r][b], want, "geometry {d}+{p}, row {r}, byte {b}");
                }
            }
        }
    }
}

/// The GFNI codec against `reed-solomon-erasure`: same parity, same rebuilt shards, for random
/// geometries, shard lengths (tails under 64 bytes included) and losses.
#[cfg(target_arch = "x86_64")]
mod gfni_matches_rse {
    use super::*;
    use crate::{Codec, GfniCodec, ReedSolomonCodec};

    fn codecs(d: usize, p: usize) -> Option<(GfniCodec, ReedSolomonCodec)> {
        let Some(g) = GfniCodec::new(d, p) else {
            eprintln!("this CPU has no GFNI/AVX-512: nothing to compare");
            return None;
        };
        Some((g, ReedSolomonCodec::new(d, p).expect("rse")))
    }

    fn shards(d: usize, p: usize, len: usize, seed: u64) -> Vec<Vec<u8>> {
        let mut x = seed | 1;
        (0..d + p)
            .map(|i| {
                (0..len)
                    .map(|_| {
                        x ^= x << 13;
                        x ^= x >> 7;
                        x ^= x << 17;
                        if i < d {
                            x as u8
                        } else {
                            0
                        }
                    })
                    .collect()
            })
            .collect()
    }

    fn encode(c: &dyn Codec, d: usize, s: &mut [Vec<u8>]) {
        let (data, parity) = s.split_at_mut(d);
        let data: Vec<&[u8]> = data.iter().map(Vec::as_slice).collect();
        let mut parity: Vec<&mut [u8]> = parity.iter_mut().map(Vec::as_mut_slice).collect();
        c.encode_sep(&data, &mut parity).expect("encode");
    }

    fn rebuild(c: &dyn Codec, s: &mut [Vec<u8>], lost: &[usize], data_only: bool) {
        for &i in lost {
            s[i].fill(0xa5);
        }
        let mut slices: Vec<(&mut [u8], bool)> = s
            .iter_mut()
            .enumerate()
            .map(|(i, v)| (v.as_mut_slice(), !lost.contains(&i)))
            .collect();
        c.reconstruct(&mut slices, data_only).expect("reconstruct");
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]
        #[test]
        fn same_bytes(
            d in 1usize..20,
            p in 1usize..9,
            len in 1usize..700,
            seed: u64,
            losses in proptest::collection::vec(any::<prop::sample::Index>(), 0..8),
            data_only: bool,
        ) {
            let Some((g, r)) = codecs(d, p) else { return Ok(()) };
            let mut a = shards(d, p, len, seed);
            let mut b = a.clone();
            encode(&g, d, &mut a);
            encode(&r, d, &mut b);
            prop_assert_eq!(&a, &b);

            let mut lost: Vec<usize> = losses.iter().map(|i| i.index(d + p)).collect();
            lost.sort_unstable();
            lost.dedup();
            lost.truncate(p);
            let whole = a.clone();
            rebuild(&g, &mut a, &lost, data_only);
            rebuild(&r, &mut b, &lost, data_only);
            for i in 0..d + p {
                if i < d || !data_only || !lost.contains(&i) {
                    prop_assert_eq!(&a[i], &whole[i], "shard {}", i);
                }
            }
            if !data_only {
                prop_assert_eq!(&a, &b);
            }
        }
    }

    #[test]
    fn too_few_shards_is_an_error() {
        let Some((g, _)) = codecs(4, 2) else { return };
        let mut s = shards(4, 2, 100, 7);
        let mut slices: Vec<(&mut [u8], bool)> = s
            .iter_mut()
            .enumerate()
            .map(|(i, v)| (v.as_mut_slice(), i > 2))
            .collect();
        assert!(matches!(
            g.reconstruct(&mut slices, false),
            Err(Error::TooFewShards { have: 3, need: 4 })
        ));
    }

    #[test]
    fn empty_shards_are_nothing_to_do() {
        let Some((g, _)) = codecs(4, 2) else { return };
        let mut s = shards(4, 2, 0, 1);
        encode(&g, 4, &mut s);
        rebuild(&g, &mut s, &[0, 5], false);
        assert!(s.iter().all(Vec::is_empty));
    }

    #[test]
    fn a_large_block_encodes_alike() {
        let Some((g, r)) = codecs(12, 4) else { return };
        let mut a = shards(12, 4, (1 << 20) / 12 + 1, 99);
        let mut b = a.clone();
        encode(&g, 12, &mut a);
        encode(&r, 12, &mut b);
        assert_eq!(a, b);
    }
}
