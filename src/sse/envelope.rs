//! Where an encrypted object keeps its key: stored headers (`x-cairn-sse*`, never shown to
//! clients) holding how it is encrypted, the sealed object key and what opens it. Shared by
//! the S3 surface (which writes and opens envelopes) and key rotation (which re-seals them
//! in place, without touching the data).

use std::collections::BTreeMap;

use base64::Engine;

use crate::kms::{Kms, KmsError};

/// `AES256` (SSE-S3), `aws:kms` (SSE-KMS) or `SSE-C`.
pub const KIND: &str = "x-cairn-sse";
/// The KMS key that sealed the object key (SSE-S3, SSE-KMS).
pub const KEY_ID: &str = "x-cairn-sse-key-id";
/// The sealed object key, base64.
pub const SEALED: &str = "x-cairn-sse-sealed";
/// The SSE-KMS encryption context as the client sent it.
pub const CONTEXT: &str = "x-cairn-sse-context";
/// The MD5 of the client's SSE-C key, echoed back as AWS does.
pub const CUSTOMER_MD5: &str = "x-cairn-sse-customer-key-md5";
pub const BUCKET_KEY: &str = "x-cairn-sse-bucket-key";

/// Stored headers to set (`Some`) or remove (`None`).
pub type HeaderChanges = Vec<(String, Option<String>)>;

/// What a sealed key is bound to: the object's bucket and key.
pub fn binding(bucket: &str, key: &str) -> Vec<u8> {
    format!("{bucket}/{key}").into_bytes()
}

/// Whether stored headers hold an object key sealed by the KMS that is to move off `from`
/// (any key but `to` when `None`).
pub fn sealed_by(headers: &BTreeMap<String, String>, from: Option<&str>, to: &str) -> bool {
    let managed = matches!(
        headers.get(KIND).map(String::as_str),
        Some("AES256" | "aws:kms")
    );
    let id = headers.get(KEY_ID).map(String::as_str);
    managed
        && headers.contains_key(SEALED)
        && match from {
            Some(f) => id == Some(f),
            None => id.is_some_and(|k| k != to),
        }
}

/// The header changes that re-seal the object key of `bucket/key` from KMS key `from` (any
/// key but `to` when `None`) to `to`; `None` when there is nothing to move (stored in the
/// clear, SSE-C, or under another KMS key).
pub fn reseal(
    headers: &BTreeMap<String, String>,
    bucket: &str,
    key: &str,
    kms: &dyn Kms,
    from: Option<&str>,
    to: &str,
) -> Result<Option<HeaderChanges>, KmsError> {
    if !sealed_by(headers, from, to) {
        return Ok(None);
    }
    let from = headers.get(KEY_ID).map(String::as_str).unwrap_or_default();
    let b64 = base64::engine::general_purpose::STANDARD;
    let sealed = headers
        .get(SEALED)
        .and_then(|s| b64.decode(s).ok())
        .ok_or(KmsError::Unseal)?;
    let bound = binding(bucket, key);
    let plain = kms.decrypt(from, &sealed, &bound)?;
    let again = kms.encrypt(to, &plain, &bound)?;
    Ok(Some(vec![
        (KEY_ID.to_string(), Some(to.to_string())),
        (SEALED.to_string(), Some(b64.encode(again))),
    ]))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kms::StaticKms;

    #[test]
    fn reseal_moves_a_key_to_another_master_key_and_leaves_others_alone() {
        let b64 = base64::engine::general_purpose::STANDARD;
        let kms = StaticKms::parse(&format!(
            "old:{},new:{}",
            b64.encode([1u8; 32]),
            b64.encode([2u8; 32])
        ))
        .expect("kms");
        let dk = kms
            .generate_data_key(Some("old"), &binding("b", "k"))
            .expect("data key");
        let mut h = BTreeMap::from([
            (KIND.to_string(), "aws:kms".to_string()),
            (KEY_ID.to_string(), "old".to_string()),
            (SEALED.to_string(), b64.encode(&dk.sealed)),
        ]);
        // Bound to its object: another key's name does not re-seal it.
        assert!(reseal(&h, "b", "other", &kms, Some("old"), "new").is_err());
        let changes = reseal(&h, "b", "k", &kms, Some("old"), "new")
            .expect("re-sealed")
            .expect("changes");
        for (n, v) in changes {
            h.insert(n, v.expect("set"));
        }
        assert_eq!(h[KEY_ID], "new");
        let sealed = b64.decode(&h[SEALED]).expect("b64");
        assert_eq!(
            kms.decrypt("new", &sealed, &binding("b", "k"))
                .expect("opens"),
            dk.plaintext
        );
        assert!(kms.decrypt("old", &sealed, &binding("b", "k")).is_err());
        // Done already, SSE-C, or in the clear: nothing to do.
        assert_eq!(reseal(&h, "b", "k", &kms, Some("old"), "new"), Ok(None));
        h.insert(KIND.to_string(), "SSE-C".to_string());
        assert_eq!(reseal(&h, "b", "k", &kms, None, "old"), Ok(None));
        assert_eq!(
            reseal(&BTreeMap::new(), "b", "k", &kms, Some("old"), "new"),
            Ok(None)
        );
    }
}
