"""Beamline's graph for customer events, built by one pure function.

    source (KafkaRecord rows: bytes + coordinates)
      → Decode ─────────────┐
      → Validate ───────────┤  dead letters (stage, reason, raw bytes, coordinates)
      → Normalise ──────────┘
      → Deduplicate ───────────  duplicate log (each dropped copy + the kept copy's offset)
      → events ───────────────── events sinks
      → CountPerWindow ──────── counts sinks (events per event_type per window)

``build_graph`` takes the source and the sinks as arguments and returns the
outputs, so tests run it on ``Create`` or ``TestStream`` with no sink at all, and
the driver gives it ``ReadFromKafka`` and the production sinks.  Every record the
source yields ends up in exactly one of: the events output, the dead letters, or
the duplicate log.
"""

from __future__ import annotations

import dataclasses
import functools
import typing

import apache_beam as beam
from apache_beam.transforms import window

from schemas import tables
from schemas.customer_events import (
    CONTRACT,
    EVENT_TIME_FIELD,
    ID_FIELD,
    CustomerEventsRow,
    EventTypeCount,
    load_schema,
    to_customer_event,
    to_event_type_count,
)
from transforms.aggregate import CountPerWindow
from transforms.decode import Decode
from transforms.dedup import DUPLICATES_TAG, DeduplicateById
from transforms.kafka_io import WriteDeadLettersToKafka
from transforms.normalise import NormaliseEvents
from transforms.records import DEAD_LETTER_TAG, DeadLetter
from transforms.sinks import JdbcTarget, WriteParquetFiles, WriteToPostgres, upsert_statement
from transforms.validate import ValidateEvents

__all__ = [
    "DEAD_LETTER_TOPIC",
    "GraphParams",
    "Outputs",
    "Sinks",
    "build_graph",
    "production_sinks",
]

Sink = typing.Mapping[str, beam.PTransform]

# Dead letters also go to this topic: the raw message, and the reason as headers.
DEAD_LETTER_TOPIC = "dead_letters"


@dataclasses.dataclass(frozen=True)
class GraphParams:
    """What the graph needs to know besides its edges."""

    run_id: str
    dedup_ttl_s: int = 3600
    window_size_s: int = CONTRACT.aggregates[0].window_s
    value_format: str = "json"  # json, avro or avro_confluent


@dataclasses.dataclass(frozen=True)
class Sinks:
    """Where each output goes; each entry is applied as its own labelled step."""

    events: Sink = dataclasses.field(default_factory=dict)
    counts: Sink = dataclasses.field(default_factory=dict)
    dead_letters: Sink = dataclasses.field(default_factory=dict)
    duplicates: Sink = dataclasses.field(default_factory=dict)


@dataclasses.dataclass(frozen=True)
class Outputs:
    events: beam.PCollection  # of CustomerEventsRow, timestamped at event time
    counts: beam.PCollection  # of EventTypeCount, in the global window
    dead_letters: beam.PCollection  # of DeadLetter
    duplicates: beam.PCollection  # of Duplicate


def build_graph(
    pipeline: beam.Pipeline, source: beam.PTransform, params: GraphParams, sinks: Sinks = Sinks()
) -> Outputs:
    """Applies the customer-events graph to ``pipeline``; ``source`` yields ``KafkaRecord``."""
    run_id = params.run_id
    records = pipeline | "ReadRecords" >> source
    decoded = records | "Decode" >> Decode(CONTRACT.decoder(params.value_format), run_id)
    validated = decoded.decoded | "Validate" >> ValidateEvents(load_schema(), run_id)
    normalised = validated.valid | "Normalise" >> NormaliseEvents(
        to_customer_event, CustomerEventsRow, EVENT_TIME_FIELD, run_id
    )
    deduplicated = normalised.rows | "Deduplicate" >> DeduplicateById(
        ID_FIELD, params.dedup_ttl_s, run_id
    )
    events = deduplicated.unique
    counts = (
        events
        | "CountPerWindow"
        >> CountPerWindow(
            CONTRACT.aggregates[0].key,
            params.window_size_s,
            functools.partial(to_event_type_count, run_id=run_id),
            EventTypeCount,
        )
        # Rows carry their window in columns; the sinks write in the global window.
        | "ToGlobalWindow"
        >> beam.WindowInto(window.GlobalWindows()).with_output_types(EventTypeCount)
    )
    dead_letters = (
        decoded[DEAD_LETTER_TAG],
        validated[DEAD_LETTER_TAG],
        normalised[DEAD_LETTER_TAG],
    ) | "CollectDeadLetters" >> beam.Flatten().with_output_types(DeadLetter)
    outputs = Outputs(
        events=events,
        counts=counts,
        dead_letters=dead_letters,
        duplicates=deduplicated[DUPLICATES_TAG],
    )
    for field in dataclasses.fields(Sinks):
        pcoll = getattr(outputs, field.name)
        for label, sink in getattr(sinks, field.name).items():
            _ = pcoll | label >> sink
    return outputs


def _postgres(table: tables.Table, target: JdbcTarget, expansion_service: str) -> WriteToPostgres:
    statement = upsert_statement(table.name, table.row_type, table.key_columns, table.casts)
    return WriteToPostgres(table.name, table.row_type, statement, target, expansion_service)


def production_sinks(
    output_prefix: str,
    target: JdbcTarget,
    expansion_service: str,
    kafka_bootstrap_servers: str,
    dead_letter_topic: str = DEAD_LETTER_TOPIC,
    file_window_s: int = 60,
) -> Sinks:
    """Parquet files under ``output_prefix/<output>/``, the PostgreSQL tables, and the
    dead-letter topic.  A streaming job writes a set of files per ``file_window_s`` of
    event time."""

    def parquet(name: str, row_type: type) -> WriteParquetFiles:
        return WriteParquetFiles(f"{output_prefix}/{name}/part", row_type, file_window_s)

    return Sinks(
        events={
            "WriteEventsParquet": parquet("events", CustomerEventsRow),
            "WriteEventsPostgres": _postgres(tables.EVENTS, target, expansion_service),
        },
        counts={
            "WriteCountsParquet": parquet("event_counts", EventTypeCount),
            "WriteCountsPostgres": _postgres(tables.COUNTS, target, expansion_service),
        },
        dead_letters={
            "WriteDeadLettersParquet": parquet("dead_letters", DeadLetter),
            "WriteDeadLettersPostgres": _postgres(tables.DEAD_LETTERS, target, expansion_service),
            "WriteDeadLettersKafka": WriteDeadLettersToKafka(
                kafka_bootstrap_servers, dead_letter_topic, expansion_service
            ),
        },
        duplicates={
            "WriteDuplicatesPostgres": _postgres(tables.DUPLICATE_LOG, target, expansion_service),
        },
    )
