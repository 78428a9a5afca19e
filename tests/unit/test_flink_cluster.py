"""Cancelling a run's job on a Flink cluster by name, over the REST API.

A small HTTP server on loopback answers as Flink's REST API does (the two calls
used); the real cluster is exercised by ``./run_local.sh --runner flink-cluster``.
"""

import http.server
import json
import threading

import pytest

from beam_pipeline import flink_cluster

pytestmark = pytest.mark.unit


@pytest.fixture
def cluster():
    jobs = {
        "a1": {"jid": "a1", "name": "beamline-r1", "state": "RUNNING"},
        "b2": {"jid": "b2", "name": "beamline-r1", "state": "FINISHED"},
        "c3": {"jid": "c3", "name": "beamline-other", "state": "RUNNING"},
    }
    patched = []

    class Handler(http.server.BaseHTTPRequestHandler):
        def _reply(self, body):
            data = json.dumps(body).encode()
            self.send_response(202 if self.command == "PATCH" else 200)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def do_GET(self):
            assert self.path == "/jobs/overview"
            self._reply({"jobs": list(jobs.values())})

        def do_PATCH(self):
            jid = self.path.split("/")[2].split("?")[0]
            assert self.path.endswith("?mode=cancel")
            patched.append(jid)
            jobs[jid]["state"] = "CANCELED"
            self._reply({})

        def log_message(self, *_):
            pass

    server = http.server.HTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"127.0.0.1:{server.server_address[1]}", patched
    server.shutdown()


def test_only_the_runs_unfinished_job_is_cancelled(cluster):
    master, patched = cluster
    assert flink_cluster.jobs_named(master, "beamline-r1") == {"a1": "RUNNING", "b2": "FINISHED"}
    assert flink_cluster.cancel_jobs(master, flink_cluster.job_name("r1")) == ["a1"]
    assert patched == ["a1"]
    assert flink_cluster.jobs_named(master, "beamline-r1")["a1"] == "CANCELED"
    assert flink_cluster.cancel_jobs(master, "beamline-r1") == []  # nothing left to cancel
