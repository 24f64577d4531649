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

/// How a multipart object's checksum is made from its parts (`x-amz-checksum-type`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChecksumType {
    /// The checksum of the concatenated part checksums, with a `-N` suffix.
    Composite,
    /// The checksum of the whole object's bytes (CRCs only).
    FullObject,
}

impl ChecksumType {
    pub fn parse(s: &str) -> Option<ChecksumType> {
        match s {
            "COMPOSITE" => Some(ChecksumType::Composite),
            "FULL_OBJECT" => Some(ChecksumType::FullObject),
            _ => None,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            ChecksumType::Composite => "COMPOSITE",
            ChecksumType::FullObject => "FULL_OBJECT",
        }
    }

    /// What AWS uses when an upload names an algorithm but no type: CRC64NVME exists only
    /// as a full-object checksum, the others default to composite.
    pub fn default_for(alg: ChecksumAlg) -> ChecksumType {
        match alg {
            ChecksumAlg::Crc64Nvme => ChecksumType::FullObject,
            _ => ChecksumType::Composite,
        }
    }

    /// Can `alg` make checksums of this type? (Full-object needs a CRC; CRC64NVME has no
    /// composite form.)
    pub fn allows(self, alg: ChecksumAlg) -> bool {
        match self {
            ChecksumType::FullObject => alg.crc().is_some(),
            ChecksumType::Composite => alg != ChecksumAlg::Crc64Nvme,
        }
    }

    /// The type of a stored checksum value: composite values carry their `-N` suffix.
    pub fn of_value(value: &str) -> ChecksumType {
        if value.contains('-') {
            ChecksumType::Composite
        } else {
            ChecksumType::FullObject
        }
    }
}

/// A reflected CRC with all-ones init and xorout (all three S3 CRCs are).
#[derive(Debug, Clone, Copy)]
pub struct Crc {
    /// The polynomial, bit-reversed.
    poly: u64,
    width: u32,
}

impl ChecksumAlg {
    /// The CRC parameters, for the algorithms that are CRCs.
    pub fn crc(self) -> Option<Crc> {
        match self {
            ChecksumAlg::Crc32 => Some(Crc {
                poly: 0xEDB8_8320,
                width: 32,
            }),
            ChecksumAlg::Crc32c => Some(Crc {
                poly: 0x82F6_3B78,
                width: 32,
            }),
            ChecksumAlg::Crc64Nvme => Some(Crc {
                poly: 0x9A6C_9329_AC4B_C9B5,
                width: 64,
            }),
            ChecksumAlg::Sha1 | ChecksumAlg::Sha256 => None,
        }
    }
}

/// `mat` (a GF(2) matrix of `width` columns) times `vec`.
fn gf2_times(mat: &[u64], mut vec: u64) -> u64 {
    let mut sum = 0;
    let mut i = 0;
    while vec != 0 {
        if vec & 1 == 1 {
            sum ^= mat[i];
        }
        vec >>= 1;
        i += 1;
    }
    sum
}

impl Crc {
    /// The GF(2) operator (one row per bit) that appends `len` zero bytes to a CRC's
    /// register: the one-zero-byte operator raised to `len` by squaring, O(log len) matrix
    /// products (zlib's `crc32_combine` method).
    fn zeros(self, mut len: u64) -> [u64; 64] {
        let w = self.width as usize;
        let mul = |a: &[u64; 64], b: &[u64; 64]| {
            let mut out = [0u64; 64];
            for (o, row) in out.iter_mut().zip(b.iter()).take(w) {
                *o = gf2_times(&a[..w], *row);
            }
            out
        };
        // One zero bit, then squared three times: one zero byte.
        let mut base = [0u64; 64];
        base[0] = self.poly;
        for (n, row) in base.iter_mut().enumerate().take(w).skip(1) {
            *row = 1 << (n - 1);
        }
        for _ in 0..3 {
            base = mul(&base, &base);
        }
        let mut acc = [0u64; 64];
        for (n, row) in acc.iter_mut().enumerate().take(w) {
            *row = 1 << n;
        }
        while len > 0 {
            if len & 1 == 1 {
                acc = mul(&base, &acc);
            }
            len >>= 1;
            if len > 0 {
                base = mul(&base, &base);
            }
        }
        acc
    }

    /// The CRC of `A ++ B` from `crc(A)`, `crc(B)` and `len(B)` in bytes, without the data.
    pub fn combine(self, crc1: u64, crc2: u64, len2: u64) -> u64 {
        gf2_times(&self.zeros(len2)[..self.width as usize], crc1) ^ crc2
    }
}

/// Full-object checksum of a multipart object from its parts' CRCs (base64) and sizes,
/// without reading the data again. `None` when `alg` is not a CRC or a part lacks a valid
/// value.
pub fn full_object(alg: ChecksumAlg, parts: &[(&str, u64)]) -> Option<String> {
    let crc = alg.crc()?;
    let mut acc: Option<u64> = None;
    // Parts are nearly all one size: one operator per distinct length, not per part.
    let mut operators: Vec<(u64, [u64; 64])> = Vec::new();
    for (value, len) in parts {
        let raw = base64::engine::general_purpose::STANDARD
            .decode(value)
            .ok()
            .filter(|r| r.len() == alg.raw_len())?;
        let mut be = [0u8; 8];
        be[8 - raw.len()..].copy_from_slice(&raw);
        let part = u64::from_be_bytes(be);
        acc = Some(match acc {
            None => part,
            Some(a) => {
                let op = match operators.iter().find(|(l, _)| l == len) {
                    Some((_, op)) => *op,
                    None => {
                        let op = crc.zeros(*len);
                        operators.push((*len, op));
                        op
                    }
                };
                gf2_times(&op[..crc.width as usize], a) ^ part
            }
        });
    }
    let value = acc?;
    let bytes = value.to_be_bytes();
    Some(b64(&bytes[8 - alg.raw_len()..]))
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

    fn digest(alg: ChecksumAlg, data: &[u8]) -> String {
        let mut h = ChecksumHasher::new(alg);
        h.update(data);
        b64(&h.finish())
    }

    /// Combining part CRCs gives the CRC of the whole, for every CRC and for part sizes
    /// around the byte/bit boundaries of the squaring loop (and empty parts).
    #[test]
    fn full_object_crcs_combine_part_crcs() {
        let data: Vec<u8> = (0..70_000u64)
            .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
            .collect();
        for alg in [
            ChecksumAlg::Crc32,
            ChecksumAlg::Crc32c,
            ChecksumAlg::Crc64Nvme,
        ] {
            let whole = digest(alg, &data);
            for cuts in [
                vec![0, 70_000],
                vec![0, 1, 70_000],
                vec![0, 0, 5, 5, 70_000],
                vec![0, 3, 4, 1025, 65_536, 69_999, 70_000],
            ] {
                let parts: Vec<(String, u64)> = cuts
                    .windows(2)
                    .map(|w| (digest(alg, &data[w[0]..w[1]]), (w[1] - w[0]) as u64))
                    .collect();
                let refs: Vec<(&str, u64)> = parts.iter().map(|(v, n)| (v.as_str(), *n)).collect();
                assert_eq!(
                    full_object(alg, &refs),
                    Some(whole.clone()),
                    "{alg:?} {cuts:?}"
                );
            }
        }
        assert_eq!(full_object(ChecksumAlg::Sha256, &[("x", 1)]), None);
        // combine() agrees with the CRC libraries' own combine.
        let crc = ChecksumAlg::Crc32c.crc().expect("crc");
        let (a, b) = (crc32c::crc32c(&data[..1000]), crc32c::crc32c(&data[1000..]));
        assert_eq!(
            crc.combine(a.into(), b.into(), 69_000),
            u64::from(crc32c::crc32c(&data))
        );
        assert_eq!(full_object(ChecksumAlg::Crc32, &[("NhCm", 1)]), None);
    }

    #[test]
    fn checksum_types() {
        assert_eq!(
            ChecksumType::parse("FULL_OBJECT"),
            Some(ChecksumType::FullObject)
        );
        assert_eq!(ChecksumType::parse("full_object"), None);
        assert!(!ChecksumType::FullObject.allows(ChecksumAlg::Sha256));
        assert!(!ChecksumType::Composite.allows(ChecksumAlg::Crc64Nvme));
        assert_eq!(
            ChecksumType::default_for(ChecksumAlg::Crc64Nvme),
            ChecksumType::FullObject
        );
        assert_eq!(ChecksumType::of_value("abc=-3"), ChecksumType::Composite);
    }
}
