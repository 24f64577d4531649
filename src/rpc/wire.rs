//! What travels between nodes: drive calls and their replies, lock calls, errors. Encoded
//! with MessagePack; byte payloads as binary (no base64, one copy each way).

use serde::{Deserialize, Serialize};
use serde_bytes::ByteBuf;
use uuid::Uuid;

use crate::drive::{DirPage, DirQuery, DriveError, FileRef, Probe, StagedData};

#[derive(Debug, Serialize, Deserialize)]
pub enum DriveCall {
    DiskInfo,
    Probe,
    Format {
        format: ByteBuf,
        healing: Option<ByteBuf>,
        create_root: bool,
    },
    ReadSys {
        path: String,
    },
    WriteSys {
        path: String,
        data: ByteBuf,
    },
    RenameSys {
        from: String,
        to: String,
    },
    DeleteSys {
        path: String,
    },
    ListSys {
        dir: String,
    },
    MakeBucket {
        bucket: String,
        created: i64,
    },
    ListBuckets,
    DeleteBucket {
        bucket: String,
    },
    ReadMeta {
        bucket: String,
        key: String,
    },
    ReadMetaHead {
        bucket: String,
        key: String,
    },
    ReadEntries {
        bucket: String,
        keys: Vec<String>,
    },
    WriteMeta {
        bucket: String,
        key: String,
        meta: Option<ByteBuf>,
        staged: Option<(String, Uuid)>,
    },
    DeleteDataDir {
        bucket: String,
        key: String,
        data_dir: Uuid,
    },
    FileSize {
        file: WireFile,
    },
    ReadFile {
        file: WireFile,
        offset: u64,
        len: u64,
    },
    ListDir {
        bucket: String,
        prefix: String,
        query: DirQuery,
    },
    /// A bitrot-framed chunk (`[hash][payload]`), answered raw, not as a [`DriveReply`]:
    /// see [`ChunkReply`]. The caller verifies it, so bytes damaged anywhere between the
    /// disk and the reader are caught.
    ReadChunk {
        file: WireFile,
        offset: u64,
        len: u64,
    },
    LinkSys {
        from: String,
        to: String,
    },
    /// [`crate::drive::Drive::read_entry_heads`]: metadata heads as a listing needs them, or
    /// (`metas` false) only whether keys continue below each key. (Variants travel by name;
    /// a node of an older release answers 400: nodes of a deployment run one release.)
    ReadEntryHeads {
        bucket: String,
        keys: Vec<String>,
        metas: bool,
    },
}

impl DriveCall {
    /// Short name for logs and metrics.
    pub fn name(&self) -> &'static str {
        match self {
            DriveCall::DiskInfo => "disk_info",
            DriveCall::Probe => "probe",
            DriveCall::Format { .. } => "format",
            DriveCall::ReadSys { .. } => "read_sys",
            DriveCall::WriteSys { .. } => "write_sys",
            DriveCall::RenameSys { .. } => "rename_sys",
            DriveCall::DeleteSys { .. } => "delete_sys",
            DriveCall::ListSys { .. } => "list_sys",
            DriveCall::MakeBucket { .. } => "make_bucket",
            DriveCall::ListBuckets => "list_buckets",
            DriveCall::DeleteBucket { .. } => "delete_bucket",
            DriveCall::ReadMeta { .. } => "read_meta",
            DriveCall::ReadMetaHead { .. } => "read_meta_head",
            DriveCall::ReadEntries { .. } => "read_entries",
            DriveCall::WriteMeta { .. } => "write_meta",
            DriveCall::DeleteDataDir { .. } => "delete_data_dir",
            DriveCall::FileSize { .. } => "file_size",
            DriveCall::ReadFile { .. } => "read_file",
            DriveCall::ListDir { .. } => "list_dir",
            DriveCall::ReadChunk { .. } => "read_chunk",
            DriveCall::LinkSys { .. } => "link_sys",
            DriveCall::ReadEntryHeads { .. } => "read_entry_heads",
        }
    }
}

/// The first byte of a [`DriveCall::ReadChunk`] answer, which is not MessagePack: the
/// framed chunk follows as raw bytes (no copy into and out of an encoding on either side),
/// or what went wrong.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum ChunkReply {
    /// The framed chunk follows, as read.
    Framed = 0,
    /// A MessagePack [`WireError`] follows.
    Failed = 1,
}

impl ChunkReply {
    pub fn of(tag: u8) -> Option<ChunkReply> {
        [ChunkReply::Framed, ChunkReply::Failed]
            .into_iter()
            .find(|t| *t as u8 == tag)
    }
}

#[derive(Debug, Serialize, Deserialize)]
pub enum WireFile {
    Sys(String),
    Part {
        bucket: String,
        key: String,
        data_dir: Uuid,
        part: u32,
    },
}

impl From<&FileRef> for WireFile {
    fn from(f: &FileRef) -> Self {
        match f {
            FileRef::Sys(p) => WireFile::Sys(p.clone()),
            FileRef::Part {
                bucket,
                key,
                data_dir,
                part,
            } => WireFile::Part {
                bucket: bucket.clone(),
                key: key.clone(),
                data_dir: *data_dir,
                part: *part,
            },
        }
    }
}

impl From<WireFile> for FileRef {
    fn from(f: WireFile) -> Self {
        match f {
            WireFile::Sys(p) => FileRef::Sys(p),
            WireFile::Part {
                bucket,
                key,
                data_dir,
                part,
            } => FileRef::Part {
                bucket,
                key,
                data_dir,
                part,
            },
        }
    }
}

pub fn staged_to_wire(s: Option<StagedData>) -> Option<(String, Uuid)> {
    s.map(|s| (s.from, s.data_dir))
}

pub fn staged_from_wire(s: Option<(String, Uuid)>) -> Option<StagedData> {
    s.map(|(from, data_dir)| StagedData { from, data_dir })
}

#[derive(Debug, Serialize, Deserialize)]
pub struct WireEntry {
    pub meta: Result<ByteBuf, WireError>,
    pub has_children: bool,
    pub data_dirs: Vec<Uuid>,
}

#[derive(Debug, Serialize, Deserialize)]
pub enum DriveReply {
    Unit,
    Bytes(ByteBuf),
    OptBytes(Option<ByteBuf>),
    Info { total: u64, free: u64 },
    Names(Vec<String>),
    Buckets(Vec<(String, i64)>),
    Entries(Vec<WireEntry>),
    Size(u64),
    Dir(DirPage),
    Probe(Probe),
}

/// One head of a batched `heads` call: drive `d` (its index in the endpoint list) reads
/// the head of `bucket/key`'s metadata. The answer is one `Result<ByteBuf, WireError>` per
/// call, in order.
#[derive(Debug, Serialize, Deserialize)]
pub struct HeadCall {
    pub d: usize,
    pub bucket: String,
    pub key: String,
}

/// A drive error as it crosses the wire.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub enum WireError {
    NotFound,
    BucketNotFound,
    BucketExists,
    BucketNotEmpty,
    InvalidName,
    Offline(String),
    Full,
    TimedOut(String),
    Io(String),
}

impl From<&DriveError> for WireError {
    fn from(e: &DriveError) -> Self {
        match e {
            DriveError::NotFound => WireError::NotFound,
            DriveError::BucketNotFound => WireError::BucketNotFound,
            DriveError::BucketExists => WireError::BucketExists,
            DriveError::BucketNotEmpty => WireError::BucketNotEmpty,
            DriveError::InvalidName => WireError::InvalidName,
            DriveError::Offline(m) => WireError::Offline(m.clone()),
            DriveError::Full => WireError::Full,
            DriveError::TimedOut(m) => WireError::TimedOut(m.clone()),
            DriveError::NotDone(m) | DriveError::Injected(m) => WireError::Io(m.to_string()),
            DriveError::Io(e) => WireError::Io(e.to_string()),
        }
    }
}

impl From<WireError> for DriveError {
    fn from(e: WireError) -> Self {
        match e {
            WireError::NotFound => DriveError::NotFound,
            WireError::BucketNotFound => DriveError::BucketNotFound,
            WireError::BucketExists => DriveError::BucketExists,
            WireError::BucketNotEmpty => DriveError::BucketNotEmpty,
            WireError::InvalidName => DriveError::InvalidName,
            WireError::Offline(m) => DriveError::Offline(m),
            WireError::Full => DriveError::Full,
            WireError::TimedOut(m) => DriveError::TimedOut(m),
            WireError::Io(m) => DriveError::Io(std::io::Error::other(m)),
        }
    }
}

pub use crate::lock::dist::LockCall;

/// What a node says about itself (`/cairn/rpc/v1/hello`).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Hello {
    pub node: String,
    pub version: String,
    pub cluster: String,
    pub started: u64,
}

pub fn encode<T: Serialize>(v: &T) -> Vec<u8> {
    rmp_serde::to_vec(v).unwrap_or_default()
}

pub fn decode<'a, T: Deserialize<'a>>(b: &'a [u8]) -> Result<T, String> {
    rmp_serde::from_slice(b).map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn calls_and_errors_round_trip() {
        let call = DriveCall::WriteMeta {
            bucket: "b".into(),
            key: "a/k".into(),
            meta: Some(ByteBuf::from(vec![1, 2, 3])),
            staged: Some(("tmp/x".into(), Uuid::nil())),
        };
        let back: DriveCall = decode(&encode(&call)).expect("decode");
        assert!(matches!(back, DriveCall::WriteMeta { ref key, .. } if key == "a/k"));
        for e in [
            DriveError::NotFound,
            DriveError::BucketNotEmpty,
            DriveError::Offline("x".into()),
        ] {
            let w = WireError::from(&e);
            let back: WireError = decode(&encode(&w)).expect("decode");
            assert_eq!(back, w);
            assert_eq!(DriveError::from(back).to_string(), e.to_string());
        }
        let r: Result<DriveReply, WireError> = Ok(DriveReply::Size(7));
        let back: Result<DriveReply, WireError> = decode(&encode(&r)).expect("decode");
        assert!(matches!(back, Ok(DriveReply::Size(7))));
    }
}
