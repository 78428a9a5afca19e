"""native/loopback_bind.c: a JVM's wildcard TCP servers bind loopback, nothing else moves.

The library is the one ``./run_local.sh setup`` built beside the Flink job server's
jar; each check binds real sockets in a child process that preloads it.
"""

import json
import os
import subprocess
import sys

import pytest

from beam_pipeline import runners

pytestmark = pytest.mark.unit

# Binds each socket the way a server would and prints where the kernel put it.
_BIND = """
import json, socket, sys
out = []
for family, kind, host, v6only in json.loads(sys.argv[1]):
    s = socket.socket(getattr(socket, family), getattr(socket, kind))
    if v6only:
        s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
    s.bind((host, 0))
    out.append(s.getsockname()[0])
print(json.dumps(out))
"""

CASES = [
    # (family, type, address asked, IPV6_V6ONLY) → address bound
    (("AF_INET", "SOCK_STREAM", "0.0.0.0", False), "127.0.0.1"),
    (("AF_INET6", "SOCK_STREAM", "::", False), "::ffff:127.0.0.1"),  # dual-stack, as Java's
    (("AF_INET6", "SOCK_STREAM", "::", True), "::1"),
    (("AF_INET", "SOCK_STREAM", "127.0.0.2", False), "127.0.0.2"),  # an address given: kept
    (("AF_INET", "SOCK_DGRAM", "0.0.0.0", False), "0.0.0.0"),  # not a stream: kept
]


def _bound(preload: str | None) -> list[str]:
    env = {k: v for k, v in os.environ.items() if k != "LD_PRELOAD"}
    if preload:
        env["LD_PRELOAD"] = preload
    asked = json.dumps([case for case, _ in CASES])
    done = subprocess.run(
        [sys.executable, "-c", _BIND, asked], env=env, capture_output=True, text=True, check=True
    )
    return json.loads(done.stdout)


def test_wildcard_stream_servers_bind_loopback_with_the_library():
    lib = runners.loopback_preload()
    assert lib.is_file(), f"{lib} is missing: ./run_local.sh setup builds it"
    assert _bound(str(lib)) == [bound for _, bound in CASES]


def test_without_the_library_the_same_sockets_bind_every_interface():
    # The control: what the library changes is really what the kernel does otherwise.
    assert _bound(None) == ["0.0.0.0", "::", "::", "127.0.0.2", "0.0.0.0"]


def test_the_driver_preloads_it_for_flinks_job_server_only(monkeypatch, tmp_path):
    lib = tmp_path / "libbeamline_loopback.so"
    lib.write_bytes(b"")
    monkeypatch.setattr(runners, "loopback_preload", lambda: lib)
    # Embedded, and submitting to a cluster from a jar of its own: the driver starts
    # the job server both times.
    cluster = "--flink_master=127.0.0.1:8081"
    for argv in (["--runner=FlinkRunner"], [cluster, "--flink_job_server_jar=/j.jar"]):
        env = {"LD_PRELOAD": f"/opt/other.so:{lib}"}
        runners.preload_loopback("FlinkRunner", argv, env)
        assert env["LD_PRELOAD"] == f"{lib}:/opt/other.so"  # first, once, the other kept
    # The cluster's own job server (the preset), or one the user names: none to start.
    for argv in ([cluster], [cluster, "--job_endpoint=127.0.0.1:1"]):
        untouched = {}
        runners.preload_loopback("FlinkRunner", argv, untouched)
        assert untouched == {}, argv
    for runner in ("PrismRunner", "DirectRunner", "DataflowRunner"):
        untouched = {}
        runners.preload_loopback(runner, [], untouched)
        assert untouched == {}, runner


def test_a_missing_library_is_one_line_saying_what_to_run(monkeypatch, tmp_path):
    monkeypatch.setattr(runners, "loopback_preload", lambda: tmp_path / "absent.so")
    with pytest.raises(runners.RunnerSetupError, match=r"run \./run_local\.sh setup"):
        runners.preload_loopback("FlinkRunner", [], {})
