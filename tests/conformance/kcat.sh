#!/usr/bin/env bash
# kcat (librdkafka) conformance checks for a Kafka wire-protocol broker.
#
#   tests/conformance/kcat.sh HOST:PORT
#
# 1. per codec (none gzip snappy lz4 zstd): produce keyed records with headers
#    to a topic that does not exist yet (auto-created), consume them back
#    (-C -e): same keys, values, headers, partition 0, offsets 0..N-1;
# 2. metadata (-L -J): the broker, the controller, the topic with its leader;
# 3. a consumer group (-G): reads all records, commits; a second run of the
#    same group after more records are produced reads only the new ones;
# 4. a transactional produce (-X transactional.id) read back read_committed.
# Every kcat call is bounded (timeout). Last line: conformance: N passed, N failed
set -euo pipefail

[[ $# -eq 1 ]] || { echo "usage: $0 HOST:PORT" >&2; exit 2; }
B=$1
command -v kcat >/dev/null || { echo "kcat is not installed (make conformance-deps)"; echo "conformance: 0 passed, 1 failed"; exit 1; }
SFX="$(python3 -c 'import uuid; print(uuid.uuid4().hex[:10])')"
WORK="$(mktemp -d /tmp/sluice-conformance-kcat.XXXXXX)"
trap 'rm -rf "$WORK"' EXIT
T=60  # seconds, bound for every kcat call
N=200

pass=0; fail=0
log() { echo "[kcat.sh $(date +%H:%M:%S)] $*"; }
run() {  # run NAME FUNCTION args...
  local name=$1; shift
  log "== kcat $name"
  local out
  if out="$("$@" 2>&1)"; then
    [[ -n "$out" ]] && echo "$out"
    log "PASS kcat $name"; pass=$((pass + 1))
  else
    echo "$out"
    log "FAIL kcat $name"; fail=$((fail + 1))
  fi
}
# Each check runs in run's command substitution (a subshell): die ends it.
die() { echo "  $*"; exit 1; }

roundtrip() {  # roundtrip CODEC
  local codec=$1 topic="conf-kcat-$1-$SFX" i
  : > "$WORK/in"
  for ((i = 0; i < N; i++)); do  # kcat -H puts the same headers on every record
    printf 'key-%d:value-%d\n' "$i" "$i" >> "$WORK/in"
  done
  timeout "$T" kcat -b "$B" -P -t "$topic" -K: -z "$codec" \
    -H "src=kcat" -H "run=$SFX" < "$WORK/in" || die "produce failed"
  timeout "$T" kcat -b "$B" -C -t "$topic" -o beginning -e -q \
    -f '%k\t%s\t%h\t%p\t%o\n' > "$WORK/out" || die "consume failed"
  local o=0
  : > "$WORK/want"
  for ((i = 0; i < N; i++)); do
    printf 'key-%d\tvalue-%d\tsrc=kcat,run=%s\t0\t%d\n' "$i" "$i" "$SFX" "$i" >> "$WORK/want"
  done
  if ! cmp -s "$WORK/want" "$WORK/out"; then
    diff -u "$WORK/want" "$WORK/out" | head -20 || true
    die "consumed records differ from the produced ones ($(wc -l < "$WORK/out") lines read)"
  fi
  echo "  $codec: $N keyed records with headers round-tripped through auto-created $topic"
}

metadata() {
  local topic="conf-kcat-none-$SFX"
  timeout "$T" kcat -b "$B" -L -J -t "$topic" > "$WORK/md.json" || die "kcat -L failed"
  python3 - "$WORK/md.json" "$topic" "$B" <<'PY' || die "metadata check failed"
import json, sys
md = json.load(open(sys.argv[1]))
topic, bootstrap = sys.argv[2], sys.argv[3]
brokers = md["brokers"]
assert brokers, "no brokers in metadata"
assert any(b["name"] == bootstrap for b in brokers), f"bootstrap {bootstrap} not among brokers {brokers}"
assert md["controllerid"] in [b["id"] for b in brokers], f"controller {md['controllerid']} is not a listed broker"
ts = [t for t in md["topics"] if t["topic"] == topic]
assert len(ts) == 1 and "error" not in ts[0], f"topic {topic} missing or in error: {md['topics']}"
ps = ts[0]["partitions"]
assert len(ps) == 1, f"auto-created topic has {len(ps)} partitions, num.partitions=1"
assert ps[0]["leader"] in [b["id"] for b in brokers], f"partition leader {ps[0]['leader']} not a broker"
print(f"  -L: {len(brokers)} broker(s), controller {md['controllerid']}, {topic}: 1 partition led by {ps[0]['leader']}")
PY
  timeout "$T" kcat -b "$B" -L > "$WORK/md.txt" || die "kcat -L (all topics) failed"
  grep -q "topic \"$topic\" with 1 partitions" "$WORK/md.txt" || die "kcat -L does not list $topic: $(head -5 "$WORK/md.txt")"
}

group() {
  local topic="conf-kcat-gzip-$SFX" grp="conf-kcat-group-$SFX"
  # -G: balanced consumer; exit after N records; committed on close.
  timeout "$T" kcat -b "$B" -G "$grp" -X auto.offset.reset=earliest -q -c "$N" \
    -f '%s\n' "$topic" > "$WORK/g1" || die "first -G run failed"
  seq 0 $((N - 1)) | sed 's/^/value-/' > "$WORK/g1want"
  cmp -s "$WORK/g1want" "$WORK/g1" || die "first -G run read $(wc -l < "$WORK/g1") records, not value-0..value-$((N - 1)) in order"
  local i
  for ((i = N; i < N + 20; i++)); do printf 'key-%d:value-%d\n' "$i" "$i"; done \
    | timeout "$T" kcat -b "$B" -P -t "$topic" -K: -z gzip || die "produce failed"
  timeout "$T" kcat -b "$B" -G "$grp" -X auto.offset.reset=earliest -q -c 20 \
    -f '%s %o\n' "$topic" > "$WORK/g2" || die "second -G run failed"
  seq "$N" $((N + 19)) | awk '{print "value-" $1 " " $1}' > "$WORK/g2want"
  cmp -s "$WORK/g2want" "$WORK/g2" || { head -3 "$WORK/g2"; die "second -G run did not resume at the committed offset $N"; }
  echo "  -G $grp: $N records, then resumed at offset $N for the next 20"
}

transactional() {
  local topic="conf-kcat-txn-$SFX" i
  for ((i = 0; i < 50; i++)); do printf 'tk-%d:tv-%d\n' "$i" "$i"; done \
    | timeout "$T" kcat -b "$B" -P -t "$topic" -K: -X "transactional.id=conf-kcat-$SFX" \
    || die "transactional produce failed"
  timeout "$T" kcat -b "$B" -C -t "$topic" -o beginning -e -q -X isolation.level=read_committed \
    -f '%k:%s\n' > "$WORK/t" || die "read_committed consume failed"
  for ((i = 0; i < 50; i++)); do printf 'tk-%d:tv-%d\n' "$i" "$i"; done > "$WORK/twant"
  cmp -s "$WORK/twant" "$WORK/t" || die "read_committed read $(wc -l < "$WORK/t") records, not the 50 committed"
  echo "  50 records in one transaction, all read back read_committed"
}

log "$(kcat -V 2>&1 | grep -m1 Version) against $B"
for codec in none gzip snappy lz4 zstd; do
  run "1 produce/consume with keys + headers [$codec]" roundtrip "$codec"
done
run "2 metadata (-L)" metadata
run "3 consumer group (-G) + committed offsets" group
run "4 transactional produce, read_committed" transactional
echo "conformance: $pass passed, $fail failed"
[[ $fail -eq 0 ]]
