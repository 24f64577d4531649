//! Delivery of events to targets outside Cairn (audit webhooks, bucket notification
//! webhooks): a persistent on-disk [`Queue`] per target and a worker that sends its items in
//! order, at least once, retrying with backoff while the target is down.
//!
//! A target is anything that takes one item's bytes ([`Target`]); the webhook is the only
//! kind today, and Kafka, NATS or AMQP targets are another implementation of the trait. This
//! module knows nothing of what the items mean (audit entries, S3 events).

mod queue;
mod webhook;

pub use queue::{Queue, QueueStats};
pub use webhook::Webhook;

/// Somewhere items are delivered.
#[async_trait::async_trait]
pub trait Target: Send + Sync {
    /// A name for logs and metrics (`webhook:1`, `audit`).
    fn name(&self) -> &str;
    /// Deliver one item; an error is retried later with the same bytes.
    async fn send(&self, item: bytes::Bytes) -> Result<(), String>;
}

#[derive(Debug, thiserror::Error)]
pub enum DeliverError {
    #[error("queue folder {dir}: {source}")]
    Io {
        dir: String,
        #[source]
        source: std::io::Error,
    },
    #[error("{0}")]
    Config(String),
}
