//! Versioned on-disk object metadata (`@meta`), one file per object per drive.
//!
//! Format 2 (written since 2026-12): magic `CRNM`, `u16` format version 2 (little endian),
//! `u32` length of the head, the head — the newest [`Version`], MessagePack with named
//! fields — and the first 8 bytes of the blake3 hash of everything so far; then the older
//! versions (a MessagePack list, newest first) and the first 8 bytes of the blake3 hash of
//! the whole file before them. The head is checked and decoded on its own, so a read of the
//! latest version costs the same whatever the number of versions ([`ObjectMeta::decode_head`],
//! [`head_len`]).
//!
//! Format 1 (read, never written): magic, `u16` 1, the MessagePack [`ObjectMeta`], 8 bytes
//! of blake3 over everything before. A format-1 file becomes format 2 the next time its key
//! is written (any commit re-encodes it).
//!
//! Pure encode/decode: no I/O, no clock.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use thiserror::Error;
use uuid::Uuid;

pub const MAGIC: &[u8; 4] = b"CRNM";
/// The format this build writes.
pub const META_VERSION: u16 = 2;
const META_V1: u16 = 1;
const TRAILER: usize = 8;
/// Magic, format version, head length.
const PREFIX: usize = 4 + 2 + 4;

/// How many leading bytes of a metadata file hold its checked head, from at least its first
/// [`head_len_needs`] bytes: `Some(n)` for format 2 (the first `n` bytes are enough for
/// [`ObjectMeta::decode_head`]), `None` when the whole file is needed (format 1, or bytes
/// that are not metadata: the full decode then says what is wrong).
pub fn head_len(prefix: &[u8]) -> Option<usize> {
    if prefix.len() < PREFIX || &prefix[..4] != MAGIC {
        return None;
    }
    if u16::from_le_bytes([prefix[4], prefix[5]]) != META_VERSION {
        return None;
    }
    let n = u32::from_le_bytes([prefix[6], prefix[7], prefix[8], prefix[9]]) as usize;
    PREFIX.checked_add(n)?.checked_add(TRAILER)
}

/// Bytes [`head_len`] looks at.
pub const fn head_len_needs() -> usize {
    PREFIX
}

#[derive(Debug, Error, PartialEq, Eq)]
pub enum MetaError {
    #[error("metadata file is too short")]
    Truncated,
    #[error("not a cairn metadata file")]
    BadMagic,
    #[error("unsupported metadata version {0}")]
    UnsupportedVersion(u16),
    #[error("metadata checksum mismatch")]
    Checksum,
    #[error("metadata decode error: {0}")]
    Decode(String),
}

/// Every version of one object, newest first.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ObjectMeta {
    pub versions: Vec<Version>,
}

/// A drive's metadata with a new latest version ([`ObjectMeta::put_latest`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PutLatest {
    /// The encoded file.
    pub meta: Vec<u8>,
    /// The data directory of the version it replaced (same id), if that had one.
    pub replaced: Option<Uuid>,
    /// The new version's modification time as stored (raised past the drive's newest).
    pub mod_time: i64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum VersionKind {
    Object,
    DeleteMarker,
}

/// One version of an object as this drive stores it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Version {
    pub kind: VersionKind,
    /// `None` is the "null" version of an unversioned bucket.
    pub version_id: Option<Uuid>,
    /// Modification time, nanoseconds since the Unix epoch.
    pub mod_time: i64,
    pub size: u64,
    pub etag: String,
    /// Content-Type, Content-Encoding, Cache-Control, ... keyed by lower-case header name.
    pub headers: BTreeMap<String, String>,
    /// `x-amz-meta-*` metadata, keys without the prefix.
    pub user_meta: BTreeMap<String, String>,
    /// Object checksums (`CRC32`, `SHA256`, ...) as the client supplied or we computed them.
    pub checksums: BTreeMap<String, String>,
    pub erasure: ErasureInfo,
    pub parts: Vec<PartInfo>,
    /// Directory holding `part.N` shard files; `None` when the data is inline.
    pub data_dir: Option<Uuid>,
    /// This drive's framed shard of a small object (`[hash][chunk]...`), if inline.
    #[serde(with = "serde_bytes", default, skip_serializing_if = "Option::is_none")]
    pub inline: Option<Vec<u8>>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErasureInfo {
    pub data: u16,
    pub parity: u16,
    pub block_size: u32,
    /// 1-based shard number this drive holds.
    pub index: u16,
    /// Shard number held by each drive position of the set.
    pub distribution: Vec<u16>,
}

impl ErasureInfo {
    /// The geometry of a version about to be written: `data` + `parity` shards of
    /// `block_size` blocks spread by `distribution` (a set holds at most 16 drives, a block
    /// at most 4 GiB); `index` is filled in per drive as the metadata is written.
    pub fn new(data: usize, parity: usize, block_size: usize, distribution: Vec<u16>) -> Self {
        ErasureInfo {
            data: data as u16,
            parity: parity as u16,
            block_size: block_size as u32,
            index: 0,
            distribution,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PartInfo {
    pub number: u32,
    pub size: u64,
    pub etag: String,
    pub checksums: BTreeMap<String, String>,
    /// What a writer above the store keeps about this part (its encryption salt, say);
    /// absent from the encoding when empty, so older metadata reads the same.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub meta: BTreeMap<String, String>,
}

/// What tells copies of a version on different drives apart ([`Version::signature`]).
pub type Signature<'a> = (Option<Uuid>, i64, Option<Uuid>, VersionKind, &'a str);

impl Version {
    /// Identity of a version across drives: two drives agree when these match.
    pub fn signature(&self) -> Signature<'_> {
        (
            self.version_id,
            self.mod_time,
            self.data_dir,
            self.kind,
            &self.etag,
        )
    }
}

/// Of a head's latest version, only what agreement on it compares
/// ([`Version::signature`]) and the data shard count its read quorum follows
/// ([`ObjectMeta::decode_head_sig`]): decoded without the version's headers, metadata,
/// parts or inline data, which agreement never looks at.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct HeadSig {
    pub kind: VersionKind,
    pub version_id: Option<Uuid>,
    pub mod_time: i64,
    pub etag: String,
    pub data_dir: Option<Uuid>,
    pub erasure: SigErasure,
}

/// [`HeadSig`]'s part of [`ErasureInfo`].
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct SigErasure {
    pub data: u16,
}

impl HeadSig {
    pub fn of(v: &Version) -> Self {
        HeadSig {
            kind: v.kind,
            version_id: v.version_id,
            mod_time: v.mod_time,
            etag: v.etag.clone(),
            data_dir: v.data_dir,
            erasure: SigErasure {
                data: v.erasure.data,
            },
        }
    }

    /// As [`Version::signature`].
    pub fn signature(&self) -> Signature<'_> {
        (
            self.version_id,
            self.mod_time,
            self.data_dir,
            self.kind,
            &self.etag,
        )
    }
}

impl ObjectMeta {
    /// The newest version, if any.
    pub fn latest(&self) -> Option<&Version> {
        self.versions.first()
    }

    /// The version with id `id` (`None`: the null version).
    pub fn version(&self, id: Option<Uuid>) -> Option<&Version> {
        self.versions.iter().find(|v| v.version_id == id)
    }

    /// Remove the version with id `id`, returning it.
    pub fn remove(&mut self, id: Option<Uuid>) -> Option<Version> {
        let i = self.versions.iter().position(|v| v.version_id == id)?;
        Some(self.versions.remove(i))
    }

    /// Put `v` where its modification time places it (newest first), replacing a version
    /// with the same id; for heal, which restores versions in any order. Returns the
    /// replaced version.
    pub fn insert_ordered(&mut self, v: Version) -> Option<Version> {
        let old = self.remove(v.version_id);
        let at = self
            .versions
            .iter()
            .position(|x| (x.mod_time, x.version_id) < (v.mod_time, v.version_id))
            .unwrap_or(self.versions.len());
        self.versions.insert(at, v);
        old
    }

    /// Put `v` in front, replacing a version with the same id (the null version of an
    /// unversioned bucket is replaced by every write). Returns the replaced version.
    pub fn upsert(&mut self, v: Version) -> Option<Version> {
        let old = self
            .versions
            .iter()
            .position(|x| x.version_id == v.version_id)
            .map(|i| self.versions.remove(i));
        self.versions.insert(0, v);
        old
    }

    /// `v` as the latest version of a drive's metadata file `current` (none, or one that
    /// does not decode, counts as no versions): its modification time raised past the
    /// newest version there when it is not already newer, so versions stay ordered on
    /// every drive (heal restores them in that order), then put in front ([`Self::upsert`]).
    pub fn put_latest(current: Option<&[u8]>, mut v: Version) -> PutLatest {
        let mut meta = current
            .and_then(|b| ObjectMeta::decode(b).ok())
            .unwrap_or_default();
        if let Some(newest) = meta.latest().map(|l| l.mod_time) {
            if v.mod_time <= newest {
                v.mod_time = newest.saturating_add(1);
            }
        }
        let mod_time = v.mod_time;
        let replaced = meta.upsert(v).and_then(|old| old.data_dir);
        PutLatest {
            meta: meta.encode(),
            replaced,
            mod_time,
        }
    }

    pub fn encode(&self) -> Vec<u8> {
        // Serializing plain data into a Vec cannot fail.
        let rest =
            rmp_serde::to_vec_named(self.versions.get(1..).unwrap_or_default()).unwrap_or_default();
        let mut out = encode_head(self.versions.first(), rest.len() + TRAILER);
        out.extend_from_slice(&rest);
        let h = blake3::hash(&out);
        out.extend_from_slice(&h.as_bytes()[..TRAILER]);
        out
    }

    /// Every version, from a whole file of either format.
    pub fn decode(bytes: &[u8]) -> Result<ObjectMeta, MetaError> {
        match format_of(bytes)? {
            META_V1 => decode_v1(bytes),
            _ => {
                let (latest, head_end) = decode_head_v2(bytes)?;
                let (content, trailer) = bytes.split_at(bytes.len() - TRAILER);
                if content.len() < head_end
                    || &blake3::hash(content).as_bytes()[..TRAILER] != trailer
                {
                    return Err(MetaError::Checksum);
                }
                let rest: Vec<Version> = rmp_serde::from_slice(&content[head_end..])
                    .map_err(|e| MetaError::Decode(e.to_string()))?;
                let mut versions = Vec::with_capacity(rest.len() + 1);
                versions.extend(latest);
                if versions.is_empty() && !rest.is_empty() {
                    return Err(MetaError::Decode("older versions without a latest".into()));
                }
                versions.extend(rest);
                Ok(ObjectMeta { versions })
            }
        }
    }

    /// The latest version only (`None`: no versions), from the file's first
    /// [`head_len`] bytes (format 2) or from the whole file (format 1). Checks what it
    /// decodes; the older versions of a format-2 file are neither read nor checked.
    pub fn decode_head(bytes: &[u8]) -> Result<Option<Version>, MetaError> {
        match format_of(bytes)? {
            META_V1 => Ok(decode_v1(bytes)?.versions.into_iter().next()),
            _ => Ok(decode_head_v2(bytes)?.0),
        }
    }

    /// [`ObjectMeta::decode_head`] down to the latest version's [`HeadSig`], checked the
    /// same way (a head that does not decode whole may still yield one: only its checksum,
    /// format and these fields are judged).
    pub fn decode_head_sig(bytes: &[u8]) -> Result<Option<HeadSig>, MetaError> {
        match format_of(bytes)? {
            META_V1 => Ok(decode_v1(bytes)?.versions.first().map(HeadSig::of)),
            _ => {
                let (head, _) = checked_head_v2(bytes)?;
                if head.is_empty() {
                    return Ok(None);
                }
                rmp_serde::from_slice(head)
                    .map(Some)
                    .map_err(|e| MetaError::Decode(e.to_string()))
            }
        }
    }
}

/// A format-2 file's first [`head_len`] bytes for this latest version (none: no versions):
/// magic, format, the head's length, the head and its check; with room for `more` bytes.
fn encode_head(latest: Option<&Version>, more: usize) -> Vec<u8> {
    let inline = latest.and_then(|v| v.inline.as_ref()).map_or(0, Vec::len);
    let mut out = Vec::with_capacity(PREFIX + 512 + inline + TRAILER + more);
    out.extend_from_slice(MAGIC);
    out.extend_from_slice(&META_VERSION.to_le_bytes());
    out.extend_from_slice(&[0; 4]);
    // Serializing plain data into a Vec cannot fail; were it to, the head would be empty.
    if let Some(v) = latest {
        if rmp_serde::encode::write_named(&mut out, v).is_err() {
            out.truncate(PREFIX);
        }
    }
    // A head never nears 4 GiB (inline data is at most 128 KiB, headers are bounded).
    let len = u32::try_from(out.len() - PREFIX).unwrap_or(u32::MAX);
    out[PREFIX - 4..PREFIX].copy_from_slice(&len.to_le_bytes());
    let h = blake3::hash(&out);
    out.extend_from_slice(&h.as_bytes()[..TRAILER]);
    out
}

/// A metadata file's head as a listing of latest versions needs it: the latest version
/// without its inline data (a listing shows none, and on a small object this drive's shard
/// is most of the head — its checksum, decoding and copies were most of what a listed key
/// cost). Itself a valid head ([`ObjectMeta::decode_head`]),
/// never to be written back. `None` when there is nothing to leave out (no inline data, or
/// an empty object's empty shard) or the head does not decode (then it is served as read,
/// for the reader to judge).
pub fn listing_head(head: &[u8]) -> Option<Vec<u8>> {
    if format_of(head).ok()? != META_VERSION {
        return None;
    }
    let (Some(mut latest), _) = decode_head_v2(head).ok()? else {
        return None;
    };
    // An empty object's inline shard is empty: nothing worth the encoding.
    if latest.inline.take().is_none_or(|d| d.is_empty()) {
        return None;
    }
    Some(encode_head(Some(&latest), 0))
}

/// Whether a metadata file's bytes are what a power loss leaves of a file whose name
/// reached the disk before its content: nothing, or zeros where the magic goes (journaled
/// ext4 and XFS show such a file empty, or zero-filled up to its size). A key's first
/// metadata on a drive may take its name in the same sync epoch as its content
/// (`docs/format.md`); every written file starts with the magic, so such a file holds no
/// version: drives read it as no file.
pub fn never_written(bytes: &[u8]) -> bool {
    bytes.iter().take(MAGIC.len()).all(|&b| b == 0)
}

/// The format version of a metadata file, once its magic is checked.
fn format_of(bytes: &[u8]) -> Result<u16, MetaError> {
    if bytes.len() < MAGIC.len() + 2 + TRAILER {
        return Err(MetaError::Truncated);
    }
    if &bytes[..4] != MAGIC {
        return Err(MetaError::BadMagic);
    }
    match u16::from_le_bytes([bytes[4], bytes[5]]) {
        v @ (META_V1 | META_VERSION) => Ok(v),
        v => Err(MetaError::UnsupportedVersion(v)),
    }
}

fn decode_v1(bytes: &[u8]) -> Result<ObjectMeta, MetaError> {
    let (content, trailer) = bytes.split_at(bytes.len() - TRAILER);
    if &blake3::hash(content).as_bytes()[..TRAILER] != trailer {
        return Err(MetaError::Checksum);
    }
    rmp_serde::from_slice(&content[6..]).map_err(|e| MetaError::Decode(e.to_string()))
}

/// The checked head of a format-2 file, and where the older versions start.
fn decode_head_v2(bytes: &[u8]) -> Result<(Option<Version>, usize), MetaError> {
    let (head, end) = checked_head_v2(bytes)?;
    if head.is_empty() {
        return Ok((None, end));
    }
    let v = rmp_serde::from_slice(head).map_err(|e| MetaError::Decode(e.to_string()))?;
    Ok((Some(v), end))
}

/// A format-2 file's head (its MessagePack bytes, empty for no version) once its checksum
/// holds, and where the older versions start.
fn checked_head_v2(bytes: &[u8]) -> Result<(&[u8], usize), MetaError> {
    let end = head_len(bytes).ok_or(MetaError::Truncated)?;
    if bytes.len() < end {
        return Err(MetaError::Truncated);
    }
    let (content, trailer) = bytes[..end].split_at(end - TRAILER);
    if &blake3::hash(content).as_bytes()[..TRAILER] != trailer {
        return Err(MetaError::Checksum);
    }
    Ok((&content[PREFIX..], end))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    pub(super) fn version(size: u64, inline: Option<Vec<u8>>) -> Version {
        Version {
            kind: VersionKind::Object,
            version_id: None,
            mod_time: 1_700_000_000_123_456_789,
            size,
            etag: "d41d8cd98f00b204e9800998ecf8427e".into(),
            headers: [("content-type".to_string(), "text/plain".to_string())].into(),
            user_meta: [("color".to_string(), "blue".to_string())].into(),
            checksums: BTreeMap::new(),
            erasure: ErasureInfo {
                data: 2,
                parity: 2,
                block_size: 1 << 20,
                index: 3,
                distribution: vec![3, 4, 1, 2],
            },
            parts: vec![PartInfo {
                number: 1,
                size,
                etag: String::new(),
                checksums: BTreeMap::new(),
                meta: BTreeMap::new(),
            }],
            data_dir: if inline.is_some() {
                None
            } else {
                Some(Uuid::from_bytes([9; 16]))
            },
            inline,
        }
    }

    proptest! {
        #[test]
        fn round_trips(size in any::<u64>(), inline in prop::option::of(prop::collection::vec(any::<u8>(), 0..300)), n in 1usize..4) {
            let mut m = ObjectMeta::default();
            for i in 0..n {
                let mut v = version(size, inline.clone());
                v.version_id = Some(Uuid::from_u128(i as u128));
                m.upsert(v);
            }
            let bytes = m.encode();
            prop_assert_eq!(ObjectMeta::decode(&bytes).expect("decodes"), m);
        }
    }

    #[test]
    fn detects_damage() {
        let mut m = ObjectMeta::default();
        m.upsert(version(5, Some(vec![1, 2, 3])));
        let bytes = m.encode();
        for i in 0..bytes.len() {
            let mut b = bytes.clone();
            b[i] ^= 0x10;
            assert!(
                ObjectMeta::decode(&b).is_err(),
                "flip at {i} went unnoticed"
            );
        }
        assert_eq!(ObjectMeta::decode(&bytes[..5]), Err(MetaError::Truncated));
    }

    #[test]
    fn insert_ordered_keeps_newest_first_and_replaces_by_id() {
        let mut m = ObjectMeta::default();
        for (t, id) in [(30, 3u128), (10, 1), (20, 2)] {
            let mut v = version(t as u64, None);
            v.mod_time = t;
            v.version_id = Some(Uuid::from_u128(id));
            assert!(m.insert_ordered(v).is_none());
        }
        let order: Vec<i64> = m.versions.iter().map(|v| v.mod_time).collect();
        assert_eq!(order, [30, 20, 10]);
        let mut again = version(99, None);
        again.mod_time = 20;
        again.version_id = Some(Uuid::from_u128(2));
        assert_eq!(m.insert_ordered(again).map(|v| v.size), Some(20));
        assert_eq!(m.versions.len(), 3);
        assert_eq!(
            m.version(Some(Uuid::from_u128(2))).map(|v| v.size),
            Some(99)
        );
        assert_eq!(
            m.remove(Some(Uuid::from_u128(3))).map(|v| v.mod_time),
            Some(30)
        );
        assert!(m.version(None).is_none());
    }

    #[test]
    fn upsert_replaces_the_null_version() {
        let mut m = ObjectMeta::default();
        assert!(m.upsert(version(1, None)).is_none());
        let old = m.upsert(version(2, None)).expect("replaced");
        assert_eq!(old.size, 1);
        assert_eq!(m.versions.len(), 1);
        assert_eq!(m.latest().map(|v| v.size), Some(2));
    }

    fn two_versions() -> ObjectMeta {
        let mut m = ObjectMeta::default();
        let mut old = version(11, Some(b"hello world".to_vec()));
        old.version_id = Some(Uuid::from_u128(1));
        m.upsert(old);
        let mut marker = version(0, None);
        marker.kind = VersionKind::DeleteMarker;
        marker.version_id = Some(Uuid::from_u128(2));
        marker.data_dir = None;
        marker.parts.clear();
        marker.mod_time += 1;
        m.upsert(marker);
        m
    }

    #[test]
    fn a_listing_head_is_the_latest_version_without_its_inline_data() {
        let mut m = two_versions();
        m.versions[0] = version(2000, Some(vec![7u8; 2000]));
        let bytes = m.encode();
        let n = head_len(&bytes[..head_len_needs()]).expect("format 2");
        let listed = listing_head(&bytes[..n]).expect("inline data to leave out");
        assert!(listed.len() + 2000 <= n, "{} of {n} bytes", listed.len());
        let head = ObjectMeta::decode_head(&listed)
            .expect("a valid head")
            .expect("latest");
        let latest = m.latest().expect("latest");
        assert_eq!(head.inline, None);
        assert_eq!(head.signature(), latest.signature());
        assert_eq!(
            Version {
                inline: latest.inline.clone(),
                ..head
            },
            *latest
        );
        // Nothing to leave out, a damaged head, another format: served as read.
        assert_eq!(listing_head(&listed), None);
        let mut empty = m.clone();
        empty.versions[0] = version(0, Some(Vec::new()));
        let empty = empty.encode();
        let en = head_len(&empty[..head_len_needs()]).expect("format 2");
        assert_eq!(
            listing_head(&empty[..en]),
            None,
            "an empty shard is nothing to leave out"
        );
        let mut damaged = bytes[..n].to_vec();
        damaged[PREFIX + 3] ^= 1;
        assert_eq!(listing_head(&damaged), None);
        assert_eq!(listing_head(b"not metadata at all"), None);
    }

    #[test]
    fn the_head_decodes_alone_from_a_prefix() {
        let mut m = two_versions();
        for i in 0..1000u128 {
            let mut v = version(i as u64, None);
            v.version_id = Some(Uuid::from_u128(100 + i));
            m.versions.push(v);
        }
        let bytes = m.encode();
        let n = head_len(&bytes[..head_len_needs()]).expect("format 2");
        assert!(n < 1024, "the head is {n} bytes of {}", bytes.len());
        let head = ObjectMeta::decode_head(&bytes[..n]).expect("head");
        assert_eq!(head.as_ref(), m.latest());
        // Damage past the head: the head still decodes, the whole file does not.
        let mut b = bytes.clone();
        let last = b.len() - 20;
        b[last] ^= 1;
        assert_eq!(ObjectMeta::decode_head(&b).expect("head"), head);
        assert!(ObjectMeta::decode(&b).is_err());
        // Damage in the head: both refuse.
        let mut b = bytes.clone();
        b[PREFIX + 3] ^= 1;
        assert!(ObjectMeta::decode_head(&b[..n]).is_err());
        assert!(ObjectMeta::decode(&b).is_err());
        // Too short a prefix is Truncated, not a wrong answer.
        assert_eq!(
            ObjectMeta::decode_head(&bytes[..n - 1]),
            Err(MetaError::Truncated)
        );
        // No versions at all.
        let empty = ObjectMeta::default().encode();
        assert_eq!(ObjectMeta::decode_head(&empty), Ok(None));
        assert_eq!(ObjectMeta::decode(&empty), Ok(ObjectMeta::default()));
    }

    /// Format 1 files are read by this release and rewritten as format 2 by any commit.
    #[test]
    fn format_1_migrates_to_format_2_on_write() {
        let fixture = include_bytes!("testdata/v1.meta");
        assert_eq!(head_len(fixture), None, "format 1 has no separate head");
        let m = ObjectMeta::decode(fixture).expect("v1 decodes");
        assert_eq!(
            ObjectMeta::decode_head(fixture).expect("v1 head").as_ref(),
            m.latest()
        );
        let again = m.encode();
        assert_eq!(u16::from_le_bytes([again[4], again[5]]), 2);
        assert_eq!(ObjectMeta::decode(&again).expect("v2 decodes"), m);
    }

    /// A fixture of format version 2 must keep decoding in every later release.
    #[test]
    fn golden_v2_fixture() {
        let fixture = include_bytes!("testdata/v2.meta");
        assert_eq!(
            ObjectMeta::decode(fixture).expect("v2 decodes"),
            two_versions()
        );
        let n = head_len(fixture).expect("format 2");
        assert_eq!(
            ObjectMeta::decode_head(&fixture[..n])
                .expect("v2 head")
                .as_ref(),
            two_versions().latest()
        );
        assert!(
            two_versions().encode() == fixture,
            "format 2 is written byte for byte as the fixture"
        );
    }

    /// A head's signature decodes as the signature of its whole latest version, from both
    /// formats, with or without inline data, and is refused wherever the whole decode finds
    /// the head damaged.
    #[test]
    fn head_signatures_match_whole_heads() {
        let v1 = include_bytes!("testdata/v1.meta");
        let v2 = include_bytes!("testdata/v2.meta");
        let mut deleted = ObjectMeta::default();
        let mut marker = version(0, None);
        marker.kind = VersionKind::DeleteMarker;
        marker.version_id = Some(Uuid::from_u128(7));
        deleted.upsert(marker);
        let files = [
            v1.to_vec(),
            v2.to_vec(),
            deleted.encode(),
            ObjectMeta::default().encode(),
        ];
        for bytes in &files {
            let whole = ObjectMeta::decode_head(bytes).expect("head");
            let sig = ObjectMeta::decode_head_sig(bytes).expect("signature");
            assert_eq!(sig, whole.as_ref().map(HeadSig::of));
            if let (Some(s), Some(w)) = (&sig, &whole) {
                assert_eq!(s.signature(), w.signature());
            }
        }
        let mut m = ObjectMeta::default();
        m.upsert(version(5, Some(vec![1, 2, 3])));
        let bytes = m.encode();
        let n = head_len(&bytes).expect("format 2");
        for i in 0..n {
            let mut b = bytes.clone();
            b[i] ^= 0x10;
            if ObjectMeta::decode_head(&b).is_err() {
                assert!(
                    ObjectMeta::decode_head_sig(&b).is_err(),
                    "flip at {i} went unnoticed"
                );
            }
        }
    }

    /// Regenerates `testdata/v2.meta`; run only when deliberately creating a new fixture.
    #[test]
    #[ignore]
    fn write_v2_fixture() {
        std::fs::write("src/meta/testdata/v2.meta", two_versions().encode()).expect("fixture");
    }

    /// A fixture of format version 1 must keep decoding in every later release.
    #[test]
    fn golden_v1_fixture() {
        let mut m = ObjectMeta::default();
        m.upsert(version(11, Some(b"hello world".to_vec())));
        let fixture = include_bytes!("testdata/v1.meta");
        assert_eq!(ObjectMeta::decode(fixture).expect("v1 decodes"), m);
    }
}
