"""The bench's measurement of one Beamline run: a subprocess tree sampled from ``/proc``.

Every 0.5 s it reads the CPU seconds of each process of the run's tree, and on a
Flink cluster of the cluster's processes too (``bench_cpu``), the sum of the tree's
resident memory, and asks whether the job is visible yet and whether the run has a
first row in PostgreSQL (``bench_probes``); once the run has ended, when its last
row was written.  The Kafka and PostgreSQL servers' CPU is read before and after.
Linux only (``/proc``).
"""

from __future__ import annotations

import dataclasses
import logging
import os
import pathlib
import subprocess
import threading
import time

import psycopg2

from beam_pipeline import flink_cluster
from beam_pipeline.runners import flink_cluster_master
from beam_pipeline.settings import REPO_ROOT, StackSettings
from datasets.customer_events import DATASET
from tools.bench_cpu import CpuSampler
from tools.bench_probes import FirstRow, job_visible_probe, last_row_at
from tools.peak_memory import proc_stat, tree_rss

__all__ = ["SAMPLE_EVERY_S", "BeamlineRun", "run_beamline"]

_LOG = logging.getLogger(__name__)

SAMPLE_EVERY_S = 0.5
_TICK = os.sysconf("SC_CLK_TCK")
_MIB = 1024 * 1024
# A Flink cluster's long-lived processes (scripts/flink.sh): each one's pid file under
# <home>/flink/, and a part of its command line.
_CLUSTER_PIDS = (
    ("jobmanager.pid", "StandaloneSessionClusterEntrypoint"),
    ("taskmanager.pid", "TaskManagerRunner"),
    ("python-workers.pid", "beam_pipeline.worker_pool"),
    ("expansion-service.pid", "beam_pipeline.java_services"),
    ("job-server.pid", "beamline-flink-job-server"),
)


@dataclasses.dataclass(frozen=True)
class BeamlineRun:
    """How one Beamline subprocess went.

    Attributes:
      exit_code: the subprocess's.
      wall_s: launch (the submission) to exit.
      job_visible_s: launch to the job's being visible (``bench_probes``), or None.
      first_row_s: launch to the first row of the run in PostgreSQL, or None.
      last_row_s: launch to the insert of the run's newest row (its ``written_at``),
        or None.
      cpu_s: ``"<role>: <process> [pid]"`` → the CPU seconds (utime + stime) it used
        in the run, at its last sample (``bench_cpu``: the run's tree, and on a Flink
        cluster the cluster's processes; a process's last ≤ 0.5 s are missed when it
        ends between samples).
      role_cpu_s: role → the sum of ``cpu_s`` over its processes.
      tree_cpu_s: the subprocess and every descendant it waited for, from
        ``wait4``'s resource usage: exact, the total the samples approximate.
      peak_rss_mib: the largest sum of the tree's resident memory over the samples.
      services_cpu_s: ``kafka``/``postgres`` → CPU seconds the server used during
        the run (after − before), or None when its process was not found.
      shape: on a Flink cluster, the shape of the run's job once it has ended
        (``flink_cluster.job_shape``); None elsewhere, or when the REST API did not
        answer.
    """

    exit_code: int
    wall_s: float
    job_visible_s: float | None
    first_row_s: float | None
    last_row_s: float | None
    cpu_s: dict
    role_cpu_s: dict
    tree_cpu_s: float
    peak_rss_mib: float
    services_cpu_s: dict
    shape: flink_cluster.JobShape | None = None


def run_beamline(
    command: list[str], settings: StackSettings, run_id: str, log_path: pathlib.Path
) -> BeamlineRun:
    """Runs ``command`` (from the repository's root) and measures it; its output goes
    to ``log_path``.  ``run_id`` is the run whose job and rows the probes look for.
    Interrupted (Ctrl-C), it terminates the subprocess before re-raising."""
    services = _service_pids(settings)
    before = {name: _server_cpu_s(pid) for name, pid in services.items()}
    probe = FirstRow(settings, DATASET, run_id)
    visible_probe = job_visible_probe(command, run_id, log_path)
    # A cluster's processes work for the run without being its descendants.
    cluster = _cluster_pids(settings) if flink_cluster_master(command) else []
    cpu = CpuSampler(cluster)
    peak = [0]
    first_row: list[float] = []
    visible: list[float] = []
    stop = threading.Event()
    with open(log_path, "wb") as log:
        started, launched_at = time.monotonic(), time.time()
        child = subprocess.Popen(command, cwd=REPO_ROOT, stdout=log, stderr=subprocess.STDOUT)

    def sample() -> None:
        while True:
            now = time.monotonic()
            tree = tree_rss(child.pid)
            peak[0] = max(peak[0], sum(rss for _, rss in tree.values()))
            cpu.sample([child.pid, *cluster])
            if not visible and visible_probe():
                visible.append(now - started)
            if not first_row:
                try:
                    if probe():
                        first_row.append(now - started)
                except psycopg2.Error as e:  # a probe must never stop the measurement
                    _LOG.debug("first-row probe failed: %s", e)
            if stop.wait(max(0.0, SAMPLE_EVERY_S - (time.monotonic() - now))):
                return

    sampler = threading.Thread(target=sample, name="bench-sampler", daemon=True)
    sampler.start()
    try:
        _, status, usage = os.wait4(child.pid, 0)
    except BaseException:
        child.terminate()
        child.wait(60)
        raise
    finally:
        ended = time.monotonic()
        stop.set()
        sampler.join(10)
    child.returncode = os.waitstatus_to_exitcode(status)
    after = {name: _server_cpu_s(pid) for name, pid in services.items()}
    if not sampler.is_alive():
        cpu.sample(cluster)  # the cluster's processes up to the driver's exit
    if not visible and visible_probe():
        visible.append(ended - started)  # visible after the last sample
    try:
        if not first_row and probe():
            first_row.append(ended - started)  # rows landed after the last sample
    finally:
        probe.close()
    newest = _last_row_at(settings, run_id)
    master = flink_cluster_master(command)
    return BeamlineRun(
        exit_code=child.returncode,
        wall_s=ended - started,
        job_visible_s=visible[0] if visible else None,
        first_row_s=first_row[0] if first_row else None,
        last_row_s=None if newest is None else newest - launched_at,
        cpu_s=cpu.per_process(),
        role_cpu_s=cpu.per_role(),
        tree_cpu_s=usage.ru_utime + usage.ru_stime,
        peak_rss_mib=peak[0] / _MIB,
        services_cpu_s={
            name: None
            if before[name] is None or after[name] is None
            else after[name] - before[name]
            for name in services
        },
        shape=None if master is None else _job_shape(master, run_id),
    )


def _job_shape(master: str, run_id: str) -> flink_cluster.JobShape | None:
    """The shape of the run's job on the cluster at ``master`` (its newest, if it was
    submitted more than once), or None when there is none or the REST API fails."""
    try:
        jid = flink_cluster.newest_job_named(master, flink_cluster.job_name(run_id))
        if jid is None:
            _LOG.warning("no job of run %s on the Flink cluster at %s", run_id, master)
            return None
        return flink_cluster.job_shape(master, jid)
    except (OSError, ValueError, KeyError) as e:  # the figure is missing, the run stands
        _LOG.warning("cannot read the shape of run %s's job: %s", run_id, e)
        return None


def _last_row_at(settings: StackSettings, run_id: str) -> float | None:
    try:
        return last_row_at(settings, DATASET, run_id)
    except psycopg2.Error as e:  # the figure is missing, the measurement stands
        _LOG.warning("cannot read when the run's last row was written: %s", e)
        return None


def _cpu_s(pid: int, reaped_children: bool = False) -> float | None:
    """utime + stime of ``pid`` in seconds (and of its reaped children, if asked)."""
    fields = proc_stat(pid)
    if fields is None:
        return None
    # After the name: state(3) ppid(4) … utime(14) stime(15) cutime(16) cstime(17).
    ticks = int(fields[11]) + int(fields[12])
    if reaped_children:
        ticks += int(fields[13]) + int(fields[14])
    return ticks / _TICK


def _find_pid(pidfile: pathlib.Path, needle: str) -> int | None:
    """The pid in the first line of ``pidfile``, else a process whose command line
    holds ``needle`` (``/proc``)."""
    try:
        pid = int(pidfile.read_text().split()[0])
        if proc_stat(pid) is not None:
            return pid
    except (OSError, ValueError, IndexError):
        pass
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/cmdline", "rb") as f:
                cmdline = f.read().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        if needle in cmdline:
            return int(entry)
    return None


def _server_cpu_s(pid: int | None) -> float | None:
    """CPU seconds a server has used so far: the process, its reaped children (a
    PostgreSQL backend that ended) and its live descendants."""
    if pid is None:
        return None
    total = _cpu_s(pid, reaped_children=True)
    if total is None:
        return None
    for child in tree_rss(pid):
        if child != pid:
            total += _cpu_s(child) or 0.0
    return total


def _cluster_pids(settings: StackSettings) -> list[int]:
    """The pids of the Flink cluster's long-lived processes that are running."""
    flink = settings.home / "flink"
    found = [_find_pid(flink / pidfile, needle) for pidfile, needle in _CLUSTER_PIDS]
    return [pid for pid in found if pid is not None]


def _service_pids(settings: StackSettings) -> dict[str, int | None]:
    pg_data = settings.home / "postgres" / "data"
    return {
        "kafka": _find_pid(settings.home / "kafka" / "kafka.pid", "kafka.Kafka"),
        "postgres": _find_pid(pg_data / "postmaster.pid", f"-D {pg_data}"),
    }
