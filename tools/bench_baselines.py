"""The benchmark's two baselines: ``bench_step.RecordStep`` with and without I/O.

Baseline A (``run_consumer_baseline``) is a single-process Kafka consumer that
reads the run's exact offset ranges, runs the step on every record and writes
Parquet files and PostgreSQL tables of its own (``bench_a_<table>``).  Baseline
B (``run_memory_baseline``) runs the step on an in-memory list: no I/O at all.
Both check nothing themselves: the bench compares their outcome's counts with the
producer's report.
"""

from __future__ import annotations

import dataclasses
import io
import logging
import pathlib
import time
import typing

import psycopg2
import pyarrow as pa
import pyarrow.parquet as pq
from confluent_kafka import Consumer, TopicPartition

from beam_pipeline.kafka_security import client_config
from datasets.customer_events import DATASET, CustomerEventCountsRow, CustomerEventsRow
from schemas import tables
from schemas.records import DeadLetter, KafkaRecord
from schemas.sql import forward_only_clause
from tools.bench_step import Outcome, RecordStep
from transforms.sinks import arrow_schema

__all__ = [
    "BaselineResult",
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
        statement += f" WHERE {forward_only_clause(table.forward_only)}"
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
