"""Beamline's pipeline flags, and the frozen configuration built from them.

Flags are prefixed (Beam owns ``--bootstrap_servers`` and friends) and carry
their units.  Nothing here is ``required=True``: that would break every other
``PipelineOptions()`` in the process; ``Config.from_options`` validates instead,
with one precise message per problem.
"""

from __future__ import annotations

import dataclasses
import pathlib
import uuid

from apache_beam.options.pipeline_options import PipelineOptions, StandardOptions

from beam_pipeline.settings import StackSettings

__all__ = ["BeamlineOptions", "Config", "ConfigError"]

_STREAMING_RUNNERS = {"PrismRunner", "FlinkRunner", "DataflowRunner", "PortableRunner"}


class ConfigError(ValueError):
    """A flag is missing or wrong; the message names it and says what to do."""


class BeamlineOptions(PipelineOptions):
    @classmethod
    def _add_argparse_args(cls, parser):
        stack = StackSettings.from_env()
        parser.add_argument(
            "--kafka_bootstrap_servers",
            default=stack.kafka_bootstrap_servers,
            help="Kafka bootstrap servers (default: the local broker, %(default)s).",
        )
        parser.add_argument(
            "--kafka_topic", default="proof_records", help="Topic to read (default: %(default)s)."
        )
        parser.add_argument(
            "--kafka_max_records",
            type=int,
            default=None,
            help="Stop reading after this many records (all partitions together).",
        )
        parser.add_argument(
            "--kafka_max_read_time_s",
            type=int,
            default=None,
            help="Stop reading after this many seconds.",
        )
        parser.add_argument(
            "--kafka_start_read_time_ms",
            type=int,
            default=None,
            help="Start at the first offsets whose timestamp is at or after this epoch time (ms).",
        )
        parser.add_argument(
            "--output_dir",
            default=str(stack.home / "output"),
            help="Folder of the Parquet outputs (default: %(default)s).",
        )
        parser.add_argument(
            "--run_id",
            default=None,
            help="Identifier written into every output row (default: a new random one).",
        )
        parser.add_argument(
            "--expansion_service",
            default=None,
            help="host:port of a running Java expansion service; by default one is started "
            "for the run and stopped after it.",
        )


@dataclasses.dataclass(frozen=True)
class Config:
    """Validated, immutable run configuration: what transforms receive."""

    runner: str
    kafka_bootstrap_servers: str
    kafka_topic: str
    kafka_max_records: int | None
    kafka_max_read_time_s: int | None
    kafka_start_read_time_ms: int | None
    output_dir: pathlib.Path
    run_id: str
    expansion_service: str | None

    @classmethod
    def from_options(cls, options: PipelineOptions) -> Config:
        opts = options.view_as(BeamlineOptions)
        runner = options.view_as(StandardOptions).runner or "DirectRunner"
        runner = runner.rsplit(".", 1)[-1]
        for flag in ("kafka_max_records", "kafka_max_read_time_s"):
            value = getattr(opts, flag)
            if value is not None and value <= 0:
                raise ConfigError(f"--{flag} must be a positive number (got {value})")
        bounded = opts.kafka_max_records is not None or opts.kafka_max_read_time_s is not None
        if not bounded and runner not in _STREAMING_RUNNERS:
            raise ConfigError(
                f"the {runner} reads Kafka as a bounded batch: pass --kafka_max_records "
                "or --kafka_max_read_time_s, or use a streaming runner (--runner=PrismRunner)"
            )
        if not opts.kafka_topic:
            raise ConfigError("--kafka_topic is empty: name the topic to read")
        return cls(
            runner=runner,
            kafka_bootstrap_servers=opts.kafka_bootstrap_servers,
            kafka_topic=opts.kafka_topic,
            kafka_max_records=opts.kafka_max_records,
            kafka_max_read_time_s=opts.kafka_max_read_time_s,
            kafka_start_read_time_ms=opts.kafka_start_read_time_ms,
            output_dir=pathlib.Path(opts.output_dir).resolve(),
            run_id=opts.run_id or uuid.uuid4().hex[:12],
            expansion_service=opts.expansion_service,
        )
