//! Pure placement logic: drive arguments → erasure sets, `format.json`, key → set hashing,
//! shard order within a set and quorum sizes. No I/O here.

pub mod ellipses;
pub mod format;
pub mod layout;

pub use format::{Format, FormatError, Resolution, SlotState};
pub use layout::{default_parity, Endpoint, Layout, LayoutError, Pools};

use std::hash::Hasher;

/// The erasure set an object key lives on: SipHash-2-4 of the key keyed with the
/// deployment id, modulo the set count. Stable for the lifetime of a deployment.
pub fn set_for_key(deployment_id: &uuid::Uuid, key: &str, sets: usize) -> usize {
    if sets <= 1 {
        return 0;
    }
    let id = deployment_id.as_bytes();
    let k0 = u64::from_le_bytes(id[..8].try_into().unwrap_or_default());
    let k1 = u64::from_le_bytes(id[8..].try_into().unwrap_or_default());
    let mut h = siphasher::sip::SipHasher24::new_with_keys(k0, k1);
    h.write(key.as_bytes());
    (h.finish() % sets as u64) as usize
}

/// Shard order of an object within its set: `order[i]` is the 1-based shard number drive
/// `i` of the set holds. Rotated from `crc32(bucket/key)` so parity spreads over drives.
pub fn distribution(bucket: &str, key: &str, drives: usize) -> Vec<u16> {
    let mut crc = crc32fast::Hasher::new();
    crc.update(bucket.as_bytes());
    crc.update(b"/");
    crc.update(key.as_bytes());
    let start = crc.finalize() as usize % drives.max(1);
    (1..=drives)
        .map(|i| (1 + (start + i) % drives) as u16)
        .collect()
}

/// Drives that must accept a write: the data shard count, plus one when data == parity so
/// that two disjoint halves can never both commit.
pub fn write_quorum(data: usize, parity: usize) -> usize {
    if data == parity {
        data + 1
    } else {
        data
    }
}

/// Drives that must agree for a read: the data shard count.
pub fn read_quorum(data: usize) -> usize {
    data
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn distribution_is_a_rotation() {
        for n in 1..=16 {
            let d = distribution("bucket", "some/key", n);
            let mut sorted = d.clone();
            sorted.sort_unstable();
            assert_eq!(sorted, (1..=n as u16).collect::<Vec<_>>());
            for w in d.windows(2) {
                assert_eq!(w[1] as usize, (w[0] as usize % n) + 1);
            }
        }
    }

    #[test]
    fn set_hash_is_stable_and_spread() {
        let id = uuid::Uuid::from_bytes([7; 16]);
        let a = set_for_key(&id, "photos/1.jpg", 8);
        assert_eq!(a, set_for_key(&id, "photos/1.jpg", 8));
        let mut counts = [0usize; 8];
        for i in 0..8000 {
            counts[set_for_key(&id, &format!("k{i}"), 8)] += 1;
        }
        assert!(counts.iter().all(|&c| c > 800), "{counts:?}");
    }

    #[test]
    fn quorums() {
        assert_eq!(write_quorum(2, 2), 3);
        assert_eq!(write_quorum(4, 2), 4);
        assert_eq!(read_quorum(2), 2);
    }
}
