#!/usr/bin/env bash
# Differential test: the same scenarios (diff.py) against Apache Kafka 4.4 and
# against `sluice broker`, both fresh, then the two JSON documents compared.
#
#   tests/differential/run.sh            # exit 0 only when no difference (beyond the allow-list)
#
# Both brokers: auto topic creation off, initial rebalance delay 0, 1 partition
# by default. The allow-list of legitimate differences is ALLOW in diff.py.
# Env: SLUICE_BIN (default $HOME/.cache/sluice-target/release/sluice),
#      KEEP=1 keeps the work dir (JSON documents, broker logs), OUT=DIR puts it there.
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ROOT="$(cd "$HERE/../.." && pwd)"
KAFKA_SH="$ROOT/tests/conformance/kafka.sh"
SLUICE_BIN="${SLUICE_BIN:-$HOME/.cache/sluice-target/release/sluice}"
WORK="${OUT:-$(mktemp -d /tmp/sluice-differential.XXXXXX)}"
mkdir -p "$WORK"
SLUICE_PID=

log() { echo "[differential $(date +%H:%M:%S)] $*" >&2; }

cleanup() {
  if [[ -n "$SLUICE_PID" ]] && kill -0 "$SLUICE_PID" 2>/dev/null; then
    kill -TERM "$SLUICE_PID" 2>/dev/null || true
    for _ in $(seq 100); do kill -0 "$SLUICE_PID" 2>/dev/null || break; sleep 0.1; done
    kill -KILL "$SLUICE_PID" 2>/dev/null || true
  fi
  "$KAFKA_SH" stop "$WORK/kafka" >/dev/null 2>&1 || true
  if [[ "${KEEP:-0}" != 1 && -z "${OUT:-}" ]]; then rm -rf "$WORK"; else log "kept $WORK"; fi
}
trap cleanup EXIT

t0=$SECONDS

# The binary is rebuilt from time to time by others: wait (bounded) if it is briefly missing.
for _ in $(seq 120); do [[ -x "$SLUICE_BIN" ]] && break; sleep 1; done
[[ -x "$SLUICE_BIN" ]] || { log "sluice binary missing: $SLUICE_BIN"; exit 1; }

# sluice broker: fresh data dir, ephemeral port (first stdout line names it).
mkdir -p "$WORK/sluice"
"$SLUICE_BIN" --data "$WORK/sluice/data" broker --listen 127.0.0.1:0 \
  --auto-create-topics false --num-partitions 1 --group-initial-rebalance-delay-ms 0 \
  >"$WORK/sluice/stdout.log" 2>"$WORK/sluice/stderr.log" &
SLUICE_PID=$!
SLUICE_BOOT=
for _ in $(seq 300); do
  SLUICE_BOOT="$(sed -n '1s/^sluice broker listening on \([0-9.]*:[0-9]*\) .*/\1/p' "$WORK/sluice/stdout.log")"
  [[ -n "$SLUICE_BOOT" ]] && break
  kill -0 "$SLUICE_PID" 2>/dev/null || { log "sluice broker exited:"; cat "$WORK/sluice/stderr.log" >&2; exit 1; }
  sleep 0.1
done
[[ -n "$SLUICE_BOOT" ]] || { log "sluice broker did not report its address"; exit 1; }
python3 "$ROOT/tests/conformance/probe.py" "$SLUICE_BOOT" --timeout 30 >/dev/null
log "sluice broker at $SLUICE_BOOT"

# Apache Kafka 4.4 with the same settings.
KAFKA_EXTRA_PROPERTIES=$'auto.create.topics.enable=false\nnum.partitions=1\ngroup.initial.rebalance.delay.ms=0' \
  "$KAFKA_SH" start "$WORK/kafka" >/dev/null
KAFKA_BOOT="$(cat "$WORK/kafka/bootstrap")"
log "Apache Kafka at $KAFKA_BOOT"

# Run the scenarios against each (one after the other: a 2-core machine).
python3 "$HERE/diff.py" --bootstrap "$KAFKA_BOOT" --out "$WORK/kafka.json" 2>"$WORK/kafka-diff.log" \
  || { tail -n 30 "$WORK/kafka-diff.log" >&2; exit 1; }
python3 "$HERE/diff.py" --bootstrap "$SLUICE_BOOT" --out "$WORK/sluice.json" 2>"$WORK/sluice-diff.log" \
  || { tail -n 30 "$WORK/sluice-diff.log" >&2; exit 1; }
for b in kafka sluice; do
  if grep -q _scenario_failed "$WORK/$b.json"; then
    log "a scenario raised against $b (the exception is an observation; traceback in $WORK/$b-diff.log)"
  fi
done

rc=0
python3 "$HERE/diff.py" --compare "$WORK/kafka.json" "$WORK/sluice.json" || rc=$?
log "done in $((SECONDS - t0)) s"
exit $rc
