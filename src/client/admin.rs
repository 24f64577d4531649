//! Client side of the admin API, for the `cairn admin` commands: SigV4-signed JSON calls.

use serde::de::DeserializeOwned;

use super::{HttpClient, HttpError, Payload, Settings};
use crate::api::ADMIN_PREFIX as PREFIX;
use crate::tls::Trust;

pub struct AdminClient {
    http: HttpClient,
}

#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error(transparent)]
    Http(#[from] HttpError),
    #[error("server answered {status}: {body}")]
    Status { status: u16, body: String },
    #[error("unexpected answer: {0}")]
    Decode(String),
}

impl AdminClient {
    pub fn new(
        endpoint: &str,
        access_key: &str,
        secret_key: &str,
        region: &str,
        trust: &Trust,
    ) -> Result<AdminClient, ClientError> {
        Self::with_settings(
            endpoint,
            access_key,
            secret_key,
            region,
            Settings {
                trust: trust.clone(),
                ..Settings::default()
            },
        )
    }

    /// A client whose calls may last as long as their answer streams (`cairn admin trace`).
    pub fn streaming(
        endpoint: &str,
        access_key: &str,
        secret_key: &str,
        region: &str,
        trust: &Trust,
    ) -> Result<AdminClient, ClientError> {
        Self::with_settings(
            endpoint,
            access_key,
            secret_key,
            region,
            Settings {
                trust: trust.clone(),
                timeout: std::time::Duration::ZERO,
                attempts: 1,
                ..Settings::default()
            },
        )
    }

    fn with_settings(
        endpoint: &str,
        access_key: &str,
        secret_key: &str,
        region: &str,
        settings: Settings,
    ) -> Result<AdminClient, ClientError> {
        Ok(AdminClient {
            http: HttpClient::new(endpoint, access_key, secret_key, region, &settings)?,
        })
    }

    /// GET `PREFIX + api` and hand back its body as it arrives (JSON lines).
    pub fn stream(
        &self,
        api: &str,
        query: &[(&str, String)],
    ) -> Result<Box<dyn std::io::BufRead + Send>, ClientError> {
        let path = format!("{PREFIX}{api}");
        let raw_query = encode_query(query);
        let resp = self
            .http
            .send("GET", &path, &raw_query, &[], Payload::Empty)?;
        let status = resp.status().as_u16();
        let mut body = resp.into_body();
        if status != 200 {
            let body = body.read_to_string().unwrap_or_default();
            return Err(ClientError::Status { status, body });
        }
        Ok(Box::new(std::io::BufReader::new(body.into_reader())))
    }

    /// Call `method` on `PREFIX + api` with `query` pairs (values already URL-safe).
    pub fn call<T: DeserializeOwned>(
        &self,
        method: &str,
        api: &str,
        query: &[(&str, String)],
    ) -> Result<T, ClientError> {
        self.call_with(method, api, query, Vec::new())
    }

    /// [`AdminClient::call`] with a request body (signed by its SHA-256).
    pub fn call_with<T: DeserializeOwned>(
        &self,
        method: &str,
        api: &str,
        query: &[(&str, String)],
        body: Vec<u8>,
    ) -> Result<T, ClientError> {
        let path = format!("{PREFIX}{api}");
        let raw_query = encode_query(query);
        let payload = if body.is_empty() {
            Payload::Empty
        } else {
            Payload::Bytes(&body)
        };
        let mut resp = self.http.send(method, &path, &raw_query, &[], payload)?;
        let status = resp.status().as_u16();
        let body = resp
            .body_mut()
            .read_to_string()
            .map_err(|e| HttpError::Transport {
                endpoint: self.http.endpoint().to_string(),
                why: e.to_string(),
            })?;
        if status != 200 {
            return Err(ClientError::Status { status, body });
        }
        serde_json::from_str(&body).map_err(|e| ClientError::Decode(e.to_string()))
    }
}

/// `k=v&…` with values URL-encoded.
fn encode_query(query: &[(&str, String)]) -> String {
    query
        .iter()
        .map(|(k, v)| format!("{k}={}", crate::auth::uri_encode_key(v).replace('/', "%2F")))
        .collect::<Vec<_>>()
        .join("&")
}
