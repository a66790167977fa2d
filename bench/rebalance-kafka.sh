#!/usr/bin/env bash
# `sluice perf rebalance` (an exactly-once instance joins, then leaves) on Apache Kafka 4.4
# and on the embedded log, rounds interleaved so the machine's drift hits both. Starts a
# single-node Kafka with tests/conformance/kafka.sh (stopped at exit) unless BOOTSTRAP names a
# running cluster; each embedded run gets a fresh data directory. Prints each run's JSON line,
# then the medians of each figure per cluster.
#
#   bench/rebalance-kafka.sh                      # $CARGO_TARGET_DIR/release/sluice, 3 runs each
#   RUNS=5 KEYS=1000000 PARTITIONS=8 SLUICE=/path/to/sluice bench/rebalance-kafka.sh
#   BOOTSTRAP=127.0.0.1:9092 bench/rebalance-kafka.sh   # an already running cluster
#
# KAFKA_EXTRA_PROPERTIES passes server.properties lines to kafka.sh (e.g.
# 'group.initial.rebalance.delay.ms=0').
set -euo pipefail
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ROOT="$(cd "$HERE/.." && pwd)"
RUNS="${RUNS:-3}" KEYS="${KEYS:-1000000}" PARTITIONS="${PARTITIONS:-8}"
SLUICE="${SLUICE:-${CARGO_TARGET_DIR:-$ROOT/target}/release/sluice}"
[[ -x "$SLUICE" ]] || { echo "no sluice binary at $SLUICE (cargo build --release --bin sluice)" >&2; exit 2; }
WORK="$(mktemp -d /tmp/sluice-rebalance-kafka.XXXXXX)"
KAFKA_DIR=""

cleanup() {
  if [[ -n "$KAFKA_DIR" ]]; then
    "$ROOT/tests/conformance/kafka.sh" stop "$KAFKA_DIR" || true
  fi
  rm -rf "$WORK"
}
trap cleanup EXIT

if [[ -z "${BOOTSTRAP:-}" ]]; then
  KAFKA_DIR="$WORK/kafka"
  "$ROOT/tests/conformance/kafka.sh" start "$KAFKA_DIR" >/dev/null
  BOOTSTRAP="$(cat "$KAFKA_DIR/bootstrap")"
  delay="$(grep -o '^group.initial.rebalance.delay.ms=.*' "$KAFKA_DIR/server.properties" | cut -d= -f2 || true)"
  echo "# Apache Kafka (tests/conformance/kafka.sh) at $BOOTSTRAP, group.initial.rebalance.delay.ms ${delay:-3000 (default)}"
fi
echo "# $("$SLUICE" --version), keys $KEYS, partitions $PARTITIONS, $RUNS runs each, $(date -u +%FT%TZ)"

run() {  # run <kafka|embedded> <round>
  local line
  sync
  if [[ "$1" == kafka ]]; then
    rm -rf "$WORK/state"
    line="$("$SLUICE" --data "$WORK/state" --bootstrap-server "$BOOTSTRAP" \
      perf rebalance --keys "$KEYS" --partitions "$PARTITIONS" | tail -1)"
  else
    rm -rf "$WORK/data"
    line="$("$SLUICE" --data "$WORK/data" perf rebalance --keys "$KEYS" --partitions "$PARTITIONS" | tail -1)"
  fi
  echo "$1 round $2 $line"
  echo "$line" >>"$WORK/$1.jsonl"
}

for round in $(seq "$RUNS"); do
  run kafka "$round"
  run embedded "$round"
done

python3 - "$WORK/kafka.jsonl" "$WORK/embedded.jsonl" <<'PY'
import json, statistics, sys
for path in sys.argv[1:]:
    runs = [json.loads(line) for line in open(path)]
    med = {}
    for phase in ("join", "leave"):
        for field in runs[0][phase]:
            med[phase + "." + field] = statistics.median(r[phase][field] for r in runs)
    print(json.dumps({"cluster": runs[0]["cluster"], "runs": len(runs), "median": med}))
PY
