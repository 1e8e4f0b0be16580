#!/usr/bin/env bash
# A single-node Apache Kafka (KRaft, no ZooKeeper) on loopback, for tests, benchmarks and local trials.
#
#   scripts/kafka.sh fetch                 download Kafka's jars (Maven Central only, via `mvn`), cached
#   scripts/kafka.sh start [NAME] [PORT]   format a temp log dir and start a broker+controller; prints
#                                          the bootstrap address (127.0.0.1:PORT) as the LAST stdout line
#   scripts/kafka.sh stop [NAME]           stop it (SIGTERM, then SIGKILL after 20 s) and delete its data
#   scripts/kafka.sh status [NAME]         prints the bootstrap address and exits 0 if it answers
#   scripts/kafka.sh jars                  prints the classpath directory (after fetch)
#
# Where things come from: only Maven Central (https://repo.maven.apache.org/maven2) through `mvn
# dependency:copy-dependencies` on a generated pom; no downloads.apache.org tarball, no Docker image.
# Jars are cached in .cache/kafka/<version>/jars (gitignored) and Maven's own ~/.m2.
# NAME (default "default") lets several brokers run side by side (one test restarts its own broker).
# State lives in .cache/kafka/run/NAME/{pid,port,server.properties,log,data}.
# Env: KAFKA_VERSION (default 3.9.1), KAFKA_HEAP (default -Xmx512m -Xms128m), KAFKA_START_TIMEOUT_S (90).
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
KAFKA_VERSION="${KAFKA_VERSION:-3.9.1}"
SCALA="2.13"
CACHE="${WATTSPLIT_KAFKA_CACHE:-$ROOT/.cache/kafka}"
JARS="$CACHE/$KAFKA_VERSION/jars"
RUN="$CACHE/run"
HEAP="${KAFKA_HEAP:--Xmx512m -Xms128m}"
START_TIMEOUT_S="${KAFKA_START_TIMEOUT_S:-90}"

log() { echo "kafka.sh: $*" >&2; }
die() { log "$*"; exit 1; }

need_java() {
  command -v java >/dev/null 2>&1 || die "java not found (install a JRE 17+: apt-get install default-jre-headless)"
}

fetched() { [ -f "$JARS/.complete" ]; }

cmd_fetch() {
  if fetched; then log "jars cached in $JARS"; return 0; fi
  command -v mvn >/dev/null 2>&1 || die "mvn not found (apt-get install maven); Kafka's jars come from Maven Central through it"
  need_java
  local work="$CACHE/$KAFKA_VERSION/pom"
  mkdir -p "$work" "$JARS"
  # kafka_2.13 is the broker (kafka.Kafka, kafka.tools.StorageTool); its pom pulls kafka-clients,
  # kafka-server(-common), kafka-metadata, kafka-raft, kafka-storage, kafka-group-coordinator, scala,
  # jackson... kafka-tools adds the admin CLIs. slf4j-reload4j gives the broker a log backend.
  cat >"$work/pom.xml" <<EOF
<project xmlns="http://maven.apache.org/POM/4.0.0">
  <modelVersion>4.0.0</modelVersion>
  <groupId>dev.wattsplit</groupId>
  <artifactId>kafka-runtime</artifactId>
  <version>1</version>
  <packaging>pom</packaging>
  <repositories>
    <repository><id>central</id><url>https://repo.maven.apache.org/maven2</url></repository>
  </repositories>
  <dependencies>
    <dependency><groupId>org.apache.kafka</groupId><artifactId>kafka_${SCALA}</artifactId><version>${KAFKA_VERSION}</version></dependency>
    <dependency><groupId>org.apache.kafka</groupId><artifactId>kafka-tools</artifactId><version>${KAFKA_VERSION}</version></dependency>
    <dependency><groupId>org.slf4j</groupId><artifactId>slf4j-reload4j</artifactId><version>1.7.36</version></dependency>
  </dependencies>
</project>
EOF
  log "fetching Apache Kafka $KAFKA_VERSION jars from Maven Central (first run only)..."
  if ! mvn -q -B -f "$work/pom.xml" dependency:copy-dependencies \
        -DoutputDirectory="$JARS" -DincludeScope=runtime >"$work/mvn.log" 2>&1; then
    tail -30 "$work/mvn.log" >&2
    die "mvn dependency:copy-dependencies failed (full log: $work/mvn.log)"
  fi
  ls "$JARS"/kafka_${SCALA}-*.jar >/dev/null 2>&1 || die "no kafka_${SCALA} jar in $JARS after mvn"
  touch "$JARS/.complete"
  log "jars in $JARS ($(ls "$JARS" | wc -l) files)"
}

free_port() {
  node -e 'const s=require("net").createServer();s.listen(0,"127.0.0.1",()=>{console.log(s.address().port);s.close()})'
}

# Answers when the broker accepts a TCP connection AND its log says it started (the socket opens a
# little before the broker can serve metadata).
answers() {
  local dir="$1" port="$2"
  grep -q "Kafka Server started\|\[KafkaRaftServer nodeId=1\] Kafka Server started" "$dir/server.log" 2>/dev/null || return 1
  node -e 'const s=require("net").connect(+process.argv[1],"127.0.0.1");s.on("connect",()=>{s.end();process.exit(0)});s.on("error",()=>process.exit(1));setTimeout(()=>process.exit(1),2000)' "$port"
}

alive() { [ -f "$1/pid" ] && kill -0 "$(cat "$1/pid")" 2>/dev/null; }

cmd_start() {
  local name="${1:-default}" port="${2:-}"
  fetched || cmd_fetch
  need_java
  local dir="$RUN/$name"
  if alive "$dir"; then
    port="$(cat "$dir/port")"
    if answers "$dir" "$port"; then log "already running"; echo "127.0.0.1:$port"; return 0; fi
  fi
  # Keep the data dir when restarting the same NAME on the same port (a broker restart keeps its log).
  if [ -z "$port" ]; then
    rm -rf "$dir"
    port="$(free_port)"
  fi
  mkdir -p "$dir/data"
  local cport; cport="$(free_port)"
  cat >"$dir/server.properties" <<EOF
process.roles=broker,controller
node.id=1
controller.quorum.voters=1@127.0.0.1:${cport}
listeners=PLAINTEXT://127.0.0.1:${port},CONTROLLER://127.0.0.1:${cport}
advertised.listeners=PLAINTEXT://127.0.0.1:${port}
controller.listener.names=CONTROLLER
listener.security.protocol.map=CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT
inter.broker.listener.name=PLAINTEXT
log.dirs=${dir}/data
num.partitions=4
auto.create.topics.enable=true
delete.topic.enable=true
offsets.topic.replication.factor=1
offsets.topic.num.partitions=4
transaction.state.log.replication.factor=1
transaction.state.log.min.isr=1
min.insync.replicas=1
default.replication.factor=1
group.initial.rebalance.delay.ms=0
log.retention.hours=24
log.segment.bytes=67108864
num.network.threads=2
num.io.threads=2
background.threads=2
EOF
  cat >"$dir/log4j.properties" <<EOF
log4j.rootLogger=INFO, file
log4j.appender.file=org.apache.log4j.FileAppender
log4j.appender.file.File=${dir}/server.log
log4j.appender.file.layout=org.apache.log4j.PatternLayout
log4j.appender.file.layout.ConversionPattern=[%d] %p %m (%c)%n
log4j.logger.kafka=INFO
log4j.logger.org.apache.kafka=INFO
log4j.logger.state.change.logger=WARN
log4j.logger.kafka.request.logger=WARN
EOF
  echo "$port" >"$dir/port"
  local cp="$JARS/*"
  if [ ! -f "$dir/data/meta.properties" ]; then
    local cid
    cid="$(java -cp "$cp" kafka.tools.StorageTool random-uuid 2>/dev/null | tail -1)"
    [ -n "$cid" ] || die "kafka.tools.StorageTool random-uuid printed nothing"
    java -Dlog4j.configuration="file:$dir/log4j.properties" -cp "$cp" kafka.tools.StorageTool format \
      -t "$cid" -c "$dir/server.properties" >"$dir/format.log" 2>&1 \
      || { cat "$dir/format.log" >&2; die "StorageTool format failed"; }
  fi
  : >"$dir/server.log"
  # setsid: the broker gets its own process group so `stop` can end it and nothing else.
  setsid java $HEAP -XX:+UseG1GC -XX:MaxGCPauseMillis=20 -Djava.awt.headless=true \
    -Dlog4j.configuration="file:$dir/log4j.properties" -cp "$cp" kafka.Kafka "$dir/server.properties" \
    >"$dir/stdout.log" 2>&1 </dev/null &
  echo $! >"$dir/pid"
  local deadline=$((SECONDS + START_TIMEOUT_S))
  until answers "$dir" "$port"; do
    if ! alive "$dir"; then tail -30 "$dir/stdout.log" "$dir/server.log" >&2; die "broker exited during start"; fi
    if [ $SECONDS -ge $deadline ]; then
      tail -30 "$dir/server.log" >&2
      cmd_stop "$name" >/dev/null 2>&1 || true
      die "broker did not answer within ${START_TIMEOUT_S}s"
    fi
    sleep 0.5
  done
  log "broker $name up (pid $(cat "$dir/pid"), data $dir/data)"
  echo "127.0.0.1:$port"
}

# stop NAME [--keep-data]
cmd_stop() {
  local name="${1:-default}" keep="${2:-}"
  local dir="$RUN/$name"
  if alive "$dir"; then
    local pid; pid="$(cat "$dir/pid")"
    kill -TERM "$pid" 2>/dev/null || true
    for _ in $(seq 1 40); do kill -0 "$pid" 2>/dev/null || break; sleep 0.5; done
    if kill -0 "$pid" 2>/dev/null; then log "broker $name ignored SIGTERM for 20 s, killing"; kill -KILL "$pid" 2>/dev/null || true; fi
  fi
  rm -f "$dir/pid"
  if [ "$keep" != "--keep-data" ]; then rm -rf "$dir"; fi
  log "broker $name stopped"
}

cmd_status() {
  local name="${1:-default}" dir="$RUN/${1:-default}"
  if alive "$dir" && answers "$dir" "$(cat "$dir/port")"; then echo "127.0.0.1:$(cat "$dir/port")"; return 0; fi
  log "broker $name not running"; return 1
}

case "${1:-}" in
  fetch) cmd_fetch ;;
  start) shift; cmd_start "$@" ;;
  stop) shift; cmd_stop "$@" ;;
  status) shift; cmd_status "$@" ;;
  jars) fetched || die "not fetched (run: scripts/kafka.sh fetch)"; echo "$JARS" ;;
  *) echo "usage: scripts/kafka.sh fetch | start [NAME] [PORT] | stop [NAME] [--keep-data] | status [NAME] | jars" >&2; exit 2 ;;
esac
