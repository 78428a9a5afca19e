"""The driver's part of a run on the stack's Flink cluster (``--flink_master=host:port``).

The cluster's Java stages use the stack's expansion service and its Python stages
the stack's worker pool, and the job goes through the cluster's job server
(``runners.cluster_job_server``), all three outliving any one driver; a job is submitted under
``flink_cluster.job_name(run_id)``, and cancelled there by that name when the
driver stops it (Beam's job server cancels only its own invocation).
"""

from __future__ import annotations

from beam_pipeline import flink_cluster
from beam_pipeline.errors import print_error
from beam_pipeline.preflight import check_listening
from beam_pipeline.runners import CLUSTER_EXPANSION_PORT, FLINK_JOB_PORT, PYTHON_WORKERS_PORT

__all__ = ["cancel_cluster_job", "cluster_expansion_service", "detached"]


def cluster_expansion_service() -> str:
    """The address of the cluster's expansion service, once it, the cluster's Python
    workers and its job server answer.

    Raises:
      ServiceUnavailable: one does not answer; the message says how to start it.
    """
    address = f"127.0.0.1:{CLUSTER_EXPANSION_PORT}"
    check_listening(address, "the Flink cluster's expansion service")
    check_listening(f"127.0.0.1:{PYTHON_WORKERS_PORT}", "the Flink cluster's Python workers")
    check_listening(f"127.0.0.1:{FLINK_JOB_PORT}", "the Flink cluster's job server")
    return address


def cancel_cluster_job(cluster: str, name: str) -> None:
    """Cancels the jobs named ``name`` still running on ``cluster``, a line for each."""
    for jid in flink_cluster.cancel_jobs(cluster, name):
        print(f"cancelled job {jid} on the Flink cluster at {cluster}", flush=True)


def detached(cluster: str, name: str, run_id: str) -> int:
    """A detached submission's end: the job's id once it runs on the cluster; the
    driver exits and leaves it (and its checkpoints) running.  Returns the driver's
    exit code: 0, or 1 when the job did not start (one line on stderr)."""
    try:
        jid = flink_cluster.wait_until_running(cluster, name)
    except (flink_cluster.SavepointError, OSError) as e:
        print_error(f"the detached job did not start: {e}")
        return 1
    print(
        f"run {run_id}: submitted to the Flink cluster at {cluster} as job {jid} (detached, "
        f"http://{cluster}/#/job/running/{jid}); it runs until "
        f"./run_local.sh flink stop-job {run_id}",
        flush=True,
    )
    return 0
