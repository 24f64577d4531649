//! Object keys are data, never paths. A key is split on `/` and every component is
//! escaped into a safe file name, so no key can name anything outside its bucket directory
//! or collide with Cairn's own entries (whose names start with `@`, a first byte no encoded
//! component has).
//!
//! Escapes (`%XX` hex): `%` anywhere, NUL anywhere, `@` in first position; the components
//! `.` and `..` become `%2E` and `%2E%2E`; the empty component (from `//`, a leading or a
//! trailing `/`) becomes `%-`. Decoding is exact, so listings return the original keys.

use std::path::PathBuf;

/// Name of the metadata file inside an object's directory.
pub const META_FILE: &str = "@meta";
/// Name of the bucket metadata file inside a bucket's directory.
pub const BUCKET_META_FILE: &str = "@bucket";
/// Prefix of a version's data directory inside an object's directory.
pub const DATA_DIR_PREFIX: &str = "@";
/// Longest file name most Linux filesystems accept.
const NAME_MAX: usize = 255;

/// The escaped file name of one key component.
pub fn encode_component(c: &str) -> String {
    match c {
        "" => return "%-".to_string(),
        "." => return "%2E".to_string(),
        ".." => return "%2E%2E".to_string(),
        _ => {}
    }
    let mut out = String::with_capacity(c.len());
    for (i, ch) in c.char_indices() {
        match ch {
            '%' => out.push_str("%25"),
            '\0' => out.push_str("%00"),
            '@' if i == 0 => out.push_str("%40"),
            _ => out.push(ch),
        }
    }
    out
}

/// The key component a file name stands for; `None` for Cairn's own entries and for names
/// no key encodes to.
pub fn decode_component(name: &str) -> Option<String> {
    if name.starts_with('@') {
        return None;
    }
    if name == "%-" {
        return Some(String::new());
    }
    let bytes = name.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = name.get(i + 1..i + 3)?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

/// The relative directory of an object (`a/b` → `a/b`, escaped), or `None` when a
/// component is too long for the filesystem.
pub fn object_dir(key: &str) -> Option<PathBuf> {
    let mut p = PathBuf::new();
    for c in key.split('/') {
        let e = encode_component(c);
        if e.len() > NAME_MAX {
            return None;
        }
        p.push(e);
    }
    Some(p)
}

/// The relative directory of a key prefix that ends in `/` (or the empty prefix).
pub fn prefix_dir(prefix: &str) -> Option<PathBuf> {
    match prefix.strip_suffix('/') {
        Some(p) => object_dir(p),
        None if prefix.is_empty() => Some(PathBuf::new()),
        None => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::path::Component;

    proptest! {
        #[test]
        fn components_round_trip(c in "[^/]{0,40}") {
            let e = encode_component(&c);
            prop_assert!(!e.is_empty() && !e.contains('/') && !e.contains('\0'));
            prop_assert!(!e.starts_with('@') && e != "." && e != "..");
            prop_assert_eq!(decode_component(&e), Some(c));
        }

        #[test]
        fn keys_stay_inside(key in "[./a-z@%]{0,30}") {
            if let Some(p) = object_dir(&key) {
                for comp in p.components() {
                    prop_assert!(matches!(comp, Component::Normal(_)), "{:?} in {:?}", comp, p);
                }
            }
        }
    }

    #[test]
    fn path_like_keys() {
        assert_eq!(
            object_dir("../../etc/passwd"),
            Some(PathBuf::from("%2E%2E/%2E%2E/etc/passwd"))
        );
        assert_eq!(object_dir("/abs"), Some(PathBuf::from("%-/abs")));
        assert_eq!(object_dir("a//b/"), Some(PathBuf::from("a/%-/b/%-")));
        assert_eq!(object_dir("@meta"), Some(PathBuf::from("%40meta")));
        assert_eq!(decode_component(META_FILE), None);
        assert!(object_dir(&"x".repeat(256)).is_none());
    }
}
