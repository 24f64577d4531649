//! Every metric Cairn exposes: name (without the `cairn_`/`minio_` prefix; counters get
//! `_total` appended by the encoder), type, labels and help text. Where MinIO has a metric
//! of the same meaning, the name is MinIO's (v2), so its dashboards keep working on the
//! `/minio/v2/metrics/*` paths. `docs/operations.md` lists these (a unit test checks it).

/// How a metric is encoded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Counter,
    Gauge,
    Histogram,
    Info,
}

/// One metric's definition.
#[derive(Debug, Clone, Copy)]
pub struct Def {
    pub name: &'static str,
    pub kind: Kind,
    pub labels: &'static [&'static str],
    pub help: &'static str,
}

impl Def {
    /// The name as scraped, with `prefix` (`cairn` or `minio`) and a counter's `_total`.
    pub fn full_name(&self, prefix: &str) -> String {
        let suffix = match self.kind {
            Kind::Counter => "_total",
            Kind::Info => "_info",
            Kind::Gauge | Kind::Histogram => "",
        };
        format!("{prefix}_{}{suffix}", self.name)
    }
}

macro_rules! defs {
    ($($id:ident: $kind:ident $name:literal [$($label:literal),*] $help:literal;)*) => {
        $(pub const $id: Def = Def {
            name: $name,
            kind: Kind::$kind,
            labels: &[$($label),*],
            help: $help,
        };)*
        /// Every metric, in exposition order.
        pub const ALL: &[Def] = &[$($id),*];
    };
}

defs! {
    // Node: this server's requests.
    S3_REQUESTS: Counter "s3_requests" ["server", "api"] "S3 requests answered, by API.";
    S3_ERRORS: Counter "s3_requests_errors" ["server", "api"] "S3 requests answered with a 4xx or 5xx status (501 included), by API.";
    S3_4XX: Counter "s3_requests_4xx_errors" ["server", "api"] "S3 requests answered with a 4xx status, by API.";
    S3_5XX: Counter "s3_requests_5xx_errors" ["server", "api"] "S3 requests answered with a 5xx status other than 501, by API.";
    S3_NOT_IMPLEMENTED: Counter "s3_requests_not_implemented" ["server", "api"] "S3 requests refused with 501 NotImplemented (a feature Cairn does not offer), by API.";
    S3_CANCELED: Counter "s3_requests_canceled" ["server", "api"] "S3 answers the client stopped reading before their end, by API.";
    S3_INFLIGHT: Gauge "s3_requests_inflight_total" ["server"] "S3 requests arrived and not yet finished.";
    S3_RECEIVED: Gauge "s3_traffic_received_bytes" ["server"] "Bytes of S3 request bodies received since start (as declared by Content-Length).";
    S3_SENT: Gauge "s3_traffic_sent_bytes" ["server"] "Bytes of S3 response bodies sent since start.";
    S3_TTFB: Histogram "s3_requests_ttfb_seconds_distribution" ["server", "api"] "Time from a request's arrival to its status and headers, by API.";
    S3_DURATION: Histogram "s3_requests_duration_seconds" ["server", "api"] "Time from a request's arrival to the last byte of its answer, by API.";
    S3_ERROR_CODES: Counter "s3_errors" ["server", "code"] "S3 error answers, by S3 error code.";
    // Node: the process.
    SOFTWARE: Info "software_version" ["server", "version"] "The Cairn release this server runs.";
    UPTIME: Gauge "node_process_uptime_seconds" ["server"] "Seconds since this server started.";
    START_TIME: Gauge "node_process_starttime_seconds" ["server"] "When this server started, seconds since the Unix epoch.";
    RESIDENT: Gauge "node_process_resident_memory_bytes" ["server"] "Resident memory of the server process.";
    VIRTUAL: Gauge "node_process_virtual_memory_bytes" ["server"] "Virtual memory of the server process.";
    CPU: Gauge "node_process_cpu_total_seconds" ["server"] "CPU time (user and system) the server process used since start.";
    FDS: Gauge "node_file_descriptor_open_total" ["server"] "File descriptors the server process holds open.";
    TASKS: Gauge "node_go_routine_total" ["server"] "Asynchronous tasks alive in the server's runtime (where MinIO counts goroutines).";
    WORKERS: Gauge "node_runtime_workers" ["server"] "Worker threads of the server's runtime.";
    // Node: drives attached to this server.
    DRIVE_ONLINE: Gauge "node_drive_online" ["server", "drive"] "1 when the drive is online, 0 when it is offline.";
    DRIVE_TOTAL_BYTES: Gauge "node_drive_total_bytes" ["server", "drive"] "Size of the drive's filesystem.";
    DRIVE_USED_BYTES: Gauge "node_drive_used_bytes" ["server", "drive"] "Bytes used on the drive's filesystem.";
    DRIVE_FREE_BYTES: Gauge "node_drive_free_bytes" ["server", "drive"] "Bytes free on the drive's filesystem.";
    DRIVE_FREE_INODES: Gauge "node_drive_free_inodes" ["server", "drive"] "Inodes free on the drive's filesystem.";
    DRIVES_ONLINE: Gauge "node_drive_online_total" ["server"] "Drives of this server that are online.";
    DRIVES_OFFLINE: Gauge "node_drive_offline_total" ["server"] "Drives of this server that are offline.";
    DRIVE_LATENCY: Histogram "node_drive_latency_seconds" ["server", "drive", "class"] "Latency of drive calls that answered in time, as this server saw them: class meta (metadata, listings, commits) or data (shard reads and writes).";
    DRIVE_TIMEOUTS: Counter "node_drive_timeouts" ["server", "drive"] "Drive calls that did not answer within their deadline.";
    DRIVE_OFFLINE_TRANSITIONS: Counter "node_drive_offline_transitions" ["server", "drive"] "Times the drive went offline for timing out.";
    // Node: internode calls and locks.
    PEER_ONLINE: Gauge "inter_node_peer_online" ["server", "peer"] "1 when this server reaches the peer, 0 when not.";
    PEER_CALLS: Counter "inter_node_calls" ["server", "peer"] "Calls this server sent to the peer.";
    PEER_ERRORS: Counter "inter_node_traffic_errors" ["server", "peer"] "Calls to the peer that got no answer (timeout, connection refused, closed).";
    PEER_LATENCY: Histogram "inter_node_latency_seconds" ["server", "peer"] "Time from a call to the peer's status line.";
    LOCK_WAIT: Histogram "node_lock_wait_seconds" ["server"] "Time object and bucket locks took to be granted.";
    LOCK_FAILURES: Counter "node_lock_failures" ["server"] "Lock requests that timed out or found no quorum.";
    // Node: trace, audit and event notifications.
    TRACE_SUBSCRIBERS: Gauge "trace_subscribers" ["server"] "Live traces (cairn admin trace, relays for other nodes) watching this server.";
    TRACE_DROPPED: Counter "trace_dropped" ["server"] "Trace lines not sent because a trace client could not keep up.";
    AUDIT_FILE_WRITTEN: Counter "audit_file_entries_written" ["server"] "Audit entries written to the audit file.";
    AUDIT_DROPPED: Counter "audit_dropped" ["server", "target"] "Audit entries lost because a sink could not keep up or its queue was full (target file or webhook).";
    AUDIT_QUEUE: Gauge "audit_target_queue_length" ["server", "target"] "Audit batches waiting in the webhook's on-disk queue.";
    AUDIT_SENT: Counter "audit_target_sent" ["server", "target"] "Audit batches the webhook accepted.";
    AUDIT_FAILED: Counter "audit_target_failed" ["server", "target"] "Audit deliveries that failed (retried later).";
    NOTIFY_QUEUE: Gauge "notify_target_queue_length" ["server", "target"] "Bucket events waiting in the target's on-disk queue.";
    NOTIFY_SENT: Counter "notify_target_sent" ["server", "target"] "Bucket events the target accepted.";
    NOTIFY_FAILED: Counter "notify_target_failed" ["server", "target"] "Bucket event deliveries that failed (retried later).";
    NOTIFY_DROPPED: Counter "notify_target_dropped" ["server", "target"] "Bucket events dropped because the target's queue was full.";
    // Cluster: capacity and health.
    RAW_TOTAL: Gauge "cluster_capacity_raw_total_bytes" [] "Total capacity of the online drives.";
    RAW_FREE: Gauge "cluster_capacity_raw_free_bytes" [] "Free capacity of the online drives.";
    USABLE_TOTAL: Gauge "cluster_capacity_usable_total_bytes" [] "Capacity of the online drives for object data, after parity (each set's data/(data+parity)).";
    USABLE_FREE: Gauge "cluster_capacity_usable_free_bytes" [] "Free capacity for object data, after parity.";
    CLUSTER_DRIVES: Gauge "cluster_drive_total" [] "Drives in the deployment.";
    CLUSTER_DRIVES_ONLINE: Gauge "cluster_drive_online_total" [] "Drives online.";
    CLUSTER_DRIVES_OFFLINE: Gauge "cluster_drive_offline_total" [] "Drives offline.";
    CLUSTER_NODES_ONLINE: Gauge "cluster_nodes_online_total" [] "Nodes reachable from the server that answered.";
    CLUSTER_NODES_OFFLINE: Gauge "cluster_nodes_offline_total" [] "Nodes not reachable from the server that answered.";
    HEALTH: Gauge "cluster_health_status" [] "1 when every erasure set has its write quorum, 0 when not.";
    SET_DRIVES_ONLINE: Gauge "cluster_health_erasure_set_online_drives" ["pool", "set"] "Online drives of each erasure set (healing ones included).";
    SET_HEALING_DRIVES: Gauge "cluster_health_erasure_set_healing_drives" ["pool", "set"] "Drives of each erasure set being healed (replaced drives filling up).";
    SET_READ_QUORUM: Gauge "cluster_health_erasure_set_read_quorum" ["pool", "set"] "Drives each erasure set needs online to serve reads.";
    SET_WRITE_QUORUM: Gauge "cluster_health_erasure_set_write_quorum" ["pool", "set"] "Drives each erasure set needs online to take writes.";
    SET_STATUS: Gauge "cluster_health_erasure_set_status" ["pool", "set"] "1 when the erasure set has its write quorum, 0 when not.";
    SET_PARITY: Gauge "cluster_erasure_set_parity" ["pool", "set"] "Parity drives of each erasure set.";
    // Cluster: server pools, decommission and rebalance.
    POOL_USABLE_TOTAL: Gauge "cluster_pool_capacity_usable_total_bytes" ["pool"] "Capacity of a server pool for object data, after parity (pool = its 1-based number, as cairn admin pool takes it).";
    POOL_USABLE_FREE: Gauge "cluster_pool_capacity_usable_free_bytes" ["pool"] "Free capacity of a server pool for object data, after parity.";
    POOL_SETS: Gauge "cluster_pool_erasure_sets" ["pool"] "Erasure sets of a server pool.";
    POOL_STATE: Gauge "cluster_pool_state" ["pool", "state"] "1 for a server pool's current state (active, rebalancing, decommissioning, decommissioned), 0 for the others.";
    POOL_DECOM_OBJECTS: Gauge "cluster_pool_decommission_objects_moved" ["pool"] "Objects (keys with all their versions) the running or last decommission of the pool moved.";
    POOL_DECOM_BYTES: Gauge "cluster_pool_decommission_bytes_moved" ["pool"] "Bytes the running or last decommission of the pool moved.";
    POOL_DECOM_FAILED: Gauge "cluster_pool_decommission_objects_failed" ["pool"] "Objects the running or last decommission of the pool failed to move (retried on its next walk).";
    POOL_DECOM_TOTAL_OBJECTS: Gauge "cluster_pool_decommission_objects_to_move" ["pool"] "Objects the pool held when its decommission started.";
    POOL_DECOM_TOTAL_BYTES: Gauge "cluster_pool_decommission_bytes_to_move" ["pool"] "Bytes the pool held when its decommission started.";
    REBALANCE_RUNNING: Gauge "cluster_rebalance_running" [] "1 while a rebalance moves objects between pools, 0 when not.";
    REBALANCE_OBJECTS: Gauge "cluster_rebalance_objects_moved" [] "Objects the running or last rebalance moved.";
    REBALANCE_BYTES: Gauge "cluster_rebalance_bytes_moved" [] "Bytes the running or last rebalance moved.";
    KMS_ONLINE: Gauge "cluster_kms_online" [] "1 when a KMS is configured (SSE-S3 and SSE-KMS work), 0 when not.";
    // Cluster: usage (from the scanner's last cycle) and quotas.
    BUCKETS: Gauge "cluster_buckets_total" [] "Buckets in the deployment.";
    USAGE_OBJECTS: Gauge "cluster_usage_object_total" [] "Objects in the deployment at the scanner's last cycle.";
    USAGE_BYTES: Gauge "cluster_usage_total_bytes" [] "Bytes of object data in the deployment at the scanner's last cycle.";
    BUCKET_OBJECTS: Gauge "bucket_usage_object_total" ["bucket"] "Objects in the bucket at the scanner's last cycle.";
    BUCKET_BYTES: Gauge "bucket_usage_total_bytes" ["bucket"] "Bytes of object data in the bucket at the scanner's last cycle.";
    BUCKET_VERSIONS: Gauge "bucket_usage_version_total" ["bucket"] "Object versions (delete markers included) in the bucket at the scanner's last cycle.";
    BUCKET_DELETE_MARKERS: Gauge "bucket_usage_deletemarker_total" ["bucket"] "Delete markers in the bucket at the scanner's last cycle.";
    QUOTA: Gauge "bucket_quota_total_bytes" ["bucket", "prefix"] "Hard quota of a bucket or prefix.";
    QUOTA_USED: Gauge "bucket_quota_used_bytes" ["bucket", "prefix"] "Bytes counted against the quota of a bucket or prefix.";
    QUOTA_HEADROOM: Gauge "bucket_quota_headroom_bytes" ["bucket", "prefix"] "Bytes a bucket or prefix may still take before its quota refuses writes.";
    // Cluster: heal, scanner, lifecycle.
    HEAL_OBJECTS: Gauge "heal_objects_total" [] "Objects the scanner looked at since start (each checked on every drive and healed where one was behind).";
    HEAL_HEALED: Gauge "heal_objects_heal_total" [] "Objects healed since start: partial-write queue, heal sequences and replaced drives.";
    HEAL_ERRORS: Gauge "heal_objects_errors_total" [] "Objects heal could not fully repair since start.";
    HEAL_BYTES: Gauge "heal_bytes_rebuilt_total" [] "Bytes of shards heal sequences and replaced drives rebuilt.";
    MRF_QUEUE: Gauge "heal_mrf_queue_length" [] "Objects waiting in the partial-write (MRF) queue.";
    HEAL_SEQUENCE_SCANNED: Gauge "heal_sequence_scanned_objects" [] "Objects the running or last heal sequence went through.";
    HEAL_SEQUENCE_TOTAL: Gauge "heal_sequence_total_objects" [] "Objects the running or last heal sequence has to go through (once counted).";
    DRIVE_HEAL_OBJECTS: Gauge "heal_drive_objects_healed" ["drive"] "Objects rebuilt onto a replaced drive.";
    DRIVE_HEAL_BYTES: Gauge "heal_drive_bytes_healed" ["drive"] "Bytes rebuilt onto a replaced drive.";
    DRIVE_HEAL_DONE: Gauge "heal_drive_finished" ["drive"] "1 when a replaced drive is fully healed.";
    SCANNER_CYCLES: Counter "scanner_cycles" ["server"] "Scanner cycles finished on this server since start.";
    SCANNER_LAST_CYCLE: Gauge "scanner_last_cycle_seconds" ["server"] "How long the scanner's last cycle took.";
    SCANNER_LAST_FINISHED: Gauge "scanner_last_cycle_end_seconds" ["server"] "When the scanner's last cycle ended, seconds since the Unix epoch.";
    SCANNER_OBJECTS: Gauge "scanner_cycle_objects" ["server"] "Objects the running scanner cycle went through so far.";
    SCANNER_BUCKETS: Gauge "scanner_cycle_buckets" ["server"] "Buckets the running scanner cycle finished so far.";
    ILM_PASSES: Gauge "ilm_passes_total" [] "Lifecycle passes finished since start.";
    ILM_EXPIRED: Gauge "ilm_expired_versions_total" [] "Versions and delete markers lifecycle passes expired since start.";
    ILM_ABORTED: Gauge "ilm_uploads_aborted_total" [] "Incomplete multipart uploads lifecycle passes aborted since start.";
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_unique_valid_and_documented() {
        let doc =
            std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/docs/operations.md"))
                .expect("docs/operations.md");
        let mut seen = std::collections::BTreeSet::new();
        for d in ALL {
            assert!(seen.insert(d.name), "{} twice", d.name);
            assert!(
                d.name
                    .chars()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_'),
                "{}",
                d.name
            );
            assert!(!d.help.is_empty() && d.help.ends_with('.'), "{}", d.name);
            if d.kind == Kind::Counter {
                assert!(!d.name.ends_with("_total"), "{} gets _total twice", d.name);
            }
            let full = d.full_name("cairn");
            assert!(
                doc.contains(&format!("`{full}`")),
                "{full} missing from docs/operations.md"
            );
        }
    }

    /// Every series the Grafana dashboard queries is one Cairn exposes.
    #[test]
    fn the_dashboard_queries_only_metrics_that_exist() {
        let dash = std::fs::read_to_string(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/deploy/grafana/cairn-dashboard.json"
        ))
        .expect("deploy/grafana/cairn-dashboard.json");
        let mut series = std::collections::BTreeSet::new();
        for d in ALL {
            let full = d.full_name("cairn");
            if d.kind == Kind::Histogram {
                for s in ["_bucket", "_sum", "_count"] {
                    series.insert(format!("{full}{s}"));
                }
            }
            series.insert(full);
        }
        let mut used = 0;
        for (i, _) in dash.match_indices("cairn_") {
            let name: String = dash[i..]
                .chars()
                .take_while(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == '_')
                .collect();
            assert!(
                series.contains(&name),
                "the dashboard queries {name}, which does not exist"
            );
            used += 1;
        }
        assert!(used > 30, "{used}");
    }
}
