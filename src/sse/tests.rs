use proptest::prelude::*;

use super::*;

fn data(n: usize, seed: u8) -> Vec<u8> {
    (0..n)
        .map(|i| {
            (i as u32)
                .wrapping_mul(2_654_435_761)
                .rotate_left(seed as u32) as u8
        })
        .collect()
}

/// Encrypt `plain` as part `part` of `key`, feeding it in `chunk`-byte pieces.
fn encrypt(key: &ObjectKey, part: u32, plain: &[u8], chunk: usize) -> Vec<u8> {
    let mut e = Encryptor::new(key.part_key(part, &[]));
    let mut out = Vec::new();
    for c in plain.chunks(chunk.max(1)) {
        e.update(c, &mut out);
    }
    e.finish(&mut out);
    out
}

/// Decrypt `len` bytes from `start` of a part of `size` bytes, reading only the stored
/// range they need, fed in `chunk`-byte pieces.
fn decrypt(
    key: &ObjectKey,
    part: u32,
    stored: &[u8],
    start: u64,
    len: u64,
    size: u64,
    chunk: usize,
) -> Result<Vec<u8>, SseError> {
    let r = cipher_range(start, len, size);
    let bytes = &stored[r.start as usize..(r.start + r.len) as usize];
    let mut d = Decryptor::new(key.part_key(part, &[]), &r, len, size);
    let mut out = Vec::new();
    for c in bytes.chunks(chunk.max(1)) {
        d.update(c, &mut out)?;
    }
    d.finish(&mut out)?;
    Ok(out)
}

#[test]
fn sizes_at_package_boundaries() {
    let p = PACKAGE as u64;
    for (n, stored) in [
        (0, 16),
        (1, 17),
        (p - 1, p + 15),
        (p, p + 16),
        (p + 1, p + 1 + 32),
        (3 * p + 5, 3 * p + 5 + 64),
    ] {
        assert_eq!(encrypted_size(n), stored, "{n}");
        assert_eq!(plain_size(stored), Some(n), "{stored}");
    }
    // Sizes no plaintext gives.
    for c in [0, 5, 15, p + 16 + 3] {
        assert_eq!(plain_size(c), None, "{c}");
    }
}

#[test]
fn round_trips_whole_and_in_ranges_across_package_boundaries() {
    let key = ObjectKey::random().expect("key");
    let p = PACKAGE;
    for n in [0, 1, p - 1, p, p + 1, 3 * p + 5] {
        let plain = data(n, 3);
        let stored = encrypt(&key, 1, &plain, 7000);
        assert_eq!(stored.len() as u64, encrypted_size(n as u64));
        // Ciphertext is not the plaintext (nor does it contain it).
        if n >= 64 {
            assert!(!stored.windows(64).any(|w| w == &plain[..64]));
        }
        let size = n as u64;
        assert_eq!(
            decrypt(&key, 1, &stored, 0, size, size, 4096).expect("whole"),
            plain
        );
        for (start, len) in [
            (0u64, 1u64),
            (p as u64 - 1, 2),
            (p as u64, 1),
            (p as u64 - 10, p as u64 + 20),
            (size.saturating_sub(1), 1),
            (5, size.saturating_sub(10)),
        ] {
            if start >= size || len == 0 || start + len > size {
                continue;
            }
            let got = decrypt(&key, 1, &stored, start, len, size, 999).expect("range");
            assert_eq!(
                got,
                plain[start as usize..(start + len) as usize],
                "{n}: {start}+{len}"
            );
            // Only the packages holding the range were read.
            let r = cipher_range(start, len, size);
            assert!(r.len <= ((len / p as u64) + 2) * (p + TAG) as u64);
        }
    }
}

#[test]
fn damaged_reordered_cut_or_foreign_packages_never_decrypt() {
    let p = PACKAGE;
    let (a, b) = (
        ObjectKey::random().expect("a"),
        ObjectKey::random().expect("b"),
    );
    let plain = data(3 * p + 100, 5);
    let size = plain.len() as u64;
    let sa = encrypt(&a, 1, &plain, p);
    let whole = |stored: &[u8]| decrypt(&a, 1, stored, 0, size, size, 10_000);
    // A flipped bit anywhere.
    for at in [0, p + TAG - 1, 2 * (p + TAG) + 7, sa.len() - 1] {
        let mut s = sa.clone();
        s[at] ^= 0x10;
        assert!(whole(&s).is_err(), "flip at {at}");
    }
    // Packages 0 and 1 swapped.
    let mut s = sa.clone();
    let (x, y) = s.split_at_mut(p + TAG);
    x.swap_with_slice(&mut y[..p + TAG]);
    assert_eq!(whole(&s), Err(SseError::Package(0)));
    // The final package dropped: the one before it is not final.
    let cut = &sa[..3 * (p + TAG)];
    assert!(decrypt(&a, 1, &[cut, &[0u8; 116][..]].concat(), 0, size, size, 4096).is_err());
    let mut d = Decryptor::new(a.part_key(1, &[]), &cipher_range(0, size, size), size, size);
    let mut out = Vec::new();
    d.update(cut, &mut out).expect("the first three open");
    assert_eq!(d.finish(&mut out), Err(SseError::Truncated(3)));
    // The same position of another object (same plaintext, another key), and of another
    // part of the same object.
    let sb = encrypt(&b, 1, &plain, p);
    let sa2 = encrypt(&a, 2, &plain, p);
    for other in [&sb, &sa2] {
        let mut s = sa.clone();
        s[p + TAG..2 * (p + TAG)].copy_from_slice(&other[p + TAG..2 * (p + TAG)]);
        assert_eq!(whole(&s), Err(SseError::Package(1)));
    }
    // Bytes after the final package: a short final package no longer opens; after a full
    // one, the extra package is refused as trailing.
    let mut long = sa.clone();
    long.extend_from_slice(&sa[..p + TAG]);
    let mut d = Decryptor::new(a.part_key(1, &[]), &cipher_range(0, size, size), size, size);
    assert_eq!(d.update(&long, &mut Vec::new()), Err(SseError::Package(3)));
    let even = &plain[..2 * p];
    let se = encrypt(&a, 1, even, p);
    let n = even.len() as u64;
    let mut d = Decryptor::new(a.part_key(1, &[]), &cipher_range(0, n, n), n, n);
    let mut long = se.clone();
    long.extend_from_slice(&se[..p + TAG]);
    assert_eq!(d.update(&long, &mut Vec::new()), Err(SseError::Trailing));
}

#[test]
fn a_customer_key_opens_its_object_key_and_nothing_else_does() {
    let object = ObjectKey::random().expect("key");
    let client = [7u8; 32];
    let sealed = seal_with_customer_key(&client, &object, b"bucket/key").expect("seal");
    assert!(!sealed.windows(32).any(|w| w == client));
    assert!(!sealed.windows(32).any(|w| w == object.as_bytes()));
    assert_eq!(
        open_with_customer_key(&client, &sealed, b"bucket/key").expect("open"),
        object
    );
    assert_eq!(
        open_with_customer_key(&[8u8; 32], &sealed, b"bucket/key"),
        Err(SseError::WrongKey)
    );
    assert_eq!(
        open_with_customer_key(&client, &sealed, b"bucket/other"),
        Err(SseError::WrongKey)
    );
    assert_eq!(
        open_with_customer_key(&client, &sealed[1..], b"bucket/key"),
        Err(SseError::WrongKey)
    );
    assert_eq!(format!("{object:?}"), "ObjectKey(<secret>)");
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn any_range_of_any_size_decrypts_to_the_same_bytes(
        n in 0usize..(3 * PACKAGE + 200),
        a in 0usize..(3 * PACKAGE + 200),
        len in 1usize..(2 * PACKAGE),
        chunk in 1usize..20_000,
    ) {
        let key = ObjectKey::from_bytes([9u8; 32]);
        let plain = data(n, 1);
        let stored = encrypt(&key, 1, &plain, chunk);
        prop_assert_eq!(plain_size(stored.len() as u64), Some(n as u64));
        if n > 0 {
            let start = a % n;
            let len = len.min(n - start);
            let got = decrypt(&key, 1, &stored, start as u64, len as u64, n as u64, chunk)
                .expect("decrypt");
            prop_assert_eq!(&got[..], &plain[start..start + len]);
        }
    }
}

#[test]
fn a_part_uploaded_again_gets_another_key() {
    let key = ObjectKey::random().expect("random");
    let (s1, s2) = (part_salt().expect("salt"), part_salt().expect("salt"));
    assert_ne!(s1, s2);
    let plain = vec![7u8; 1000];
    let seal = |salt: &[u8]| {
        let mut e = Encryptor::new(key.part_key(3, salt));
        let mut out = Vec::new();
        e.update(&plain, &mut out);
        e.finish(&mut out);
        out
    };
    let (a, b) = (seal(&s1), seal(&s2));
    assert_ne!(
        a, b,
        "the same plaintext under two salts must not give the same stream"
    );
    let n = plain.len() as u64;
    let mut d = Decryptor::new(key.part_key(3, &s1), &cipher_range(0, n, n), n, n);
    let mut out = Vec::new();
    assert!(d.update(&b, &mut out).is_err() || d.finish(&mut out).is_err());
    let mut d = Decryptor::new(key.part_key(3, &s1), &cipher_range(0, n, n), n, n);
    let mut out = Vec::new();
    d.update(&a, &mut out).expect("opens");
    d.finish(&mut out).expect("ends");
    assert_eq!(out, plain);
    // No salt is the single-part derivation, distinct from any salted one.
    assert_ne!(seal(&[]), a);
}
