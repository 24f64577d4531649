//! Versioned on-disk object metadata (`cairn.meta`), one file per object per drive.
//!
//! Layout of the file: magic `CRNM`, a `u16` format version (little endian), the
//! MessagePack-encoded [`ObjectMeta`] (named fields, so fields can be added), and the first
//! 8 bytes of the blake3 hash of everything before them. Pure encode/decode: no I/O, no clock.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use thiserror::Error;
use uuid::Uuid;

pub const MAGIC: &[u8; 4] = b"CRNM";
pub const META_VERSION: u16 = 1;
const TRAILER: usize = 8;

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

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PartInfo {
    pub number: u32,
    pub size: u64,
    pub etag: String,
    pub checksums: BTreeMap<String, String>,
}

impl Version {
    /// Identity of a version across drives: two drives agree when these match.
    pub fn signature(&self) -> (Option<Uuid>, i64, Option<Uuid>, VersionKind, &str) {
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

    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(256);
        out.extend_from_slice(MAGIC);
        out.extend_from_slice(&META_VERSION.to_le_bytes());
        // Serializing plain data into a Vec cannot fail.
        let body = rmp_serde::to_vec_named(self).unwrap_or_default();
        out.extend_from_slice(&body);
        let h = blake3::hash(&out);
        out.extend_from_slice(&h.as_bytes()[..TRAILER]);
        out
    }

    pub fn decode(bytes: &[u8]) -> Result<ObjectMeta, MetaError> {
        if bytes.len() < MAGIC.len() + 2 + TRAILER {
            return Err(MetaError::Truncated);
        }
        if &bytes[..4] != MAGIC {
            return Err(MetaError::BadMagic);
        }
        let version = u16::from_le_bytes([bytes[4], bytes[5]]);
        if version != META_VERSION {
            return Err(MetaError::UnsupportedVersion(version));
        }
        let (content, trailer) = bytes.split_at(bytes.len() - TRAILER);
        if &blake3::hash(content).as_bytes()[..TRAILER] != trailer {
            return Err(MetaError::Checksum);
        }
        rmp_serde::from_slice(&content[6..]).map_err(|e| MetaError::Decode(e.to_string()))
    }
}

#[cfg(test)]
mod tests_support {
    pub(super) fn fixture_version() -> super::Version {
        super::tests::version(11, Some(b"hello world".to_vec()))
    }
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

    /// A fixture of format version 1 must keep decoding in every later release.
    #[test]
    fn golden_v1_fixture() {
        let mut m = ObjectMeta::default();
        m.upsert(version(11, Some(b"hello world".to_vec())));
        let fixture = include_bytes!("testdata/v1.meta");
        assert_eq!(ObjectMeta::decode(fixture).expect("v1 decodes"), m);
    }
}

#[cfg(test)]
mod fixture {
    /// Regenerates `testdata/v1.meta`; run only when deliberately creating a new fixture.
    #[test]
    #[ignore]
    fn write_v1_fixture() {
        let mut m = super::ObjectMeta::default();
        m.upsert(super::tests_support::fixture_version());
        std::fs::write("src/meta/testdata/v1.meta", m.encode()).expect("write fixture");
    }
}
