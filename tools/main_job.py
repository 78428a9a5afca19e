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
import json
import pathlib
import secrets
import signal
import subprocess
import sys
import threading
import time

import datasets
from beam_pipeline import driver
from beam_pipeline.options import DEFAULT_MAX_DELAY_S
from beam_pipeline.runners import RUNNER_PRESETS
from beam_pipeline.settings import REPO_ROOT, StackSettings
from schemas.dataset import Dataset
from tools import reconcile
from tools.event_producer import batch_from_args, send_batch
from tools.producer import end_offsets
from tools.stack import ServiceUnavailable, check_kafka

__all__ = ["main"]


def _parser(settings: StackSettings) -> argparse.ArgumentParser:
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


def _stream(args, run_flags, settings, dataset, batch, run_id, seed, start_ms) -> int:
    """A streaming job on a live feed: start the job, send the events at their event
    time, wait until the run balances (or Ctrl-C), stop the job, reconcile."""
    run_dir = pathlib.Path(args.output_dir).resolve() / run_id
    run_dir.mkdir(parents=True, exist_ok=True)
    start = end_offsets(settings.kafka_bootstrap_servers, args.kafka_topic)
    job = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "run",
            *RUNNERS[args.runner],
            f"--run_id={run_id}",
            f"--dataset={args.dataset}",
            f"--kafka_topic={args.kafka_topic}",
            f"--value_format={args.value_format}",
            f"--kafka_start_offsets={_offsets(start)}",
            f"--output_dir={args.output_dir}",
            *run_flags,
        ],
        cwd=REPO_ROOT,
        # Ctrl-C reaches this process only; the job is stopped below, in order.
        start_new_session=True,
    )
    reports: list[dict] = []
    stop = threading.Event()
    interrupted = threading.Event()
    previous = signal.signal(signal.SIGINT, lambda *_: interrupted.set())
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
        while job.poll() is None and not interrupted.is_set():
            time.sleep(2)  # the job prints progress; here we only watch for the end
            if reports:
                sent_at = sent_at or time.monotonic()
                terms, results = reconcile.reconcile(
                    dataset, run_id, reports[0], run_dir.parent, settings
                )
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
        if job.poll() is None:
            job.send_signal(signal.SIGINT)
        code = job.wait(180)
    if not reports:
        _error("the producer did not finish: nothing to reconcile")
        return 1
    report = reports[0]
    (run_dir / reconcile.REPORT_NAME).write_text(json.dumps(report, indent=2) + "\n")
    terms, results = reconcile.reconcile(dataset, run_id, report, run_dir.parent, settings)
    extra = {
        "events": args.events,
        "runner": args.runner,
        "run_s": round(time.monotonic() - started, 1),
    }
    print(reconcile.render(dataset, run_id, terms, results, extra))
    if code != 0:
        return code
    return 0 if all(c.passed for c in results) else 1


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


def _late_shift_s(run_flags: list[str], dataset: Dataset) -> float:
    """How far behind a late event is sent: beyond its window's close, as the job's
    flags set it, and the watermark's delay, with a margin for the pipeline's lag."""
    flags = argparse.ArgumentParser(add_help=False)
    flags.add_argument("--window_size_s", type=int, default=dataset.contract.aggregate.window_s)
    flags.add_argument("--allowed_lateness_s", type=int, default=STREAMING_LATENESS_S)
    flags.add_argument("--kafka_max_delay_s", type=float, default=DEFAULT_MAX_DELAY_S)
    known, _ = flags.parse_known_args(run_flags)
    return known.window_size_s + known.allowed_lateness_s + known.kafka_max_delay_s + LATE_MARGIN_S


def _offsets(offsets: dict) -> str:
    return ",".join(f"{p}={o}" for p, o in sorted(offsets.items()))


def _error(message: str) -> None:
    print(f"beamline: error: {message}", file=sys.stderr)


def main(argv: list[str] | None = None) -> int:
    settings = StackSettings.from_env()
    parser = _parser(settings)
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
    if streaming:
        run_flags = _streaming_defaults(run_flags)
        args.late_shift_s = _late_shift_s(run_flags, dataset)
    run_id = secrets.token_hex(6)
    seed = args.seed if args.seed is not None else secrets.randbelow(2**31)
    # A live feed starts a little ahead, once the streaming job is up.
    start_ms = time.time_ns() // 1_000_000 + (20_000 if args.runner != "direct" else 0)
    try:
        batch = batch_from_args(args, args.events, run_id, seed, start_ms)
    except ValueError as e:
        parser.error(str(e))
    try:
        check_kafka(settings.kafka_bootstrap_servers)
    except ServiceUnavailable as e:
        _error(str(e))
        return 1
    if args.runner != "direct":
        return _stream(args, run_flags, settings, dataset, batch, run_id, seed, start_ms)
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
    return 0 if all(c.passed for c in results) else 1


if __name__ == "__main__":
    sys.exit(main())
