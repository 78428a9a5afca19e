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
    patched, stops, polls = [], [], []

    class Handler(http.server.BaseHTTPRequestHandler):
        def _reply(self, body):
            data = json.dumps(body).encode()
            self.send_response(202 if self.command == "PATCH" else 200)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def do_GET(self):
            if self.path.startswith("/jobs/a1/savepoints/"):
                polls.append(1)
                done = len(polls) > 1  # in progress at the first poll
                self._reply(
                    {"status": {"id": "COMPLETED"}, "operation": {"location": "file:/sp/1"}}
                    if done
                    else {"status": {"id": "IN_PROGRESS"}, "operation": None}
                )
                return
            assert self.path == "/jobs/overview"
            self._reply({"jobs": list(jobs.values())})

        def do_POST(self):
            assert self.path == "/jobs/a1/stop"
            body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
            stops.append(body)
            self._reply({"request-id": "t1"})

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
    yield f"127.0.0.1:{server.server_address[1]}", patched, stops
    server.shutdown()


def test_only_the_runs_unfinished_job_is_cancelled(cluster):
    master, patched, _ = cluster
    assert flink_cluster.jobs_named(master, "beamline-r1") == {"a1": "RUNNING", "b2": "FINISHED"}
    assert flink_cluster.cancel_jobs(master, flink_cluster.job_name("r1")) == ["a1"]
    assert patched == ["a1"]
    assert flink_cluster.jobs_named(master, "beamline-r1")["a1"] == "CANCELED"
    assert flink_cluster.cancel_jobs(master, "beamline-r1") == []  # nothing left to cancel


def test_a_stop_with_savepoint_returns_where_the_savepoint_is(cluster):
    master, _, stops = cluster
    location = flink_cluster.stop_with_savepoint(master, "beamline-r1", "file:///sp")
    assert location == "file:/sp/1"
    assert stops == [{"targetDirectory": "file:///sp", "drain": False}]
    with pytest.raises(flink_cluster.SavepointError, match="0 running jobs"):
        flink_cluster.stop_with_savepoint(master, "beamline-nothing", "file:///sp")
