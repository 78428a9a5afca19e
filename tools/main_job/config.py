"""A run of the main job, from its flags: the parser, the resolved ``Run`` and the
flags of ``python -m run``.

``prepare(argv)`` parses the main job's own flags (the others go to ``python -m
run``), settles what the flags leave open (the topic, the late share, a streaming
job's window, lateness and dedup TTL, how far behind late events and late copies
are sent) and makes the run's records.  Nothing later reads the parsed flags.
"""

from __future__ import annotations

import argparse
import dataclasses
import pathlib
import secrets
import sys
import threading
import time
import typing

import datasets
from beam_pipeline.options import DEFAULT_MAX_DELAY_S, format_offsets
from beam_pipeline.runners import FLINK_REST_PORT, RUNNER_PRESETS
from beam_pipeline.settings import StackSettings
from schemas.dataset import Dataset
from tools.event_producer import Batch, BatchSpec, send_batch

__all__ = [
    "CLUSTER_MASTER",
    "RUNNERS",
    "Run",
    "job_flags",
    "make_parser",
    "prepare",
    "run_flags_for",
]

RUNNERS = RUNNER_PRESETS
CLUSTER_MASTER = f"127.0.0.1:{FLINK_REST_PORT}"

# A streaming run allows this much lateness unless told otherwise: out-of-order
# events (up to 30 s behind) are then counted, not late.
STREAMING_LATENESS_S = 30
# Streaming runs count in windows of this many seconds unless told otherwise, so
# that a run of a few minutes closes many windows.
STREAMING_WINDOW_S = 10
# Late events and late copies are sent this much further behind than the job's
# times require, for the pipeline's lag.
LATE_MARGIN_S = 30
# The share of late events of a streaming run unless --late is given.
STREAMING_LATE_SHARE = 0.01
# A live feed starts this much ahead, once the streaming job is up.
LIVE_FEED_LEAD_MS = 20_000


def make_parser(settings: StackSettings) -> argparse.ArgumentParser:
    """The main job's own flags (``./run_local.sh --help``); a drill adds its own."""
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
        "PostgreSQL row (docs/pipeline.md, 'Dedup after its TTL')",
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


@dataclasses.dataclass(frozen=True)
class Run:
    """A run, ready to send: what its flags asked for, settled, and its records.

    Attributes:
      settings: the stack's addresses.
      dataset: the dataset produced and run.
      runner: a key of ``RUNNERS``; ``direct`` is a bounded run, the others stream.
      topic: the Kafka topic the records go to and the job reads.
      output_dir: the job's output folder, as given (the run's folder is below it).
      settle_s: streaming: how long the run may take to balance after the last event.
      run_flags: the flags for ``python -m run`` the main job does not know, with a
        streaming run's defaults added.
      spec: what the records are made of (``spec.generate`` makes them again).
      run_id, seed, start_ms: the records' identity; ``batch``: the records.
    """

    settings: StackSettings
    dataset: Dataset
    runner: str
    topic: str
    output_dir: str
    settle_s: float
    run_flags: tuple[str, ...]
    spec: BatchSpec
    run_id: str
    seed: int
    start_ms: int
    batch: Batch

    @property
    def streaming(self) -> bool:
        return self.runner != "direct"

    @property
    def run_dir(self) -> pathlib.Path:
        """The run's own folder: its outputs and the producer's report."""
        return pathlib.Path(self.output_dir).resolve() / self.run_id

    def send(self, live: bool = False, stop: threading.Event | None = None) -> dict:
        """Sends the records to the topic (``send_batch``: at their send times with
        ``live``, until ``stop`` is set); the producer's report."""
        return send_batch(
            self.settings.kafka_bootstrap_servers,
            self.topic,
            self.batch,
            self.run_id,
            self.seed,
            self.start_ms,
            live=live,
            stop=stop,
        )

    def starting_at(self, start_ms: int) -> Run:
        """The same run with its records made again to start at ``start_ms``."""
        batch = self.spec.generate(self.run_id, self.seed, start_ms)
        return dataclasses.replace(self, start_ms=start_ms, batch=batch)


def prepare(argv: list[str] | None, parser: argparse.ArgumentParser | None = None) -> Run:
    """Parses the flags and makes the run's records; exits 2 on a bad flag (argparse)."""
    settings = StackSettings.from_env()
    parser = parser or make_parser(settings)
    args, run_flags = parser.parse_known_args(sys.argv[1:] if argv is None else argv)
    streaming = args.runner != "direct"
    _check_flags(parser, args, streaming)
    dataset = datasets.get(args.dataset)
    late_shift_ms, late_copy_after_ms = 0, 0
    if streaming:
        run_flags = _streaming_defaults(run_flags)
        late_shift_ms = round(_late_shift_s(run_flags, dataset) * 1000)
        if args.late_copies:
            run_flags = _with_short_dedup_ttl(run_flags, dataset)
            late_copy_after_ms = round(_late_copy_after_s(run_flags, dataset) * 1000)
    default_late = STREAMING_LATE_SHARE if streaming else 0.0
    spec = BatchSpec(
        count=args.events,
        rate_per_s=args.rate,
        users=args.users,
        value_format=args.value_format,
        dataset=dataset,
        malformed=args.malformed,
        invalid=args.invalid,
        duplicates=args.duplicates,
        out_of_order=args.out_of_order,
        drift=args.drift,
        late=default_late if args.late is None else args.late,
        late_shift_ms=late_shift_ms,
        late_copies=args.late_copies,
        late_copy_after_ms=late_copy_after_ms,
    )
    run_id = secrets.token_hex(6)
    seed = args.seed if args.seed is not None else secrets.randbelow(2**31)
    start_ms = time.time_ns() // 1_000_000 + (LIVE_FEED_LEAD_MS if streaming else 0)
    try:
        batch = spec.generate(run_id, seed, start_ms)
    except ValueError as e:
        parser.error(str(e))
    return Run(
        settings=settings,
        dataset=dataset,
        runner=args.runner,
        topic=dataset.contract.topic if args.kafka_topic is None else args.kafka_topic,
        output_dir=args.output_dir,
        settle_s=args.settle_s,
        run_flags=tuple(run_flags),
        spec=spec,
        run_id=run_id,
        seed=seed,
        start_ms=start_ms,
        batch=batch,
    )


def job_flags(run: Run, start: dict, stop: dict | None = None) -> list[str]:
    """The flags of ``python -m run`` for ``run``: read from the ``start`` offsets
    (partition → offset), and to the ``stop`` offsets for a bounded run."""
    return run_flags_for(
        run_id=run.run_id,
        dataset=run.dataset.name,
        topic=run.topic,
        value_format=run.spec.value_format,
        start=start,
        stop=stop,
        output_dir=run.output_dir,
        extra=run.run_flags,
    )


def run_flags_for(
    *,
    run_id: str,
    dataset: str,
    topic: str,
    value_format: str,
    start: dict,
    stop: dict | None,
    output_dir: str,
    extra: typing.Sequence[str] = (),
) -> list[str]:
    """The flags of ``python -m run`` for a run of ``dataset`` read from ``topic``
    from the ``start`` offsets (partition → offset), to the ``stop`` offsets for a
    bounded run, then ``extra`` (the flags the caller does not know): the main job's
    (``job_flags``) and the bench's."""
    bounded = [f"--kafka_stop_offsets={format_offsets(stop)}"] if stop is not None else []
    return [
        f"--run_id={run_id}",
        f"--dataset={dataset}",
        f"--kafka_topic={topic}",
        f"--value_format={value_format}",
        f"--kafka_start_offsets={format_offsets(start)}",
        *bounded,
        f"--output_dir={output_dir}",
        *extra,
    ]


def _check_flags(parser: argparse.ArgumentParser, args: argparse.Namespace, streaming: bool):
    if args.events <= 0:
        parser.error(f"--events must be a positive number (got {args.events})")
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
