# A single KRaft Kafka node (broker and controller in one JVM) on 127.0.0.1, from
# the Apache Kafka jars on Maven Central.  Sourced by run_local.sh.
#
# Two client listeners: PLAINTEXT on BEAMLINE_KAFKA_PORT, and SASL_SSL (SCRAM-SHA-512
# over TLS, a self-signed certificate for 127.0.0.1) on BEAMLINE_KAFKA_SASL_PORT, for
# user `beamline`, whose client settings setup writes to
# .beamline/secrets/kafka-client.properties (docs/operating.md, Transport security).

KAFKA_DIR="$BEAMLINE_HOME/kafka"
KAFKA_LIBS="$KAFKA_DIR/libs"
KAFKA_PID="$KAFKA_DIR/kafka.pid"
KAFKA_PROPS="$KAFKA_DIR/server.properties"
KAFKA_POM="$ROOT/java/kafka-broker/pom.xml"
KAFKA_TLS="$KAFKA_DIR/tls"
KAFKA_SECRETS="$BEAMLINE_HOME/secrets"
KAFKA_CA="$KAFKA_SECRETS/kafka-ca.pem"
KAFKA_PASSWORD_FILE="$KAFKA_SECRETS/kafka_password"
KAFKA_CLIENT_PROPS="$KAFKA_SECRETS/kafka-client.properties"
KAFKA_SASL_USER=beamline

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
  kafka_tls_setup
  kafka_client_properties
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

# The broker's key and self-signed certificate (one PEM file, 0600), and the
# certificate alone as the clients' CA; made once.
kafka_tls_setup() {
  [ -s "$KAFKA_TLS/broker.pem" ] && [ -s "$KAFKA_CA" ] && return 0
  mkdir -p "$KAFKA_TLS" "$KAFKA_SECRETS"
  chmod 700 "$KAFKA_TLS" "$KAFKA_SECRETS"
  log "making the Kafka broker's TLS certificate (self-signed, 127.0.0.1)"
  self_signed_cert "$KAFKA_TLS/key.pem" "$KAFKA_TLS/cert.pem" beamline-kafka "$KAFKA_DIR/logs/tls.log"
  (umask 077 && cat "$KAFKA_TLS/key.pem" "$KAFKA_TLS/cert.pem" >"$KAFKA_TLS/broker.pem.tmp") \
    && mv "$KAFKA_TLS/broker.pem.tmp" "$KAFKA_TLS/broker.pem" && rm -f "$KAFKA_TLS/key.pem"
  cp "$KAFKA_TLS/cert.pem" "$KAFKA_CA.tmp" && mv "$KAFKA_CA.tmp" "$KAFKA_CA"
}

# The SCRAM user's password, generated once (0600); `tools.stack scram-user` gives it
# to the broker at each start, reading it back from the client properties.
kafka_password() {
  if [ ! -s "$KAFKA_PASSWORD_FILE" ]; then
    (umask 077 && head -c 24 /dev/urandom | base64 | tr -d '/+=' >"$KAFKA_PASSWORD_FILE")
  fi
  cat "$KAFKA_PASSWORD_FILE"
}

# The client settings for the SASL_SSL listener, as BEAMLINE_KAFKA_PROPERTIES takes them.
kafka_client_properties() {
  (umask 077 && cat >"$KAFKA_CLIENT_PROPS.tmp" <<PROPS
# Beamline's local broker, SASL_SSL listener 127.0.0.1:$BEAMLINE_KAFKA_SASL_PORT (made by ./run_local.sh setup)
security.protocol=SASL_SSL
sasl.mechanism=SCRAM-SHA-512
sasl.jaas.config=org.apache.kafka.common.security.scram.ScramLoginModule required username="$KAFKA_SASL_USER" password="$(kafka_password)";
ssl.truststore.type=PEM
ssl.truststore.location=$KAFKA_CA
PROPS
  ) && mv "$KAFKA_CLIENT_PROPS.tmp" "$KAFKA_CLIENT_PROPS"
}

kafka_write_properties() {
  # --standalone records the controller address at format time: a changed
  # controller port needs a fresh data folder.
  cat >"$KAFKA_PROPS.tmp" <<PROPS
process.roles=broker,controller
node.id=1
controller.quorum.bootstrap.servers=127.0.0.1:$BEAMLINE_KAFKA_CONTROLLER_PORT
listeners=PLAINTEXT://127.0.0.1:$BEAMLINE_KAFKA_PORT,SASL_SSL://127.0.0.1:$BEAMLINE_KAFKA_SASL_PORT,CONTROLLER://127.0.0.1:$BEAMLINE_KAFKA_CONTROLLER_PORT
advertised.listeners=PLAINTEXT://127.0.0.1:$BEAMLINE_KAFKA_PORT,SASL_SSL://127.0.0.1:$BEAMLINE_KAFKA_SASL_PORT,CONTROLLER://127.0.0.1:$BEAMLINE_KAFKA_CONTROLLER_PORT
inter.broker.listener.name=PLAINTEXT
controller.listener.names=CONTROLLER
listener.security.protocol.map=CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT,SASL_SSL:SASL_SSL
sasl.enabled.mechanisms=SCRAM-SHA-512
listener.name.sasl_ssl.scram-sha-512.sasl.jaas.config=org.apache.kafka.common.security.scram.ScramLoginModule required;
ssl.keystore.type=PEM
ssl.keystore.location=$KAFKA_TLS/broker.pem
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
  for p in "$BEAMLINE_KAFKA_PORT" "$BEAMLINE_KAFKA_SASL_PORT" "$BEAMLINE_KAFKA_CONTROLLER_PORT"; do
    port_open "$p" && die "port $p is busy (another Kafka?): stop what uses it, or set BEAMLINE_KAFKA_PORT / BEAMLINE_KAFKA_SASL_PORT / BEAMLINE_KAFKA_CONTROLLER_PORT"
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
    echo "kafka      running  pid $(cat "$KAFKA_PID")  127.0.0.1:$BEAMLINE_KAFKA_PORT, SASL_SSL $BEAMLINE_KAFKA_SASL_PORT (controller $BEAMLINE_KAFKA_CONTROLLER_PORT)"
  else
    echo "kafka      stopped"
  fi
}
