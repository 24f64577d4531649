#!/bin/bash
# Server pools: GET latency with two pools against one, and decommission throughput against
# heal throughput, on the same machine in one run.
#   bash benches/pools.sh            (after cargo build --release)
# CAIRN=path/to/cairn, DIR=scratch folder (default /var/tmp/cairn-pools-bench), PORT=9400,
# ROUNDS=GET rounds (default 5; the medians are printed at the end), ONLY=get|decommission.
set -u
B=${CAIRN:-target/release/cairn}
R=${DIR:-/var/tmp/cairn-pools-bench}
export CAIRN_ROOT_USER=admin CAIRN_ROOT_PASSWORD=adminsecret
export CAIRN_ENDPOINT=http://127.0.0.1:${PORT:-9400}
stop() { pkill -f "cairn server --address 127.0.0.1:${PORT:-9400}"; sleep 1; }
start() {
  stop
  (setsid env CAIRN_HEAL_SPEED=fast "$B" server --address 127.0.0.1:${PORT:-9400} \
     --console-address off "$@" > "$R.log" 2>&1 &)
  for _ in $(seq 100); do curl -sf "$CAIRN_ENDPOINT/health/ready" >/dev/null && return; sleep 0.2; done
  echo "server did not start"; cat "$R.log"; exit 1
}
rounds=${ROUNDS:-5}
only=${ONLY:-all}
if [ "$only" != decommission ]; then
echo "== GET 4 KiB, 200 objects, 6 s per measurement, one pool (4 folders) vs two (4 + 4), $rounds rounds"
: > "$R.rows"
for round in $(seq "$rounds"); do
  for cfg in one two; do
    rm -rf "$R"; mkdir -p "$R"
    if [ $cfg = one ]; then start "$R/a{1...4}"; else start "$R/a{1...4}" "$R/b{1...4}"; fi
    for c in 1 8; do
      "$B" bench --op get --size 4KiB --concurrency $c --duration 6s --objects 200 --json "$R.json" >/dev/null 2>&1
      python3 - "$R.json" "$round $cfg x$c" <<'PY' | tee -a "$R.rows"
import json, sys
g = json.load(open(sys.argv[1]))["ops"]["GET"]
print("%-14s %7.0f obj/s  p50 %.3f ms  p99 %.3f ms" % (sys.argv[2], g["objects_s"], g["latency_ms"]["p50"], g["latency_ms"]["p99"]))
PY
    done
  done
done
python3 - "$R.rows" <<'PY'
import statistics, sys
rows = [l.split() for l in open(sys.argv[1]) if l.strip()]
for c in ("x1", "x8"):
    med = {}
    for cfg in ("one", "two"):
        sel = [r for r in rows if r[1] == cfg and r[2] == c]
        med[cfg] = (statistics.median(float(r[3]) for r in sel), statistics.median(float(r[6]) for r in sel))
    print("median %s: one pool %.0f obj/s p50 %.3f ms; two pools %.0f obj/s p50 %.3f ms; two/one p50 %.2f, obj/s %.2f"
          % (c, med["one"][0], med["one"][1], med["two"][0], med["two"][1], med["two"][1] / med["one"][1], med["two"][0] / med["one"][0]))
PY
rm -f "$R.rows"
fi
[ "$only" = get ] && { stop; rm -rf "$R" "$R.json" "$R.log"; exit 0; }
echo "== 1 MiB objects written for 4 s: heal of one wiped drive vs decommission of the pool"
for round in 1 2; do
  rm -rf "$R"; mkdir -p "$R"
  start "$R/a{1...4}"
  "$B" bench --op put --size 1MiB --concurrency 8 --duration 4s --keep-data >/dev/null 2>&1
  n=$(find "$R/a1/cairn-bench" -name '@meta' | wc -l)
  start "$R/a{1...4}"
  rm -rf "$R/a1/cairn-bench"
  t0=$(date +%s.%N); "$B" admin heal >/dev/null 2>&1; t1=$(date +%s.%N)
  start "$R/a{1...4}" "$R/b{1...4}"
  t2=$(date +%s.%N); "$B" admin pool decommission start 1 >/dev/null 2>&1; t3=$(date +%s.%N)
  moved=$(find "$R/b1/cairn-bench" -name '@meta' | wc -l)
  python3 -c "
n=$n; h=$t1-$t0; d=$t3-$t2
print('round $round: %d objects (%d MiB); heal %.2f s = %.0f MiB/s; decommission %.2f s (%d moved) = %.0f MiB/s; decommission/heal %.2f' % (n, n, h, n/h, d, $moved, n/d, h/d))"
done
stop
rm -rf "$R" "$R.json" "$R.log"
