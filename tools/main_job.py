"""The main job behind ``./run_local.sh``: produce a run's events, process them, reconcile.

1. generate ``--events`` customer events with injected faults (2% malformed, 2%
   invalid, 5% duplicated by default) under a new ``run_id``, send them to the
   topic and keep the producer's report in ``<output>/<run_id>/producer.json``;
2. run the DAG (``python -m run``) over exactly the run's offsets: from the
   report's offsets before the send to those after it, partition by partition;
3. reconcile the run from its sinks and print the table.

Flags this module does not know go to ``python -m run`` unchanged.  Exit code: the
pipeline's if it failed, else 1 if a reconciliation check failed, else 0.
"""

from __future__ import annotations

import argparse
import dataclasses
import functools
import json
import pathlib
import secrets
import signal
import subprocess
import sys
import threading
import time
import typing

import psycopg2
from confluent_kafka import KafkaException

import datasets
from beam_pipeline import driver, flink_cluster
from beam_pipeline.options import DEFAULT_MAX_DELAY_S
from beam_pipeline.preflight import committed_offsets
from beam_pipeline.progress import rows_so_far
from beam_pipeline.runners import FLINK_REST_PORT, RUNNER_PRESETS
from beam_pipeline.settings import REPO_ROOT, StackSettings
from schemas.dataset import Dataset
from tools import ledger, reconcile
from tools.event_producer import Batch, BatchSpec, send_batch
from tools.producer import end_offsets
from tools.stack import ServiceUnavailable, check_kafka

__all__ = ["main"]


def make_parser(settings: StackSettings) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="./run_local.sh",
        description="Produce a run of a dataset's records with injected faults, run the "
        "pipeline over them, reconcile.",
        epilog="Other flags are passed to python -m run (see python -m run --help).",
        allow_abbrev=False,
    )
    parser.add_argument("--events", type=int, default=10_000, help="original events to produce")
    parser.add_argument("--seed", type=int, default=None, help="default: random, reported")
    parser.add_argument("--malformed", type=float, default=0.02, help="share of malformed values")
    parser.add_argument("--invalid", type=float, default=0.02, help="share of invalid events")
    parser.add_argument("--duplicates", type=float, default=0.05, help="share of duplicates")
    parser.add_argument(
        "--drift",
        type=float,
        default=0.0,
        help="share of events from a producer whose schema drifted (an unknown field, a "
        "number sent as a string): JSON only; the contract refuses them (dead letters)",
    )
    parser.add_argument(
        "--out_of_order",
        type=float,
        default=0.01,
        help="share of events sent 5-30 s behind (default: %(default)s); streaming runs "
        "allow 30 s of lateness by default, so these are counted, in late panes",
    )
    parser.add_argument(
        "--late",
        type=float,
        default=None,
        help="streaming: share of events sent behind by more than window + allowed "
        "lateness + watermark delay + 30 s, which must come out of the late lane "
        "(default 0.01; 0 on the DirectRunner, where nothing is ever late)",
    )
    parser.add_argument(
        "--late_copies",
        type=float,
        default=0.0,
        help="streaming: share of events copied byte for byte once the event time has "
        "moved past the dedup TTL (window + allowed lateness unless --dedup_ttl_s is "
        "given) + watermark delay + 30 s: each must be a late event, never a second "
        "PostgreSQL row (README, 'Dedup after its TTL')",
    )
    parser.add_argument(
        "--settle_s",
        type=float,
        default=120.0,
        help="streaming: how long to wait, after the last event is sent, for the run to "
        "balance before stopping the job (default: %(default)s)",
    )
    parser.add_argument("--rate", type=float, default=100.0, help="events per second of event time")
    parser.add_argument(
        "--users",
        type=int,
        default=200,
        help="the generator's pool of users (customers for --dataset customers, so "
        "records per customer = events / users)",
    )
    parser.add_argument(
        "--runner",
        default="direct",
        choices=sorted(RUNNERS),
        help="direct: produce, then a bounded batch run; prism, flink (embedded) or "
        "flink-cluster (./run_local.sh flink start; parallelism 2): a "
        "streaming job on a live feed (events sent at their event time) until the run "
        "balances or Ctrl-C",
    )
    parser.add_argument(
        "--dataset",
        default=datasets.DEFAULT,
        choices=datasets.names(),
        help="the dataset to produce and run (default: %(default)s)",
    )
    parser.add_argument("--kafka_topic", default=None, help="default: the dataset's topic")
    parser.add_argument(
        "--value_format",
        default="json",
        choices=("json", "avro", "avro_confluent"),
        help="encoding of the produced values, passed on to python -m run",
    )
    parser.add_argument("--output_dir", default=str(settings.home / "output"))
    return parser


RUNNERS = RUNNER_PRESETS
CLUSTER_MASTER = f"127.0.0.1:{FLINK_REST_PORT}"


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
    """A drill's fault, injected once into a streaming run (tools/drill.py);
    ``stops_job``: the job stops reading for a while."""

    stops_job: bool

    def due(self, feed: Feed) -> bool: ...

    def inject(self, job: StreamingJob, feed: Feed) -> None: ...


@dataclasses.dataclass
class StreamOutcome:
    code: int
    report: dict | None
    terms: reconcile.Terms | None = None
    results: list[reconcile.Check] = dataclasses.field(default_factory=list)


def _stream(run: _Run, fault: Fault | None = None) -> StreamOutcome:
    """A streaming job on a live feed: start the job, send the events at their event
    time, wait until the run balances (or Ctrl-C), stop the job, reconcile.  A
    ``fault`` is injected once, when it says it is due, and only then may the run
    balance."""
    args, run_flags, settings, dataset = run.args, run.run_flags, run.settings, run.dataset
    batch, run_id, seed, start_ms = run.batch, run.run_id, run.seed, run.start_ms
    run_dir = pathlib.Path(args.output_dir).resolve() / run_id
    run_dir.mkdir(parents=True, exist_ok=True)
    start = end_offsets(settings.kafka_bootstrap_servers, args.kafka_topic)
    job = StreamingJob(
        [
            *RUNNERS[args.runner],
            f"--run_id={run_id}",
            f"--dataset={args.dataset}",
            f"--kafka_topic={args.kafka_topic}",
            f"--value_format={args.value_format}",
            f"--kafka_start_offsets={_offsets(start)}",
            f"--output_dir={args.output_dir}",
            *run_flags,
        ]
    )
    job.start()
    if args.runner == "flink-cluster":
        # A cluster job takes 60-100 s to read (staging, workers): the feed starts
        # once its readers are up, so that a late event is late for the job too.
        try:
            name = flink_cluster.job_name(run_id)
            jid = flink_cluster.wait_until_running(CLUSTER_MASTER, name, timeout_s=300)
            flink_cluster.wait_for_readers(CLUSTER_MASTER, jid, timeout_s=300)
        except (flink_cluster.SavepointError, OSError) as e:
            _error(f"the cluster job did not start reading: {e}")
            job.wait(180, interrupt=True)
            return StreamOutcome(1, None)
        start_ms = time.time_ns() // 1_000_000 + 5_000
        batch = _spec(args).generate(run_id, seed, start_ms)
    feed = Feed(
        run_id,
        start_ms,
        (batch.messages[-1][2] - start_ms) / 1000 if batch.messages else 0.0,
        functools.partial(rows_so_far, settings, dataset, run_id),
    )
    reports: list[dict] = []
    stop = threading.Event()
    interrupted = threading.Event()
    previous = signal.signal(signal.SIGINT, lambda *_: interrupted.set())
    pending = fault
    fault_failed = False
    # A job that stopped reading for a while reads its backlog behind the watermark.
    late_exact = fault is None or not fault.stops_job
    try:
        # The job prints a line when it streams; events are sent from then on, live.
        producer = threading.Thread(
            target=lambda: reports.append(
                send_batch(
                    settings.kafka_bootstrap_servers,
                    args.kafka_topic,
                    batch,
                    run_id,
                    seed,
                    start_ms,
                    live=True,
                    stop=stop,
                )
            ),
            daemon=True,
        )
        producer.start()
        print(
            f"run {run_id}: sending {len(batch.messages):,} {args.value_format} records to "
            f"{args.kafka_topic} at their event times (about {len(batch.messages) / args.rate:.0f}"
            " s); Ctrl-C stops",
            flush=True,
        )
        started = time.monotonic()
        sent_at = None
        while job.running() and not interrupted.is_set():
            time.sleep(2)  # the job prints progress; here we only watch for the end
            if pending is not None and pending.due(feed):
                try:
                    pending.inject(job, feed)
                except (flink_cluster.SavepointError, OSError, subprocess.CalledProcessError) as e:
                    # The run goes on to its reconciliation, but the drill fails: its
                    # fault was not what it says it measured.
                    _error(f"the drill's fault failed: {e}")
                    fault_failed = True
                pending, sent_at = None, None
                continue
            if reports and pending is None:
                sent_at = sent_at or time.monotonic()
                try:
                    terms, results = reconcile.reconcile(
                        dataset, run_id, reports[0], run_dir.parent, settings, late_exact
                    )
                except (psycopg2.Error, KafkaException) as e:  # a drill's service is down
                    print(f"run {run_id}: cannot reconcile yet: {str(e).strip()}", flush=True)
                    continue
                if all(c.passed for c in results):
                    break
                if time.monotonic() - sent_at > args.settle_s:
                    print(
                        f"run {run_id}: not balanced {args.settle_s:.0f} s after the last "
                        "event; stopping",
                        flush=True,
                    )
                    break
        stop.set()
        producer.join(30)
    finally:
        signal.signal(signal.SIGINT, previous)
        code = job.wait(180, interrupt=True) if job.process is not None else 1
    if not reports:
        _error("the producer did not finish: nothing to reconcile")
        return StreamOutcome(1, None)
    report = reports[0]
    (run_dir / reconcile.REPORT_NAME).write_text(json.dumps(report, indent=2) + "\n")
    terms, results = reconcile.reconcile(
        dataset, run_id, report, run_dir.parent, settings, late_exact
    )
    extra = {
        "events": args.events,
        "runner": args.runner,
        "run_s": round(time.monotonic() - started, 1),
    }
    extra["offsets_committed"] = _committed(settings, run_id, report)
    print(reconcile.render(dataset, run_id, terms, results, extra))
    if fault is None:  # a drill records its own line
        _record(settings, args, run_id, terms, results, extra)
    if pending is not None:
        _error("the drill's fault was never injected (the job ended or was stopped first)")
        code = code or 1
    if fault_failed:
        code = code or 1
    if code == 0 and not all(c.passed for c in results):
        code = 1
    return StreamOutcome(code, report, terms, results)


# A streaming run allows this much lateness unless told otherwise: out-of-order
# events (up to 30 s behind) are then counted, not late.
STREAMING_LATENESS_S = 30
LATE_MARGIN_S = 30


# Streaming runs count in windows of this many seconds unless told otherwise, so
# that a run of a few minutes closes many windows.
STREAMING_WINDOW_S = 10


def _streaming_defaults(run_flags: list[str]) -> list[str]:
    defaults = {
        "--allowed_lateness_s": STREAMING_LATENESS_S,
        "--window_size_s": STREAMING_WINDOW_S,
    }
    given = {f.split("=", 1)[0] for f in run_flags}
    return [*run_flags, *(f"{k}={v}" for k, v in defaults.items() if k not in given)]


def _job_times(run_flags: list[str], dataset: Dataset) -> argparse.Namespace:
    """The job's window, allowed lateness, watermark delay and dedup TTL (None: the
    job's default), as its flags set them."""
    flags = argparse.ArgumentParser(add_help=False)
    flags.add_argument("--window_size_s", type=int, default=dataset.contract.aggregate.window_s)
    flags.add_argument("--allowed_lateness_s", type=int, default=STREAMING_LATENESS_S)
    flags.add_argument("--kafka_max_delay_s", type=float, default=DEFAULT_MAX_DELAY_S)
    flags.add_argument("--dedup_ttl_s", type=int, default=None)
    known, _ = flags.parse_known_args(run_flags)
    return known


def _late_shift_s(run_flags: list[str], dataset: Dataset) -> float:
    """How far behind a late event is sent: beyond its window's close, as the job's
    flags set it, and the watermark's delay, with a margin for the pipeline's lag."""
    known = _job_times(run_flags, dataset)
    return known.window_size_s + known.allowed_lateness_s + known.kafka_max_delay_s + LATE_MARGIN_S


def _with_short_dedup_ttl(run_flags: list[str], dataset: Dataset) -> list[str]:
    """``run_flags`` with ``--dedup_ttl_s`` at the least the job accepts (window +
    allowed lateness) unless given: late copies must come after it within a feed
    of minutes, not the default hour."""
    known = _job_times(run_flags, dataset)
    if known.dedup_ttl_s is not None:
        return run_flags
    return [*run_flags, f"--dedup_ttl_s={known.window_size_s + known.allowed_lateness_s}"]


def _late_copy_after_s(run_flags: list[str], dataset: Dataset) -> float:
    """How far behind a late copy is sent: past its id's dedup TTL and the
    watermark's delay, with a margin for the pipeline's lag."""
    known = _job_times(run_flags, dataset)
    return known.dedup_ttl_s + known.kafka_max_delay_s + LATE_MARGIN_S


def _offsets(offsets: dict) -> str:
    return ",".join(f"{p}={o}" for p, o in sorted(offsets.items()))


def _error(message: str) -> None:
    print(f"beamline: error: {message}", file=sys.stderr)


@dataclasses.dataclass
class _Run:
    """A run, ready to send: its parsed flags, records and identity."""

    args: argparse.Namespace
    run_flags: list[str]
    settings: StackSettings
    dataset: Dataset
    batch: Batch
    run_id: str
    seed: int
    start_ms: int


def _prepare(argv: list[str] | None, parser: argparse.ArgumentParser | None = None) -> _Run:
    """Parses the flags, makes the run's records; exits 2 on a bad flag (argparse)."""
    settings = StackSettings.from_env()
    parser = parser or make_parser(settings)
    args, run_flags = parser.parse_known_args(sys.argv[1:] if argv is None else argv)
    if args.events <= 0:
        parser.error(f"--events must be a positive number (got {args.events})")
    streaming = args.runner != "direct"
    dataset = datasets.get(args.dataset)
    if args.kafka_topic is None:
        args.kafka_topic = dataset.contract.topic
    if args.late is None:
        args.late = 0.01 if streaming else 0.0
    if args.late and not streaming:
        parser.error(
            "--late needs a streaming runner: on the DirectRunner the watermark jumps to the "
            "end once everything is read, so nothing is ever late (use --runner prism|flink)"
        )
    if args.late_copies and not streaming:
        parser.error(
            "--late_copies needs a streaming runner: a batch job remembers every id for the "
            "whole run, so a copy is a duplicate (use --runner prism|flink)"
        )
    if streaming:
        run_flags = _streaming_defaults(run_flags)
        args.late_shift_s = _late_shift_s(run_flags, dataset)
        if args.late_copies:
            run_flags = _with_short_dedup_ttl(run_flags, dataset)
            args.late_copy_after_s = _late_copy_after_s(run_flags, dataset)
    run_id = secrets.token_hex(6)
    seed = args.seed if args.seed is not None else secrets.randbelow(2**31)
    # A live feed starts a little ahead, once the streaming job is up.
    start_ms = time.time_ns() // 1_000_000 + (20_000 if args.runner != "direct" else 0)
    try:
        batch = _spec(args).generate(run_id, seed, start_ms)
    except ValueError as e:
        parser.error(str(e))
    return _Run(args, run_flags, settings, dataset, batch, run_id, seed, start_ms)


def _spec(args: argparse.Namespace) -> BatchSpec:
    return BatchSpec(
        count=args.events,
        rate_per_s=args.rate,
        users=args.users,
        value_format=args.value_format,
        dataset=datasets.get(args.dataset),
        malformed=args.malformed,
        invalid=args.invalid,
        duplicates=args.duplicates,
        out_of_order=args.out_of_order,
        drift=args.drift,
        late=args.late,
        late_shift_ms=round(getattr(args, "late_shift_s", 0) * 1000),
        late_copies=args.late_copies,
        late_copy_after_ms=round(getattr(args, "late_copy_after_s", 0) * 1000),
    )


def _kafka_up(settings: StackSettings) -> bool:
    try:
        check_kafka(settings.kafka_bootstrap_servers)
    except ServiceUnavailable as e:
        _error(str(e))
        return False
    return True


def stream(argv: list[str], fault: Fault, parser: argparse.ArgumentParser) -> StreamOutcome:
    """A streaming run of the main job with a drill's ``fault`` (tools/drill.py);
    ``parser`` is this module's, with the drill's own flags added."""
    run = _prepare(argv, parser)
    if run.args.runner == "direct":
        parser.error("a drill needs a streaming runner (--runner prism|flink|flink-cluster)")
    return _stream(run, fault) if _kafka_up(run.settings) else StreamOutcome(1, None)


def main(argv: list[str] | None = None) -> int:
    run = _prepare(argv)
    if not _kafka_up(run.settings):
        return 1
    if run.args.runner != "direct":
        return _stream(run).code
    args, run_flags, settings, dataset = run.args, run.run_flags, run.settings, run.dataset
    batch, run_id, seed, start_ms = run.batch, run.run_id, run.seed, run.start_ms
    report = send_batch(
        settings.kafka_bootstrap_servers, args.kafka_topic, batch, run_id, seed, start_ms
    )
    run_dir = pathlib.Path(args.output_dir).resolve() / run_id
    run_dir.mkdir(parents=True, exist_ok=True)
    (run_dir / reconcile.REPORT_NAME).write_text(json.dumps(report, indent=2) + "\n")
    print(
        f"run {run_id}: produced {report['sent']:,} {args.value_format} records to "
        f"{args.kafka_topic} "
        f"(seed {seed}; injected {json.dumps(report['injected'])})",
        flush=True,
    )

    started = time.monotonic()
    code = driver.main(
        [
            f"--run_id={run_id}",
            f"--dataset={args.dataset}",
            f"--kafka_topic={args.kafka_topic}",
            f"--value_format={args.value_format}",
            f"--kafka_start_offsets={_offsets(report['offsets_before'])}",
            f"--kafka_stop_offsets={_offsets(report['offsets_after'])}",
            f"--output_dir={args.output_dir}",
            *run_flags,
        ]
    )
    elapsed = time.monotonic() - started
    if code != 0:
        return code
    terms, results = reconcile.reconcile(dataset, run_id, report, run_dir.parent, settings)
    extra = {
        "events": args.events,
        "pipeline_s": round(elapsed, 1),
        "records_per_s": round(report["sent"] / elapsed) if elapsed else None,
    }
    print(reconcile.render(dataset, run_id, terms, results, extra))
    _record(settings, args, run_id, terms, results, extra)
    return 0 if all(c.passed for c in results) else 1


def _committed(settings: StackSettings, run_id: str, report: dict) -> int | None:
    """Records of the run whose offsets the job committed to its group by the end
    (commits follow checkpoints: the last few seconds' may be missing)."""
    try:
        committed = committed_offsets(
            settings.kafka_bootstrap_servers, f"beamline-{run_id}", report["topic"]
        )
    except Exception as e:  # noqa: BLE001 - the reconciliation stands without it
        _error(f"cannot read the run's committed offsets: {e}")
        return None
    before = {int(p): o for p, o in report["offsets_before"].items()}
    return sum(max(0, committed.get(p, o) - o) for p, o in before.items())


def _record(settings, args, run_id, terms, results, extra) -> None:
    """The run's line in the ledger (tools/ledger.py): what the runner matrix shows."""
    ledger.record(
        settings,
        "main",
        **{
            **extra,
            "run_id": run_id,
            "dataset": args.dataset,
            "runner": args.runner,
            "value_format": args.value_format,
            "passed": all(c.passed for c in results),
            "checks": {c.name: c.passed for c in results},
            "terms": dataclasses.asdict(terms),
        },
    )


if __name__ == "__main__":
    sys.exit(main())
