//! A drive on another node, behind the same [`Drive`] trait as a local one.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use http_body_util::{BodyExt, StreamBody};
use serde_bytes::ByteBuf;
use tokio::sync::{mpsc, oneshot};
use uuid::Uuid;

use super::wire::{self, ChunkReply, DriveCall, DriveReply, HeadCall, WireError};
use super::{Peer, LONG_TIMEOUT, PREFIX, SHORT_TIMEOUT};
use crate::drive::{
    BucketEntry, DirPage, DirQuery, DiskInfo, Drive, DriveError, DriveResult, Entry, FileRef,
    FileWriter, Probe, StagedData,
};

/// How long a streamed file write may sit idle between chunks.
const STREAM_IDLE: Duration = Duration::from_secs(30);

#[derive(Debug, Clone)]
pub struct RemoteDrive {
    peer: Arc<Peer>,
    /// Index of the drive in the cluster's endpoint list.
    index: usize,
    name: String,
}

fn io_err(m: impl Into<String>) -> DriveError {
    DriveError::Io(std::io::Error::other(m.into()))
}

fn unexpected(call: &str) -> DriveError {
    io_err(format!("unexpected reply to {call}"))
}

/// One [`Drive::read_meta_head`] waiting for its peer's next batch.
pub(super) struct HeadWant {
    drive: RemoteDrive,
    call: HeadCall,
    tx: oneshot::Sender<DriveResult<Bytes>>,
}

/// Most heads one batched call asks for (a server refuses more).
pub(super) const MAX_HEADS: usize = 64;

/// Send every head queued for `peer`: one alone as the drive's own call, several in one
/// `heads` call (a peer that does not know it answers each on its own).
async fn send_heads(peer: &Arc<Peer>) {
    let wants: Vec<HeadWant> = std::mem::take(&mut *peer.heads.lock());
    let mut chunks = Vec::new();
    let mut it = wants.into_iter().peekable();
    while it.peek().is_some() {
        chunks.push(it.by_ref().take(MAX_HEADS).collect::<Vec<_>>());
    }
    futures::future::join_all(chunks.into_iter().map(|c| send_head_chunk(peer, c))).await;
}

async fn send_head_chunk(peer: &Arc<Peer>, wants: Vec<HeadWant>) {
    if wants.len() > 1 {
        let calls: Vec<&HeadCall> = wants.iter().map(|w| &w.call).collect();
        let path = format!("{PREFIX}heads");
        let answer = peer
            .call(&path, wire::encode(&calls), SHORT_TIMEOUT)
            .await
            .and_then(|b| {
                wire::decode::<Vec<Result<ByteBuf, WireError>>>(&b)
                    .map_err(io_err)
                    .and_then(|r| {
                        (r.len() == wants.len())
                            .then_some(r)
                            .ok_or_else(|| unexpected("heads"))
                    })
            });
        match answer {
            Ok(replies) => {
                for (w, r) in wants.into_iter().zip(replies) {
                    let r = r
                        .map(|b| Bytes::from(b.into_vec()))
                        .map_err(DriveError::from);
                    let _ = w.tx.send(r);
                }
                return;
            }
            Err(e @ DriveError::Offline(_)) => {
                let e = WireError::from(&e);
                for w in wants {
                    let _ = w.tx.send(Err(DriveError::from(e.clone())));
                }
                return;
            }
            // A node without `heads` (an older version during an upgrade): one by one.
            Err(_) => {}
        }
    }
    futures::future::join_all(wants.into_iter().map(|w| async move {
        let r = w
            .drive
            .call(DriveCall::ReadMetaHead {
                bucket: w.call.bucket,
                key: w.call.key,
            })
            .await
            .and_then(|r| bytes(r, "read_meta_head"));
        let _ = w.tx.send(r);
    }))
    .await;
}

impl RemoteDrive {
    /// A framed chunk as the peer read it (a [`DriveCall::ReadChunk`], answered raw).
    async fn framed_chunk(&self, file: &FileRef, offset: u64, len: usize) -> DriveResult<Bytes> {
        let call = DriveCall::ReadChunk {
            file: file.into(),
            offset,
            len: len as u64,
        };
        let path = format!("{PREFIX}drive?d={}", self.index);
        let b = self
            .peer
            .call(&path, wire::encode(&call), LONG_TIMEOUT)
            .await?;
        match b.first().copied().and_then(ChunkReply::of) {
            Some(ChunkReply::Framed) => Ok(b.slice(1..)),
            Some(ChunkReply::Failed) => {
                let e: WireError = wire::decode(&b[1..]).map_err(io_err)?;
                Err(DriveError::from(e))
            }
            // Not a chunk answer: the node could not take the call at all (a drive it
            // does not have answers as any call does).
            None => {
                let r: Result<DriveReply, WireError> = wire::decode(&b).map_err(io_err)?;
                r.map_err(DriveError::from)
                    .and_then(|_| Err(unexpected("read_chunk")))
            }
        }
    }

    pub fn new(peer: Arc<Peer>, index: usize, name: String) -> RemoteDrive {
        RemoteDrive { peer, index, name }
    }

    async fn call(&self, call: DriveCall) -> DriveResult<DriveReply> {
        let timeout = match call {
            DriveCall::ReadEntries { .. }
            | DriveCall::ReadEntryHeads { .. }
            | DriveCall::ListDir { .. }
            | DriveCall::ReadFile { .. }
            | DriveCall::WriteMeta { .. }
            | DriveCall::DeleteSys { .. }
            | DriveCall::ListSys { .. } => LONG_TIMEOUT,
            _ => SHORT_TIMEOUT,
        };
        let path = format!("{PREFIX}drive?d={}", self.index);
        let b = self.peer.call(&path, wire::encode(&call), timeout).await?;
        let r: Result<DriveReply, WireError> = wire::decode(&b).map_err(io_err)?;
        r.map_err(DriveError::from)
    }
}

fn bytes(r: DriveReply, call: &str) -> DriveResult<Bytes> {
    match r {
        DriveReply::Bytes(b) => Ok(Bytes::from(b.into_vec())),
        _ => Err(unexpected(call)),
    }
}

fn unit(r: DriveReply, call: &str) -> DriveResult<()> {
    match r {
        DriveReply::Unit => Ok(()),
        _ => Err(unexpected(call)),
    }
}

fn names(r: DriveReply, call: &str) -> DriveResult<Vec<String>> {
    match r {
        DriveReply::Names(n) => Ok(n),
        _ => Err(unexpected(call)),
    }
}

/// Streams a file to the peer as the body of one request; the peer answers after fsync.
struct RemoteWriter {
    tx: mpsc::Sender<Result<hyper::body::Frame<Bytes>, std::io::Error>>,
    /// Set by `finish`: the body then ends cleanly; dropped without it, with an error.
    finished: Arc<AtomicBool>,
    /// Cancelled when the peer is marked down.
    gone: tokio_util::sync::CancellationToken,
    reply: Option<tokio::task::JoinHandle<DriveResult<()>>>,
}

impl Drop for RemoteWriter {
    fn drop(&mut self) {
        // An abandoned write must not leave its request hanging.
        if let Some(r) = &self.reply {
            r.abort();
        }
    }
}

#[async_trait]
impl FileWriter for RemoteWriter {
    async fn write(&mut self, data: Bytes) -> DriveResult<()> {
        let sent = tokio::select! {
            r = tokio::time::timeout(STREAM_IDLE, self.tx.send(Ok(hyper::body::Frame::data(data)))) => r,
            _ = self.gone.cancelled() => return Err(DriveError::Offline("peer went offline".into())),
        };
        match sent {
            Ok(Ok(())) => Ok(()),
            // The request ended early: its reply says why.
            Ok(Err(_)) => Err(match self.reply.take() {
                Some(r) => match r.await {
                    Ok(Err(e)) => e,
                    _ => io_err("remote file write ended early"),
                },
                None => io_err("remote file write ended early"),
            }),
            Err(_) => Err(io_err("remote file write stalled")),
        }
    }

    async fn finish(mut self: Box<Self>) -> DriveResult<()> {
        let Some(reply) = self.reply.take() else {
            return Err(io_err("remote file write already failed"));
        };
        let gone = self.gone.clone();
        self.finished.store(true, Ordering::Release);
        drop(self);
        let done = tokio::select! {
            r = tokio::time::timeout(LONG_TIMEOUT, reply) => r,
            _ = gone.cancelled() => return Err(DriveError::Offline("peer went offline".into())),
        };
        match done {
            Ok(Ok(r)) => r,
            Ok(Err(e)) => Err(io_err(e.to_string())),
            Err(_) => Err(io_err("remote file write: no reply")),
        }
    }
}

#[async_trait]
impl Drive for RemoteDrive {
    fn name(&self) -> &str {
        &self.name
    }

    fn is_local(&self) -> bool {
        false
    }

    fn node(&self) -> Option<&str> {
        Some(&self.peer.node)
    }

    fn known_offline(&self) -> bool {
        !self.peer.is_online()
    }

    async fn disk_info(&self) -> DriveResult<DiskInfo> {
        match self.call(DriveCall::DiskInfo).await? {
            DriveReply::Info { total, free } => Ok(DiskInfo {
                total,
                free,
                free_inodes: None,
            }),
            _ => Err(unexpected("disk_info")),
        }
    }

    async fn probe(&self) -> DriveResult<Probe> {
        match self.call(DriveCall::Probe).await? {
            DriveReply::Probe(p) => Ok(p),
            _ => Err(unexpected("probe")),
        }
    }

    async fn format(
        &self,
        format: Bytes,
        healing: Option<Bytes>,
        create_root: bool,
    ) -> DriveResult<()> {
        let r = self
            .call(DriveCall::Format {
                format: ByteBuf::from(format.to_vec()),
                healing: healing.map(|h| ByteBuf::from(h.to_vec())),
                create_root,
            })
            .await?;
        unit(r, "format")
    }

    async fn read_sys(&self, path: &str) -> DriveResult<Bytes> {
        let r = self
            .call(DriveCall::ReadSys {
                path: path.to_string(),
            })
            .await?;
        bytes(r, "read_sys")
    }

    async fn write_sys(&self, path: &str, data: Bytes) -> DriveResult<()> {
        let r = self
            .call(DriveCall::WriteSys {
                path: path.to_string(),
                data: ByteBuf::from(data.to_vec()),
            })
            .await?;
        unit(r, "write_sys")
    }

    async fn create_sys_file(&self, path: &str) -> DriveResult<Box<dyn FileWriter>> {
        let (tx, rx) = mpsc::channel(4);
        let finished = Arc::new(AtomicBool::new(false));
        let body = BodyExt::boxed(StreamBody::new(FileBody {
            rx,
            finished: finished.clone(),
            ended: false,
        }));
        let url = format!(
            "{PREFIX}file?d={}&path={}",
            self.index,
            percent_encoding::utf8_percent_encode(path, percent_encoding::NON_ALPHANUMERIC)
        );
        let peer = self.peer.clone();
        let reply = tokio::spawn(async move {
            // The status line comes only after the whole body is written and synced.
            let r = peer
                .send("PUT", &url, body, Duration::from_secs(24 * 3600))
                .await?;
            let b = tokio::time::timeout(LONG_TIMEOUT, r.body.collect())
                .await
                .map_err(|_| io_err("remote file write: reply timed out"))?
                .map_err(|e| io_err(e.to_string()))?
                .to_bytes();
            if !r.status.is_success() {
                return Err(DriveError::Offline(
                    String::from_utf8_lossy(&b).into_owned(),
                ));
            }
            let r: Result<DriveReply, WireError> = wire::decode(&b).map_err(io_err)?;
            r.map(|_| ()).map_err(DriveError::from)
        });
        Ok(Box::new(RemoteWriter {
            gone: self.peer.gone(),
            tx,
            finished,
            reply: Some(reply),
        }))
    }

    async fn rename_sys(&self, from: &str, to: &str) -> DriveResult<()> {
        let r = self
            .call(DriveCall::RenameSys {
                from: from.to_string(),
                to: to.to_string(),
            })
            .await?;
        unit(r, "rename_sys")
    }

    async fn link_sys(&self, from: &str, to: &str) -> DriveResult<()> {
        let r = self
            .call(DriveCall::LinkSys {
                from: from.to_string(),
                to: to.to_string(),
            })
            .await?;
        unit(r, "link_sys")
    }

    async fn delete_sys(&self, path: &str) -> DriveResult<()> {
        let r = self
            .call(DriveCall::DeleteSys {
                path: path.to_string(),
            })
            .await?;
        unit(r, "delete_sys")
    }

    async fn list_sys(&self, dir: &str) -> DriveResult<Vec<String>> {
        let r = self
            .call(DriveCall::ListSys {
                dir: dir.to_string(),
            })
            .await?;
        names(r, "list_sys")
    }

    async fn make_bucket(&self, bucket: &str, created: i64) -> DriveResult<()> {
        let r = self
            .call(DriveCall::MakeBucket {
                bucket: bucket.to_string(),
                created,
            })
            .await?;
        unit(r, "make_bucket")
    }

    async fn list_buckets(&self) -> DriveResult<Vec<BucketEntry>> {
        match self.call(DriveCall::ListBuckets).await? {
            DriveReply::Buckets(b) => Ok(b
                .into_iter()
                .map(|(name, created)| BucketEntry { name, created })
                .collect()),
            _ => Err(unexpected("list_buckets")),
        }
    }

    async fn delete_bucket(&self, bucket: &str) -> DriveResult<()> {
        let r = self
            .call(DriveCall::DeleteBucket {
                bucket: bucket.to_string(),
            })
            .await?;
        unit(r, "delete_bucket")
    }

    async fn read_meta(&self, bucket: &str, key: &str) -> DriveResult<Bytes> {
        let r = self
            .call(DriveCall::ReadMeta {
                bucket: bucket.to_string(),
                key: key.to_string(),
            })
            .await?;
        bytes(r, "read_meta")
    }

    /// Heads asked of one peer at about the same time (the first wave of a read asks every
    /// drive of a node it picked) travel in one request: see [`send_heads`].
    async fn read_meta_head(&self, bucket: &str, key: &str) -> DriveResult<Bytes> {
        let (tx, rx) = oneshot::channel();
        let lead = {
            let mut q = self.peer.heads.lock();
            q.push(HeadWant {
                drive: self.clone(),
                call: HeadCall {
                    d: self.index,
                    bucket: bucket.to_string(),
                    key: key.to_string(),
                },
                tx,
            });
            q.len() == 1
        };
        if lead {
            // A task of its own: the batch is sent even if this caller stops waiting.
            let peer = self.peer.clone();
            tokio::spawn(async move {
                // Let the other calls of the caller's wave join first.
                tokio::task::yield_now().await;
                send_heads(&peer).await;
            });
        }
        rx.await
            .unwrap_or_else(|_| Err(io_err("read_meta_head: batch dropped")))
    }

    async fn read_entries(&self, bucket: &str, keys: &[String]) -> DriveResult<Vec<Entry>> {
        let call = DriveCall::ReadEntries {
            bucket: bucket.to_string(),
            keys: keys.to_vec(),
        };
        entries(self.call(call).await?, "read_entries")
    }

    /// Heads only, read on the peer (a local drive there leaves out inline data, and reads
    /// nothing when `metas` is false): a listing moves a fraction of the whole files.
    async fn read_entry_heads(
        &self,
        bucket: &str,
        keys: &[String],
        metas: bool,
    ) -> DriveResult<Vec<Entry>> {
        let call = DriveCall::ReadEntryHeads {
            bucket: bucket.to_string(),
            keys: keys.to_vec(),
            metas,
        };
        entries(self.call(call).await?, "read_entry_heads")
    }

    async fn write_meta(
        &self,
        bucket: &str,
        key: &str,
        meta: Option<Bytes>,
        staged: Option<StagedData>,
    ) -> DriveResult<Option<Bytes>> {
        match self
            .call(DriveCall::WriteMeta {
                bucket: bucket.to_string(),
                key: key.to_string(),
                meta: meta.map(|m| ByteBuf::from(m.to_vec())),
                staged: wire::staged_to_wire(staged),
            })
            .await?
        {
            DriveReply::OptBytes(b) => Ok(b.map(|b| Bytes::from(b.into_vec()))),
            _ => Err(unexpected("write_meta")),
        }
    }

    async fn delete_data_dir(&self, bucket: &str, key: &str, data_dir: Uuid) -> DriveResult<()> {
        let r = self
            .call(DriveCall::DeleteDataDir {
                bucket: bucket.to_string(),
                key: key.to_string(),
                data_dir,
            })
            .await?;
        unit(r, "delete_data_dir")
    }

    async fn file_size(&self, file: &FileRef) -> DriveResult<u64> {
        match self.call(DriveCall::FileSize { file: file.into() }).await? {
            DriveReply::Size(n) => Ok(n),
            _ => Err(unexpected("file_size")),
        }
    }

    async fn read_file(&self, file: &FileRef, offset: u64, len: usize) -> DriveResult<Bytes> {
        let r = self
            .call(DriveCall::ReadFile {
                file: file.into(),
                offset,
                len: len as u64,
            })
            .await?;
        bytes(r, "read_file")
    }

    async fn read_chunk(
        &self,
        file: &FileRef,
        offset: u64,
        len: usize,
        shard: usize,
        chunk: u64,
    ) -> DriveResult<Result<Bytes, cairn_erasure::Error>> {
        // Answered raw, and verified here: bytes damaged anywhere on the way are caught.
        let framed = self.framed_chunk(file, offset, len).await?;
        Ok(crate::drive::verified(&framed, shard, chunk))
    }

    async fn read_chunk_unchecked(
        &self,
        file: &FileRef,
        offset: u64,
        len: usize,
    ) -> DriveResult<Bytes> {
        self.framed_chunk(file, offset, len).await
    }

    async fn list_dir(&self, bucket: &str, prefix: &str, query: &DirQuery) -> DriveResult<DirPage> {
        let r = self
            .call(DriveCall::ListDir {
                bucket: bucket.to_string(),
                prefix: prefix.to_string(),
                query: query.clone(),
            })
            .await?;
        match r {
            DriveReply::Dir(page) => Ok(page),
            _ => Err(unexpected("list_dir")),
        }
    }
}

/// An mpsc receiver as a stream of body frames.
/// The body of a remote file write: the writer's frames, then — unless the writer finished —
/// an error, so that a writer dropped part way (an upload that failed) ends its request in a
/// way the peer sees as broken, not as a whole file it would finish and sync.
struct FileBody {
    rx: mpsc::Receiver<Result<hyper::body::Frame<Bytes>, std::io::Error>>,
    finished: Arc<AtomicBool>,
    ended: bool,
}

impl futures::Stream for FileBody {
    type Item = Result<hyper::body::Frame<Bytes>, std::io::Error>;
    fn poll_next(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Self::Item>> {
        if self.ended {
            return std::task::Poll::Ready(None);
        }
        match std::task::ready!(self.rx.poll_recv(cx)) {
            Some(frame) => std::task::Poll::Ready(Some(frame)),
            None => {
                self.ended = true;
                std::task::Poll::Ready(match self.finished.load(Ordering::Acquire) {
                    true => None,
                    false => Some(Err(std::io::Error::other("the file write was abandoned"))),
                })
            }
        }
    }
}

/// Listing entries from a peer's answer to `what`.
fn entries(reply: DriveReply, what: &'static str) -> DriveResult<Vec<Entry>> {
    match reply {
        DriveReply::Entries(e) => Ok(e
            .into_iter()
            .map(|e| Entry {
                meta: e
                    .meta
                    .map(|b| Bytes::from(b.into_vec()))
                    .map_err(DriveError::from),
                has_children: e.has_children,
                data_dirs: e.data_dirs,
            })
            .collect()),
        _ => Err(unexpected(what)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use futures::StreamExt;

    type Frames = mpsc::Sender<Result<hyper::body::Frame<Bytes>, std::io::Error>>;

    fn body() -> (Frames, Arc<AtomicBool>, FileBody) {
        let (tx, rx) = mpsc::channel(4);
        let finished = Arc::new(AtomicBool::new(false));
        let body = FileBody {
            rx,
            finished: finished.clone(),
            ended: false,
        };
        (tx, finished, body)
    }

    fn data(item: Option<Result<hyper::body::Frame<Bytes>, std::io::Error>>) -> Option<Bytes> {
        item.and_then(|f| f.ok()).and_then(|f| f.into_data().ok())
    }

    /// A remote file's body ends cleanly only when its writer finished: one dropped part way
    /// ends it with an error, which the peer takes as a broken request (no file finished).
    #[tokio::test]
    async fn a_remote_file_body_ends_with_an_error_unless_its_writer_finished() {
        let (tx, finished, mut b) = body();
        tx.send(Ok(hyper::body::Frame::data(Bytes::from_static(b"shard"))))
            .await
            .expect("send");
        finished.store(true, Ordering::Release);
        drop(tx);
        assert_eq!(data(b.next().await).as_deref(), Some(&b"shard"[..]));
        assert!(b.next().await.is_none(), "a finished write ends cleanly");

        let (tx, _, mut b) = body();
        tx.send(Ok(hyper::body::Frame::data(Bytes::from_static(b"shard"))))
            .await
            .expect("send");
        drop(tx);
        assert_eq!(data(b.next().await).as_deref(), Some(&b"shard"[..]));
        assert!(
            matches!(b.next().await, Some(Err(_))),
            "an abandoned write ends with an error"
        );
        assert!(b.next().await.is_none());
    }
}
