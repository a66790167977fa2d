#!/usr/bin/env bash
# Kafka Streams 4.4.0 vs sluice, side by side: the count-by-key benchmark of
# `sluice perf eos` (cli/src/perf/eos.rs) written with the Kafka Streams
# Processor API (src/main/java/sluice/bench/CountBench.java), against a
# single-node KRaft broker on loopback, then `sluice perf eos` with the same
# arguments on the same broker (sluice's Kafka backend) and on a fresh data dir (the
# embedded log), one after the other on the same machine.
#
#   bench/kafka-streams/run.sh
#
# Env overrides:
#   N, K                 records / distinct keys (default 2000000 / 10000)
#   THREADS, PARTITIONS  stream threads / partitions (default 2 / 4)
#   SLUICE               sluice binary (default $HOME/.cache/sluice-target/release/sluice)
#   KAFKA_JARS           broker jars, resolved by bench/kafka/pom.xml
#                        (default /tmp/sluice-kafka-bench-jars, a cache shared with bench/kafka)
#   STREAMS_JARS         Kafka Streams app jars, resolved by pom.xml here
#                        (default /tmp/sluice-kafka-streams-bench-jars, a cache)
#   BROKER_HEAP          broker heap (default 2g)
#   APP_HEAP             Kafka Streams app heap (default 2g; RocksDB is off-heap)
#   MAX_POLL_RECORDS     consumer max.poll.records of the Streams app (default
#                        10000 as sluice's bench; 0 = Kafka Streams' default)
#   CACHING              1 = enable the store's record cache (default 0)
#   SLUICE_ON_KAFKA      1 = also run `sluice perf eos --bootstrap-server` on the same
#                        broker, right after Kafka Streams (default 1)
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
KAFKA_POM="$HERE/../kafka/pom.xml"
KAFKA_JARS="${KAFKA_JARS:-/tmp/sluice-kafka-bench-jars}"
STREAMS_JARS="${STREAMS_JARS:-/tmp/sluice-kafka-streams-bench-jars}"
SLUICE="${SLUICE:-$HOME/.cache/sluice-target/release/sluice}"
BROKER_HEAP="${BROKER_HEAP:-2g}"
APP_HEAP="${APP_HEAP:-2g}"
TOOL_HEAP=512m
N="${N:-2000000}"
K="${K:-10000}"
THREADS="${THREADS:-2}"
PARTITIONS="${PARTITIONS:-4}"
MAX_POLL_RECORDS="${MAX_POLL_RECORDS:-10000}"
CACHING="${CACHING:-0}"
SLUICE_ON_KAFKA="${SLUICE_ON_KAFKA:-1}"
HOST=127.0.0.1
PORT=9092
CPORT=9093

log() { echo "[run.sh $(date +%H:%M:%S)] $*" >&2; }

[[ -x "$SLUICE" ]] || { log "no sluice binary at $SLUICE (set SLUICE)"; exit 1; }
for p in $PORT $CPORT; do
  if (exec 3<>"/dev/tcp/$HOST/$p") 2>/dev/null; then
    log "something already listens on $HOST:$p; stop it first"; exit 1
  fi
done

# ---------------------------------------------------------------- jars
# Broker jars: exactly as bench/kafka/run.sh (same pom, same cache dir).
if ! ls "$KAFKA_JARS"/kafka_2.13-*.jar >/dev/null 2>&1 \
   || ! ls "$KAFKA_JARS"/kafka-tools-[0-9]*.jar >/dev/null 2>&1; then
  log "copying Kafka broker jars from Maven into $KAFKA_JARS"
  mkdir -p "$KAFKA_JARS"
  timeout 900 mvn -q -B -Dstyle.color=never -f "$KAFKA_POM" dependency:copy-dependencies \
    -DincludeScope=runtime -DoutputDirectory="$KAFKA_JARS" >&2
fi
CP="$KAFKA_JARS/*"

# ---------------------------------------------------------------- temp dirs
WORK="$(mktemp -d /tmp/sluice-kafka-streams-bench.XXXXXX)"
DATA="$WORK/kafka-data"
mkdir -p "$DATA" "$WORK/logs" "$WORK/state"
BROKER_PID=""

stop_broker() {
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
  BROKER_PID=""
}

cleanup() {
  local rc=$?
  stop_broker
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

# CountBench: compiled into the temp dir, its runtime jars into $STREAMS_JARS.
log "building CountBench (Kafka Streams app jars into $STREAMS_JARS)"
mkdir -p "$STREAMS_JARS"
timeout 900 mvn -q -B -Dstyle.color=never -f "$HERE/pom.xml" package \
  -Dbench.buildDir="$WORK/build" -Dbench.jars="$STREAMS_JARS" >&2
APP_CP="$WORK/build/count-bench.jar:$STREAMS_JARS/*"

# ---------------------------------------------------------------- config
# Broker config = bench/kafka/run.sh's (Kafka 4.x config/server.properties,
# listeners on 127.0.0.1, log.dirs in the temp dir), plus
# group.initial.rebalance.delay.ms=0: with the default 3000 every app start
# would wait 3 s for more group members that never come (a single instance).
cat > "$WORK/server.properties" <<CONF
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
group.initial.rebalance.delay.ms=0
CONF

cat > "$WORK/log4j2-broker.properties" <<CONF
status = warn
appender.f.type = File
appender.f.name = F
appender.f.fileName = $WORK/logs/server.log
appender.f.layout.type = PatternLayout
appender.f.layout.pattern = [%d] %p %m (%c)%n
rootLogger.level = INFO
rootLogger.appenderRef.f.ref = F
CONF
cat > "$WORK/log4j2-tools.properties" <<CONF
status = warn
appender.e.type = Console
appender.e.name = E
appender.e.target = SYSTEM_ERR
appender.e.layout.type = PatternLayout
appender.e.layout.pattern = [%d] %p %m (%c)%n
rootLogger.level = WARN
rootLogger.appenderRef.e.ref = E
CONF

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
SVER="$(ls "$STREAMS_JARS"/kafka-streams-[0-9]*.jar | sed 's/.*kafka-streams-//; s/\.jar$//')"
log "broker Kafka $KVER; Kafka Streams $SVER; $(nproc) cores; java: $(java -version 2>&1 | head -1)"

# ---------------------------------------------------------------- broker
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

# ---------------------------------------------------------------- Kafka Streams
BENCH_ARGS=(--records "$N" --keys "$K" --threads "$THREADS" --partitions "$PARTITIONS"
            --commit-interval-ms 100 --latency-rate 20000 --latency-seconds 3)
APP_ARGS=("${BENCH_ARGS[@]}" --bootstrap "$HOST:$PORT" --state-dir "$WORK/state"
          --max-poll-records "$MAX_POLL_RECORDS")
[[ "$CACHING" == 1 ]] && APP_ARGS+=(--caching)

wait_for_quiet
log "kafka-streams: CountBench ${APP_ARGS[*]}"
t0=$(date +%s.%N)
timeout --kill-after=10 1800 java "-Xms$APP_HEAP" "-Xmx$APP_HEAP" "${JVM_PERF[@]}" \
  -cp "$APP_CP" sluice.bench.CountBench "${APP_ARGS[@]}" >"$WORK/kafka-streams.json"
KS_WALL=$(awk -v a="$t0" -v b="$(date +%s.%N)" 'BEGIN{printf "%.1f", b-a}')
log "kafka-streams: done in ${KS_WALL}s (incl. JVM start and producing the input)"

# ---------------------------------------------------------------- sluice on the same Kafka
if [[ "$SLUICE_ON_KAFKA" == 1 ]]; then
  wait_for_quiet
  log "sluice on Kafka: $SLUICE --data $WORK/sluice-kafka-state perf eos ${BENCH_ARGS[*]} --bootstrap-server $HOST:$PORT"
  t0=$(date +%s.%N)
  timeout --kill-after=10 1800 "$SLUICE" --data "$WORK/sluice-kafka-state" perf eos "${BENCH_ARGS[@]}" \
    --bootstrap-server "$HOST:$PORT" >"$WORK/sluice-kafka.json"
  SK_WALL=$(awk -v a="$t0" -v b="$(date +%s.%N)" 'BEGIN{printf "%.1f", b-a}')
  log "sluice on Kafka: done in ${SK_WALL}s (incl. producing the input)"
fi

stop_broker

# ---------------------------------------------------------------- sluice
wait_for_quiet
log "sluice: $SLUICE --data $WORK/sluice-data perf eos ${BENCH_ARGS[*]}"
t0=$(date +%s.%N)
timeout --kill-after=10 1800 "$SLUICE" --data "$WORK/sluice-data" perf eos "${BENCH_ARGS[@]}" \
  >"$WORK/sluice.json"
SL_WALL=$(awk -v a="$t0" -v b="$(date +%s.%N)" 'BEGIN{printf "%.1f", b-a}')
log "sluice: done in ${SL_WALL}s (incl. producing the input)"

# ---------------------------------------------------------------- report
echo "date: $(date -u +%Y-%m-%dT%H:%M:%SZ)"
echo "nproc: $(nproc)"
echo "free -g:"
free -g
echo "kafka-streams $SVER (broker $KVER, exactly_once_v2 / at_least_once, wall ${KS_WALL}s): $(cat "$WORK/kafka-streams.json")"
if [[ "$SLUICE_ON_KAFKA" == 1 ]]; then
  echo "sluice on the same Kafka broker (perf eos --bootstrap-server, wall ${SK_WALL}s): $(cat "$WORK/sluice-kafka.json")"
fi
echo "sluice $("$SLUICE" --version 2>/dev/null | awk '{print $NF}') (perf eos, embedded log, wall ${SL_WALL}s): $(cat "$WORK/sluice.json")"
log "done"
