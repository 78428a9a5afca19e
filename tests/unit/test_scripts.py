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


def _bash(script: str) -> int:
    return subprocess.run(["bash", "-c", f'source "{COMMON}"; {script}'], timeout=30).returncode


def test_a_start_is_alive_before_its_exec_chain_has_reached_the_server(tmp_path):
    # nohup -> java: for a moment the child's command line is not the server's
    # yet; a marker check there reported a live Kafka as "exited while starting".
    starting = subprocess.Popen(["bash", "-c", 'sleep 2; exec "$0" 300', "sleep"])
    pidfile = tmp_path / "kafka.pid"
    pidfile.write_text(f"{starting.pid}\n")
    try:
        assert _bash(f"started_alive {starting.pid}") == 0
        assert _bash(f'pid_alive "{pidfile}" "sleep 300"') == 1, (
            "the marker already matches: this test no longer shows the window"
        )
    finally:
        starting.kill()
        starting.wait()


def test_a_start_that_exited_is_not_alive_even_before_it_is_reaped():
    gone = subprocess.Popen(["true"])
    try:
        # Not reaped yet: a zombie, which kill -0 alone would call alive.
        for _ in range(500):
            stat = pathlib.Path(f"/proc/{gone.pid}/stat").read_text()
            if stat.split(") ")[1].startswith("Z"):
                break
            subprocess.run(["sleep", "0.01"])
        assert _bash(f"started_alive {gone.pid}") == 1
    finally:
        gone.wait()
    assert _bash(f"started_alive {gone.pid}") == 1
