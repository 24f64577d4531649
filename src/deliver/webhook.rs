//! The webhook target: each item is POSTed as the request body (JSON), with an optional
//! bearer token; any 2xx answer is a delivery, anything else (or no answer within
//! [`TIMEOUT`]) is retried by the queue.

use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper_rustls::HttpsConnector;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;

use super::{DeliverError, Target};

const TIMEOUT: Duration = Duration::from_secs(10);

pub struct Webhook {
    name: String,
    endpoint: http::Uri,
    /// The endpoint as logs and errors show it: no user info, no query (either may hold a
    /// secret).
    shown: String,
    /// `Authorization` value: the token as given when it has a scheme (`Bearer x`), else
    /// `Bearer <token>`, as MinIO.
    auth: Option<http::HeaderValue>,
    content_type: &'static str,
    client: Client<HttpsConnector<HttpConnector>, Full<Bytes>>,
}

impl std::fmt::Debug for Webhook {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never the token.
        f.debug_struct("Webhook")
            .field("name", &self.name)
            .field("endpoint", &self.shown)
            .finish()
    }
}

impl Webhook {
    /// A webhook named `name` posting to `endpoint` (`http://` or `https://`, checked
    /// against `tls`'s roots) with `content_type` bodies.
    pub fn new(
        name: &str,
        endpoint: &str,
        token: Option<&str>,
        content_type: &'static str,
        tls: std::sync::Arc<rustls::ClientConfig>,
    ) -> Result<Webhook, DeliverError> {
        // User info (`http://user:password@host/…`) is taken off the URL and sent as Basic
        // authentication, as MinIO's (Go's) client does; an auth token wins over it.
        let (endpoint, basic) = split_user_info(endpoint);
        let uri: http::Uri = endpoint.parse().map_err(|e| {
            DeliverError::Config(format!("{name}: endpoint {:?}: {e}", shown(&endpoint)))
        })?;
        if !matches!(uri.scheme_str(), Some("http" | "https")) || uri.host().is_none() {
            return Err(DeliverError::Config(format!(
                "{name}: endpoint {:?} must be an http:// or https:// URL",
                shown(&endpoint)
            )));
        }
        let auth = match token.map(str::trim).filter(|t| !t.is_empty()) {
            None => match basic {
                None => None,
                Some(b) => {
                    let mut v =
                        http::HeaderValue::from_str(&format!("Basic {b}")).map_err(|_| {
                            DeliverError::Config(format!(
                                "{name}: the endpoint's user info is invalid"
                            ))
                        })?;
                    v.set_sensitive(true);
                    Some(v)
                }
            },
            Some(t) => {
                let v = if t.contains(' ') {
                    t.to_string()
                } else {
                    format!("Bearer {t}")
                };
                let mut v = http::HeaderValue::from_str(&v).map_err(|_| {
                    DeliverError::Config(format!("{name}: the auth token has invalid characters"))
                })?;
                v.set_sensitive(true);
                Some(v)
            }
        };
        let conn = crate::tls::https_connector(&tls, TIMEOUT);
        Ok(Webhook {
            name: name.to_string(),
            shown: shown(&endpoint),
            endpoint: uri,
            auth,
            content_type,
            client: Client::builder(TokioExecutor::new())
                .pool_idle_timeout(Duration::from_secs(30))
                .build(conn),
        })
    }
}

#[async_trait::async_trait]
impl Target for Webhook {
    fn name(&self) -> &str {
        &self.name
    }

    async fn send(&self, item: Bytes) -> Result<(), String> {
        let mut req = http::Request::builder()
            .method(http::Method::POST)
            .uri(self.endpoint.clone())
            .header(http::header::CONTENT_TYPE, self.content_type)
            .header(http::header::USER_AGENT, "Cairn");
        if let Some(a) = &self.auth {
            req = req.header(http::header::AUTHORIZATION, a.clone());
        }
        let req = req.body(Full::new(item)).map_err(|e| e.to_string())?;
        let call = async {
            let resp = self
                .client
                .request(req)
                .await
                .map_err(|e| crate::tls::explain(&format!("{e:?}")))?;
            let status = resp.status();
            // Read the answer so the connection can be reused.
            let _ = resp.into_body().collect().await;
            if status.is_success() {
                Ok(())
            } else {
                Err(format!("{} answered {status}", self.shown))
            }
        };
        tokio::time::timeout(TIMEOUT, call)
            .await
            .map_err(|_| format!("{} did not answer within {TIMEOUT:?}", self.shown))?
    }
}

/// `endpoint` without its user info, and that user info (percent-decoded, `user:password`)
/// in base64 for a Basic `Authorization`.
fn split_user_info(endpoint: &str) -> (String, Option<String>) {
    use base64::Engine;
    let Some((scheme, rest)) = endpoint.split_once("://") else {
        return (endpoint.to_string(), None);
    };
    let authority_end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let (authority, path) = rest.split_at(authority_end);
    let Some((user_info, host)) = authority.rsplit_once('@') else {
        return (endpoint.to_string(), None);
    };
    let decoded = percent_encoding::percent_decode_str(user_info).decode_utf8_lossy();
    let basic = base64::engine::general_purpose::STANDARD.encode(decoded.as_bytes());
    (format!("{scheme}://{host}{path}"), Some(basic))
}

/// `endpoint` as logs may show it: scheme, host and path (no user info, query or fragment).
fn shown(endpoint: &str) -> String {
    let (plain, _) = split_user_info(endpoint);
    match plain.find(['?', '#']) {
        Some(i) => plain[..i].to_string(),
        None => plain,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn user_info_becomes_basic_auth_and_never_shows() {
        let (url, basic) = split_user_info("http://hook%20user:p%40ss@127.0.0.1:9/ui?token=s3cr3t");
        assert_eq!(url, "http://127.0.0.1:9/ui?token=s3cr3t");
        use base64::Engine;
        let raw = base64::engine::general_purpose::STANDARD
            .decode(basic.expect("basic"))
            .expect("base64");
        assert_eq!(raw, b"hook user:p@ss");
        assert_eq!(
            shown("http://hook:pw@127.0.0.1:9/ui?token=s3cr3t"),
            "http://127.0.0.1:9/ui"
        );
        assert_eq!(
            split_user_info("https://h/a@b").1,
            None,
            "an @ in the path is no user info"
        );
        let tls = crate::tls::Trust::system().client_config().expect("tls");
        let w = Webhook::new(
            "t",
            "http://u:hunter2@127.0.0.1:9/x?k=hunter3",
            None,
            "a",
            tls,
        )
        .expect("webhook");
        assert!(!format!("{w:?}").contains("hunter"), "{w:?}");
        assert_eq!(
            w.auth.as_ref().map(|v| v.as_bytes().to_vec()),
            Some(b"Basic dTpodW50ZXIy".to_vec())
        );
    }
}
