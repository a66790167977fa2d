#!/usr/bin/env bash
# Two sluice binaries side by side under one workload, interleaved to spread the machine's
# drift over both: Kafka's ProducerPerformance (acks=all, idempotent) against `sluice broker`,
# once per fsync policy per binary per round. Prints one line per run.
#
#   bench/broker/ab.sh A_BIN B_BIN                 # e.g. /tmp/sluice-before /tmp/sluice-after
#   RUNS=5 RECORDS=400000 SIZE=1000 POLICIES="never commit" bench/broker/ab.sh A B
#
# Build an earlier revision's binary with bench/build-at.sh.
set -euo pipefail
[[ $# -eq 2 ]] || { echo "usage: $0 A_BIN B_BIN" >&2; exit 2; }
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
RUNS="${RUNS:-3}" RECORDS="${RECORDS:-400000}" SIZE="${SIZE:-1000}"
POLICIES="${POLICIES:-never commit}"
JARS="$("$ROOT/tests/conformance/jars.sh")"
WORK="$(mktemp -d /tmp/sluice-ab.XXXXXX)"
PID=""
cleanup() { [[ -n "$PID" ]] && kill -TERM "$PID" 2>/dev/null; rm -rf "$WORK"; }
trap cleanup EXIT

run() {  # run <binary> <label> <fsync policy>
  rm -rf "$WORK/data"
  "$1" --data "$WORK/data" broker --listen 127.0.0.1:0 --default-fsync "$3" >"$WORK/out" 2>/dev/null &
  PID=$!
  for _ in $(seq 200); do grep -q listening "$WORK/out" 2>/dev/null && break; sleep 0.05; done
  local addr line
  addr="$(sed -n 's/.*listening on \([^ ]*\).*/\1/p' "$WORK/out")"
  [[ -n "$addr" ]] || { echo "$2: the broker did not start" >&2; exit 1; }
  line="$(java -Xmx1g -cp "$JARS/*" org.apache.kafka.tools.ProducerPerformance --topic ab \
    --num-records "$RECORDS" --record-size "$SIZE" --throughput -1 \
    --producer-props "bootstrap.servers=$addr" acks=all enable.idempotence=true 2>/dev/null | tail -1)"
  kill -TERM "$PID"; wait "$PID" 2>/dev/null || true; PID=""
  echo "{\"run\":\"$2\",\"fsync\":\"$3\",\"records_per_sec\":$(echo "$line" | grep -o '[0-9.]* records/sec' | cut -d' ' -f1)}"
}

for round in $(seq "$RUNS"); do
  for policy in $POLICIES; do
    run "$1" "A round $round" "$policy"
    run "$2" "B round $round" "$policy"
  done
done
