//! Prometheus metrics end to end: the real binary scraped over HTTP with the bearer token
//! `cairn admin prometheus token` makes, every scrape parsed by the Python
//! `prometheus_client` parsers (Prometheus text and OpenMetrics), values checked to move
//! with real S3 traffic, a drive going offline seen in the cluster scrape, refusals of
//! missing, forged and under-privileged tokens, and a 2-node cluster scrape that carries
//! both nodes' requests.

use std::collections::BTreeMap;
use std::process::{Command, Stdio};
use std::time::Duration;

use aws_sdk_s3::primitives::ByteStream;
use cairn_integration::{
    admin, client, client_for, require_tool, unplug, wait_until, Cluster, Server,
};

/// A parsed scrape: `name{label="v",...}` (labels sorted) → value.
type Samples = BTreeMap<String, f64>;

/// Parse `text` with the Python Prometheus client (`openmetrics`: its OpenMetrics parser,
/// which also insists on `# EOF`); `None` when Python or the package is missing outside CI.
fn parse(text: &str, openmetrics: bool) -> Option<Samples> {
    const SCRIPT: &str = r#"
import json, sys
if sys.argv[1] == "openmetrics":
    from prometheus_client.openmetrics.parser import text_string_to_metric_families
else:
    from prometheus_client.parser import text_string_to_metric_families
out = {}
for family in text_string_to_metric_families(sys.stdin.read()):
    for s in family.samples:
        labels = ",".join('%s="%s"' % (k, v) for k, v in sorted(s.labels.items()))
        out["%s{%s}" % (s.name, labels)] = s.value
print(json.dumps(out))
"#;
    if !require_tool("python3") {
        return None;
    }
    let mut child = Command::new("python3")
        .arg("-c")
        .arg(SCRIPT)
        .arg(if openmetrics { "openmetrics" } else { "text" })
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("python3");
    {
        use std::io::Write;
        let mut stdin = child.stdin.take().expect("stdin");
        stdin.write_all(text.as_bytes()).expect("write scrape");
    }
    let out = child.wait_with_output().expect("python3");
    let err = String::from_utf8_lossy(&out.stderr);
    if err.contains("No module named 'prometheus_client'") {
        assert!(
            std::env::var_os("CI").is_none(),
            "prometheus_client is required under CI"
        );
        eprintln!("SKIPPED: prometheus_client not importable");
        return None;
    }
    assert!(
        out.status.success(),
        "the parser refused the scrape: {err}\n{text}"
    );
    Some(serde_json::from_slice(&out.stdout).expect("parser output"))
}

/// GET `path` with an optional bearer token and `Accept`; (status, body).
fn get(endpoint: &str, path: &str, token: Option<&str>, accept: Option<&str>) -> (u16, String) {
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .build()
        .into();
    let mut req = agent.get(format!("{endpoint}{path}"));
    if let Some(t) = token {
        req = req.header("authorization", format!("Bearer {t}"));
    }
    if let Some(a) = accept {
        req = req.header("accept", a);
    }
    let mut resp = req.call().expect("scrape");
    let status = resp.status().as_u16();
    (status, resp.body_mut().read_to_string().expect("body"))
}

/// Scrape and parse, in Prometheus text or OpenMetrics.
fn scrape(endpoint: &str, path: &str, token: Option<&str>, openmetrics: bool) -> Option<Samples> {
    let accept = openmetrics.then_some("application/openmetrics-text; version=1.0.0");
    let (status, body) = get(endpoint, path, token, accept);
    assert_eq!(status, 200, "{path}: {body}");
    parse(&body, openmetrics)
}

/// The value of `name` with exactly `labels` (sorted by name), 0 if absent.
fn value(s: &Samples, name: &str, labels: &[(&str, &str)]) -> f64 {
    let mut l: Vec<_> = labels.to_vec();
    l.sort();
    let key = format!(
        "{name}{{{}}}",
        l.iter()
            .map(|(k, v)| format!("{k}=\"{v}\""))
            .collect::<Vec<_>>()
            .join(",")
    );
    s.get(&key).copied().unwrap_or(0.0)
}

/// Every sample of `name` (any labels).
fn all<'a>(s: &'a Samples, name: &'a str) -> impl Iterator<Item = (&'a String, f64)> + 'a {
    let prefix = format!("{name}{{");
    s.iter()
        .filter(move |(k, _)| k.starts_with(&prefix))
        .map(|(k, v)| (k, *v))
}

fn token(endpoint: &str, extra: &[&str]) -> String {
    let mut args = vec!["prometheus", "token", "--token-only"];
    args.extend_from_slice(extra);
    let (code, out) = admin(endpoint, &args);
    assert_eq!(code, 0, "{out}");
    out.trim().to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scrapes_parse_move_with_traffic_and_need_a_token() {
    let server = Server::start();
    let ep = server.endpoint.clone();

    // The scrape configuration `cairn admin prometheus token` prints.
    let (code, config) = admin(&ep, &["prometheus", "token"]);
    assert_eq!(code, 0, "{config}");
    assert!(
        config.contains("metrics_path: /cairn/v1/metrics/cluster"),
        "{config}"
    );
    assert!(config.contains("bearer_token: ey"), "{config}");
    let port = ep.rsplit(':').next().expect("port");
    assert!(
        config.contains(&format!("targets: ['127.0.0.1:{port}']")),
        "{config}"
    );
    let root_token = token(&ep, &[]);

    // Refusals: no token, a forged one, an expired one, a user without admin:Prometheus.
    for path in ["/cairn/v1/metrics/cluster", "/minio/v2/metrics/node"] {
        let (status, body) = get(&ep, path, None, None);
        assert_eq!(status, 403, "{body}");
        assert!(
            body.contains("<Code>AccessDenied</Code>") && body.contains("bearer token"),
            "{body}"
        );
    }
    let mut forged: Vec<&str> = root_token.split('.').collect();
    forged[2] = "AAAA";
    let (status, _) = get(&ep, "/cairn/v1/metrics/node", Some(&forged.join(".")), None);
    assert_eq!(status, 403);
    let expired = token(&ep, &["--expiry", "1"]);
    tokio::time::sleep(Duration::from_millis(2100)).await;
    let (status, body) = get(&ep, "/cairn/v1/metrics/node", Some(&expired), None);
    assert_eq!(status, 403, "{body}");
    assert!(body.contains("expired"), "{body}");
    let (code, out) = admin(&ep, &["user", "add", "reader", "reader-secret-1"]);
    assert_eq!(code, 0, "{out}");
    let (code, out) = admin(&ep, &["policy", "attach", "readonly", "--user", "reader"]);
    assert_eq!(code, 0, "{out}");
    let reader_token = |ep: &str| {
        let out = Command::new(cairn_integration::binary())
            .args([
                "admin",
                "prometheus",
                "token",
                "--token-only",
                "--endpoint",
                ep,
            ])
            .env("CAIRN_ROOT_USER", "reader")
            .env("CAIRN_ROOT_PASSWORD", "reader-secret-1")
            .output()
            .expect("token");
        String::from_utf8_lossy(&out.stdout).trim().to_string()
    };
    let (status, body) = get(
        &ep,
        "/cairn/v1/metrics/node",
        Some(&reader_token(&ep)),
        None,
    );
    assert_eq!(status, 403, "{body}");
    assert!(body.contains("admin:Prometheus"), "{body}");
    // Allowed once a policy grants admin:Prometheus.
    let work = tempfile::tempdir().expect("tempdir");
    let policy = work.path().join("prom.json");
    std::fs::write(
        &policy,
        r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":["admin:Prometheus"],"Resource":["arn:aws:s3:::*"]}]}"#,
    )
    .expect("policy");
    let policy = policy.to_string_lossy().into_owned();
    let (code, out) = admin(&ep, &["policy", "create", "prom", &policy]);
    assert_eq!(code, 0, "{out}");
    let (code, out) = admin(&ep, &["policy", "attach", "prom", "--user", "reader"]);
    assert_eq!(code, 0, "{out}");
    let (status, body) = get(
        &ep,
        "/cairn/v1/metrics/node",
        Some(&reader_token(&ep)),
        None,
    );
    assert_eq!(status, 200, "{body}");

    let Some(before) = scrape(&ep, "/cairn/v1/metrics/cluster", Some(&root_token), false) else {
        return;
    };

    // Traffic: 6 PUTs of 1 MiB, 18 GETs, 2 GETs of a missing key.
    let s3 = client(&server);
    s3.create_bucket()
        .bucket("metrics")
        .send()
        .await
        .expect("create");
    let body = vec![7u8; 1 << 20];
    for i in 0..6 {
        s3.put_object()
            .bucket("metrics")
            .key(format!("k{i}"))
            .body(ByteStream::from(body.clone()))
            .send()
            .await
            .expect("put");
    }
    for i in 0..18 {
        let o = s3
            .get_object()
            .bucket("metrics")
            .key(format!("k{}", i % 6))
            .send()
            .await
            .expect("get");
        let got = o.body.collect().await.expect("body").into_bytes();
        assert_eq!(got.len(), body.len());
    }
    for _ in 0..2 {
        let e = s3
            .get_object()
            .bucket("metrics")
            .key("missing")
            .send()
            .await
            .expect_err("missing key");
        assert_eq!(e.into_service_error().meta().code(), Some("NoSuchKey"));
    }

    let after =
        scrape(&ep, "/cairn/v1/metrics/cluster", Some(&root_token), false).expect("parsed before");
    let moved = |name: &str, labels: &[(&str, &str)]| {
        value(&after, name, labels) - value(&before, name, labels)
    };
    let get_l = [("server", "local"), ("api", "GetObject")];
    let put_l = [("server", "local"), ("api", "PutObject")];
    assert_eq!(moved("cairn_s3_requests_total", &get_l), 20.0);
    assert_eq!(moved("cairn_s3_requests_4xx_errors_total", &get_l), 2.0);
    assert_eq!(moved("cairn_s3_requests_errors_total", &get_l), 2.0);
    assert_eq!(moved("cairn_s3_requests_5xx_errors_total", &get_l), 0.0);
    assert_eq!(moved("cairn_s3_requests_total", &put_l), 6.0);
    assert_eq!(
        moved(
            "cairn_s3_errors_total",
            &[("server", "local"), ("code", "NoSuchKey")]
        ),
        2.0
    );
    // Every GET ran to its end: none counted as canceled, each in the histograms.
    assert_eq!(moved("cairn_s3_requests_canceled_total", &get_l), 0.0);
    assert_eq!(
        moved("cairn_s3_requests_duration_seconds_count", &get_l),
        20.0
    );
    assert_eq!(
        moved("cairn_s3_requests_ttfb_seconds_distribution_count", &get_l),
        20.0
    );
    let le_inf = [("server", "local"), ("api", "GetObject"), ("le", "+Inf")];
    assert_eq!(
        moved("cairn_s3_requests_duration_seconds_bucket", &le_inf),
        20.0
    );
    assert!(moved("cairn_s3_requests_duration_seconds_sum", &get_l) > 0.0);
    let sent = moved("cairn_s3_traffic_sent_bytes", &[("server", "local")]);
    assert!(sent >= 18.0 * (1 << 20) as f64, "sent {sent}");
    let received = moved("cairn_s3_traffic_received_bytes", &[("server", "local")]);
    assert!(received >= 6.0 * (1 << 20) as f64, "received {received}");
    assert_eq!(
        value(
            &after,
            "cairn_s3_requests_inflight_total",
            &[("server", "local")]
        ),
        0.0
    );
    // The deployment.
    assert_eq!(value(&after, "cairn_cluster_drive_total", &[]), 4.0);
    assert_eq!(value(&after, "cairn_cluster_drive_online_total", &[]), 4.0);
    assert_eq!(value(&after, "cairn_cluster_health_status", &[]), 1.0);
    assert_eq!(value(&after, "cairn_cluster_buckets_total", &[]), 1.0);
    let raw = value(&after, "cairn_cluster_capacity_raw_total_bytes", &[]);
    let usable = value(&after, "cairn_cluster_capacity_usable_total_bytes", &[]);
    assert!(
        raw > 0.0 && (usable - raw / 2.0).abs() < 1.0,
        "raw {raw} usable {usable}"
    );

    // The node: its drives, their latency, the process; and OpenMetrics parses too.
    let node = scrape(&ep, "/cairn/v1/metrics/node", Some(&root_token), true).expect("parsed");
    let drives: Vec<_> = all(&node, "cairn_node_drive_online").collect();
    assert_eq!(drives.len(), 4, "{drives:?}");
    assert!(drives.iter().all(|(_, v)| *v == 1.0), "{drives:?}");
    assert_eq!(
        value(
            &node,
            "cairn_node_drive_online_total",
            &[("server", "local")]
        ),
        4.0
    );
    assert_eq!(
        all(&node, "cairn_node_drive_free_bytes")
            .filter(|(_, v)| *v > 0.0)
            .count(),
        4
    );
    assert_eq!(
        all(&node, "cairn_node_drive_free_inodes")
            .filter(|(_, v)| *v > 0.0)
            .count(),
        4
    );
    let data_calls: f64 = all(&node, "cairn_node_drive_latency_seconds_count")
        .filter(|(k, _)| k.contains("class=\"data\""))
        .map(|(_, v)| v)
        .sum();
    assert!(
        data_calls >= 6.0 * 4.0,
        "shard writes and reads counted: {data_calls}"
    );
    // Every PUT waits for its key's write lock, and a GET of an absent key asks again under
    // the read lock; GETs of the 1 MiB objects (one erasure block) read without one.
    let lock_waits = value(
        &node,
        "cairn_node_lock_wait_seconds_count",
        &[("server", "local")],
    );
    assert!(lock_waits >= 8.0, "lock waits counted: {lock_waits}");
    assert!(
        value(
            &node,
            "cairn_node_process_resident_memory_bytes",
            &[("server", "local")]
        ) > 1e6
    );
    assert!(
        value(
            &node,
            "cairn_node_process_uptime_seconds",
            &[("server", "local")]
        ) > 0.0
    );
    assert!(value(&node, "cairn_node_go_routine_total", &[("server", "local")]) >= 1.0);
    assert_eq!(
        value(
            &node,
            "cairn_software_version_info",
            &[("server", "local"), ("version", env!("CARGO_PKG_VERSION"))]
        ),
        1.0
    );
    // An OpenMetrics counter's samples keep `_total`.
    assert!(value(&node, "cairn_s3_requests_total", &get_l) >= 20.0);

    // MinIO's paths: the same samples under MinIO's names.
    let minio = scrape(&ep, "/minio/v2/metrics/cluster", Some(&root_token), false).expect("parsed");
    assert!(value(&minio, "minio_s3_requests_total", &get_l) >= 20.0);
    assert_eq!(value(&minio, "minio_cluster_drive_total", &[]), 4.0);
    assert!(!minio.keys().any(|k| k.starts_with("cairn_")));
    // MinIO's erasure set health names: one set of 4 drives at EC 2+2, all online.
    let set = [("pool", "1"), ("set", "0")];
    for (name, want) in [
        ("minio_cluster_health_erasure_set_online_drives", 4.0),
        ("minio_cluster_health_erasure_set_healing_drives", 0.0),
        ("minio_cluster_health_erasure_set_read_quorum", 2.0),
        ("minio_cluster_health_erasure_set_write_quorum", 3.0),
        ("minio_cluster_health_erasure_set_status", 1.0),
    ] {
        let key = format!("{name}{{pool=\"1\",set=\"0\"}}");
        assert_eq!(minio.get(&key).copied(), Some(want), "{name} {set:?}");
    }
    assert!(minio.contains_key(
        "minio_s3_requests_ttfb_seconds_distribution_count{api=\"GetObject\",server=\"local\"}"
    ));
    // The bucket path: only per-bucket samples; the resource path: refused, not faked.
    let bucket = scrape(&ep, "/minio/v2/metrics/bucket", Some(&root_token), false).expect("parsed");
    assert!(
        bucket.keys().all(|k| k.starts_with("minio_bucket_")),
        "{bucket:?}"
    );
    let (status, body) = get(&ep, "/minio/v2/metrics/resource", Some(&root_token), None);
    assert_eq!(status, 501, "{body}");
    assert!(body.contains("<Code>NotImplemented</Code>"), "{body}");
    // The scheme of `Authorization: bearer` is case-insensitive (RFC 9110).
    let lower = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .build()
        .new_agent()
        .get(format!("{ep}/minio/v2/metrics/cluster"))
        .header("authorization", format!("bearer {root_token}"))
        .call()
        .expect("scrape");
    assert_eq!(lower.status(), 200);

    // Signed S3 requests on the metrics paths stay S3's: a bucket named `minio`.
    s3.create_bucket()
        .bucket("minio")
        .send()
        .await
        .expect("create minio");
    s3.put_object()
        .bucket("minio")
        .key("v2/metrics/node")
        .body(ByteStream::from_static(b"an object, not a scrape"))
        .send()
        .await
        .expect("put on a metrics path");
    let o = s3
        .get_object()
        .bucket("minio")
        .key("v2/metrics/node")
        .send()
        .await
        .expect("get on a metrics path");
    let got = o.body.collect().await.expect("body").into_bytes();
    assert_eq!(&got[..], b"an object, not a scrape");

    // A drive gone: the cluster scrape shows it offline, the set still has write quorum.
    let drive = server.drives[3].clone();
    unplug(&drive);
    wait_until("the drive to show offline", Duration::from_secs(20), || {
        let s = scrape(&ep, "/cairn/v1/metrics/cluster", Some(&root_token), false).expect("parsed");
        value(&s, "cairn_cluster_drive_offline_total", &[]) == 1.0
            && value(&s, "cairn_cluster_drive_online_total", &[]) == 3.0
            && value(&s, "cairn_cluster_health_status", &[]) == 1.0
    });
    let node = scrape(&ep, "/cairn/v1/metrics/node", Some(&root_token), false).expect("parsed");
    assert_eq!(
        value(
            &node,
            "cairn_node_drive_offline_total",
            &[("server", "local")]
        ),
        1.0
    );
    let _ = server.terminate();

    // Public scrapes when asked for.
    let open = Server::start_with(4, &[("CAIRN_PROMETHEUS_AUTH_TYPE", "public")]);
    let s = scrape(&open.endpoint, "/minio/v2/metrics/node", None, false).expect("parsed");
    assert_eq!(
        value(&s, "minio_node_drive_online_total", &[("server", "local")]),
        4.0
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cluster_scrape_carries_every_nodes_requests() {
    let cluster = Cluster::start(2, 2, &[]);
    let (a, b) = (cluster.endpoint(0), cluster.endpoint(1));
    let access = cairn_integration::ACCESS_KEY;
    let secret = cairn_integration::SECRET_KEY;
    let s3b = client_for(&b, access, secret, true);
    s3b.create_bucket()
        .bucket("both")
        .send()
        .await
        .expect("create");
    for i in 0..5 {
        s3b.put_object()
            .bucket("both")
            .key(format!("k{i}"))
            .body(ByteStream::from(vec![1u8; 4096]))
            .send()
            .await
            .expect("put");
    }
    let t = token(&a, &[]);
    let Some(s) = scrape(&a, "/cairn/v1/metrics/cluster", Some(&t), false) else {
        return;
    };
    let (host_a, host_b) = (&cluster.hosts[0], &cluster.hosts[1]);
    assert_eq!(
        value(
            &s,
            "cairn_s3_requests_total",
            &[("server", host_b), ("api", "PutObject")]
        ),
        5.0,
        "node B's requests in node A's cluster scrape"
    );
    assert_eq!(
        value(
            &s,
            "cairn_s3_requests_total",
            &[("server", host_a), ("api", "PutObject")]
        ),
        0.0
    );
    assert_eq!(value(&s, "cairn_cluster_nodes_online_total", &[]), 2.0);
    assert_eq!(value(&s, "cairn_cluster_drive_total", &[]), 4.0);
    // Node A's own scrape: its calls to B, with latencies.
    let n = scrape(&a, "/cairn/v1/metrics/node", Some(&t), false).expect("parsed");
    let calls = value(
        &n,
        "cairn_inter_node_calls_total",
        &[("server", host_a), ("peer", host_b)],
    );
    assert!(calls > 0.0, "{calls}");
    assert_eq!(
        value(
            &n,
            "cairn_inter_node_peer_online",
            &[("server", host_a), ("peer", host_b)]
        ),
        1.0
    );
    // Only A's own drives are node metrics.
    assert_eq!(all(&n, "cairn_node_drive_online").count(), 2);
}

/// The scanner's usage counts every version and delete marker of a versioned bucket.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scanner_usage_counts_versions_and_delete_markers() {
    let server = Server::start_with(
        4,
        &[
            ("CAIRN_PROMETHEUS_AUTH_TYPE", "public"),
            ("CAIRN_SCANNER_INTERVAL", "1s"),
        ],
    );
    let c = client(&server);
    c.create_bucket()
        .bucket("usage")
        .send()
        .await
        .expect("create");
    cairn_integration::enable_versioning(&c, "usage").await;
    for key in ["k", "k", "j"] {
        c.put_object()
            .bucket("usage")
            .key(key)
            .body(ByteStream::from_static(b"v"))
            .send()
            .await
            .expect("put");
    }
    c.delete_object()
        .bucket("usage")
        .key("k")
        .send()
        .await
        .expect("delete marker");
    let (mut last, mut parsed) = (None, true);
    wait_until(
        "a scanner cycle counted the versions",
        Duration::from_secs(60),
        || {
            let Some(s) = scrape(&server.endpoint, "/cairn/v1/metrics/cluster", None, false) else {
                parsed = false;
                return true;
            };
            let b = [("bucket", "usage")];
            let got = (
                value(&s, "cairn_bucket_usage_version_total", &b),
                value(&s, "cairn_bucket_usage_deletemarker_total", &b),
                // Objects as a listing shows them: `k`'s latest is a delete marker.
                value(&s, "cairn_bucket_usage_object_total", &b),
            );
            last = Some(got);
            got == (4.0, 1.0, 1.0)
        },
    );
    if parsed {
        assert_eq!(last, Some((4.0, 1.0, 1.0)));
        // The bucket path carries the same per-bucket samples, and only those.
        let b = scrape(&server.endpoint, "/minio/v2/metrics/bucket", None, false).expect("parsed");
        assert_eq!(
            value(
                &b,
                "minio_bucket_usage_object_total",
                &[("bucket", "usage")]
            ),
            1.0
        );
        assert!(b.keys().all(|k| k.starts_with("minio_bucket_")), "{b:?}");
        let c = scrape(&server.endpoint, "/minio/v2/metrics/cluster", None, false).expect("parsed");
        assert!(value(&c, "minio_heal_objects_total", &[]) >= 2.0, "{c:?}");
    }
}
