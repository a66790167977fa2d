#!/usr/bin/env bash
# Two sluice binaries under `sluice perf rebalance` (an instance joins, then leaves, on the
# embedded log), interleaved round by round so the machine's drift hits both; each run on a
# fresh data directory. Prints each run's JSON line, then the median seconds to Running on
# join and on leave of each binary, and B/A.
#
#   bench/rebalance-ab.sh A_BIN B_BIN    # e.g. /tmp/sluice-before target/release/sluice
#   RUNS=5 KEYS=1000000 PARTITIONS=8 bench/rebalance-ab.sh A B
#
# Build an earlier revision's binary with bench/build-at.sh.
set -euo pipefail
[[ $# -eq 2 ]] || { echo "usage: $0 A_BIN B_BIN" >&2; exit 2; }
RUNS="${RUNS:-3}" KEYS="${KEYS:-1000000}" PARTITIONS="${PARTITIONS:-8}"
WORK="$(mktemp -d /tmp/sluice-rebalance-ab.XXXXXX)"
trap 'rm -rf "$WORK"' EXIT

run() {  # run <binary> <label> <a|b>
  rm -rf "$WORK/data"
  local line
  line="$("$1" --data "$WORK/data" perf rebalance --keys "$KEYS" --partitions "$PARTITIONS" | tail -1)"
  echo "$2 $line"
  echo "$line" >>"$WORK/$3.jsonl"
}

for round in $(seq "$RUNS"); do
  run "$1" "A round $round" a
  run "$2" "B round $round" b
done

python3 - "$WORK/a.jsonl" "$WORK/b.jsonl" <<'PY'
import json, statistics, sys
runs = {k: [json.loads(line) for line in open(p)] for k, p in zip("ab", sys.argv[1:])}
med = lambda k, f: statistics.median(f(r) for r in runs[k])
out = {}
for phase in ("join", "leave"):
    f = lambda r: r[phase]["seconds_to_running"]
    a, b = med("a", f), med("b", f)
    out[phase + "_seconds_to_running"] = {"a": a, "b": b, "b_over_a": round(b / a, 3)}
print(json.dumps(out))
PY
