#!/usr/bin/env bash
# `sluice broker` against Apache Kafka 4.4 over TCP, with the same clients and settings, in
# one script on one machine:
#   - Kafka's ProducerPerformance (acks=all, idempotence on): SMALL_N x 100 B and BIG_N x 1 KB;
#   - Kafka's ConsumerPerformance reading each topic back;
#   - a transactional run (ProducerPerformance, 100 ms transactions);
#   - librdkafka's rdkafka_performance producing SMALL_N x 100 B (when tests/librdkafka/setup.sh
#     has built it; skipped otherwise);
#   - the embedded producer (`sluice perf produce`), acks=all under `commit` against `never`.
# sluice runs twice: fsync `never` (Kafka's own default: it never fsyncs, so this is the equal
# comparison) and `commit` (acks=all waits for an fsync, shared by group commit). Prints one
# JSON line per run and a summary of ratios at the end.
#
#   bench/broker/run.sh            # defaults: SMALL_N=10000000 BIG_N=2000000
#   SMALL_N=1000000 BIG_N=200000 bench/broker/run.sh   # a quick pass
#   SKIP_KAFKA=1 bench/broker/run.sh   # sluice only (commit against never), no Kafka suite
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ROOT="$(cd "$HERE/../.." && pwd)"
SLUICE="${SLUICE_BIN:-${CARGO_TARGET_DIR:-$HOME/.cache/sluice-target}/release/sluice}"
SMALL_N="${SMALL_N:-10000000}"
BIG_N="${BIG_N:-2000000}"
TXN_N="${TXN_N:-$SMALL_N}"
TOOL_HEAP="${TOOL_HEAP:-1g}"
# librdkafka's rdkafka_performance, from the source tests/librdkafka/setup.sh fetched (built
# here when missing: `make -C examples rdkafka_performance`, about a minute).
RDK_SRC="$(ls -d "${RDK_CACHE:-$HOME/.cache/sluice-librdkafka}"/librdkafka-*/ 2>/dev/null | head -1 || true)"
if [[ -z "${RDKAFKA_PERF:-}" && -n "$RDK_SRC" && ! -x "$RDK_SRC/examples/rdkafka_performance" ]]; then
  make -C "$RDK_SRC/examples" rdkafka_performance >/dev/null 2>&1 || true
fi
RDKAFKA_PERF="${RDKAFKA_PERF:-${RDK_SRC:+$RDK_SRC/examples/rdkafka_performance}}"
WORK="$(mktemp -d /tmp/sluice-broker-bench.XXXXXX)"
SLUICE_PID=""
RESULTS="$WORK/results.jsonl"

log() { echo "[bench $(date +%H:%M:%S)] $*" >&2; }
[[ -x "$SLUICE" ]] || { log "no sluice binary at $SLUICE (cargo build --release)"; exit 1; }
KAFKA_JARS="$("$ROOT/tests/conformance/jars.sh")"
CP="$KAFKA_JARS/*"

stop_sluice() {
  if [[ -n "$SLUICE_PID" ]] && kill -0 "$SLUICE_PID" 2>/dev/null; then
    kill -TERM "$SLUICE_PID"; wait "$SLUICE_PID" 2>/dev/null || true
  fi
  SLUICE_PID=""
}
cleanup() {
  stop_sluice
  "$ROOT/tests/conformance/kafka.sh" stop "$WORK/kafka" >/dev/null 2>&1 || true
  rm -rf "$WORK"
}
trap cleanup EXIT

tool() {  # tool <timeout-seconds> <main-class> args...; the client's CPU time goes to $WORK/client.time
  local t=$1; shift
  /usr/bin/time -f '%U %S %e' -o "$WORK/client.time" \
    timeout --kill-after=10 "$t" java "-Xmx$TOOL_HEAP" -XX:+UseG1GC -XX:MaxGCPauseMillis=20 \
    -Djava.awt.headless=true -cp "$CP" "$@" 2>/dev/null
}

# Where the machine's CPU went during one client run: the client's user+system seconds (from
# /usr/bin/time) and the broker's (from /proc/PID/stat before and after), beside the wall time.
# With both on the same cores, `client_cpu_s + broker_cpu_s` close to `cores x wall_s` means the
# run was CPU-bound; the client's share then caps what any broker can reach with it.
BROKER_PID=""
cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat" 2>/dev/null || echo 0; }
cpu_fields() {  # cpu_fields <broker ticks before>: JSON fields, without braces
  local before=$1 after hz user sys wall
  after="$(cpu_ticks "${BROKER_PID:-0}")"; hz="$(getconf CLK_TCK)"
  read -r user sys wall < "$WORK/client.time" 2>/dev/null || { user=0; sys=0; wall=0; }
  python3 -c "import sys; u,s,w,b,a,hz=map(float,sys.argv[1:]); print('\"client_cpu_s\":%.1f,\"broker_cpu_s\":%.1f,\"wall_s\":%.1f' % (u+s, (a-b)/hz, w))" \
    "$user" "$sys" "$wall" "$before" "$after" "$hz"
}

start_sluice() {  # start_sluice <fsync policy>; sets SLUICE_PID and SLUICE_ADDR
  local dir="$WORK/sluice-$1"
  rm -rf "$dir"
  "$SLUICE" --data "$dir" broker --listen 127.0.0.1:0 --default-fsync "$1" >"$WORK/sluice.out" 2>"$WORK/sluice.err" &
  SLUICE_PID=$!
  for _ in $(seq 1 100); do
    grep -q 'listening on' "$WORK/sluice.out" 2>/dev/null && break
    sleep 0.1
  done
  SLUICE_ADDR="$(awk '/listening on/ {print $5}' "$WORK/sluice.out")"
}

rss_kib() { awk '/^VmHWM:/ {print $2}' "/proc/$1/status" 2>/dev/null || echo 0; }

# ProducerPerformance's last line: "N records sent, R records/sec (M MB/sec), A ms avg latency,
# X ms max latency, P50 ms 50th, P95 ms 95th, P99 ms 99th, P999 ms 99.9th."
produce() {  # produce <label> <bootstrap> <topic> <n> <size> [extra producer args...]
  local label=$1 b=$2 topic=$3 n=$4 size=$5; shift 5
  local line before
  before="$(cpu_ticks "${BROKER_PID:-0}")"
  line="$(tool 900 org.apache.kafka.tools.ProducerPerformance --topic "$topic" --num-records "$n" \
    --record-size "$size" --throughput -1 "$@" | tail -1)"
  python3 - "$label" "$n" "$size" "$line" "{$(cpu_fields "$before")}" <<'PY' | tee -a "$RESULTS"
import json, re, sys
label, n, size, line = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4]
cpu = json.loads(sys.argv[5])
num = lambda pat: float(m.group(1)) if (m := re.search(pat, line)) else None
print(json.dumps({"run": label, "records": n, "record_size": size, **cpu,
    "records_per_sec": num(r"([\d.]+) records/sec"), "mb_per_sec": num(r"\(([\d.]+) MB/sec\)"),
    "avg_ms": num(r"([\d.]+) ms avg latency"), "p50_ms": num(r"([\d.]+) ms 50th"),
    "p99_ms": num(r"([\d.]+) ms 99th"), "max_ms": num(r"([\d.]+) ms max latency")}))
PY
}

consume() {  # consume <label> <bootstrap> <topic> <n>
  local label=$1 b=$2 topic=$3 n=$4 line before cpu
  before="$(cpu_ticks "${BROKER_PID:-0}")"
  line="$(tool 900 org.apache.kafka.tools.ConsumerPerformance --bootstrap-server "$b" --topic "$topic" \
    --messages "$n" --timeout 60000 --hide-header | tail -1)"
  cpu="$(cpu_fields "$before")"
  # start, end, data.consumed.in.MB, MB.sec, data.consumed.in.nMsg, nMsg.sec, ...
  echo "$line" | awk -F', ' -v l="$label" -v cpu="$cpu" '{
    printf "{\"run\":\"%s\",\"records\":%d,\"mb\":%s,\"mb_per_sec\":%s,\"records_per_sec\":%s,%s}\n", l, $5, $3, $4, $6, cpu }' \
    | tee -a "$RESULTS"
}

rdkafka() {  # rdkafka <label> <bootstrap> <topic> <n> <size>
  local label=$1 b=$2 topic=$3 n=$4 size=$5
  [[ -n "$RDKAFKA_PERF" && -x "$RDKAFKA_PERF" ]] || { log "rdkafka_performance not built; skipping $label"; return 0; }
  # -u: a table; its last row has the totals (dr_m/s, dr_MB/s: delivered per second).
  timeout 900 "$RDKAFKA_PERF" -P -t "$topic" -b "$b" -s "$size" -c "$n" -a -1 \
    -X enable.idempotence=true -X linger.ms=5 -u 2>/dev/null > "$WORK/rdkafka.out" || true
  python3 - "$label" "$n" "$size" "$WORK/rdkafka.out" <<'PY' | tee -a "$RESULTS"
import json, sys
label, n, size, path = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4]
rows = [[c.strip() for c in l.strip().strip("|").split("|")] for l in open(path) if l.startswith("|")]
head, last = rows[0], rows[-1]
col = lambda name: float(last[head.index(name)])
print(json.dumps({"run": label, "records": n, "record_size": size,
    "records_per_sec": col("dr_m/s"), "mb_per_sec": col("dr_MB/s"), "delivered": col("dr"),
    "elapsed_ms": col("elapsed")}))
PY
}

suite() {  # suite <name> <bootstrap> <pid or empty>
  local name=$1 b=$2 pid=${3:-}
  BROKER_PID="$pid"
  local common=(--producer-props "bootstrap.servers=$b" acks=all enable.idempotence=true)
  produce "$name produce ${SMALL_N}x100B" "$b" "small" "$SMALL_N" 100 "${common[@]}"
  produce "$name produce ${BIG_N}x1KB" "$b" "big" "$BIG_N" 1000 "${common[@]}"
  consume "$name consume ${SMALL_N}x100B" "$b" "small" "$SMALL_N"
  consume "$name consume ${BIG_N}x1KB" "$b" "big" "$BIG_N"
  produce "$name produce ${TXN_N}x100B transactional 100ms" "$b" "txn" "$TXN_N" 100 \
    --transactional-id "bench-$name" --transaction-duration-ms 100 "${common[@]}"
  rdkafka "$name rdkafka_performance ${SMALL_N}x100B" "$b" "rdk" "$SMALL_N" 100
  [[ -n "$pid" ]] && echo "{\"run\":\"$name peak RSS\",\"kib\":$(rss_kib "$pid")}" | tee -a "$RESULTS"
  return 0
}

log "machine: $(nproc) cores, $(free -g | awk '/^Mem:/{print $2}') GiB; $(java -version 2>&1 | head -1)"
log "sluice: $("$SLUICE" --version); rdkafka_performance: ${RDKAFKA_PERF:-none}"

for policy in never commit; do
  start_sluice "$policy"
  log "sluice broker (fsync $policy) at $SLUICE_ADDR"
  suite "sluice-$policy" "$SLUICE_ADDR" "$SLUICE_PID"
  stop_sluice
done

if [[ "${SKIP_KAFKA:-0}" != 1 ]]; then
  "$ROOT/tests/conformance/kafka.sh" start "$WORK/kafka" >/dev/null
  b="$(cat "$WORK/kafka/bootstrap")"
  log "Apache Kafka at $b (fsync: Kafka's default, never)"
  suite "kafka" "$b" "$(cat "$WORK/kafka/broker.pid" 2>/dev/null || true)"
  "$ROOT/tests/conformance/kafka.sh" stop "$WORK/kafka" >/dev/null
fi

log "embedded producer: acks=all under commit against never (1 KB records)"
for policy in never commit; do
  rm -rf "$WORK/embedded"
  "$SLUICE" --data "$WORK/embedded" perf produce --topic e --records "$BIG_N" --record-size 1000 \
    --fsync "$policy" 2>/dev/null | sed "s/^{/{\"run\":\"embedded produce ${BIG_N}x1KB fsync $policy\",/" | tee -a "$RESULTS"
done

log "summary (ratios sluice / Kafka, same client and settings)"
python3 - "$RESULTS" <<'EOF'
import json, sys
runs = {}
for line in open(sys.argv[1]):
    try:
        r = json.loads(line); runs[r["run"]] = r
    except Exception:
        pass
def ratio(a, b, key="records_per_sec"):
    ra, rb = runs.get(a), runs.get(b)
    if not ra or not rb or not float(rb.get(key, 0) or 0):
        return None
    return float(ra[key]) / float(rb[key])
for name in sorted({k.split(" ", 1)[1] for k in runs if k.startswith("kafka ")}):
    for policy in ("never", "commit"):
        r = ratio(f"sluice-{policy} {name}", f"kafka {name}")
        if r is not None:
            print(f"{name:45s} sluice({policy}) / kafka = {r:5.2f}x")
for name in sorted({k.split(" ", 1)[1] for k in runs if k.startswith("sluice-commit ")}):
    r = ratio(f"sluice-commit {name}", f"sluice-never {name}")
    if r is not None:
        print(f"{name:45s} sluice commit / never = {r:5.2f}")
e = [v for k, v in runs.items() if k.startswith("embedded")]
if len(e) == 2:
    never = [v for v in e if "never" in v["run"]][0]; commit = [v for v in e if "commit" in v["run"]][0]
    print(f"{'embedded produce 1 KB':45s} sluice commit / never = {commit['records_per_sec'] / never['records_per_sec']:5.2f}")
EOF
