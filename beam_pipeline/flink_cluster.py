"""A Flink cluster's jobs, through its REST API (``--flink_master=host:port``).

Beam's Flink job server submits a job to a cluster and then only watches it: when
the driver cancels, the job server's invocation ends but the job runs on in the
cluster (seen: a streaming job RUNNING after its driver printed CANCELLED).  The
driver names each cluster job ``beamline-<run_id>`` (``--job_name``) and cancels it
here by that name.
"""

from __future__ import annotations

import dataclasses
import json
import re
import time
import urllib.request

__all__ = [
    "TERMINAL",
    "JobShape",
    "SavepointError",
    "cancel_jobs",
    "job_name",
    "job_shape",
    "jobs_named",
    "newest_job_named",
    "read_is_checkpointed",
    "stop_job_with_savepoint",
    "stop_with_savepoint",
    "total_slots",
    "wait_for_readers",
    "wait_until_running",
]

TERMINAL = {"FINISHED", "CANCELED", "FAILED"}


def job_name(run_id: str) -> str:
    """The Flink job name of a run (its ``--job_name``)."""
    return f"beamline-{run_id}"


class SavepointError(RuntimeError):
    """No running job to stop, or its savepoint failed; the message says which."""


def _request(master: str, path: str, method: str = "GET", timeout_s: float = 10.0, body=None):
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(f"http://{master}{path}", data=data, method=method)
    if data is not None:
        request.add_header("Content-Type", "application/json")
    with urllib.request.urlopen(request, timeout=timeout_s) as response:  # noqa: S310 - http to the cluster
        body = response.read()
    return json.loads(body) if body else {}


def total_slots(master: str) -> int:
    """The task slots the cluster's TaskManagers offer, free or not (``/overview``)."""
    return int(_request(master, "/overview")["slots-total"])


def jobs_named(master: str, name: str) -> dict[str, str]:
    """Job id → state of every job of the cluster named ``name``."""
    jobs = _request(master, "/jobs/overview")["jobs"]
    return {job["jid"]: job["state"] for job in jobs if job["name"] == name}


def newest_job_named(master: str, name: str) -> str | None:
    """The id of the job named ``name`` that started last, in any state; None if none."""
    jobs = [job for job in _request(master, "/jobs/overview")["jobs"] if job["name"] == name]
    return max(jobs, key=lambda job: job["start-time"])["jid"] if jobs else None


@dataclasses.dataclass(frozen=True)
class JobShape:
    """How a Flink job is cut, from its REST API (``job_shape``).

    Attributes:
      vertices: the job's vertices (Flink tasks; each a chain of operators).
      operators: the operators chained into them, every vertex's counted.
      sdk_stages: those operators that are one of Beam's fused stages
        (``[n]name``: n transforms run in an SDK worker, Python or Java); every
        element that enters one is a round trip to a worker.
      edge_elements: the elements the vertices received from other vertices over
        the network (Σ ``read-records``); elements passed within a chain are not
        counted by Flink.
    """

    vertices: int
    operators: int
    sdk_stages: int
    edge_elements: int

    def elements_per_record(self, records: int) -> float | None:
        """``edge_elements`` per record read (None without records)."""
        return round(self.edge_elements / records, 2) if records else None


# One operator of a vertex's description: a line after the tree drawing (``+- ``,
# ``:- ``, ``:  ``) of its chain.
_CHAIN_PREFIX = re.compile(r"^[\s:+|-]*")
_SDK_STAGE = re.compile(r"^\[\d+\]")


def job_shape(master: str, jid: str) -> JobShape:
    """The shape of job ``jid``: its vertices and chained operators (``/jobs/<jid>/plan``:
    one node per vertex, its ``description`` a line per operator) and the elements
    that crossed between vertices (``/jobs/<jid>``: each vertex's ``read-records``;
    final once the job has ended, Flink keeps an ended job's figures for an hour)."""
    nodes = _request(master, f"/jobs/{jid}/plan")["plan"]["nodes"]
    operators = [
        _CHAIN_PREFIX.sub("", line)
        for node in nodes
        for line in node["description"].split("<br/>")
        if line.strip()
    ]
    vertices = _request(master, f"/jobs/{jid}")["vertices"]
    return JobShape(
        vertices=len(nodes),
        operators=len(operators),
        sdk_stages=sum(1 for op in operators if _SDK_STAGE.match(op)),
        edge_elements=sum(int(v["metrics"].get("read-records", 0)) for v in vertices),
    )


def wait_until_running(master: str, name: str, timeout_s: float = 120.0) -> str:
    """The id of the job named ``name`` once it runs; ``SavepointError`` if it ended or
    did not start within ``timeout_s``."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        jobs = jobs_named(master, name)
        running = [jid for jid, state in jobs.items() if state == "RUNNING"]
        if running:
            return running[0]
        time.sleep(0.5)
    raise SavepointError(f"no job named {name} is running on {master} after {timeout_s:.0f} s")


def cancel_jobs(master: str, name: str, timeout_s: float = 60.0) -> list[str]:
    """Cancels every job named ``name`` that is not finished; waits until each has
    ended.  Returns the ids it cancelled."""
    cancelled = [jid for jid, state in jobs_named(master, name).items() if state not in TERMINAL]
    for jid in cancelled:
        _request(master, f"/jobs/{jid}?mode=cancel", method="PATCH")
    deadline = time.monotonic() + timeout_s
    while cancelled and time.monotonic() < deadline:
        states = jobs_named(master, name)
        if all(states.get(jid) in TERMINAL for jid in cancelled):
            break
        time.sleep(0.5)
    return cancelled


# The read's two stages, by the names of their transforms: Beam's wrapper that splits
# KafkaIO's UnboundedSource, and BeamlineUnboundedRead's reader stage.
_SPLIT_STAGE = "UnboundedSourceAsSDFWrapper"
_READER_STAGE = "ToExternalKafkaRecord"


def read_is_checkpointed(master: str, jid: str, since_ms: list) -> bool:
    """Whether a savepoint of job ``jid`` now holds its Kafka readers.

    Once Flink's impulse has fired, the read lives only as the split stage's output
    in flight and then as the readers' residual restrictions in the reader stage's
    keyed state; a savepoint taken before they reached that state restores a read
    with nothing to read (seen: a job stopped during start-up resumed into 120 s of
    nothing).  True when every vertex runs, the reader stage has received every
    split, and a checkpoint has completed since (``since_ms`` keeps, between calls,
    when that was first seen).
    """
    job = _request(master, f"/jobs/{jid}")
    vertices = job["vertices"]
    if any(v["status"] != "RUNNING" for v in vertices):
        return False
    split = [v for v in vertices if _SPLIT_STAGE in v["name"]]
    reader = [v for v in vertices if _READER_STAGE in v["name"]]
    if not split or not reader:
        return True  # not Beamline's unbounded read: nothing to wait for
    splits = split[0]["metrics"].get("write-records", 0)
    if not since_ms:
        if splits == 0 or reader[0]["metrics"].get("read-records", 0) < splits:
            return False
        since_ms.append(job.get("now", time.time() * 1000))
    latest = _request(master, f"/jobs/{jid}/checkpoints")["latest"].get("completed") or {}
    return latest.get("trigger_timestamp", 0) > since_ms[0]


def wait_for_readers(master: str, jid: str, timeout_s: float = 180.0, poll_s: float = 1.0) -> None:
    """Returns once a savepoint of job ``jid`` would hold its Kafka readers
    (``read_is_checkpointed``); ``SavepointError`` after ``timeout_s``."""
    since: list = []
    deadline = time.monotonic() + timeout_s
    while not read_is_checkpointed(master, jid, since):
        if time.monotonic() > deadline:
            raise SavepointError(
                f"job {jid} has not started reading Kafka within {timeout_s:.0f} s: a "
                "savepoint now would resume into a read with nothing to read; cancel it instead"
            )
        time.sleep(poll_s)


def stop_with_savepoint(
    master: str,
    name: str,
    target_dir: str,
    timeout_s: float = 300.0,
    ready_timeout_s: float = 180.0,
    poll_s: float = 1.0,
) -> str:
    """Stops the running job named ``name`` with a savepoint in ``target_dir`` (a
    ``file://`` URI); returns the savepoint's location, from which
    ``--savepoint_path`` resumes the job.  Waits first, up to ``ready_timeout_s``,
    until a savepoint would hold the job's Kafka readers (``read_is_checkpointed``).
    Flink finishes the job's bundles and takes the savepoint before the job ends
    (9-42 s here)."""
    running = [jid for jid, state in jobs_named(master, name).items() if state == "RUNNING"]
    if len(running) != 1:
        raise SavepointError(f"{len(running)} running jobs named {name} on {master}: need one")
    jid = running[0]
    wait_for_readers(master, jid, ready_timeout_s, poll_s)
    return stop_job_with_savepoint(master, jid, target_dir, timeout_s, poll_s)


def stop_job_with_savepoint(
    master: str, jid: str, target_dir: str, timeout_s: float = 300.0, poll_s: float = 1.0
) -> str:
    """Stops job ``jid`` with a savepoint in ``target_dir`` now (the caller has waited
    for its readers: ``wait_for_readers``); returns the savepoint's location.  A failed
    savepoint is ``SavepointError`` naming its root cause in one line.

    No drain: Flink's ``drain`` (the final watermark through the job before it ends)
    ran the TaskManager out of heap on this job twice (1.1 GB and 2.1 GB), within 3
    minutes of the request, and the savepoint failed (docs/runners.md, Flink cluster)."""
    trigger = _request(
        master, f"/jobs/{jid}/stop", "POST", body={"targetDirectory": target_dir, "drain": False}
    )["request-id"]
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        status = _request(master, f"/jobs/{jid}/savepoints/{trigger}")
        if status["status"]["id"] == "COMPLETED":
            operation = status.get("operation") or {}
            if "location" not in operation:
                trace = (operation.get("failure-cause") or {}).get("stack-trace") or str(operation)
                causes = [line for line in trace.splitlines() if line.startswith("Caused by")]
                raise SavepointError(
                    f"the savepoint of job {jid} failed: {(causes or trace.splitlines())[-1]}"
                )
            return operation["location"]
        time.sleep(poll_s)
    raise SavepointError(f"the savepoint of job {jid} did not complete within {timeout_s:.0f} s")
