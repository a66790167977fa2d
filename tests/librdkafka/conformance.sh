#!/usr/bin/env bash
# `make conformance`: librdkafka 2.0.2's integration suite (run.sh) against
# `sluice broker`, then against Apache Kafka 4.4, each started on loopback
# with an ephemeral port and a temporary data dir, and stopped at the end.
#
#   tests/librdkafka/conformance.sh [run.sh args after BOOTSTRAP, e.g. --ci]
#
# Env: SLUICE_BIN (default $CARGO_TARGET_DIR or ~/.cache/sluice-target, release),
#      BROKERS (default "sluice kafka"), JOBS/TEST_TIMEOUT (see run.sh),
#      SLUICE_RUST_LOG (broker log level, default info).
# Both brokers: auto-create on, 4 partitions per new topic, 3 s initial
# rebalance delay (the suite's expectations).
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ROOT="$(cd "$HERE/../.." && pwd)"
SLUICE_BIN="${SLUICE_BIN:-${CARGO_TARGET_DIR:-$HOME/.cache/sluice-target}/release/sluice}"
BROKERS="${BROKERS:-sluice kafka}"
START_TIMEOUT="${START_TIMEOUT:-60}"

# Build / patch the suite first (idempotent), so its time is not in the runs.
"$HERE/setup.sh" >/dev/null

WORK="$(mktemp -d /tmp/sluice-librdkafka-run.XXXXXX)"
SLUICE_PID=
KAFKA_DIR=
stop_all() {
  if [[ -n "$SLUICE_PID" ]] && kill -0 "$SLUICE_PID" 2>/dev/null; then
    kill -TERM "$SLUICE_PID" 2>/dev/null || true
    for _ in $(seq 1 150); do kill -0 "$SLUICE_PID" 2>/dev/null || break; sleep 0.2; done
    kill -KILL "$SLUICE_PID" 2>/dev/null || true
  fi
  SLUICE_PID=
  if [[ -n "$KAFKA_DIR" ]]; then "$ROOT/tests/conformance/kafka.sh" stop "$KAFKA_DIR" || true; fi
  KAFKA_DIR=
}
trap 'stop_all; rm -rf "$WORK/sluice-data" "$WORK/kafka/data"' EXIT
trap 'exit 130' INT TERM

# Sets SLUICE_PID and ADDR (not run in $(...): the trap needs the pid).
start_sluice() {
  local bin_wait=0
  while [[ ! -x "$SLUICE_BIN" ]] && ((bin_wait < 120)); do sleep 2; bin_wait=$((bin_wait + 2)); done  # being rebuilt
  [[ -x "$SLUICE_BIN" ]] || { echo "no sluice binary at $SLUICE_BIN" >&2; return 1; }
  mkdir -p "$WORK/sluice-data"
  RUST_LOG="${SLUICE_RUST_LOG:-info}" "$SLUICE_BIN" --data "$WORK/sluice-data" broker \
    --listen 127.0.0.1:0 --num-partitions 4 --auto-create-topics true \
    --group-initial-rebalance-delay-ms 3000 >"$WORK/sluice.out" 2>"$WORK/sluice.log" &
  SLUICE_PID=$!
  local deadline=$((SECONDS + START_TIMEOUT))
  ADDR=
  while ((SECONDS < deadline)); do
    ADDR="$(sed -n '1s/^sluice broker listening on \([0-9.]*:[0-9]*\) .*/\1/p' "$WORK/sluice.out")"
    [[ -n "$ADDR" ]] && break
    kill -0 "$SLUICE_PID" 2>/dev/null || { cat "$WORK/sluice.log" >&2; return 1; }
    sleep 0.2
  done
  [[ -n "$ADDR" ]] || { echo "sluice broker did not start" >&2; return 1; }
}

declare -A SUMMARY
rc=0
for b in $BROKERS; do
  case "$b" in
    sluice)
      start_sluice
      addr=$ADDR
      echo "== librdkafka suite against sluice broker at $addr (log $WORK/sluice.log)" ;;
    kafka)
      KAFKA_DIR="$WORK/kafka"
      addr="$(KAFKA_EXTRA_PROPERTIES=$'num.partitions=4\ngroup.initial.rebalance.delay.ms=3000' \
        "$ROOT/tests/conformance/kafka.sh" start "$KAFKA_DIR")"
      echo "== librdkafka suite against Apache Kafka 4.4 at $addr" ;;
    *) echo "unknown broker $b" >&2; exit 2 ;;
  esac
  t0=$SECONDS
  LOG_DIR="$WORK/logs-$b" "$HERE/run.sh" "$addr" "$@" 2>&1 | tee "$WORK/$b.out" || rc=1
  SUMMARY[$b]="$(grep '^librdkafka:' "$WORK/$b.out" | tail -n1) in $((SECONDS - t0)) s"
  stop_all
done

echo "== librdkafka conformance (per-test logs under $WORK)"
for b in $BROKERS; do printf '%-7s %s\n' "$b" "${SUMMARY[$b]:-no result}"; done
exit $rc
