#!/usr/bin/env bash
# Print the directory holding the Apache Kafka 4.4 jars (broker + kafka-tools),
# resolving them from Maven Central with bench/kafka/pom.xml when missing --
# the same resolution and cache as bench/kafka/run.sh.
#
#   KAFKA_JARS  jar directory (default /tmp/sluice-kafka-bench-jars, a cache
#               shared with bench/kafka/run.sh; never committed)
set -euo pipefail
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
POM="$HERE/../../bench/kafka/pom.xml"
KAFKA_JARS="${KAFKA_JARS:-/tmp/sluice-kafka-bench-jars}"
if ! ls "$KAFKA_JARS"/kafka_2.13-*.jar >/dev/null 2>&1 \
   || ! ls "$KAFKA_JARS"/kafka-tools-[0-9]*.jar >/dev/null 2>&1; then
  echo "[jars.sh] copying Kafka jars from Maven into $KAFKA_JARS" >&2
  mkdir -p "$KAFKA_JARS"
  timeout 900 mvn -q -B -Dstyle.color=never -f "$POM" dependency:copy-dependencies \
    -DincludeScope=runtime -DoutputDirectory="$KAFKA_JARS" >&2
fi
echo "$KAFKA_JARS"
