//! A bucket's CORS rules (PutBucketCors) and how a browser's request is matched against
//! them, as S3 does: the first rule whose origin, method and (for a preflight) every
//! requested header match. Pure: no I/O.

use serde::{Deserialize, Serialize};

/// Most rules a configuration may hold (S3's limit).
pub const MAX_RULES: usize = 100;
/// The methods a rule may allow.
pub const METHODS: [&str; 5] = ["GET", "PUT", "HEAD", "POST", "DELETE"];

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Cors {
    pub rules: Vec<CorsRule>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CorsRule {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    /// Origins, each with at most one `*` (compared case-sensitively).
    pub origins: Vec<String>,
    pub methods: Vec<String>,
    /// Headers a preflight may ask for, each with at most one `*` (case-insensitive).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub headers: Vec<String>,
    /// Response headers the browser may show the page.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub expose: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_age: Option<u64>,
}

/// Does `pattern` (at most one `*`, standing for any run of characters) match `s`?
pub fn wildcard(pattern: &str, s: &str, ignore_case: bool) -> bool {
    let eq = |a: &str, b: &str| {
        if ignore_case {
            a.eq_ignore_ascii_case(b)
        } else {
            a == b
        }
    };
    match pattern.split_once('*') {
        None => eq(pattern, s),
        Some((head, tail)) => {
            s.len() >= head.len() + tail.len()
                && s.is_char_boundary(head.len())
                && s.is_char_boundary(s.len() - tail.len())
                && eq(&s[..head.len()], head)
                && eq(&s[s.len() - tail.len()..], tail)
        }
    }
}

impl CorsRule {
    pub fn allows_origin(&self, origin: &str) -> bool {
        self.origins.iter().any(|o| wildcard(o, origin, false))
    }

    /// Does the rule allow `method` from `origin`, with every one of `headers`?
    pub fn allows(&self, origin: &str, method: &str, headers: &[&str]) -> bool {
        self.allows_origin(origin)
            && self.methods.iter().any(|m| m == method)
            && headers
                .iter()
                .all(|h| self.headers.iter().any(|p| wildcard(p, h, true)))
    }

    /// Any origin, so responses say `*` rather than echoing the origin.
    pub fn any_origin(&self) -> bool {
        self.origins.iter().any(|o| o == "*")
    }
}

impl Cors {
    /// A configuration as S3 accepts it; the error is the message of an InvalidRequest.
    pub fn validate(&self) -> Result<(), String> {
        if self.rules.is_empty() {
            return Err("A CORS configuration needs at least one CORSRule.".into());
        }
        if self.rules.len() > MAX_RULES {
            return Err(format!(
                "The number of CORS rules should not exceed allowed limit of {MAX_RULES} rules."
            ));
        }
        for r in &self.rules {
            if r.id.as_ref().is_some_and(|id| id.len() > 255) {
                return Err("The ID of a CORS rule can be at most 255 characters long.".into());
            }
            if r.origins.is_empty() || r.methods.is_empty() {
                return Err(
                    "Each CORSRule must name at least one AllowedOrigin and one AllowedMethod."
                        .into(),
                );
            }
            if let Some(m) = r.methods.iter().find(|m| !METHODS.contains(&m.as_str())) {
                return Err(format!(
                    "Found unsupported HTTP method in CORS config. Unsupported method is {m}"
                ));
            }
            if let Some(o) = r.origins.iter().find(|o| o.matches('*').count() > 1) {
                return Err(format!(
                    "AllowedOrigin \"{o}\" can not have more than one wildcard."
                ));
            }
            if let Some(h) = r.expose.iter().find(|h| {
                h.is_empty() || h.contains('*') || !h.bytes().all(|b| b.is_ascii_graphic())
            }) {
                return Err(format!(
                    "ExposeHeader \"{h}\" contains an invalid character."
                ));
            }
            if let Some(h) = r.headers.iter().find(|h| h.matches('*').count() > 1) {
                return Err(format!(
                    "AllowedHeader \"{h}\" can not have more than one wildcard."
                ));
            }
        }
        Ok(())
    }

    /// The first rule that allows the request.
    pub fn matching(&self, origin: &str, method: &str, headers: &[&str]) -> Option<&CorsRule> {
        self.rules
            .iter()
            .find(|r| r.allows(origin, method, headers))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rule(origins: &[&str], methods: &[&str], headers: &[&str]) -> CorsRule {
        CorsRule {
            id: None,
            origins: origins.iter().map(|s| s.to_string()).collect(),
            methods: methods.iter().map(|s| s.to_string()).collect(),
            headers: headers.iter().map(|s| s.to_string()).collect(),
            expose: Vec::new(),
            max_age: None,
        }
    }

    #[test]
    fn wildcards() {
        assert!(wildcard("*", "", false));
        assert!(wildcard("*", "https://a.example", false));
        assert!(wildcard(
            "https://*.example.com",
            "https://app.example.com",
            false
        ));
        assert!(!wildcard(
            "https://*.example.com",
            "https://example.com",
            false
        ));
        assert!(!wildcard(
            "https://*.example.com",
            "http://app.example.com",
            false
        ));
        assert!(wildcard("x-amz-*", "X-Amz-Date", true));
        assert!(!wildcard("x-amz-*", "X-Amz-Date", false));
        assert!(!wildcard("ab*ba", "aba", false));
        assert!(wildcard("ab*ba", "abba", false));
        // Multi-byte characters at the cut are no match, not a panic.
        assert!(!wildcard("é*", "e", false));
        assert!(!wildcard("*é", "xe\u{301}", false));
    }

    #[test]
    fn first_matching_rule_wins() {
        let cors = Cors {
            rules: vec![
                rule(&["https://a.example"], &["GET"], &[]),
                rule(
                    &["https://*.example"],
                    &["GET", "PUT"],
                    &["content-type", "x-amz-*"],
                ),
                rule(&["*"], &["GET"], &["*"]),
            ],
        };
        assert!(cors.validate().is_ok());
        let id = |o, m, h: &[&str]| {
            cors.matching(o, m, h)
                .map(|r| cors.rules.iter().position(|x| x == r))
        };
        assert_eq!(id("https://a.example", "GET", &[]), Some(Some(0)));
        assert_eq!(
            id("https://a.example", "GET", &["Content-Type"]),
            Some(Some(1))
        );
        assert_eq!(
            id("https://b.example", "PUT", &["x-amz-meta-a"]),
            Some(Some(1))
        );
        assert_eq!(id("https://b.example", "PUT", &["authorization"]), None);
        assert_eq!(id("https://z.test", "GET", &["anything"]), Some(Some(2)));
        assert_eq!(id("https://z.test", "DELETE", &[]), None);
    }

    #[test]
    fn validation() {
        assert!(Cors { rules: vec![] }.validate().is_err());
        let bad = |r: CorsRule| Cors { rules: vec![r] }.validate().expect_err("invalid");
        assert!(bad(rule(&["*"], &["PATCH"], &[])).contains("PATCH"));
        assert!(bad(rule(&["*.*"], &["GET"], &[])).contains("wildcard"));
        assert!(bad(rule(&["*"], &["GET"], &["a*b*"])).contains("wildcard"));
        assert!(bad(rule(&[], &["GET"], &[])).contains("AllowedOrigin"));
        let mut expose_any = rule(&["*"], &["GET"], &[]);
        expose_any.expose = vec!["*".into()];
        assert!(bad(expose_any).contains("ExposeHeader"));
        let many = Cors {
            rules: vec![rule(&["*"], &["GET"], &[]); MAX_RULES + 1],
        };
        assert!(many.validate().is_err());
    }
}
