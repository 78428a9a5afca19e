"""The driver behind ``python -m run``: flags → config → checks → graph → run.

Exit codes: 0 done, 1 a service is missing or the job failed, 2 a bad flag.
Every failure the user can fix is one line on stderr saying what to do.
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import sys
import time

import apache_beam as beam
from apache_beam.options.pipeline_options import PipelineOptions

from beam_pipeline.graph import GraphParams, build_graph, production_sinks
from beam_pipeline.java_services import ExpansionServiceError, JavaExpansionService
from beam_pipeline.options import BeamlineOptions, Config, ConfigError
from beam_pipeline.settings import MissingPasswordError, StackSettings
from beam_pipeline.stack import ServiceUnavailable, check_kafka, check_postgres, commit_offsets
from transforms.kafka_io import ReadKafkaRecords
from transforms.sinks import JdbcTarget

__all__ = ["help_text", "main"]

_LOG = logging.getLogger(__name__)


class _Parser(argparse.ArgumentParser):
    """Raises ``ConfigError`` instead of printing usage and exiting: one line per problem."""

    def error(self, message):
        raise ConfigError(f"{message}: see python -m run --help")


def _parser() -> argparse.ArgumentParser:
    """Beamline's flags first, then every flag Beam knows (``--runner`` …)."""
    parser = _Parser(
        prog="python -m run",
        usage="python -m run [Beamline flags] [Beam flags]",
        description="Run Beamline: Kafka → decode → validate → normalise → dedup → "
        "windowed counts → Parquet + PostgreSQL, dead letters as data.",
        conflict_handler="resolve",
        allow_abbrev=False,
    )
    classes = [BeamlineOptions] + [
        c for c in PipelineOptions.__subclasses__() if c is not BeamlineOptions
    ]
    for cls in classes:
        cls._add_argparse_args(parser.add_argument_group(f"{cls.__name__}"))
    return parser


def help_text() -> str:
    return _parser().format_help()


def unknown_flags(argv: list[str]) -> list[str]:
    """The flags in ``argv`` that neither Beamline nor Beam knows (Beam only warns)."""
    _, unknown = _parser().parse_known_args(argv)
    return [arg for arg in unknown if arg.startswith("-")]


def _error(message: str) -> None:
    print(f"beamline: error: {message}", file=sys.stderr)


def _counter(result, name: str) -> int:
    counters = result.metrics().query(beam.metrics.MetricsFilter().with_name(name))["counters"]
    return sum(c.committed or c.attempted or 0 for c in counters)


# The counters of the summary line, in the order of the graph.
_SUMMARY_COUNTERS = (
    "records_read",
    "decoded",
    "decode_rejected",
    "valid",
    "invalid",
    "normalised",
    "normalise_rejected",
    "unique",
    "duplicates",
    "window_counts",
)


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if "-h" in argv or "--help" in argv:
        print(help_text())
        return 0
    try:
        unknown = unknown_flags(argv)
        if unknown:
            raise ConfigError(f"unknown flag {unknown[0].split('=')[0]}: see python -m run --help")
        options = PipelineOptions(argv)
        config = Config.from_options(options)
    except ConfigError as e:
        _error(str(e))
        return 2
    settings = StackSettings.from_env()
    consumer_config = {}
    try:
        check_kafka(config.kafka_bootstrap_servers)
        check_postgres(settings)
        target = JdbcTarget(settings.jdbc_url, settings.pg_user, settings.pg_password())
        if config.kafka_start_offsets is not None:
            group = f"beamline-{config.run_id}"
            commit_offsets(
                config.kafka_bootstrap_servers,
                group,
                config.kafka_topic,
                config.kafka_start_offsets,
            )
            consumer_config["group.id"] = group
    except (ServiceUnavailable, MissingPasswordError) as e:
        _error(str(e))
        return 1

    output_prefix = str(config.output_dir / config.run_id)
    started = time.monotonic()
    with contextlib.ExitStack() as services:
        try:
            expansion_service = (
                config.expansion_service
                or services.enter_context(JavaExpansionService(settings.home / "logs")).address
            )
        except ExpansionServiceError as e:
            _error(str(e))
            return 1
        pipeline = beam.Pipeline(options=options)
        build_graph(
            pipeline,
            ReadKafkaRecords(
                config.kafka_bootstrap_servers,
                [config.kafka_topic],
                expansion_service,
                max_num_records=config.kafka_max_records,
                max_read_time_s=config.kafka_max_read_time_s,
                start_read_time_ms=config.kafka_start_read_time_ms,
                consumer_config=consumer_config,
                partition_counts=config.kafka_partition_counts,
            ),
            GraphParams(
                config.run_id, config.dedup_ttl_s, config.window_size_s, config.value_format
            ),
            production_sinks(
                output_prefix, target, expansion_service, config.kafka_bootstrap_servers
            ),
        )
        _LOG.info("run %s: reading %s on the %s", config.run_id, config.kafka_topic, config.runner)
        result = pipeline.run()
        result.wait_until_finish()
    elapsed = time.monotonic() - started
    counts = {name: _counter(result, name) for name in _SUMMARY_COUNTERS}
    read = counts["records_read"]
    rate = f", {read / elapsed:,.0f} records/s" if elapsed > 0 else ""
    print(
        f"run {config.run_id}: {result.state} in {elapsed:.1f} s{rate}; "
        + ", ".join(f"{name} {value}" for name, value in counts.items())
        + f"; Parquet under {output_prefix}/"
    )
    return 0 if result.state == "DONE" else 1
