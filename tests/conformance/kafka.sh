#!/usr/bin/env bash
# Start / stop a single-node Apache Kafka 4.4 (KRaft, combined broker +
# controller) on 127.0.0.1 with ephemeral ports, as the reference broker for
# the conformance scenarios.
#
#   tests/conformance/kafka.sh start DIR   # data + logs under DIR; prints and
#                                          # writes the bootstrap to DIR/bootstrap
#   tests/conformance/kafka.sh stop DIR    # SIGTERM, wait, SIGKILL after a bound
#
# Env: KAFKA_JARS (see jars.sh), BROKER_HEAP (default 1g),
#      START_TIMEOUT (default 180 s), STOP_TIMEOUT (default 60 s),
#      KAFKA_EXTRA_PROPERTIES (optional: extra server.properties lines, appended
#      last, so they override the defaults above, e.g. 'auto.create.topics.enable=false').
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
BROKER_HEAP="${BROKER_HEAP:-1g}"
START_TIMEOUT="${START_TIMEOUT:-180}"
STOP_TIMEOUT="${STOP_TIMEOUT:-60}"
HOST=127.0.0.1

log() { echo "[kafka.sh $(date +%H:%M:%S)] $*" >&2; }
usage() { echo "usage: $0 start|stop DIR" >&2; exit 2; }

[[ $# -eq 2 ]] || usage
CMD=$1
DIR=$2

alive() { [[ -n "${1:-}" ]] && kill -0 "$1" 2>/dev/null; }

stop_broker() {
  local pid
  pid="$(cat "$DIR/broker.pid" 2>/dev/null || true)"
  if ! alive "$pid"; then
    rm -f "$DIR/broker.pid"
    log "no broker running for $DIR"
    return 0
  fi
  log "stopping broker (pid $pid)"
  kill -TERM "$pid" 2>/dev/null || true
  local deadline=$((SECONDS + STOP_TIMEOUT))
  while alive "$pid" && ((SECONDS < deadline)); do sleep 0.2; done
  if alive "$pid"; then
    log "broker did not stop in ${STOP_TIMEOUT}s, SIGKILL"
    kill -KILL "$pid" 2>/dev/null || true
    deadline=$((SECONDS + 10))
    while alive "$pid" && ((SECONDS < deadline)); do sleep 0.2; done
  fi
  rm -f "$DIR/broker.pid"
  log "broker stopped"
}

start_broker() {
  mkdir -p "$DIR"
  DIR="$(cd "$DIR" && pwd)"
  if alive "$(cat "$DIR/broker.pid" 2>/dev/null || true)"; then
    log "a broker is already running for $DIR (pid $(cat "$DIR/broker.pid"))"
    exit 1
  fi
  local jars
  jars="$("$HERE/jars.sh")"
  local cp="$jars/*"
  rm -rf "$DIR/data" "$DIR/logs"
  mkdir -p "$DIR/data" "$DIR/logs"

  # Two free ephemeral ports on loopback (plain listener, controller).
  local ports port cport
  ports="$(python3 -c '
import socket
ss = [socket.socket() for _ in range(2)]
for s in ss: s.bind(("127.0.0.1", 0))
print(" ".join(str(s.getsockname()[1]) for s in ss))
for s in ss: s.close()')"
  read -r port cport <<<"$ports"

  # Kafka 4.x config/server.properties (defaults otherwise), loopback only,
  # single-node replication factors, auto topic creation with 1 partition.
  cat > "$DIR/server.properties" <<PROPS
process.roles=broker,controller
node.id=1
controller.quorum.bootstrap.servers=$HOST:$cport
listeners=PLAINTEXT://$HOST:$port,CONTROLLER://$HOST:$cport
inter.broker.listener.name=PLAINTEXT
advertised.listeners=PLAINTEXT://$HOST:$port,CONTROLLER://$HOST:$cport
controller.listener.names=CONTROLLER
listener.security.protocol.map=CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT
log.dirs=$DIR/data
auto.create.topics.enable=true
num.partitions=1
offsets.topic.replication.factor=1
share.coordinator.state.topic.replication.factor=1
share.coordinator.state.topic.min.isr=1
transaction.state.log.replication.factor=1
transaction.state.log.min.isr=1
PROPS
  if [[ -n "${KAFKA_EXTRA_PROPERTIES:-}" ]]; then
    printf '%s\n' "$KAFKA_EXTRA_PROPERTIES" >> "$DIR/server.properties"
  fi

  cat > "$DIR/log4j2-broker.properties" <<PROPS
status = warn
appender.f.type = File
appender.f.name = F
appender.f.fileName = $DIR/logs/server.log
appender.f.layout.type = PatternLayout
appender.f.layout.pattern = [%d] %p %m (%c)%n
rootLogger.level = INFO
rootLogger.appenderRef.f.ref = F
PROPS
  cat > "$DIR/log4j2-tools.properties" <<PROPS
status = warn
appender.e.type = Console
appender.e.name = E
appender.e.target = SYSTEM_ERR
appender.e.layout.type = PatternLayout
appender.e.layout.pattern = [%d] %p %m (%c)%n
rootLogger.level = WARN
rootLogger.appenderRef.e.ref = E
PROPS

  local jvm=(-server -XX:+UseG1GC -XX:MaxGCPauseMillis=20
             -XX:InitiatingHeapOccupancyPercent=35 -XX:+ExplicitGCInvokesConcurrent
             -XX:MaxInlineLevel=15 -Djava.awt.headless=true)
  local cluster_id
  cluster_id="$(timeout 120 java -Xmx256m "${jvm[@]}" \
    "-Dlog4j2.configurationFile=$DIR/log4j2-tools.properties" \
    -cp "$cp" kafka.tools.StorageTool random-uuid)"
  timeout 120 java -Xmx256m "${jvm[@]}" \
    "-Dlog4j2.configurationFile=$DIR/log4j2-tools.properties" \
    -cp "$cp" kafka.tools.StorageTool format --standalone \
    -t "$cluster_id" -c "$DIR/server.properties" >"$DIR/logs/format.log" 2>&1 \
    || { cat "$DIR/logs/format.log" >&2; exit 1; }

  log "starting Kafka $(ls "$jars"/kafka_2.13-*.jar | sed 's/.*kafka_2.13-//; s/\.jar$//') on $HOST:$port (controller $cport), data in $DIR/data"
  # setsid: the broker outlives this script and gets no terminal signals.
  setsid java "-Xms$BROKER_HEAP" "-Xmx$BROKER_HEAP" "${jvm[@]}" \
    "-Dlog4j2.configurationFile=$DIR/log4j2-broker.properties" \
    -cp "$cp" kafka.Kafka "$DIR/server.properties" \
    </dev/null >"$DIR/logs/stdout.log" 2>&1 &
  local pid=$!
  echo "$pid" > "$DIR/broker.pid"

  # Ready = the broker answers ApiVersions and Metadata with a controller
  # (polled by probe.py, bounded); the broker dying ends the wait at once.
  local deadline=$((SECONDS + START_TIMEOUT))
  while ((SECONDS < deadline)); do
    if ! alive "$pid"; then
      log "broker exited during startup:"; tail -n 40 "$DIR/logs/stdout.log" "$DIR/logs/server.log" >&2 || true
      rm -f "$DIR/broker.pid"; exit 1
    fi
    if python3 "$HERE/probe.py" "$HOST:$port" --timeout 2 2>/dev/null; then
      echo "$HOST:$port" > "$DIR/bootstrap"
      log "broker ready at $HOST:$port (pid $pid)"
      echo "$HOST:$port"
      return 0
    fi
  done
  log "broker not ready after ${START_TIMEOUT}s; last log lines:"
  tail -n 40 "$DIR/logs/server.log" >&2 || true
  stop_broker
  exit 1
}

case "$CMD" in
  start) start_broker ;;
  stop) stop_broker ;;
  *) usage ;;
esac
