# The project's Python environment: a venv in the state folder with the pinned
# packages of setup.py (and its test extra).  Sourced by run_local.sh.

python_setup() {
  command -v python3 >/dev/null || die "python3 is not installed: install Python 3.11"
  python3 -c 'import sys; sys.exit(sys.version_info[:2] < (3, 10))' \
    || die "Python 3.10 or newer is needed: install Python 3.11"
  local h; h=$(inputs_hash "$ROOT/setup.py")
  if stamp_ok "$VENV/.stamp" "$h" && [ -x "$PY" ]; then
    return 0
  fi
  log "creating the Python environment in $VENV"
  [ -x "$PY" ] || python3 -m venv "$VENV" || die "python3 -m venv failed: apt-get install python3-venv"
  "$PY" -m pip install -q --upgrade pip >"$BEAMLINE_HOME/logs/pip.log" 2>&1
  "$PY" -m pip install -q -e "$ROOT[test]" >>"$BEAMLINE_HOME/logs/pip.log" 2>&1 \
    || die "pip install failed (see $BEAMLINE_HOME/logs/pip.log); check that PyPI is reachable"
  echo "$h" >"$VENV/.stamp"
}
