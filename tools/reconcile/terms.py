"""The run's terms, each read from its own source (``gather``).

Terms, and where each is read (``<main>``, ``<id>``, ``<aggregate>``, ``<keys>`` and
``<count>`` are the dataset's main table, id column, aggregate table, its key and
count columns, all from its contract; for customer events ``customer_events``,
``event_id``, ``customer_event_counts``, ``event_type`` and ``event_count``):

=======================  ====================================================
``produced``             the producer's report: end offsets after − before
``valid_unique``         PostgreSQL ``<main>``: distinct ``<id>``
``postgres_events``      PostgreSQL ``<main>``: rows
``parquet_events``       the Parquet files under ``<output>/<run>/<main>/``
``duplicates``           PostgreSQL ``duplicate_log``: rows
``dead_letters``         PostgreSQL ``dead_letters``: rows, the late lane excepted
``late``                 PostgreSQL ``dead_letters``: rows of stage ``late``
``parquet_dead_letters`` the Parquet files under ``<output>/<run>/dead_letters/``
``kafka_dead_letters``   the dead-letter topic: distinct source records in the run's messages
``gold_total``           PostgreSQL ``<aggregate>``: sum of ``<count>`` (latest panes)
``parquet_gold_total``   the Parquet files under ``<output>/<run>/<aggregate>/``: sum of
                         the counts of each window's final pane (the largest count)
``windows_disagreeing``  (window, group) pairs whose PostgreSQL ``<count>`` differs from
                         the count of that window's final pane in Parquet (or that
                         only one of them holds)
``unbalanced_windows``   (window, group) pairs whose count (final pane, Parquet) + late
                         events differs from the events of that window and group in
                         the Parquet files of ``<main>``
``parquet_raw``          the Parquet files under ``<output>/<run>/<raw_output>/``: rows
                         (every record as read, where the contract keeps them)
``child_items``          PostgreSQL ``<main>``: items of the arrays that fan out to child
                         tables, over the run's events (only for a contract with children)
``postgres_children``    PostgreSQL: rows of the child tables
``parquet_children``     the Parquet files of the child tables: rows
``off_averages``         (window, group) pairs whose averages (final pane, Parquet)
                         differ from the mean over its events that are not late (only
                         for an aggregate with ``means``)
``superseded``           duplicate-log rows whose own record is in the Parquet files of
                         ``<main>``: versions a newer one replaced (``keep_latest``)
``stage_read``           PostgreSQL ``window_stage_counts``: records read
``stage_late``           PostgreSQL ``window_stage_counts``: late records
``injected_replaced``    the producer's report: valid originals whose id another has
``late_copies``          late dead letters whose record is in no PostgreSQL ``<main>`` row
                         nor the duplicate log: copies that came after their id's dedup
                         TTL (docs/pipeline.md, "Dedup after its TTL"); PostgreSQL keeps the first
``late_copy_items``      PostgreSQL ``<main>``: child items of those copies' ids (the
                         copies' child rows are in Parquet a second time)
``injected_late_copies`` the producer's report: copies sent after the dedup TTL
=======================  ====================================================


All rows are those with the run's ``run_id``.  ``gather`` reads in named steps:
the Parquet files (:func:`read_parquet`), PostgreSQL (:func:`read_postgres`, then
the late copies' child items), the dead-letter topic and the run's offset ranges
from the producer's report; :func:`derive` turns them into the terms and the
coordinates the offset audits compare.  A source that cannot be read raises
(``psycopg2.Error``, ``RuntimeError`` for a stalled topic, ``KeyError`` for a report
without a field); nothing is skipped silently.
"""

from __future__ import annotations

import dataclasses
import pathlib
import typing

from beam_pipeline.graph import DEAD_LETTER_TOPIC
from beam_pipeline.progress import read_only_cursor, scalar
from beam_pipeline.settings import StackSettings
from schemas import tables
from schemas.dataset import Dataset
from schemas.records import COORDINATE_COLUMNS
from tools.reconcile.balance import (
    Coordinate,
    OffsetAudit,
    audit_offsets,
    coordinate,
    final_panes,
    window_balance,
)
from tools.reconcile.kafka import count_dead_letter_messages
from tools.reconcile.parquet import parquet_row_count, parquet_rows
from transforms.aggregate import LATE_STAGE

__all__ = [
    "Gathered",
    "ParquetRead",
    "PostgresRead",
    "Terms",
    "derive",
    "gather",
    "read_parquet",
    "read_postgres",
]


@dataclasses.dataclass(frozen=True)
class Terms:
    produced: int
    valid_unique: int
    postgres_events: int
    parquet_events: int
    duplicates: int
    dead_letters: int
    parquet_dead_letters: int
    kafka_dead_letters: int
    gold_total: int
    parquet_gold_total: int
    injected_duplicates: int
    injected_dead_letters: int  # malformed + invalid
    late: int = 0
    unbalanced_windows: int = 0
    stage_read: int = 0
    stage_late: int = 0
    injected_late: int = 0  # sent beyond the allowed lateness (streaming runs)
    superseded: int = 0  # emitted versions a newer one replaced (keep_latest)
    injected_replaced: int = 0  # valid originals sharing an id with another
    off_averages: int = 0  # (window, group) pairs whose averages are not their events' means
    parquet_raw: int = 0  # raw records (bronze) in Parquet, where the contract keeps them
    child_items: int = 0  # array items of the events that fan out to child tables
    postgres_children: int = 0
    parquet_children: int = 0
    late_copies: int = 0  # late copies of a kept event, after its id's dedup TTL
    late_copy_items: int = 0  # child items of those copies (in Parquet twice)
    injected_late_copies: int = 0
    windows_disagreeing: int = 0  # (window, group) pairs: PostgreSQL's count != Parquet's final


class Gathered(typing.NamedTuple):
    terms: Terms
    audit: OffsetAudit  # the outputs' coordinates
    raw: typing.Optional[OffsetAudit]  # the raw records', where the contract keeps them


def gather(
    dataset: Dataset, run_id: str, report: dict, output_dir: pathlib.Path, settings: StackSettings
) -> Gathered:
    """Reads every term from its source, and the coordinates for the offset audits."""
    parquet = read_parquet(dataset, output_dir / run_id)
    with read_only_cursor(settings) as cur:
        postgres = read_postgres(cur, dataset, run_id)
        copies = postgres.late_copies()
        copied = set(copies)
        id_column = dataset.contract.id_column()
        copy_ids = [e[id_column] for e in parquet.events if coordinate(e) in copied]
        copy_items = _child_items(cur, dataset, run_id, copy_ids) if copy_ids else 0
    kafka_dead_letters = count_dead_letter_messages(
        settings.kafka_bootstrap_servers, DEAD_LETTER_TOPIC, run_id, dataset.name
    )
    return derive(dataset, report, parquet, postgres, kafka_dead_letters, copy_items)


class ParquetRead(typing.NamedTuple):
    """What the run's Parquet files hold, as the terms need it."""

    events: list[dict]  # the main table: id, event time, keys, means, coordinates
    counts: list[dict]  # the aggregate, every pane written
    dead_letters: int  # rows
    children: int  # rows of the child tables
    raw: list[Coordinate]  # the raw records' coordinates (none without a raw output)


def read_parquet(dataset: Dataset, run_dir: pathlib.Path) -> ParquetRead:
    """The run's Parquet terms; every emitted version of an event (a late one may
    have been replaced since, ``keep_latest``)."""
    contract, agg = dataset.contract, dataset.contract.aggregate
    time = contract.column(contract.event_time_field).name
    main, aggregate = dataset.tables.main.name, dataset.tables.aggregate.name
    event_columns = [contract.id_column(), time, *agg.keys, *agg.means, *COORDINATE_COLUMNS]
    count_columns = ["window_start_ms", "window_end_ms", *agg.keys, "pane_index"]
    count_columns += [agg.count_column, *(f"avg_{m}" for m in agg.means)]
    raw = (
        [
            (r["topic"], r["partition"], r["offset"])
            for r in parquet_rows(run_dir / contract.raw_output, ["topic", "partition", "offset"])
        ]
        if contract.raw_output
        else []
    )
    return ParquetRead(
        events=parquet_rows(run_dir / main, event_columns),
        counts=parquet_rows(run_dir / aggregate, count_columns),
        dead_letters=parquet_row_count(run_dir / tables.DEAD_LETTERS.name),
        children=sum(parquet_row_count(run_dir / t.name) for t in dataset.tables.children),
        raw=raw,
    )


class PostgresRead(typing.NamedTuple):
    """The run's PostgreSQL terms, and the coordinates of its rows."""

    valid_unique: int
    postgres_events: int
    duplicates: int
    dead_letters: int  # the late lane excepted
    late: int
    gold_total: int
    stage_read: int
    stage_late: int
    child_items: int
    postgres_children: int
    event_seen: list[Coordinate]
    dead_letter_seen: list[Coordinate]  # the late lane excepted
    late_seen: list[Coordinate]
    duplicate_seen: list[Coordinate]
    window_counts: dict[tuple, int]  # (window start, *keys) → the aggregate's count

    def late_copies(self) -> list[Coordinate]:
        """Late records in no events row nor the duplicate log: copies that came
        after their id's dedup TTL, whose id's row the first copy keeps."""
        kept = set(self.event_seen) | set(self.duplicate_seen)
        return [c for c in self.late_seen if c not in kept]


def read_postgres(cur, dataset: Dataset, run_id: str) -> PostgresRead:
    """The run's PostgreSQL terms, read through the cursor ``cur``."""
    events, counts = dataset.tables.main.name, dataset.tables.aggregate.name
    dead, dups = tables.DEAD_LETTERS.name, tables.DUPLICATE_LOG.name
    id_column, count_column = dataset.contract.id_column(), dataset.contract.aggregate.count_column
    own, q = (run_id,), "WHERE run_id = %s"
    # The shared tables: this dataset's rows of the run (its name leads their keys).
    shared, qs = (run_id, dataset.name), "WHERE run_id = %s AND dataset = %s"
    not_late, is_late = f"{qs} AND stage <> '{LATE_STAGE}'", f"{qs} AND stage = '{LATE_STAGE}'"
    stages = f"SELECT sum(record_count) FROM {tables.STAGE_COUNTS.name} {qs} AND stage = "
    columns = "SELECT kafka_topic, kafka_partition, kafka_offset FROM"

    def coordinates(table: str, where: str, params: tuple) -> list[Coordinate]:
        cur.execute(f"{columns} {table} {where}", params)
        return [(t, int(p), int(o)) for t, p, o in cur.fetchall()]

    return PostgresRead(
        valid_unique=scalar(cur, f"SELECT count(DISTINCT {id_column}) FROM {events} {q}", *own),
        postgres_events=scalar(cur, f"SELECT count(*) FROM {events} {q}", *own),
        duplicates=scalar(cur, f"SELECT count(*) FROM {dups} {qs}", *shared),
        dead_letters=scalar(cur, f"SELECT count(*) FROM {dead} {not_late}", *shared),
        late=scalar(cur, f"SELECT count(*) FROM {dead} {is_late}", *shared),
        gold_total=scalar(cur, f"SELECT sum({count_column}) FROM {counts} {q}", *own),
        stage_read=scalar(cur, stages + "'read'", *shared),
        stage_late=scalar(cur, stages + f"'{LATE_STAGE}'", *shared),
        child_items=_child_items(cur, dataset, run_id),
        postgres_children=sum(
            scalar(cur, f"SELECT count(*) FROM {t.name} {q}", *own) for t in dataset.tables.children
        ),
        event_seen=coordinates(events, q, own),
        dead_letter_seen=coordinates(dead, not_late, shared),
        late_seen=coordinates(dead, is_late, shared),
        duplicate_seen=coordinates(dups, qs, shared),
        window_counts=_window_counts(cur, dataset, run_id),
    )


def _window_counts(cur, dataset: Dataset, run_id: str) -> dict[tuple, int]:
    """(window start, *keys) → the count PostgreSQL holds for the run."""
    agg = dataset.contract.aggregate
    columns = ", ".join(["window_start_ms", *agg.keys, agg.count_column])
    cur.execute(
        f"SELECT {columns} FROM {dataset.tables.aggregate.name} WHERE run_id = %s", (run_id,)
    )
    return {tuple(row[:-1]): int(row[-1]) for row in cur.fetchall()}


def derive(
    dataset: Dataset,
    report: dict,
    parquet: ParquetRead,
    postgres: PostgresRead,
    kafka_dead_letters: int,
    late_copy_items: int,
) -> Gathered:
    """The terms and the offset audits from what was read, and the producer's report
    (what it injected, and the run's offset range per partition)."""
    agg = dataset.contract.aggregate
    injected = report["injected"]
    emitted = [coordinate(e) for e in parquet.events]
    emitted_set = set(emitted)
    copies = postgres.late_copies()
    balance = window_balance(dataset, parquet.events, parquet.counts, postgres.late_seen)
    final = {
        window: row[agg.count_column]
        for window, row in final_panes(parquet.counts, agg.keys, agg.count_column).items()
    }
    terms = Terms(
        produced=sum(int(n) for n in report["produced"].values()),
        valid_unique=postgres.valid_unique,
        postgres_events=postgres.postgres_events,
        parquet_events=len(parquet.events),
        duplicates=postgres.duplicates,
        dead_letters=postgres.dead_letters,
        parquet_dead_letters=parquet.dead_letters,
        kafka_dead_letters=kafka_dead_letters,
        gold_total=postgres.gold_total,
        parquet_gold_total=sum(final.values()),
        injected_duplicates=int(injected["duplicates"]),
        injected_dead_letters=int(injected["malformed"]) + int(injected["invalid"]),
        late=postgres.late,
        unbalanced_windows=balance.unbalanced,
        stage_read=postgres.stage_read,
        stage_late=postgres.stage_late,
        injected_late=int(injected.get("late", 0)),
        superseded=sum(1 for c in postgres.duplicate_seen if c in emitted_set),
        injected_replaced=int(injected.get("replaced", 0)),
        off_averages=balance.off_averages,
        parquet_raw=len(parquet.raw),
        child_items=postgres.child_items,
        postgres_children=postgres.postgres_children,
        parquet_children=parquet.children,
        late_copies=len(copies),
        late_copy_items=late_copy_items,
        injected_late_copies=int(injected.get("late_copies", 0)),
        windows_disagreeing=sum(
            1
            for window in final.keys() | postgres.window_counts.keys()
            if final.get(window) != postgres.window_counts.get(window)
        ),
    )
    seen = postgres.event_seen + postgres.dead_letter_seen + postgres.duplicate_seen + copies
    ranges = _offset_ranges(report)
    topic = report["topic"]
    return Gathered(
        terms,
        audit_offsets(topic, ranges, seen, postgres.late_seen, emitted),
        audit_offsets(topic, ranges, parquet.raw) if dataset.contract.raw_output else None,
    )


def _offset_ranges(report: dict) -> dict[int, tuple[int, int]]:
    """The run's ``[start, end)`` offsets per partition: the producer's end offsets
    before and after it wrote."""
    before, after = report["offsets_before"], report["offsets_after"]
    return {int(p): (int(before.get(p, 0)), int(end)) for p, end in after.items()}


def _child_items(cur, dataset: Dataset, run_id: str, ids: list | None = None) -> int:
    """Items of the main table's arrays that fan out to child tables, over the run's
    events (or those of the ``ids``)."""
    events, id_column = dataset.tables.main.name, dataset.contract.id_column()
    only = f" AND {id_column} = ANY(%s)" if ids is not None else ""
    params = (run_id, ids) if ids is not None else (run_id,)
    return sum(
        scalar(
            cur,
            f"SELECT sum(jsonb_array_length(payload -> '{child.path}')) FROM {events} "
            f"WHERE run_id = %s{only}",
            *params,
        )
        for child in dataset.contract.children
    )
