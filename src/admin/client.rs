//! Client side of the admin API, for the `cairn admin` commands: SigV4-signed JSON calls.

use std::time::SystemTime;

use serde::de::DeserializeOwned;

use super::PREFIX;
use crate::auth::{sign_request, EMPTY_SHA256};

pub struct AdminClient {
    endpoint: String,
    host: String,
    access_key: String,
    secret_key: String,
    region: String,
    agent: ureq::Agent,
}

#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error("invalid endpoint {0:?}: expected http://host:port")]
    Endpoint(String),
    #[error("cannot reach {0}: {1}")]
    Transport(String, String),
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
    ) -> Result<AdminClient, ClientError> {
        let endpoint = endpoint.trim_end_matches('/').to_string();
        let host = endpoint
            .strip_prefix("http://")
            .filter(|h| !h.is_empty() && !h.contains('/'))
            .ok_or_else(|| ClientError::Endpoint(endpoint.clone()))?
            .to_string();
        let agent: ureq::Agent = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .timeout_global(Some(std::time::Duration::from_secs(30)))
            .build()
            .into();
        Ok(AdminClient {
            endpoint,
            host,
            access_key: access_key.to_string(),
            secret_key: secret_key.to_string(),
            region: region.to_string(),
            agent,
        })
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
        let raw_query = query
            .iter()
            .map(|(k, v)| format!("{k}={}", crate::auth::uri_encode_key(v).replace('/', "%2F")))
            .collect::<Vec<_>>()
            .join("&");
        let payload_hash = if body.is_empty() {
            EMPTY_SHA256.to_string()
        } else {
            use sha2::Digest;
            hex::encode(sha2::Sha256::digest(&body))
        };
        let headers = sign_request(
            method,
            &path,
            &raw_query,
            &self.host,
            &payload_hash,
            &self.access_key,
            &self.secret_key,
            &self.region,
            SystemTime::now(),
        );
        let url = if raw_query.is_empty() {
            format!("{}{path}", self.endpoint)
        } else {
            format!("{}{path}?{raw_query}", self.endpoint)
        };
        let mut builder = http::Request::builder().method(method).uri(&url);
        for (k, v) in headers {
            builder = builder.header(k, v);
        }
        let req = builder
            .body(body)
            .map_err(|e| ClientError::Endpoint(e.to_string()))?;
        let mut resp = self
            .agent
            .run(req)
            .map_err(|e| ClientError::Transport(self.endpoint.clone(), e.to_string()))?;
        let status = resp.status().as_u16();
        let body = resp
            .body_mut()
            .read_to_string()
            .map_err(|e| ClientError::Transport(self.endpoint.clone(), e.to_string()))?;
        if status != 200 {
            return Err(ClientError::Status { status, body });
        }
        serde_json::from_str(&body).map_err(|e| ClientError::Decode(e.to_string()))
    }
}
