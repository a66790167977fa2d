#!/usr/bin/env bash
# Every conformance suite against one Kafka wire-protocol broker:
# scenarios.py with confluent-kafka and kafka-python, scenarios.js (kafkajs),
# kcat.sh, java.sh. Exits non-zero if any suite fails.
#
#   tests/conformance/run_all.sh HOST:PORT
#
# Dependencies: make conformance-deps. Last line: conformance: N passed, N failed
# (summed over the suites).
set -euo pipefail
[[ $# -eq 1 ]] || { echo "usage: $0 HOST:PORT" >&2; exit 2; }
B=$1
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
WORK="$(mktemp -d /tmp/sluice-conformance-all.XXXXXX)"
trap 'rm -rf "$WORK"' EXIT

suites=(
  "python-confluent|python3 $HERE/scenarios.py --bootstrap $B --client confluent"
  "python-kafka-python|python3 $HERE/scenarios.py --bootstrap $B --client kafka-python"
  "kafkajs|node $HERE/scenarios.js --bootstrap $B"
  "kcat|bash $HERE/kcat.sh $B"
  "java|bash $HERE/java.sh $B"
)
total_pass=0; total_fail=0; failed_suites=()
start=$SECONDS
for s in "${suites[@]}"; do
  name=${s%%|*}; cmd=${s#*|}
  echo "=================== $name: $cmd"
  t=$SECONDS
  rc=0
  # Each suite bounds its own waits; this is a last-resort bound per suite.
  timeout --kill-after=30 1200 $cmd 2>&1 | tee "$WORK/$name.log" || rc=$?
  line="$(grep -E '^conformance: [0-9]+ passed, [0-9]+ failed' "$WORK/$name.log" | tail -1 || true)"
  if [[ -n "$line" ]]; then
    p=$(sed -E 's/^conformance: ([0-9]+) passed.*/\1/' <<<"$line")
    f=$(sed -E 's/^conformance: [0-9]+ passed, ([0-9]+) failed.*/\1/' <<<"$line")
  else
    p=0; f=1
  fi
  if ((rc != 0 && f == 0)); then f=1; fi  # crashed or timed out after its summary
  total_pass=$((total_pass + p)); total_fail=$((total_fail + f))
  ((f == 0)) || failed_suites+=("$name")
  echo "=================== $name: $p passed, $f failed ($((SECONDS - t)) s, exit $rc)"
done
if ((${#failed_suites[@]})); then
  echo "run_all: $((SECONDS - start)) s against $B; failed suites: ${failed_suites[*]}"
else
  echo "run_all: $((SECONDS - start)) s against $B"
fi
echo "conformance: $total_pass passed, $total_fail failed"
((total_fail == 0))
