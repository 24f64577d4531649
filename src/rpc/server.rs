//! The serving side of internode RPC: this node's drives, lock table and hello.

use std::sync::Arc;

use axum::body::Body;
use bytes::Bytes;
use futures::StreamExt;
use http::{Method, Request, Response, StatusCode};
use http_body_util::BodyExt;
use serde_bytes::ByteBuf;

use super::wire::{
    self, ChunkReply, DriveCall, DriveReply, HeadCall, Hello, LockCall, WireEntry, WireError,
};
use super::{RpcAuth, PREFIX};
use crate::drive::{Drive, DriveError, DriveResult};
use crate::lock::dist::LockTable;

/// Largest call body (metadata and system files; shard data streams through `file`).
const MAX_CALL_BODY: usize = 64 << 20;
/// How long a head of a batched `heads` call may take before it answers `TimedOut` (well
/// under the caller's 5 s call timeout).
const HEAD_DEADLINE: std::time::Duration = std::time::Duration::from_secs(2);
/// Largest range one `ReadFile` call reads (shard chunks are at most a few MiB).
const MAX_READ_LEN: usize = 64 << 20;

/// The path segment of service calls: `service/<name>`.
pub(super) const SERVICE: &str = "service/";
/// The path segment of streaming service calls: `stream/<name>`.
pub(super) const STREAM: &str = "stream/";

/// A call served for a layer above RPC: request bytes in, reply bytes out (an error
/// answers 400 with its text).
#[async_trait::async_trait]
pub trait Service: Send + Sync {
    async fn call(&self, body: Bytes) -> Result<Vec<u8>, String>;
}

/// A call whose answer is a stream that lasts as long as the caller reads it (a live
/// trace relayed to another node).
#[async_trait::async_trait]
pub trait StreamService: Send + Sync {
    async fn open(&self, body: Bytes) -> Result<Body, String>;
}

pub struct RpcServer {
    auth: RpcAuth,
    /// This node's drives by index in the endpoint list (`None`: another node's, or a
    /// drive that could not be opened).
    drives: Vec<Option<Arc<dyn Drive>>>,
    locks: Arc<LockTable>,
    hello: Hello,
    /// Calls answered by the layers above (heal state, bucket and IAM change notices),
    /// registered once those are up: RPC carries their bytes and knows nothing of them.
    services: parking_lot::RwLock<std::collections::HashMap<&'static str, Arc<dyn Service>>>,
    streams: parking_lot::RwLock<std::collections::HashMap<&'static str, Arc<dyn StreamService>>>,
    /// When refused calls were last logged, and how many since.
    refusals: parking_lot::Mutex<(Option<std::time::Instant>, u64)>,
}

fn reply(status: StatusCode, body: impl Into<Body>) -> Response<Body> {
    let mut r = Response::new(body.into());
    *r.status_mut() = status;
    r
}

fn ok(body: Vec<u8>) -> Response<Body> {
    reply(StatusCode::OK, body)
}

fn query_param<'a>(q: &'a str, name: &str) -> Option<std::borrow::Cow<'a, str>> {
    q.split('&').find_map(|kv| {
        let (k, v) = kv.split_once('=')?;
        (k == name).then(|| percent_encoding::percent_decode_str(v).decode_utf8_lossy())
    })
}

impl RpcServer {
    pub fn new(
        auth: RpcAuth,
        drives: Vec<Option<Arc<dyn Drive>>>,
        locks: Arc<LockTable>,
        node: String,
    ) -> RpcServer {
        let hello = Hello {
            node,
            version: env!("CARGO_PKG_VERSION").to_string(),
            cluster: auth.cluster().to_string(),
            started: std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_secs()),
        };
        RpcServer {
            auth,
            drives,
            locks,
            hello,
            services: Default::default(),
            streams: Default::default(),
            refusals: parking_lot::Mutex::new((None, 0)),
        }
    }

    /// Answer `POST {PREFIX}service/<name>` with `service` from now on.
    pub fn register(&self, name: &'static str, service: Arc<dyn Service>) {
        self.services.write().insert(name, service);
    }

    /// Answer `POST {PREFIX}stream/<name>` with `service`'s stream from now on.
    pub fn register_stream(&self, name: &'static str, service: Arc<dyn StreamService>) {
        self.streams.write().insert(name, service);
    }

    pub async fn handle(&self, req: Request<Body>) -> Response<Body> {
        let path_q = req
            .uri()
            .path_and_query()
            .map_or(req.uri().path(), |p| p.as_str())
            .to_string();
        let claim = match self
            .auth
            .verify(req.headers(), req.method().as_str(), &path_q)
        {
            Ok(c) => c,
            Err(why) => return self.refuse(&req, &why),
        };
        let op = req
            .uri()
            .path()
            .strip_prefix(PREFIX)
            .unwrap_or("")
            .to_string();
        let query = req.uri().query().unwrap_or("").to_string();
        if (req.method(), op.as_str()) == (&Method::PUT, "file") {
            if !claim.is_streamed() {
                return self.refuse(&req, "a file write with a whole-body token");
            }
            let drive = match self.drive(&query) {
                Ok(d) => d,
                Err(r) => return r,
            };
            let Some(path) = query_param(&query, "path").map(|p| p.into_owned()) else {
                return reply(StatusCode::BAD_REQUEST, "missing path");
            };
            let r = receive_file(drive.as_ref(), &path, req.into_body())
                .await
                .map(|()| DriveReply::Unit);
            return ok(wire::encode(&r.map_err(|e| WireError::from(&e))));
        }
        let method = req.method().clone();
        let caller = RpcAuth::caller(req.headers()).to_string();
        let b = match read_body(req).await {
            Ok(b) => b,
            Err(r) => return r,
        };
        if let Err(why) = claim.check_body(&b) {
            self.log_refusal(&caller, &op, &why);
            return reply(StatusCode::FORBIDDEN, "internode call refused");
        }
        match (method, op.as_str()) {
            (Method::POST, "hello") => ok(wire::encode(&self.hello)),
            (Method::POST, svc) if svc.starts_with(SERVICE) => {
                let name = &svc[SERVICE.len()..];
                let service = self.services.read().get(name).cloned();
                match service {
                    Some(s) => match s.call(b).await {
                        Ok(out) => ok(out),
                        Err(why) => reply(StatusCode::BAD_REQUEST, why),
                    },
                    None => reply(StatusCode::SERVICE_UNAVAILABLE, "starting"),
                }
            }
            (Method::POST, svc) if svc.starts_with(STREAM) => {
                let name = &svc[STREAM.len()..];
                let service = self.streams.read().get(name).cloned();
                match service {
                    Some(s) => match s.open(b).await {
                        Ok(body) => reply(StatusCode::OK, body),
                        Err(why) => reply(StatusCode::BAD_REQUEST, why),
                    },
                    None => reply(StatusCode::SERVICE_UNAVAILABLE, "starting"),
                }
            }
            (Method::POST, "lock") => match wire::decode::<LockCall>(&b) {
                Ok(call) => ok(wire::encode(&self.locks.call(&call))),
                Err(e) => reply(StatusCode::BAD_REQUEST, e),
            },
            (Method::POST, "heads") => match wire::decode::<Vec<HeadCall>>(&b) {
                Ok(calls) if calls.len() <= super::drive::MAX_HEADS => {
                    ok(wire::encode(&self.heads(calls).await))
                }
                Ok(_) => reply(StatusCode::BAD_REQUEST, "too many heads in one call"),
                Err(e) => reply(StatusCode::BAD_REQUEST, e),
            },
            (Method::POST, "drive") => {
                let drive = match self.drive(&query) {
                    Ok(d) => d,
                    Err(r) => return r,
                };
                match wire::decode::<DriveCall>(&b) {
                    Ok(DriveCall::ReadChunk { file, offset, len }) => {
                        read_chunk(drive.as_ref(), file.into(), offset, len).await
                    }
                    Ok(call) => {
                        let r = serve_call(drive.as_ref(), call).await;
                        ok(wire::encode(&r.map_err(|e| WireError::from(&e))))
                    }
                    Err(e) => reply(StatusCode::BAD_REQUEST, e),
                }
            }
            _ => reply(StatusCode::NOT_FOUND, "unknown internode call"),
        }
    }

    /// Refuse a call that does not authenticate: logged here (rate-limited), and the caller
    /// told only whether its endpoint list or its credentials are wrong — nothing about
    /// this deployment.
    fn refuse(&self, req: &Request<Body>, why: &str) -> Response<Body> {
        self.log_refusal(RpcAuth::caller(req.headers()), req.uri().path(), why);
        if why.contains("endpoint list") {
            reply(
                StatusCode::PRECONDITION_FAILED,
                "internode call refused: the nodes were started with different endpoint lists",
            )
        } else {
            reply(
                StatusCode::FORBIDDEN,
                "internode call refused: bad or replayed token (different root credentials, or clocks apart?)",
            )
        }
    }

    /// One warning per 10 s at most, with how many were refused since the last one.
    fn log_refusal(&self, caller: &str, path: &str, why: &str) {
        let mut r = self.refusals.lock();
        r.1 += 1;
        if r.0
            .is_none_or(|t| t.elapsed() >= std::time::Duration::from_secs(10))
        {
            tracing::warn!(
                caller,
                path,
                reason = why,
                refused = r.1,
                "refused internode calls from a node that does not belong to this cluster"
            );
            *r = (Some(std::time::Instant::now()), 0);
        }
    }

    /// The heads of a batched call, read at once, answered in order.
    async fn heads(&self, calls: Vec<HeadCall>) -> Vec<Result<ByteBuf, WireError>> {
        futures::future::join_all(calls.into_iter().map(|c| async move {
            let drive = match self.drives.get(c.d) {
                Some(Some(d)) => d.clone(),
                _ => {
                    let why = format!("drive {} is not available on this node", c.d);
                    return Err(WireError::from(&DriveError::Offline(why)));
                }
            };
            // One slow drive must not hold its node-mates' answers past the caller's
            // patience (nor get the whole node marked down by the caller's timeout).
            match tokio::time::timeout(HEAD_DEADLINE, drive.read_meta_head(&c.bucket, &c.key)).await
            {
                Ok(r) => r.map(buf).map_err(|e| WireError::from(&e)),
                Err(_) => Err(WireError::from(&DriveError::TimedOut(format!(
                    "read_meta_head took over {HEAD_DEADLINE:?}"
                )))),
            }
        }))
        .await
    }

    #[allow(clippy::result_large_err)]
    fn drive(&self, query: &str) -> Result<Arc<dyn Drive>, Response<Body>> {
        let idx: usize = query_param(query, "d")
            .and_then(|d| d.parse().ok())
            .ok_or_else(|| reply(StatusCode::BAD_REQUEST, "missing drive index"))?;
        match self.drives.get(idx) {
            Some(Some(d)) => Ok(d.clone()),
            Some(None) => {
                let e = DriveError::Offline(format!("drive {idx} is not available on this node"));
                Err(ok(wire::encode(&Err::<DriveReply, _>(WireError::from(&e)))))
            }
            None => Err(reply(StatusCode::BAD_REQUEST, "no such drive index")),
        }
    }
}

#[allow(clippy::result_large_err)]
async fn read_body(req: Request<Body>) -> Result<Bytes, Response<Body>> {
    let body = http_body_util::Limited::new(req.into_body(), MAX_CALL_BODY);
    match body.collect().await {
        Ok(b) => Ok(b.to_bytes()),
        Err(e) => Err(reply(StatusCode::BAD_REQUEST, e.to_string())),
    }
}

async fn receive_file(drive: &dyn Drive, path: &str, body: Body) -> DriveResult<()> {
    let mut w = drive.create_sys_file(path).await?;
    let mut stream = body.into_data_stream();
    while let Some(chunk) = stream.next().await {
        let chunk = chunk.map_err(|e| DriveError::Io(std::io::Error::other(e.to_string())))?;
        w.write(chunk).await?;
    }
    w.finish().await
}

/// Answer a [`DriveCall::ReadChunk`]: a [`ChunkReply`] tag, then the framed chunk as it
/// was read (its own body frame, not copied) or what went wrong.
async fn read_chunk(
    d: &dyn Drive,
    file: crate::drive::FileRef,
    offset: u64,
    len: u64,
) -> Response<Body> {
    // A length from the wire never sizes an allocation unchecked.
    let read = match usize::try_from(len).ok().filter(|l| *l <= MAX_READ_LEN) {
        Some(len) => d.read_file(&file, offset, len).await,
        None => Err(DriveError::InvalidName),
    };
    match read {
        Ok(framed) => {
            let frames = [Bytes::from_static(&[ChunkReply::Framed as u8]), framed];
            reply(
                StatusCode::OK,
                Body::from_stream(futures::stream::iter(
                    frames.map(Ok::<_, std::convert::Infallible>),
                )),
            )
        }
        Err(e) => {
            let mut body = vec![ChunkReply::Failed as u8];
            body.extend_from_slice(&wire::encode(&WireError::from(&e)));
            ok(body)
        }
    }
}

fn buf(b: Bytes) -> ByteBuf {
    ByteBuf::from(Vec::from(b))
}

async fn serve_call(d: &dyn Drive, call: DriveCall) -> DriveResult<DriveReply> {
    Ok(match call {
        DriveCall::DiskInfo => {
            let i = d.disk_info().await?;
            DriveReply::Info {
                total: i.total,
                free: i.free,
            }
        }
        DriveCall::Probe => DriveReply::Probe(d.probe().await?),
        DriveCall::Format {
            format,
            healing,
            create_root,
        } => {
            d.format(
                Bytes::from(format.into_vec()),
                healing.map(|h| Bytes::from(h.into_vec())),
                create_root,
            )
            .await?;
            DriveReply::Unit
        }
        DriveCall::ReadSys { path } => DriveReply::Bytes(buf(d.read_sys(&path).await?)),
        DriveCall::WriteSys { path, data } => {
            d.write_sys(&path, Bytes::from(data.into_vec())).await?;
            DriveReply::Unit
        }
        DriveCall::RenameSys { from, to } => {
            d.rename_sys(&from, &to).await?;
            DriveReply::Unit
        }
        DriveCall::LinkSys { from, to } => {
            d.link_sys(&from, &to).await?;
            DriveReply::Unit
        }
        DriveCall::DeleteSys { path } => {
            d.delete_sys(&path).await?;
            DriveReply::Unit
        }
        DriveCall::ListSys { dir } => DriveReply::Names(d.list_sys(&dir).await?),
        DriveCall::MakeBucket { bucket, created } => {
            d.make_bucket(&bucket, created).await?;
            DriveReply::Unit
        }
        DriveCall::ListBuckets => DriveReply::Buckets(
            d.list_buckets()
                .await?
                .into_iter()
                .map(|b| (b.name, b.created))
                .collect(),
        ),
        DriveCall::DeleteBucket { bucket } => {
            d.delete_bucket(&bucket).await?;
            DriveReply::Unit
        }
        DriveCall::ReadMeta { bucket, key } => {
            DriveReply::Bytes(buf(d.read_meta(&bucket, &key).await?))
        }
        DriveCall::ReadMetaHead { bucket, key } => {
            DriveReply::Bytes(buf(d.read_meta_head(&bucket, &key).await?))
        }
        DriveCall::ReadEntries { bucket, keys } => {
            DriveReply::Entries(wire_entries(d.read_entries(&bucket, &keys).await?))
        }
        DriveCall::ReadEntryHeads {
            bucket,
            keys,
            metas,
        } => DriveReply::Entries(wire_entries(
            d.read_entry_heads(&bucket, &keys, metas).await?,
        )),
        DriveCall::WriteMeta {
            bucket,
            key,
            meta,
            staged,
        } => DriveReply::OptBytes(
            d.write_meta(
                &bucket,
                &key,
                meta.map(|m| Bytes::from(m.into_vec())),
                wire::staged_from_wire(staged),
            )
            .await?
            .map(buf),
        ),
        DriveCall::DeleteDataDir {
            bucket,
            key,
            data_dir,
        } => {
            d.delete_data_dir(&bucket, &key, data_dir).await?;
            DriveReply::Unit
        }
        DriveCall::FileSize { file } => DriveReply::Size(d.file_size(&file.into()).await?),
        DriveCall::ReadFile { file, offset, len } => {
            // A length from the wire never sizes an allocation unchecked.
            let len = usize::try_from(len)
                .ok()
                .filter(|l| *l <= MAX_READ_LEN)
                .ok_or(DriveError::InvalidName)?;
            DriveReply::Bytes(buf(d.read_file(&file.into(), offset, len).await?))
        }
        DriveCall::ListDir {
            bucket,
            prefix,
            query,
        } => DriveReply::Dir(d.list_dir(&bucket, &prefix, &query).await?),
        // Answered raw by `read_chunk` before calls get here.
        DriveCall::ReadChunk { .. } => return Err(DriveError::InvalidName),
    })
}

/// A drive's listing entries as they travel.
fn wire_entries(entries: Vec<crate::drive::Entry>) -> Vec<WireEntry> {
    entries
        .into_iter()
        .map(|e| WireEntry {
            meta: e.meta.map(buf).map_err(|e| WireError::from(&e)),
            has_children: e.has_children,
            data_dirs: e.data_dirs,
        })
        .collect()
}
