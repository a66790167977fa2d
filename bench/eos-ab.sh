#!/usr/bin/env bash
# Two sluice binaries under `sluice perf eos` (the exactly-once count on the embedded log),
# interleaved round by round so the machine's drift hits both; each run on a fresh data
# directory. Prints each run's JSON line, then per figure (exactly-once and at-least-once
# records/s, p99 end-to-end and commit latency) the median of each binary and B/A.
#
#   bench/eos-ab.sh A_BIN B_BIN          # e.g. /tmp/sluice-before target/release/sluice
#   RUNS=5 RECORDS=2000000 KEYS=10000 bench/eos-ab.sh A B
#
# Build an earlier revision's binary with bench/build-at.sh.
set -euo pipefail
[[ $# -eq 2 ]] || { echo "usage: $0 A_BIN B_BIN" >&2; exit 2; }
RUNS="${RUNS:-3}" RECORDS="${RECORDS:-2000000}" KEYS="${KEYS:-10000}"
WORK="$(mktemp -d /tmp/sluice-eos-ab.XXXXXX)"
trap 'rm -rf "$WORK"' EXIT

run() {  # run <binary> <label>
  rm -rf "$WORK/data"
  local line
  line="$("$1" --data "$WORK/data" perf eos --records "$RECORDS" --keys "$KEYS" | tail -1)"
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
figures = {
    "eos_records_per_sec": lambda r: r["eos"]["records_per_sec"],
    "alos_records_per_sec": lambda r: r["alos"]["records_per_sec"],
    "latency_p99_ms": lambda r: r["latency_ms"]["p99"],
    "commit_p99_ms": lambda r: r["commit_latency_ms"]["p99"],
}
out = {}
for name, f in figures.items():
    a, b = med("a", f), med("b", f)
    out[name] = {"a": a, "b": b, "b_over_a": round(b / a, 3)}
print(json.dumps(out))
PY
