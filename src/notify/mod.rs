//! Bucket event notifications: the targets this server delivers to (webhooks configured by
//! `CAIRN_NOTIFY_WEBHOOK_ENDPOINT_<ID>`, named in bucket rules by the ARN
//! `arn:cairn:sqs::<ID>:webhook`), the events S3 handlers report ([`Changes`], a response
//! extension), and their delivery: each event matching a bucket rule is written to the
//! target's persistent queue (synced) before the request is answered, then sent at least
//! once by the queue's worker (`crate::deliver`), however long the target is down, while
//! the queue has room.
//!
//! The body a webhook receives is MinIO's: `{"EventName", "Key", "Records": [AWS's event
//! record]}`; `eventName` is written `s3:ObjectCreated:Put` as MinIO does.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::SystemTime;

use serde_json::json;
use tokio_util::sync::CancellationToken;

use crate::bucket::notification::Notification;
use crate::deliver::{DeliverError, Queue, Webhook};

pub const OBJECT_CREATED_PUT: &str = "s3:ObjectCreated:Put";
pub const OBJECT_CREATED_POST: &str = "s3:ObjectCreated:Post";
pub const OBJECT_CREATED_COPY: &str = "s3:ObjectCreated:Copy";
pub const OBJECT_CREATED_COMPLETE: &str = "s3:ObjectCreated:CompleteMultipartUpload";
pub const OBJECT_REMOVED_DELETE: &str = "s3:ObjectRemoved:Delete";
pub const OBJECT_REMOVED_MARKER: &str = "s3:ObjectRemoved:DeleteMarkerCreated";
pub const LIFECYCLE_DELETE: &str = "s3:LifecycleExpiration:Delete";
pub const LIFECYCLE_MARKER: &str = "s3:LifecycleExpiration:DeleteMarkerCreated";

/// One change to one object, as a handler reports it.
#[derive(Debug, Clone)]
pub struct Change {
    /// The full event name (`s3:ObjectCreated:Put`).
    pub event: &'static str,
    pub key: String,
    pub size: Option<u64>,
    pub etag: Option<String>,
    /// `null` or an id; `None` for an unversioned bucket.
    pub version_id: Option<String>,
}

/// What a request changed (a response extension the S3 layer takes off before answering).
#[derive(Debug, Clone, Default)]
pub struct Changes(pub Vec<Change>);

impl Changes {
    pub fn one(change: Change) -> Changes {
        Changes(vec![change])
    }
}

/// Who made the changes, for the event records.
#[derive(Debug, Clone, Default)]
pub struct Origin {
    pub access_key: String,
    pub source_ip: String,
    pub user_agent: String,
    pub request_id: String,
}

/// A webhook target as configured.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TargetConfig {
    pub id: String,
    pub endpoint: String,
    pub token: Option<String>,
    pub queue_dir: Option<PathBuf>,
    pub queue_limit: usize,
}

const PREFIXES: [&str; 2] = ["CAIRN_NOTIFY_WEBHOOK_", "MINIO_NOTIFY_WEBHOOK_"];

/// The webhook targets named by `CAIRN_NOTIFY_WEBHOOK_ENDPOINT_<ID>` (or MinIO's
/// `MINIO_NOTIFY_WEBHOOK_ENDPOINT_<ID>`), with `…_AUTH_TOKEN_<ID>`, `…_QUEUE_DIR_<ID>`,
/// `…_QUEUE_LIMIT_<ID>` (default 100000) and `…_ENABLE_<ID>=off` to skip one.
pub fn targets_from_env(
    vars: impl IntoIterator<Item = (String, String)>,
) -> Result<Vec<TargetConfig>, DeliverError> {
    let vars: BTreeMap<String, String> = vars.into_iter().collect();
    let setting = |name: &str, id: &str| {
        PREFIXES
            .iter()
            .find_map(|p| vars.get(&format!("{p}{name}_{id}")))
            .map(|v| v.trim().to_string())
            .filter(|v| !v.is_empty())
    };
    let mut out: Vec<TargetConfig> = Vec::new();
    for (k, endpoint) in &vars {
        let Some(id) = PREFIXES
            .iter()
            .find_map(|p| k.strip_prefix(p)?.strip_prefix("ENDPOINT_"))
        else {
            continue;
        };
        if out.iter().any(|t| t.id == id) || endpoint.trim().is_empty() {
            continue;
        }
        if id.is_empty()
            || !id
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
        {
            return Err(DeliverError::Config(format!(
                "{k}: the target id must be letters, digits, '-' or '_'"
            )));
        }
        if setting("ENABLE", id).is_some_and(|v| is_off(&v)) {
            continue;
        }
        let queue_limit = match setting("QUEUE_LIMIT", id) {
            None => 100_000,
            Some(v) => v.parse().ok().filter(|n| *n > 0).ok_or_else(|| {
                DeliverError::Config(format!(
                    "QUEUE_LIMIT_{id} must be a positive number, got {v:?}"
                ))
            })?,
        };
        out.push(TargetConfig {
            id: id.to_string(),
            endpoint: endpoint.trim().to_string(),
            token: setting("AUTH_TOKEN", id),
            queue_dir: setting("QUEUE_DIR", id).map(PathBuf::from),
            queue_limit,
        });
    }
    Ok(out)
}

/// Whether two configured folders are the same one (spelled alike once made absolute and
/// cleaned of `.`, `..` and trailing slashes, or resolving to the same existing folder).
fn same_dir(a: &Path, b: &Path) -> bool {
    let clean = |p: &Path| -> PathBuf {
        let abs = std::path::absolute(p).unwrap_or_else(|_| p.to_path_buf());
        let mut out = PathBuf::new();
        for c in abs.components() {
            match c {
                std::path::Component::CurDir => {}
                std::path::Component::ParentDir => {
                    out.pop();
                }
                other => out.push(other),
            }
        }
        out
    };
    if clean(a) == clean(b) {
        return true;
    }
    matches!((std::fs::canonicalize(a), std::fs::canonicalize(b)), (Ok(x), Ok(y)) if x == y)
}

/// Whether an `…_ENABLE_<ID>` value turns the target off: MinIO's spellings of false, in
/// any case (`off`, `false`, `f`, `0`, `no`, `disable`, `disabled`).
fn is_off(v: &str) -> bool {
    matches!(
        v.trim().to_ascii_lowercase().as_str(),
        "off" | "false" | "f" | "0" | "no" | "disable" | "disabled"
    )
}

/// The target id an ARN names: `arn:cairn:sqs:[region]:<ID>:webhook` (MinIO's
/// `arn:minio:sqs:…` too).
pub fn target_id(arn: &str) -> Option<&str> {
    let rest = arn
        .strip_prefix("arn:cairn:sqs:")
        .or_else(|| arn.strip_prefix("arn:minio:sqs:"))?;
    let (_region, rest) = rest.split_once(':')?;
    let id = rest.strip_suffix(":webhook")?;
    (!id.is_empty() && !id.contains(':')).then_some(id)
}

/// The server's notification targets and their queues.
#[derive(Default)]
pub struct Notifier {
    region: String,
    targets: BTreeMap<String, Arc<Queue>>,
}

impl std::fmt::Debug for Notifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Notifier")
            .field("targets", &self.targets.keys().collect::<Vec<_>>())
            .finish()
    }
}

impl Notifier {
    /// No targets: every rule naming one is refused.
    pub fn none(region: &str) -> Notifier {
        Notifier {
            region: region.to_string(),
            targets: BTreeMap::new(),
        }
    }

    /// Open every target's queue (its own folder, or `<default_queue_dir>/notify-<ID>`) and
    /// start delivering.
    pub fn start(
        region: &str,
        configs: &[TargetConfig],
        default_queue_dir: Option<&Path>,
        tls: Arc<rustls::ClientConfig>,
        stop: &CancellationToken,
    ) -> Result<Notifier, DeliverError> {
        let mut targets = BTreeMap::new();
        // A folder named by several targets is shared: each keeps its queue in a subfolder
        // of it (the queues number their items from 0, so one folder would mix and
        // overwrite them). A folder named by one target is its queue, as before.
        let shared = |d: &PathBuf| {
            configs
                .iter()
                .filter(|o| o.queue_dir.as_ref().is_some_and(|od| same_dir(od, d)))
                .count()
                > 1
        };
        for c in configs {
            let dir = match (&c.queue_dir, default_queue_dir) {
                (Some(d), _) if shared(d) => d.join(format!("webhook-{}", c.id)),
                (Some(d), _) => d.clone(),
                (None, Some(d)) => d.join(format!("notify-{}", c.id)),
                (None, None) => {
                    return Err(DeliverError::Config(format!(
                        "CAIRN_NOTIFY_WEBHOOK_QUEUE_DIR_{} is needed: this node has no local drive to keep the queue on",
                        c.id
                    )))
                }
            };
            let name = format!("webhook:{}", c.id);
            let hook = Webhook::new(
                &name,
                &c.endpoint,
                c.token.as_deref(),
                "application/json",
                tls.clone(),
            )?;
            let queue = Queue::open(&dir, c.queue_limit)?;
            queue.spawn(Arc::new(hook), stop.clone());
            targets.insert(c.id.clone(), queue);
        }
        Ok(Notifier {
            region: region.to_string(),
            targets,
        })
    }

    /// The ARNs of the configured targets.
    pub fn arns(&self) -> Vec<String> {
        self.targets
            .keys()
            .map(|id| format!("arn:cairn:sqs::{id}:webhook"))
            .collect()
    }

    pub fn has_target(&self, arn: &str) -> bool {
        target_id(arn).is_some_and(|id| self.targets.contains_key(id))
    }

    /// Each target's id and queue (metrics).
    pub fn queues(&self) -> impl Iterator<Item = (&str, &Arc<Queue>)> {
        self.targets.iter().map(|(k, v)| (k.as_str(), v))
    }

    /// Queue an event for every rule of `bucket` that a change fires. Returns when the
    /// events are on disk.
    pub async fn publish(
        &self,
        bucket: &str,
        owner: &str,
        rules: &Notification,
        changes: &Changes,
        origin: &Origin,
    ) {
        for change in &changes.0 {
            // One event per target and change, however many rules fire for it (as MinIO;
            // overlapping rules are refused when set, but older configurations may hold them).
            let mut sent = std::collections::BTreeSet::new();
            // When the change took effect, as far as this node knows: the request is done.
            let (time, sequencer) = next_sequencer();
            for rule in rules
                .rules
                .iter()
                .filter(|r| r.matches(change.event, &change.key))
            {
                let Some((id, queue)) =
                    target_id(&rule.arn).and_then(|id| self.targets.get_key_value(id))
                else {
                    tracing::warn!(arn = %rule.arn, bucket, "notification target is not configured on this node: event dropped");
                    continue;
                };
                if !sent.insert(id.as_str()) {
                    continue;
                }
                let body = self.event(bucket, owner, &rule.id, change, origin, time, sequencer);
                match serde_json::to_vec(&body) {
                    Ok(item) => {
                        if let Err(e) = queue.push(item, true).await {
                            tracing::warn!(error = %e, bucket, key = %change.key, "event not queued");
                        }
                    }
                    Err(e) => tracing::warn!(error = %e, "event not encoded"),
                }
            }
        }
    }

    #[allow(clippy::too_many_arguments)]
    fn event(
        &self,
        bucket: &str,
        owner: &str,
        config_id: &str,
        c: &Change,
        o: &Origin,
        t: SystemTime,
        sequencer: u64,
    ) -> serde_json::Value {
        let mut object = json!({
            "key": query_escape(&c.key),
            "sequencer": format!("{sequencer:016X}"),
        });
        if let Some(s) = c.size {
            object["size"] = json!(s);
        }
        if let Some(e) = &c.etag {
            object["eTag"] = json!(e);
        }
        if let Some(v) = &c.version_id {
            object["versionId"] = json!(v);
        }
        let principal = if o.access_key.is_empty() {
            "anonymous"
        } else {
            o.access_key.as_str()
        };
        let record = json!({
            "eventVersion": "2.0",
            "eventSource": "aws:s3",
            "awsRegion": self.region,
            "eventTime": crate::audit::timestamp(t).get(..23).map(|s| format!("{s}Z")).unwrap_or_default(),
            "eventName": c.event,
            "userIdentity": { "principalId": principal },
            "requestParameters": {
                "principalId": principal,
                "region": self.region,
                "sourceIPAddress": o.source_ip,
            },
            "responseElements": {
                "x-amz-request-id": o.request_id,
                "x-amz-id-2": o.request_id,
            },
            "s3": {
                "s3SchemaVersion": "1.0",
                "configurationId": config_id,
                "bucket": {
                    "name": bucket,
                    "ownerIdentity": { "principalId": owner },
                    "arn": format!("arn:aws:s3:::{bucket}"),
                },
                "object": object,
            },
            "source": { "host": o.source_ip, "userAgent": o.user_agent },
        });
        json!({
            "EventName": c.event,
            "Key": format!("{bucket}/{}", c.key),
            "Records": [record],
        })
    }
}

/// The time a change is published and its sequencer: nanoseconds since the epoch, raised
/// past the last one this process gave, so the changes of a key (published in the order
/// they took effect) get increasing sequencers, and no two events share one.
fn next_sequencer() -> (SystemTime, u64) {
    static LAST: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let now = SystemTime::now();
    let nanos = now
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX));
    let mut last = LAST.load(std::sync::atomic::Ordering::Relaxed);
    loop {
        let next = nanos.max(last.saturating_add(1));
        match LAST.compare_exchange_weak(
            last,
            next,
            std::sync::atomic::Ordering::Relaxed,
            std::sync::atomic::Ordering::Relaxed,
        ) {
            Ok(_) => return (now, next),
            Err(seen) => last = seen,
        }
    }
}

/// Go's `url.QueryEscape`, which S3 event records use for keys: unreserved characters
/// stay, a space becomes `+`, everything else `%XX`.
fn query_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                out.push(b as char)
            }
            b' ' => out.push('+'),
            _ => out.push_str(&format!("%{b:02X}")),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn arns_and_env() {
        assert_eq!(target_id("arn:cairn:sqs::1:webhook"), Some("1"));
        assert_eq!(
            target_id("arn:minio:sqs:us-east-1:hook:webhook"),
            Some("hook")
        );
        assert_eq!(target_id("arn:aws:sqs:us-east-1:1:webhook"), None);
        assert_eq!(target_id("arn:cairn:sqs::1:kafka"), None);
        let env = [
            ("CAIRN_NOTIFY_WEBHOOK_ENDPOINT_1", "http://127.0.0.1:1/hook"),
            ("CAIRN_NOTIFY_WEBHOOK_AUTH_TOKEN_1", "secret"),
            ("MINIO_NOTIFY_WEBHOOK_ENDPOINT_old", "http://x/"),
            ("MINIO_NOTIFY_WEBHOOK_ENABLE_old", "off"),
            ("MINIO_NOTIFY_WEBHOOK_ENDPOINT_caps", "http://x/"),
            ("MINIO_NOTIFY_WEBHOOK_ENABLE_caps", "OFF"),
            ("CAIRN_NOTIFY_WEBHOOK_ENDPOINT_false", "http://x/"),
            ("CAIRN_NOTIFY_WEBHOOK_ENABLE_false", "False"),
            ("CAIRN_NOTIFY_WEBHOOK_ENDPOINT_2", "http://y/"),
            ("CAIRN_NOTIFY_WEBHOOK_QUEUE_LIMIT_2", "5"),
        ]
        .map(|(k, v)| (k.to_string(), v.to_string()));
        let t = targets_from_env(env).expect("test");
        assert_eq!(t.len(), 2);
        assert_eq!(t[0].id, "1");
        assert_eq!(t[0].token.as_deref(), Some("secret"));
        assert_eq!(t[1].queue_limit, 5);
        let bad = [("CAIRN_NOTIFY_WEBHOOK_ENDPOINT_a:b", "http://y/")]
            .map(|(k, v)| (k.to_string(), v.to_string()));
        assert!(targets_from_env(bad).is_err());
        assert_eq!(query_escape("a b/c+d.txt"), "a+b%2Fc%2Bd.txt");
        for on in ["on", "true", "ON", "1", "enable"] {
            assert!(!is_off(on), "{on}");
        }
    }

    /// Sequencers increase in the order events are published, never repeat.
    #[test]
    fn sequencers_increase() {
        let mut last = 0;
        for _ in 0..1000 {
            let (_, s) = next_sequencer();
            assert!(s > last);
            last = s;
        }
    }

    /// Targets naming one queue folder each keep their queue in a subfolder of it: their
    /// items never mix.
    #[tokio::test]
    async fn targets_sharing_a_queue_folder_get_one_each() {
        let tmp = tempfile::tempdir().expect("tmp");
        let shared = tmp.path().join("q");
        let own = tmp.path().join("own");
        let target = |id: &str, dir: &Path| TargetConfig {
            id: id.into(),
            endpoint: "http://127.0.0.1:9/".into(),
            token: None,
            queue_dir: Some(dir.to_path_buf()),
            queue_limit: 10,
        };
        let configs = [
            target("1", &shared),
            target("2", &tmp.path().join("x/../q/")),
            target("3", &own),
        ];
        let tls = crate::tls::Trust::system().client_config().expect("tls");
        let stop = CancellationToken::new();
        let n = Notifier::start("us-east-1", &configs, None, tls, &stop).expect("start");
        stop.cancel();
        let dirs: BTreeMap<&str, PathBuf> = n.queues().map(|(id, q)| (id, q.dir())).collect();
        assert_eq!(dirs["1"], shared.join("webhook-1"));
        assert_eq!(dirs["2"], tmp.path().join("x/../q/").join("webhook-2"));
        assert_eq!(
            dirs["3"], own,
            "a folder of its own is the queue itself, as before"
        );
    }
}
