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

__all__ = ["TERMINAL", "cancel_jobs", "job_name", "jobs_named"]

TERMINAL = {"FINISHED", "CANCELED", "FAILED"}


def job_name(run_id: str) -> str:
    """The Flink job name of a run (its ``--job_name``)."""
    return f"beamline-{run_id}"


def _request(master: str, path: str, method: str = "GET", timeout_s: float = 10.0):
    request = urllib.request.Request(f"http://{master}{path}", method=method)
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
