# Beam's Java side: Beamline's expansion service (Beam's ExpansionService with
# KafkaIO, JdbcIO, the Java SDK harness and the PostgreSQL driver) built from
# Maven Central jars and staged into Beam's jar cache, so that no pipeline run
# downloads anything.  Sourced by run_local.sh.

BEAM_JAR_CACHE="${BEAM_JAR_CACHE:-$HOME/.apache_beam/cache/jars}"
EXPANSION_POM="$ROOT/java/expansion-service/pom.xml"

pom_version() { sed -n 's:^  <version>\(.*\)</version>:\1:p' "$1" | head -n1; }
expansion_version() { pom_version "$EXPANSION_POM"; }
expansion_dir() { echo "$BEAM_JAR_CACHE/beamline-expansion-service-$(expansion_version)"; }

# stage_module MODULE DIR LIBDIR: build java/MODULE (skipped while its inputs are
# unchanged) and stage its jar in DIR with its runtime classpath in LIBDIR.
stage_module() {
  local module="$1" dir="$2" libdir="$3" pom h jar
  pom="$ROOT/java/$module/pom.xml"
  jar="beamline-$module-$(pom_version "$pom").jar"
  h=$(inputs_hash $(find "$ROOT/java/$module" -path '*/target' -prune -o -type f -print | sort))
  if stamp_ok "$dir/.stamp" "$h" && [ -f "$dir/$jar" ]; then
    return 0
  fi
  log "building java/$module and staging it in $dir"
  mvn -B -q -f "$pom" package >"$BEAMLINE_HOME/logs/maven.log" 2>&1 \
    || die "building java/$module failed (see $BEAMLINE_HOME/logs/maven.log); check that Maven Central is reachable"
  mvn_copy_deps "$pom" "$libdir"
  # A new file renamed over the old one: a JVM running from this folder (the
  # cluster's long-lived expansion service) keeps reading the jar it opened.
  cp "$ROOT/java/$module/target/$jar" "$dir/.$jar.new"
  mv -f "$dir/.$jar.new" "$dir/$jar"
  echo "$h" >"$dir/.stamp"
}

java_setup() {
  stage_module expansion-service "$(expansion_dir)" "$(expansion_dir)"
}

# Beam's portable Flink job server (embedded Flink for --flink_master=[local]):
# a manifest-only launcher jar and its lib/ folder, staged into the jar cache.
FLINK_POM="$ROOT/java/flink-job-server/pom.xml"

flink_version() { pom_version "$FLINK_POM"; }
flink_job_server_dir() { echo "$BEAM_JAR_CACHE/beamline-flink-job-server-$(flink_version)"; }

flink_setup() {
  stage_module flink-job-server "$(flink_job_server_dir)" "$(flink_job_server_dir)/lib"
  loopback_lib_setup
}

# native/loopback_bind.c, built beside the job server's jar: LD_PRELOAD'ed into the
# Flink JVMs so that Beam's FnAPI servers bind loopback (docs/security.md).
LOOPBACK_SRC="$ROOT/native/loopback_bind.c"
loopback_lib() { echo "$(flink_job_server_dir)/libbeamline_loopback.so"; }

loopback_lib_setup() {
  local lib h
  lib=$(loopback_lib)
  h=$(inputs_hash "$LOOPBACK_SRC")
  if stamp_ok "$lib.stamp" "$h" && [ -f "$lib" ]; then
    return 0
  fi
  command -v cc >/dev/null 2>&1 || die "a C compiler builds native/loopback_bind.c and none is installed: apt-get install -y gcc"
  log "building $(basename "$lib") (Flink's FnAPI servers on loopback)"
  cc -shared -fPIC -O2 -Wall -Wextra -Werror -o "$lib" "$LOOPBACK_SRC" -ldl \
    >"$BEAMLINE_HOME/logs/native.log" 2>&1 \
    || die "building native/loopback_bind.c failed (see $BEAMLINE_HOME/logs/native.log)"
  echo "$h" >"$lib.stamp"
}
