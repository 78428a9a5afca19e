"""Reading Kafka with Beam's Java KafkaIO (``ReadFromKafka``).

Keys and values are read as bytes (only byte, integer and long deserializers work
from Python) and decoded downstream in Python, where a bad payload becomes a dead
letter instead of a failed read.
"""

from __future__ import annotations

import typing

import apache_beam as beam
from apache_beam.io.kafka import ReadFromKafka

from transforms.records import KafkaRecord

__all__ = ["ReadKafkaRecords"]


def _to_kafka_record(row) -> KafkaRecord:
    return KafkaRecord(
        topic=row.topic,
        partition=int(row.partition),
        offset=int(row.offset),
        timestamp_ms=int(row.timestamp),
        key=row.key,
        value=row.value,
    )


class ReadKafkaRecords(beam.PTransform):
    """Reads ``topics`` as ``KafkaRecord`` rows, with their coordinates.

    Bounded when ``max_num_records`` or ``max_read_time_s`` is set (what the
    DirectRunner needs); unbounded otherwise.  Records carry their Kafka
    timestamp as the element timestamp when ``timestamp_policy`` is
    ``CreateTime``.

    Args:
      bootstrap_servers: Kafka's ``bootstrap.servers``.
      topics: the topics to read.
      expansion_service: ``host:port`` of a running Java expansion service.
      max_num_records: stop after this many records (all partitions together).
      max_read_time_s: stop after this many seconds.
      start_read_time_ms: start at the first offsets at or after this time.
      timestamp_policy: ``ProcessingTime``, ``CreateTime`` or ``LogAppendTime``.
      consumer_config: extra consumer settings, merged over the defaults.
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
    ):
        super().__init__()
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

    def expand(self, pbegin):
        return (
            pbegin
            | "ReadFromKafka"
            >> ReadFromKafka(
                consumer_config=self._consumer_config,
                topics=self._topics,
                with_metadata=True,
                max_num_records=self._max_num_records,
                max_read_time=self._max_read_time_s,
                start_read_time=self._start_read_time_ms,
                timestamp_policy=self._timestamp_policy,
                expansion_service=self._expansion_service,
            )
            | "ToKafkaRecord" >> beam.Map(_to_kafka_record).with_output_types(KafkaRecord)
        )
