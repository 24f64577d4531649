//! The S3 ETag of an upload: the MD5 of its bytes, computed off the request's path.
//!
//! MD5 is the slowest thing a PUT does to its bytes (≈0.65 GB/s per core, against ≈10 GB/s
//! for blake3 and ≈14 GB/s for erasure coding), and one stream of it cannot go faster: every
//! step depends on the one before. So an upload does not hash its own bytes. It hands each
//! piece of a block to [`Md5Stream::update`] as it arrives and goes on reading, encoding and
//! writing while one engine thread hashes, for every upload in flight at once, sixteen
//! streams per pass ([`lanes`]). With fewer than [`MIN_LANES`] streams waiting, the engine
//! hashes them one by one (a lone stream gains nothing from the lanes), still on its own
//! thread, overlapped with the upload.
//!
//! Memory: a stream's unhashed bytes are bounded by the window it is created with; `update`
//! waits while more than that is queued. Pieces are `Bytes` shared with the encoder, never
//! copied (except a trailing partial 64-byte block, at most 63 bytes per update).

pub mod lanes;

use std::collections::VecDeque;
use std::sync::{Arc, Condvar, Mutex, MutexGuard, OnceLock};

use bytes::Bytes;
use tokio::sync::Notify;

/// Fewest streams worth a multi-lane pass. A lone stream runs the one-lane code: a pass of
/// four lanes costs about as much per block, as MD5's chain of dependent steps bounds both.
pub const MIN_LANES: usize = 2;

/// Bytes of each stream one pass takes at most, so a stream that arrives joins soon.
const QUANTUM: usize = 64 * 1024;

/// Which MD5 code uploads use. `Lanes` is the default; `Inline` (hash on the request's own
/// task, one stream at a time) exists to measure the difference (`CAIRN_MD5=inline`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    Lanes,
    Inline,
}

/// The mode chosen by `CAIRN_MD5` (`lanes`, the default, or `inline`), read once.
pub fn mode() -> Mode {
    static MODE: OnceLock<Mode> = OnceLock::new();
    *MODE.get_or_init(|| match std::env::var("CAIRN_MD5").as_deref() {
        Ok("inline") => Mode::Inline,
        _ => Mode::Lanes,
    })
}

#[derive(Default)]
struct Inner {
    /// Whole 64-byte blocks not yet hashed, in order; the front may be partly consumed.
    queue: VecDeque<Bytes>,
    /// Fewer than 64 trailing bytes not yet in `queue`.
    carry: Vec<u8>,
    state: [u32; 4],
    /// Bytes given to `update`.
    len: u64,
    /// Bytes in `queue`.
    queued: usize,
    finished: bool,
    abandoned: bool,
    digest: Option<[u8; 16]>,
    /// In the engine's ready list or in its current pass.
    scheduled: bool,
    /// Bytes `update` lets wait before it waits itself.
    window: usize,
}

struct Stream {
    inner: Mutex<Inner>,
    progress: Notify,
}

impl Stream {
    fn lock(&self) -> MutexGuard<'_, Inner> {
        // A panic while holding the lock leaves plain data behind: keep using it.
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// One upload's MD5, hashed by the engine thread.
pub struct Md5Stream {
    stream: Arc<Stream>,
}

impl Md5Stream {
    /// A stream that lets at most `window` bytes wait for the engine (at least 64 KiB).
    pub fn new(window: usize) -> Md5Stream {
        let window = window.max(QUANTUM);
        Md5Stream {
            stream: Arc::new(Stream {
                inner: Mutex::new(Inner {
                    state: lanes::INIT,
                    window,
                    ..Inner::default()
                }),
                progress: Notify::new(),
            }),
        }
    }

    /// Queues `chunk` for hashing; returns once no more than the window is waiting.
    pub async fn update(&mut self, chunk: Bytes) {
        {
            let mut s = self.stream.lock();
            s.len += chunk.len() as u64;
            let mut chunk = chunk;
            if !s.carry.is_empty() {
                let take = (64 - s.carry.len()).min(chunk.len());
                s.carry.extend_from_slice(&chunk[..take]);
                let _ = chunk.split_to(take);
                if s.carry.len() == 64 {
                    let block = Bytes::from(std::mem::take(&mut s.carry));
                    s.queued += 64;
                    s.queue.push_back(block);
                }
            }
            let whole = chunk.len() / 64 * 64;
            s.carry.extend_from_slice(&chunk[whole..]);
            if whole > 0 {
                chunk.truncate(whole);
                s.queued += whole;
                s.queue.push_back(chunk);
            }
            if s.queued > 0 {
                schedule(&self.stream, &mut s);
            }
        }
        self.wait_until(|s| s.queued <= s.window).await;
    }

    /// The digest of everything given to `update`.
    pub async fn finish(self) -> [u8; 16] {
        {
            let mut s = self.stream.lock();
            s.finished = true;
            schedule(&self.stream, &mut s);
        }
        self.wait_until(|s| s.digest.is_some()).await;
        let digest = self.stream.lock().digest;
        digest.unwrap_or_default()
    }

    async fn wait_until(&self, done: impl Fn(&Inner) -> bool) {
        loop {
            let progress = self.stream.progress.notified();
            tokio::pin!(progress);
            progress.as_mut().enable();
            if done(&self.stream.lock()) {
                return;
            }
            progress.await;
        }
    }
}

impl Drop for Md5Stream {
    fn drop(&mut self) {
        let mut s = self.stream.lock();
        if s.digest.is_none() {
            // An upload that failed or was cancelled: its queued bytes are dropped unhashed.
            s.abandoned = true;
            s.queue.clear();
            s.queued = 0;
        }
    }
}

struct Engine {
    ready: Mutex<VecDeque<Arc<Stream>>>,
    wake: Condvar,
}

fn engine() -> &'static Engine {
    static ENGINE: OnceLock<&'static Engine> = OnceLock::new();
    ENGINE.get_or_init(|| {
        let engine: &'static Engine = Box::leak(Box::new(Engine {
            ready: Mutex::new(VecDeque::new()),
            wake: Condvar::new(),
        }));
        if let Err(e) = std::thread::Builder::new()
            .name("cairn-md5".into())
            .spawn(move || engine.run())
        {
            // Without the thread no upload could finish: this is not recoverable.
            panic!("cannot start the MD5 thread: {e}");
        }
        engine
    })
}

/// Puts a stream with work on the engine's ready list (once).
fn schedule(stream: &Arc<Stream>, s: &mut Inner) {
    if s.scheduled {
        return;
    }
    s.scheduled = true;
    let engine = engine();
    engine
        .ready
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .push_back(stream.clone());
    engine.wake.notify_one();
}

/// What one stream brings to a pass.
struct Work {
    stream: Arc<Stream>,
    state: [u32; 4],
    data: Bytes,
}

impl Engine {
    fn run(&self) {
        let mut batch: Vec<Arc<Stream>> = Vec::with_capacity(lanes::LANES);
        loop {
            {
                let mut ready = self.ready.lock().unwrap_or_else(|e| e.into_inner());
                while ready.is_empty() {
                    ready = self.wake.wait(ready).unwrap_or_else(|e| e.into_inner());
                }
                let n = ready.len().min(lanes::LANES);
                batch.extend(ready.drain(..n));
            }
            self.pass(&mut batch);
        }
    }

    /// Hashes up to a quantum of every stream in `batch`, then finishes, requeues or lets go
    /// of each.
    fn pass(&self, batch: &mut Vec<Arc<Stream>>) {
        let mut work: Vec<Work> = Vec::with_capacity(batch.len());
        for stream in batch.drain(..) {
            let mut s = stream.lock();
            let front = s.queue.front().cloned();
            let state = s.state;
            match front {
                Some(front) if !s.abandoned => {
                    let data = front.slice(..front.len().min(QUANTUM));
                    drop(s);
                    work.push(Work {
                        stream,
                        state,
                        data,
                    });
                }
                _ => {
                    self.settle(&stream, &mut s, 0, None);
                }
            }
        }
        if work.len() >= MIN_LANES {
            let n = work.iter().map(|w| w.data.len()).min().unwrap_or(0);
            let mut states: Vec<[u32; 4]> = work.iter().map(|w| w.state).collect();
            let inputs: Vec<&[u8]> = work.iter().map(|w| &w.data[..n]).collect();
            lanes::compress_many(&mut states, &inputs);
            for (w, st) in work.iter_mut().zip(states) {
                w.state = st;
                w.data.truncate(n);
            }
        } else {
            for w in &mut work {
                lanes::compress_one(&mut w.state, &w.data);
            }
        }
        for w in work {
            let mut s = w.stream.lock();
            let done = w.data.len();
            drop(w.data);
            self.settle(&w.stream, &mut s, done, Some(w.state));
        }
    }

    /// Records `done` hashed bytes of the queue's front and the new state, computes the
    /// digest when the stream is finished and drained, and requeues the stream if it still
    /// has work.
    fn settle(&self, stream: &Arc<Stream>, s: &mut Inner, done: usize, state: Option<[u32; 4]>) {
        if s.abandoned {
            s.scheduled = false;
            return;
        }
        let before = s.queued;
        if let Some(state) = state {
            s.state = state;
            if let Some(front) = s.queue.front_mut() {
                if done >= front.len() {
                    s.queue.pop_front();
                } else {
                    let _ = front.split_to(done);
                }
            }
            s.queued -= done;
        }
        if s.queue.is_empty() && s.finished && s.digest.is_none() {
            let mut st = s.state;
            let (pad, n) = lanes::final_blocks(&s.carry, s.len);
            lanes::compress_one(&mut st, &pad[..n]);
            s.digest = Some(lanes::digest(&st));
        }
        if s.queue.is_empty() {
            s.scheduled = false;
        } else {
            self.ready
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .push_back(stream.clone());
        }
        // Wake the upload only when what it waits for may now hold (the window freed, the
        // queue drained, the digest ready): a block is hashed in many passes, and a wake-up
        // per pass cost a thread switch each.
        let freed = before > s.window && s.queued <= s.window;
        if freed || s.queue.is_empty() || s.digest.is_some() {
            stream.progress.notify_waiters();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use md5::Digest;

    fn data(len: usize, seed: usize) -> Vec<u8> {
        (0..len).map(|i| (i * 31 + i / 977 + seed) as u8).collect()
    }

    async fn hash_in_chunks(data: Vec<u8>, chunk: usize, window: usize) -> [u8; 16] {
        let data = Bytes::from(data);
        let mut s = Md5Stream::new(window);
        let mut at = 0;
        while at < data.len() {
            let end = (at + chunk).min(data.len());
            s.update(data.slice(at..end)).await;
            at = end;
        }
        s.finish().await
    }

    #[tokio::test]
    async fn odd_chunks_give_the_md5() {
        for (len, chunk) in [
            (0, 1),
            (1, 1),
            (63, 7),
            (64, 64),
            (1000, 13),
            (300_000, 65_537),
            // Chunks far past the window: `update` waits for it to free, and is woken.
            (3_000_000, 1 << 20),
        ] {
            let d = data(len, chunk);
            let want = <[u8; 16]>::from(md5::Md5::digest(&d));
            let got = tokio::time::timeout(
                std::time::Duration::from_secs(20),
                hash_in_chunks(d, chunk, 0),
            )
            .await
            .expect("every wait is woken");
            assert_eq!(got, want, "{len}/{chunk}");
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn many_streams_at_once_each_get_their_own_md5() {
        // More streams than lanes, of different lengths and chunkings, all in flight together:
        // passes mix lanes and one-stream work, streams join and leave between passes.
        let tasks: Vec<_> = (0..40usize)
            .map(|i| {
                tokio::spawn(async move {
                    let d = data(i * 37_111 + (i % 3) * 1_048_576, i);
                    let want = <[u8; 16]>::from(md5::Md5::digest(&d));
                    let chunk = [1 << 20, 65_536, 4_099, 100_000][i % 4];
                    (hash_in_chunks(d, chunk, 1 << 20).await, want)
                })
            })
            .collect();
        for t in tasks {
            let (got, want) = t.await.expect("task");
            assert_eq!(got, want);
        }
    }

    #[tokio::test]
    async fn an_abandoned_stream_does_not_stop_the_others() {
        let mut gone = Md5Stream::new(1 << 20);
        gone.update(Bytes::from(data(5 << 20, 1))).await;
        drop(gone);
        let d = data(3 << 20, 2);
        let want = <[u8; 16]>::from(md5::Md5::digest(&d));
        assert_eq!(hash_in_chunks(d, 1 << 20, 1 << 20).await, want);
    }
}
