# A single KRaft Kafka node (broker and controller in one JVM) on 127.0.0.1, from
# the Apache Kafka jars on Maven Central.  Sourced by run_local.sh.

KAFKA_DIR="$BEAMLINE_HOME/kafka"
KAFKA_LIBS="$KAFKA_DIR/libs"
KAFKA_PID="$KAFKA_DIR/kafka.pid"
KAFKA_PROPS="$KAFKA_DIR/server.properties"
KAFKA_POM="$ROOT/java/kafka-broker/pom.xml"

# java with the broker's classpath and logging; the storage tool and the broker share it.
# An array, not a function, so that the PID of a background start is java's own.
KAFKA_JAVA=(java -cp "$KAFKA_LIBS/*" -Dlog4j2.configurationFile="$ROOT/scripts/kafka-log4j2.yaml"
  -Dkafka.logs.dir="$KAFKA_DIR/logs")

kafka_setup() {
  mkdir -p "$KAFKA_DIR/logs" "$KAFKA_DIR/data"
  local h; h=$(inputs_hash "$KAFKA_POM")
  if ! stamp_ok "$KAFKA_DIR/libs.stamp" "$h"; then
    log "collecting the Kafka broker jars with Maven"
    mvn_copy_deps "$KAFKA_POM" "$KAFKA_LIBS"
    echo "$h" >"$KAFKA_DIR/libs.stamp"
  fi
  kafka_write_properties
  if [ ! -s "$KAFKA_DIR/cluster.id" ]; then
    "${KAFKA_JAVA[@]}" kafka.tools.StorageTool random-uuid >"$KAFKA_DIR/cluster.id.tmp"
    mv "$KAFKA_DIR/cluster.id.tmp" "$KAFKA_DIR/cluster.id"
  fi
  if [ ! -f "$KAFKA_DIR/data/meta.properties" ]; then
    log "formatting Kafka storage (cluster id $(cat "$KAFKA_DIR/cluster.id"))"
    "${KAFKA_JAVA[@]}" kafka.tools.StorageTool format --standalone -t "$(cat "$KAFKA_DIR/cluster.id")" \
      -c "$KAFKA_PROPS" --ignore-formatted >"$KAFKA_DIR/logs/format.log" 2>&1 \
      || die "formatting Kafka storage failed (see $KAFKA_DIR/logs/format.log); delete $KAFKA_DIR/data to start afresh"
  fi
}

kafka_write_properties() {
  # --standalone records the controller address at format time: a changed
  # controller port needs a fresh data folder.
  cat >"$KAFKA_PROPS.tmp" <<PROPS
process.roles=broker,controller
node.id=1
controller.quorum.bootstrap.servers=127.0.0.1:$BEAMLINE_KAFKA_CONTROLLER_PORT
listeners=PLAINTEXT://127.0.0.1:$BEAMLINE_KAFKA_PORT,CONTROLLER://127.0.0.1:$BEAMLINE_KAFKA_CONTROLLER_PORT
advertised.listeners=PLAINTEXT://127.0.0.1:$BEAMLINE_KAFKA_PORT,CONTROLLER://127.0.0.1:$BEAMLINE_KAFKA_CONTROLLER_PORT
inter.broker.listener.name=PLAINTEXT
controller.listener.names=CONTROLLER
listener.security.protocol.map=CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT
log.dirs=$KAFKA_DIR/data
num.partitions=$BEAMLINE_KAFKA_PARTITIONS
offsets.topic.replication.factor=1
offsets.topic.num.partitions=3
transaction.state.log.replication.factor=1
transaction.state.log.min.isr=1
share.coordinator.state.topic.replication.factor=1
share.coordinator.state.topic.min.isr=1
group.initial.rebalance.delay.ms=0
auto.create.topics.enable=false
log.retention.hours=168
PROPS
  if [ -f "$KAFKA_PROPS" ] && ! cmp -s "$KAFKA_PROPS" "$KAFKA_PROPS.tmp" \
      && [ -f "$KAFKA_DIR/data/meta.properties" ] \
      && ! grep -q "127.0.0.1:$BEAMLINE_KAFKA_CONTROLLER_PORT" "$KAFKA_PROPS"; then
    rm -f "$KAFKA_PROPS.tmp"
    die "the Kafka controller port changed since storage was formatted: run ./run_local.sh stop, delete $KAFKA_DIR/data, then setup again"
  fi
  mv "$KAFKA_PROPS.tmp" "$KAFKA_PROPS"
}

kafka_running() { pid_alive "$KAFKA_PID" "kafka.Kafka $KAFKA_PROPS"; }

kafka_start() {
  if kafka_running; then
    log "Kafka already running (pid $(cat "$KAFKA_PID")) on 127.0.0.1:$BEAMLINE_KAFKA_PORT"
    return 0
  fi
  [ -f "$KAFKA_DIR/data/meta.properties" ] || die "Kafka is not set up: run ./run_local.sh setup"
  local p
  for p in "$BEAMLINE_KAFKA_PORT" "$BEAMLINE_KAFKA_CONTROLLER_PORT"; do
    port_open "$p" && die "port $p is busy (another Kafka?): stop what uses it, or set BEAMLINE_KAFKA_PORT / BEAMLINE_KAFKA_CONTROLLER_PORT"
  done
  log "starting Kafka on 127.0.0.1:$BEAMLINE_KAFKA_PORT"
  # Only lines written by this start count as readiness.
  local log_lines
  log_lines=$(cat "$KAFKA_DIR/logs/server.log" 2>/dev/null | wc -l)
  # The same heap as Kafka's own scripts: a tiny heap fails in the log cleaner.
  nohup "${KAFKA_JAVA[@]}" -Xms1G -Xmx1G -XX:+UseG1GC kafka.Kafka "$KAFKA_PROPS" \
    >"$KAFKA_DIR/logs/stdout.log" 2>&1 </dev/null &
  local pid=$!
  echo "$pid" >"$KAFKA_PID"
  kafka_ready() {
    if ! started_alive "$pid"; then
      tail -n 20 "$KAFKA_DIR/logs/stdout.log" >&2 2>/dev/null || true
      die "Kafka exited while starting (see $KAFKA_DIR/logs/server.log and stdout.log)"
    fi
    port_open "$BEAMLINE_KAFKA_PORT" \
      && tail -n "+$((log_lines + 1))" "$KAFKA_DIR/logs/server.log" 2>/dev/null | grep -q "Kafka Server started"
  }
  wait_for 90 kafka_ready \
    || die "Kafka did not start within 90 s (see $KAFKA_DIR/logs/server.log)"
  log "Kafka started (pid $(cat "$KAFKA_PID"))"
}

kafka_stop() { stop_pid "$KAFKA_PID" "kafka.Kafka $KAFKA_PROPS" "Kafka"; }

kafka_status() {
  if kafka_running; then
    echo "kafka      running  pid $(cat "$KAFKA_PID")  127.0.0.1:$BEAMLINE_KAFKA_PORT (controller $BEAMLINE_KAFKA_CONTROLLER_PORT)"
  else
    echo "kafka      stopped"
  fi
}
