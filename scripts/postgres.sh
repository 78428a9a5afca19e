# A PostgreSQL cluster of Beamline's own, from Debian's packages, on its own port
# and socket folder (Debian's default cluster on 5432 is left alone).  initdb and
# pg_ctl refuse root, so as root they run as the `postgres` user.  Sourced by
# run_local.sh.

PG_DIR="$BEAMLINE_HOME/postgres"
PG_DATA="$PG_DIR/data"
PG_SOCK="$PG_DIR/run"
PG_LOG="$BEAMLINE_HOME/logs/postgres.log"
PG_PASSWORD_FILE="$BEAMLINE_HOME/secrets/pg_password"
PG_WRITER_PASSWORD_FILE="$BEAMLINE_HOME/secrets/pg_writer_password"
PG_CA="$BEAMLINE_HOME/secrets/pg-ca.pem"

pg_bin() {
  local d
  d=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n1)
  [ -n "$d" ] && echo "$d"
}

# Run a PostgreSQL program as the cluster's owner.
as_pg_owner() {
  if [ "$(id -u)" = 0 ]; then
    runuser -u postgres -- "$@"
  else
    "$@"
  fi
}

pg_install() {
  [ -n "$(pg_bin)" ] && return 0
  [ "$(id -u)" = 0 ] || die "PostgreSQL is not installed and installing it needs root: sudo apt-get install -y postgresql"
  command -v apt-get >/dev/null || die "PostgreSQL is not installed and there is no apt-get: install PostgreSQL 15+ server binaries"
  log "installing PostgreSQL from Debian's packages"
  apt-get update -qq >"$BEAMLINE_HOME/logs/apt.log" 2>&1 \
    && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql >>"$BEAMLINE_HOME/logs/apt.log" 2>&1 \
    || die "apt-get install postgresql failed (see $BEAMLINE_HOME/logs/apt.log)"
}

# pg_password VARIABLE FILE: the password from the environment variable; when it
# is unset, one generated once and kept (mode 0600) in FILE.
pg_password() {
  local variable="$1" file="$2"
  if [ -n "${!variable:-}" ]; then
    printf '%s' "${!variable}"
    return
  fi
  if [ ! -s "$file" ]; then
    mkdir -p "$(dirname "$file")" && chmod 700 "$(dirname "$file")"
    (umask 077 && head -c 24 /dev/urandom | base64 | tr -d '/+=' >"$file")
  fi
  cat "$file"
}
owner_password() { pg_password BEAMLINE_PG_PASSWORD "$PG_PASSWORD_FILE"; }
writer_password() { pg_password BEAMLINE_PG_WRITER_PASSWORD "$PG_WRITER_PASSWORD_FILE"; }

pg_setup() {
  pg_install
  local bin; bin=$(pg_bin)
  mkdir -p "$PG_DIR" "$BEAMLINE_HOME/logs"
  if [ "$(id -u)" = 0 ]; then
    chown postgres:postgres "$PG_DIR"
    touch "$PG_LOG" && chown postgres:postgres "$PG_LOG"
    runuser -u postgres -- test -w "$PG_DIR" \
      || die "the postgres user cannot reach $PG_DIR (a parent folder is closed to it): set BEAMLINE_HOME to a folder it can reach"
  fi
  if [ ! -f "$PG_DATA/PG_VERSION" ]; then
    log "initialising a PostgreSQL cluster in $PG_DATA"
    as_pg_owner mkdir -p "$PG_SOCK"
    as_pg_owner "$bin/initdb" -D "$PG_DATA" -U postgres --auth-local=peer --auth-host=scram-sha-256 \
      --encoding=UTF8 --locale=C.UTF-8 >"$BEAMLINE_HOME/logs/initdb.log" 2>&1 \
      || die "initdb failed (see $BEAMLINE_HOME/logs/initdb.log)"
    as_pg_owner tee -a "$PG_DATA/postgresql.conf" >/dev/null <<CONF
# Beamline's local cluster
listen_addresses = '127.0.0.1'
port = $BEAMLINE_PG_PORT
unix_socket_directories = '$PG_SOCK'
max_connections = 100
shared_buffers = 256MB
fsync = on
CONF
  fi
  pg_tls_setup
  owner_password >/dev/null
  writer_password >/dev/null
}

# TLS on every TCP connection: the server's key and self-signed certificate (made
# once, owned by the server's user), its certificate as the clients' CA, and a
# pg_hba.conf of Beamline's own that lets TCP logins in over TLS only.  A running
# server reloads them.
pg_tls_setup() {
  if [ ! -s "$PG_DATA/server.crt" ]; then
    log "making PostgreSQL's TLS certificate (self-signed, 127.0.0.1)"
    local tmp; tmp=$(mktemp -d)
    self_signed_cert "$tmp/server.key" "$tmp/server.crt" beamline-postgres "$BEAMLINE_HOME/logs/pg_tls.log"
    install -m 600 -o "$(stat -c %u "$PG_DATA")" -g "$(stat -c %g "$PG_DATA")" \
      "$tmp/server.key" "$tmp/server.crt" "$PG_DATA/"
    rm -rf "$tmp"
  fi
  mkdir -p "$(dirname "$PG_CA")" && chmod 700 "$(dirname "$PG_CA")"
  cp "$PG_DATA/server.crt" "$PG_CA.tmp" && mv "$PG_CA.tmp" "$PG_CA"
  as_pg_owner tee "$PG_DATA/beamline_tls.conf" >/dev/null <<CONF
ssl = on
ssl_cert_file = 'server.crt'
ssl_key_file = 'server.key'
ssl_min_protocol_version = 'TLSv1.2'
CONF
  grep -q "^include_if_exists = 'beamline_tls.conf'" "$PG_DATA/postgresql.conf" \
    || echo "include_if_exists = 'beamline_tls.conf'" | as_pg_owner tee -a "$PG_DATA/postgresql.conf" >/dev/null
  as_pg_owner tee "$PG_DATA/pg_hba.conf" >/dev/null <<HBA
# Beamline's local cluster (written by ./run_local.sh setup): the superuser over the
# socket as its own OS user; every TCP login with a password, over TLS only.
local   all   all                  peer
hostssl all   all   127.0.0.1/32   scram-sha-256
HBA
  if pg_running; then
    as_pg_owner "$(pg_bin)/pg_ctl" -D "$PG_DATA" reload >/dev/null \
      || die "PostgreSQL did not reload its TLS settings (see $PG_LOG)"
  fi
}

pg_running() { [ -f "$PG_DATA/postmaster.pid" ] && as_pg_owner "$(pg_bin)/pg_ctl" -D "$PG_DATA" status >/dev/null 2>&1; }

pg_start() {
  [ -f "$PG_DATA/PG_VERSION" ] || die "PostgreSQL is not set up: run ./run_local.sh setup"
  local bin; bin=$(pg_bin)
  if pg_running; then
    log "PostgreSQL already running on 127.0.0.1:$BEAMLINE_PG_PORT"
  else
    port_open "$BEAMLINE_PG_PORT" && die "port $BEAMLINE_PG_PORT is busy: stop what uses it, or set BEAMLINE_PG_PORT"
    log "starting PostgreSQL on 127.0.0.1:$BEAMLINE_PG_PORT"
    as_pg_owner "$bin/pg_ctl" -D "$PG_DATA" -l "$PG_LOG" -w -t 60 start >/dev/null \
      || die "PostgreSQL did not start (see $PG_LOG)"
  fi
  pg_bootstrap
}

# Roles and database: idempotent, run at every start.  The owner role owns the
# database and its tables (migrations, the operator's tools); the writer role may
# connect and, once `python -m tools.stack migrate` has granted it, select,
# insert and update the pipeline's tables and create temporary (staging) tables:
# nothing else.  Names and passwords reach
# SQL as psql variables (quoted by format's %I and %L), never pasted into it; the
# passwords travel in the environment, never on a command line.
pg_bootstrap() {
  local bin; bin=$(pg_bin)
  BEAMLINE_PG_PASSWORD="$(owner_password)" BEAMLINE_PG_WRITER_PASSWORD="$(writer_password)" \
    as_pg_owner "$bin/psql" -X -q -v ON_ERROR_STOP=1 \
    -v owner="$BEAMLINE_PG_USER" -v writer="$BEAMLINE_PG_WRITER" -v db="$BEAMLINE_PG_DB" \
    -h "$PG_SOCK" -p "$BEAMLINE_PG_PORT" -U postgres -d postgres \
    >"$BEAMLINE_HOME/logs/pg_bootstrap.log" 2>&1 <<'SQL' || die "creating the PostgreSQL roles failed (see $BEAMLINE_HOME/logs/pg_bootstrap.log)"
\getenv owner_pw BEAMLINE_PG_PASSWORD
\getenv writer_pw BEAMLINE_PG_WRITER_PASSWORD
SELECT format('CREATE ROLE %I LOGIN PASSWORD %L', :'owner', :'owner_pw')
  WHERE NOT EXISTS (SELECT FROM pg_roles WHERE rolname = :'owner') \gexec
SELECT format('ALTER ROLE %I PASSWORD %L', :'owner', :'owner_pw') \gexec
SELECT format('CREATE ROLE %I LOGIN NOINHERIT PASSWORD %L', :'writer', :'writer_pw')
  WHERE NOT EXISTS (SELECT FROM pg_roles WHERE rolname = :'writer') \gexec
SELECT format('ALTER ROLE %I NOSUPERUSER NOCREATEDB NOCREATEROLE PASSWORD %L', :'writer', :'writer_pw') \gexec
SELECT format('CREATE DATABASE %I OWNER %I', :'db', :'owner')
  WHERE NOT EXISTS (SELECT FROM pg_database WHERE datname = :'db') \gexec
SELECT format('REVOKE ALL ON DATABASE %I FROM PUBLIC', :'db') \gexec
SELECT format('GRANT CONNECT ON DATABASE %I TO %I', :'db', :'writer') \gexec
\connect :db
REVOKE CREATE ON SCHEMA public FROM PUBLIC;
SELECT format('GRANT USAGE ON SCHEMA public TO %I', :'writer') \gexec
SQL
}

pg_stop() {
  if pg_running; then
    as_pg_owner "$(pg_bin)/pg_ctl" -D "$PG_DATA" -m fast -w stop >/dev/null && log "PostgreSQL stopped"
  fi
}

pg_status() {
  if pg_running; then
    echo "postgres   running  127.0.0.1:$BEAMLINE_PG_PORT  db=$BEAMLINE_PG_DB owner=$BEAMLINE_PG_USER writer=$BEAMLINE_PG_WRITER"
  else
    echo "postgres   stopped"
  fi
}
