//! S3 additional checksums (CRC32, CRC32C, CRC64NVME, SHA-1, SHA-256): streaming hashers,
//! base64 values, and the composite checksum of multipart objects. Pure code.

use base64::Engine;
use sha2::Digest;

/// The checksum algorithms of S3's additional checksums.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChecksumAlg {
    Crc32,
    Crc32c,
    Crc64Nvme,
    Sha1,
    Sha256,
}

impl ChecksumAlg {
    pub const ALL: [ChecksumAlg; 5] = [
        ChecksumAlg::Crc32,
        ChecksumAlg::Crc32c,
        ChecksumAlg::Crc64Nvme,
        ChecksumAlg::Sha1,
        ChecksumAlg::Sha256,
    ];

    pub fn parse(s: &str) -> Option<ChecksumAlg> {
        Self::ALL
            .into_iter()
            .find(|a| a.name().eq_ignore_ascii_case(s))
    }

    /// Upper-case name as in `x-amz-sdk-checksum-algorithm` and XML (`CRC32`, ...).
    pub fn name(self) -> &'static str {
        match self {
            ChecksumAlg::Crc32 => "CRC32",
            ChecksumAlg::Crc32c => "CRC32C",
            ChecksumAlg::Crc64Nvme => "CRC64NVME",
            ChecksumAlg::Sha1 => "SHA1",
            ChecksumAlg::Sha256 => "SHA256",
        }
    }

    pub fn header(self) -> String {
        format!("x-amz-checksum-{}", self.name().to_ascii_lowercase())
    }

    fn raw_len(self) -> usize {
        match self {
            ChecksumAlg::Crc32 | ChecksumAlg::Crc32c => 4,
            ChecksumAlg::Crc64Nvme => 8,
            ChecksumAlg::Sha1 => 20,
            ChecksumAlg::Sha256 => 32,
        }
    }

    /// Is `b64` a well-formed value for this algorithm?
    pub fn valid_value(self, b64: &str) -> bool {
        base64::engine::general_purpose::STANDARD
            .decode(b64)
            .is_ok_and(|v| v.len() == self.raw_len())
    }
}

pub enum ChecksumHasher {
    Crc32(crc32fast::Hasher),
    Crc32c(u32),
    Crc64(crc64fast_nvme::Digest),
    Sha1(sha1::Sha1),
    Sha256(sha2::Sha256),
}

impl ChecksumHasher {
    pub fn new(alg: ChecksumAlg) -> ChecksumHasher {
        match alg {
            ChecksumAlg::Crc32 => ChecksumHasher::Crc32(crc32fast::Hasher::new()),
            ChecksumAlg::Crc32c => ChecksumHasher::Crc32c(0),
            ChecksumAlg::Crc64Nvme => ChecksumHasher::Crc64(crc64fast_nvme::Digest::new()),
            ChecksumAlg::Sha1 => ChecksumHasher::Sha1(sha1::Sha1::new()),
            ChecksumAlg::Sha256 => ChecksumHasher::Sha256(sha2::Sha256::new()),
        }
    }

    pub fn update(&mut self, data: &[u8]) {
        match self {
            ChecksumHasher::Crc32(h) => h.update(data),
            ChecksumHasher::Crc32c(c) => *c = crc32c::crc32c_append(*c, data),
            ChecksumHasher::Crc64(h) => h.write(data),
            ChecksumHasher::Sha1(h) => h.update(data),
            ChecksumHasher::Sha256(h) => h.update(data),
        }
    }

    /// The raw digest bytes (big-endian for CRCs).
    pub fn finish(self) -> Vec<u8> {
        match self {
            ChecksumHasher::Crc32(h) => h.finalize().to_be_bytes().to_vec(),
            ChecksumHasher::Crc32c(c) => c.to_be_bytes().to_vec(),
            ChecksumHasher::Crc64(h) => h.sum64().to_be_bytes().to_vec(),
            ChecksumHasher::Sha1(h) => h.finalize().to_vec(),
            ChecksumHasher::Sha256(h) => h.finalize().to_vec(),
        }
    }
}

pub fn b64(raw: &[u8]) -> String {
    base64::engine::general_purpose::STANDARD.encode(raw)
}

/// Composite checksum of a multipart object: the checksum of the concatenated raw part
/// checksums, suffixed with `-N`. `None` when a part lacks a valid value.
pub fn composite(alg: ChecksumAlg, parts: &[&str]) -> Option<String> {
    let mut h = ChecksumHasher::new(alg);
    for p in parts {
        let raw = base64::engine::general_purpose::STANDARD.decode(p).ok()?;
        if raw.len() != alg.raw_len() {
            return None;
        }
        h.update(&raw);
    }
    Some(format!("{}-{}", b64(&h.finish()), parts.len()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn checksum_values() {
        let mut h = ChecksumHasher::new(ChecksumAlg::Crc32);
        h.update(b"hello");
        assert_eq!(b64(&h.finish()), "NhCmhg==");
        let mut h = ChecksumHasher::new(ChecksumAlg::Crc32c);
        h.update(b"hello");
        assert_eq!(b64(&h.finish()), "mnG7TA==");
        let mut h = ChecksumHasher::new(ChecksumAlg::Sha256);
        h.update(b"");
        assert_eq!(
            b64(&h.finish()),
            "47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU="
        );
        assert!(ChecksumAlg::Crc32.valid_value("NhCmhg=="));
        assert!(!ChecksumAlg::Crc32.valid_value("NhCm"));
        assert_eq!(
            ChecksumAlg::parse("crc64nvme"),
            Some(ChecksumAlg::Crc64Nvme)
        );
    }
}
