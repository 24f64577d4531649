//! Server-side encryption's data format: how an object's bytes are sealed before they are
//! erasure-coded, so shards on drives hold only ciphertext.
//!
//! - Every object (every version) has its own random 256-bit **object key**. Under SSE-S3
//!   and SSE-KMS it is a data key from the [`crate::kms::Kms`], stored sealed by it; under
//!   SSE-C it is random and stored sealed by a key derived from the client's key
//!   ([`seal_with_customer_key`]), which is never stored.
//! - Each part (a single-part object is part 1) is encrypted under its own **package key**,
//!   HMAC-SHA256(object key, "cairn-sse-v1 part" ‖ part number ‖ salt): parts cannot be
//!   swapped. The salt is empty for a single-part object (its object key is new on every
//!   write) and 32 random bytes per uploaded part of a multipart upload (whose object key
//!   is fixed when the upload starts, while a part number may be uploaded again).
//! - The plaintext is cut into **packages** of 64 KiB (the last may be shorter, and an
//!   empty part is one empty package). Each is sealed with AES-256-GCM; the 96-bit nonce is
//!   the package's sequence number (64 bits) and a final flag (32 bits), so packages cannot
//!   be reordered, dropped, duplicated or cut off at the end without the open failing, and
//!   a package from another object or part (another key) never opens. A sealed package is
//!   its ciphertext followed by the 16-byte tag: `n` plaintext bytes take
//!   [`encrypted_size`]`(n)` bytes.
//! - A byte range of the plaintext needs only the packages that hold it
//!   ([`cipher_range`]).
//!
//! Owns: the package format, key derivation, and the envelope headers that keep an object's
//! sealed key ([`envelope`]). Must not touch: HTTP, drives, the KMS's own sealing.

pub mod envelope;

use ring::aead::{Aad, LessSafeKey, Nonce, UnboundKey, AES_256_GCM, NONCE_LEN};
use ring::hmac;
use ring::rand::{SecureRandom, SystemRandom};

/// Plaintext bytes per package.
pub const PACKAGE: usize = 64 << 10;
/// Authentication tag bytes per package.
pub const TAG: usize = 16;
/// The erasure block size of an encrypted object: sixteen whole packages (1 MiB of
/// plaintext). A 1 MiB object is then one block, as its plain twin is (with the store's
/// 1 MiB blocks its last 256 bytes took a second block: another read of every shard), no
/// package straddles two blocks, and at 1, 2, 4, 8 or 16 data shards none straddles two
/// shards either (each is opened where it lies, never gathered).
pub const BLOCK: usize = 16 * (PACKAGE + TAG);
const SEALED_KEY_V1: u8 = 1;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SseError {
    /// A package failed authentication: damaged, moved, reordered or from another object.
    #[error("encrypted package {0} failed authentication")]
    Package(u64),
    /// The ciphertext ended before its final package.
    #[error("encrypted data ends early (package {0} missing)")]
    Truncated(u64),
    /// The ciphertext goes on after the final package.
    #[error("encrypted data continues after its final package")]
    Trailing,
    /// The object key does not open with this customer key (or was damaged).
    #[error("the object key cannot be opened with this key")]
    WrongKey,
    #[error("no randomness available")]
    Random,
}

/// Packages a part of `n` plaintext bytes takes (at least one).
pub fn packages(n: u64) -> u64 {
    n.div_ceil(PACKAGE as u64).max(1)
}

/// Stored size of `n` plaintext bytes.
pub fn encrypted_size(n: u64) -> u64 {
    n.saturating_add(packages(n).saturating_mul(TAG as u64))
}

/// Plaintext size of a part stored in `c` bytes; `None` when no plaintext size gives `c`.
pub fn plain_size(c: u64) -> Option<u64> {
    let full = (PACKAGE + TAG) as u64;
    let (whole, rest) = (c / full, c % full);
    let n = match rest {
        0 if whole > 0 => whole * PACKAGE as u64,
        r if r >= TAG as u64 => whole * PACKAGE as u64 + (r - TAG as u64),
        _ => return None,
    };
    (encrypted_size(n) == c).then_some(n)
}

/// The stored bytes a plaintext range of a part needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CipherRange {
    /// Offset and length in the stored part.
    pub start: u64,
    pub len: u64,
    /// Sequence number of the first package read.
    pub first_package: u64,
    /// Plaintext bytes of the first package before the range.
    pub skip: usize,
}

/// The packages holding `len` plaintext bytes from `start` of a part of `size` bytes
/// (clamped to the part).
pub fn cipher_range(start: u64, len: u64, size: u64) -> CipherRange {
    let p = PACKAGE as u64;
    let start = start.min(size);
    let end = start.saturating_add(len).min(size);
    let first = start / p;
    // The package holding the last byte (an empty range still reads one package).
    let last = if end > start {
        (end - 1) / p
    } else {
        first.min(packages(size) - 1)
    };
    let first = first.min(last);
    let full = (PACKAGE + TAG) as u64;
    let cstart = first * full;
    let cend = encrypted_size(size).min((last + 1) * full);
    CipherRange {
        start: cstart,
        len: cend - cstart,
        first_package: first,
        skip: (start - first * p) as usize,
    }
}

/// An object's key.
#[derive(Clone, PartialEq, Eq)]
pub struct ObjectKey([u8; 32]);

impl std::fmt::Debug for ObjectKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ObjectKey(<secret>)")
    }
}

impl ObjectKey {
    pub fn random() -> Result<ObjectKey, SseError> {
        let mut k = [0u8; 32];
        SystemRandom::new()
            .fill(&mut k)
            .map_err(|_| SseError::Random)?;
        Ok(ObjectKey(k))
    }

    pub fn from_bytes(k: [u8; 32]) -> ObjectKey {
        ObjectKey(k)
    }

    pub fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }

    /// The key of part `part` (1-based; a single-part object is part 1, with no salt).
    /// A part of a multipart upload has its own random `salt`, so that a part uploaded
    /// again under the same number never reuses a key and nonce.
    pub fn part_key(&self, part: u32, salt: &[u8]) -> PackageKey {
        let mac = hmac::Key::new(hmac::HMAC_SHA256, &self.0);
        let mut msg = b"cairn-sse-v1 part".to_vec();
        msg.extend_from_slice(&part.to_be_bytes());
        msg.extend_from_slice(salt);
        let tag = hmac::sign(&mac, &msg);
        PackageKey::new(tag.as_ref())
    }
}

/// The AES-256-GCM key packages of one part are sealed with.
pub struct PackageKey(LessSafeKey);

impl std::fmt::Debug for PackageKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("PackageKey(<secret>)")
    }
}

fn nonce(seq: u64, last: bool) -> Nonce {
    let mut n = [0u8; NONCE_LEN];
    n[..8].copy_from_slice(&seq.to_be_bytes());
    n[8..].copy_from_slice(&u32::from(last).to_be_bytes());
    Nonce::assume_unique_for_key(n)
}

impl PackageKey {
    fn new(bytes: &[u8]) -> PackageKey {
        // 32 bytes (an HMAC-SHA256 output): AES-256 always accepts them.
        let key = UnboundKey::new(&AES_256_GCM, bytes)
            .unwrap_or_else(|_| unreachable!("an HMAC-SHA256 output is an AES-256 key"));
        PackageKey(LessSafeKey::new(key))
    }

    /// Seal the plaintext in `buf` as package `seq` (appends the tag).
    pub fn seal(&self, seq: u64, last: bool, buf: &mut Vec<u8>) {
        // Sealing fails only for inputs over GCM's 64 GiB limit; a package is 64 KiB.
        let _ = self
            .0
            .seal_in_place_append_tag(nonce(seq, last), Aad::empty(), buf);
    }

    /// Open package `seq` in place; its plaintext.
    pub fn open<'a>(&self, seq: u64, last: bool, buf: &'a mut [u8]) -> Result<&'a [u8], SseError> {
        self.0
            .open_in_place(nonce(seq, last), Aad::empty(), buf)
            .map(|p| &*p)
            .map_err(|_| SseError::Package(seq))
    }
}

/// A new random part salt.
pub fn part_salt() -> Result<[u8; 32], SseError> {
    let mut salt = [0u8; 32];
    SystemRandom::new()
        .fill(&mut salt)
        .map_err(|_| SseError::Random)?;
    Ok(salt)
}

/// Streams a part's plaintext into sealed packages.
pub struct Encryptor {
    key: PackageKey,
    seq: u64,
    /// Plaintext not yet sealed: a full package is held back until more arrives, since
    /// only then is it known not to be the last.
    pending: Vec<u8>,
}

impl Encryptor {
    pub fn new(key: PackageKey) -> Encryptor {
        Encryptor {
            key,
            seq: 0,
            pending: Vec::with_capacity(PACKAGE + TAG),
        }
    }

    /// Take `data`, appending every package it completes to `out`.
    pub fn update(&mut self, mut data: &[u8], out: &mut Vec<u8>) {
        while !data.is_empty() {
            if self.pending.len() == PACKAGE {
                self.flush(false, out);
            }
            let take = (PACKAGE - self.pending.len()).min(data.len());
            self.pending.extend_from_slice(&data[..take]);
            data = &data[take..];
        }
    }

    fn flush(&mut self, last: bool, out: &mut Vec<u8>) {
        self.key.seal(self.seq, last, &mut self.pending);
        out.extend_from_slice(&self.pending);
        self.pending.clear();
        self.seq += 1;
    }

    /// Seal the final package (possibly empty) into `out`.
    pub fn finish(mut self, out: &mut Vec<u8>) {
        self.flush(true, out);
    }
}

/// Streams a part's stored bytes (all of them, or a [`CipherRange`] of them) back into
/// plaintext, checking every package.
pub struct Decryptor {
    key: PackageKey,
    seq: u64,
    /// Sequence number of the part's final package.
    last: u64,
    /// Plaintext bytes to drop from the first package, then how many to produce.
    skip: usize,
    remaining: u64,
    pending: Vec<u8>,
}

impl Decryptor {
    /// Decrypt the stored bytes of `range` of a part of `size` plaintext bytes, producing
    /// `len` bytes from the range's start.
    pub fn new(key: PackageKey, range: &CipherRange, len: u64, size: u64) -> Decryptor {
        Decryptor {
            key,
            seq: range.first_package,
            last: packages(size) - 1,
            skip: range.skip,
            remaining: len,
            pending: Vec::with_capacity(PACKAGE + TAG),
        }
    }

    /// The sequence number of the next package expected.
    pub fn first(&self) -> u64 {
        self.seq
    }

    /// Take stored bytes, appending the plaintext they complete to `out`. Whole packages
    /// are opened where they land in `out` (one copy); only a package split across calls
    /// is gathered first.
    pub fn update(&mut self, mut data: &[u8], out: &mut Vec<u8>) -> Result<(), SseError> {
        const FULL: usize = PACKAGE + TAG;
        while !data.is_empty() {
            if self.pending.is_empty() && data.len() >= FULL {
                let (package, rest) = data.split_at(FULL);
                self.open_into(package, out)?;
                data = rest;
                continue;
            }
            let take = (FULL - self.pending.len()).min(data.len());
            self.pending.extend_from_slice(&data[..take]);
            data = &data[take..];
            if self.pending.len() == FULL {
                let mut pending = std::mem::take(&mut self.pending);
                let opened = self.open_into(&pending, out);
                pending.clear();
                self.pending = pending;
                opened?;
            }
        }
        Ok(())
    }

    /// Open one stored package (ciphertext and tag), appending the wanted part of its
    /// plaintext to `out`.
    fn open_into(&mut self, package: &[u8], out: &mut Vec<u8>) -> Result<(), SseError> {
        let at = out.len();
        out.extend_from_slice(package);
        match self.open_in_place(&mut out[at..]) {
            Ok(keep) => {
                out.copy_within(at + keep.start..at + keep.end, at);
                out.truncate(at + keep.len());
                Ok(())
            }
            Err(e) => {
                out.truncate(at);
                Err(e)
            }
        }
    }

    /// Stored bytes of a package split across calls gathered so far: while none are, the
    /// next stored bytes start a package, and a whole one can be given to
    /// [`Decryptor::open_in_place`].
    pub fn gathered(&self) -> usize {
        self.pending.len()
    }

    /// Open the next package where it lies: `package` is its ciphertext and tag (a whole
    /// package, [`PACKAGE`] + [`TAG`] bytes unless it is the part's last). The range of
    /// `package` that holds the plaintext wanted from it (no copy).
    pub fn open_in_place(
        &mut self,
        package: &mut [u8],
    ) -> Result<std::ops::Range<usize>, SseError> {
        if self.seq > self.last {
            return Err(SseError::Trailing);
        }
        let last = self.seq == self.last;
        let n = self.key.open(self.seq, last, package)?.len();
        let from = self.skip.min(n);
        let keep = ((n - from) as u64).min(self.remaining) as usize;
        self.remaining -= keep as u64;
        self.skip = 0;
        self.seq += 1;
        Ok(from..from + keep)
    }

    /// End of the stored bytes: open a short final package, and fail if the plaintext
    /// asked for did not all arrive.
    pub fn finish(&mut self, out: &mut Vec<u8>) -> Result<(), SseError> {
        if !self.pending.is_empty() {
            let pending = std::mem::take(&mut self.pending);
            self.open_into(&pending, out)?;
        }
        if self.remaining > 0 {
            return Err(SseError::Truncated(self.seq));
        }
        Ok(())
    }
}

/// The key that seals an object key under SSE-C, derived from the client's key.
fn customer_kek(client_key: &[u8; 32]) -> LessSafeKey {
    let mac = hmac::Key::new(hmac::HMAC_SHA256, client_key);
    let tag = hmac::sign(&mac, b"cairn-sse-c-v1 key-encryption-key");
    let key = UnboundKey::new(&AES_256_GCM, tag.as_ref())
        .unwrap_or_else(|_| unreachable!("an HMAC-SHA256 output is an AES-256 key"));
    LessSafeKey::new(key)
}

/// Seal `object` with a key derived from the client's SSE-C key, bound to `context`
/// (bucket and key): version, nonce, sealed key and tag. The client key is not stored; a
/// later request's key is checked by opening this.
pub fn seal_with_customer_key(
    client_key: &[u8; 32],
    object: &ObjectKey,
    context: &[u8],
) -> Result<Vec<u8>, SseError> {
    let mut n = [0u8; NONCE_LEN];
    SystemRandom::new()
        .fill(&mut n)
        .map_err(|_| SseError::Random)?;
    let mut buf = object.0.to_vec();
    customer_kek(client_key)
        .seal_in_place_append_tag(
            Nonce::assume_unique_for_key(n),
            Aad::from(context),
            &mut buf,
        )
        .map_err(|_| SseError::Random)?;
    let mut out = vec![SEALED_KEY_V1];
    out.extend_from_slice(&n);
    out.extend_from_slice(&buf);
    Ok(out)
}

/// Open an object key sealed by [`seal_with_customer_key`].
pub fn open_with_customer_key(
    client_key: &[u8; 32],
    sealed: &[u8],
    context: &[u8],
) -> Result<ObjectKey, SseError> {
    if sealed.len() != 1 + NONCE_LEN + 32 + TAG || sealed[0] != SEALED_KEY_V1 {
        return Err(SseError::WrongKey);
    }
    let mut n = [0u8; NONCE_LEN];
    n.copy_from_slice(&sealed[1..1 + NONCE_LEN]);
    let mut buf = sealed[1 + NONCE_LEN..].to_vec();
    let plain = customer_kek(client_key)
        .open_in_place(
            Nonce::assume_unique_for_key(n),
            Aad::from(context),
            &mut buf,
        )
        .map_err(|_| SseError::WrongKey)?;
    <[u8; 32]>::try_from(&plain[..])
        .map(ObjectKey)
        .map_err(|_| SseError::WrongKey)
}

#[cfg(test)]
mod tests;
