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
import sys
import time

from beam_pipeline import driver, reconcile
from beam_pipeline.event_producer import DEFAULT_TOPIC, generate, send_batch
from beam_pipeline.settings import StackSettings
from beam_pipeline.stack import ServiceUnavailable, check_kafka

__all__ = ["main"]


def _parser(settings: StackSettings) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="./run_local.sh",
        description="Produce a run of customer events, run the pipeline over them, reconcile.",
        epilog="Other flags are passed to python -m run (see python -m run --help).",
        allow_abbrev=False,
    )
    parser.add_argument("--events", type=int, default=10_000, help="original events to produce")
    parser.add_argument("--seed", type=int, default=None, help="default: random, reported")
    parser.add_argument("--malformed", type=float, default=0.02, help="share of malformed values")
    parser.add_argument("--invalid", type=float, default=0.02, help="share of invalid events")
    parser.add_argument("--duplicates", type=float, default=0.05, help="share of duplicates")
    parser.add_argument("--out_of_order", type=float, default=0.01, help="share out of order")
    parser.add_argument("--rate", type=float, default=100.0, help="events per second of event time")
    parser.add_argument("--kafka_topic", default=DEFAULT_TOPIC)
    parser.add_argument(
        "--value_format",
        default="json",
        choices=("json", "avro", "avro_confluent"),
        help="encoding of the produced values, passed on to python -m run",
    )
    parser.add_argument("--output_dir", default=str(settings.home / "output"))
    return parser


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
    run_id = secrets.token_hex(6)
    seed = args.seed if args.seed is not None else secrets.randbelow(2**31)
    start_ms = time.time_ns() // 1_000_000
    try:
        batch = generate(
            args.events,
            run_id,
            seed,
            start_ms,
            rate_per_s=args.rate,
            malformed_ratio=args.malformed,
            invalid_ratio=args.invalid,
            duplicate_ratio=args.duplicates,
            out_of_order_ratio=args.out_of_order,
            value_format=args.value_format,
        )
    except ValueError as e:
        parser.error(str(e))
    try:
        check_kafka(settings.kafka_bootstrap_servers)
    except ServiceUnavailable as e:
        _error(str(e))
        return 1
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
    terms, results = reconcile.reconcile(run_id, report, run_dir.parent, settings)
    extra = {
        "events": args.events,
        "pipeline_s": round(elapsed, 1),
        "records_per_s": round(report["sent"] / elapsed) if elapsed else None,
    }
    print(reconcile.render(run_id, terms, results, extra))
    return 0 if all(c.passed for c in results) else 1


if __name__ == "__main__":
    sys.exit(main())
