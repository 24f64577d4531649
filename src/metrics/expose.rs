//! The Prometheus exposition: gather what a node (`/node`) or the cluster (`/cluster`)
//! knows into an [`Exposition`], then encode it with `prometheus-client` in the Prometheus
//! text format or OpenMetrics (whichever the scraper accepts).

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, NoLabelSet};
use prometheus_client::metrics::MetricType;
use prometheus_client::registry::Registry;

use super::instrument::{HistogramSnapshot, Requests, RequestsSnapshot};
use super::names::{self, Def, Kind};
use crate::heal::Healer;
use crate::s3::S3State;

/// The RPC service that answers this node's request counters (for a peer's cluster scrape).
pub const REQUESTS_SERVICE: &str = "metrics-requests";

/// Serves [`REQUESTS_SERVICE`].
pub struct RequestsService(pub Arc<Requests>);

#[async_trait::async_trait]
impl crate::rpc::Service for RequestsService {
    async fn call(&self, _body: bytes::Bytes) -> Result<Vec<u8>, String> {
        serde_json::to_vec(&self.0.snapshot()).map_err(|e| e.to_string())
    }
}

#[derive(Debug, Clone)]
enum Value {
    Counter(u64),
    Gauge(f64),
    Histogram(HistogramSnapshot),
    Info,
}

#[derive(Debug, Clone)]
struct Sample {
    labels: Vec<String>,
    value: Value,
}

/// Samples by metric, ready to encode.
#[derive(Debug, Default)]
pub struct Exposition {
    families: Vec<(Def, Vec<Sample>)>,
}

impl Exposition {
    fn push(&mut self, def: Def, labels: &[&str], value: Value) {
        let sample = Sample {
            labels: labels.iter().map(|l| l.to_string()).collect(),
            value,
        };
        match self.families.iter_mut().find(|(d, _)| d.name == def.name) {
            Some((_, samples)) => samples.push(sample),
            None => self.families.push((def, vec![sample])),
        }
    }

    fn counter(&mut self, def: Def, labels: &[&str], v: u64) {
        self.push(def, labels, Value::Counter(v));
    }

    fn gauge(&mut self, def: Def, labels: &[&str], v: f64) {
        self.push(def, labels, Value::Gauge(v));
    }

    fn histogram(&mut self, def: Def, labels: &[&str], h: &HistogramSnapshot) {
        self.push(def, labels, Value::Histogram(h.clone()));
    }

    /// Only the per-bucket families (`bucket_*`).
    pub fn buckets_only(mut self) -> Exposition {
        self.families.retain(|(d, _)| d.name.starts_with("bucket_"));
        self
    }

    /// Encode with `prefix` (`cairn` or `minio`): OpenMetrics when `openmetrics`, else the
    /// Prometheus text format 0.0.4. Returns the body and its content type.
    pub fn encode(self, prefix: &str, openmetrics: bool) -> (String, &'static str) {
        let mut registry = Registry::with_prefix(prefix);
        registry.register_collector(Box::new(self));
        let mut out = String::new();
        let r = if openmetrics {
            prometheus_client::encoding::text::encode(&mut out, &registry)
        } else {
            prometheus_client::encoding::prometheus_text::encode(&mut out, &registry)
        };
        if r.is_err() {
            out.clear();
        }
        let ct = if openmetrics {
            "application/openmetrics-text; version=1.0.0; charset=utf-8"
        } else {
            prometheus_client::encoding::prometheus_text::CONTENT_TYPE
        };
        (out, ct)
    }
}

impl Collector for Exposition {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        // Definition order, whatever order the gatherers pushed in.
        for def in names::ALL {
            let Some((_, samples)) = self.families.iter().find(|(d, _)| d.name == def.name) else {
                continue;
            };
            let kind = match def.kind {
                Kind::Counter => MetricType::Counter,
                Kind::Gauge => MetricType::Gauge,
                Kind::Histogram => MetricType::Histogram,
                Kind::Info => MetricType::Info,
            };
            let mut family = encoder.encode_descriptor(def.name, def.help, None, kind)?;
            for s in samples {
                let labels: Vec<(&str, &str)> = def
                    .labels
                    .iter()
                    .copied()
                    .zip(s.labels.iter().map(String::as_str))
                    .collect();
                if let Value::Info = s.value {
                    family.encode_info(&labels)?;
                    continue;
                }
                let mut m = family.encode_family(&labels)?;
                match &s.value {
                    Value::Counter(v) => m.encode_counter::<NoLabelSet, _, u64>(v, None)?,
                    Value::Gauge(v) => m.encode_gauge(v)?,
                    Value::Histogram(h) => {
                        m.encode_histogram::<NoLabelSet>(h.sum_secs, h.count, &h.pairs(), None)?
                    }
                    Value::Info => {}
                }
            }
        }
        Ok(())
    }
}

/// When this process started (set once by the server at start; else the first scrape).
static STARTED: std::sync::OnceLock<(std::time::Instant, SystemTime)> = std::sync::OnceLock::new();

pub fn mark_start() {
    let _ = STARTED.get_or_init(|| (std::time::Instant::now(), SystemTime::now()));
}

/// The `server` label: this node's `host:port` (`local` on a single node).
fn server_name(state: &S3State) -> String {
    state.node.clone().unwrap_or_else(|| "local".into())
}

fn requests(e: &mut Exposition, server: &str, r: &RequestsSnapshot) {
    for a in r.apis.iter().filter(|a| a.total > 0) {
        let l = [server, a.api.as_str()];
        e.counter(names::S3_REQUESTS, &l, a.total);
        e.counter(
            names::S3_ERRORS,
            &l,
            a.client_errors + a.server_errors + a.not_implemented,
        );
        e.counter(names::S3_4XX, &l, a.client_errors);
        e.counter(names::S3_5XX, &l, a.server_errors);
        e.counter(names::S3_NOT_IMPLEMENTED, &l, a.not_implemented);
        e.counter(names::S3_CANCELED, &l, a.canceled);
        e.histogram(names::S3_TTFB, &l, &a.ttfb);
        e.histogram(names::S3_DURATION, &l, &a.duration);
    }
    e.gauge(names::S3_INFLIGHT, &[server], r.inflight as f64);
    e.gauge(names::S3_RECEIVED, &[server], r.received as f64);
    e.gauge(names::S3_SENT, &[server], r.sent as f64);
    for (code, n) in &r.errors {
        e.counter(names::S3_ERROR_CODES, &[server, code], *n);
    }
}

/// Memory, CPU and descriptors of this process, from `/proc/self`.
fn process(e: &mut Exposition, server: &str) {
    let page = nix::unistd::sysconf(nix::unistd::SysconfVar::PAGE_SIZE)
        .ok()
        .flatten()
        .unwrap_or(4096) as f64;
    if let Ok(statm) = std::fs::read_to_string("/proc/self/statm") {
        let mut f = statm
            .split_whitespace()
            .map(|v| v.parse::<f64>().unwrap_or(0.0));
        let (size, resident) = (f.next().unwrap_or(0.0), f.next().unwrap_or(0.0));
        e.gauge(names::VIRTUAL, &[server], size * page);
        e.gauge(names::RESIDENT, &[server], resident * page);
    }
    if let Ok(stat) = std::fs::read_to_string("/proc/self/stat") {
        // Fields after the command name (which may hold spaces): utime is the 12th, stime
        // the 13th.
        let after = stat.rsplit_once(')').map_or("", |(_, r)| r);
        let f: Vec<&str> = after.split_whitespace().collect();
        let tick = nix::unistd::sysconf(nix::unistd::SysconfVar::CLK_TCK)
            .ok()
            .flatten()
            .unwrap_or(100) as f64;
        let ticks = |i: usize| f.get(i).and_then(|v| v.parse::<f64>().ok()).unwrap_or(0.0);
        e.gauge(names::CPU, &[server], (ticks(11) + ticks(12)) / tick);
    }
    if let Ok(fds) = std::fs::read_dir("/proc/self/fd") {
        e.gauge(names::FDS, &[server], fds.count() as f64);
    }
    let (at, wall) = *STARTED.get_or_init(|| (std::time::Instant::now(), SystemTime::now()));
    e.gauge(names::UPTIME, &[server], at.elapsed().as_secs_f64());
    let start = wall
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap_or_default();
    e.gauge(names::START_TIME, &[server], start.as_secs_f64());
    let rt = tokio::runtime::Handle::current().metrics();
    e.gauge(names::TASKS, &[server], rt.num_alive_tasks() as f64);
    e.gauge(names::WORKERS, &[server], rt.num_workers() as f64);
    e.push(
        names::SOFTWARE,
        &[server, env!("CARGO_PKG_VERSION")],
        Value::Info,
    );
}

/// This node: its requests, process, drives, peers, locks and scanner.
pub async fn node(state: &S3State, healer: &Healer) -> Exposition {
    let mut e = Exposition::default();
    let server = server_name(state);
    let server = server.as_str();
    if let Some(r) = &state.requests {
        requests(&mut e, server, &r.snapshot());
    }
    process(&mut e, server);
    let (mut online, mut offline) = (0, 0);
    let local: Vec<_> = state
        .store
        .sets()
        .iter()
        .flat_map(|s| s.drives.iter().flatten())
        .filter(|d| d.is_local())
        .cloned()
        .collect();
    for d in &local {
        let name = d.name();
        match d.disk_info().await {
            Ok(i) => {
                online += 1;
                e.gauge(names::DRIVE_ONLINE, &[server, name], 1.0);
                e.gauge(names::DRIVE_TOTAL_BYTES, &[server, name], i.total as f64);
                let used = i.total.saturating_sub(i.free);
                e.gauge(names::DRIVE_USED_BYTES, &[server, name], used as f64);
                e.gauge(names::DRIVE_FREE_BYTES, &[server, name], i.free as f64);
                if let Some(n) = i.free_inodes {
                    e.gauge(names::DRIVE_FREE_INODES, &[server, name], n as f64);
                }
            }
            Err(_) => {
                offline += 1;
                e.gauge(names::DRIVE_ONLINE, &[server, name], 0.0);
            }
        }
        if let Some(s) = d.io_stats() {
            e.histogram(names::DRIVE_LATENCY, &[server, name, "meta"], &s.meta);
            e.histogram(names::DRIVE_LATENCY, &[server, name, "data"], &s.data);
            e.counter(names::DRIVE_TIMEOUTS, &[server, name], s.timeouts);
            e.counter(
                names::DRIVE_OFFLINE_TRANSITIONS,
                &[server, name],
                s.offline_transitions,
            );
        }
    }
    e.gauge(names::DRIVES_ONLINE, &[server], online as f64);
    e.gauge(names::DRIVES_OFFLINE, &[server], offline as f64);
    for p in &state.peers {
        let l = [server, p.node.as_str()];
        let s = p.stats();
        let online = if p.is_online() { 1.0 } else { 0.0 };
        e.gauge(names::PEER_ONLINE, &l, online);
        let load = |a: &std::sync::atomic::AtomicU64| a.load(std::sync::atomic::Ordering::Relaxed);
        e.counter(names::PEER_CALLS, &l, load(&s.calls));
        e.counter(names::PEER_ERRORS, &l, load(&s.errors));
        e.histogram(names::PEER_LATENCY, &l, &s.latency.snapshot());
    }
    let locks = state.store.lock_stats();
    e.histogram(names::LOCK_WAIT, &[server], &locks.wait.snapshot());
    e.counter(
        names::LOCK_FAILURES,
        &[server],
        locks.failures.load(std::sync::atomic::Ordering::Relaxed),
    );
    events(&mut e, state, server);
    let sc = healer.scanner_status();
    e.counter(names::SCANNER_CYCLES, &[server], sc.cycles);
    e.gauge(names::SCANNER_LAST_CYCLE, &[server], sc.last_cycle_secs);
    e.gauge(
        names::SCANNER_LAST_FINISHED,
        &[server],
        sc.last_finished as f64,
    );
    e.gauge(names::SCANNER_OBJECTS, &[server], sc.objects_done as f64);
    e.gauge(names::SCANNER_BUCKETS, &[server], sc.buckets_done as f64);
    e
}

/// Live traces, the audit sinks and the notification targets' queues.
fn events(e: &mut Exposition, state: &S3State, server: &str) {
    use std::sync::atomic::Ordering::Relaxed;
    let o = &state.observers;
    e.gauge(
        names::TRACE_SUBSCRIBERS,
        &[server],
        o.trace().subscribers() as f64,
    );
    e.counter(names::TRACE_DROPPED, &[server], o.trace().dropped());
    let a = o.stats();
    e.counter(
        names::AUDIT_FILE_WRITTEN,
        &[server],
        a.file_written.load(Relaxed),
    );
    let mut webhook_dropped = a.webhook_dropped.load(Relaxed);
    if let Some(q) = o.webhook_queue() {
        let l = [server, "webhook"];
        let s = q.stats();
        webhook_dropped += s.dropped.load(Relaxed);
        e.gauge(names::AUDIT_QUEUE, &l, q.len() as f64);
        e.counter(names::AUDIT_SENT, &l, s.sent.load(Relaxed));
        e.counter(names::AUDIT_FAILED, &l, s.failed.load(Relaxed));
    }
    e.counter(
        names::AUDIT_DROPPED,
        &[server, "file"],
        a.file_dropped.load(Relaxed),
    );
    e.counter(names::AUDIT_DROPPED, &[server, "webhook"], webhook_dropped);
    for (id, q) in state.notifier.queues() {
        let target = format!("arn:cairn:sqs::{id}:webhook");
        let l = [server, target.as_str()];
        let s = q.stats();
        e.gauge(names::NOTIFY_QUEUE, &l, q.len() as f64);
        e.counter(names::NOTIFY_SENT, &l, s.sent.load(Relaxed));
        e.counter(names::NOTIFY_FAILED, &l, s.failed.load(Relaxed));
        e.counter(names::NOTIFY_DROPPED, &l, s.dropped.load(Relaxed));
    }
}

/// The deployment: every node's requests, capacity, drives, nodes, usage, quotas, heal and
/// lifecycle.
pub async fn cluster(state: &S3State, healer: &Healer) -> Exposition {
    let mut e = Exposition::default();
    let server = server_name(state);
    if let Some(r) = &state.requests {
        requests(&mut e, &server, &r.snapshot());
    }
    let remote = futures::future::join_all(state.peers.iter().map(|p| async move {
        let b = p
            .call_service(REQUESTS_SERVICE, Vec::new(), crate::rpc::SHORT_TIMEOUT)
            .await
            .ok()?;
        let snap: RequestsSnapshot = serde_json::from_slice(&b).ok()?;
        Some((p.node.clone(), snap))
    }))
    .await;
    for (node, snap) in remote.into_iter().flatten() {
        requests(&mut e, &node, &snap);
    }

    let info = crate::admin::info(state, healer).await;
    let (mut raw_total, mut raw_free, mut usable_total, mut usable_free) = (0.0, 0.0, 0.0, 0.0);
    let (mut drives, mut online) = (0, 0);
    let mut healthy = true;
    for set in &info.sets {
        let share = set.data as f64 / (set.data + set.parity).max(1) as f64;
        let up = set.drives.iter().filter(|d| d.state != "offline").count();
        for d in set.drives.iter().filter(|d| d.state != "offline") {
            raw_total += d.total as f64;
            raw_free += d.total.saturating_sub(d.used) as f64;
            usable_total += d.total as f64 * share;
            usable_free += d.total.saturating_sub(d.used) as f64 * share;
        }
        drives += set.drives.len();
        online += up;
        // Write quorum: data drives, one more when data == parity; reads need the data drives.
        let quorum = set.data + usize::from(set.data == set.parity);
        healthy &= up >= quorum;
        let healing = set.drives.iter().filter(|d| d.state == "healing").count();
        let (pool, id) = (set.pool.to_string(), set.index.to_string());
        let l = [pool.as_str(), id.as_str()];
        e.gauge(names::SET_DRIVES_ONLINE, &l, up as f64);
        e.gauge(names::SET_HEALING_DRIVES, &l, healing as f64);
        e.gauge(names::SET_READ_QUORUM, &l, set.data as f64);
        e.gauge(names::SET_WRITE_QUORUM, &l, quorum as f64);
        e.gauge(names::SET_STATUS, &l, f64::from(u8::from(up >= quorum)));
        e.gauge(names::SET_PARITY, &l, set.parity as f64);
    }
    pools(&mut e, &info);
    e.gauge(names::RAW_TOTAL, &[], raw_total);
    e.gauge(names::RAW_FREE, &[], raw_free);
    e.gauge(names::USABLE_TOTAL, &[], usable_total);
    e.gauge(names::USABLE_FREE, &[], usable_free);
    e.gauge(names::CLUSTER_DRIVES, &[], drives as f64);
    e.gauge(names::CLUSTER_DRIVES_ONLINE, &[], online as f64);
    e.gauge(
        names::CLUSTER_DRIVES_OFFLINE,
        &[],
        drives.saturating_sub(online) as f64,
    );
    let nodes_up = info.nodes.iter().filter(|n| n.state == "online").count();
    e.gauge(names::CLUSTER_NODES_ONLINE, &[], nodes_up as f64);
    e.gauge(
        names::CLUSTER_NODES_OFFLINE,
        &[],
        info.nodes.len().saturating_sub(nodes_up) as f64,
    );
    e.gauge(names::HEALTH, &[], if healthy { 1.0 } else { 0.0 });
    let kms = if state.kms.is_some() { 1.0 } else { 0.0 };
    e.gauge(names::KMS_ONLINE, &[], kms);

    let buckets = state.store.list_buckets().await.unwrap_or_default();
    e.gauge(names::BUCKETS, &[], buckets.len() as f64);
    let heal = &info.heal;
    let (mut objects, mut bytes) = (0u64, 0u64);
    for (b, u) in &heal.usage {
        objects = objects.saturating_add(u.objects);
        bytes = bytes.saturating_add(u.bytes);
        e.gauge(names::BUCKET_OBJECTS, &[b], u.objects as f64);
        e.gauge(names::BUCKET_BYTES, &[b], u.bytes as f64);
        e.gauge(names::BUCKET_VERSIONS, &[b], u.versions as f64);
        e.gauge(names::BUCKET_DELETE_MARKERS, &[b], u.delete_markers as f64);
    }
    e.gauge(names::USAGE_OBJECTS, &[], objects as f64);
    e.gauge(names::USAGE_BYTES, &[], bytes as f64);
    for b in &buckets {
        for q in state.quotas.statuses(&b.name).await {
            let l = [q.bucket.as_str(), q.prefix.as_str()];
            e.gauge(names::QUOTA, &l, q.quota as f64);
            e.gauge(names::QUOTA_USED, &l, q.used as f64);
            e.gauge(
                names::QUOTA_HEADROOM,
                &l,
                q.quota.saturating_sub(q.used) as f64,
            );
        }
    }

    let (mut healed, mut failed, mut rebuilt) = (0u64, 0u64, 0u64);
    for w in heal.workers.iter().filter(|w| w.name == "mrf") {
        healed += w.done;
        failed += w.failed;
    }
    if let Some(s) = &heal.sequence {
        healed += s.healed;
        failed += s.failed;
        rebuilt += s.bytes_rebuilt;
        e.gauge(names::HEAL_SEQUENCE_SCANNED, &[], s.scanned as f64);
        if let Some(t) = s.total {
            e.gauge(names::HEAL_SEQUENCE_TOTAL, &[], t as f64);
        }
    }
    for t in &heal.replacements {
        healed += t.objects_done;
        failed += t.objects_failed;
        rebuilt += t.bytes_done;
        let l = [t.drive.as_str()];
        e.gauge(names::DRIVE_HEAL_OBJECTS, &l, t.objects_done as f64);
        e.gauge(names::DRIVE_HEAL_BYTES, &l, t.bytes_done as f64);
        e.gauge(
            names::DRIVE_HEAL_DONE,
            &l,
            if t.finished { 1.0 } else { 0.0 },
        );
    }
    e.gauge(names::HEAL_OBJECTS, &[], info.scanner.objects_total as f64);
    e.gauge(names::HEAL_HEALED, &[], healed as f64);
    e.gauge(names::HEAL_ERRORS, &[], failed as f64);
    e.gauge(names::HEAL_BYTES, &[], rebuilt as f64);
    e.gauge(names::MRF_QUEUE, &[], heal.queued as f64);
    let l = &heal.lifecycle;
    e.gauge(names::ILM_PASSES, &[], l.passes as f64);
    e.gauge(names::ILM_EXPIRED, &[], l.total_expired as f64);
    e.gauge(names::ILM_ABORTED, &[], l.total_uploads_aborted as f64);
    e
}

/// The server pools: space, state, decommission and rebalance progress.
fn pools(e: &mut Exposition, info: &crate::admin::Info) {
    const STATES: [&str; 4] = ["active", "rebalancing", "decommissioning", "decommissioned"];
    for p in &info.pools {
        let n = p.number.to_string();
        let l = [n.as_str()];
        e.gauge(names::POOL_USABLE_TOTAL, &l, p.total as f64);
        e.gauge(names::POOL_USABLE_FREE, &l, p.free as f64);
        e.gauge(names::POOL_SETS, &l, p.sets as f64);
        for s in STATES {
            let on = if p.state == s { 1.0 } else { 0.0 };
            e.gauge(names::POOL_STATE, &[n.as_str(), s], on);
        }
        if let Some(d) = &p.decommission {
            e.gauge(names::POOL_DECOM_OBJECTS, &l, d.objects as f64);
            e.gauge(names::POOL_DECOM_BYTES, &l, d.bytes as f64);
            e.gauge(names::POOL_DECOM_FAILED, &l, d.failed as f64);
            e.gauge(names::POOL_DECOM_TOTAL_OBJECTS, &l, d.total_objects as f64);
            e.gauge(names::POOL_DECOM_TOTAL_BYTES, &l, d.total_bytes as f64);
        }
    }
    let r = info.rebalance.as_ref();
    let running = r.is_some_and(|r| r.state == "running");
    e.gauge(
        names::REBALANCE_RUNNING,
        &[],
        if running { 1.0 } else { 0.0 },
    );
    if let Some(r) = r {
        e.gauge(names::REBALANCE_OBJECTS, &[], r.progress.objects as f64);
        e.gauge(names::REBALANCE_BYTES, &[], r.progress.bytes as f64);
    }
}

/// How long a scrape may take before it answers with what it has (drives that hang are
/// cut short by their own deadlines; this bounds the whole).
pub const SCRAPE_TIMEOUT: Duration = Duration::from_secs(10);
