"""A Flink cluster's jobs, through its REST API (``--flink_master=host:port``).

Beam's Flink job server submits a job to a cluster and then only watches it: when
the driver cancels, the job server's invocation ends but the job runs on in the
cluster (seen: a streaming job RUNNING after its driver printed CANCELLED).  The
driver names each cluster job ``beamline-<run_id>`` (``--job_name``) and cancels it
here by that name.
"""

from __future__ import annotations

import json
import time
import urllib.request

__all__ = [
    "TERMINAL",
    "SavepointError",
    "cancel_jobs",
    "job_name",
    "jobs_named",
    "stop_with_savepoint",
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


def jobs_named(master: str, name: str) -> dict[str, str]:
    """Job id → state of every job of the cluster named ``name``."""
    jobs = _request(master, "/jobs/overview")["jobs"]
    return {job["jid"]: job["state"] for job in jobs if job["name"] == name}


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


def stop_with_savepoint(master: str, name: str, target_dir: str, timeout_s: float = 300.0) -> str:
    """Stops the running job named ``name`` with a savepoint in ``target_dir`` (a
    ``file://`` URI); returns the savepoint's location, from which
    ``--savepoint_path`` resumes the job.  Flink finishes the job's bundles and
    takes the savepoint before the job ends (about 35 s here)."""
    running = [jid for jid, state in jobs_named(master, name).items() if state == "RUNNING"]
    if len(running) != 1:
        raise SavepointError(f"{len(running)} running jobs named {name} on {master}: need one")
    jid = running[0]
    trigger = _request(
        master, f"/jobs/{jid}/stop", "POST", body={"targetDirectory": target_dir, "drain": False}
    )["request-id"]
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        status = _request(master, f"/jobs/{jid}/savepoints/{trigger}")
        if status["status"]["id"] == "COMPLETED":
            operation = status.get("operation") or {}
            if "location" not in operation:
                raise SavepointError(f"the savepoint of job {jid} failed: {operation}")
            return operation["location"]
        time.sleep(1.0)
    raise SavepointError(f"the savepoint of job {jid} did not complete within {timeout_s:.0f} s")
