//! Object tags as a version stores them: among its headers, under [`HEADER`], in URL query
//! form (`k1=v1&k2=v2`, percent-encoded). The S3 layer validates tag sets against AWS's
//! limits before they get here; lifecycle filters and policy conditions read them back.

use std::collections::BTreeMap;

use percent_encoding::{percent_decode_str, utf8_percent_encode, AsciiSet, NON_ALPHANUMERIC};

/// Where an object version's tags are stored (never returned as a header).
pub const HEADER: &str = "x-cairn-tags";

pub type Tags = Vec<(String, String)>;

/// Tags from URL query form; `None` if a part is not UTF-8 or a key repeats.
pub fn decode(v: &str) -> Option<Tags> {
    let decode = |s: &str| {
        percent_decode_str(&s.replace('+', " "))
            .decode_utf8()
            .ok()
            .map(|c| c.into_owned())
    };
    let mut tags = Tags::new();
    for pair in v.split('&').filter(|p| !p.is_empty()) {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        let (k, v) = (decode(k)?, decode(v)?);
        if tags.iter().any(|(other, _)| *other == k) {
            return None;
        }
        tags.push((k, v));
    }
    Some(tags)
}

const QUERY_VALUE: &AsciiSet = &NON_ALPHANUMERIC.remove(b'-').remove(b'.').remove(b'_');

/// The URL query form of `tags` (how they are stored).
pub fn encode(tags: &Tags) -> String {
    tags.iter()
        .map(|(k, v)| {
            format!(
                "{}={}",
                utf8_percent_encode(k, QUERY_VALUE),
                utf8_percent_encode(v, QUERY_VALUE)
            )
        })
        .collect::<Vec<_>>()
        .join("&")
}

/// A version's tags, from its stored headers (none if absent or unreadable).
pub fn of(headers: &BTreeMap<String, String>) -> Tags {
    headers
        .get(HEADER)
        .and_then(|v| decode(v))
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip() {
        let tags: Tags = vec![("a b".into(), "c+d/é".into()), ("k".into(), String::new())];
        assert_eq!(decode(&encode(&tags)), Some(tags));
        assert_eq!(decode("a=1&a=2"), None);
        assert_eq!(decode("a=%FF"), None);
        assert_eq!(decode(""), Some(vec![]));
    }
}
