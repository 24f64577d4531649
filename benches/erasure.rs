//! Erasure coding and bitrot hashing throughput, one core, 1 MiB blocks.
//!
//! `cargo bench --bench erasure` (SIMD kernels on, the default) and
//! `cargo bench --bench erasure --no-default-features` (portable GF(2^8) code) give the two
//! `reed-solomon-erasure` columns of docs/benchmarks.md, beside Cairn's GFNI kernel (`gfni`,
//! where the CPU has it); `reed-solomon-simd` (GF(2^16), not shard-compatible with MinIO) is
//! measured in the same run as a reference point.

use std::hint::black_box;

use cairn_erasure::{bitrot, Codec, Erasure, ReedSolomonCodec};
use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};

const BLOCK: usize = 1 << 20;
const GEOMETRIES: [(usize, usize); 4] = [(2, 2), (4, 2), (8, 4), (12, 4)];

fn block() -> Vec<u8> {
    (0..BLOCK).map(|i| (i * 7 + i / 251) as u8).collect()
}

/// reed-solomon-simd needs shards of a multiple of 64 bytes: pad the block.
fn gf16_padded(data: &[u8], d: usize) -> Vec<u8> {
    let shard = data.len().div_ceil(d).div_ceil(64) * 64;
    let mut v = data.to_vec();
    v.resize(shard * d, 0);
    v
}

/// The codecs compared: `reed-solomon-erasure` (nibble tables, its SIMD kernels) and Cairn's
/// GFNI kernel where the CPU has it (what `Erasure::new` picks then).
fn codecs(d: usize, p: usize) -> Vec<(&'static str, Erasure)> {
    let mut v = Vec::new();
    let rse: Box<dyn Codec> = Box::new(ReedSolomonCodec::new(d, p).expect("rse"));
    v.push((
        "rse",
        Erasure::with_codec(d, p, BLOCK, rse).expect("geometry"),
    ));
    #[cfg(target_arch = "x86_64")]
    if let Some(g) = cairn_erasure::GfniCodec::new(d, p) {
        v.push((
            "gfni",
            Erasure::with_codec(d, p, BLOCK, Box::new(g)).expect("geometry"),
        ));
    }
    v
}

fn encode(c: &mut Criterion) {
    let data = block();
    let mut g = c.benchmark_group("encode");
    g.throughput(Throughput::Bytes(BLOCK as u64));
    for (d, p) in GEOMETRIES {
        for (name, e) in codecs(d, p) {
            let (mut pad, mut parity) = (Vec::new(), Vec::new());
            g.bench_with_input(
                BenchmarkId::new(name, format!("{d}+{p}")),
                &data,
                |b, data| {
                    b.iter(|| {
                        let shards = e.encode_into(data, &mut pad, &mut parity).expect("encode");
                        black_box(shards.len())
                    })
                },
            );
        }
        let padded = gf16_padded(&data, d);
        let shard = padded.len() / d;
        let mut enc = reed_solomon_simd::ReedSolomonEncoder::new(d, p, shard).expect("encoder");
        g.bench_function(BenchmarkId::new("rs-simd-gf16", format!("{d}+{p}")), |b| {
            b.iter(|| {
                for s in padded.chunks(shard) {
                    enc.add_original_shard(s).expect("add");
                }
                black_box(enc.encode().expect("encode").recovery_iter().count())
            })
        });
    }
    g.finish();
}

fn reconstruct(c: &mut Criterion) {
    let data = block();
    let mut g = c.benchmark_group("reconstruct");
    g.throughput(Throughput::Bytes(BLOCK as u64));
    for (d, p) in GEOMETRIES {
        for (name, e) in codecs(d, p) {
            let shards = e.encode_block(&data).expect("encode");
            // Lose `parity` data shards: the worst case, every lost shard must be rebuilt.
            let mut s: Vec<Option<Vec<u8>>> = shards.iter().cloned().map(Some).collect();
            for lost in s.iter_mut().take(p) {
                *lost = None;
            }
            let mut out = Vec::with_capacity(BLOCK);
            g.bench_function(BenchmarkId::new(name, format!("{d}+{p}")), |b| {
                b.iter(|| {
                    out.clear();
                    e.decode_block(&mut s, BLOCK, &mut out).expect("decode");
                    black_box(out.len())
                })
            });
        }
        let padded = gf16_padded(&data, d);
        let shard = padded.len() / d;
        let originals: Vec<&[u8]> = padded.chunks(shard).collect();
        let recovery = reed_solomon_simd::encode(d, p, originals.iter().copied()).expect("encode");
        g.bench_function(BenchmarkId::new("rs-simd-gf16", format!("{d}+{p}")), |b| {
            b.iter(|| {
                let survivors = originals.iter().enumerate().skip(p).map(|(i, s)| (i, *s));
                let rec = recovery.iter().enumerate().map(|(i, s)| (i, s.as_slice()));
                black_box(reed_solomon_simd::decode(d, p, survivors, rec).expect("decode"))
            })
        });
    }
    g.finish();
}

fn hashing(c: &mut Criterion) {
    let data = block();
    let mut g = c.benchmark_group("bitrot");
    g.throughput(Throughput::Bytes(BLOCK as u64));
    g.bench_function("blake3-1MiB", |b| b.iter(|| black_box(bitrot::hash(&data))));
    // The ETag MD5 (md-5, portable code; its `asm` feature measured only 3.6% faster).
    g.bench_function("md5-1MiB", |b| {
        b.iter(|| black_box(<md5::Md5 as md5::Digest>::digest(&data)))
    });
    let framed = bitrot::frame(&data);
    g.bench_function("verify-1MiB", |b| {
        b.iter(|| black_box(bitrot::verify_framed(&framed, 0, 0).expect("valid")).len())
    });
    g.finish();
}

/// The ETag's MD5: one stream (md-5, and Cairn's own one-lane code), sixteen streams in one
/// multi-lane pass, and eight uploads' worth through the engine thread that uploads use.
fn etag(c: &mut Criterion) {
    use cairn::etag::{lanes, Md5Stream};
    let data = block();
    let mut g = c.benchmark_group("md5");
    g.throughput(Throughput::Bytes(BLOCK as u64));
    g.bench_function("md-5 1 stream", |b| {
        b.iter(|| black_box(<md5::Md5 as md5::Digest>::digest(&data)))
    });
    g.bench_function("one-lane 1 stream", |b| {
        b.iter(|| {
            let mut s = lanes::INIT;
            lanes::compress_one(&mut s, &data);
            black_box(s)
        })
    });
    for streams in [2, 4, 8, 16] {
        g.throughput(Throughput::Bytes((BLOCK * streams) as u64));
        g.bench_function(format!("lanes {streams} streams"), |b| {
            let inputs = vec![data.as_slice(); streams];
            b.iter(|| {
                let mut s = vec![lanes::INIT; streams];
                lanes::compress_many(&mut s, &inputs);
                black_box(s)
            })
        });
    }
    const UPLOADS: usize = 8;
    g.throughput(Throughput::Bytes((BLOCK * 4 * UPLOADS) as u64));
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .expect("runtime");
    let shared = bytes::Bytes::from(data.clone());
    g.bench_function("engine 8 uploads x 4 MiB", |b| {
        b.iter(|| {
            rt.block_on(async {
                let tasks: Vec<_> = (0..UPLOADS)
                    .map(|_| {
                        let d = shared.clone();
                        tokio::spawn(async move {
                            let mut s = Md5Stream::new(BLOCK);
                            for _ in 0..4 {
                                s.update(d.clone()).await;
                            }
                            s.finish().await
                        })
                    })
                    .collect();
                for t in tasks {
                    black_box(t.await.expect("task"));
                }
            })
        })
    });
    g.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default()
        .sample_size(20)
        .warm_up_time(std::time::Duration::from_millis(500))
        .measurement_time(std::time::Duration::from_secs(2));
    targets = encode, reconstruct, hashing, etag
}
criterion_main!(benches);
