#!/usr/bin/env bash
# Measure Apache Kafka's own producer/consumer throughput on this machine,
# single-node KRaft (combined broker+controller), loopback only.
#
#   bench/kafka/run.sh            # resolve jars (Maven Central), run, clean up
#
# Env overrides:
#   KAFKA_JARS   jar directory (default /tmp/sluice-kafka-bench-jars; kept as a
#                cache between runs, never committed)
#   BROKER_HEAP  broker heap (default 2g)
#   TOOL_HEAP    heap for the perf tools (default 512m, as kafka-*-perf-test.sh)
#   SMALL_N / BIG_N  record counts (default 10000000 / 2000000)
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
KAFKA_JARS="${KAFKA_JARS:-/tmp/sluice-kafka-bench-jars}"
BROKER_HEAP="${BROKER_HEAP:-2g}"
TOOL_HEAP="${TOOL_HEAP:-512m}"
SMALL_N="${SMALL_N:-10000000}"
BIG_N="${BIG_N:-2000000}"
HOST=127.0.0.1
PORT=9092
CPORT=9093

log() { echo "[run.sh $(date +%H:%M:%S)] $*" >&2; }

# ---------------------------------------------------------------- jars
if ! ls "$KAFKA_JARS"/kafka_2.13-*.jar >/dev/null 2>&1 \
   || ! ls "$KAFKA_JARS"/kafka-tools-[0-9]*.jar >/dev/null 2>&1; then
  log "copying Kafka jars from Maven into $KAFKA_JARS"
  mkdir -p "$KAFKA_JARS"
  timeout 900 mvn -q -B -Dstyle.color=never -f "$HERE/pom.xml" dependency:copy-dependencies \
    -DincludeScope=runtime -DoutputDirectory="$KAFKA_JARS" >&2
fi
CP="$KAFKA_JARS/*"

# ---------------------------------------------------------------- temp dirs
WORK="$(mktemp -d /tmp/sluice-kafka-bench.XXXXXX)"
DATA="$WORK/data"
mkdir -p "$DATA" "$WORK/logs"
BROKER_PID=""

cleanup() {
  local rc=$?
  if [[ -n "$BROKER_PID" ]] && kill -0 "$BROKER_PID" 2>/dev/null; then
    log "stopping broker (pid $BROKER_PID)"
    kill -TERM "$BROKER_PID" 2>/dev/null || true
    for _ in $(seq 1 60); do
      kill -0 "$BROKER_PID" 2>/dev/null || break
      sleep 1
    done
    if kill -0 "$BROKER_PID" 2>/dev/null; then
      log "broker did not stop in 60s, SIGKILL"
      kill -KILL "$BROKER_PID" 2>/dev/null || true
    fi
    wait "$BROKER_PID" 2>/dev/null || true
  fi
  if [[ $rc -ne 0 && -f "$WORK/logs/server.log" ]]; then
    log "failed (rc=$rc); last broker log lines:"
    tail -n 30 "$WORK/logs/server.log" >&2 || true
  fi
  rm -rf "$WORK"
  log "removed $WORK"
  exit $rc
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# ---------------------------------------------------------------- config
# Broker config = Kafka 4.x config/server.properties, with listeners pinned to
# 127.0.0.1 and log.dirs in the temp dir.
cat > "$WORK/server.properties" <<EOF
process.roles=broker,controller
node.id=1
controller.quorum.bootstrap.servers=$HOST:$CPORT
listeners=PLAINTEXT://$HOST:$PORT,CONTROLLER://$HOST:$CPORT
inter.broker.listener.name=PLAINTEXT
advertised.listeners=PLAINTEXT://$HOST:$PORT,CONTROLLER://$HOST:$CPORT
controller.listener.names=CONTROLLER
listener.security.protocol.map=CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT
num.network.threads=3
num.io.threads=8
socket.send.buffer.bytes=102400
socket.receive.buffer.bytes=102400
socket.request.max.bytes=104857600
log.dirs=$DATA
num.partitions=1
num.recovery.threads.per.data.dir=1
offsets.topic.replication.factor=1
share.coordinator.state.topic.replication.factor=1
share.coordinator.state.topic.min.isr=1
transaction.state.log.replication.factor=1
transaction.state.log.min.isr=1
log.retention.hours=168
log.segment.bytes=1073741824
log.retention.check.interval.ms=300000
EOF

# log4j2: broker logs to a file (INFO), tools only WARN+ to stderr.
cat > "$WORK/log4j2-broker.properties" <<EOF
status = warn
appender.f.type = File
appender.f.name = F
appender.f.fileName = $WORK/logs/server.log
appender.f.layout.type = PatternLayout
appender.f.layout.pattern = [%d] %p %m (%c)%n
rootLogger.level = INFO
rootLogger.appenderRef.f.ref = F
EOF
cat > "$WORK/log4j2-tools.properties" <<EOF
status = warn
appender.e.type = Console
appender.e.name = E
appender.e.target = SYSTEM_ERR
appender.e.layout.type = PatternLayout
appender.e.layout.pattern = [%d] %p %m (%c)%n
rootLogger.level = WARN
rootLogger.appenderRef.e.ref = E
EOF

# JVM flags as in Kafka's bin/kafka-run-class.sh.
JVM_PERF=(-server -XX:+UseG1GC -XX:MaxGCPauseMillis=20
          -XX:InitiatingHeapOccupancyPercent=35 -XX:+ExplicitGCInvokesConcurrent
          -XX:MaxInlineLevel=15 -Djava.awt.headless=true)
tool() {  # tool <timeout-seconds> <main-class> args...
  local t=$1; shift
  timeout --kill-after=10 "$t" java "-Xmx$TOOL_HEAP" "${JVM_PERF[@]}" \
    "-Dlog4j2.configurationFile=$WORK/log4j2-tools.properties" \
    -cp "$CP" "$@"
}

wait_for_quiet() {  # wait up to 120s for 1-min load average <= 1.5
  local l
  for _ in $(seq 1 24); do
    l=$(cut -d' ' -f1 /proc/loadavg)
    awk -v l="$l" 'BEGIN{exit !(l <= 1.5)}' && { log "loadavg $l"; return 0; }
    log "loadavg $l > 1.5, waiting"
    sleep 5
  done
  log "WARNING: loadavg still $(cut -d' ' -f1 /proc/loadavg) after 120s; measuring anyway"
}

# ---------------------------------------------------------------- info
KVER="$(ls "$KAFKA_JARS"/kafka_2.13-*.jar | sed 's/.*kafka_2.13-//; s/\.jar$//')"
log "Kafka $KVER; $(nproc) cores; $(free -g | awk '/^Mem:/{print $2}') GiB RAM; java: $(java -version 2>&1 | head -1)"

# ---------------------------------------------------------------- format + start
CLUSTER_ID="$(tool 60 kafka.tools.StorageTool random-uuid)"
log "formatting KRaft storage, cluster id $CLUSTER_ID"
tool 120 kafka.tools.StorageTool format --standalone \
  -t "$CLUSTER_ID" -c "$WORK/server.properties" >&2

log "starting broker (heap $BROKER_HEAP)"
java "-Xms$BROKER_HEAP" "-Xmx$BROKER_HEAP" "${JVM_PERF[@]}" \
  "-Dlog4j2.configurationFile=$WORK/log4j2-broker.properties" \
  -cp "$CP" kafka.Kafka "$WORK/server.properties" \
  >"$WORK/logs/stdout.log" 2>&1 &
BROKER_PID=$!

up=0
for _ in $(seq 1 120); do
  kill -0 "$BROKER_PID" 2>/dev/null || { log "broker exited"; cat "$WORK/logs/stdout.log" >&2; exit 1; }
  if grep -q "Kafka Server started" "$WORK/logs/server.log" 2>/dev/null; then up=1; break; fi
  sleep 1
done
[[ $up == 1 ]] || { log "broker not up after 120s"; exit 1; }
log "broker up (pid $BROKER_PID)"

# ---------------------------------------------------------------- runs
run_pair() {  # run_pair <topic> <num-records> <record-size>
  local topic=$1 n=$2 size=$3
  tool 120 org.apache.kafka.tools.TopicCommand --bootstrap-server "$HOST:$PORT" \
    --create --topic "$topic" --partitions 1 --replication-factor 1 >&2

  wait_for_quiet
  echo "== producer: topic=$topic num-records=$n record-size=$size"
  tool 1800 org.apache.kafka.tools.ProducerPerformance --topic "$topic" \
    --num-records "$n" --record-size "$size" --throughput -1 \
    --producer-props bootstrap.servers="$HOST:$PORT"

  wait_for_quiet
  echo "== consumer: topic=$topic num-records=$n"
  tool 1800 org.apache.kafka.tools.ConsumerPerformance \
    --bootstrap-server "$HOST:$PORT" --topic "$topic" --num-records "$n"
}

run_pair bench "$SMALL_N" 100
run_pair big "$BIG_N" 1000

log "done"
