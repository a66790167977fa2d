#!/usr/bin/env bash
# Kafka's own Java test tools (kafka-tools 4.4) against a Kafka wire-protocol
# broker, verified as Kafka's system tests verify them.
#
#   tests/conformance/java.sh HOST:PORT
#
# 1. VerifiableProducer: N integers, acks=all, idempotence: every one acked
#    once, offsets contiguous per partition.
# 2. VerifiableConsumer (a group, from its JSON events): every produced value
#    consumed exactly once at the offset it was acked at; the last commits are
#    the end offsets.
# 3. TransactionalMessageCopier, as tests/kafkatest/tests/core/
#    transactions_test.py: an input topic (2 partitions) seeded by an
#    idempotent VerifiableProducer, one copier per input partition (same
#    group, --use-group-metadata, here also --enable-random-aborts) into a
#    3-partition output topic, a read_committed ConsoleConsumer reading the
#    output concurrently; then a verifying read_committed consumer. Both reads
#    have no duplicates and equal the input set; the group has no lag.
# 4. The same with 1 partition in and out, the copier SIGKILLed 3 times at
#    >= 20% progress and restarted with the same transactional id
#    (transactions_test's hard client bounce with check_order): output ==
#    input, in order, for both reads.
# Reads stop at a fence: after the copiers, one plain record "END" is produced
# to every output partition, so a read_committed read of N + fences records
# has seen everything before them (and a duplicate shows up as a missing one).
# Every step is bounded. Last line: conformance: N passed, N failed
set -euo pipefail

[[ $# -eq 1 ]] || { echo "usage: $0 HOST:PORT" >&2; exit 2; }
B=$1
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
JARS="$("$HERE/jars.sh")"
SFX="$(python3 -c 'import uuid; print(uuid.uuid4().hex[:10])')"
WORK="$(mktemp -d /tmp/sluice-conformance-java.XXXXXX)"
PIDS=()  # background JVMs of the running check (each check is a subshell)
kill_bg() {
  local p
  for p in "${PIDS[@]}"; do kill -KILL "$p" 2>/dev/null || true; done
  for p in "${PIDS[@]}"; do wait "$p" 2>/dev/null || true; done
}
cleanup() { kill_bg; rm -rf "$WORK"; }
trap cleanup EXIT
trap 'exit 130' INT TERM

N_PRODUCE="${N_PRODUCE:-10000}"
N_COPY="${N_COPY:-20000}"
N_BOUNCE="${N_BOUNCE:-20000}"

cat > "$WORK/log4j2.properties" <<EOF
status = warn
appender.e.type = Console
appender.e.name = E
appender.e.target = SYSTEM_ERR
appender.e.layout.type = PatternLayout
appender.e.layout.pattern = [%d] %p %m (%c)%n
rootLogger.level = WARN
rootLogger.appenderRef.e.ref = E
EOF
printf 'enable.idempotence=true\nacks=all\nretries=2147483647\nmax.in.flight.requests.per.connection=5\n' \
  > "$WORK/idempotent.properties"

JAVA=(java -Xmx256m -XX:+UseSerialGC -XX:TieredStopAtLevel=1 -Djava.awt.headless=true
      "-Dlog4j2.configurationFile=$WORK/log4j2.properties" -cp "$JARS/*")
tool() {  # tool SECONDS CLASS args...  (bounded)
  local t=$1; shift
  timeout --kill-after=10 "$t" "${JAVA[@]}" "$@"
}

bg_java() {  # bg_java OUTFILE CLASS args...: start a JVM in the background (BG_PID)
  local out=$1; shift
  "${JAVA[@]}" "$@" >> "$out" 2>> "$WORK/bg.err" &
  BG_PID=$!
  PIDS+=("$BG_PID")
}
wait_bounded() {  # wait_bounded PID SECONDS WHAT: wait for a background JVM, fail on timeout / non-zero exit
  local pid=$1 deadline=$((SECONDS + $2)) rc=0
  while kill -0 "$pid" 2>/dev/null && ((SECONDS < deadline)); do sleep 0.2; done
  if kill -0 "$pid" 2>/dev/null; then
    kill -KILL "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
    tail -5 "$WORK/bg.err" 2>/dev/null || true
    die "$3 did not finish in $2 s"
  fi
  wait "$pid" || rc=$?
  ((rc == 0)) || { tail -5 "$WORK/bg.err" 2>/dev/null || true; die "$3 exited with $rc"; }
}

pass=0; fail=0
log() { echo "[java.sh $(date +%H:%M:%S)] $*"; }
# Each check runs in a subshell: die ends it.
die() { echo "  $*"; exit 1; }
run() {  # run NAME FUNCTION
  log "== java $1"
  if ( trap kill_bg EXIT; "$2" ); then log "PASS java $1"; pass=$((pass + 1)); else log "FAIL java $1"; fail=$((fail + 1)); fi
}

create_topic() {  # create_topic NAME PARTITIONS
  tool 120 org.apache.kafka.tools.TopicCommand --bootstrap-server "$B" --create \
    --topic "$1" --partitions "$2" --replication-factor 1 > /dev/null || die "cannot create topic $1"
}

seed() {  # seed TOPIC N OUTFILE: VerifiableProducer, idempotent, acks=all
  tool 300 org.apache.kafka.tools.VerifiableProducer --bootstrap-server "$B" --topic "$1" \
    --max-messages "$2" --acks -1 --command-config "$WORK/idempotent.properties" > "$3" \
    || die "VerifiableProducer failed (rc $?)"
  python3 - "$3" "$2" <<'PY' || die "VerifiableProducer's events do not show $2 records acked once"
import json, sys
path, n = sys.argv[1], int(sys.argv[2])
ev = [json.loads(l) for l in open(path) if l.startswith("{")]
ok = [e for e in ev if e["name"] == "producer_send_success"]
errs = [e for e in ev if e["name"] == "producer_send_error"]
assert not errs, f"{len(errs)} send errors, first {errs[0]}"
vals = sorted(int(e["value"]) for e in ok)
assert vals == list(range(n)), f"{len(ok)} acks for {len(set(vals))} distinct values, {n} sent"
at = [(e["partition"], e["offset"]) for e in ok]
assert len(set(at)) == n, "two records acked at the same partition/offset"
for p in {a[0] for a in at}:
    offs = sorted(o for q, o in at if q == p)
    assert offs == list(range(len(offs))), f"partition {p}: acked offsets not contiguous from 0"
data = [e for e in ev if e["name"] == "tool_data"]
assert data and data[-1]["acked"] == n and data[-1]["sent"] == n, f"tool_data {data[-1:]}"
print(f"  {n} records acked once over partitions "
      f"{ {p: sum(1 for a in at if a[0] == p) for p in sorted({a[0] for a in at})} }")
PY
}

fence() {  # fence TOPIC PARTITIONS: one plain "END" record per partition (keys by murmur2)
  python3 - "$2" > "$WORK/fence.in" <<'PY'
import sys
def murmur2(d):
    m, h = 0x5BD1E995, (0x9747B28C ^ len(d)) & 0xFFFFFFFF
    for i in range(len(d) // 4):
        k = int.from_bytes(d[4 * i:4 * i + 4], "little")
        k = (k * m) & 0xFFFFFFFF; k ^= k >> 24; k = (k * m) & 0xFFFFFFFF
        h = ((h * m) & 0xFFFFFFFF) ^ k
    r, t = len(d) % 4, len(d) & ~3
    if r >= 3: h ^= d[t + 2] << 16
    if r >= 2: h ^= d[t + 1] << 8
    if r >= 1: h ^= d[t]; h = (h * m) & 0xFFFFFFFF
    h ^= h >> 13; h = (h * m) & 0xFFFFFFFF; h ^= h >> 15
    return h
n, keys, i = int(sys.argv[1]), {}, 0
while len(keys) < n:
    k = f"end-{i}"; keys.setdefault((murmur2(k.encode()) & 0x7FFFFFFF) % n, k); i += 1
for p in range(n): print(f"{keys[p]}:END")
PY
  tool 120 org.apache.kafka.tools.ConsoleProducer --bootstrap-server "$B" --topic "$1" \
    --reader-property parse.key=true --reader-property key.separator=: \
    --command-property acks=all < "$WORK/fence.in" || die "cannot produce the END fence to $1"
}

read_committed() {  # read_committed TOPIC GROUP COUNT OUTFILE: start in background (BG_PID)
  : > "$4"
  bg_java "$4" org.apache.kafka.tools.consumer.ConsoleConsumer --bootstrap-server "$B" \
    --topic "$1" --group "$2" --from-beginning --isolation-level read_committed \
    --max-messages "$3" --timeout-ms 120000
}

verify_copy() {  # verify_copy INPUT_EVENTS OUTPUT_VALUES FENCES CHECK_ORDER NAME
  python3 - "$@" <<'PY'
import json, sys
events, out, fences, check_order, name = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4] == "1", sys.argv[5]
inp = [e["value"] for e in (json.loads(l) for l in open(events) if l.startswith("{"))
       if e["name"] == "producer_send_success"]
got = [l.rstrip("\n") for l in open(out)]
ends = [v for v in got if v == "END"]
vals = [v for v in got if v != "END"]
assert len(ends) == fences, f"{name}: {len(ends)} of {fences} END fences read ({len(vals)} values read, {len(set(vals))} distinct, {len(inp)} input)"
dups = len(vals) - len(set(vals))
assert dups == 0, f"{name}: {dups} duplicates in the output"
assert set(vals) == set(inp), f"{name}: input and output sets differ: {len(set(inp) - set(vals))} missing, {len(set(vals) - set(inp))} unexpected"
if check_order:
    assert inp == sorted(inp, key=int), "the seed messages themselves were not in order"
    assert vals == inp, f"{name}: output not in input order"
print(f"  {name}: {len(vals)} records, each input record exactly once" + (", in order" if check_order else ""))
PY
}

no_lag() {  # no_lag GROUP
  tool 120 org.apache.kafka.tools.consumer.group.ConsumerGroupCommand --bootstrap-server "$B" \
    --describe --group "$1" --offsets > "$WORK/lag.txt" 2>&1 || { cat "$WORK/lag.txt"; die "cannot describe group $1"; }
  python3 - "$WORK/lag.txt" "$1" <<'PY'
import sys
rows = [l.split() for l in open(sys.argv[1]) if l.startswith(sys.argv[2] + " ")]
assert rows, open(sys.argv[1]).read()
for r in rows:  # GROUP TOPIC PARTITION CURRENT-OFFSET LOG-END-OFFSET LAG ...
    assert r[3] == r[4] and r[5] == "0", f"group {sys.argv[2]} partition {r[2]}: committed {r[3]}, end {r[4]}, lag {r[5]}"
print(f"  group {sys.argv[2]}: committed offsets = end offsets on {len(rows)} input partitions")
PY
}

# ------------------------------------------------------------------ 1 + 2
T_VP="conf-java-vp-$SFX"
produce_check() {
  create_topic "$T_VP" 3
  seed "$T_VP" "$N_PRODUCE" "$WORK/vp.json"
}
consume_check() {
  [[ -s "$WORK/vp.json" ]] || die "nothing produced (scenario 1 failed)"
  tool 180 org.apache.kafka.tools.VerifiableConsumer --bootstrap-server "$B" --topic "$T_VP" \
    --group-id "conf-java-vc-$SFX" --max-messages "$N_PRODUCE" --verbose --reset-policy earliest \
    > "$WORK/vc.json" || die "VerifiableConsumer failed (rc $?)"
  python3 - "$WORK/vp.json" "$WORK/vc.json" <<'PY' || die "VerifiableConsumer's events do not match the producer's"
import json, sys
ld = lambda p: [json.loads(l) for l in open(p) if l.startswith("{")]
prod = {e["value"]: (e["partition"], e["offset"]) for e in ld(sys.argv[1]) if e["name"] == "producer_send_success"}
ev = ld(sys.argv[2])
recs = [e for e in ev if e["name"] == "record_data"]
seen = {}
for r in recs:
    assert r["value"] not in seen, f"value {r['value']} consumed twice"
    seen[r["value"]] = (r["partition"], r["offset"])
assert set(seen) == set(prod), f"consumed {len(seen)} values, produced {len(prod)}"
bad = [v for v in prod if prod[v] != seen[v]]
assert not bad, f"{len(bad)} values consumed at another partition/offset, e.g. {bad[:3]}"
counted = sum(e["count"] for e in ev if e["name"] == "records_consumed")
assert counted == len(prod), f"records_consumed events count {counted}"
last = {}
for e in ev:
    if e["name"] == "offsets_committed":
        assert e["success"], f"failed commit: {e}"
        for o in e["offsets"]:
            last[o["partition"]] = o["offset"]
ends = {}
for p, o in prod.values():
    ends[p] = max(ends.get(p, 0), o + 1)
assert last == ends, f"last commits {last} != end offsets {ends}"
assert any(e["name"] == "partitions_assigned" for e in ev) and ev[-1]["name"] in ("shutdown_complete", "shutdown_requested")
print(f"  {len(seen)} values consumed once each at their acked offsets; last commits = end offsets {ends}")
PY
}

# ------------------------------------------------------------------ 3
copier() {  # copier IN PARTITION OUT TXID GROUP OUTFILE [extra args]: start in background (BG_PID)
  local in=$1 p=$2 out=$3 txid=$4 group=$5 file=$6; shift 6
  bg_java "$file" org.apache.kafka.tools.TransactionalMessageCopier \
    --broker-list "$B" --input-topic "$in" --input-partition "$p" --output-topic "$out" \
    --transactional-id "$txid" --consumer-group "$group" --transaction-size 200 \
    --transaction-timeout 40000 --use-group-metadata "$@"
}

copy_check() {
  local in="conf-java-txn-in-$SFX" out="conf-java-txn-out-$SFX" group="conf-java-copier-$SFX" rc c0 c1
  create_topic "$in" 2
  create_topic "$out" 3
  seed "$in" "$N_COPY" "$WORK/seed.json"
  read_committed "$out" "conf-java-concurrent-$SFX" $((N_COPY + 3)) "$WORK/concurrent.txt"; rc=$BG_PID
  copier "$in" 0 "$out" "copier-0-$SFX" "$group" "$WORK/copier0.json" --enable-random-aborts; c0=$BG_PID
  copier "$in" 1 "$out" "copier-1-$SFX" "$group" "$WORK/copier1.json" --enable-random-aborts; c1=$BG_PID
  wait_bounded "$c0" 300 "copier 0"
  wait_bounded "$c1" 300 "copier 1"
  for f in "$WORK/copier0.json" "$WORK/copier1.json"; do
    grep -iE 'shutdown_?complete' "$f" | grep -q '"remaining":0[,}]' \
      || die "a copier stopped before copying all: $(tail -1 "$f")"
  done
  echo "  2 copiers done (random aborts on)"
  fence "$out" 3
  wait_bounded "$rc" 180 "the concurrent read_committed consumer"
  verify_copy "$WORK/seed.json" "$WORK/concurrent.txt" 3 0 "concurrent read_committed consumer" || exit 1
  read_committed "$out" "conf-java-verifying-$SFX" $((N_COPY + 3)) "$WORK/verify.txt"
  wait_bounded "$BG_PID" 180 "the verifying read_committed consumer"
  verify_copy "$WORK/seed.json" "$WORK/verify.txt" 3 0 "verifying read_committed consumer" || exit 1
  no_lag "$group"
}

# ------------------------------------------------------------------ 4
progress_at_least() {  # progress_at_least FILE PERCENT: the copier's latest status line
  python3 - "$1" "$2" <<'PY'
import json, sys
last = None
for l in open(sys.argv[1]):
    if l.startswith("{") and '"ProcessLoop"' in l:
        last = l
if last is None:
    sys.exit(1)
try:
    s = json.loads(last)
except ValueError:
    sys.exit(1)
done, left = s["totalProcessed"], s["remaining"]
sys.exit(0 if left == 0 or 100.0 * done / (done + left) >= float(sys.argv[2]) else 1)
PY
}

bounce_check() {
  local in="conf-java-bounce-in-$SFX" out="conf-java-bounce-out-$SFX" group="conf-java-bouncer-$SFX"
  local txid="copier-bounce-$SFX" rc c round deadline
  create_topic "$in" 1
  create_topic "$out" 1
  seed "$in" "$N_BOUNCE" "$WORK/bseed.json"
  read_committed "$out" "conf-java-bconcurrent-$SFX" $((N_BOUNCE + 1)) "$WORK/bconcurrent.txt"; rc=$BG_PID
  for round in 1 2 3; do
    : > "$WORK/bcopier$round.json"
    copier "$in" 0 "$out" "$txid" "$group" "$WORK/bcopier$round.json"; c=$BG_PID
    deadline=$((SECONDS + 120))
    until progress_at_least "$WORK/bcopier$round.json" 20; do
      kill -0 "$c" 2>/dev/null || break
      ((SECONDS < deadline)) || die "round $round: copier made no 20% progress in 120s"
      sleep 0.2  # poll interval
    done
    kill -KILL "$c" 2>/dev/null || true
    wait "$c" 2>/dev/null || true
    echo "  round $round: copier SIGKILLed after $(grep '"ProcessLoop"' "$WORK/bcopier$round.json" | tail -1 \
      | python3 -c 'import json,sys; s=json.loads(sys.stdin.read()); print(s["totalProcessed"], "of", s["totalProcessed"] + s["remaining"], "copied by this run")')"
  done
  copier "$in" 0 "$out" "$txid" "$group" "$WORK/bcopier4.json"; c=$BG_PID
  wait_bounded "$c" 300 "the last copier"
  grep -iE 'shutdown_?complete' "$WORK/bcopier4.json" | grep -q '"remaining":0[,}]' \
    || die "the last copier stopped before copying all: $(tail -1 "$WORK/bcopier4.json")"
  fence "$out" 1
  wait_bounded "$rc" 180 "the concurrent read_committed consumer"
  verify_copy "$WORK/bseed.json" "$WORK/bconcurrent.txt" 1 1 "concurrent read_committed consumer" || exit 1
  read_committed "$out" "conf-java-bverifying-$SFX" $((N_BOUNCE + 1)) "$WORK/bverify.txt"
  wait_bounded "$BG_PID" 180 "the verifying read_committed consumer"
  verify_copy "$WORK/bseed.json" "$WORK/bverify.txt" 1 1 "verifying read_committed consumer" || exit 1
  no_lag "$group"
}

log "Kafka tools $(ls "$JARS"/kafka-tools-[0-9]*.jar | sed 's/.*kafka-tools-//; s/\.jar$//') against $B"
run "1 VerifiableProducer (acks=all, idempotent)" produce_check
run "2 VerifiableConsumer (group) reads every value once" consume_check
run "3 TransactionalMessageCopier x2 with random aborts" copy_check
run "4 TransactionalMessageCopier SIGKILLed 3x, restarted, in order" bounce_check
echo "conformance: $pass passed, $fail failed"
[[ $fail -eq 0 ]]
