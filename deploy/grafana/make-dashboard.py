#!/usr/bin/env python3
"""Writes cairn-dashboard.json beside this script: a Grafana dashboard over Cairn's Prometheus
metrics (docs/operations.md lists them). Run it after changing the panels; a unit test
(src/metrics/names.rs) checks that every metric the dashboard queries exists."""
import json
import os

panels = []
y = 0
DS = {"type": "prometheus", "uid": "${DS_PROMETHEUS}"}
J = 'job=~"$job"'


def sel(extra=""):
    return "{" + J + extra + "}"


def ts(title, exprs, unit="short", x=0, w=12, h=8):
    panels.append({
        "type": "timeseries", "title": title, "datasource": DS,
        "gridPos": {"h": h, "w": w, "x": x, "y": y},
        "fieldConfig": {"defaults": {"unit": unit}, "overrides": []},
        "targets": [{"expr": e, "legendFormat": l, "refId": chr(65 + i)}
                    for i, (e, l) in enumerate(exprs)],
    })


def stat(title, expr, unit="short", x=0, w=4, h=4):
    panels.append({
        "type": "stat", "title": title, "datasource": DS,
        "gridPos": {"h": h, "w": w, "x": x, "y": y},
        "fieldConfig": {"defaults": {"unit": unit}, "overrides": []},
        "targets": [{"expr": expr, "refId": "A"}],
    })


def rate(metric, extra=""):
    return "rate(" + metric + sel(extra) + "[$__rate_interval])"


def p(q, metric, by, extra=""):
    return "histogram_quantile(%s, sum by (%s) (%s))" % (q, by, rate(metric, extra))


stat("Usable capacity", "max(cairn_cluster_capacity_usable_total_bytes%s)" % sel(), "bytes", x=0)
stat("Usable free", "max(cairn_cluster_capacity_usable_free_bytes%s)" % sel(), "bytes", x=4)
stat("Drives online", "max(cairn_cluster_drive_online_total%s)" % sel(), x=8)
stat("Drives offline", "max(cairn_cluster_drive_offline_total%s)" % sel(), x=12)
stat("Nodes online", "max(cairn_cluster_nodes_online_total%s)" % sel(), x=16)
stat("Write quorum (1 = yes)", "min(cairn_cluster_health_status%s)" % sel(), x=20)
y += 4
stat("Objects", "max(cairn_cluster_usage_object_total%s)" % sel(), x=0)
stat("Data stored", "max(cairn_cluster_usage_total_bytes%s)" % sel(), "bytes", x=4)
stat("Buckets", "max(cairn_cluster_buckets_total%s)" % sel(), x=8)
stat("MRF queue", "max(cairn_heal_mrf_queue_length%s)" % sel(), x=12)
stat("Objects healed", "max(cairn_heal_objects_heal_total%s)" % sel(), x=16)
stat("Uptime (youngest node)", "min(cairn_node_process_uptime_seconds%s)" % sel(), "s", x=20)
y += 4
ts("S3 requests/s by API", [("sum by (api) (%s)" % rate("cairn_s3_requests_total"), "{{api}}")], "reqps", x=0)
ts("S3 errors/s", [
    ("sum(%s)" % rate("cairn_s3_requests_4xx_errors_total"), "4xx"),
    ("sum(%s)" % rate("cairn_s3_requests_5xx_errors_total"), "5xx"),
    ("sum by (code) (%s)" % rate("cairn_s3_errors_total"), "{{code}}"),
], "reqps", x=12)
y += 8
ts("Time to first byte p99 by API",
   [(p(0.99, "cairn_s3_requests_ttfb_seconds_distribution_bucket", "api, le"), "{{api}}")], "s", x=0)
ts("Request duration p50 / p99", [
    (p(0.5, "cairn_s3_requests_duration_seconds_bucket", "le"), "p50"),
    (p(0.99, "cairn_s3_requests_duration_seconds_bucket", "le"), "p99"),
], "s", x=12)
y += 8
ts("S3 traffic", [
    ("sum by (server) (%s)" % rate("cairn_s3_traffic_received_bytes"), "in {{server}}"),
    ("sum by (server) (%s)" % rate("cairn_s3_traffic_sent_bytes"), "out {{server}}"),
], "Bps", x=0)
ts("Requests in flight", [("sum by (server) (cairn_s3_requests_inflight_total%s)" % sel(), "{{server}}")], x=12)
y += 8
ts("Drive latency p99 (shard data)",
   [(p(0.99, "cairn_node_drive_latency_seconds_bucket", "server, drive, le", ',class="data"'), "{{drive}}")], "s", x=0)
ts("Drive latency p99 (metadata)",
   [(p(0.99, "cairn_node_drive_latency_seconds_bucket", "server, drive, le", ',class="meta"'), "{{drive}}")], "s", x=12)
y += 8
ts("Drive free space", [("cairn_node_drive_free_bytes%s" % sel(), "{{drive}}")], "bytes", x=0)
ts("Drive timeouts and offline transitions", [
    ("increase(cairn_node_drive_timeouts_total%s[$__rate_interval])" % sel(), "timeouts {{drive}}"),
    ("increase(cairn_node_drive_offline_transitions_total%s[$__rate_interval])" % sel(), "offline {{drive}}"),
], x=12)
y += 8
ts("Internode call latency p99",
   [(p(0.99, "cairn_inter_node_latency_seconds_bucket", "server, peer, le"), "{{server}} → {{peer}}")], "s", x=0)
ts("Internode errors/s", [(rate("cairn_inter_node_traffic_errors_total"), "{{server}} → {{peer}}")], x=12)
y += 8
ts("Lock wait p99", [(p(0.99, "cairn_node_lock_wait_seconds_bucket", "server, le"), "{{server}}")], "s", x=0)
ts("Resident memory", [("cairn_node_process_resident_memory_bytes%s" % sel(), "{{server}}")], "bytes", x=12)
y += 8
ts("CPU (cores busy)", [(rate("cairn_node_process_cpu_total_seconds"), "{{server}}")], x=0)
ts("Heal", [
    ("max(cairn_heal_objects_heal_total%s)" % sel(), "healed"),
    ("max(cairn_heal_objects_errors_total%s)" % sel(), "failed"),
    ("max(cairn_heal_mrf_queue_length%s)" % sel(), "MRF queue"),
    ("max by (drive) (cairn_heal_drive_objects_healed%s)" % sel(), "replaced {{drive}}"),
], x=12)
y += 8
ts("Bucket usage", [("max by (bucket) (cairn_bucket_usage_total_bytes%s)" % sel(), "{{bucket}}")], "bytes", x=0)
ts("Quota headroom", [("min by (bucket, prefix) (cairn_bucket_quota_headroom_bytes%s)" % sel(),
                       "{{bucket}}/{{prefix}}")], "bytes", x=12)
y += 8
ts("Scanner cycle time", [("cairn_scanner_last_cycle_seconds%s" % sel(), "{{server}}")], "s", x=0)
ts("Lifecycle (since start)", [
    ("max(cairn_ilm_expired_versions_total%s)" % sel(), "versions expired"),
    ("max(cairn_ilm_uploads_aborted_total%s)" % sel(), "uploads aborted"),
], x=12)

for i, panel in enumerate(panels):
    panel["id"] = i + 1
dashboard = {
    "__inputs": [{"name": "DS_PROMETHEUS", "label": "Prometheus", "type": "datasource",
                  "pluginId": "prometheus", "pluginName": "Prometheus"}],
    "title": "Cairn", "uid": "cairn-overview",
    "description": "Cairn object storage: requests, capacity, drives, heal "
                   "(/cairn/v1/metrics/cluster and /cairn/v1/metrics/node).",
    "editable": True, "schemaVersion": 39, "version": 1,
    "time": {"from": "now-3h", "to": "now"}, "refresh": "30s", "tags": ["cairn", "s3"],
    "templating": {"list": [{
        "name": "job", "type": "query", "datasource": DS,
        "query": "label_values(cairn_software_version_info, job)",
        "definition": "label_values(cairn_software_version_info, job)",
        "includeAll": True, "multi": True, "refresh": 2,
        "current": {"text": "All", "value": "$__all"},
    }]},
    "panels": panels,
}
out = os.path.join(os.path.dirname(os.path.abspath(__file__)), "cairn-dashboard.json")
with open(out, "w") as f:
    json.dump(dashboard, f, indent=2, ensure_ascii=False)
    f.write("\n")
