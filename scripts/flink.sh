# A standalone Flink cluster on 127.0.0.1 for `--runner flink-cluster`: one
# JobManager and one TaskManager with two slots, from the jars of PyPI's
# apache-flink-libraries (installed without its dependencies, which pin an old
# Beam), plus the two worker pools its Beam jobs run their stages in: Python SDK
# workers (EXTERNAL, beam_pipeline.worker_pool) and the Java expansion service whose
# loopback worker runs the Java stages; and Beam's Flink job server, which every
# driver submits to (--job_endpoint) instead of starting one of its own.  Sourced by
# run_local.sh.

FLINK_VERSION=1.19.3 # the Flink line of Beam's job server (java/flink-job-server)
FLINK_DIR="$BEAMLINE_HOME/flink"
FLINK_HOME_DIR="$FLINK_DIR/dist/pyflink" # lib/*.jar, bin/bash-java-utils.jar
FLINK_CONF="$FLINK_DIR/conf"
FLINK_STATE="$FLINK_DIR/state" # checkpoints/ and savepoints/, as file URIs
FLINK_LOGS="$BEAMLINE_HOME/logs"
export BEAMLINE_FLINK_REST_PORT="${BEAMLINE_FLINK_REST_PORT:-8081}"
export BEAMLINE_FLINK_RPC_PORT="${BEAMLINE_FLINK_RPC_PORT:-6123}"
export BEAMLINE_FLINK_BLOB_PORT="${BEAMLINE_FLINK_BLOB_PORT:-6124}"
export BEAMLINE_FLINK_TM_RPC_PORT="${BEAMLINE_FLINK_TM_RPC_PORT:-6122}"
export BEAMLINE_FLINK_TM_DATA_PORT="${BEAMLINE_FLINK_TM_DATA_PORT:-6121}"
export BEAMLINE_PYTHON_WORKERS_PORT="${BEAMLINE_PYTHON_WORKERS_PORT:-50000}"
export BEAMLINE_CLUSTER_EXPANSION_PORT="${BEAMLINE_CLUSTER_EXPANSION_PORT:-8097}"
export BEAMLINE_FLINK_JOB_PORT="${BEAMLINE_FLINK_JOB_PORT:-8099}"
export BEAMLINE_FLINK_ARTIFACT_PORT="${BEAMLINE_FLINK_ARTIFACT_PORT:-8098}"

FLINK_JM_PID="$FLINK_DIR/jobmanager.pid"
FLINK_TM_PID="$FLINK_DIR/taskmanager.pid"
FLINK_PY_PID="$FLINK_DIR/python-workers.pid"
FLINK_EXP_PID="$FLINK_DIR/expansion-service.pid"
FLINK_JS_PID="$FLINK_DIR/job-server.pid"
FLINK_JS_MARKER=beamline-flink-job-server # in the job server's command line (its jar)
FLINK_JM_MAIN=org.apache.flink.runtime.entrypoint.StandaloneSessionClusterEntrypoint
FLINK_TM_MAIN=org.apache.flink.runtime.taskexecutor.TaskManagerRunner

flink_cluster_setup() {
  mkdir -p "$FLINK_DIR" "$FLINK_STATE/checkpoints" "$FLINK_STATE/savepoints" "$FLINK_LOGS"
  if ! stamp_ok "$FLINK_DIR/dist.stamp" "$FLINK_VERSION" || [ ! -f "$FLINK_HOME_DIR/lib/flink-dist-$FLINK_VERSION.jar" ]; then
    log "installing Flink $FLINK_VERSION's jars from PyPI (apache-flink-libraries, without dependencies)"
    rm -rf "$FLINK_DIR/dist"
    "$PY" -m pip install -q --no-deps --target "$FLINK_DIR/dist" "apache-flink-libraries==$FLINK_VERSION" \
      >"$FLINK_LOGS/flink-pip.log" 2>&1 \
      || die "installing apache-flink-libraries failed (see $FLINK_LOGS/flink-pip.log); check that PyPI is reachable"
    echo "$FLINK_VERSION" >"$FLINK_DIR/dist.stamp"
  fi
  flink_write_conf
  flink_beam_lib_setup
}

# Beam's classes on the cluster's own classpath, after Flink's lib/: with
# classloader.resolve-order parent-first (flink_write_conf) each JobManager and
# TaskManager loads and compiles them once, not once per job in the job's own class
# loader.  The Flink job server's jars, linked from its lib/, but Flink's own
# (flink-*), Scala/Akka/Pekko, and what flink-dist already holds (the slf4j API and
# a second binding, log4j, Kryo and its helpers).  Every job still ships these jars
# (Beam's job server stages its whole classpath; docs/performance.md, Start-up on the
# Flink cluster); with parent-first they are not loaded from there.
FLINK_BEAM_LIB="$FLINK_DIR/beam-lib"

flink_beam_lib_setup() {
  local src jar
  src="$(flink_job_server_dir)/lib"
  [ -d "$src" ] || die "Beam's Flink job server is not staged in $src: run ./run_local.sh setup"
  rm -rf "$FLINK_BEAM_LIB" && mkdir -p "$FLINK_BEAM_LIB"
  for jar in "$src"/*.jar; do
    case "$(basename "$jar")" in
      flink-* | scala-* | *akka* | *pekko* | slf4j-* | log4j-* | kryo-* | minlog-* | chill-* | objenesis-*) ;;
      *) ln -s "$jar" "$FLINK_BEAM_LIB/" ;;
    esac
  done
}

flink_write_conf() {
  mkdir -p "$FLINK_CONF"
  cat >"$FLINK_CONF/flink-conf.yaml" <<CONF
# Written by run_local.sh (scripts/flink.sh): every server on loopback.
jobmanager.rpc.address: 127.0.0.1
jobmanager.bind-host: 127.0.0.1
jobmanager.rpc.port: $BEAMLINE_FLINK_RPC_PORT
blob.server.port: $BEAMLINE_FLINK_BLOB_PORT
rest.address: 127.0.0.1
rest.bind-address: 127.0.0.1
rest.port: $BEAMLINE_FLINK_REST_PORT
taskmanager.host: 127.0.0.1
taskmanager.bind-host: 127.0.0.1
taskmanager.rpc.port: $BEAMLINE_FLINK_TM_RPC_PORT
taskmanager.data.port: $BEAMLINE_FLINK_TM_DATA_PORT
taskmanager.numberOfTaskSlots: 2
parallelism.default: 2
jobmanager.memory.process.size: 1024m
taskmanager.memory.process.size: 3072m
# Direct memory for the FnAPI's gRPC data plane, which now carries batches of up to
# a few MB (one element per bundle): 128 MB of framework off-heap was not enough at
# parallelism 1 (OutOfMemoryError: Direct buffer memory, bench run ec76eb110847).
taskmanager.memory.task.off-heap.size: 256m
# The heap state backend (filesystem) uses no managed memory, Flink's default 40%:
# give most of it to the task heap, where the data plane buffers a stage's output
# (heap OutOfMemoryError at parallelism 1 in bench runs c858fb00ce6d, 58604d9cb9dc).
taskmanager.memory.managed.fraction: 0.05
state.checkpoints.dir: file://$FLINK_STATE/checkpoints
state.savepoints.dir: file://$FLINK_STATE/savepoints
execution.checkpointing.externalized-checkpoint-retention: RETAIN_ON_CANCELLATION
classloader.resolve-order: parent-first
CONF
  cat >"$FLINK_CONF/log4j2.properties" <<'CONF'
rootLogger.level = INFO
rootLogger.appenderRef.file.ref = MainAppender
appender.main.name = MainAppender
appender.main.type = File
appender.main.fileName = ${sys:log.file}
appender.main.layout.type = PatternLayout
appender.main.layout.pattern = %d{yyyy-MM-dd HH:mm:ss,SSS} %-5p %-60c %x - %m%n
CONF
}

# The JVM flags and dynamic properties Flink's own scripts compute from the
# configuration (BashJavaUtils GET_JM_RESOURCE_PARAMS / GET_TM_RESOURCE_PARAMS).
flink_resource_params() {
  java -cp "$FLINK_HOME_DIR/bin/bash-java-utils.jar:$FLINK_HOME_DIR/lib/*" \
    org.apache.flink.runtime.util.bash.BashJavaUtils "$1" --configDir "$FLINK_CONF" 2>/dev/null \
    | sed -n 's/^BASH_JAVA_UTILS_EXEC_RESULT://p'
}

# What Flink's own start scripts pass on Java 17 (its default env.java.opts.all): Kryo
# and Flink's serializers reach into these JDK packages.
FLINK_JAVA17_OPTS=(--add-exports=java.base/sun.net.util=ALL-UNNAMED
  --add-exports=java.rmi/sun.rmi.registry=ALL-UNNAMED
  --add-exports=java.security.jgss/sun.security.krb5=ALL-UNNAMED)
for pkg in java.lang java.net java.io java.nio sun.nio.ch java.lang.reflect java.text java.time \
  java.util java.util.concurrent java.util.concurrent.atomic java.util.concurrent.locks; do
  FLINK_JAVA17_OPTS+=("--add-opens=java.base/$pkg=ALL-UNNAMED")
done

# flink_java NAME PIDFILE MAIN RESOURCE_PARAMS: start one Flink process in the background.
flink_java() {
  local name="$1" pidfile="$2" main="$3" params jvm dynamic
  params=$(flink_resource_params "$4")
  jvm=$(sed -n 1p <<<"$params")
  dynamic=$(sed -n 2p <<<"$params")
  [ -n "$jvm" ] || die "Flink could not size the $name's memory from $FLINK_CONF/flink-conf.yaml"
  # shellcheck disable=SC2086 # the computed flags are words
  LD_PRELOAD="$(loopback_lib)${LD_PRELOAD:+:$LD_PRELOAD}" nohup java $jvm "${FLINK_JAVA17_OPTS[@]}" -Dlog.file="$FLINK_LOGS/flink-$name.log" \
    -Dlog4j.configurationFile="file:$FLINK_CONF/log4j2.properties" \
    -cp "$FLINK_HOME_DIR/lib/*:$FLINK_BEAM_LIB/*" "$main" --configDir "$FLINK_CONF" $dynamic \
    >"$FLINK_LOGS/flink-$name.out" 2>&1 </dev/null &
  echo "$!" >"$pidfile"
}

flink_cluster_running() { pid_alive "$FLINK_JM_PID" "$FLINK_JM_MAIN"; }

flink_overview() { curl -sf "http://127.0.0.1:$BEAMLINE_FLINK_REST_PORT/overview" 2>/dev/null; }

# Beam's Flink job server, long-lived: drivers submit to it (the cluster preset's
# --job_endpoint), so no run starts a JVM of its own to translate and submit its job.
# Its job and artifact services on loopback (--job-host, and the preload for the
# servers Beam builds with forPort); no expansion service of its own (the stack's is
# beside it); each job's staged artifacts removed when the job ends (its default).
flink_job_server_running() { pid_alive "$FLINK_JS_PID" "$FLINK_JS_MARKER"; }

flink_job_server_start() {
  local jar
  jar="$(flink_job_server_dir)/beamline-flink-job-server-$(flink_version).jar"
  [ -f "$jar" ] || die "Beam's Flink job server is not staged at $jar: run ./run_local.sh flink setup"
  mkdir -p "$FLINK_DIR/artifacts"
  # Its log (slf4j-simple) with each line's time, to read a submission's phases by.
  LD_PRELOAD="$(loopback_lib)${LD_PRELOAD:+:$LD_PRELOAD}" nohup java -Xmx1g \
    -Dorg.slf4j.simpleLogger.showDateTime=true \
    -Dorg.slf4j.simpleLogger.dateTimeFormat="yyyy-MM-dd HH:mm:ss,SSS" -jar "$jar" \
    --flink-master "127.0.0.1:$BEAMLINE_FLINK_REST_PORT" --job-host 127.0.0.1 \
    --job-port "$BEAMLINE_FLINK_JOB_PORT" --artifact-port "$BEAMLINE_FLINK_ARTIFACT_PORT" \
    --expansion-port -1 --artifacts-dir "$FLINK_DIR/artifacts" \
    >"$FLINK_LOGS/flink-job-server.log" 2>&1 </dev/null &
  echo "$!" >"$FLINK_JS_PID"
}

# A running cluster started without its job server (or whose job server stopped)
# gets one; `flink start` is the one command that brings the cluster's parts up.
flink_job_server_ensure() {
  flink_job_server_running && return 0
  local p
  for p in "$BEAMLINE_FLINK_JOB_PORT" "$BEAMLINE_FLINK_ARTIFACT_PORT"; do
    port_open "$p" && die "port $p is busy (another job server?): stop what uses it, or set BEAMLINE_FLINK_JOB_PORT / BEAMLINE_FLINK_ARTIFACT_PORT"
  done
  log "starting Beam's Flink job server (127.0.0.1:$BEAMLINE_FLINK_JOB_PORT)"
  flink_job_server_start
  js_ready() {
    started_alive "$(cat "$FLINK_JS_PID")" || die "the Flink job server exited while starting: see $FLINK_LOGS/flink-job-server.log"
    port_open "$BEAMLINE_FLINK_JOB_PORT"
  }
  wait_for 60 js_ready || die "the Flink job server did not start within 60 s (see $FLINK_LOGS/flink-job-server.log)"
}

flink_cluster_start() {
  if flink_cluster_running; then
    log "the Flink cluster is already running (REST 127.0.0.1:$BEAMLINE_FLINK_REST_PORT)"
    flink_job_server_ensure
    return 0
  fi
  [ -f "$FLINK_HOME_DIR/lib/flink-dist-$FLINK_VERSION.jar" ] && [ -d "$FLINK_BEAM_LIB" ] \
    || die "Flink is not set up: run ./run_local.sh flink setup"
  local p
  for p in "$BEAMLINE_FLINK_REST_PORT" "$BEAMLINE_FLINK_RPC_PORT" "$BEAMLINE_FLINK_BLOB_PORT" \
    "$BEAMLINE_FLINK_TM_RPC_PORT" "$BEAMLINE_FLINK_TM_DATA_PORT" "$BEAMLINE_PYTHON_WORKERS_PORT" \
    "$BEAMLINE_CLUSTER_EXPANSION_PORT" "$BEAMLINE_FLINK_JOB_PORT" "$BEAMLINE_FLINK_ARTIFACT_PORT"; do
    port_open "$p" && die "port $p is busy (another Flink?): stop what uses it, or set the BEAMLINE_FLINK_* / BEAMLINE_PYTHON_WORKERS_PORT / BEAMLINE_CLUSTER_EXPANSION_PORT variable for it"
  done
  log "starting the Flink cluster (REST 127.0.0.1:$BEAMLINE_FLINK_REST_PORT, one TaskManager with 2 slots)"
  flink_java jobmanager "$FLINK_JM_PID" "$FLINK_JM_MAIN" GET_JM_RESOURCE_PARAMS
  flink_java taskmanager "$FLINK_TM_PID" "$FLINK_TM_MAIN" GET_TM_RESOURCE_PARAMS
  # The Python SDK workers the TaskManager asks for (one process each), on loopback.
  PATH="$VENV/bin:$PATH" nohup "$PY" -m beam_pipeline.worker_pool \
    --service_port="$BEAMLINE_PYTHON_WORKERS_PORT" >"$FLINK_LOGS/python-workers.log" 2>&1 </dev/null &
  echo "$!" >"$FLINK_PY_PID"
  # The Java stages' worker: an expansion service that outlives any one driver.
  nohup "$PY" -m beam_pipeline.java_services --port="$BEAMLINE_CLUSTER_EXPANSION_PORT" \
    >"$FLINK_LOGS/cluster-expansion-service.log" 2>&1 </dev/null &
  echo "$!" >"$FLINK_EXP_PID"
  flink_job_server_start
  flink_ready() {
    local pidfile
    for pidfile in "$FLINK_JM_PID" "$FLINK_TM_PID" "$FLINK_PY_PID" "$FLINK_EXP_PID" "$FLINK_JS_PID"; do
      if ! started_alive "$(cat "$pidfile")"; then
        flink_cluster_stop >/dev/null 2>&1 || true
        die "a Flink cluster process exited while starting ($(basename "$pidfile" .pid)): see $FLINK_LOGS/flink-*.log, python-workers.log, cluster-expansion-service.log"
      fi
    done
    flink_overview | grep -q '"slots-total":2' && port_open "$BEAMLINE_PYTHON_WORKERS_PORT" \
      && port_open "$BEAMLINE_CLUSTER_EXPANSION_PORT" && port_open "$BEAMLINE_FLINK_JOB_PORT"
  }
  wait_for 120 flink_ready || die "the Flink cluster did not start within 120 s (see $FLINK_LOGS/flink-*.log)"
  log "Flink cluster started: http://127.0.0.1:$BEAMLINE_FLINK_REST_PORT"
}

# A new TaskManager for a running cluster (a fault drill's replacement for one it
# killed): the JobManager restarts the cluster's jobs on its slots from their last
# checkpoint.
flink_taskmanager_start() {
  flink_cluster_running || die "the Flink cluster is not running: ./run_local.sh flink start"
  pid_alive "$FLINK_TM_PID" "$FLINK_TM_MAIN" && die "a TaskManager is running (pid $(cat "$FLINK_TM_PID"))"
  tm_port_free() { ! port_open "$BEAMLINE_FLINK_TM_RPC_PORT"; }
  tm_up() { started_alive "$(cat "$FLINK_TM_PID")" && port_open "$BEAMLINE_FLINK_TM_RPC_PORT"; }
  wait_for 30 tm_port_free || die "port $BEAMLINE_FLINK_TM_RPC_PORT is still busy: the old TaskManager has not exited"
  log "starting a TaskManager (2 slots)"
  flink_java taskmanager "$FLINK_TM_PID" "$FLINK_TM_MAIN" GET_TM_RESOURCE_PARAMS
  wait_for 60 tm_up || die "the new TaskManager did not come up within 60 s (see $FLINK_LOGS/flink-taskmanager.log)"
}

flink_cluster_stop() {
  stop_pid "$FLINK_JS_PID" "$FLINK_JS_MARKER" "the cluster's Flink job server"
  stop_pid "$FLINK_EXP_PID" "beam_pipeline.java_services" "the cluster's expansion service"
  stop_pid "$FLINK_PY_PID" "beam_pipeline.worker_pool" "the cluster's Python workers"
  stop_pid "$FLINK_TM_PID" "$FLINK_TM_MAIN" "Flink's TaskManager"
  stop_pid "$FLINK_JM_PID" "$FLINK_JM_MAIN" "Flink's JobManager"
}

flink_cluster_status() {
  if flink_cluster_running; then
    echo "flink      running  REST http://127.0.0.1:$BEAMLINE_FLINK_REST_PORT  $(flink_overview)"
    echo "           python workers 127.0.0.1:$BEAMLINE_PYTHON_WORKERS_PORT, expansion service 127.0.0.1:$BEAMLINE_CLUSTER_EXPANSION_PORT, job server 127.0.0.1:$BEAMLINE_FLINK_JOB_PORT ($(flink_job_server_running && echo running || echo stopped))"
  else
    echo "flink      stopped"
  fi
}
