"""Beamline's pipeline flags, and the frozen configuration built from them.

Flags are prefixed (Beam owns ``--bootstrap_servers`` and friends) and carry
their units.  Nothing here is ``required=True``: that would break every other
``PipelineOptions()`` in the process; ``Config.from_options`` validates instead,
with one precise message per problem.
"""

from __future__ import annotations

import dataclasses
import typing
import uuid

from apache_beam.options.pipeline_options import PipelineOptions

import datasets
from beam_pipeline.identifiers import (
    ConfigError,
    check_host_port,
    check_output_location,
    check_run_id,
    check_topic,
)
from beam_pipeline.kafka_security import KafkaSecurity, KafkaSecurityError
from beam_pipeline.runners import check_beam_flags
from beam_pipeline.settings import StackSettings

# How far behind the newest Kafka timestamp the watermark trails on a live topic.
DEFAULT_MAX_DELAY_S = 5.0

__all__ = ["BeamlineOptions", "Config", "ConfigError", "format_offsets", "parse_offsets"]

_STREAMING_RUNNERS = {"PrismRunner", "FlinkRunner", "DataflowRunner", "PortableRunner"}


def parse_offsets(flag: str, text: str) -> dict[int, int]:
    """``"0=120,1=95"`` → ``{0: 120, 1: 95}``; raises ``ConfigError`` naming ``flag``."""
    offsets: dict[int, int] = {}
    for pair in text.split(","):
        partition, sep, offset = pair.strip().partition("=")
        try:
            if not sep:
                raise ValueError
            p, o = int(partition), int(offset)
            if p < 0 or o < 0 or p in offsets:
                raise ValueError
        except ValueError:
            raise ConfigError(
                f"{flag}: {pair.strip()!r} is not a partition=offset pair of "
                "non-negative integers, each partition once (example: 0=120,1=95,2=101)"
            ) from None
        offsets[p] = o
    return offsets


def format_offsets(offsets: typing.Mapping) -> str:
    """``{0: 120, "1": 95}`` → ``"0=120,1=95"`` (by partition number): ``parse_offsets``
    read back; partitions may be ints or, from a JSON report, their strings."""
    return ",".join(f"{p}={o}" for p, o in sorted(offsets.items(), key=lambda kv: int(kv[0])))


def _partition_counts(
    start: typing.Mapping[int, int] | None, stop: typing.Mapping[int, int]
) -> dict[int, int]:
    """Records per partition between start and stop offsets; ``ConfigError`` if they disagree."""
    if start is None or set(stop) - set(start):
        raise ConfigError(
            "--kafka_stop_offsets needs --kafka_start_offsets for the same partitions "
            f"(stop names {sorted(stop)}, start names {sorted(start or {})})"
        )
    before = [p for p in stop if stop[p] < start[p]]
    if before:
        p = before[0]
        raise ConfigError(
            f"--kafka_stop_offsets: partition {p} stops at {stop[p]}, before its start {start[p]}"
        )
    return {p: stop[p] - start[p] for p in sorted(stop)}


# How long dedup remembers an id by default, in event time.
DEFAULT_DEDUP_TTL_S = 3600


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
            "--dataset",
            default=datasets.DEFAULT,
            choices=datasets.names(),
            help="The dataset whose contract the job reads, checks and writes: its topic, "
            "tables and aggregate come from the contract (default: %(default)s).",
        )
        parser.add_argument(
            "--kafka_topic",
            default=None,
            help="Topic to read (default: the dataset's, customer_events for customer_events).",
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
            "--kafka_start_offsets",
            default=None,
            help="Start at these offsets, given as partition=offset pairs (0=120,1=95,2=101): "
            "committed for the run's consumer group beamline-<run_id> before reading. "
            "Partitions not named start at their earliest offset.",
        )
        parser.add_argument(
            "--kafka_consumer_group",
            default=None,
            help="The consumer group of an unbounded read: it starts at the group's "
            "committed offsets and commits as checkpoints complete, so a job started again "
            "goes on where the last one's last checkpoint ended (default: "
            "beamline-<dataset>; with --kafka_start_offsets, beamline-<run_id>).",
        )
        parser.add_argument(
            "--kafka_stop_offsets",
            default=None,
            help="Read up to these offsets (exclusive), as partition=offset pairs, each "
            "partition named in --kafka_start_offsets too: a bounded read of exactly "
            "those ranges.",
        )
        parser.add_argument(
            "--kafka_max_delay_s",
            type=float,
            default=DEFAULT_MAX_DELAY_S,
            help="How late after its Kafka timestamp a record may arrive on a live topic: "
            "the watermark trails the newest timestamp, or the clock on a quiet partition, "
            "by this much (default: %(default)s).",
        )
        parser.add_argument(
            "--value_format",
            default="json",
            choices=("json", "avro", "avro_confluent"),
            help="How the topic's values are encoded: JSON objects, schemaless Avro binary "
            "with the contract's schema, or Confluent's wire format with the contract's "
            "fixed schema id (default: %(default)s).",
        )
        parser.add_argument(
            "--dedup_ttl_s",
            type=int,
            default=None,
            help="Drop later copies of an id seen up to this many seconds of event time "
            f"after the first (default: {DEFAULT_DEDUP_TTL_S}, or window + allowed lateness "
            "when longer; an unbounded run refuses less).",
        )
        parser.add_argument(
            "--window_size_s",
            type=int,
            default=None,
            help="Length of the event-time windows of the dataset's aggregate "
            "(default: the contract's, 60 for customer_events).",
        )
        parser.add_argument(
            "--window_period_s",
            type=int,
            default=None,
            help="Make the count windows slide: a window of --window_size_s starts every "
            "this many seconds (default: fixed windows).",
        )
        parser.add_argument(
            "--allowed_lateness_s",
            type=int,
            default=None,
            help="How long after its end, in event time, a window still counts events, each "
            "in a late pane; later events go to the late lane (dead letters of stage late). "
            "Default: the contract's (0 for customer_events).",
        )
        parser.add_argument(
            "--duration_s",
            type=int,
            default=None,
            help="Stop the job after this many seconds (cancelled cleanly; Ctrl-C does the "
            "same at any time). Default: until the read ends.",
        )
        parser.add_argument(
            "--progress_every_s",
            type=int,
            default=30,
            help="Print a progress line this often while the job runs (default: %(default)s).",
        )
        parser.add_argument(
            "--output_dir",
            default=str(stack.home / "output"),
            help="Folder of the Parquet outputs, or gs://<bucket>/<folder> (required on "
            "Dataflow) (default: %(default)s).",
        )
        parser.add_argument(
            "--run_id",
            default=None,
            help="Identifier written into every output row and naming the run's Parquet "
            "folder: 1-64 letters, digits, '_' or '-' (default: a new random one).",
        )
        parser.add_argument(
            "--detach",
            action="store_true",
            help="With --flink_master=host:port of a cluster: submit the job, print its id "
            "and exit; the job runs on until ./run_local.sh flink stop-job RUN_ID (or "
            "Flink's cancel).",
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
    dataset: str
    kafka_bootstrap_servers: str
    kafka_topic: str
    kafka_max_records: int | None
    kafka_max_read_time_s: int | None
    kafka_start_read_time_ms: int | None
    kafka_start_offsets: typing.Mapping[int, int] | None
    kafka_partition_counts: typing.Mapping[int, int] | None
    value_format: str
    kafka_max_delay_s: float
    duration_s: int | None
    progress_every_s: int
    dedup_ttl_s: int
    window_size_s: int
    window_period_s: int | None
    allowed_lateness_s: int
    output_dir: str  # a local folder (resolved) or gs://bucket/folder
    run_id: str
    expansion_service: str | None
    kafka_consumer_group: str | None = None
    detach: bool = False
    # The Java Kafka clients' security settings: references into the file that
    # BEAMLINE_KAFKA_PROPERTIES names, never its values (beam_pipeline.kafka_security).
    kafka_security: typing.Mapping[str, str] = dataclasses.field(default_factory=dict)

    def consumer_group(self) -> str | None:
        """The read's consumer group: the flag's; ``beamline-<run_id>`` when the run
        commits its start offsets; ``beamline-<dataset>`` for an unbounded read; else
        none (a bounded read neither needs nor commits one)."""
        if self.kafka_consumer_group is not None:
            return self.kafka_consumer_group
        if self.kafka_start_offsets is not None:
            return f"beamline-{self.run_id}"
        return f"beamline-{self.dataset}" if self.unbounded else None

    def consumer_config(self) -> dict[str, str]:
        """The read's consumer settings beyond the defaults: its group, if it has one,
        and the security settings' references."""
        group = self.consumer_group()
        return {**self.kafka_security, **({"group.id": group} if group else {})}

    def producer_config(self) -> dict[str, str]:
        """The dead-letter producer's settings beyond the defaults: security only."""
        return dict(self.kafka_security)

    @property
    def output_prefix(self) -> str:
        """Where the run's Parquet outputs go: ``<output_dir>/<run_id>``."""
        return f"{self.output_dir}/{self.run_id}"

    @property
    def unbounded(self) -> bool:
        """True when nothing bounds the read: the job runs until stopped."""
        return (
            self.kafka_max_records is None
            and self.kafka_max_read_time_s is None
            and self.kafka_partition_counts is None
        )

    @classmethod
    def from_options(cls, options: PipelineOptions) -> Config:
        opts = options.view_as(BeamlineOptions)
        runner = check_beam_flags(options)
        try:
            contract = datasets.get(opts.dataset).contract
        except datasets.UnknownDataset as e:
            raise ConfigError(f"--dataset: {e}") from None
        aggregate = contract.aggregate
        topic = opts.kafka_topic if opts.kafka_topic is not None else contract.topic
        window_size_s = opts.window_size_s if opts.window_size_s is not None else aggregate.window_s
        allowed_lateness_s = (
            opts.allowed_lateness_s
            if opts.allowed_lateness_s is not None
            else aggregate.allowed_lateness_s
        )
        for flag in (
            "kafka_max_records",
            "kafka_max_read_time_s",
            "dedup_ttl_s",
            "window_size_s",
            "window_period_s",
            "duration_s",
            "progress_every_s",
        ):
            value = getattr(opts, flag)
            if value is not None and value <= 0:
                raise ConfigError(f"--{flag} must be a positive number (got {value})")
        if allowed_lateness_s < 0:
            raise ConfigError(
                f"--allowed_lateness_s must not be negative (got {allowed_lateness_s})"
            )
        if opts.window_period_s is not None and opts.window_period_s > window_size_s:
            raise ConfigError(
                f"--window_period_s ({opts.window_period_s}) must not exceed --window_size_s "
                f"({window_size_s}): windows would leave gaps"
            )
        if opts.kafka_max_delay_s < 0:
            raise ConfigError(
                f"--kafka_max_delay_s must not be negative (got {opts.kafka_max_delay_s})"
            )
        start_offsets = (
            parse_offsets("--kafka_start_offsets", opts.kafka_start_offsets)
            if opts.kafka_start_offsets
            else None
        )
        if start_offsets is not None and opts.kafka_start_read_time_ms is not None:
            raise ConfigError(
                "--kafka_start_offsets and --kafka_start_read_time_ms both say where to start: "
                "pass one of them"
            )
        partition_counts = None
        if opts.kafka_stop_offsets:
            stop_offsets = parse_offsets("--kafka_stop_offsets", opts.kafka_stop_offsets)
            partition_counts = _partition_counts(start_offsets, stop_offsets)
            if opts.kafka_max_records is not None:
                raise ConfigError(
                    "--kafka_stop_offsets and --kafka_max_records both bound the read: "
                    "pass one of them"
                )
        bounded = (
            opts.kafka_max_records is not None
            or opts.kafka_max_read_time_s is not None
            or partition_counts is not None
        )
        if not bounded and runner not in _STREAMING_RUNNERS:
            raise ConfigError(
                f"the {runner} reads Kafka as a bounded batch: pass --kafka_max_records, "
                "--kafka_max_read_time_s or --kafka_stop_offsets, or use a streaming runner "
                "(--runner=PrismRunner)"
            )
        # An id forgotten only once its window has closed: a copy arriving after its
        # TTL is then late (docs/pipeline.md, Dedup after its TTL), never counted twice.
        horizon_s = window_size_s + allowed_lateness_s
        dedup_ttl_s = opts.dedup_ttl_s or max(DEFAULT_DEDUP_TTL_S, horizon_s)
        if not bounded and dedup_ttl_s < horizon_s:
            raise ConfigError(
                f"--dedup_ttl_s ({dedup_ttl_s}) must be at least --window_size_s + "
                f"--allowed_lateness_s ({horizon_s}): a copy arriving "
                "after its id was forgotten would land in an open window and be counted twice"
            )
        output_dir = check_output_location(opts.output_dir)
        if runner == "DataflowRunner" and not output_dir.startswith("gs://"):
            raise ConfigError(
                f"--output_dir {opts.output_dir!r}: Dataflow's workers cannot write to this "
                "machine's disk; pass --output_dir=gs://<bucket>/<folder>"
            )
        check_topic("--kafka_topic", topic)
        if opts.expansion_service is not None:
            check_host_port("--expansion_service", opts.expansion_service)
        try:
            kafka_security = KafkaSecurity.from_env().java_config()
        except KafkaSecurityError as e:
            raise ConfigError(str(e)) from None
        return cls(
            runner=runner,
            dataset=opts.dataset,
            kafka_bootstrap_servers=opts.kafka_bootstrap_servers,
            kafka_topic=topic,
            kafka_max_records=opts.kafka_max_records,
            kafka_max_read_time_s=opts.kafka_max_read_time_s,
            kafka_start_read_time_ms=opts.kafka_start_read_time_ms,
            kafka_start_offsets=start_offsets,
            kafka_partition_counts=partition_counts,
            value_format=opts.value_format,
            kafka_max_delay_s=opts.kafka_max_delay_s,
            duration_s=opts.duration_s,
            progress_every_s=opts.progress_every_s,
            dedup_ttl_s=dedup_ttl_s,
            window_size_s=window_size_s,
            window_period_s=opts.window_period_s,
            allowed_lateness_s=allowed_lateness_s,
            output_dir=output_dir,
            run_id=check_run_id(opts.run_id) if opts.run_id is not None else uuid.uuid4().hex[:12],
            expansion_service=opts.expansion_service,
            kafka_security=kafka_security,
            kafka_consumer_group=check_topic("--kafka_consumer_group", opts.kafka_consumer_group)
            if opts.kafka_consumer_group is not None
            else None,
            detach=bool(opts.detach),
        )
