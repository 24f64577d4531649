//! The object-store side of the mount: a small blocking S3-client trait ([`ObjectClient`])
//! that the filesystem logic is generic over, and its real implementation over HTTP
//! ([`S3Client`], SigV4-signed, keep-alive connections, bodies streamed from files).
//!
//! Keys given to a client are relative to the mounted volume: the client adds the volume's
//! prefix (prefix mode) and strips it from what it lists.

use std::collections::BTreeMap;
use std::io::Read;
use std::time::{Duration, SystemTime};

use serde::Deserialize;

use crate::auth::uri_encode_key;
use crate::client::{HttpClient, Payload, Settings, Wait};

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ClientError {
    #[error("not found")]
    NotFound,
    #[error("quota exceeded")]
    QuotaExceeded,
    /// The store's drives are full (507).
    #[error("the object store is full")]
    StorageFull,
    #[error("access denied")]
    AccessDenied,
    /// The server does not accept the credentials themselves (unknown or disabled key,
    /// wrong secret, expired token): the S3 error code.
    #[error("the server refused the credentials ({0})")]
    BadCredentials(String),
    #[error("name too long")]
    NameTooLong,
    /// The object is no longer the one a read began on (replaced since).
    #[error("the object changed since it was opened")]
    Changed,
    #[error("{0}")]
    Other(String),
}

pub type ClientResult<T> = Result<T, ClientError>;

/// An object's metadata as the filesystem needs it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Head {
    pub size: u64,
    /// Last-Modified, in seconds since the epoch.
    pub modified: i64,
    /// `x-amz-meta-*` (lower-case names without the prefix).
    pub meta: BTreeMap<String, String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListedObject {
    pub key: String,
    pub size: u64,
    pub modified: i64,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Listing {
    pub objects: Vec<ListedObject>,
    /// Common prefixes, each ending with the delimiter `/`.
    pub prefixes: Vec<String>,
    /// Opaque continuation of the listing, when truncated.
    pub next: Option<String>,
}

/// Quota and usage of the volume.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Usage {
    /// 0 = no quota.
    pub quota: u64,
    /// Everything counted against the quota, `parts` included.
    pub used: u64,
    pub objects: u64,
    /// Parts of unfinished multipart uploads (a streaming writer's own are among them).
    pub parts: u64,
}

/// What the filesystem needs from an object store. Blocking: FUSE callbacks run on their
/// own threads.
pub trait ObjectClient: Send + Sync + 'static {
    fn head(&self, key: &str) -> ClientResult<Head>;
    /// Up to `len` bytes from `offset` (fewer at the end of the object), and the ETag of
    /// the object they came from. With `if_match`, only from the object with that ETag
    /// ([`ClientError::Changed`] otherwise): the reads of one open file never mix two
    /// versions of it.
    fn get_range(
        &self,
        key: &str,
        offset: u64,
        len: u64,
        if_match: Option<&str>,
    ) -> ClientResult<(Vec<u8>, String)>;
    /// The whole object, streamed into `out`; returns its length.
    fn get_into(&self, key: &str, out: &mut dyn std::io::Write) -> ClientResult<u64>;
    fn put(
        &self,
        key: &str,
        body: &mut dyn Read,
        len: u64,
        meta: &BTreeMap<String, String>,
    ) -> ClientResult<()>;
    fn create_multipart(&self, key: &str, meta: &BTreeMap<String, String>) -> ClientResult<String>;
    fn upload_part(
        &self,
        key: &str,
        upload_id: &str,
        number: u32,
        body: &mut dyn Read,
        len: u64,
    ) -> ClientResult<String>;
    fn complete_multipart(
        &self,
        key: &str,
        upload_id: &str,
        parts: &[(u32, String)],
    ) -> ClientResult<()>;
    fn abort_multipart(&self, key: &str, upload_id: &str) -> ClientResult<()>;
    /// Server-side copy; `meta: Some` replaces the metadata, `None` keeps it.
    fn copy(
        &self,
        from: &str,
        to: &str,
        meta: Option<&BTreeMap<String, String>>,
    ) -> ClientResult<()>;
    fn delete(&self, key: &str) -> ClientResult<()>;
    /// One page of keys under `prefix` (continuing from a previous page's `next`);
    /// `/`-delimited when `delimited`.
    fn list(
        &self,
        prefix: &str,
        delimited: bool,
        token: Option<&str>,
        max: usize,
    ) -> ClientResult<Listing>;
    /// The volume's quota and usage, when the store reports them.
    fn usage(&self) -> ClientResult<Usage>;
}

/// Connection settings of the real client.
#[derive(Clone)]
pub struct S3Config {
    /// `http://host:port` or `https://host:port`
    pub endpoint: String,
    pub access_key: String,
    pub secret_key: String,
    pub region: String,
    pub bucket: String,
    /// Volume prefix in the bucket: empty, or ending with `/`.
    pub prefix: String,
    /// Which server certificates to believe (https endpoints).
    pub trust: crate::tls::Trust,
    /// Longest a call may wait for a byte from a server that stopped answering (zero: no
    /// limit but the whole-request one); calls the server works on before answering (copies,
    /// completions, uploads) are exempt.
    pub io_timeout: Duration,
}

/// [`S3Config::io_timeout`] unless told otherwise (`cairn mount --io-timeout`): longer than
/// the server's 30 s lock wait, which it answers with a 503 the client retries.
pub const IO_TIMEOUT: Duration = Duration::from_secs(60);

/// Secrets never reach `Debug` output.
impl std::fmt::Debug for S3Config {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("S3Config")
            .field("endpoint", &self.endpoint)
            .field("access_key", &self.access_key)
            .field("secret_key", &"<redacted>")
            .field("region", &self.region)
            .field("bucket", &self.bucket)
            .field("prefix", &self.prefix)
            .finish()
    }
}

pub struct S3Client {
    cfg: S3Config,
    http: HttpClient,
}

#[derive(Deserialize)]
struct ListXml {
    #[serde(rename = "Contents", default)]
    contents: Vec<ContentXml>,
    #[serde(rename = "CommonPrefixes", default)]
    prefixes: Vec<PrefixXml>,
    #[serde(rename = "IsTruncated", default)]
    truncated: bool,
    #[serde(rename = "NextContinuationToken", default)]
    next_token: Option<String>,
}

#[derive(Deserialize)]
struct ContentXml {
    #[serde(rename = "Key")]
    key: String,
    #[serde(rename = "Size", default)]
    size: u64,
    #[serde(rename = "LastModified", default)]
    modified: String,
}

#[derive(Deserialize)]
struct PrefixXml {
    #[serde(rename = "Prefix")]
    prefix: String,
}

#[derive(Deserialize)]
struct InitiateXml {
    #[serde(rename = "UploadId")]
    upload_id: String,
}

#[derive(Deserialize)]
struct ErrorXml {
    #[serde(rename = "Code", default)]
    code: String,
    #[serde(rename = "Message", default)]
    message: String,
}

fn parse_iso(s: &str) -> i64 {
    time::OffsetDateTime::parse(s, &time::format_description::well_known::Rfc3339)
        .map(|t| t.unix_timestamp())
        .unwrap_or(0)
}

/// Percent-encode a query value (RFC 3986 unreserved kept).
fn qenc(v: &str) -> String {
    uri_encode_key(v).replace('/', "%2F")
}

type Resp = http::Response<ureq::Body>;

impl S3Client {
    pub fn new(cfg: S3Config) -> ClientResult<S3Client> {
        let settings = Settings {
            trust: cfg.trust.clone(),
            timeout: Duration::from_secs(300),
            idle_connections_per_host: 16,
            idle: (!cfg.io_timeout.is_zero()).then_some(cfg.io_timeout),
            ..Settings::default()
        };
        let http = HttpClient::new(
            &cfg.endpoint,
            &cfg.access_key,
            &cfg.secret_key,
            &cfg.region,
            &settings,
        )
        .map_err(|e| ClientError::Other(e.to_string()))?;
        Ok(S3Client {
            cfg: S3Config {
                endpoint: http.endpoint().to_string(),
                ..cfg
            },
            http,
        })
    }

    fn path(&self, key: &str) -> String {
        format!(
            "/{}/{}",
            self.cfg.bucket,
            uri_encode_key(&format!("{}{key}", self.cfg.prefix))
        )
    }

    /// Send one signed request; `body`: (reader, length) streamed with UNSIGNED-PAYLOAD.
    /// A server that moves no byte for [`S3Config::io_timeout`] fails it.
    fn send(
        &self,
        method: &str,
        path: &str,
        query: &str,
        headers: &[(String, String)],
        body: Option<(&mut dyn Read, u64)>,
    ) -> ClientResult<Resp> {
        self.send_as(Wait::Idle, method, path, query, headers, body)
    }

    /// [`S3Client::send`] of a request the server may work on a long time before it reads
    /// the body or answers (a copy, a completion, an upload or quota call held by a quota
    /// count): only the whole-request timeout applies.
    fn send_work(
        &self,
        method: &str,
        path: &str,
        query: &str,
        headers: &[(String, String)],
        body: Option<(&mut dyn Read, u64)>,
    ) -> ClientResult<Resp> {
        self.send_as(Wait::ServerWork, method, path, query, headers, body)
    }

    fn send_as(
        &self,
        wait: Wait,
        method: &str,
        path: &str,
        query: &str,
        headers: &[(String, String)],
        body: Option<(&mut dyn Read, u64)>,
    ) -> ClientResult<Resp> {
        let payload = match body {
            Some((reader, len)) => Payload::Stream(reader, len),
            None => Payload::Empty,
        };
        self.http
            .send_waiting(method, path, query, headers, payload, wait)
            .map_err(|e| ClientError::Other(format!("{method} {path}: {e}")))
    }

    /// Map an error answer to a [`ClientError`].
    fn check(&self, mut resp: Resp, what: &str) -> ClientResult<Resp> {
        let status = resp.status().as_u16();
        if (200..300).contains(&status) {
            return Ok(resp);
        }
        let body = resp
            .body_mut()
            .with_config()
            .limit(64 * 1024)
            .read_to_string()
            .unwrap_or_default();
        let err: Option<ErrorXml> = quick_xml::de::from_str(&body).ok();
        let code = err.as_ref().map(|e| e.code.clone()).unwrap_or_default();
        Err(match (status, code.as_str()) {
            (404, _) => ClientError::NotFound,
            (_, "XMinioAdminBucketQuotaExceeded") | (_, "QuotaExceeded") => {
                ClientError::QuotaExceeded
            }
            (507, _) | (_, "XMinioStorageFull") => ClientError::StorageFull,
            (_, "KeyTooLongError") => ClientError::NameTooLong,
            (
                _,
                "InvalidAccessKeyId" | "SignatureDoesNotMatch" | "ExpiredToken" | "InvalidToken",
            ) => ClientError::BadCredentials(code.clone()),
            (403, _) => ClientError::AccessDenied,
            _ => ClientError::Other(format!(
                "{what}: HTTP {status} {code} {}",
                err.map(|e| e.message).unwrap_or_default()
            )),
        })
    }

    pub fn config(&self) -> &S3Config {
        &self.cfg
    }

    /// Create the bucket; `Ok(false)` when it already existed (owned by us).
    pub fn make_bucket(&self) -> ClientResult<bool> {
        let path = format!("/{}", self.cfg.bucket);
        let mut resp = self.send("PUT", &path, "", &[], None)?;
        let status = resp.status().as_u16();
        if status == 409 {
            let body = resp.body_mut().read_to_string().unwrap_or_default();
            if body.contains("BucketAlreadyOwnedByYou") {
                return Ok(false);
            }
            return Err(ClientError::Other(format!("CreateBucket: {body}")));
        }
        self.check(resp, "CreateBucket").map(|_| true)
    }

    pub fn bucket_exists(&self) -> ClientResult<bool> {
        let path = format!("/{}", self.cfg.bucket);
        let resp = self.send("HEAD", &path, "", &[], None)?;
        match self.check(resp, "HeadBucket") {
            Ok(_) => Ok(true),
            Err(ClientError::NotFound) => Ok(false),
            Err(e) => Err(e),
        }
    }

    /// Delete the bucket (it must be empty); gone already is success.
    pub fn delete_bucket(&self) -> ClientResult<()> {
        let path = format!("/{}", self.cfg.bucket);
        let resp = self.send("DELETE", &path, "", &[], None)?;
        match self.check(resp, "DeleteBucket") {
            Ok(_) | Err(ClientError::NotFound) => Ok(()),
            Err(e) => Err(e),
        }
    }

    /// Set the hard quota of the volume (bucket or prefix); 0 removes it. Admin API.
    pub fn set_quota(&self, bytes: u64) -> ClientResult<Usage> {
        self.quota_call("PUT", &format!("&size={bytes}"))
    }

    /// The admin API's quota call for this volume (GET reads, PUT sets).
    fn quota_call(&self, method: &str, extra_query: &str) -> ClientResult<Usage> {
        let query = format!(
            "bucket={}&prefix={}{extra_query}",
            qenc(&self.cfg.bucket),
            qenc(&self.cfg.prefix)
        );
        let path = format!("{}quota", crate::api::ADMIN_PREFIX);
        let resp = self.send_work(method, &path, &query, &[], None)?;
        let mut resp = self.check(resp, "quota")?;
        let body = resp
            .body_mut()
            .read_to_string()
            .map_err(|e| ClientError::Other(e.to_string()))?;
        let s: crate::api::QuotaStatus =
            serde_json::from_str(&body).map_err(|e| ClientError::Other(e.to_string()))?;
        Ok(Usage {
            quota: s.quota,
            used: s.used,
            objects: s.objects,
            parts: s.parts,
        })
    }

    /// Create an access key of the caller limited by `policy` (admin API); (key, secret).
    pub fn create_access_key(&self, policy: &str, name: &str) -> ClientResult<(String, String)> {
        let body = serde_json::to_vec(&crate::api::NewAccessKey {
            user: None,
            policy: Some(policy.to_string()),
            expiry_secs: None,
            name: Some(name.to_string()),
        })
        .unwrap_or_default();
        let len = body.len() as u64;
        let mut reader: &[u8] = &body;
        let path = format!("{}iam/accesskey", crate::api::ADMIN_PREFIX);
        let resp = self.send("PUT", &path, "", &[], Some((&mut reader, len)))?;
        let mut resp = self.check(resp, "create access key")?;
        let text = resp
            .body_mut()
            .read_to_string()
            .map_err(|e| ClientError::Other(e.to_string()))?;
        let k: crate::api::NewKey =
            serde_json::from_str(&text).map_err(|e| ClientError::Other(e.to_string()))?;
        Ok((k.access_key, k.secret_key))
    }

    /// Remove an access key (admin API); gone already is success.
    pub fn remove_access_key(&self, key: &str) -> ClientResult<()> {
        let path = format!("{}iam/accesskey", crate::api::ADMIN_PREFIX);
        let resp = self.send("DELETE", &path, &format!("key={}", qenc(key)), &[], None)?;
        match self.check(resp, "remove access key") {
            Ok(_) | Err(ClientError::NotFound) => Ok(()),
            Err(e) => Err(e),
        }
    }

    /// May these credentials write into the volume? Asked with a PUT that cannot store
    /// anything — empty, conditional on an ETag no object has — so the server's answer is
    /// its authorisation (403) or the failed condition (anything else).
    pub fn may_write(&self) -> ClientResult<bool> {
        let headers = vec![("if-match".to_string(), "\"cairn-write-probe\"".to_string())];
        let mut empty: &[u8] = &[];
        let resp = self.send(
            "PUT",
            &self.path(".cairn-write-probe"),
            "",
            &headers,
            Some((&mut empty, 0)),
        )?;
        match self.check(resp, "write probe") {
            Err(ClientError::AccessDenied) => Ok(false),
            _ => Ok(true),
        }
    }

    /// `GET /minio/health/live`: whether the server answers.
    pub fn healthy(&self) -> bool {
        self.http
            .probe("/minio/health/live")
            .is_ok_and(|status| (200..300).contains(&status))
    }

    fn meta_headers(meta: &BTreeMap<String, String>) -> Vec<(String, String)> {
        meta.iter()
            .map(|(k, v)| (format!("x-amz-meta-{k}"), v.clone()))
            .collect()
    }
}

impl ObjectClient for S3Client {
    fn head(&self, key: &str) -> ClientResult<Head> {
        let resp = self.send("HEAD", &self.path(key), "", &[], None)?;
        let resp = self.check(resp, "HEAD")?;
        let h = resp.headers();
        let get = |n: &str| h.get(n).and_then(|v| v.to_str().ok());
        let size = get("content-length")
            .and_then(|v| v.parse().ok())
            .unwrap_or(0);
        let modified = get("last-modified")
            .and_then(|v| httpdate::parse_http_date(v).ok())
            .and_then(|t| t.duration_since(SystemTime::UNIX_EPOCH).ok())
            .map_or(0, |d| d.as_secs() as i64);
        let meta = h
            .iter()
            .filter_map(|(k, v)| {
                let name = k.as_str().strip_prefix("x-amz-meta-")?;
                Some((name.to_string(), v.to_str().ok()?.to_string()))
            })
            .collect();
        Ok(Head {
            size,
            modified,
            meta,
        })
    }

    fn get_range(
        &self,
        key: &str,
        offset: u64,
        len: u64,
        if_match: Option<&str>,
    ) -> ClientResult<(Vec<u8>, String)> {
        if len == 0 {
            return Ok((Vec::new(), if_match.unwrap_or_default().to_string()));
        }
        let mut headers = vec![(
            "range".to_string(),
            format!("bytes={offset}-{}", offset + len - 1),
        )];
        if let Some(etag) = if_match {
            headers.push(("if-match".to_string(), etag.to_string()));
        }
        let resp = self.send("GET", &self.path(key), "", &headers, None)?;
        match resp.status().as_u16() {
            416 => return Ok((Vec::new(), if_match.unwrap_or_default().to_string())),
            412 => return Err(ClientError::Changed),
            _ => {}
        }
        let mut resp = self.check(resp, "GET")?;
        let etag = resp
            .headers()
            .get("etag")
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_string();
        let mut out = Vec::with_capacity(len as usize);
        resp.body_mut()
            .as_reader()
            .take(len)
            .read_to_end(&mut out)
            .map_err(|e| ClientError::Other(format!("GET body: {e}")))?;
        Ok((out, etag))
    }

    fn get_into(&self, key: &str, out: &mut dyn std::io::Write) -> ClientResult<u64> {
        let resp = self.send("GET", &self.path(key), "", &[], None)?;
        let mut resp = self.check(resp, "GET")?;
        std::io::copy(&mut resp.body_mut().as_reader(), out)
            .map_err(|e| ClientError::Other(format!("GET body: {e}")))
    }

    fn put(
        &self,
        key: &str,
        body: &mut dyn Read,
        len: u64,
        meta: &BTreeMap<String, String>,
    ) -> ClientResult<()> {
        let headers = Self::meta_headers(meta);
        let resp = self.send_work("PUT", &self.path(key), "", &headers, Some((body, len)))?;
        self.check(resp, "PUT").map(|_| ())
    }

    fn create_multipart(&self, key: &str, meta: &BTreeMap<String, String>) -> ClientResult<String> {
        let headers = Self::meta_headers(meta);
        let resp = self.send("POST", &self.path(key), "uploads=", &headers, None)?;
        let mut resp = self.check(resp, "CreateMultipartUpload")?;
        let body = resp
            .body_mut()
            .read_to_string()
            .map_err(|e| ClientError::Other(e.to_string()))?;
        let x: InitiateXml =
            quick_xml::de::from_str(&body).map_err(|e| ClientError::Other(e.to_string()))?;
        Ok(x.upload_id)
    }

    fn upload_part(
        &self,
        key: &str,
        upload_id: &str,
        number: u32,
        body: &mut dyn Read,
        len: u64,
    ) -> ClientResult<String> {
        let q = format!("partNumber={number}&uploadId={}", qenc(upload_id));
        let resp = self.send_work("PUT", &self.path(key), &q, &[], Some((body, len)))?;
        let resp = self.check(resp, "UploadPart")?;
        resp.headers()
            .get("etag")
            .and_then(|v| v.to_str().ok())
            .map(String::from)
            .ok_or_else(|| ClientError::Other("UploadPart: no ETag".into()))
    }

    fn complete_multipart(
        &self,
        key: &str,
        upload_id: &str,
        parts: &[(u32, String)],
    ) -> ClientResult<()> {
        let mut xml = String::from("<CompleteMultipartUpload>");
        for (n, etag) in parts {
            xml.push_str(&format!(
                "<Part><PartNumber>{n}</PartNumber><ETag>{etag}</ETag></Part>"
            ));
        }
        xml.push_str("</CompleteMultipartUpload>");
        let q = format!("uploadId={}", qenc(upload_id));
        let len = xml.len() as u64;
        let mut body = xml.as_bytes();
        let resp = self.send_work("POST", &self.path(key), &q, &[], Some((&mut body, len)))?;
        let mut resp = self.check(resp, "CompleteMultipartUpload")?;
        // Errors after a 200 arrive in the body.
        let text = resp.body_mut().read_to_string().unwrap_or_default();
        if text.contains("<Error>") {
            let e: Option<ErrorXml> = quick_xml::de::from_str(&text).ok();
            return Err(match e {
                Some(e) if e.code.contains("Quota") => ClientError::QuotaExceeded,
                Some(e) if e.code == "XMinioStorageFull" => ClientError::StorageFull,
                e => ClientError::Other(format!(
                    "CompleteMultipartUpload: {}",
                    e.map(|e| e.message).unwrap_or(text)
                )),
            });
        }
        Ok(())
    }

    fn abort_multipart(&self, key: &str, upload_id: &str) -> ClientResult<()> {
        let q = format!("uploadId={}", qenc(upload_id));
        let resp = self.send("DELETE", &self.path(key), &q, &[], None)?;
        self.check(resp, "AbortMultipartUpload").map(|_| ())
    }

    fn copy(
        &self,
        from: &str,
        to: &str,
        meta: Option<&BTreeMap<String, String>>,
    ) -> ClientResult<()> {
        let mut headers = vec![("x-amz-copy-source".to_string(), self.path(from))];
        if let Some(m) = meta {
            headers.push(("x-amz-metadata-directive".into(), "REPLACE".into()));
            headers.extend(Self::meta_headers(m));
        }
        let resp = self.send_work("PUT", &self.path(to), "", &headers, None)?;
        let mut resp = self.check(resp, "CopyObject")?;
        let text = resp.body_mut().read_to_string().unwrap_or_default();
        if text.contains("<Error>") {
            return Err(ClientError::Other(format!("CopyObject: {text}")));
        }
        Ok(())
    }

    fn delete(&self, key: &str) -> ClientResult<()> {
        let resp = self.send("DELETE", &self.path(key), "", &[], None)?;
        match self.check(resp, "DELETE") {
            Ok(_) | Err(ClientError::NotFound) => Ok(()),
            Err(e) => Err(e),
        }
    }

    fn list(
        &self,
        prefix: &str,
        delimited: bool,
        token: Option<&str>,
        max: usize,
    ) -> ClientResult<Listing> {
        let full = |k: &str| format!("{}{k}", self.cfg.prefix);
        let mut q = vec![
            ("list-type".to_string(), "2".to_string()),
            ("max-keys".to_string(), max.to_string()),
            ("prefix".to_string(), qenc(&full(prefix))),
        ];
        if delimited {
            q.push(("delimiter".into(), "%2F".into()));
        }
        if let Some(t) = token {
            q.push(("continuation-token".into(), qenc(t)));
        }
        q.sort();
        let query = q
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect::<Vec<_>>()
            .join("&");
        let path = format!("/{}", self.cfg.bucket);
        let resp = self.send("GET", &path, &query, &[], None)?;
        let mut resp = self.check(resp, "LIST")?;
        let body = resp
            .body_mut()
            .with_config()
            .limit(64 << 20)
            .read_to_string()
            .map_err(|e| ClientError::Other(e.to_string()))?;
        let x: ListXml =
            quick_xml::de::from_str(&body).map_err(|e| ClientError::Other(e.to_string()))?;
        let strip = |k: &str| k.strip_prefix(&self.cfg.prefix).unwrap_or(k).to_string();
        let objects: Vec<ListedObject> = x
            .contents
            .iter()
            .map(|c| ListedObject {
                key: strip(&c.key),
                size: c.size,
                modified: parse_iso(&c.modified),
            })
            .collect();
        let prefixes: Vec<String> = x.prefixes.iter().map(|p| strip(&p.prefix)).collect();
        Ok(Listing {
            objects,
            prefixes,
            next: if x.truncated { x.next_token } else { None },
        })
    }

    fn usage(&self) -> ClientResult<Usage> {
        self.quota_call("GET", "")
    }
}
