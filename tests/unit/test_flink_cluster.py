"""Cancelling a run's job on a Flink cluster by name, over the REST API.

A small HTTP server on loopback answers as Flink's REST API does (the calls used);
the real cluster is exercised by ``./run_local.sh --runner flink-cluster``.
"""

import http.server
import json
import threading

import pytest

from beam_pipeline import flink_cluster

pytestmark = pytest.mark.unit


def _details(status: str, splits: int, received: int, now: int) -> dict:
    return {
        "now": now,
        "vertices": [
            {"name": "Source: Impulse", "status": status, "metrics": {}},
            {
                "name": "[3]Read/{ParDo(OutputSingleSource), ParDo(UnboundedSourceAsSDFWrapper)}",
                "status": status,
                "metrics": {"write-records": splits},
            },
            {
                "name": "[4]Read/{ReadUnboundedSource, ToExternalKafkaRecord, ToRows}",
                "status": status,
                "metrics": {"read-records": received},
            },
        ],
    }


@pytest.fixture
def cluster():
    jobs = {
        "a1": {"jid": "a1", "name": "beamline-r1", "state": "RUNNING"},
        "b2": {"jid": "b2", "name": "beamline-r1", "state": "FINISHED"},
        "c3": {"jid": "c3", "name": "beamline-other", "state": "RUNNING"},
    }
    patched, stops, polls = [], [], []
    # The job's read, as the REST API shows it at each poll of /jobs/a1: starting,
    # splits sent but not all received, all received (at now=2000), then running.
    details = [
        _details("CREATED", 0, 0, now=500),
        _details("RUNNING", 3, 1, now=1000),
        _details("RUNNING", 3, 3, now=2000),
        _details("RUNNING", 3, 3, now=3000),
        _details("RUNNING", 3, 3, now=4000),
    ]
    checkpoints = [1500, 1500, 2500]  # trigger time of the latest completed, per poll

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
            if self.path == "/jobs/a1":
                self._reply(details.pop(0) if len(details) > 1 else details[0])
                return
            if self.path == "/jobs/a1/checkpoints":
                trigger = checkpoints.pop(0) if len(checkpoints) > 1 else checkpoints[0]
                self._reply({"latest": {"completed": {"trigger_timestamp": trigger}}})
                return
            if self.path == "/overview":
                self._reply({"taskmanagers": 1, "slots-total": 2, "slots-available": 0})
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
    yield f"127.0.0.1:{server.server_address[1]}", patched, stops, details
    server.shutdown()


def test_only_the_runs_unfinished_job_is_cancelled(cluster):
    master, patched, _, _ = cluster
    assert flink_cluster.jobs_named(master, "beamline-r1") == {"a1": "RUNNING", "b2": "FINISHED"}
    assert flink_cluster.cancel_jobs(master, flink_cluster.job_name("r1")) == ["a1"]
    assert patched == ["a1"]
    assert flink_cluster.jobs_named(master, "beamline-r1")["a1"] == "CANCELED"
    assert flink_cluster.cancel_jobs(master, "beamline-r1") == []  # nothing left to cancel


def test_a_stop_with_savepoint_returns_where_the_savepoint_is(cluster):
    master, _, stops, details = cluster
    location = flink_cluster.stop_with_savepoint(master, "beamline-r1", "file:///sp", poll_s=0.01)
    assert location == "file:/sp/1"
    assert stops == [{"targetDirectory": "file:///sp", "drain": False}]
    # It waited for the readers and for a checkpoint after them (at 2500 > 2000).
    assert details[0]["now"] == 4000
    with pytest.raises(flink_cluster.SavepointError, match="0 running jobs"):
        flink_cluster.stop_with_savepoint(master, "beamline-nothing", "file:///sp")


def test_no_savepoint_is_taken_before_the_readers_reach_a_checkpoint(cluster):
    master, _, stops, _ = cluster
    since = []
    jid = "a1"
    assert not flink_cluster.read_is_checkpointed(master, jid, since)  # starting
    assert not flink_cluster.read_is_checkpointed(master, jid, since)  # 1 of 3 splits
    assert not flink_cluster.read_is_checkpointed(master, jid, since)  # checkpoint at 1500
    assert since == [2000]
    assert not flink_cluster.read_is_checkpointed(master, jid, since)  # still 1500
    assert flink_cluster.read_is_checkpointed(master, jid, since)  # 2500 > 2000
    assert stops == []


def test_a_job_whose_read_never_starts_is_not_stopped(cluster):
    master, _, stops, details = cluster
    details[:] = [_details("RUNNING", 0, 0, now=1)]
    with pytest.raises(flink_cluster.SavepointError, match="has not started reading Kafka"):
        flink_cluster.stop_with_savepoint(
            master, "beamline-r1", "file:///sp", ready_timeout_s=0.2, poll_s=0.01
        )
    assert stops == []


def test_a_failed_savepoint_is_one_line_with_its_root_cause(monkeypatch):
    trace = (
        "java.util.concurrent.CompletionException: wrapped\n\tat a.b(C.java:1)\n"
        "Caused by: org.apache.flink.runtime.checkpoint.CheckpointException: Checkpoint "
        "Coordinator is suspending.\n\tat d.e(F.java:2)\n"
    )
    answers = {
        "/jobs/a1/stop": {"request-id": "t1"},
        "/jobs/a1/savepoints/t1": {
            "status": {"id": "COMPLETED"},
            "operation": {"failure-cause": {"stack-trace": trace}},
        },
    }
    monkeypatch.setattr(flink_cluster, "_request", lambda master, path, *a, **k: answers[path])
    with pytest.raises(flink_cluster.SavepointError) as raised:
        flink_cluster.stop_job_with_savepoint("m:1", "a1", "file:///sp", poll_s=0.01)
    assert str(raised.value) == (
        "the savepoint of job a1 failed: Caused by: org.apache.flink.runtime.checkpoint."
        "CheckpointException: Checkpoint Coordinator is suspending."
    )


def test_the_bench_sees_the_job_and_asks_for_no_more_slots_than_the_cluster_has(cluster):
    from beam_pipeline.runners import runner_flags
    from tools.bench import check_cluster
    from tools.bench_probes import ClusterJob
    from tools.stack import ServiceUnavailable

    master = cluster[0]
    assert flink_cluster.total_slots(master) == 2  # free or not
    assert ClusterJob(master, "beamline-r1")()  # listed, whatever its state
    assert not ClusterJob(master, "beamline-r9")()
    assert not ClusterJob("127.0.0.1:9", "beamline-r1")()  # no REST API: not yet
    flags = [
        f"--flink_master={master}" if f.startswith("--flink_master") else f
        for f in runner_flags("flink-cluster", 2)
    ]
    check_cluster(flags)
    with pytest.raises(
        ServiceUnavailable, match="--parallelism 3: the Flink cluster at .* has 2 task slots"
    ):
        check_cluster([*flags, "--parallelism=3"])
    with pytest.raises(ServiceUnavailable, match="does not answer at 127.0.0.1:9"):
        check_cluster(["--flink_master=127.0.0.1:9"])


# A job's /plan and /jobs/<jid> as Flink 1.19 answers them (names from a bench run),
# cut to five vertices: an impulse, the Kafka split stage, the reader chained into the
# main Python stage, a Parquet GroupByKey with its chain drawn as a tree, and an
# upsert of its own.
_PLAN = {
    "plan": {
        "nodes": [
            {"id": "v1", "description": "Source: Impulse<br/>"},
            {
                "id": "v2",
                "description": "[3]ReadRecords/Read/{OutputSingleSource, "
                "UnboundedSourceAsSDFWrapper}<br/>",
            },
            {
                "id": "v3",
                "description": "[4]ReadRecords/{ReadUnboundedSource, ToExternalKafkaRecord, "
                "ToRows}<br/>+- [19]{ReadRecords, CountStages, Decode, Validate, Normalise, "
                "ConformToSinks, Deduplicate}<br/>",
            },
            {
                "id": "v4",
                "description": "WriteEventsParquet/WriteToParquet/Write/WriteImpl/GroupByKey"
                "<br/>+- [1]WriteEventsParquet/WriteToParquet/Write/WriteImpl/Extract<br/>"
                "   :- Map<br/>   :  +- ToKeyedWorkItem<br/>   +- Map<br/>      +- "
                "ToKeyedWorkItem<br/>",
            },
            {
                "id": "v5",
                "description": "[1]WriteDeadLettersPostgres/Upsert/Upsert/ParMultiDo(Upsert)<br/>",
            },
        ]
    }
}
_VERTICES = {
    "vertices": [
        {"id": "v1", "metrics": {"read-records": 0, "write-records": 1}},
        {"id": "v2", "metrics": {"read-records": 1, "write-records": 3}},
        {"id": "v3", "metrics": {"read-records": 3, "write-records": 2100}},
        {"id": "v4", "metrics": {"read-records": 2000, "write-records": 4}},
        {"id": "v5", "metrics": {"read-records": 96}},
    ]
}


def test_a_jobs_shape_counts_vertices_chained_operators_stages_and_edge_elements(monkeypatch):
    answers = {"/jobs/j1/plan": _PLAN, "/jobs/j1": _VERTICES}
    monkeypatch.setattr(flink_cluster, "_request", lambda master, path, *a, **k: answers[path])
    shape = flink_cluster.job_shape("m:1", "j1")
    assert shape == flink_cluster.JobShape(
        vertices=5, operators=11, sdk_stages=5, edge_elements=2100
    )
    assert shape.elements_per_record(1050) == 2.0
    assert shape.elements_per_record(0) is None


def test_the_newest_job_of_a_name_is_the_one_started_last(monkeypatch):
    jobs = {
        "jobs": [
            {"jid": "old", "name": "beamline-r1", "start-time": 1},
            {"jid": "new", "name": "beamline-r1", "start-time": 5},
            {"jid": "other", "name": "beamline-r2", "start-time": 9},
        ]
    }
    monkeypatch.setattr(flink_cluster, "_request", lambda master, path, *a, **k: jobs)
    assert flink_cluster.newest_job_named("m:1", "beamline-r1") == "new"
    assert flink_cluster.newest_job_named("m:1", "beamline-r9") is None
