"""Beamline's graph for any registered dataset, built by one pure function.

    source (KafkaRecord rows: bytes + coordinates) ── raw records (bronze), if kept
      → Decode ──────────────┐
      → Validate ────────────┤
      → Normalise ───────────┤  dead letters (stage, reason, raw bytes, key, coordinates)
      → ConformToSinks ──────┘
      → Deduplicate ──────────── duplicate log (each dropped copy + the kept copy's offset)
      → events ───────────────── the main table's sinks
               └── ExplodeChildRows ── one output per child table (an array's items)
      → CountPerWindow ───────── the aggregate's sinks (events per key per window, per pane)
                       └──────── late lane: dead letters with stage ``late``
    every stage's records ─ CountStages ─ stage counts (records per window per stage, per pane)

Every row, key and table comes from the dataset's contract (``schemas.dataset``):
the graph names no dataset's fields.  ``build_graph`` takes the dataset, the source
and the sinks as arguments and returns the outputs, so tests run it on ``Create`` or
``TestStream`` with no sink at all, and the driver gives it ``ReadFromKafka`` and
the production sinks.  Every record the source yields ends up in exactly one of:
the events output, the dead letters, or the duplicate log; a late record is in the
events output *and* in the dead letters with stage ``late`` (it is valid, but in no
window count).  From ``Normalise`` to the window count each row travels with its
``KafkaRecord`` as read, so a dead letter made there (``sink``, ``late``) keeps the
raw bytes and the key; the sinks receive the rows alone.
"""

from __future__ import annotations

import dataclasses
import functools
import typing

import apache_beam as beam

from schemas import tables
from schemas.dataset import Dataset
from schemas.records import DEAD_LETTER_TAG, DeadLetter, Duplicate, KafkaRecord, dead_letter
from schemas.values import format_timestamp
from transforms.aggregate import LATE_STAGE, LATE_TAG, CountPerWindow, LateArrival
from transforms.child_rows import ExplodeChildRows
from transforms.conform import ConformToSinks
from transforms.decode import Decode, decoder_for
from transforms.dedup import DUPLICATES_TAG, DeduplicateById
from transforms.kafka_io import WriteDeadLettersToKafka
from transforms.normalise import NormaliseEvents, json_may_hold_nul
from transforms.sinks import JdbcTarget, WriteParquetFiles, WriteTablesToPostgres
from transforms.stage_counts import CountStages
from transforms.validate import ValidateEvents

__all__ = [
    "DEAD_LETTER_TOPIC",
    "GraphParams",
    "Outputs",
    "Sinks",
    "build_graph",
    "late_dead_letter",
    "production_sinks",
    "table_outputs",
]

Sink = typing.Mapping[str, beam.PTransform]

# Dead letters also go to this topic: the raw message, and the reason as headers.
DEAD_LETTER_TOPIC = "dead_letters"
LATE_REASON = "after_window_closed"


@dataclasses.dataclass(frozen=True)
class GraphParams:
    """What the graph needs to know besides its edges.

    ``window_size_s`` and ``allowed_lateness_s`` default to the dataset's aggregate
    (``for_dataset``); stage counts keep their windows open for twice ``dedup_ttl_s``
    (a count per stage is small state), so that a copy arriving after its id was
    forgotten is still counted.  ``batch``: the job runs in batch mode (its
    watermark passes only at the end of its input), so dedup sets no expiry timers.

    ``arrival_delay_ms``: set for a live (unbounded) read, whose watermark trails the
    records' Kafka timestamps by this much.  Then whether an event is late for its
    window, and whether a copy came after its id's dedup TTL, is judged by the
    event's own record: its arrival is its Kafka timestamp minus this delay
    (docs/reliability.md, "After a restore").  A restore replays the same records
    and reaches the same verdicts, whichever way the runtime watermark moves.  The
    windows and ids are kept ``state_grace_s`` past their close for that rule.
    ``None``: the runtime watermark decides (a bounded read: nothing is late).
    """

    run_id: str
    dedup_ttl_s: int = 3600
    window_size_s: typing.Optional[int] = None
    window_period_s: typing.Optional[int] = None
    allowed_lateness_s: typing.Optional[int] = None
    value_format: str = "json"  # json, avro or avro_confluent
    batch: bool = False
    arrival_delay_ms: typing.Optional[int] = None
    state_grace_s: int = 60

    def arrival_ms(self) -> typing.Optional[typing.Callable[[KafkaRecord], int]]:
        """A record → its arrival in event time, or None (the watermark decides)."""
        delay = self.arrival_delay_ms
        return None if delay is None else lambda record: record.timestamp_ms - delay

    def for_dataset(self, dataset: Dataset) -> GraphParams:
        """These parameters with the dataset's defaults where none was given."""
        agg = dataset.contract.aggregate
        return dataclasses.replace(
            self,
            window_size_s=agg.window_s if self.window_size_s is None else self.window_size_s,
            allowed_lateness_s=agg.allowed_lateness_s
            if self.allowed_lateness_s is None
            else self.allowed_lateness_s,
        )


@dataclasses.dataclass(frozen=True)
class Sinks:
    """Where each output goes; each entry is applied as its own labelled step.

    ``tables`` take every PostgreSQL table's rows at once: each is applied to the
    dict ``table_outputs`` gives (table name → its rows), so one writer serves all
    of a dataset's tables and the shared ones.
    """

    records: Sink = dataclasses.field(default_factory=dict)
    children: typing.Mapping[str, Sink] = dataclasses.field(default_factory=dict)  # by table
    events: Sink = dataclasses.field(default_factory=dict)
    counts: Sink = dataclasses.field(default_factory=dict)
    dead_letters: Sink = dataclasses.field(default_factory=dict)
    duplicates: Sink = dataclasses.field(default_factory=dict)
    stage_counts: Sink = dataclasses.field(default_factory=dict)
    tables: Sink = dataclasses.field(default_factory=dict)


@dataclasses.dataclass(frozen=True)
class Outputs:
    records: beam.PCollection  # of KafkaRecord: every record as read (bronze)
    children: typing.Mapping[str, beam.PCollection]  # child table → its rows
    events: beam.PCollection  # of the main table's rows, timestamped at event time
    counts: beam.PCollection  # of the aggregate's rows: one per pane, in the global window
    dead_letters: beam.PCollection  # of DeadLetter, the late lane included
    duplicates: beam.PCollection  # of Duplicate
    stage_counts: beam.PCollection  # of StageCount: one per pane, in the global window


def _instant(ms: int) -> str:
    """``ms`` as ``format_timestamp`` writes it; outside datetime's years 1-9999 (a
    window can start before year 1), as milliseconds since the epoch instead."""
    try:
        return format_timestamp(ms)
    except OverflowError:
        return f"{ms} ms since the epoch"


def late_dead_letter(
    arrival: LateArrival, allowed_lateness_s: int, run_id: str, time_column: str
) -> DeadLetter:
    """The late lane's dead letter: a valid event that arrived after its window closed.

    ``arrival.element`` is the ``(KafkaRecord, row)`` pair: the dead letter keeps the
    record's raw bytes and key.  ``time_column`` is the main row's event-time column
    (the contract's: customer events' ``event_time_ms``, customers'
    ``updated_at_ms``)."""
    record, row = arrival.element
    detail = (
        f"event time {_instant(getattr(row, time_column))} is in window "
        f"[{_instant(arrival.window_start_ms)}, {_instant(arrival.window_end_ms)}), which closed "
        f"when the watermark passed {_instant(arrival.closed_at_ms)} (allowed lateness "
        f"{allowed_lateness_s} s); the event is in the events table but in no window count"
    )
    return dead_letter(record, LATE_STAGE, LATE_REASON, detail, run_id)


def _of_dataset(row, dataset: str):
    """A shared table's row (dead letter, duplicate) stamped with its dataset."""
    return row._replace(dataset=dataset)


def _row(pair: tuple[KafkaRecord, typing.Any]):
    """A ``(KafkaRecord, row)`` pair's row."""
    return pair[1]


def build_graph(
    pipeline: beam.Pipeline,
    dataset: Dataset,
    source: beam.PTransform,
    params: GraphParams,
    sinks: Sinks = Sinks(),
) -> Outputs:
    """Applies the graph of ``dataset`` to ``pipeline``; ``source`` yields ``KafkaRecord``."""
    contract, run_id = dataset.contract, params.run_id
    params = params.for_dataset(dataset)
    row_type, pane_row_type = contract.row_type(), contract.aggregate_row_type()
    records = pipeline | "ReadRecords" >> source
    decoded = records | "Decode" >> Decode(decoder_for(contract, params.value_format), run_id)
    validated = decoded.decoded | "Validate" >> ValidateEvents(contract.json_schema(), run_id)
    normalised = validated.valid | "Normalise" >> NormaliseEvents(
        dataset.to_row,
        row_type,
        contract.event_time_field,
        run_id,
        may_hold_nul=json_may_hold_nul if params.value_format == "json" else None,
    )
    conformed = normalised.rows | "ConformToSinks" >> ConformToSinks(
        dataset.tables.main, functools.partial(dead_letter, run_id=run_id)
    )
    arrival = params.arrival_ms()
    deduplicated = conformed.rows | "Deduplicate" >> DeduplicateById(
        contract.id_column(),
        params.dedup_ttl_s,
        run_id,
        order_by=contract.order_column(),
        expire=not params.batch,
        arrival_ms=arrival,
        grace_s=params.state_grace_s,
    )
    events = deduplicated.unique | "DropRecords" >> beam.Map(_row).with_output_types(row_type)
    group_key, measures = dataset.group_key, dataset.measures
    aggregated = deduplicated.unique | "CountPerWindow" >> CountPerWindow(
        lambda pair: group_key(pair[1]),
        params.window_size_s,
        functools.partial(dataset.to_pane_row, run_id=run_id),
        pane_row_type,
        allowed_lateness_s=params.allowed_lateness_s,
        window_period_s=params.window_period_s,
        sums=None if measures is None else lambda pair: measures(pair[1]),
        arrival_ms=None if arrival is None else lambda pair: arrival(pair[0]),
        grace_s=params.state_grace_s,
    )
    counts = aggregated.counts | "AsCounts" >> beam.Map(lambda c: c).with_output_types(
        pane_row_type
    )
    late = aggregated[LATE_TAG] | "ToLateDeadLetters" >> beam.Map(
        late_dead_letter,
        params.allowed_lateness_s,
        run_id,
        contract.column(contract.event_time_field).name,
    ).with_output_types(DeadLetter)
    dead_letters = (
        decoded[DEAD_LETTER_TAG],
        validated[DEAD_LETTER_TAG],
        normalised[DEAD_LETTER_TAG],
        conformed[DEAD_LETTER_TAG],
        late,
    ) | "CollectDeadLetters" >> beam.Flatten().with_output_types(DeadLetter)
    dead_letters = dead_letters | "StampDeadLetters" >> beam.Map(
        _of_dataset, dataset.name
    ).with_output_types(DeadLetter)
    duplicates = deduplicated[DUPLICATES_TAG] | "StampDuplicates" >> beam.Map(
        _of_dataset, dataset.name
    ).with_output_types(Duplicate)
    child_row_types = contract.child_row_types()
    children = (
        events
        | "ExplodeChildRows" >> ExplodeChildRows(dataset.to_row.child_rows, child_row_types, run_id)
        if child_row_types
        else {}
    )
    # Stage counts keep their windows open for twice the dedup TTL (GraphParams).
    stage_counts = (
        records,
        conformed.rows,
        duplicates,
        dead_letters,
    ) | "CountStages" >> CountStages(
        params.window_size_s,
        max(params.allowed_lateness_s, 2 * params.dedup_ttl_s),
        run_id,
        dataset.name,
    )
    outputs = Outputs(
        records=records,
        children=children,
        events=events,
        counts=counts,
        dead_letters=dead_letters,
        duplicates=duplicates,
        stage_counts=stage_counts,
    )
    for field in dataclasses.fields(Sinks):
        if field.name in ("children", "tables"):
            continue
        pcoll = getattr(outputs, field.name)
        for label, sink in getattr(sinks, field.name).items():
            _ = pcoll | label >> sink
    for table, table_sinks in sinks.children.items():
        for label, sink in table_sinks.items():
            _ = outputs.children[table] | label >> sink
    for label, sink in sinks.tables.items():
        _ = table_outputs(dataset, outputs) | label >> sink
    return outputs


def table_outputs(dataset: Dataset, outputs: Outputs) -> dict[str, beam.PCollection]:
    """Each PostgreSQL table the dataset writes (its own and the shared ones) → the
    output holding its rows."""
    own = dataset.tables
    return {
        own.main.name: outputs.events,
        **{child.name: outputs.children[child.name] for child in own.children},
        own.aggregate.name: outputs.counts,
        tables.DEAD_LETTERS.name: outputs.dead_letters,
        tables.DUPLICATE_LOG.name: outputs.duplicates,
        tables.STAGE_COUNTS.name: outputs.stage_counts,
    }


def _postgres(
    dataset: Dataset, target: JdbcTarget, expansion_service: str
) -> WriteTablesToPostgres:
    """One Java writer for every table of ``dataset`` and the shared ones."""
    return WriteTablesToPostgres((*dataset.tables.all(), *tables.SHARED), target, expansion_service)


def production_sinks(
    dataset: Dataset,
    output_prefix: str,
    target: JdbcTarget,
    expansion_service: str,
    kafka_bootstrap_servers: str,
    dead_letter_topic: str = DEAD_LETTER_TOPIC,
    file_window_s: int = 60,
    kafka_producer_config: typing.Mapping[str, str] | None = None,
) -> Sinks:
    """Parquet files under ``output_prefix/<table>/`` (the main table's in partition
    folders where the contract says, every record as read under
    ``output_prefix/<raw_output>/`` where it keeps them), the dataset's PostgreSQL
    tables and the shared ones (one Java writer for all, a batch per element), and
    the dead-letter topic.  A streaming job writes a set of
    files per ``file_window_s`` of arrival time (late rows would otherwise be dropped
    by the file write)."""

    def parquet(name: str, row_type: type, partition_of=None) -> WriteParquetFiles:
        return WriteParquetFiles(
            f"{output_prefix}/{name}/part", row_type, file_window_s, partition_of
        )

    main, aggregate = dataset.tables.main, dataset.tables.aggregate
    raw = dataset.contract.raw_output
    return Sinks(
        records={"WriteRawParquet": parquet(raw, KafkaRecord)} if raw else {},
        children={
            child.name: {
                f"Write{child.row_type.__name__}Parquet": parquet(child.name, child.row_type),
            }
            for child in dataset.tables.children
        },
        events={
            "WriteEventsParquet": parquet(main.name, main.row_type, dataset.partition_of),
        },
        counts={
            "WriteCountsParquet": parquet(aggregate.name, aggregate.row_type),
        },
        dead_letters={
            "WriteDeadLettersParquet": parquet("dead_letters", DeadLetter),
            "WriteDeadLettersKafka": WriteDeadLettersToKafka(
                kafka_bootstrap_servers,
                dead_letter_topic,
                expansion_service,
                producer_config=kafka_producer_config,
            ),
        },
        tables={"WriteTablesPostgres": _postgres(dataset, target, expansion_service)},
    )
