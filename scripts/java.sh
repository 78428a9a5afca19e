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
