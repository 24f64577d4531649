//! What happened to every request, for people watching: one [`Entry`] per S3 request
//! (who, what, outcome, bytes, timing), published when the request's response ends to
//! the live trace ([`trace::Hub`], `cairn admin trace`), the audit file
//! (`CAIRN_AUDIT_FILE`, rotated by size) and the audit webhook
//! (`CAIRN_AUDIT_WEBHOOK_ENDPOINT`, batched through a persistent queue).
//!
//! Entries carry identities by access key only: never a secret, signature, token or
//! SSE-C key (they are built from named fields, never from request headers). Publishing
//! never waits: a sink that cannot keep up loses entries, counted in the metrics.

mod file;
pub mod trace;

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use serde::{Deserialize, Serialize};
use tokio_util::sync::CancellationToken;

use crate::deliver::{DeliverError, Queue, Webhook};

/// One answered request.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct Entry {
    pub version: String,
    #[serde(rename = "deploymentid", default)]
    pub deployment_id: String,
    /// When the request arrived, RFC 3339 with nanoseconds (UTC).
    pub time: String,
    /// The node that answered (`host:port`).
    pub node: String,
    #[serde(rename = "requestID")]
    pub request_id: String,
    /// The access key that signed the request (empty: anonymous).
    #[serde(
        rename = "accessKey",
        default,
        skip_serializing_if = "String::is_empty"
    )]
    pub access_key: String,
    /// The client's address (`aws:SourceIp`).
    #[serde(rename = "remotehost", default)]
    pub remote_host: String,
    #[serde(
        rename = "userAgent",
        default,
        skip_serializing_if = "String::is_empty"
    )]
    pub user_agent: String,
    pub api: Api,
}

/// The S3 side of an [`Entry`].
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct Api {
    /// The S3 operation (`PutObject`), or `Unknown` for a request refused before it was
    /// understood (a bad signature, say).
    pub name: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub bucket: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub object: String,
    #[serde(
        rename = "versionId",
        default,
        skip_serializing_if = "String::is_empty"
    )]
    pub version_id: String,
    /// The status line's text (`OK`, `Not Found`).
    pub status: String,
    #[serde(rename = "statusCode")]
    pub status_code: u16,
    /// The S3 error code of a refused or failed request.
    #[serde(
        rename = "errorCode",
        default,
        skip_serializing_if = "String::is_empty"
    )]
    pub error_code: String,
    /// Request body bytes (as declared by `Content-Length`).
    pub rx: u64,
    /// Response body bytes sent.
    pub tx: u64,
    #[serde(rename = "timeToFirstByteNS")]
    pub time_to_first_byte_ns: u64,
    #[serde(rename = "timeToResponseNS")]
    pub time_to_response_ns: u64,
    /// The client went away before the response was complete.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub canceled: bool,
}

impl Entry {
    pub fn is_error(&self) -> bool {
        self.api.status_code >= 400
    }
}

/// Entries lost because a sink could not keep up, by sink.
#[derive(Debug, Default)]
pub struct AuditStats {
    pub file_written: AtomicU64,
    pub file_dropped: AtomicU64,
    pub webhook_dropped: AtomicU64,
}

/// Everyone who wants to know about answered requests.
pub struct Observers {
    node: String,
    deployment: String,
    trace: Arc<trace::Hub>,
    file: Option<file::AuditFile>,
    webhook: Option<(tokio::sync::mpsc::Sender<Bytes>, Arc<Queue>)>,
    stats: Arc<AuditStats>,
}

impl std::fmt::Debug for Observers {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Observers")
            .field("node", &self.node)
            .field("file", &self.file.is_some())
            .field("webhook", &self.webhook.is_some())
            .finish()
    }
}

/// Where the audit sinks go (`None`: that sink is off).
#[derive(Debug, Default)]
pub struct AuditConfig {
    pub file: Option<PathBuf>,
    pub file_max_size: u64,
    pub file_keep: usize,
    pub webhook: Option<String>,
    pub webhook_token: Option<String>,
    pub webhook_batch: usize,
    pub webhook_queue_dir: Option<PathBuf>,
    pub webhook_queue_limit: usize,
}

impl AuditConfig {
    /// `CAIRN_AUDIT_FILE` (+ `_MAX_SIZE`, default 100 MiB; `_KEEP`, default 10 rotated files)
    /// and `CAIRN_AUDIT_WEBHOOK_ENDPOINT` (+ `_AUTH_TOKEN`, `_BATCH_SIZE` default 1,
    /// `_QUEUE_DIR`, `_QUEUE_LIMIT` default 100000).
    pub fn from_env(get: impl Fn(&str) -> Option<String>) -> Result<AuditConfig, DeliverError> {
        let num = |var: &str, default: usize| -> Result<usize, DeliverError> {
            match get(var) {
                None => Ok(default),
                Some(v) => v.parse::<usize>().ok().filter(|n| *n > 0).ok_or_else(|| {
                    DeliverError::Config(format!("{var} must be a positive number, got {v:?}"))
                }),
            }
        };
        let file_max_size = match get("CAIRN_AUDIT_FILE_MAX_SIZE") {
            None => 100 << 20,
            Some(v) => crate::units::parse_bytes(&v)
                .filter(|n| *n >= 4096)
                .ok_or_else(|| {
                    DeliverError::Config(format!(
                        "CAIRN_AUDIT_FILE_MAX_SIZE must be a size of at least 4KiB such as 100MiB, got {v:?}"
                    ))
                })?,
        };
        let nonempty = |v: Option<String>| v.filter(|s| !s.trim().is_empty());
        Ok(AuditConfig {
            file: nonempty(get("CAIRN_AUDIT_FILE")).map(PathBuf::from),
            file_max_size,
            file_keep: num("CAIRN_AUDIT_FILE_KEEP", 10)?,
            webhook: nonempty(get("CAIRN_AUDIT_WEBHOOK_ENDPOINT")),
            webhook_token: nonempty(get("CAIRN_AUDIT_WEBHOOK_AUTH_TOKEN")),
            webhook_batch: num("CAIRN_AUDIT_WEBHOOK_BATCH_SIZE", 1)?,
            webhook_queue_dir: nonempty(get("CAIRN_AUDIT_WEBHOOK_QUEUE_DIR")).map(PathBuf::from),
            webhook_queue_limit: num("CAIRN_AUDIT_WEBHOOK_QUEUE_LIMIT", 100_000)?,
        })
    }
}

/// Entries waiting for a sink's writer; more are dropped (and counted).
const SINK_BUFFER: usize = 16 * 1024;
/// How long the webhook batcher waits to fill a batch.
const BATCH_WAIT: Duration = Duration::from_secs(1);

impl Observers {
    /// Nobody listening yet (traces subscribe later).
    pub fn new(node: &str, deployment: &str) -> Observers {
        Observers {
            node: node.to_string(),
            deployment: deployment.to_string(),
            trace: Arc::default(),
            file: None,
            webhook: None,
            stats: Arc::default(),
        }
    }

    /// With the sinks `config` names; the webhook's queue lives in its queue folder, or
    /// under `default_queue_dir`.
    pub fn with_sinks(
        mut self,
        config: &AuditConfig,
        default_queue_dir: Option<&Path>,
        tls: Arc<rustls::ClientConfig>,
        stop: &CancellationToken,
    ) -> Result<Observers, DeliverError> {
        if let Some(path) = &config.file {
            self.file = Some(file::AuditFile::open(
                path,
                config.file_max_size,
                config.file_keep,
                self.stats.clone(),
            )?);
        }
        if let Some(endpoint) = &config.webhook {
            let dir = match (&config.webhook_queue_dir, default_queue_dir) {
                (Some(d), _) => d.clone(),
                (None, Some(d)) => d.join("audit"),
                (None, None) => {
                    return Err(DeliverError::Config(
                        "CAIRN_AUDIT_WEBHOOK_QUEUE_DIR is needed: this node has no local drive to keep the queue on".into(),
                    ))
                }
            };
            let content_type = if config.webhook_batch > 1 {
                "application/x-ndjson"
            } else {
                "application/json"
            };
            let target = Webhook::new(
                "audit webhook",
                endpoint,
                config.webhook_token.as_deref(),
                content_type,
                tls,
            )?;
            let queue = Queue::open(&dir, config.webhook_queue_limit)?;
            queue.spawn(Arc::new(target), stop.clone());
            let (tx, rx) = tokio::sync::mpsc::channel(SINK_BUFFER);
            tokio::spawn(batch(rx, queue.clone(), config.webhook_batch));
            self.webhook = Some((tx, queue));
        }
        Ok(self)
    }

    pub fn node(&self) -> &str {
        &self.node
    }

    pub fn deployment(&self) -> &str {
        &self.deployment
    }

    /// Someone wants entries: build them (otherwise requests skip the work).
    pub fn active(&self) -> bool {
        self.file.is_some() || self.webhook.is_some() || self.trace.has_subscribers()
    }

    pub fn trace(&self) -> &Arc<trace::Hub> {
        &self.trace
    }

    pub fn stats(&self) -> &AuditStats {
        &self.stats
    }

    /// The webhook's queue, when there is one.
    pub fn webhook_queue(&self) -> Option<&Arc<Queue>> {
        self.webhook.as_ref().map(|(_, q)| q)
    }

    /// Hand `entry` to every sink and matching trace, without waiting.
    pub fn publish(&self, entry: &Entry) {
        let Ok(mut line) = serde_json::to_vec(entry) else {
            return;
        };
        line.push(b'\n');
        let line = Bytes::from(line);
        self.trace.publish(entry, &line);
        if let Some(f) = &self.file {
            f.write(line.clone());
        }
        if let Some((tx, _)) = &self.webhook {
            if tx.try_send(line).is_err() {
                self.stats.webhook_dropped.fetch_add(1, Ordering::Relaxed);
            }
        }
    }
}

/// Gather entries into batches of up to `size` lines (waiting at most [`BATCH_WAIT`] for a
/// batch to fill) and queue each batch as one item.
async fn batch(mut rx: tokio::sync::mpsc::Receiver<Bytes>, queue: Arc<Queue>, size: usize) {
    while let Some(first) = rx.recv().await {
        let mut item = first.to_vec();
        let mut n = 1;
        let deadline = tokio::time::Instant::now() + BATCH_WAIT;
        while n < size {
            match tokio::time::timeout_at(deadline, rx.recv()).await {
                Ok(Some(line)) => {
                    item.extend_from_slice(&line);
                    n += 1;
                }
                _ => break,
            }
        }
        if size == 1 {
            // One entry: a plain JSON document.
            if item.last() == Some(&b'\n') {
                item.pop();
            }
        }
        if let Err(e) = queue.push(item, false).await {
            tracing::warn!(error = %e, "audit entry not queued");
        }
    }
}

/// RFC 3339 with nanoseconds, UTC.
pub fn timestamp(t: std::time::SystemTime) -> String {
    let t = time::OffsetDateTime::from(t);
    let fmt = time::macros::format_description!(
        "[year]-[month]-[day]T[hour]:[minute]:[second].[subsecond digits:9]Z"
    );
    t.format(fmt).unwrap_or_default()
}
