"""Reading Kafka with Beam's Java KafkaIO (``ReadFromKafka``).

Keys and values are read as bytes (only byte, integer and long deserializers work
from Python) and decoded downstream in Python, where a bad payload becomes a dead
letter instead of a failed read.
"""

# No `from __future__ import annotations` here: Beam infers the schema of the
# cross-language payload below from its evaluated annotations.
import typing

import apache_beam as beam
from apache_beam import coders
from apache_beam.io.kafka import ReadFromKafka
from apache_beam.metrics import Metrics
from apache_beam.transforms.external import ExternalTransform, NamedTupleBasedPayloadBuilder
from apache_beam.transforms.window import TimestampedValue

from schemas.records import DeadLetter, KafkaRecord

__all__ = [
    "HEADERS_WRITE_URN",
    "PARTITION_COUNTS_URN",
    "KafkaMessage",
    "ReadKafkaRecords",
    "WriteDeadLettersToKafka",
    "WriteToKafkaWithHeaders",
    "dead_letter_message",
]

# Registered by java/expansion-service (KafkaRangeReadRegistrar, KafkaHeadersWriteRegistrar).
PARTITION_COUNTS_URN = "beamline:transform:kafka_read_partition_counts:v1"
HEADERS_WRITE_URN = "beamline:transform:kafka_write_with_headers:v1"

# The prefix of the headers Beamline writes on dead-letter messages.
HEADER_PREFIX = "beamline."


class KafkaMessage(typing.NamedTuple):
    """A message to write: key and value bytes, and text headers."""

    key: typing.Optional[bytes]
    value: typing.Optional[bytes]
    headers: typing.Mapping[str, str]


coders.registry.register_coder(KafkaMessage, coders.RowCoder)


class _HeadersWriteConfig(typing.NamedTuple):
    topic: str
    bootstrap_servers: str
    producer_config: typing.Mapping[str, str]


class _PartitionCountsConfig(typing.NamedTuple):
    topic: str
    partitions: list[int]
    counts: list[int]
    consumer_config: typing.Mapping[str, str]
    timestamp_policy: str
    max_read_time_s: typing.Optional[int]
    max_delay_ms: int
    commit_offsets_in_finalize: bool


class _ToKafkaRecordFn(beam.DoFn):
    """KafkaIO's metadata row → ``KafkaRecord``; counts ``records_read``."""

    def __init__(self):
        self._read = Metrics.counter(self.__class__, "records_read")

    def process(self, row):
        self._read.inc()
        yield KafkaRecord(
            topic=row.topic,
            partition=int(row.partition),
            offset=int(row.offset),
            timestamp_ms=int(row.timestamp),
            key=row.key,
            value=row.value,
        )


class _UnbatchKafkaRecordsFn(beam.DoFn):
    """A batch of Beamline's read (``BatchKafkaRecords.java``: parallel arrays of
    coordinates, timestamps, keys and values) → its ``KafkaRecord`` rows, each at its
    Kafka timestamp; counts ``records_read`` and ``record_batches``."""

    def __init__(self):
        self._read = Metrics.counter(_ToKafkaRecordFn, "records_read")
        self._batches = Metrics.counter(self.__class__, "record_batches")

    def process(self, batch):
        topic = batch.topic
        self._batches.inc()
        self._read.inc(len(batch.offsets))
        for partition, offset, ts, key, value in zip(
            batch.partitions, batch.offsets, batch.timestamps, batch.keys, batch.values, strict=True
        ):
            yield TimestampedValue(
                KafkaRecord(topic, int(partition), int(offset), int(ts), key, value), ts / 1000
            )


class ReadKafkaRecords(beam.PTransform):
    """Reads ``topics`` as ``KafkaRecord`` rows, with their coordinates.

    Bounded when ``partition_counts``, ``max_num_records`` or ``max_read_time_s``
    is set (what the DirectRunner needs); unbounded otherwise.  Records carry
    their Kafka timestamp as the element timestamp when ``timestamp_policy`` is
    ``CreateTime``, and whatever the policy through Beamline's own read, which
    hands them over in batches (one element per Java bundle) and unbatches them.

    ``max_num_records`` is Beam's own bound, and it has a trap: from 10,000
    records on, Beam splits the read into ``N // 10,000 + 1`` readers with equal
    shares of ``N``, so unequal partitions make one reader wait forever and
    another stop early.  ``partition_counts`` reads each partition with its own
    count instead (one KafkaIO read per partition, through Beamline's expansion
    service): exact at any size.

    Args:
      bootstrap_servers: Kafka's ``bootstrap.servers``.
      topics: the topics to read.
      expansion_service: ``host:port`` of a running Java expansion service.
      max_num_records: stop after this many records (all partitions together).
      partition_counts: ``{partition: records}`` to read from one topic, each
        partition from its start (committed group offset, else earliest).
      max_delay_s: how late after its timestamp a record may still arrive: the
        CreateTime watermark trails the newest timestamp (or, on a caught-up
        partition, the clock) by this much.  ReadFromKafka's own policy has none,
        so on a live topic every record in flight would be late; a positive delay
        reads through Beamline's own read.
      max_read_time_s: stop after this many seconds.
      start_read_time_ms: start at the first offsets at or after this time.
      timestamp_policy: ``ProcessingTime``, ``CreateTime`` or ``LogAppendTime``.
      consumer_config: extra consumer settings, merged over the defaults.  With a
        ``group.id`` and no start time, the read starts at the group's committed
        offsets (``stack.commit_offsets`` sets them, or an earlier run's checkpoints).
      commit_offsets: an unbounded read commits its offsets to the ``group.id`` of
        ``consumer_config`` whenever the runner finalizes a checkpoint (KafkaIO's
        ``commitOffsetsInFinalize``), so a job started again without its state goes
        on where the last completed checkpoint ended.  Bounded reads never commit.
    """

    def __init__(
        self,
        bootstrap_servers: str,
        topics: typing.Sequence[str],
        expansion_service: str,
        max_num_records: int | None = None,
        max_read_time_s: int | None = None,
        start_read_time_ms: int | None = None,
        timestamp_policy: str = ReadFromKafka.create_time_policy,
        consumer_config: typing.Mapping[str, str] | None = None,
        partition_counts: typing.Mapping[int, int] | None = None,
        max_delay_s: float = 0,
        commit_offsets: bool = False,
    ):
        super().__init__()
        if commit_offsets and not (consumer_config or {}).get("group.id"):
            raise ValueError("commit_offsets needs a group.id in consumer_config")
        self._commit_offsets = commit_offsets
        if partition_counts is not None:
            if len(topics) != 1:
                raise ValueError("partition_counts reads exactly one topic")
            if max_num_records is not None or start_read_time_ms is not None:
                raise ValueError("partition_counts excludes max_num_records and start_read_time_ms")
        self._partition_counts = dict(partition_counts) if partition_counts else None
        self._max_delay_ms = int(max_delay_s * 1000)
        # An unbounded read with a watermark delay goes through Beamline's own read
        # (ReadFromKafka's CreateTime policy has no delay); so does a read by counts.
        self._own_read = partition_counts is not None or (
            self._max_delay_ms > 0
            and max_num_records is None
            and start_read_time_ms is None
            and len(topics) == 1
        )
        self._consumer_config = {
            "bootstrap.servers": bootstrap_servers,
            # The Java default is `latest`: a bounded read of existing data needs the start.
            "auto.offset.reset": "earliest",
            **(consumer_config or {}),
        }
        self._topics = list(topics)
        self._expansion_service = expansion_service
        self._max_num_records = max_num_records
        self._max_read_time_s = max_read_time_s
        self._start_read_time_ms = start_read_time_ms
        self._timestamp_policy = timestamp_policy

    def _read(self) -> beam.PTransform:
        if self._own_read:
            counts = self._partition_counts or {}
            partitions = sorted(counts)
            config = _PartitionCountsConfig(
                topic=self._topics[0],
                partitions=partitions,
                counts=[counts[p] for p in partitions],
                consumer_config=self._consumer_config,
                timestamp_policy=self._timestamp_policy,
                max_read_time_s=self._max_read_time_s,
                max_delay_ms=self._max_delay_ms,
                commit_offsets_in_finalize=self._commit_offsets,
            )
            return ExternalTransform(
                PARTITION_COUNTS_URN,
                NamedTupleBasedPayloadBuilder(config),
                self._expansion_service,
            )
        return ReadFromKafka(
            consumer_config=self._consumer_config,
            topics=self._topics,
            with_metadata=True,
            max_num_records=self._max_num_records,
            max_read_time=self._max_read_time_s,
            start_read_time=self._start_read_time_ms,
            timestamp_policy=self._timestamp_policy,
            commit_offset_in_finalize=self._commit_offsets,
            expansion_service=self._expansion_service,
        )

    def expand(self, pbegin):
        read = pbegin | "ReadFromKafka" >> self._read()
        if self._own_read:  # batches of records: one element per Java bundle
            return read | "UnbatchRecords" >> beam.ParDo(
                _UnbatchKafkaRecordsFn()
            ).with_output_types(KafkaRecord)
        return read | "ToKafkaRecord" >> beam.ParDo(_ToKafkaRecordFn()).with_output_types(
            KafkaRecord
        )


class WriteToKafkaWithHeaders(beam.PTransform):
    """Writes ``KafkaMessage`` rows to ``topic``, headers included (Java ``KafkaIO``).

    Python's ``WriteToKafka`` takes key/value pairs only; this goes through
    Beamline's expansion service (``KafkaHeadersWriteRegistrar``).  The producer is
    idempotent; a retried bundle can still write a message twice (Kafka sinks
    without transactions are at least once).
    """

    def __init__(
        self,
        bootstrap_servers: str,
        topic: str,
        expansion_service: str,
        producer_config: typing.Optional[typing.Mapping[str, str]] = None,
    ):
        super().__init__()
        self._config = _HeadersWriteConfig(
            topic=topic,
            bootstrap_servers=bootstrap_servers,
            producer_config={"enable.idempotence": "true", **(producer_config or {})},
        )
        self._expansion_service = expansion_service

    def expand(self, messages):
        return (
            messages
            | "AsRows" >> beam.Map(lambda m: m).with_output_types(KafkaMessage)
            | "WriteToKafka"
            >> ExternalTransform(
                HEADERS_WRITE_URN,
                NamedTupleBasedPayloadBuilder(self._config),
                self._expansion_service,
            )
        )


# What a dead-letter message may hold, key, value and headers together: under the
# producer's max.request.size and the broker's message.max.bytes (both about 1 MiB by
# default), with room for the record batch's own framing.
MAX_DEAD_LETTER_MESSAGE_BYTES = 1_000_000


def dead_letter_message(letter: DeadLetter) -> KafkaMessage:
    """A dead letter as a Kafka message: the original key and bytes, the rest as headers.

    A message the topic would refuse would fail its bundle on every retry, so key
    and value are cut to fit ``MAX_DEAD_LETTER_MESSAGE_BYTES`` (header
    ``beamline.truncated`` says from what); PostgreSQL and Parquet keep them whole.
    """
    headers = {
        "stage": letter.stage,
        "reason": letter.reason,
        "detail": letter.detail,
        "source.topic": letter.kafka_topic,
        "source.partition": str(letter.kafka_partition),
        "source.offset": str(letter.kafka_offset),
        "source.timestamp_ms": str(letter.kafka_timestamp_ms),
        "run_id": letter.run_id,
        "dataset": letter.dataset,
        "pipeline_version": letter.pipeline_version,
    }
    key, value = letter.kafka_key or b"", letter.payload or b""
    # Headers, plus 200 bytes for the truncation header itself.
    room = (
        MAX_DEAD_LETTER_MESSAGE_BYTES
        - 200
        - sum(len(HEADER_PREFIX) + len(name) + len(text.encode()) for name, text in headers.items())
    )
    if len(key) + len(value) > room:
        headers["truncated"] = (
            f"key {len(key)} bytes, value {len(value)} bytes, cut to fit the topic; "
            "PostgreSQL and Parquet hold them whole"
        )
        key = key[: room // 2]
        value = value[: room - len(key)]
    return KafkaMessage(
        key=key if letter.kafka_key is not None else None,
        value=value if letter.payload is not None else None,
        headers={HEADER_PREFIX + name: text for name, text in headers.items()},
    )


class WriteDeadLettersToKafka(beam.PTransform):
    """``DeadLetter`` rows → the dead-letter topic, replayable: raw bytes plus headers."""

    def __init__(
        self,
        bootstrap_servers: str,
        topic: str,
        expansion_service: str,
        producer_config: typing.Optional[typing.Mapping[str, str]] = None,
    ):
        super().__init__()
        self._write = WriteToKafkaWithHeaders(
            bootstrap_servers, topic, expansion_service, producer_config
        )

    def expand(self, letters):
        return (
            letters
            | "ToMessage" >> beam.Map(dead_letter_message).with_output_types(KafkaMessage)
            | "Write" >> self._write
        )
