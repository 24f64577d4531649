//! Live request tracing: subscribers (a `cairn admin trace` connection, a peer relaying
//! for one) each get a bounded channel of the entries matching their filter. Publishing
//! never waits: a subscriber whose channel is full misses entries, and is told how many in
//! its stream (`{"dropped":N}`) once it catches up.

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use futures::Stream;
use parking_lot::RwLock;
use serde::{Deserialize, Serialize};

use super::Entry;

/// Entries a subscriber may have waiting.
const CHANNEL: usize = 4096;
/// A line every so often keeps idle streams open and finds clients that left.
pub const KEEPALIVE: Duration = Duration::from_secs(5);

/// Which entries a subscriber wants.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct Filter {
    /// Only refused and failed requests (status 400 and up).
    #[serde(default)]
    pub errors: bool,
    /// Only this operation (`PutObject`; case does not matter).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub op: Option<String>,
    /// Only requests on this bucket.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bucket: Option<String>,
}

impl Filter {
    pub fn matches(&self, e: &Entry) -> bool {
        (!self.errors || e.is_error())
            && self
                .op
                .as_deref()
                .is_none_or(|op| e.api.name.eq_ignore_ascii_case(op))
            && self.bucket.as_deref().is_none_or(|b| e.api.bucket == b)
    }
}

struct Sub {
    id: u64,
    filter: Filter,
    tx: tokio::sync::mpsc::Sender<Bytes>,
    dropped: Arc<AtomicU64>,
}

/// The subscribers of one node.
#[derive(Default)]
pub struct Hub {
    subs: RwLock<Vec<Sub>>,
    count: AtomicUsize,
    next: AtomicU64,
    /// Entries subscribers missed, over all time (metrics).
    dropped: AtomicU64,
}

impl Hub {
    pub fn has_subscribers(&self) -> bool {
        self.count.load(Ordering::Relaxed) > 0
    }

    pub fn subscribers(&self) -> usize {
        self.count.load(Ordering::Relaxed)
    }

    pub fn dropped(&self) -> u64 {
        self.dropped.load(Ordering::Relaxed)
    }

    pub(super) fn publish(&self, entry: &Entry, line: &Bytes) {
        if !self.has_subscribers() {
            return;
        }
        for s in self.subs.read().iter() {
            if s.filter.matches(entry) && s.tx.try_send(line.clone()).is_err() {
                s.dropped.fetch_add(1, Ordering::Relaxed);
                self.dropped.fetch_add(1, Ordering::Relaxed);
            }
        }
    }

    /// Start receiving entries that match `filter`; they stop when the subscription is
    /// dropped.
    pub fn subscribe(self: &Arc<Self>, filter: Filter) -> Subscription {
        let (tx, rx) = tokio::sync::mpsc::channel(CHANNEL);
        let id = self.next.fetch_add(1, Ordering::Relaxed);
        let dropped = Arc::new(AtomicU64::new(0));
        self.subs.write().push(Sub {
            id,
            filter,
            tx,
            dropped: dropped.clone(),
        });
        self.count.fetch_add(1, Ordering::Relaxed);
        Subscription {
            hub: self.clone(),
            id,
            rx,
            dropped,
        }
    }
}

/// One subscriber's entries.
pub struct Subscription {
    hub: Arc<Hub>,
    id: u64,
    rx: tokio::sync::mpsc::Receiver<Bytes>,
    dropped: Arc<AtomicU64>,
}

impl Drop for Subscription {
    fn drop(&mut self) {
        let mut subs = self.hub.subs.write();
        if let Some(i) = subs.iter().position(|s| s.id == self.id) {
            subs.swap_remove(i);
            self.hub.count.fetch_sub(1, Ordering::Relaxed);
        }
    }
}

/// What a trace stream carries besides entries.
#[derive(Debug, Serialize, Deserialize)]
pub struct Dropped {
    pub dropped: u64,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub node: String,
}

impl Subscription {
    /// The entries as JSON lines, a `{"dropped":N,"node":…}` line after entries were
    /// missed, and an empty line every [`KEEPALIVE`] when nothing else is sent.
    pub fn into_lines(self, node: String) -> impl Stream<Item = Bytes> + Send + 'static {
        futures::stream::unfold((self, node), |(mut sub, node)| async move {
            let missed = sub.dropped.swap(0, Ordering::Relaxed);
            if missed > 0 {
                let mut line = serde_json::to_vec(&Dropped {
                    dropped: missed,
                    node: node.clone(),
                })
                .unwrap_or_default();
                line.push(b'\n');
                return Some((Bytes::from(line), (sub, node)));
            }
            match tokio::time::timeout(KEEPALIVE, sub.rx.recv()).await {
                Ok(Some(line)) => Some((line, (sub, node))),
                Ok(None) => None,
                Err(_) => Some((Bytes::from_static(b"\n"), (sub, node))),
            }
        })
    }
}

/// The RPC stream service through which another node relays this node's trace.
pub const SERVICE: &str = "trace";

/// Serves [`SERVICE`]: the request body is a [`Filter`] (JSON), the answer this node's
/// matching entries until the caller hangs up.
pub struct TraceService {
    pub hub: Arc<Hub>,
    pub node: String,
}

#[async_trait::async_trait]
impl crate::rpc::StreamService for TraceService {
    async fn open(&self, body: Bytes) -> Result<axum::body::Body, String> {
        let filter: Filter = serde_json::from_slice(&body).map_err(|e| e.to_string())?;
        let lines = self.hub.subscribe(filter).into_lines(self.node.clone());
        Ok(axum::body::Body::from_stream(futures::StreamExt::map(
            lines,
            Ok::<_, std::convert::Infallible>,
        )))
    }
}

/// Another node's trace, relayed: its entries as whole lines (keepalives dropped), or one
/// `{"node":…,"error":…}` line when it cannot be reached.
pub fn relay(
    peer: Arc<crate::rpc::Peer>,
    filter: &Filter,
) -> impl Stream<Item = Bytes> + Send + 'static {
    use futures::StreamExt;
    let body = serde_json::to_vec(filter).unwrap_or_default();
    let node = peer.node.clone();
    futures::stream::once(async move { peer.open_stream(SERVICE, body).await }).flat_map(
        move |opened| match opened {
            Ok(incoming) => lines(http_body_util::BodyDataStream::new(incoming)).boxed(),
            Err(e) => {
                let mut line = serde_json::to_vec(&serde_json::json!({
                    "node": node,
                    "error": e.to_string(),
                }))
                .unwrap_or_default();
                line.push(b'\n');
                futures::stream::iter([Bytes::from(line)]).boxed()
            }
        },
    )
}

/// Cut a byte stream into non-empty lines (each ending in `\n`).
fn lines<S, E>(chunks: S) -> impl Stream<Item = Bytes> + Send + 'static
where
    S: Stream<Item = Result<Bytes, E>> + Send + Unpin + 'static,
{
    use futures::StreamExt;
    futures::stream::unfold(
        (chunks, bytes::BytesMut::new()),
        |(mut chunks, mut buf)| async move {
            loop {
                if let Some(i) = buf.iter().position(|b| *b == b'\n') {
                    let line = buf.split_to(i + 1).freeze();
                    if line.len() > 1 {
                        return Some((line, (chunks, buf)));
                    }
                    continue;
                }
                match chunks.next().await {
                    Some(Ok(b)) => buf.extend_from_slice(&b),
                    _ => return None,
                }
            }
        },
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use futures::StreamExt;

    fn entry(name: &str, bucket: &str, status: u16) -> Entry {
        let mut e = Entry::default();
        e.api.name = name.into();
        e.api.bucket = bucket.into();
        e.api.status_code = status;
        e
    }

    #[tokio::test]
    async fn filters_and_counts_what_a_slow_subscriber_misses() {
        let hub = Arc::new(Hub::default());
        let errors = hub.subscribe(Filter {
            errors: true,
            bucket: Some("b".into()),
            ..Filter::default()
        });
        let all = hub.subscribe(Filter::default());
        assert_eq!(hub.subscribers(), 2);
        for i in 0..(CHANNEL + 10) {
            let e = entry("GetObject", "b", if i % 2 == 0 { 200 } else { 404 });
            hub.publish(&e, &Bytes::from(format!("{i}\n")));
        }
        hub.publish(&entry("GetObject", "c", 500), &Bytes::from_static(b"c\n"));
        // The unfiltered subscriber missed 11 entries; the errors-on-b one none.
        assert_eq!(hub.dropped(), 11);
        let mut lines = Box::pin(all.into_lines("n1".into()));
        let first = lines.next().await.expect("test");
        let d: Dropped = serde_json::from_slice(&first).expect("test");
        assert_eq!(d.dropped, 11);
        assert_eq!(
            lines.next().await.expect("test"),
            Bytes::from_static(b"0\n")
        );
        drop(lines);
        assert_eq!(hub.subscribers(), 1);
        let mut lines = Box::pin(errors.into_lines("n1".into()));
        assert_eq!(
            lines.next().await.expect("test"),
            Bytes::from_static(b"1\n")
        );
        assert_eq!(
            lines.next().await.expect("test"),
            Bytes::from_static(b"3\n")
        );
    }
}
