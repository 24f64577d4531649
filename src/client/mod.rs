//! The HTTP client under Cairn's own tools — the admin CLI, `cairn mount` and the CSI
//! driver (the bench keeps its own hand-written request path, for speed): endpoint parsing
//! (`http://` or `https://`), TLS trust, SigV4 signing, keep-alive connections, bodies
//! streamed from readers, and retries with backoff when the server answers 503
//! (`SlowDown`, `ServiceUnavailable`) to a request whose body can be sent again.
//!
//! Owns: the wire side of S3 and admin calls. Must not touch: what the calls mean (the
//! callers map answers to their own types and errors).

pub mod admin;

use std::io::Read;
use std::time::{Duration, SystemTime};

use crate::auth::{sign_request_with, EMPTY_SHA256, UNSIGNED_PAYLOAD};
use crate::tls::Trust;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HttpError {
    #[error("invalid endpoint {0:?}: expected http://host:port or https://host:port")]
    Endpoint(String),
    #[error("{0}")]
    Request(String),
    #[error("cannot reach {endpoint}: {why}")]
    Transport { endpoint: String, why: String },
}

/// A request body.
pub enum Payload<'a> {
    Empty,
    /// Signed by its SHA-256; sent again on a retry.
    Bytes(&'a [u8]),
    /// Streamed with `UNSIGNED-PAYLOAD` (TLS or not, as S3 clients do); never retried.
    Stream(&'a mut dyn Read, u64),
}

/// How the client behaves.
#[derive(Debug, Clone)]
pub struct Settings {
    pub trust: Trust,
    pub connect_timeout: Duration,
    /// Whole request, body included (zero: none, for streams read until interrupted).
    pub timeout: Duration,
    pub idle_connections_per_host: usize,
    /// Attempts of a request answered 503 (1 = no retry).
    pub attempts: u32,
    /// Longest a read or write of a request may wait for a byte to move (`None`: no limit
    /// beyond `timeout`): a server that stops answering — frozen, or cut off by the network,
    /// where TCP may keep the connection up for many minutes — fails the call after this.
    /// [`Wait::ServerWork`] requests are exempt.
    pub idle: Option<Duration>,
}

/// Whether a request is held to [`Settings::idle`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Wait {
    /// Every read and write moves a byte within the idle limit.
    Idle,
    /// The server may work a long time before it reads the body or answers (a server-side
    /// copy, completing a multipart upload, an upload held while a quota is counted): only
    /// the whole-request timeout applies.
    ServerWork,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            trust: Trust::system(),
            connect_timeout: Duration::from_secs(5),
            timeout: Duration::from_secs(30),
            idle_connections_per_host: 4,
            attempts: 4,
            idle: None,
        }
    }
}

/// `http(s)://host[:port]` (a trailing `/` allowed) → (base URL, Host header).
pub fn parse_endpoint(endpoint: &str) -> Result<(String, String), HttpError> {
    let base = endpoint.trim_end_matches('/');
    let host = base
        .strip_prefix("http://")
        .or_else(|| base.strip_prefix("https://"))
        .filter(|h| !h.is_empty() && !h.contains('/') && !h.contains('?'))
        .ok_or_else(|| HttpError::Endpoint(endpoint.to_string()))?;
    Ok((base.to_string(), host.to_string()))
}

/// One endpoint and identity.
pub struct HttpClient {
    base: String,
    host: String,
    access_key: String,
    secret_key: String,
    region: String,
    attempts: u32,
    agent: ureq::Agent,
}

impl std::fmt::Debug for HttpClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HttpClient")
            .field("endpoint", &self.base)
            .field("access_key", &self.access_key)
            .field("secret_key", &"<redacted>")
            .field("region", &self.region)
            .finish()
    }
}

pub type Response = http::Response<ureq::Body>;

impl HttpClient {
    pub fn new(
        endpoint: &str,
        access_key: &str,
        secret_key: &str,
        region: &str,
        settings: &Settings,
    ) -> Result<HttpClient, HttpError> {
        let (base, host) = parse_endpoint(endpoint)?;
        let agent: ureq::Agent = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .timeout_connect(Some(settings.connect_timeout))
            .timeout_global((!settings.timeout.is_zero()).then_some(settings.timeout))
            .timeout_per_read(settings.idle)
            .timeout_per_write(settings.idle)
            .max_idle_connections_per_host(settings.idle_connections_per_host)
            .tls_config(settings.trust.ureq_config())
            .build()
            .into();
        Ok(HttpClient {
            base,
            host,
            access_key: access_key.to_string(),
            secret_key: secret_key.to_string(),
            region: region.to_string(),
            attempts: settings.attempts.max(1),
            agent,
        })
    }

    /// `http(s)://host:port`.
    pub fn endpoint(&self) -> &str {
        &self.base
    }

    pub fn is_tls(&self) -> bool {
        self.base.starts_with("https://")
    }

    /// An unsigned GET of a public probe (`/minio/health/live`): its status.
    pub fn probe(&self, path: &str) -> Result<u16, HttpError> {
        self.agent
            .get(format!("{}{path}", self.base))
            .call()
            .map(|r| r.status().as_u16())
            .map_err(|e| HttpError::Transport {
                endpoint: self.base.clone(),
                why: crate::tls::explain(&e.to_string()),
            })
    }

    /// Send one signed request: `path` and `query` already URI-encoded, `headers` signed
    /// with it. A 503 answer to a request without a streamed body is retried with backoff
    /// (100 ms doubling, or the answer's `Retry-After` up to 2 s).
    pub fn send(
        &self,
        method: &str,
        path: &str,
        query: &str,
        headers: &[(String, String)],
        payload: Payload<'_>,
    ) -> Result<Response, HttpError> {
        self.send_waiting(method, path, query, headers, payload, Wait::Idle)
    }

    /// [`HttpClient::send`], saying whether the request is held to the idle limit.
    pub fn send_waiting(
        &self,
        method: &str,
        path: &str,
        query: &str,
        headers: &[(String, String)],
        mut payload: Payload<'_>,
        wait: Wait,
    ) -> Result<Response, HttpError> {
        let url = if query.is_empty() {
            format!("{}{path}", self.base)
        } else {
            format!("{}{path}?{query}", self.base)
        };
        let payload_hash = match &payload {
            Payload::Empty => EMPTY_SHA256.to_string(),
            Payload::Bytes(b) => {
                use sha2::Digest;
                hex::encode(sha2::Sha256::digest(b))
            }
            Payload::Stream(..) => UNSIGNED_PAYLOAD.to_string(),
        };
        let attempts = match payload {
            Payload::Stream(..) => 1,
            _ => self.attempts,
        };
        let mut backoff = Duration::from_millis(100);
        let mut attempt = 1;
        loop {
            let signed = sign_request_with(
                method,
                path,
                query,
                &self.host,
                &payload_hash,
                headers,
                &self.access_key,
                &self.secret_key,
                &self.region,
                SystemTime::now(),
            );
            let mut b = http::Request::builder().method(method).uri(&url);
            for (k, v) in signed.iter().chain(headers) {
                b = b.header(k, v);
            }
            let bad = |e: http::Error| HttpError::Request(e.to_string());
            let sent = match &mut payload {
                Payload::Empty => self.run(b.body(()).map_err(bad)?, wait),
                Payload::Bytes(bytes) => self.run(b.body(bytes.to_vec()).map_err(bad)?, wait),
                Payload::Stream(reader, len) => {
                    let req = b
                        .header("content-length", len.to_string())
                        .body(ureq::SendBody::from_reader(reader))
                        .map_err(bad)?;
                    self.run(req, wait)
                }
            };
            let resp = sent.map_err(|e| HttpError::Transport {
                endpoint: self.base.clone(),
                why: crate::tls::explain(&e.to_string()),
            })?;
            if resp.status().as_u16() != 503 || attempt >= attempts {
                return Ok(resp);
            }
            let wait = resp
                .headers()
                .get("retry-after")
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.parse::<u64>().ok())
                .map_or(backoff, |s| {
                    Duration::from_secs(s).min(Duration::from_secs(2))
                });
            drop(resp);
            std::thread::sleep(wait);
            backoff = (backoff * 2).min(Duration::from_secs(2));
            attempt += 1;
        }
    }
}

impl HttpClient {
    fn run<S: ureq::AsSendBody>(
        &self,
        req: http::Request<S>,
        wait: Wait,
    ) -> Result<Response, ureq::Error> {
        let req = match wait {
            Wait::Idle => req,
            Wait::ServerWork => self
                .agent
                .configure_request(req)
                .timeout_per_read(None)
                .timeout_per_write(None)
                .build(),
        };
        self.agent.run(req)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn endpoints_take_either_scheme_and_nothing_else() {
        assert_eq!(
            parse_endpoint("http://127.0.0.1:9000/").expect("http"),
            ("http://127.0.0.1:9000".into(), "127.0.0.1:9000".into())
        );
        assert_eq!(
            parse_endpoint("https://s3.example.com").expect("https"),
            ("https://s3.example.com".into(), "s3.example.com".into())
        );
        for bad in [
            "127.0.0.1:9000",
            "ftp://x",
            "http://",
            "http://h/path",
            "https://h?x",
        ] {
            assert!(parse_endpoint(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn secrets_never_reach_debug_output() {
        let c = HttpClient::new(
            "https://h:1",
            "AK",
            "hunter2-secret",
            "r",
            &Settings::default(),
        )
        .expect("client");
        let shown = format!("{c:?}");
        assert!(
            shown.contains("AK") && !shown.contains("hunter2"),
            "{shown}"
        );
    }
}
