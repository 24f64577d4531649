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
                at: stored_at + range.start,
            });
        }
        lo = hi;
        stored_at += encrypted_size(n as u64);
    }
    let first = first.expect("a wanted part") as usize;
    (first..first + total as usize, segs)
}

/// Stored bytes in given chunks, as a reader skipping its bitrot checks gives them; asked to
/// read again from an offset, the chunks of `again` (the range's bytes as checked shards
/// give them) from there, cut the same way.
struct Chunks {
    now: std::collections::VecDeque<Bytes>,
    /// The range's good bytes, their offset in the object, and the chunk length.
    again: Option<(Vec<u8>, u64, usize)>,
    /// The offsets asked for.
    asked: Vec<u64>,
}

impl Chunks {
    fn new(chunks: Vec<Bytes>) -> Chunks {
        Chunks {
            now: chunks.into(),
            again: None,
            asked: Vec::new(),
        }
    }
}

impl Stored for std::sync::Arc<parking_lot::Mutex<Chunks>> {
    fn next(&mut self) -> futures::future::BoxFuture<'_, std::io::Result<Option<Bytes>>> {
        let next = self.lock().now.pop_front();
        Box::pin(async move { Ok(next) })
    }

    fn recheck_from(&mut self, at: u64) -> bool {
        let mut c = self.lock();
        c.asked.push(at);
        let Some((good, base, cut)) = c.again.take() else {
            return false;
        };
        let from = (at - base) as usize;
        c.now = good[from..]
            .chunks(cut)
            .map(Bytes::copy_from_slice)
            .collect();
        true
    }
}

fn run(chunks: Vec<Bytes>, segs: Vec<Segment>) -> Result<(Vec<u8>, usize), std::io::Error> {
    let source = std::sync::Arc::new(parking_lot::Mutex::new(Chunks::new(chunks)));
    drain(source, segs)
}

fn drain(
    source: std::sync::Arc<parking_lot::Mutex<Chunks>>,
    segs: Vec<Segment>,
) -> Result<(Vec<u8>, usize), std::io::Error> {
    futures::executor::block_on(async {
        let mut s = std::pin::pin!(decrypt_stream(source, segs));
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

/// A package that fails to open on bytes read without bitrot checks has the stored bytes
/// read again from its first byte, checked: the read goes on from there with the good
/// bytes, every plaintext byte produced once, in order. A failure on checked bytes stands.
#[test]
fn a_failed_package_is_read_again_checked_from_its_start() {
    let key = ObjectKey::random().expect("key");
    let (p, full) = (PACKAGE, PACKAGE + TAG);
    let sizes = [2 * p + 7, 3 * p];
    let (plains, stored) = object(&key, &sizes);
    let all: Vec<u8> = plains.concat();
    let n = all.len() as u64;
    let part2 = encrypted_size(sizes[0] as u64) as usize;
    for (start, len) in [
        (0, n),
        (p as u64 + 3, n - p as u64 - 5),
        (2 * p as u64, p as u64 + 9),
    ] {
        let (range, _) = segments(&key, &sizes, start, len);
        // A flipped byte in a package of the range (each part's first, middle and last).
        let flips = [
            range.start,
            range.start + full + 9,
            part2 - 1,
            part2 + full,
            range.end - 1,
        ];
        for at in flips.into_iter().filter(|a| range.contains(a)) {
            // The failed package's first byte in the object's stored bytes.
            let package = if at < part2 {
                at / full * full
            } else {
                part2 + (at - part2) / full * full
            };
            for cut in [1000, full, 3 * full + 5] {
                let mut bad = stored[range.clone()].to_vec();
                bad[at - range.start] ^= 0x40;
                let good = stored[range.clone()].to_vec();
                let (_, segs) = segments(&key, &sizes, start, len);
                let source = std::sync::Arc::new(parking_lot::Mutex::new(Chunks {
                    now: bad.chunks(cut).map(Bytes::copy_from_slice).collect(),
                    again: Some((good, range.start as u64, cut)),
                    asked: Vec::new(),
                }));
                let (got, _) = drain(source.clone(), segs).expect("read again");
                assert!(
                    got == all[start as usize..(start + len) as usize],
                    "{start}+{len}, flip at {at}, chunks of {cut}"
                );
                assert_eq!(source.lock().asked, vec![package as u64], "flip at {at}");
                // The same damage in the checked bytes too: an error, after one recheck.
                let (_, segs) = segments(&key, &sizes, start, len);
                let source = std::sync::Arc::new(parking_lot::Mutex::new(Chunks {
                    now: bad.chunks(cut).map(Bytes::copy_from_slice).collect(),
                    again: Some((bad.clone(), range.start as u64, cut)),
                    asked: Vec::new(),
                }));
                assert!(drain(source.clone(), segs).is_err(), "flip at {at}");
                assert_eq!(source.lock().asked.len(), 2);
            }
        }
    }
}
