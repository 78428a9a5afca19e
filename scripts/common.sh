# Shared settings and helpers for run_local.sh.  Sourced, never executed.
#
# Every piece of local state lives under $BEAMLINE_HOME (default: .beamline/ in the
# repository, ignored by git).  Ports and versions can be overridden from the
# environment; the defaults are the port table in docs/operating.md.

ROOT="${ROOT:-$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)}"
export BEAMLINE_HOME="${BEAMLINE_HOME:-$ROOT/.beamline}"
export BEAMLINE_KAFKA_PORT="${BEAMLINE_KAFKA_PORT:-9092}"
export BEAMLINE_KAFKA_CONTROLLER_PORT="${BEAMLINE_KAFKA_CONTROLLER_PORT:-9093}"
export BEAMLINE_KAFKA_SASL_PORT="${BEAMLINE_KAFKA_SASL_PORT:-9094}"
export BEAMLINE_PG_PORT="${BEAMLINE_PG_PORT:-55432}"
export BEAMLINE_PG_USER="${BEAMLINE_PG_USER:-beamline}"
export BEAMLINE_PG_WRITER="${BEAMLINE_PG_WRITER:-beamline_writer}"
export BEAMLINE_PG_DB="${BEAMLINE_PG_DB:-beamline}"
export BEAMLINE_KAFKA_PARTITIONS="${BEAMLINE_KAFKA_PARTITIONS:-3}"
# Every PostgreSQL client checks the local server's certificate (docs/operating.md, Transport security).
export BEAMLINE_PG_SSLMODE="${BEAMLINE_PG_SSLMODE:-verify-full}"
export BEAMLINE_PG_SSLROOTCERT="${BEAMLINE_PG_SSLROOTCERT-$BEAMLINE_HOME/secrets/pg-ca.pem}"

VENV="$BEAMLINE_HOME/venv"
PY="$VENV/bin/python"

# self_signed_cert KEY CERT CN LOG: a key (0600) and a self-signed certificate for
# 127.0.0.1 and localhost, valid 825 days; what openssl said goes to LOG.
self_signed_cert() {
  local key="$1" cert="$2" cn="$3" out="$4"
  command -v openssl >/dev/null \
    || die "openssl makes the local servers' TLS certificates and is not installed: apt-get install -y openssl"
  (umask 077 && openssl req -x509 -newkey rsa:2048 -nodes -days 825 -subj "/CN=$cn" \
    -addext "subjectAltName=IP:127.0.0.1,DNS:localhost" -keyout "$key" -out "$cert" >"$out" 2>&1) \
    || die "openssl could not make a certificate for $cn (see $out)"
}

log() { printf '[beamline] %s\n' "$*" >&2; }

# One line saying what is wrong and what to do, then a non-zero exit.
die() { printf 'beamline: error: %s\n' "$*" >&2; exit 1; }

# A stamp file records the hash of the inputs of a set-up step, so that a second
# `setup` skips the step when nothing it depends on has changed.
inputs_hash() { cat "$@" | sha256sum | cut -d' ' -f1; }
stamp_ok() { [ -f "$1" ] && [ "$(cat "$1")" = "$2" ]; }

port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

# wait_for SECONDS COMMAND...: poll COMMAND once a second until it succeeds;
# return non-zero after SECONDS.
wait_for() {
  local limit="$1"; shift
  local i
  for ((i = 0; i < limit; i++)); do
    "$@" && return 0
    sleep 1
  done
  return 1
}

# pid_alive PIDFILE MARKER: the recorded process is alive and is still ours: its
# command line holds MARKER (after a reboot a stale PID file may name a process
# that has nothing to do with Beamline, which stop must never signal).
pid_alive() {
  local pid
  [ -f "$1" ] && pid=$(cat "$1") && [[ "$pid" =~ ^[0-9]+$ ]] || return 1
  kill -0 "$pid" 2>/dev/null && tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null | grep -qF -- "$2"
}

# started_alive PID: a process this shell has just started has not exited (nor
# become a zombie).  Not pid_alive: until an exec chain (nohup -> java) has
# completed, the child's command line is still this shell's, so a marker check
# would report a live start as dead (seen in CI: "Kafka exited while starting").
started_alive() {
  kill -0 "$1" 2>/dev/null && ! grep -qs '^[0-9]* (.*) Z' "/proc/$1/stat"
}

# stop_pid PIDFILE MARKER NAME
stop_pid() {
  local pidfile="$1" marker="$2" name="$3" i
  if pid_alive "$pidfile" "$marker"; then
    kill -TERM "$(cat "$pidfile")"
    for ((i = 0; i < 60; i++)); do
      pid_alive "$pidfile" "$marker" || break
      sleep 1
    done
    if pid_alive "$pidfile" "$marker"; then
      log "$name did not stop within 60 s; killing it"
      kill -KILL "$(cat "$pidfile")" || true
    fi
    log "$name stopped"
  elif [ -f "$pidfile" ]; then
    log "$name was not running (stale PID file $pidfile removed; its PID is not Beamline's $name)"
  fi
  rm -f "$pidfile"
}

require_java() {
  command -v java >/dev/null 2>&1 || [ -n "${JAVA_HOME:-}" ] \
    || die "Java is not installed: install a JDK 17 (apt-get install openjdk-17-jdk-headless) or set JAVA_HOME"
  local v
  v=$(java -version 2>&1 | sed -n 's/.*version "\([0-9]*\).*/\1/p' | head -n1)
  [ -n "$v" ] && [ "$v" -ge 17 ] || die "Java 17 or newer is needed (found '${v:-none}'): install openjdk-17-jdk-headless or set JAVA_HOME"
}

require_maven() {
  command -v mvn >/dev/null 2>&1 || die "Maven is not installed: apt-get install maven"
}

# Maven with a pinned dependency plugin: plain `dependency:` on Maven 3.8 resolves an old one.
mvn_copy_deps() {
  local pom="$1" out="$2"
  rm -rf "$out" && mkdir -p "$out"
  mvn -B -q -f "$pom" org.apache.maven.plugins:maven-dependency-plugin:3.6.1:copy-dependencies \
    -DincludeScope=runtime -DoutputDirectory="$out" >"$BEAMLINE_HOME/logs/maven.log" 2>&1 \
    || die "Maven could not fetch the jars of $pom (see $BEAMLINE_HOME/logs/maven.log); check that Maven Central is reachable"
}
