# Beam's Java side: Beamline's expansion service (Beam's ExpansionService with
# KafkaIO, JdbcIO, the Java SDK harness and the PostgreSQL driver) built from
# Maven Central jars and staged into Beam's jar cache, so that no pipeline run
# downloads anything.  Sourced by run_local.sh.

BEAM_JAR_CACHE="${BEAM_JAR_CACHE:-$HOME/.apache_beam/cache/jars}"
EXPANSION_POM="$ROOT/java/expansion-service/pom.xml"

expansion_version() { sed -n 's:^  <version>\(.*\)</version>:\1:p' "$EXPANSION_POM" | head -n1; }
expansion_dir() { echo "$BEAM_JAR_CACHE/beamline-expansion-service-$(expansion_version)"; }

java_setup() {
  local dir h
  dir=$(expansion_dir)
  h=$(inputs_hash "$EXPANSION_POM" $(find "$ROOT/java/expansion-service/src" -type f | sort))
  if stamp_ok "$dir/.stamp" "$h" && [ -f "$dir/beamline-expansion-service-$(expansion_version).jar" ]; then
    return 0
  fi
  log "building Beamline's expansion service and staging it in $dir"
  mvn -B -q -f "$EXPANSION_POM" package >"$BEAMLINE_HOME/logs/maven.log" 2>&1 \
    || die "building java/expansion-service failed (see $BEAMLINE_HOME/logs/maven.log); check that Maven Central is reachable"
  mvn_copy_deps "$EXPANSION_POM" "$dir"
  cp "$ROOT/java/expansion-service/target/beamline-expansion-service-$(expansion_version).jar" "$dir/"
  echo "$h" >"$dir/.stamp"
}

# Beam's portable Flink job server (embedded Flink for --flink_master=[local]):
# a manifest-only launcher jar and its lib/ folder, staged into the jar cache.
FLINK_POM="$ROOT/java/flink-job-server/pom.xml"

flink_version() { sed -n 's:^  <version>\(.*\)</version>:\1:p' "$FLINK_POM" | head -n1; }
flink_job_server_dir() { echo "$BEAM_JAR_CACHE/beamline-flink-job-server-$(flink_version)"; }

flink_setup() {
  local dir h jar
  dir=$(flink_job_server_dir)
  jar="beamline-flink-job-server-$(flink_version).jar"
  h=$(inputs_hash "$FLINK_POM")
  if stamp_ok "$dir/.stamp" "$h" && [ -f "$dir/$jar" ]; then
    return 0
  fi
  log "assembling Beam's Flink job server and staging it in $dir"
  mvn -B -q -f "$FLINK_POM" package >"$BEAMLINE_HOME/logs/maven.log" 2>&1 \
    || die "building java/flink-job-server failed (see $BEAMLINE_HOME/logs/maven.log); check that Maven Central is reachable"
  mvn_copy_deps "$FLINK_POM" "$dir/lib"
  cp "$ROOT/java/flink-job-server/target/$jar" "$dir/"
  echo "$h" >"$dir/.stamp"
}
