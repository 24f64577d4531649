use super::*;
use crate::sse::{cipher_range, encrypted_size, PACKAGE, TAG};

fn plain(n: usize, seed: u32) -> Vec<u8> {
    (0..n as u32)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 7).wrapping_add(seed) as u8)
        .collect()
}

/// Two parts' plaintexts and their stored bytes, back to back.
fn object(key: &ObjectKey, sizes: &[usize]) -> (Vec<Vec<u8>>, Vec<u8>) {
    let mut stored = Vec::new();
    let mut plains = Vec::new();
    for (i, &n) in sizes.iter().enumerate() {
        let p = plain(n, i as u32);
        let mut e = Encryptor::new(key.part_key(i as u32 + 1, &[]));
        let mut out = Vec::new();
        e.update(&p, &mut out);
        e.finish(&mut out);
        assert_eq!(out.len() as u64, encrypted_size(n as u64));
        stored.extend_from_slice(&out);
        plains.push(p);
    }
    (plains, stored)
}

/// The stored range and segments for `len` bytes from `start` (as [`plan`] makes them).
fn segments(
    key: &ObjectKey,
    sizes: &[usize],
    start: u64,
    len: u64,
) -> (std::ops::Range<usize>, Vec<Segment>) {
    let (mut lo, mut stored_at, mut first, mut total) = (0u64, 0u64, None, 0u64);
    let mut segs = Vec::new();
    for (i, &n) in sizes.iter().enumerate() {
        let hi = lo + n as u64;
        if start < hi && start + len > lo {
            let from = start.max(lo) - lo;
            let to = (start + len).min(hi) - lo;
            let range = cipher_range(from, to - from, n as u64);
            first.get_or_insert(stored_at + range.start);
            total += range.len;
            segs.push(Segment {
                key: key.part_key(i as u32 + 1, &[]),
                range,
                len: to - from,
                size: n as u64,
            });
        }
        lo = hi;
        stored_at += encrypted_size(n as u64);
    }
    let first = first.expect("a wanted part") as usize;
    (first..first + total as usize, segs)
}

fn run(chunks: Vec<Bytes>, segs: Vec<Segment>) -> Result<(Vec<u8>, usize), std::io::Error> {
    futures::executor::block_on(async {
        let inner = futures::stream::iter(chunks.into_iter().map(Ok));
        let mut s = std::pin::pin!(decrypt_stream(inner, segs));
        let (mut out, mut frames) = (Vec::new(), 0);
        while let Some(b) = s.next().await {
            out.extend_from_slice(&b?);
            frames += 1;
        }
        Ok((out, frames))
    })
}

/// Stored bytes cut into chunks of every shape — package-aligned, split packages, one
/// byte — owned by the stream alone (opened in place) or shared (copied first), whole
/// and in ranges across packages and parts, decrypt to the plaintext.
#[test]
fn chunks_of_any_shape_and_ownership_decrypt_to_the_plaintext() {
    let key = ObjectKey::random().expect("key");
    let p = PACKAGE;
    let full = PACKAGE + TAG;
    let sizes = [3 * p + 5, 2 * p, 1];
    let (plains, stored) = object(&key, &sizes);
    let all: Vec<u8> = plains.concat();
    let n = all.len() as u64;
    let ranges = [
        (0, n),
        (1, n - 2),
        (p as u64 - 3, 6),
        (p as u64 * 3, p as u64 + 9),
        (n - 1, 1),
        (10, 3 * p as u64),
    ];
    for (start, len) in ranges {
        for cut in [1, 999, full, full + 1, 3 * full, 512 << 10] {
            for shared in [false, true] {
                let (range, segs) = segments(&key, &sizes, start, len);
                let whole = Bytes::copy_from_slice(&stored[range]);
                let chunks: Vec<Bytes> = (0..whole.len())
                    .step_by(cut)
                    .map(|at| {
                        let piece = &whole[at..(at + cut).min(whole.len())];
                        if shared {
                            whole.slice_ref(piece)
                        } else {
                            Bytes::copy_from_slice(piece)
                        }
                    })
                    .collect();
                let (got, _) = run(chunks, segs).expect("decrypts");
                assert!(
                    got == all[start as usize..(start + len) as usize],
                    "{start}+{len} in chunks of {cut}, shared {shared}"
                );
            }
        }
    }
}

/// A flipped bit in any package, in place or gathered, fails the stream.
#[test]
fn a_damaged_package_fails_whichever_way_it_is_opened() {
    let key = ObjectKey::random().expect("key");
    let full = PACKAGE + TAG;
    let sizes = [2 * PACKAGE + 7];
    let (_, stored) = object(&key, &sizes);
    for at in [0, full - 1, full + 5, stored.len() - 1] {
        for cut in [full, 1000] {
            let mut bad = stored.clone();
            bad[at] ^= 1;
            let (_, segs) = segments(&key, &sizes, 0, sizes[0] as u64);
            let chunks = bad.chunks(cut).map(Bytes::copy_from_slice).collect();
            assert!(run(chunks, segs).is_err(), "flip at {at}, chunks of {cut}");
        }
    }
}
