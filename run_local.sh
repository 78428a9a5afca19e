#!/usr/bin/env bash
# Beamline's local stack and main job.  Ports: docs/operating.md.
#
#   ./run_local.sh [--events N] set up if needed, start the stack, run the main job + reconcile
#   ./run_local.sh setup        install and prepare everything (idempotent, fast when done)
#   ./run_local.sh start        start Kafka and PostgreSQL, create topics, migrate tables
#                               (start kafka|postgres: that one only)
#   ./run_local.sh stop         stop them (stop kafka|postgres: that one only)
#   ./run_local.sh status       say what runs where
#   ./run_local.sh test         set up, start, run the whole test suite, stop what it started
#   ./run_local.sh flink setup|start|stop|status|stop-job RUN_ID
#                               the standalone Flink cluster for --runner flink-cluster
#   ./run_local.sh drill NAME [--at 0.4] [main-job flags]
#                               a streaming run with a fault mid-feed (docs/reliability.md)
#   ./run_local.sh drill all --seeds N [--seed S] [main-job flags]
#                               every drill with seeds S (default 1) to S+N-1, then a table
#   ./run_local.sh bench [--runner direct|prism|flink|flink-cluster] [--parallelism N]
#                        [--events N] [--seed S]
#                               Beamline vs a hand-written consumer and in-memory loop (100,000)
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
source "$ROOT/scripts/common.sh"
source "$ROOT/scripts/python.sh"
source "$ROOT/scripts/kafka.sh"
source "$ROOT/scripts/postgres.sh"
source "$ROOT/scripts/java.sh"
source "$ROOT/scripts/prism.sh"
source "$ROOT/scripts/flink.sh"

cmd_setup() {
  mkdir -p "$BEAMLINE_HOME/logs"
  require_java
  require_maven
  python_setup
  java_setup
  flink_setup
  prism_setup
  kafka_setup
  pg_setup
  log "setup complete"
}

cmd_start() {
  [ -x "$PY" ] || die "the stack is not set up: run ./run_local.sh setup"
  case "${1:-}" in
    kafka) kafka_start; return ;;
    postgres) pg_start; return ;;
    "") ;;
    *) die "usage: ./run_local.sh start [kafka|postgres]" ;;
  esac
  kafka_start
  pg_start
  cd "$ROOT"  # the operator's tools run from the checkout (they are not packaged)
  # The local stack's administration uses the PLAINTEXT listener, whatever client
  # settings the shell exports for the pipeline.
  local admin=(env -u BEAMLINE_KAFKA_PROPERTIES -u BEAMLINE_KAFKA_BOOTSTRAP_SERVERS "$PY" -m tools.stack)
  "${admin[@]}" create-topics
  "${admin[@]}" scram-user
  "${admin[@]}" migrate
}

cmd_stop() {
  case "${1:-}" in
    kafka) kafka_stop ;;
    postgres) pg_stop ;;
    "") kafka_stop; pg_stop ;;
    *) die "usage: ./run_local.sh stop [kafka|postgres]" ;;
  esac
}

cmd_status() {
  kafka_status
  pg_status
  echo "state      $BEAMLINE_HOME"
  echo "jars       $(expansion_dir)"
}

# The whole test suite, by marker.  Services this command started are stopped at
# the end; services that were already running are left running.
KAFKA_WAS_UP=0
PG_WAS_UP=0

stop_what_test_started() {
  [ "$KAFKA_WAS_UP" = 1 ] || kafka_stop
  [ "$PG_WAS_UP" = 1 ] || pg_stop
}

cmd_test() {
  cmd_setup
  flink_cluster_setup # the cluster's streaming test starts and stops the cluster itself
  kafka_running && KAFKA_WAS_UP=1
  pg_running && PG_WAS_UP=1
  trap stop_what_test_started EXIT
  cmd_start
  cd "$ROOT"
  "$PY" -m ruff check .
  # The docs/ pages as a site; --strict fails on a page missing from the nav or a
  # broken link (mkdocs.yml's validation).  Built into the state folder, not the tree.
  "$PY" -m mkdocs build --strict --site-dir "$BEAMLINE_HOME/site"
  "$PY" -m pytest -m unit --durations=10 "$@"
  "$PY" -m pytest -m integration --durations=10 "$@"
  "$PY" -m pytest -m streaming --durations=10 "$@"
}

# The main job: produce a run of customer events (10,000 by default, --events N),
# run the pipeline over exactly those records, then reconcile the run from its
# sinks.  Other flags go to python -m run.
cmd_main() {
  cmd_setup
  cmd_start
  cd "$ROOT"
  "$PY" -m tools.main_job "$@"
}

# The benchmark: Beamline end to end against a hand-written single-process consumer
# and the same per-record work in memory, on the same records of a fresh topic.
cmd_bench() {
  cmd_setup
  cmd_start
  cd "$ROOT"
  "$PY" -m tools.bench "$@"
}

# A fault drill (tools/drill.py): a streaming run with one fault mid-feed, reconciled.
cmd_drill() {
  cmd_setup
  cmd_start
  cd "$ROOT"
  "$PY" -m tools.drill "$@"
}

cmd_flink() {
  case "${1:-}" in
    setup) cmd_setup; flink_cluster_setup ;;
    start) cmd_setup; flink_cluster_setup; cmd_start; flink_cluster_start ;;
    stop) flink_cluster_stop ;;
    status) flink_cluster_status ;;
    stop-job) shift; cd "$ROOT"; "$PY" -m tools.flink_job "$@" ;;
    start-taskmanager) flink_taskmanager_start ;;
    *) die "usage: ./run_local.sh flink setup|start|stop|status|stop-job RUN_ID|start-taskmanager" ;;
  esac
}

case "${1:-}" in
  setup) shift; cmd_setup "$@" ;;
  start) shift; cmd_start "$@" ;;
  stop) shift; cmd_stop "$@" ;;
  status) shift; cmd_status "$@" ;;
  test) shift; cmd_test "$@" ;;
  bench) shift; cmd_bench "$@" ;;
  flink) shift; cmd_flink "$@" ;;
  drill) shift; cmd_drill "$@" ;;
  -h | --help | help) sed -n '2,19p' "$0" | sed 's/^# \{0,1\}//' ;;
  "" | -*) cmd_main "$@" ;;
  *) die "unknown command '$1': use setup, start, stop, status, test, bench, flink or drill (./run_local.sh --help)" ;;
esac
