"""The main job's streaming run: a live feed into a streaming job until it balances.

``run_streaming(run, fault)`` goes through these steps:

1. ``_start_job``: ``python -m run`` from the topic's end offsets, in its own
   process group (Ctrl-C reaches the main job only; the job is stopped in order);
2. ``_wait_until_reading``: on the Flink cluster, until the job's readers are up,
   then the records are made again to start 5 s later;
3. ``_Sender``: the records sent at their send times (their Kafka timestamps), on a thread;
4. ``_watch``: every 2 s, the drill's fault injected once it is due; once every
   record is sent and the fault injected, the run reconciled until it balances or
   ``settle_s`` pass (or the job ends, or Ctrl-C);
5. the feed and the job stopped, then ``_finish``: the report kept, the run
   reconciled, its table printed and its exit code.
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import signal
import subprocess
import sys
import threading
import time
import typing

import psycopg2
from confluent_kafka import KafkaException

from beam_pipeline import flink_cluster
from beam_pipeline.errors import print_error
from beam_pipeline.progress import rows_so_far
from beam_pipeline.settings import REPO_ROOT
from tools import reconcile
from tools.main_job.config import CLUSTER_MASTER, RUNNERS, Run, job_flags
from tools.main_job.outcome import committed, keep_report, publish, reconcile_run
from tools.producer import end_offsets

__all__ = ["Fault", "Feed", "StreamOutcome", "StreamingJob", "run_streaming"]

# How often the run is watched (the job prints its own progress).
POLL_S = 2
# On the Flink cluster, the feed starts this long after the job's readers are up.
CLUSTER_FEED_LEAD_MS = 5_000


class StreamingJob:
    """The streaming job's driver, ``python -m run`` in its own process group (Ctrl-C
    reaches the main job only; the job is stopped in order).  A drill may stop it and
    start it again with more flags (a resume from a savepoint)."""

    def __init__(self, flags: list[str]):
        self.flags = flags
        self.process: subprocess.Popen | None = None
        self.codes: list[int] = []  # exit codes of the processes that ended

    def start(self, extra: typing.Sequence[str] = ()) -> None:
        self.process = subprocess.Popen(
            [sys.executable, "-m", "run", *self.flags, *extra],
            cwd=REPO_ROOT,
            start_new_session=True,
        )

    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def wait(self, timeout_s: float, interrupt: bool = False) -> int:
        """Waits for the driver to exit (after Ctrl-C with ``interrupt``); its code."""
        if interrupt and self.running():
            self.process.send_signal(signal.SIGINT)
        code = self.process.wait(timeout_s)
        self.codes.append(code)
        return code


@dataclasses.dataclass
class Feed:
    """What a fault may look at, every poll: how far the live feed is."""

    run_id: str
    start_ms: int  # the first event's time (sent then)
    duration_s: float  # from the first event's time to the last's
    rows: typing.Callable[[], dict[str, int]]  # the run's rows in PostgreSQL so far

    def fraction_sent(self) -> float:
        """The share of the feed's time that has passed (0 before it starts)."""
        elapsed_s = time.time() - self.start_ms / 1000
        return max(0.0, min(1.0, elapsed_s / self.duration_s)) if self.duration_s else 1.0


class Fault(typing.Protocol):
    """A drill's fault, injected once into a streaming run (tools/drill.py)."""

    def due(self, feed: Feed) -> bool: ...

    def inject(self, job: StreamingJob, feed: Feed) -> None: ...


@dataclasses.dataclass
class StreamOutcome:
    """The run's exit code, the producer's report (None: nothing was reconciled),
    the final reconciliation and, for a drill, why its fault did not do what it
    says (never injected, or its injection raised; empty when it did)."""

    code: int
    report: dict | None
    terms: reconcile.Terms | None = None
    results: list[reconcile.Check] = dataclasses.field(default_factory=list)
    fault_problem: str = ""


def run_streaming(run: Run, fault: Fault | None = None) -> StreamOutcome:
    """A streaming job on a live feed: start the job, send the events at their event
    time, wait until the run balances (or Ctrl-C), stop the job, reconcile.  A
    ``fault`` is injected once, when it says it is due, and only then may the run
    balance.  The exit code is the job's if it failed, else 1 if the fault was
    never injected or failed or a check failed, else 0."""
    run.run_dir.mkdir(parents=True, exist_ok=True)
    job = _start_job(run)
    run = _wait_until_reading(run, job)
    if run is None:
        return StreamOutcome(1, None)
    injection = _Injection(fault)
    interrupted = threading.Event()
    sender = _Sender(run)
    try:
        with _ctrl_c_sets(interrupted):
            sender.start()
            started = time.monotonic()
            _watch(run, job, sender, injection, interrupted)
            sender.stop()
    finally:
        code = job.wait(180, interrupt=True)
    if sender.report is None:
        print_error("the producer did not finish: nothing to reconcile")
        return StreamOutcome(1, None)
    return _finish(run, sender.report, code, injection, started)


def _start_job(run: Run) -> StreamingJob:
    start = end_offsets(run.settings.kafka_bootstrap_servers, run.topic)
    job = StreamingJob([*RUNNERS[run.runner], *job_flags(run, start)])
    job.start()
    return job


def _wait_until_reading(run: Run, job: StreamingJob) -> Run | None:
    """``run`` as it is sent: on the Flink cluster, once the job reads, with records
    made again to start ``CLUSTER_FEED_LEAD_MS`` later; None (the job stopped) if
    the job does not start reading."""
    if run.runner != "flink-cluster":
        return run
    # A cluster job takes 60-100 s to read (staging, workers): the feed starts
    # once its readers are up, so that a late event is late for the job too.
    try:
        name = flink_cluster.job_name(run.run_id)
        jid = flink_cluster.wait_until_running(CLUSTER_MASTER, name, timeout_s=300)
        flink_cluster.wait_for_readers(CLUSTER_MASTER, jid, timeout_s=300)
    except (flink_cluster.SavepointError, OSError) as e:
        print_error(f"the cluster job did not start reading: {e}")
        job.wait(180, interrupt=True)
        return None
    return run.starting_at(time.time_ns() // 1_000_000 + CLUSTER_FEED_LEAD_MS)


@contextlib.contextmanager
def _ctrl_c_sets(event: threading.Event):
    """Within: Ctrl-C (SIGINT) sets ``event`` instead of raising KeyboardInterrupt,
    and calls an outer handler of our own too (``drill all`` stops its loop after
    this run), never Python's default one (which raises)."""

    def handler(signum, frame):
        event.set()
        if callable(previous) and previous is not signal.default_int_handler:
            previous(signum, frame)

    previous = signal.signal(signal.SIGINT, handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)


class _Sender:
    """``send_batch`` of the run's records on a daemon thread, each at its event time
    (the job prints a line when it streams; events are sent from then on, live).
    ``report``: the producer's report once the feed has ended, None before."""

    def __init__(self, run: Run):
        self.report: dict | None = None
        self._run = run
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._send, daemon=True)

    def start(self) -> None:
        self._thread.start()
        run = self._run
        count = len(run.batch.messages)
        print(
            f"run {run.run_id}: sending {count:,} {run.spec.value_format} records to "
            f"{run.topic} at their send times (about {count / run.spec.rate_per_s:.0f}"
            " s); Ctrl-C stops",
            flush=True,
        )

    def stop(self, timeout_s: float = 30.0) -> None:
        """Ends the feed early if it is still sending; waits up to ``timeout_s``."""
        self._stop.set()
        self._thread.join(timeout_s)

    def _send(self) -> None:
        self.report = self._run.send(live=True, stop=self._stop)


@dataclasses.dataclass
class _Injection:
    """A drill's fault (None for the main job's own run), injected once when due."""

    fault: Fault | None
    injected: bool = False
    error: str = ""  # what its injection raised

    @property
    def pending(self) -> bool:
        return self.fault is not None and not self.injected

    def inject_if_due(self, job: StreamingJob, feed: Feed) -> bool:
        """Injects the pending fault if it is due; True if it did (or tried)."""
        if not self.pending or not self.fault.due(feed):
            return False
        self.injected = True
        try:
            self.fault.inject(job, feed)
        except (flink_cluster.SavepointError, OSError, subprocess.CalledProcessError) as e:
            # The run goes on to its reconciliation, but the drill fails: its fault
            # was not what it says it measured.
            self.error = f"the drill's fault failed: {e}"
            print_error(self.error)
        return True


def _watch(
    run: Run,
    job: StreamingJob,
    sender: _Sender,
    injection: _Injection,
    interrupted: threading.Event,
) -> None:
    """Polls until the job ends or Ctrl-C: injects the fault when it is due; once
    every record is sent and the fault injected, returns when the run balances or
    has not ``settle_s`` after that."""
    messages = run.batch.messages
    feed = Feed(
        run.run_id,
        run.start_ms,
        (messages[-1][2] - run.start_ms) / 1000 if messages else 0.0,
        functools.partial(rows_so_far, run.settings, run.dataset, run.run_id),
    )
    settling_since = None
    while job.running() and not interrupted.is_set():
        time.sleep(POLL_S)
        if injection.inject_if_due(job, feed):
            continue
        if sender.report is None or injection.pending:
            continue
        settling_since = settling_since or time.monotonic()
        try:
            _, results = reconcile_run(run, sender.report)
        except (psycopg2.Error, KafkaException) as e:  # a drill's service is down
            print(f"run {run.run_id}: cannot reconcile yet: {str(e).strip()}", flush=True)
            continue
        if all(c.passed for c in results):
            return
        if time.monotonic() - settling_since > run.settle_s:
            print(
                f"run {run.run_id}: not balanced {run.settle_s:.0f} s after the last "
                "event; stopping",
                flush=True,
            )
            return


def _finish(
    run: Run, report: dict, code: int, injection: _Injection, started: float
) -> StreamOutcome:
    """Keeps the report, reconciles and prints the run; a drill records its own
    ledger line.  ``code``: the job's exit code."""
    keep_report(run, report)
    terms, results = reconcile_run(run, report)
    extra = {
        "events": run.spec.count,
        "runner": run.runner,
        "run_s": round(time.monotonic() - started, 1),
        "offsets_committed": committed(run, report),
    }
    publish(run, terms, results, extra, record=injection.fault is None)
    problem = injection.error
    if injection.pending:
        problem = "the drill's fault was never injected (the job ended or was stopped first)"
        print_error(problem)
    if problem:
        code = code or 1
    if code == 0 and not all(c.passed for c in results):
        code = 1
    return StreamOutcome(code, report, terms, results, problem)
