"""run_local.sh's process helpers (scripts/common.sh), run in bash against real processes."""

import pathlib
import subprocess

import pytest

pytestmark = pytest.mark.unit

COMMON = pathlib.Path(__file__).parents[2] / "scripts" / "common.sh"


def _stop_pid(pidfile: pathlib.Path, marker: str) -> subprocess.CompletedProcess:
    script = f'source "{COMMON}"; stop_pid "{pidfile}" "{marker}" Kafka'
    return subprocess.run(["bash", "-c", script], capture_output=True, text=True, timeout=90)


def test_a_stale_pid_file_never_signals_a_process_that_is_not_ours(tmp_path):
    stranger = subprocess.Popen(["sleep", "300"])
    try:
        pidfile = tmp_path / "kafka.pid"
        pidfile.write_text(f"{stranger.pid}\n")
        done = _stop_pid(pidfile, "kafka.Kafka /x/server.properties")
        assert done.returncode == 0, done.stderr
        assert stranger.poll() is None, "stop signalled a process that is not Kafka"
        assert "stale PID file" in done.stderr
        assert not pidfile.exists()
    finally:
        stranger.kill()
        stranger.wait()


def test_our_process_is_stopped(tmp_path):
    ours = subprocess.Popen(["sleep", "300"])
    pidfile = tmp_path / "kafka.pid"
    pidfile.write_text(f"{ours.pid}\n")
    done = _stop_pid(pidfile, "sleep 300")
    assert done.returncode == 0, done.stderr
    assert ours.wait(timeout=5) == -15  # SIGTERM
    assert "Kafka stopped" in done.stderr
