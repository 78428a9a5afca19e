"""``./run_local.sh bench``: Beamline's throughput against two hand-written baselines.

    ./run_local.sh bench [--runner direct|prism|flink|flink-cluster] [--parallelism N]
                         [--events 100000] [--seed S] [--keep_topic] [any flag of python -m run]

One invocation, on the same records:

1. generates ``--events`` customer events with the standard fault mix (2%
   malformed, 2% invalid, 5% duplicated, 1% out of order, none late) and sends
   them to a fresh topic ``bench_<run_id>`` (the stack's partition count; deleted
   at the end unless ``--keep_topic``), keeping the producer's report;
2. runs Beamline end to end over exactly those offsets (``python -m run`` in a
   subprocess, the flags ``main_job`` passes, on ``--runner``'s preset: a bounded
   backlog, which Flink runs as a streaming job that ends with its read, embedded or
   submitted to the stack's cluster at ``--parallelism`` (the cluster preset's: 2),
   and Prism as a bounded pipeline), measuring its wall time, its phases (submit →
   job visible → first row in PostgreSQL → last row → exit), the CPU seconds of
   each process by role (its tree's, and the cluster's on a Flink cluster) and of
   the Kafka and PostgreSQL servers, and the tree's peak resident memory; then
   reconciles the run exactly as ``main_job`` does;
3. baseline A: one Python process that consumes the same offsets, applies the
   same per-record functions (``bench_step.RecordStep``) and writes Parquet
   and PostgreSQL tables of its own (``bench_a_<table>``, dropped at the end);
4. baseline B: the same step over the consumed records in memory, no I/O;
5. prints a table, then one JSON line (the last line of stdout) with every figure.

Records are everything sent: duplicates and bad records included.  A Beamline run
that fails or does not balance, or a baseline whose counts differ from the
producer's report, prints no figures and exits non-zero.

Exit codes: 0 figures printed; 1 a service is missing (the Flink cluster, for
``flink-cluster``), the run failed or did not balance, or a baseline's counts are
off; 2 a bad flag.

This module is the command (flags, service checks, the topic); ``bench_run`` runs
the steps, ``bench_measure`` measures the Beamline process tree (with
``bench_probes`` and ``bench_cpu``), ``bench_report`` makes the table and the JSON
line, ``bench_step`` and ``bench_baselines`` are the baselines.
"""

from __future__ import annotations

import argparse
import logging
import pathlib
import secrets
import sys

from beam_pipeline import flink_cluster
from beam_pipeline.errors import print_error
from beam_pipeline.runners import (
    PARALLEL_RUNNERS,
    RUNNER_PRESETS,
    flink_cluster_master,
    runner_flags,
)
from beam_pipeline.settings import MissingPasswordError, StackSettings
from tools import bench_run
from tools.stack import (
    ServiceUnavailable,
    check_kafka,
    check_postgres,
    create_topics,
    delete_topics,
)

__all__ = ["check_cluster", "main", "parse_args"]

_LOG = logging.getLogger(__name__)


def main(argv: list[str] | None = None) -> int:
    """Runs one benchmark; see the module docstring for what and the exit codes."""
    # force: importing Beam has configured the root logger already.  Under
    # ``python -m`` this module's logger is ``__main__``, hence both names.
    logging.basicConfig(level=logging.WARNING, format="[bench] %(message)s", force=True)
    for name in ("beam_pipeline", __name__, bench_run.__name__):
        logging.getLogger(name).setLevel(logging.INFO)
    settings = StackSettings.from_env()
    parser = _parser(settings)
    args = parse_args(parser, sys.argv[1:] if argv is None else argv)
    if args.events <= 0:
        parser.error(f"--events must be a positive number (got {args.events})")
    try:
        flags = [*runner_flags(args.runner, args.parallelism), *args.run_flags]
    except ValueError as e:
        parser.error(str(e))
    args.output_dir = str(pathlib.Path(args.output_dir).resolve())
    try:
        check_kafka(settings.kafka_bootstrap_servers)
        check_postgres(settings)
        check_cluster(flags)
    except (ServiceUnavailable, MissingPasswordError) as e:
        print_error(str(e))
        return 1
    run_id = secrets.token_hex(6)
    topic = f"bench_{run_id}"
    create_topics(settings.kafka_bootstrap_servers, [topic], partitions=settings.kafka_partitions)
    try:
        return bench_run.run_bench(args, settings, run_id, topic)
    finally:
        if args.keep_topic:
            _LOG.info("topic %s kept", topic)
        else:
            delete_topics(settings.kafka_bootstrap_servers, [topic])


def check_cluster(flags: list[str]) -> None:
    """When ``flags`` submit to a Flink cluster: that it answers, and has a task slot
    for each of the job's ``--parallelism`` (without them the job does not start).

    Raises:
      ServiceUnavailable: the message says what to start or to ask for.
    """
    master = flink_cluster_master(flags)
    if master is None:
        return
    try:
        slots = flink_cluster.total_slots(master)
    except (OSError, ValueError, KeyError) as e:
        raise ServiceUnavailable(
            f"the Flink cluster does not answer at {master} ({e}): ./run_local.sh flink start"
        ) from e
    parallelism = bench_run.parallelism_of(flags)
    if parallelism is not None and parallelism > slots:
        raise ServiceUnavailable(
            f"--parallelism {parallelism}: the Flink cluster at {master} has {slots} task "
            "slots; ask for at most that many"
        )


def _parser(settings: StackSettings) -> argparse.ArgumentParser:
    """The bench's own flags (``--runner`` names a ``RUNNER_PRESETS`` entry)."""
    parser = argparse.ArgumentParser(
        prog="./run_local.sh bench",
        description="Beamline end to end against a hand-written consumer (A) and the same "
        "per-record work in memory (B), on the same records.",
        allow_abbrev=False,
    )
    parser.add_argument("--runner", default="direct", choices=sorted(RUNNER_PRESETS))
    parser.add_argument(
        "--parallelism",
        type=int,
        default=None,
        help=f"the job's parallelism, with --runner {' or '.join(PARALLEL_RUNNERS)} (default: "
        "the runner's; flink-cluster: 2, the cluster's task slots)",
    )
    parser.add_argument("--events", type=int, default=100_000, help="original events to produce")
    parser.add_argument("--seed", type=int, default=None, help="default: random, reported")
    parser.add_argument(
        "--value_format", default="json", choices=("json", "avro", "avro_confluent")
    )
    parser.add_argument(
        "--keep_topic", action="store_true", help="keep the bench_<run_id> topic at the end"
    )
    parser.add_argument("--output_dir", default=str(settings.home / "output"))
    return parser


def parse_args(parser: argparse.ArgumentParser, argv: list[str]) -> argparse.Namespace:
    """The bench's flags; every other flag is kept in ``run_flags`` for ``python -m run``."""
    args, run_flags = parser.parse_known_args(argv)
    args.run_flags = run_flags
    return args


if __name__ == "__main__":
    sys.exit(main())
