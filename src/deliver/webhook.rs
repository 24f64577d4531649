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
            .field("endpoint", &self.endpoint)
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
        let uri: http::Uri = endpoint
            .parse()
            .map_err(|e| DeliverError::Config(format!("{name}: endpoint {endpoint:?}: {e}")))?;
        if !matches!(uri.scheme_str(), Some("http" | "https")) || uri.host().is_none() {
            return Err(DeliverError::Config(format!(
                "{name}: endpoint {endpoint:?} must be an http:// or https:// URL"
            )));
        }
        let auth = match token.map(str::trim).filter(|t| !t.is_empty()) {
            None => None,
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
                Err(format!("{} answered {status}", self.endpoint))
            }
        };
        tokio::time::timeout(TIMEOUT, call)
            .await
            .map_err(|_| format!("{} did not answer within {TIMEOUT:?}", self.endpoint))?
    }
}
