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


def _flink_version() -> str:
    """The Flink version scripts/java.sh stages the job server for."""
    scripts = COMMON.parent
    return subprocess.run(
        ["bash", "-c", f'ROOT="{scripts.parent}"; source "{scripts}/java.sh"; flink_version'],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()


def test_the_clusters_job_server_is_started_on_loopback_and_stopped_with_the_cluster(tmp_path):
    # A stand-in `java` on PATH tells, through a FIFO the test blocks on, how
    # scripts/flink.sh started it, then waits to be stopped.
    scripts = COMMON.parent
    cache = tmp_path / "jars"
    version = _flink_version()
    staged = cache / f"beamline-flink-job-server-{version}"
    staged.mkdir(parents=True)
    (staged / f"beamline-flink-job-server-{version}.jar").write_bytes(b"")
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    fifo, seen = tmp_path / "started", tmp_path / "seen"
    java = bin_dir / "java"
    java.write_text(
        f'#!/bin/bash\ntrap \'kill $!; exit 0\' TERM\necho "$LD_PRELOAD $*" >"{fifo}"\n'
        "sleep 300 &\nwait\n"
    )
    java.chmod(0o755)
    script = (
        "unset BEAMLINE_FLINK_JOB_PORT BEAMLINE_FLINK_ARTIFACT_PORT LD_PRELOAD; "
        f'export BEAMLINE_HOME="{tmp_path / "home"}" BEAM_JAR_CACHE="{cache}" '
        f'PATH="{bin_dir}:$PATH"; ROOT="{scripts.parent}"; source "{COMMON}"; '
        f'source "{scripts}/java.sh"; source "{scripts}/flink.sh"; '
        f'mkdir -p "$FLINK_DIR" "$FLINK_LOGS"; mkfifo "{fifo}"; flink_job_server_start; '
        f'read -r line <"{fifo}"; echo "$line" >"{seen}"; '
        "flink_job_server_running || exit 3; flink_cluster_stop; "
        "flink_job_server_running && exit 4; exit 0"
    )
    done = subprocess.run(["bash", "-c", script], capture_output=True, text=True, timeout=90)
    assert done.returncode == 0, done.stderr
    preload, *argv = seen.read_text().split()
    assert preload == str(staged / "libbeamline_loopback.so")
    assert argv[argv.index("--job-host") + 1] == "127.0.0.1"
    assert argv[argv.index("--job-port") + 1] == "8099"
    assert argv[argv.index("--artifact-port") + 1] == "8098"
    assert argv[argv.index("--expansion-port") + 1] == "-1"  # the stack's is beside it
    assert "the cluster's Flink job server stopped" in done.stderr


def test_the_clusters_classpath_gets_the_job_servers_jars_but_what_flink_has(tmp_path):
    scripts = COMMON.parent
    version = _flink_version()
    lib = tmp_path / "jars" / f"beamline-flink-job-server-{version}" / "lib"
    lib.mkdir(parents=True)
    kept = {"beam-runners-flink-1.19-2.62.0.jar", "grpc-api-1.67.1.jar", "guava-33.3.1-android.jar"}
    flinks = {"flink-runtime-1.19.0.jar", "flink-shaded-guava-31.1-jre-17.0.jar"}
    bundled = {"slf4j-simple-1.7.30.jar", "slf4j-api-1.7.30.jar", "kryo-2.24.0.jar"}
    for name in kept | flinks | bundled:
        (lib / name).write_bytes(b"")
    script = (
        f'export BEAMLINE_HOME="{tmp_path / "home"}" BEAM_JAR_CACHE="{tmp_path / "jars"}"; '
        f'ROOT="{scripts.parent}"; source "{COMMON}"; source "{scripts}/java.sh"; '
        f'source "{scripts}/flink.sh"; flink_beam_lib_setup; ls "$FLINK_BEAM_LIB"; '
        'flink_write_conf; cat "$FLINK_CONF/flink-conf.yaml"'
    )
    done = subprocess.run(["bash", "-c", script], capture_output=True, text=True, timeout=30)
    assert done.returncode == 0, done.stderr
    listed = set(done.stdout.split())
    assert kept <= listed and not (flinks | bundled) & listed
    # Loaded from there, not from each job's copy of the same jars.
    assert "classloader.resolve-order: parent-first" in done.stdout
