//! The wire contract between the server and the clients inside Cairn (`cairn mount`, the
//! CSI driver, the admin CLI): the admin API's path and the JSON bodies those clients send
//! and read, and S3's bucket naming rule. A leaf: the server's modules re-export what they
//! serve from here, and the clients depend on this instead of on the server's internals.

use serde::{Deserialize, Serialize};

/// Where the admin API's calls live.
pub const ADMIN_PREFIX: &str = "/cairn/admin/v1/";

/// S3 bucket naming rules: 3–63 characters of lower-case letters, digits, `.` and `-`,
/// starting and ending with a letter or digit, no `..`, not an IP address.
pub fn valid_bucket_name(name: &str) -> bool {
    let b = name.as_bytes();
    if !(3..=63).contains(&b.len()) {
        return false;
    }
    let edge_ok = |c: u8| c.is_ascii_lowercase() || c.is_ascii_digit();
    if !edge_ok(b[0]) || !edge_ok(b[b.len() - 1]) {
        return false;
    }
    if !b
        .iter()
        .all(|&c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == b'.' || c == b'-')
    {
        return false;
    }
    if name.contains("..") || name.contains(".-") || name.contains("-.") {
        return false;
    }
    name.parse::<std::net::Ipv4Addr>().is_err()
}

/// Names S3 keeps for its own endpoints (`xn--…`, `sthree-…`, `amzn-s3-demo-…`, `…-s3alias`,
/// `…--ol-s3`, `….mrap`, `…--x-s3`, `…--table-s3`): no new bucket may take one. Checked at
/// creation only, so a bucket made with such a name before stays reachable.
pub fn reserved_bucket_name(name: &str) -> bool {
    const PREFIXES: [&str; 3] = ["xn--", "sthree-", "amzn-s3-demo-"];
    const SUFFIXES: [&str; 5] = ["-s3alias", "--ol-s3", ".mrap", "--x-s3", "--table-s3"];
    PREFIXES.iter().any(|p| name.starts_with(p)) || SUFFIXES.iter().any(|s| name.ends_with(s))
}

/// What the admin API reports for a scope.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct QuotaStatus {
    pub bucket: String,
    pub prefix: String,
    /// Hard limit in bytes; 0 = none.
    pub quota: u64,
    /// Bytes stored (plus parts of unfinished uploads and uploads in flight on this node).
    pub used: u64,
    pub objects: u64,
    /// Of `used`: parts of unfinished multipart uploads made through this node.
    #[serde(default)]
    pub parts: u64,
}

/// What `PUT iam/accesskey` carries.
#[derive(Debug, Serialize, Deserialize, Default)]
pub struct NewAccessKey {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub policy: Option<String>,
    /// Seconds from now.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expiry_secs: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
}

/// New credentials, shown once.
#[derive(Clone, Serialize, Deserialize)]
pub struct NewKey {
    pub access_key: String,
    pub secret_key: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub session_token: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expiry: Option<String>,
}

impl std::fmt::Debug for NewKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NewKey")
            .field("access_key", &self.access_key)
            .field("secret_key", &"<redacted>")
            .field(
                "session_token",
                &self.session_token.as_ref().map(|_| "<redacted>"),
            )
            .field("expiry", &self.expiry)
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn new_credentials_never_show_their_secrets_in_debug() {
        let k = NewKey {
            access_key: "AKIDEXAMPLE".into(),
            secret_key: "wJalrXUtnFEMI/K7MDENG".into(),
            session_token: Some("FwoGZXIvYXdzEJr".into()),
            expiry: None,
        };
        let shown = format!("{k:?}");
        assert!(shown.contains("AKIDEXAMPLE"), "{shown}");
        assert!(
            !shown.contains("wJalr") && !shown.contains("FwoGZ"),
            "{shown}"
        );
    }
}
