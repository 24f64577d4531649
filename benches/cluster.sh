#!/usr/bin/env bash
# Distributed vs single node on this machine: a 4-node loopback cluster (4 processes x 2
# drive folders, EC 4+4) against one process over the same 8 drive folders (EC 4+4), both
# driven by `cairn bench` through one endpoint, in the same run.
#
#   bash benches/cluster.sh                    # 15 s per measurement, one round
#   DURATION=10s ROUNDS=3 ONLY=get bash benches/cluster.sh
#
# ROUNDS alternates single and cluster that many times and prints each round's figures and
# the median ratio per row (single rounds on this 2-core box scatter by ±10 %).
# ONLY=get|put measures one operation. CAIRN_BIN=PATH measures another build (a before/after).
set -euo pipefail
cd "$(dirname "$0")/.."
if [ -z "${CAIRN_BIN:-}" ]; then
  cargo build --release --bin cairn >/dev/null
fi
BIN="${CAIRN_BIN:-$PWD/target/release/cairn}"
DURATION=${DURATION:-15s}
ROUNDS=${ROUNDS:-1}
OPS=${ONLY:-put get}
export CAIRN_ROOT_USER=benchadmin CAIRN_ROOT_PASSWORD=bench-secret-123 CAIRN_SCANNER=off
work=$(mktemp -d)
pids=()
cleanup() { kill "${pids[@]}" 2>/dev/null || true; wait 2>/dev/null || true; rm -rf "$work"; }
trap cleanup EXIT

wait_ready() {
  for _ in $(seq 1 200); do
    curl -sf "$1/health/ready" >/dev/null && return 0
    sleep 0.1
  done
  echo "server at $1 did not become ready" >&2
  exit 1
}

# Both servers must report the layout the comparison is about: one set of 8 drives.
same_layout() {
  if ! grep -q "Layout: *1 set(s) x 8 drives, EC 4+4" "$1"; then
    echo "unexpected layout in $1:" >&2
    grep "Layout" "$1" >&2 || true
    exit 1
  fi
}

# op size -> "MiB/s ops/s p50ms p99ms"
run() {
  "$BIN" bench --endpoint "$1" --op "$2" --size "$3" --concurrency 8 --duration "$DURATION" \
    --objects 64 --bucket "bench-$2" --json "$work/out.json" >/dev/null 2>&1
  python3 - "$work/out.json" "$2" <<'PY'
import json, sys
r = json.load(open(sys.argv[1]))
s = r["ops"][sys.argv[2].upper()] if sys.argv[2].upper() in r["ops"] else next(iter(r["ops"].values()))
errs = sum(s["errors"].values())
print(f'{s["throughput_mib_s"]:.1f} {s["objects_s"]:.0f} {s["latency_ms"]["p50"]:.2f} {s["latency_ms"]["p99"]:.2f}' + (f' errors={errs}' if errs else ''))
PY
}

stop_all() { kill "${pids[@]}" 2>/dev/null || true; wait 2>/dev/null || true; pids=(); }

: > "$work/rows"
for round in $(seq 1 "$ROUNDS"); do
  # One node, 8 folders.
  rm -rf "$work/single" "$work"/n?
  "$BIN" server --address 127.0.0.1:9300 "$work/single/d{1...8}" >"$work/single.log" 2>&1 &
  pids+=($!)
  wait_ready http://127.0.0.1:9300
  same_layout "$work/single.log"
  declare -A single=()
  for op in $OPS; do
    for size in 1MiB 4KiB; do
      single[$op,$size]=$(run http://127.0.0.1:9300 "$op" "$size")
    done
  done
  stop_all

  # Four nodes, 2 folders each, the same 8 folders' worth.
  # Every drive named on its own (no `{1...n}`): one pool, one set of 8. (An argument
  # with an ellipsis is a server pool of its own, so `http://host:port/n1/d{1...2}` per node
  # would make 4 pools of 2 drives, each on one node.)
  args=()
  for n in 1 2 3 4; do
    for d in 1 2; do args+=("http://127.0.0.1:93$((10 + n))$work/n$n/d$d"); done
  done
  for n in 1 2 3 4; do
    "$BIN" server --address "127.0.0.1:93$((10 + n))" "${args[@]}" >"$work/node$n.log" 2>&1 &
    pids+=($!)
  done
  for n in 1 2 3 4; do wait_ready "http://127.0.0.1:93$((10 + n))"; done
  same_layout "$work/node1.log"
  for op in $OPS; do
    for size in 1MiB 4KiB; do
      c=$(run http://127.0.0.1:9311 "$op" "$size")
      echo "$round|$op|$size|${single[$op,$size]}|$c" >> "$work/rows"
    done
  done
  stop_all
done

python3 - "$work/rows" <<'PY'
import statistics, sys
rows = [l.strip().split("|") for l in open(sys.argv[1]) if l.strip()]
print("| round | op | size | 1 node, 8 drives (MiB/s, ops/s, p50 ms, p99 ms) | 4 nodes x 2 drives | ratio (ops/s) |")
print("|---|---|---|---|---|---|")
ratios = {}
for rnd, op, size, s, c in rows:
    r = float(c.split()[1]) / max(1.0, float(s.split()[1]))
    ratios.setdefault((op, size), []).append(r)
    print(f"| {rnd} | {op} | {size} | {s} | {c} | {r:.2f} |")
for (op, size), rs in ratios.items():
    print(f"median {op} {size}: cluster / single {statistics.median(rs):.2f} over {len(rs)} rounds ({min(rs):.2f}-{max(rs):.2f})")
PY
