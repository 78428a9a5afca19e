# Prism, Beam's portable runner written in Go, built from the Go module proxy with
# `go install` into the folder Beam's own Prism runner looks in, so that no run
# downloads anything.  Sourced by run_local.sh.

PRISM_DIR="${PRISM_DIR:-$HOME/.apache_beam/cache/prism/bin}"

beam_version() { sed -n 's/^BEAM_VERSION = "\(.*\)"$/\1/p' "$ROOT/setup.py"; }

prism_setup() {
  local version stamp
  version=$(beam_version)
  stamp="$PRISM_DIR/.stamp"
  if [ -x "$PRISM_DIR/prism" ] && stamp_ok "$stamp" "v$version"; then
    return 0
  fi
  command -v go >/dev/null 2>&1 || die "Go is needed to build Prism (go install): install Go 1.21 or newer"
  log "building Prism v$version with go install (about a minute the first time)"
  mkdir -p "$PRISM_DIR"
  GOBIN="$PRISM_DIR" go install "github.com/apache/beam/sdks/v2/go/cmd/prism@v$version" \
    >"$BEAMLINE_HOME/logs/prism-build.log" 2>&1 \
    || die "go install of Prism failed (see $BEAMLINE_HOME/logs/prism-build.log); check that the Go module proxy is reachable"
  echo "v$version" >"$stamp"
}
