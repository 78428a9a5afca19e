"""Fault drills: a streaming run of the main job with one fault injected mid-feed.

    ./run_local.sh drill NAME [--at 0.4] [--events N] [other main-job flags]
    ./run_local.sh drill all|NAME --seeds N [--seed S] [other flags]

Each drill is ``./run_local.sh --runner flink-cluster`` (the default; ``--runner``
picks another streaming runner where the fault applies): a live feed of the
dataset's records with injected faults, the job on it, and once ``--at`` of the
feed's time has passed (and the job has written rows, unless ``--early``) the
drill's fault.  Then the run goes on until it balances or ``--settle_s`` pass, and
is reconciled from its sinks as the main job is.  The last lines are the
reconciliation and one summary:

    drill stop-resume: produced 10500, landed 9800, dead-lettered 200, duplicates
    500, lost 0, written twice 0 — PASS

``lost`` is the run's offsets found in no output; ``written twice`` the offsets
found in more than one row plus the Parquet rows beyond PostgreSQL's.  The exit
code is 0 only when every check of the reconciliation passes.

``all`` runs every drill, and ``--seeds N`` each drill N times with the seeds ``S``
(``--seed``, default 1) to ``S + N - 1``: one streaming run after another, then the
table of drill x seed (``tools/drill_series.py``) and ``k of n drill runs passed``;
exit 0 only when every run passed.  A run that fails or raises is a FAIL cell and
the series goes on; Ctrl-C stops it after the current run.

Drills (the Flink cluster: ``./run_local.sh flink start`` first):

- ``stop-resume``: stop the job with a savepoint (``./run_local.sh flink
  stop-job``), let the feed run on, resume the same run from the savepoint.
- ``taskmanager-kill``: kill the TaskManager (SIGKILL) and start a new one; Flink
  restarts the job from its last checkpoint.
- ``broker-restart``: stop the Kafka broker, start it 10 s later.
- ``postgres-down``: stop PostgreSQL for 30 s.
- ``poison-burst``: 10% of the feed poison (5% malformed, 5% invalid), not 4%.
- ``schema-drift``: 5% of the feed from a drifted producer (``--drift``).
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import os
import pathlib
import signal
import subprocess
import sys
import threading
import time
import typing

import datasets
from beam_pipeline import flink_cluster
from beam_pipeline.settings import REPO_ROOT, StackSettings
from tools import drill_series, ledger, main_job, reconcile

__all__ = ["ALL", "DRILLS", "main", "make_parser", "run_drill", "summary", "tally"]

_MASTER = main_job.CLUSTER_MASTER


@dataclasses.dataclass
class _Fault:
    """Due once ``at`` of the feed's time has passed and, unless ``early``, the run
    has rows in PostgreSQL (a fault before the job is up tests start-up, not the
    fault)."""

    at: float
    early: bool
    flags: typing.ClassVar[tuple[str, ...]] = ()  # the main job's flags it needs

    def due(self, feed: main_job.Feed) -> bool:
        return feed.fraction_sent() >= self.at and (self.early or feed.rows()["events"] > 0)


class StopAndResume(_Fault):
    """Stop with a savepoint, wait for the driver to end, resume from the savepoint."""

    def inject(self, job: main_job.StreamingJob, feed: main_job.Feed) -> None:
        settings = StackSettings.from_env()
        target = (settings.home / "flink" / "state" / "savepoints").resolve().as_uri()
        name = flink_cluster.job_name(feed.run_id)
        due = time.monotonic()
        jid = flink_cluster.wait_until_running(_MASTER, name, timeout_s=240)  # an early fault
        flink_cluster.wait_for_readers(_MASTER, jid)
        started = time.monotonic()
        location = flink_cluster.stop_job_with_savepoint(_MASTER, jid, target)
        code = job.wait(180)
        print(
            f"drill: waited {started - due:.1f} s for the job's readers to be in a "
            f"checkpoint, then stopped run {feed.run_id} with a savepoint in "
            f"{time.monotonic() - started:.1f} s (driver exit {code}, "
            f"{feed.rows()['events']} event rows so far): {location}",
            flush=True,
        )
        # The resumed job reads from the savepoint's offsets: the start offsets (which
        # would be committed to the run's group again) are left out, its group kept.
        job.flags = [f for f in job.flags if not f.startswith("--kafka_start_offsets=")]
        job.flags.append(f"--kafka_consumer_group=beamline-{feed.run_id}")
        job.start([f"--savepoint_path={location}"])
        print(f"drill: resumed run {feed.run_id} from {location}", flush=True)


class KillTaskManager(_Fault):
    """SIGKILL the cluster's TaskManager, then start a new one (as a supervisor would)."""

    def inject(self, job: main_job.StreamingJob, feed: main_job.Feed) -> None:
        settings = StackSettings.from_env()
        pid_file = settings.home / "flink" / "taskmanager.pid"
        pid = int(pid_file.read_text())
        os.kill(pid, signal.SIGKILL)
        print(f"drill: killed the TaskManager (pid {pid}) of run {feed.run_id}", flush=True)
        _run_local("flink", "start-taskmanager")


def _run_local(*args: str) -> None:
    subprocess.run([str(REPO_ROOT / "run_local.sh"), *args], check=True)


class _ServiceDown(_Fault):
    """Stops one of the stack's services for ``down_s``, then starts it again."""

    service: typing.ClassVar[str]
    down_s: typing.ClassVar[float]

    def inject(self, job: main_job.StreamingJob, feed: main_job.Feed) -> None:
        _run_local("stop", self.service)
        print(f"drill: {self.service} stopped for {self.down_s:.0f} s (run {feed.run_id})")
        time.sleep(self.down_s)  # the fault itself: how long the service is away
        _run_local("start", self.service)
        print(f"drill: {self.service} started again", flush=True)


class RestartBroker(_ServiceDown):
    """The Kafka broker stopped (SIGTERM, as a restart would) and started 10 s later:
    the job's reads and dead-letter writes, and the feed's producer, wait for it."""

    service, down_s = "kafka", 10.0


class PostgresDown(_ServiceDown):
    """PostgreSQL stopped for 30 s: the JDBC writer retries its batches (and past its
    attempts Flink restarts the job from its last checkpoint)."""

    service, down_s = "postgres", 30.0


class _FeedFault(_Fault):
    """A fault in the records themselves, set by the main job's ``flags``."""

    def due(self, feed: main_job.Feed) -> bool:
        return True

    def inject(self, job: main_job.StreamingJob, feed: main_job.Feed) -> None:
        print(f"drill: the feed carries {' '.join(self.flags)}", flush=True)


class PoisonBurst(_FeedFault):
    """10% of the feed is poison: 5% malformed, 5% breaking the contract."""

    flags = ("--malformed=0.05", "--invalid=0.05")


class SchemaDrift(_FeedFault):
    """5% of the feed from a producer whose schema drifted: an unknown field, a
    number sent as a string (refused by the contract: dead letters)."""

    flags = ("--drift=0.05",)


DRILLS = {
    "stop-resume": StopAndResume,
    "taskmanager-kill": KillTaskManager,
    "broker-restart": RestartBroker,
    "postgres-down": PostgresDown,
    "poison-burst": PoisonBurst,
    "schema-drift": SchemaDrift,
}
ALL = "all"  # the drill name that runs every drill (tools/drill_series.py)


def tally(terms: reconcile.Terms, audit: reconcile.OffsetAudit) -> dict[str, int]:
    """Where the produced records went, and what was lost or written twice.  A copy
    that came after its id's dedup TTL has a Parquet row of its own by rule (docs/pipeline.md,
    "Dedup after its TTL"): it is counted as a late copy, not as written twice."""
    parquet_extra = max(
        0, terms.parquet_events - terms.postgres_events - terms.superseded - terms.late_copies
    )
    copies = {"late copies": terms.late_copies} if terms.late_copies else {}
    return {
        "produced": terms.produced,
        "landed": terms.valid_unique,
        "dead-lettered": terms.dead_letters,
        "duplicates": terms.duplicates,
        "late": terms.late,
        **copies,
        "lost": audit.missing,
        "written twice": audit.repeated + parquet_extra,
    }


def summary(name: str, counts: dict[str, int], passed: bool) -> str:
    """The drill's line; PASS only when the run reconciled and nothing was lost or
    written twice."""
    ok = passed and counts["lost"] == counts["written twice"] == 0
    return (
        f"drill {name}: "
        + ", ".join(f"{k} {v}" for k, v in counts.items())
        + (" — PASS" if ok else " — FAIL")
    )


def run_drill(
    name: str, argv: list[str], parser: argparse.ArgumentParser, seed: int | None = None
) -> drill_series.DrillResult:
    """One drill: a streaming run of the main job with ``argv`` (the command line's
    flags; ``parser`` the drill's, which knows them) and drill ``name``'s fault,
    with ``seed`` (None: ``--seed``'s, else random), reconciled; prints its summary
    line, records its ledger line and returns its outcome.  Raises what the run's
    services raise (a series makes that a FAIL cell)."""
    settings = StackSettings.from_env()
    known, _ = parser.parse_known_args(argv)
    fault = DRILLS[name](known.at, known.early)
    argv = [*argv, *([f"--seed={seed}"] if seed is not None else [])]  # the last one wins
    given = {f.split("=", 1)[0] for f in argv}
    argv += [f for f in fault.flags if f.split("=", 1)[0] not in given]
    outcome = main_job.stream(argv, fault, parser)
    if outcome.report is None:
        reason = outcome.fault_problem or f"nothing reconciled (exit {outcome.code})"
        return drill_series.DrillResult(name, seed, False, reason=reason, code=outcome.code or 1)
    run_id = outcome.report["run_id"]
    gathered = reconcile.gather(
        datasets.get(outcome.report["dataset"]),
        run_id,
        outcome.report,
        pathlib.Path(known.output_dir).resolve(),
        settings,
    )
    counts = tally(gathered.terms, gathered.audit)
    line = summary(name, counts, outcome.code == 0)
    print(line)
    passed = line.endswith("PASS")
    seed = outcome.report.get("seed", seed)
    ledger.record(
        settings,
        "drill",
        drill=name,
        run_id=run_id,
        seed=seed,
        runner=known.runner,
        events=known.events,
        at_share=known.at,
        early=known.early,
        passed=passed,
        **{k.replace(" ", "_").replace("-", "_"): v for k, v in counts.items()},
    )
    return drill_series.DrillResult(
        name,
        seed,
        passed,
        counts,
        injected_late=gathered.terms.injected_late,
        reason="" if passed else _reason(outcome),
        run_id=run_id,
        code=outcome.code or (0 if passed else 1),
    )


def _reason(outcome: main_job.StreamOutcome) -> str:
    """Why a reconciled run failed, one line: its fault, the job's exit, or the
    checks that failed (empty when only the counts say it)."""
    if outcome.fault_problem:
        return outcome.fault_problem
    failed = [c.name for c in outcome.results if not c.passed]
    if failed:
        return f"{len(failed)} check(s) failed: {failed[0]}" + (", …" if len(failed) > 1 else "")
    return f"the job exited {outcome.code}" if outcome.code else ""


def make_parser(settings: StackSettings) -> argparse.ArgumentParser:
    """The main job's flags and the drill's: ``NAME`` (or ``all``), ``--at``,
    ``--early``, ``--seeds``."""
    parser = main_job.make_parser(settings)
    parser.prog = "./run_local.sh drill NAME"
    parser.description = __doc__.split("\n\n")[0]
    parser.add_argument(
        "drill", choices=[*sorted(DRILLS), ALL], help=f"the fault to inject; {ALL}: every one"
    )
    parser.add_argument(
        "--at", type=float, default=0.4, help="inject once this share of the feed's time passed"
    )
    parser.add_argument(
        "--early",
        action="store_true",
        help="do not wait for the job's first rows (a fault during start-up)",
    )
    parser.add_argument(
        "--seeds",
        type=int,
        default=None,
        help="run each drill this many times, with seeds --seed (default 1) and the ones "
        "after it, then print the table of drill x seed",
    )
    parser.set_defaults(runner="flink-cluster")
    return parser


def main(argv: list[str] | None = None, run_one: drill_series.RunOne | None = None) -> int:
    """``./run_local.sh drill NAME|all [--seeds N]``; ``run_one`` (a test's fake)
    replaces ``run_drill``.  One drill without ``--seeds``: its exit code.  A series:
    the table, and 0 only when every run passed."""
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = make_parser(StackSettings.from_env())
    known, _ = parser.parse_known_args(argv)
    if not 0 <= known.at <= 1:
        parser.error(f"--at is a share of the feed, 0 to 1 (got {known.at})")
    run_one = run_one or (lambda name, seed: run_drill(name, argv, parser, seed))
    if known.drill != ALL and known.seeds is None:
        return run_one(known.drill, known.seed).code  # one drill, as it always ran
    try:
        seed_list = drill_series.seeds(1 if known.seeds is None else known.seeds, known.seed)
    except ValueError as e:
        parser.error(str(e))
    runs = drill_series.plan(list(DRILLS) if known.drill == ALL else [known.drill], seed_list)
    print(
        f"drill: {len(runs)} runs, one after another, seeds {', '.join(map(str, seed_list))} "
        "(--seed and the ones after it); Ctrl-C stops after the current run",
        flush=True,
    )
    stop = threading.Event()
    with _ctrl_c_sets(stop):
        results = drill_series.run_series(runs, run_one, stop)
    print(drill_series.render(runs, results))
    return drill_series.exit_code(runs, results)


@contextlib.contextmanager
def _ctrl_c_sets(stop: threading.Event):
    """Within: a first Ctrl-C sets ``stop`` (the series ends after the current run;
    a streaming run also stops in order); a second raises KeyboardInterrupt."""

    def handler(signum, frame):
        if stop.is_set():
            raise KeyboardInterrupt
        stop.set()
        print("drill: Ctrl-C: stopping after this run (again: at once)", flush=True)

    previous = signal.signal(signal.SIGINT, handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)


if __name__ == "__main__":
    sys.exit(main())
