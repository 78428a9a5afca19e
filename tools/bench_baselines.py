"""The benchmark's baselines: Beamline's per-record semantics in a plain loop, no Beam.

``RecordStep`` is the one per-record step both baselines run.  It calls the
project's own pure functions in the order the graph applies them, so its
semantics cannot drift from the pipeline's:

1. decode with ``decode.decoder_for(CONTRACT, value_format)`` (as ``DecodeFn`` does);
2. validate with the check ``compile_schema`` builds from the contract's JSON
   Schema, and name the violations with ``jsonschema`` and ``describe_errors``
   only for a rejected event (as ``ValidateEventsFn`` does);
3. normalise with ``find_nul`` (skipped, as the graph skips it for JSON values,
   when ``json_may_hold_nul`` finds neither a zero byte nor ``\\u0000`` in the raw
   value), ``event_time_ms`` and ``to_customer_event`` (as ``NormaliseEventsFn`` does);
4. conform each row to the events table's DDL with ``violations`` (as
   ``ConformToSinks`` does);
5. keep the first copy of each event id, logging later copies as ``Duplicate``
   rows (the contract's ``drop_later_copies`` policy; a benchmark run spans far
   less event time than the dedup TTL, so no id expires), and fan each kept
   event's arrays out to its child tables' rows (as ``ToChildRows``);
6. count the kept events per ``(window, event_type)`` in fixed windows of event
   time aligned to the epoch, as ``CountPerWindow``'s one on-time pane per window
   on a bounded read.

Every record ends in exactly one of: the events, the dead letters, the duplicates.

Baseline A (``run_consumer_baseline``) is a single-process Kafka consumer that
reads the run's exact offset ranges, runs the step on every record and writes
Parquet files and PostgreSQL tables of its own (``bench_a_<table>``).  Baseline
B (``run_memory_baseline``) runs the step on an in-memory list: no I/O at all.
"""

from __future__ import annotations

import collections
import dataclasses
import io
import json
import logging
import pathlib
import time
import types
import typing

import psycopg2
import pyarrow as pa
import pyarrow.parquet as pq
from confluent_kafka import Consumer, TopicPartition
from jsonschema import Draft7Validator

from beam_pipeline.kafka_security import client_config
from datasets.customer_events import (
    CONTRACT,
    DATASET,
    EVENT_TIME_FIELD,
    ID_FIELD,
    CustomerEventCountsRow,
    CustomerEventsRow,
    load_schema,
    to_customer_event,
)
from schemas import tables
from schemas.records import DeadLetter, Duplicate, KafkaRecord, dead_letter
from transforms import conform, decode, normalise, schema_check, validate
from transforms.sinks import arrow_schema

__all__ = [
    "BaselineResult",
    "Outcome",
    "RecordStep",
    "TABLE_PREFIX",
    "consume_records",
    "copy_text",
    "drop_baseline_tables",
    "run_consumer_baseline",
    "run_memory_baseline",
]

_LOG = logging.getLogger(__name__)

# Baseline A writes to tables named like this, each LIKE the pipeline's own.
TABLE_PREFIX = "bench_a_"

# The pipeline's tables baseline A writes, by the name of the outcome's rows for each.
_OUTPUTS = (
    (DATASET.tables.main, "events"),
    *((child, child.name) for child in DATASET.tables.children),
    (DATASET.tables.aggregate, "counts"),
    (tables.DEAD_LETTERS, "dead_letters"),
    (tables.DUPLICATE_LOG, "duplicates"),
)

_BATCH = 10_000  # records per consume() call


@dataclasses.dataclass
class Outcome:
    """What the step made of the records it was given, in arrival order.

    Attributes:
      records: records processed.
      events: the kept ``CustomerEventsRow`` of each event id (first copy).
      dead_letters: one ``DeadLetter`` per rejected record (stages decode,
        validate, normalise, sink).
      duplicates: one ``Duplicate`` per later copy of a kept id.
      children: child table → the rows of the kept events' array items.
      window_counts: ``(window_start_ms, window_end_ms, event_type)`` → kept events.
    """

    records: int = 0
    events: list = dataclasses.field(default_factory=list)
    dead_letters: list = dataclasses.field(default_factory=list)
    duplicates: list = dataclasses.field(default_factory=list)
    window_counts: dict = dataclasses.field(default_factory=collections.Counter)
    children: dict = dataclasses.field(
        default_factory=lambda: {child.name: [] for child in DATASET.tables.children}
    )

    def rows(self, name: str) -> list:
        """The rows of one output: an attribute, or a child table's."""
        return self.children[name] if name in self.children else getattr(self, name)

    def counts(self, run_id: str) -> list[CustomerEventCountsRow]:
        """The count rows: one on-time pane (index 0) per window and event type."""
        return [
            DATASET.to_pane_row(
                DATASET.group_key(types.SimpleNamespace(event_type=kind)),
                n,
                start,
                end,
                0,
                "on_time",
                run_id=run_id,
            )
            for (start, end, kind), n in sorted(self.window_counts.items())
        ]

    def summary(self) -> dict[str, int]:
        """Records, unique events, duplicates, dead letters and the windowed total."""
        return {
            "records": self.records,
            "valid_unique": len(self.events),
            "duplicates": len(self.duplicates),
            "dead_letters": len(self.dead_letters),
            "gold_total": sum(self.window_counts.values()),
        }


class RecordStep:
    """Beamline's per-record semantics for customer events, one record at a time.

    Call it with each ``KafkaRecord`` in arrival order; ``outcome`` accumulates.
    Never raises for a bad record: like the pipeline's DoFns, every failure is a
    dead letter with the same stage, reason and detail.

    Args:
      run_id: stamped on every row, dead letter and duplicate.
      value_format: ``json``, ``avro`` or ``avro_confluent``.
      window_size_s: the count windows' length in seconds of event time.

    Raises:
      ValueError: the contract keeps the latest copy by a field (``keep_latest``),
        which this step does not implement.
    """

    def __init__(
        self,
        run_id: str,
        value_format: str = "json",
        window_size_s: int = CONTRACT.aggregates[0].window_s,
    ):
        if CONTRACT.dedup.order_by is not None:
            raise ValueError("the benchmark's step keeps first copies only (drop_later_copies)")
        schema = load_schema()
        self._run_id = run_id
        self._decoder = decode.decoder_for(CONTRACT, value_format)
        # As the graph passes it to NormaliseEvents: the raw-bytes scan for JSON only.
        self._may_hold_nul = normalise.json_may_hold_nul if value_format == "json" else None
        self._is_valid = schema_check.compile_schema(schema)
        self._validator = Draft7Validator(schema)
        # Resolved once per table, as ConformToSinks does per worker.
        self._rules = conform._rules(DATASET.tables.main)
        self._window_ms = window_size_s * 1000
        self._id = CONTRACT.column(ID_FIELD).name
        (self._key,) = CONTRACT.aggregate.keys  # the baselines count by one key
        self._kept: dict[str, tuple[int, int]] = {}
        self.outcome = Outcome()

    def _reject(self, record: KafkaRecord, stage: str, reason: str, detail: str) -> None:
        self.outcome.dead_letters.append(dead_letter(record, stage, reason, detail, self._run_id))

    def __call__(self, record: KafkaRecord) -> None:
        self.outcome.records += 1
        run_id = self._run_id
        # 1. decode (DecodeFn)
        try:
            event = self._decoder(record.value)
        except decode.DecodeError as e:
            return self._reject(record, decode.STAGE, e.reason, e.detail)
        except Exception as e:  # noqa: BLE001 - as DecodeFn: the record's failure
            return self._reject(record, decode.STAGE, "decode_error", f"{type(e).__name__}: {e}")
        # 2. validate (ValidateEventsFn)
        try:
            if not self._is_valid(event):
                errors = list(self._validator.iter_errors(event))
                if not errors:
                    raise validate.ValidatorDisagreement(
                        "the compiled check rejected the event but jsonschema finds no violation"
                    )
                return self._reject(record, validate.STAGE, *validate.describe_errors(errors))
        except Exception as e:  # noqa: BLE001 - as ValidateEventsFn
            return self._reject(
                record, validate.STAGE, "validate_error", f"{type(e).__name__}: {e}"
            )
        # 3. normalise (NormaliseEventsFn)
        try:
            scan = self._may_hold_nul
            nul = normalise.find_nul(event) if scan is None or scan(record.value) else None
            if nul:
                raise normalise.NormaliseError("nul_character", f"{nul} holds a NUL character")
            at_ms = normalise.event_time_ms(event[EVENT_TIME_FIELD])
            row = to_customer_event(record, event, at_ms, run_id)
        except normalise.NormaliseError as e:
            return self._reject(record, normalise.STAGE, e.reason, e.detail)
        except Exception as e:  # noqa: BLE001 - as NormaliseEventsFn
            return self._reject(
                record, normalise.STAGE, "normalise_error", f"{type(e).__name__}: {e}"
            )
        # 4. conform to the events table (ConformToSinks)
        found = conform.violations(DATASET.tables.main, row, self._rules)
        if found:
            detail = "; ".join(v.detail for v in found)
            return self._reject(record, conform.STAGE, found[0].reason, detail)
        # 5. keep the first copy of each id (DeduplicateById, drop_later_copies)
        event_id = str(getattr(row, self._id))
        kept = self._kept.get(event_id)
        if kept is not None:
            self.outcome.duplicates.append(
                Duplicate(
                    event_id,
                    row.kafka_topic,
                    row.kafka_partition,
                    row.kafka_offset,
                    row.kafka_timestamp_ms,
                    kept[0],
                    kept[1],
                    run_id,
                )
            )
            return None
        self._kept[event_id] = (row.kafka_partition, row.kafka_offset)
        self.outcome.events.append(row)
        # 5b. the arrays' items, for the child tables (as ToChildRows, from the payload)
        for table, child_rows in to_customer_event.child_rows(
            json.loads(row.payload), run_id
        ).items():
            self.outcome.children[table].extend(child_rows)
        # 6. count per (fixed window of event time, event type)
        start = at_ms - at_ms % self._window_ms
        self.outcome.window_counts[(start, start + self._window_ms, getattr(row, self._key))] += 1
        return None


@dataclasses.dataclass(frozen=True)
class BaselineResult:
    """A baseline's outcome and timing.

    Attributes:
      outcome: what the step made of the records.
      wall_s: for A, first poll to last commit; for B, the loop alone.
      records: the records consumed (A) or given (B), in arrival order.
      table_rows: baseline A only: rows per ``bench_a_<table>`` after the commit.
    """

    outcome: Outcome
    wall_s: float
    records: list
    table_rows: dict = dataclasses.field(default_factory=dict)


def run_memory_baseline(
    records: typing.Sequence[KafkaRecord], run_id: str, value_format: str, window_size_s: int
) -> BaselineResult:
    """Baseline B: ``RecordStep`` over ``records`` in memory, one core, no I/O."""
    step = RecordStep(run_id, value_format, window_size_s)
    started = time.perf_counter()
    for record in records:
        step(record)
    return BaselineResult(step.outcome, time.perf_counter() - started, list(records))


def consume_records(
    bootstrap_servers: str,
    topic: str,
    ranges: typing.Mapping[int, tuple[int, int]],
    on_batch: typing.Callable[[list[KafkaRecord]], None],
    timeout_s: float = 1.0,
    stall_s: float = 30.0,
) -> int:
    """Reads exactly the offsets ``[start, end)`` of each partition of ``topic``.

    Batches of up to 10,000 records, in each partition's offset order, go to
    ``on_batch`` as ``KafkaRecord`` rows as they arrive.  Returns the records read.

    Raises:
      RuntimeError: no record arrived for ``stall_s`` while some were still due,
        or the broker reported an error.
    """
    consumer = Consumer(
        client_config(
            bootstrap_servers,
            {
                "group.id": f"beamline-bench-{topic}",
                "enable.auto.commit": False,
                "enable.partition.eof": False,
                "fetch.max.bytes": 64 * 1024 * 1024,
                "log_level": 0,
            },
        )
    )
    remaining = {p: end for p, (start, end) in ranges.items() if end > start}
    read = 0
    try:
        consumer.assign([TopicPartition(topic, p, ranges[p][0]) for p in sorted(remaining)])
        quiet_since = time.monotonic()
        while remaining:
            messages = consumer.consume(num_messages=_BATCH, timeout=timeout_s)
            if not messages:
                if time.monotonic() - quiet_since > stall_s:
                    raise RuntimeError(f"reading {topic} stalled with {remaining} left to reach")
                continue
            quiet_since = time.monotonic()
            batch = []
            for m in messages:
                if m.error():
                    raise RuntimeError(f"reading {topic}: {m.error()}")
                partition, offset = m.partition(), m.offset()
                if offset >= remaining.get(partition, -1):
                    continue  # past the run's range (another writer): not ours
                batch.append(
                    KafkaRecord(topic, partition, offset, m.timestamp()[1], m.key(), m.value())
                )
                if offset + 1 >= remaining[partition]:
                    del remaining[partition]
            read += len(batch)
            on_batch(batch)
    finally:
        consumer.close()
    return read


def _copy_field(value) -> str:
    if value is None:
        return "\\N"
    if isinstance(value, bool):
        return "t" if value else "f"
    if isinstance(value, bytes):
        return "\\\\x" + value.hex()
    if isinstance(value, (int, float)):
        return repr(value)
    return (
        value.replace("\\", "\\\\").replace("\n", "\\n").replace("\r", "\\r").replace("\t", "\\t")
    )


def copy_text(rows: typing.Iterable[tuple]) -> str:
    """Rows as PostgreSQL ``COPY … FROM STDIN`` text: tab-separated, ``\\N`` for null,
    backslash escapes, ``bytea`` in hex."""
    return "".join("\t".join(_copy_field(v) for v in row) + "\n" for row in rows)


def _baseline_table(table) -> str:
    return TABLE_PREFIX + table.name


def _create_baseline_tables(connection) -> None:
    with connection, connection.cursor() as cur:
        for table, _ in _OUTPUTS:
            name = _baseline_table(table)
            cur.execute(f"DROP TABLE IF EXISTS {name}")
            cur.execute(f"CREATE UNLOGGED TABLE {name} (LIKE {table.name} INCLUDING ALL)")


def drop_baseline_tables(connection) -> None:
    """Drops every ``bench_a_<table>`` (idempotent)."""
    with connection, connection.cursor() as cur:
        for table, _ in _OUTPUTS:
            cur.execute(f"DROP TABLE IF EXISTS {_baseline_table(table)}")


def _upsert(cur, table, rows: list) -> None:
    """COPY ``rows`` into a temporary staging table, then upsert them into
    ``bench_a_<table>`` on its key, as the pipeline's own upsert statement does."""
    if not rows:
        return
    target = _baseline_table(table)
    columns = list(table.row_type._fields)
    names = ", ".join(columns)
    staging = f"stage_{table.name}"
    cur.execute(
        f"CREATE TEMP TABLE IF NOT EXISTS {staging} AS SELECT {names} FROM {target} WITH NO DATA"
    )
    cur.execute(f"TRUNCATE {staging}")
    cur.copy_expert(f"COPY {staging} ({names}) FROM STDIN", io.StringIO(copy_text(rows)))
    updates = ", ".join(f"{c} = EXCLUDED.{c}" for c in columns if c not in table.key_columns)
    statement = (
        f"INSERT INTO {target} AS t ({names}) SELECT {names} FROM {staging} "
        f"ON CONFLICT ({', '.join(table.key_columns)}) DO UPDATE SET {updates}"
    )
    if table.forward_only:
        f = table.forward_only
        statement += f" WHERE t.{f} IS NULL OR EXCLUDED.{f} >= t.{f}"
    cur.execute(statement)


def _write_parquet(folder: pathlib.Path, name: str, row_type: type, rows: list) -> None:
    schema = arrow_schema(row_type)
    path = folder / name / "part-00000.parquet"
    path.parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(pa.Table.from_pylist([r._asdict() for r in rows], schema=schema), path)


def run_consumer_baseline(
    bootstrap_servers: str,
    topic: str,
    ranges: typing.Mapping[int, tuple[int, int]],
    run_id: str,
    value_format: str,
    window_size_s: int,
    pg_kwargs: dict,
    parquet_dir: pathlib.Path,
) -> BaselineResult:
    """Baseline A: one process reads the run's offsets, runs ``RecordStep`` on each
    record, writes Parquet and PostgreSQL, and commits.

    Events and the dead letters are written to PostgreSQL per consumed batch
    (COPY into a staging table, then an upsert); the window counts, final only at
    the end of a bounded read, once at the end; one commit ends the run.
    Parquet: ``events/``, one folder per child table, ``dead_letters/`` and
    ``event_counts/`` under ``parquet_dir``.  The ``bench_a_<table>`` tables are
    (re)created before the clock starts and left for the caller to drop
    (``drop_baseline_tables``).
    """
    step = RecordStep(run_id, value_format, window_size_s)
    records: list[KafkaRecord] = []
    connection = psycopg2.connect(**pg_kwargs)
    try:
        _create_baseline_tables(connection)
        written = {name: 0 for _, name in _OUTPUTS}
        started = time.perf_counter()
        with connection, connection.cursor() as cur:

            def on_batch(batch: list[KafkaRecord]) -> None:
                records.extend(batch)
                for record in batch:
                    step(record)
                out = step.outcome
                for table, name in _OUTPUTS:
                    if name == "counts":
                        continue
                    rows = out.rows(name)
                    _upsert(cur, table, rows[written[name] :])
                    written[name] = len(rows)

            consume_records(bootstrap_servers, topic, ranges, on_batch)
            out = step.outcome
            _upsert(cur, DATASET.tables.aggregate, out.counts(run_id))
            _write_parquet(parquet_dir, "events", CustomerEventsRow, out.events)
            for child in DATASET.tables.children:
                _write_parquet(parquet_dir, child.name, child.row_type, out.children[child.name])
            _write_parquet(parquet_dir, "dead_letters", DeadLetter, out.dead_letters)
            _write_parquet(parquet_dir, "event_counts", CustomerEventCountsRow, out.counts(run_id))
        # Leaving the block committed the transaction.
        wall_s = time.perf_counter() - started
        table_rows = {}
        with connection.cursor() as cur:
            for table, name in _OUTPUTS:
                cur.execute(
                    f"SELECT count(*) FROM {_baseline_table(table)} WHERE run_id = %s", (run_id,)
                )
                table_rows[name] = cur.fetchone()[0]
        connection.rollback()
    finally:
        connection.close()
    _LOG.info("baseline A: %d records in %.1f s", len(records), wall_s)
    return BaselineResult(step.outcome, wall_s, records, table_rows)
