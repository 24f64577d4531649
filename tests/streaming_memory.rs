//! A 1 GiB object streams through encode + hash + write to 4 drive folders and back with
//! the process's peak RSS under 100 MiB. Its own test binary, so no other test shares the
//! process whose memory is measured.

use std::pin::Pin;
use std::task::{Context, Poll};

use cairn::object::{open_local, OpenOptions, PutOptions};
use futures::StreamExt;
use md5::{Digest, Md5};
use tokio::io::{AsyncRead, ReadBuf};

/// Produces `remaining` bytes of a non-repeating-looking pattern without holding them.
struct Pattern {
    seed: Vec<u8>,
    pos: u64,
    remaining: u64,
    md5: Md5,
}

impl AsyncRead for Pattern {
    fn poll_read(
        mut self: Pin<&mut Self>,
        _: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        let n = (buf.remaining() as u64).min(self.remaining).min(64 * 1024) as usize;
        let start = ((self.pos / 4093) % 1000) as usize + (self.pos % 4093) as usize;
        let chunk = self.seed[start..start + n].to_vec();
        self.md5.update(&chunk);
        buf.put_slice(&chunk);
        self.pos += n as u64;
        self.remaining -= n as u64;
        Poll::Ready(Ok(()))
    }
}

fn peak_rss_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .expect("proc status")
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("VmHWM")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_gib_round_trip_in_bounded_memory() {
    const SIZE: u64 = 1 << 30;
    let tmp = tempfile::tempdir().expect("tmp");
    let paths: Vec<_> = (1..=4)
        .map(|i| tmp.path().join(format!("drive{i}")))
        .collect();
    let store = open_local(
        &paths,
        &OpenOptions {
            set_size: 4,
            parity: 2,
            pools: Vec::new(),
        },
    )
    .await
    .expect("open");
    store.make_bucket("big").await.expect("bucket");
    let seed: Vec<u8> = (0..200_000u32)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 24) as u8)
        .collect();
    let mut body = Pattern {
        seed,
        pos: 0,
        remaining: SIZE,
        md5: Md5::new(),
    };
    let info = store
        .put_object(
            "big",
            "object",
            &mut body,
            Some(SIZE),
            PutOptions::default(),
        )
        .await
        .expect("put");
    let sent = hex::encode(body.md5.finalize());
    assert_eq!(info.etag, sent);
    let reader = store.get_object("big", "object", None).await.expect("get");
    let mut stream = Box::pin(reader.into_stream());
    let mut md5 = Md5::new();
    let mut got = 0u64;
    while let Some(chunk) = stream.next().await {
        let chunk = chunk.expect("chunk");
        got += chunk.len() as u64;
        md5.update(&chunk);
    }
    assert_eq!(got, SIZE);
    assert_eq!(hex::encode(md5.finalize()), sent);
    let peak_mib = peak_rss_kib() / 1024;
    println!("peak RSS for a 1 GiB put + get: {peak_mib} MiB");
    assert!(peak_mib < 100, "peak RSS {peak_mib} MiB");
}
