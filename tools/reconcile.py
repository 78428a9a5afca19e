"""The run's reconciliation: every term from its own source, every check printed.

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
                         the counts of each window's highest pane
``unbalanced_windows``   (window, group) pairs whose count (highest pane, Parquet) + late
                         events differs from the events of that window and group in
                         the Parquet files of ``<main>``
``parquet_raw``          the Parquet files under ``<output>/<run>/<raw_output>/``: rows
                         (every record as read, where the contract keeps them)
``child_items``          PostgreSQL ``<main>``: items of the arrays that fan out to child
                         tables, over the run's events (only for a contract with children)
``postgres_children``    PostgreSQL: rows of the child tables
``parquet_children``     the Parquet files of the child tables: rows
``off_averages``         (window, group) pairs whose averages (highest pane, Parquet)
                         differ from the mean over its events that are not late (only
                         for an aggregate with ``means``)
``superseded``           duplicate-log rows whose own record is in the Parquet files of
                         ``<main>``: versions a newer one replaced (``keep_latest``)
``stage_read``           PostgreSQL ``window_stage_counts``: records read
``stage_late``           PostgreSQL ``window_stage_counts``: late records
``injected_replaced``    the producer's report: valid originals whose id another has
``late_copies``          late dead letters whose record is in no PostgreSQL ``<main>`` row
                         nor the duplicate log: copies that came after their id's dedup
                         TTL (README, "Dedup after its TTL"); PostgreSQL keeps the first
``late_copy_items``      PostgreSQL ``<main>``: child items of those copies' ids (the
                         copies' child rows are in Parquet a second time)
``injected_late_copies`` the producer's report: copies sent after the dedup TTL
=======================  ====================================================

All rows are those with the run's ``run_id``.  A late event is valid: it is in
the events table and, as well, a dead letter of stage ``late``.  For a
``keep_latest`` dataset the Parquet files hold every version the pipeline emitted,
PostgreSQL the latest per id; each version that lost to a newer one is in the
duplicate log too (``superseded``), so the sinks balance as ``parquet_events ==
valid_unique + superseded``.  A copy that arrives after its id's dedup TTL is late
(its window has closed): a dead letter of stage ``late`` and a second Parquet row,
while PostgreSQL keeps the first copy's row, so it balances as a ``late_copy``.
Beside the
counts, the offset audit reads the (topic, partition, offset) of every row of
the events, the dead letters (the late lane excepted, late copies included) and
the duplicate log,
and compares them with the run's offset ranges from the report: each offset must
appear exactly once; and every late dead letter must name an event's offset.

``python -m tools.reconcile --run_id R`` prints a table whose last line
is one JSON object, and exits 1 if any check fails.
"""

from __future__ import annotations

import argparse
import collections
import dataclasses
import json
import math
import pathlib
import sys
import typing

import psycopg2
import pyarrow.parquet as pq
from confluent_kafka import OFFSET_BEGINNING, Consumer, TopicPartition

import datasets
from beam_pipeline.graph import DEAD_LETTER_TOPIC
from beam_pipeline.identifiers import run_id_argument
from beam_pipeline.kafka_security import client_config
from beam_pipeline.progress import scalar
from beam_pipeline.settings import StackSettings
from schemas import tables
from schemas.dataset import Dataset
from schemas.records import COORDINATE_COLUMNS
from transforms.kafka_io import HEADER_PREFIX

__all__ = [
    "Check",
    "OffsetAudit",
    "Terms",
    "audit_offsets",
    "checks",
    "gather",
    "main",
    "render",
]

REPORT_NAME = "producer.json"


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


def _sources(dataset: Dataset) -> dict[str, str]:
    """Where each term is read, for the table a person reads."""
    main, aggregate = dataset.tables.main.name, dataset.tables.aggregate.name
    count = dataset.contract.aggregate.count_column
    n = len(dataset.tables.children)
    dead, stages = tables.DEAD_LETTERS.name, tables.STAGE_COUNTS.name
    return {
        "produced": "Kafka end offsets, after − before (producer report)",
        "valid_unique": f"PostgreSQL {main}: distinct {dataset.contract.id_column()}",
        "postgres_events": f"PostgreSQL {main}: rows",
        "parquet_events": f"Parquet {main}/: rows",
        "duplicates": f"PostgreSQL {tables.DUPLICATE_LOG.name}: rows",
        "dead_letters": f"PostgreSQL {dead}: rows, late lane excepted",
        "parquet_dead_letters": "Parquet dead_letters/: rows",
        "kafka_dead_letters": "Kafka dead_letters topic: distinct source records of the run",
        "gold_total": f"PostgreSQL {aggregate}: sum of {count}",
        "parquet_gold_total": f"Parquet {aggregate}/: sum of {count}",
        "injected_duplicates": "producer report: duplicates injected",
        "injected_dead_letters": "producer report: malformed + invalid injected",
        "late": f"PostgreSQL {dead}: rows of stage late",
        "unbalanced_windows": "windows where count + late events != events",
        "off_averages": "windows where an average != the mean of its events",
        "parquet_raw": f"Parquet {dataset.contract.raw_output}/: rows",
        "child_items": f"PostgreSQL {main}: items of the {n} arrays with child tables",
        "postgres_children": f"PostgreSQL: rows of the {n} child tables",
        "parquet_children": f"Parquet: rows of the {n} child tables",
        "stage_read": f"PostgreSQL {stages}: records read",
        "stage_late": f"PostgreSQL {stages}: late records",
        "injected_late": "producer report: sent beyond the allowed lateness",
        "superseded": f"duplicate log rows whose record is in Parquet {main}/",
        "injected_replaced": "producer report: valid versions of an id sent twice or more",
        "late_copies": f"late dead letters in no PostgreSQL {main} row nor the duplicate log",
        "late_copy_items": f"PostgreSQL {main}: child items of the late copies' ids",
        "injected_late_copies": "producer report: copies sent after the dedup TTL",
    }


@dataclasses.dataclass(frozen=True)
class OffsetAudit:
    """The run's offsets against the coordinates found in the outputs."""

    expected: int  # offsets in the run's ranges
    found: int  # rows across events, dead letters and the duplicate log
    missing: int  # expected offsets in no output
    unexpected: int  # offsets outside the run's ranges (or on another topic)
    repeated: int  # offsets in more than one row
    late_not_in_events: int = 0  # late dead letters naming no event's offset


@dataclasses.dataclass(frozen=True)
class Check:
    name: str
    passed: bool
    detail: str


Coordinate = tuple[str, int, int]


def audit_offsets(
    topic: str,
    ranges: typing.Mapping[int, tuple[int, int]],
    seen: typing.Iterable[Coordinate],
    late: typing.Iterable[Coordinate] = (),
    events: typing.Iterable[Coordinate] = (),
) -> OffsetAudit:
    """Compares ``seen`` coordinates with ``[start, end)`` per partition of ``topic``,
    and checks that each ``late`` coordinate is one of the ``events``."""
    counts = collections.Counter(seen)
    expected = {(topic, p, o) for p, (start, end) in ranges.items() for o in range(start, end)}
    return OffsetAudit(
        expected=len(expected),
        found=sum(counts.values()),
        missing=len(expected - counts.keys()),
        unexpected=len(counts.keys() - expected),
        repeated=sum(1 for n in counts.values() if n > 1),
        late_not_in_events=len(set(late) - set(events)),
    )


def checks(
    terms: Terms,
    audit: OffsetAudit,
    means: typing.Sequence[str] = (),
    raw: typing.Optional[OffsetAudit] = None,
    children: bool = False,
    late_exact: bool = True,
) -> list[Check]:
    """Every check of a run, passed or not, with the numbers behind it; with the
    aggregate's ``means``, the averages are checked too, with the ``raw`` output's
    audit, that it holds every offset of the run exactly once, and with ``children``,
    the child tables' rows.  Without ``late_exact`` (a drill stopped the job) the late
    lane may hold fewer than were sent late, never more; the windows' balance and
    the offset audit still say that none was lost or counted twice."""
    t = terms
    # A late copy is a record beside its id's kept one: its own Parquet row and dead
    # letter, no PostgreSQL row (the first copy keeps it).  Named only when present.
    copies = f" + {t.late_copies}" if t.late_copies else ""
    copies_term = " + late_copies" if t.late_copies else ""
    sinks = (
        t.parquet_events,
        t.postgres_events + t.superseded + t.late_copies,
        t.valid_unique + t.superseded + t.late_copies,
        t.gold_total + t.late,
    )
    return [
        Check(
            f"produced == valid_unique + duplicates + dead_letters{copies_term}",
            t.produced == t.valid_unique + t.duplicates + t.dead_letters + t.late_copies,
            f"{t.produced} vs {t.valid_unique} + {t.duplicates} + {t.dead_letters}{copies}",
        ),
        Check(
            f"parquet_events == postgres_events + superseded{copies_term} == valid_unique + "
            f"superseded{copies_term} == gold_total + late",
            len(set(sinks)) == 1,
            f"{t.parquet_events} == {t.postgres_events} + {t.superseded}{copies} == "
            f"{t.valid_unique} + {t.superseded}{copies} == {t.gold_total} + {t.late}",
        ),
        Check(
            "dead_letters + late == parquet_dead_letters == kafka_dead_letters",
            t.dead_letters + t.late == t.parquet_dead_letters == t.kafka_dead_letters,
            f"{t.dead_letters} + {t.late} == {t.parquet_dead_letters} == {t.kafka_dead_letters}",
        ),
        Check(
            "every window: final count + its late events == its events",
            t.unbalanced_windows == 0,
            f"{t.unbalanced_windows} (window, group) pairs off",
        ),
        *(
            [
                Check(
                    f"every window: final {' and '.join(f'avg_{m}' for m in means)} == "
                    "the means of its events",
                    t.off_averages == 0,
                    f"{t.off_averages} (window, group) pairs off",
                )
            ]
            if means
            else []
        ),
        Check(
            "stage counts: read == produced, late == late",
            t.stage_read == t.produced and t.stage_late == t.late,
            f"{t.stage_read} vs {t.produced}, {t.stage_late} vs {t.late}",
        ),
        Check(
            "gold_total == parquet_gold_total",
            t.gold_total == t.parquet_gold_total,
            f"{t.gold_total} vs {t.parquet_gold_total}",
        ),
        Check(
            "every offset of the run exactly once across the outputs",
            _exact(audit) and audit.late_not_in_events == 0,
            f"{audit.expected} offsets, {audit.found} rows: {audit.missing} missing, "
            f"{audit.unexpected} unexpected, {audit.repeated} repeated, "
            f"{audit.late_not_in_events} late not in events",
        ),
        *(
            [
                Check(
                    "raw records: every offset of the run exactly once",
                    _exact(raw) and t.parquet_raw == t.produced,
                    f"{raw.expected} offsets, {t.parquet_raw} rows: {raw.missing} missing, "
                    f"{raw.unexpected} unexpected, {raw.repeated} repeated",
                )
            ]
            if raw is not None
            else []
        ),
        *(
            [
                Check(
                    f"postgres_children == parquet_children"
                    f"{' - late_copy_items' if t.late_copies else ''} == child_items",
                    t.postgres_children == t.parquet_children - t.late_copy_items == t.child_items,
                    f"{t.postgres_children} == {t.parquet_children}"
                    f"{f' - {t.late_copy_items}' if t.late_copies else ''} == {t.child_items}",
                )
            ]
            if children
            else []
        ),
        Check(
            "duplicates == injected duplicates + replaced versions",
            t.duplicates == t.injected_duplicates + t.injected_replaced,
            f"{t.duplicates} vs {t.injected_duplicates} + {t.injected_replaced}",
        )
        if late_exact
        else Check(
            # A job that was down may read a late copy while its id is still
            # remembered: then it is a duplicate, not a late copy.
            "duplicates + late_copies == injected duplicates + replaced + late copies "
            "(the job was stopped)",
            t.duplicates + t.late_copies
            == t.injected_duplicates + t.injected_replaced + t.injected_late_copies,
            f"{t.duplicates} + {t.late_copies} vs {t.injected_duplicates} + "
            f"{t.injected_replaced} + {t.injected_late_copies}",
        ),
        *(
            [
                Check(
                    "late_copies == injected copies after the dedup TTL",
                    t.late_copies == t.injected_late_copies,
                    f"{t.late_copies} vs {t.injected_late_copies}",
                )
            ]
            if late_exact and (t.late_copies or t.injected_late_copies)
            else []
        ),
        Check(
            "dead_letters == injected malformed + invalid",
            t.dead_letters == t.injected_dead_letters,
            f"{t.dead_letters} vs {t.injected_dead_letters}",
        ),
        Check(
            f"late == injected beyond the allowed lateness{copies_term}",
            t.late == t.injected_late + t.late_copies,
            f"{t.late} vs {t.injected_late}{copies}",
        )
        if late_exact
        else Check(
            # A job that was down reads the feed's backlog in bundles behind the
            # watermark: an event sent late may still be on time (and counted).
            f"late <= injected beyond the allowed lateness{copies_term} (the job was stopped)",
            t.late <= t.injected_late + t.late_copies,
            f"{t.late} vs {t.injected_late}{copies}",
        ),
    ]


def _exact(audit: OffsetAudit) -> bool:
    """Every expected offset found once, and nothing else."""
    return (
        audit.missing == audit.unexpected == audit.repeated == 0 and audit.found == audit.expected
    )


def _parquet(folder: pathlib.Path) -> int:
    """Rows of the Parquet files in ``folder``; 0 if none.  Files under a hidden
    folder (Beam's ``.temp-beam-…`` while a write is in flight) are not outputs."""
    files = (
        f
        for f in sorted(folder.rglob("*.parquet"))
        if not any(part.startswith(".") for part in f.relative_to(folder).parts)
    )
    return sum(pq.ParquetFile(f).metadata.num_rows for f in files)


def _final_panes(counts: list[dict], keys: typing.Sequence[str]) -> dict[tuple, dict]:
    """(window start, *keys) → the row of its highest pane, from the aggregate's
    Parquet rows (they hold every pane written)."""
    final: dict[tuple, dict] = {}
    for c in counts:
        window = (c["window_start_ms"], *(c[k] for k in keys))
        if window not in final or c["pane_index"] > final[window]["pane_index"]:
            final[window] = c
    return final


def _rows(folder: pathlib.Path, columns: list[str]) -> list[dict]:
    """``columns`` of every row of the Parquet files in ``folder``."""
    rows: list[dict] = []
    for f in sorted(folder.rglob("*.parquet")):
        rows += pq.read_table(f, columns=columns, partitioning=None).to_pylist()
    return rows


class WindowBalance(typing.NamedTuple):
    unbalanced: int  # (window, group) pairs whose count + late events != events
    off_averages: int  # (window, group) pairs whose averages != their events' means


def window_balance(
    dataset: Dataset, events: list[dict], counts: list[dict], late: typing.Iterable[Coordinate]
) -> WindowBalance:
    """Each (window, group)'s final pane (the highest) against its events.

    ``events`` and ``counts`` are the Parquet rows of the main table and the
    aggregate; windows are fixed, aligned to the epoch, of the length the count rows
    show; an event's window is that of its event-time column.  The count plus the
    window's late events must equal its events; each ``avg_<m>`` must equal the mean
    of ``m`` over the events that are not late (to 1e-9, relative).
    """
    contract = dataset.contract
    agg = contract.aggregate
    keys, count = agg.keys, agg.count_column
    time = contract.column(contract.event_time_field).name
    size = max((c["window_end_ms"] - c["window_start_ms"] for c in counts), default=1)
    final = _final_panes(counts, keys)
    late = set(late)
    per_window: collections.Counter = collections.Counter()
    late_per_window: collections.Counter = collections.Counter()
    sums: dict[tuple, list[float]] = collections.defaultdict(lambda: [0.0] * len(agg.means))
    for e in events:
        window = (e[time] - e[time] % size, *(e[k] for k in keys))
        per_window[window] += 1
        if tuple(e[c] for c in COORDINATE_COLUMNS) in late:
            late_per_window[window] += 1
            continue
        for i, m in enumerate(agg.means):
            sums[window][i] += e[m]
    windows = per_window.keys() | final.keys()
    unbalanced = sum(
        1
        for w in windows
        if (final[w][count] if w in final else 0) + late_per_window[w] != per_window[w]
    )
    off = 0
    for w, row in final.items():
        n = row[count]  # a pane counts at least one event
        if any(
            not math.isclose(row[f"avg_{m}"], total / n, rel_tol=1e-9, abs_tol=1e-9)
            for m, total in zip(agg.means, sums[w], strict=True)
        ):
            off += 1
    return WindowBalance(unbalanced, off)


def count_dead_letter_messages(
    bootstrap_servers: str, topic: str, run_id: str, dataset: str
) -> int:
    """Distinct source records among the run's messages of ``dataset`` on the
    dead-letter ``topic``.

    A Kafka sink is at least once (a retried bundle, or a re-run of the same records,
    writes a message again), so the term counts distinct source coordinates.
    """
    consumer = Consumer(
        client_config(
            bootstrap_servers,
            {
                "group.id": "beamline-reconcile",
                "enable.auto.commit": False,
                "log_level": 0,
            },
        )
    )
    try:
        partitions = consumer.list_topics(topic, timeout=10).topics[topic].partitions
        remaining = {}
        for p in partitions:
            low, high = consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=10)
            if high > low:
                remaining[p] = high
        consumer.assign([TopicPartition(topic, p, OFFSET_BEGINNING) for p in remaining])
        wanted, found = (run_id.encode(), dataset.encode()), set()
        while remaining:
            message = consumer.poll(10)
            if message is None:
                raise RuntimeError(f"reading {topic} stalled with {remaining} left to reach")
            if message.error():
                continue
            headers = dict(message.headers() or [])
            if (
                headers.get(HEADER_PREFIX + "run_id"),
                headers.get(HEADER_PREFIX + "dataset"),
            ) == wanted:
                found.add(
                    tuple(
                        headers.get(HEADER_PREFIX + f"source.{name}")
                        for name in ("topic", "partition", "offset")
                    )
                )
            if message.offset() + 1 >= remaining.get(message.partition(), 0):
                remaining.pop(message.partition(), None)
        return len(found)
    finally:
        consumer.close()


class Gathered(typing.NamedTuple):
    terms: Terms
    audit: OffsetAudit  # the outputs' coordinates
    raw: typing.Optional[OffsetAudit]  # the raw records', where the contract keeps them


def gather(
    dataset: Dataset, run_id: str, report: dict, output_dir: pathlib.Path, settings: StackSettings
) -> Gathered:
    """Reads every term from its source, and the coordinates for the offset audits."""
    run_dir = output_dir / run_id
    contract = dataset.contract
    events, counts = dataset.tables.main.name, dataset.tables.aggregate.name
    agg = contract.aggregate
    id_column, count_column = contract.id_column(), agg.count_column
    time = contract.column(contract.event_time_field).name
    dead, dups = tables.DEAD_LETTERS.name, tables.DUPLICATE_LOG.name
    parquet_events = _rows(
        run_dir / events, [id_column, time, *agg.keys, *agg.means, *COORDINATE_COLUMNS]
    )
    # Every emitted version: a late one may have been replaced since (keep_latest).
    emitted = [tuple(e[c] for c in COORDINATE_COLUMNS) for e in parquet_events]
    parquet_counts = _rows(
        run_dir / counts,
        ["window_start_ms", "window_end_ms", *agg.keys, "pane_index", count_column]
        + [f"avg_{m}" for m in agg.means],
    )
    connection = psycopg2.connect(**settings.psycopg2_kwargs())
    connection.set_session(readonly=True, autocommit=True)
    try:
        with connection.cursor() as cur:
            q = "WHERE run_id = %s"
            # The shared tables: this dataset's rows of the run (its name leads their keys).
            qs, name = "WHERE run_id = %s AND dataset = %s", dataset.name
            valid_unique = scalar(
                cur, f"SELECT count(DISTINCT {id_column}) FROM {events} {q}", run_id
            )
            postgres_events = scalar(cur, f"SELECT count(*) FROM {events} {q}", run_id)
            duplicates = scalar(cur, f"SELECT count(*) FROM {dups} {qs}", run_id, name)
            not_late, is_late = f"{qs} AND stage <> 'late'", f"{qs} AND stage = 'late'"
            dead_letters = scalar(cur, f"SELECT count(*) FROM {dead} {not_late}", run_id, name)
            late = scalar(cur, f"SELECT count(*) FROM {dead} {is_late}", run_id, name)
            gold_total = scalar(cur, f"SELECT sum({count_column}) FROM {counts} {q}", run_id)
            stages = f"SELECT sum(record_count) FROM {tables.STAGE_COUNTS.name} {qs} AND stage = "
            stage_read = scalar(cur, stages + "'read'", run_id, name)
            stage_late = scalar(cur, stages + "'late'", run_id, name)
            child_items = sum(
                scalar(
                    cur,
                    f"SELECT sum(jsonb_array_length(payload -> '{child.path}')) FROM {events} {q}",
                    run_id,
                )
                for child in contract.children
            )
            postgres_children = sum(
                scalar(cur, f"SELECT count(*) FROM {t.name} {q}", run_id)
                for t in dataset.tables.children
            )
            columns = "SELECT kafka_topic, kafka_partition, kafka_offset FROM"

            def coordinates(table: str, where: str, *params) -> list[Coordinate]:
                cur.execute(f"{columns} {table} {where}", params)
                return [(t, int(p), int(o)) for t, p, o in cur.fetchall()]

            late_seen = coordinates(dead, is_late, run_id, name)
            duplicate_seen = coordinates(dups, qs, run_id, name)
            event_seen = coordinates(events, q, run_id)
            # A late record in no events row nor the duplicate log: a copy that came
            # after its id's dedup TTL, whose id's row the first copy keeps.
            kept = set(event_seen) | set(duplicate_seen)
            late_copies = [c for c in late_seen if c not in kept]
            seen = (
                event_seen
                + coordinates(dead, not_late, run_id, name)
                + duplicate_seen
                + late_copies
            )
            copied = set(late_copies)
            copy_ids = [
                e[id_column] for e, at in zip(parquet_events, emitted, strict=True) if at in copied
            ]
            late_copy_items = sum(
                scalar(
                    cur,
                    f"SELECT sum(jsonb_array_length(payload -> '{child.path}')) FROM {events} "
                    f"{q} AND {id_column} = ANY(%s)",
                    run_id,
                    copy_ids,
                )
                for child in contract.children
                if copy_ids
            )
    finally:
        connection.close()
    emitted_set = set(emitted)
    raw_coordinates = (
        [
            (r["topic"], r["partition"], r["offset"])
            for r in _rows(run_dir / contract.raw_output, ["topic", "partition", "offset"])
        ]
        if contract.raw_output
        else []
    )
    injected = report["injected"]
    balance = window_balance(dataset, parquet_events, parquet_counts, late_seen)
    terms = Terms(
        produced=sum(int(n) for n in report["produced"].values()),
        valid_unique=valid_unique,
        postgres_events=postgres_events,
        parquet_events=len(parquet_events),
        duplicates=duplicates,
        dead_letters=dead_letters,
        parquet_dead_letters=_parquet(run_dir / "dead_letters"),
        kafka_dead_letters=count_dead_letter_messages(
            settings.kafka_bootstrap_servers, DEAD_LETTER_TOPIC, run_id, dataset.name
        ),
        gold_total=gold_total,
        parquet_gold_total=sum(
            row[count_column] for row in _final_panes(parquet_counts, agg.keys).values()
        ),
        injected_duplicates=int(injected["duplicates"]),
        injected_dead_letters=int(injected["malformed"]) + int(injected["invalid"]),
        late=late,
        unbalanced_windows=balance.unbalanced,
        stage_read=stage_read,
        stage_late=stage_late,
        injected_late=int(injected.get("late", 0)),
        superseded=sum(1 for c in duplicate_seen if c in emitted_set),
        injected_replaced=int(injected.get("replaced", 0)),
        off_averages=balance.off_averages,
        parquet_raw=len(raw_coordinates),
        child_items=child_items,
        postgres_children=postgres_children,
        parquet_children=sum(_parquet(run_dir / t.name) for t in dataset.tables.children),
        late_copies=len(late_copies),
        late_copy_items=late_copy_items,
        injected_late_copies=int(injected.get("late_copies", 0)),
    )
    before, after = report["offsets_before"], report["offsets_after"]
    ranges = {int(p): (int(before.get(p, 0)), int(end)) for p, end in after.items()}
    topic = report["topic"]
    return Gathered(
        terms,
        audit_offsets(topic, ranges, seen, late_seen, emitted),
        audit_offsets(topic, ranges, raw_coordinates) if contract.raw_output else None,
    )


def render(
    dataset: Dataset,
    run_id: str,
    terms: Terms,
    results: list[Check],
    extra: dict | None = None,
) -> str:
    """The table a person reads; its last line is one JSON object for machines."""
    sources = _sources(dataset)
    contract = dataset.contract
    # Terms of outputs this dataset does not have stay in the JSON line, not the table.
    absent = {
        "off_averages": not contract.aggregate.means,
        "parquet_raw": not contract.raw_output,
        "child_items": not contract.children,
        "postgres_children": not contract.children,
        "parquet_children": not contract.children,
        # Late copies come only when the producer sent some (or the run found some).
        "late_copies": not (terms.late_copies or terms.injected_late_copies),
        "late_copy_items": not (terms.late_copies and contract.children),
        "injected_late_copies": not (terms.late_copies or terms.injected_late_copies),
    }
    lines = [
        f"Reconciliation of run {run_id} ({dataset.name})",
        "",
        f"  {'term':<22} {'value':>9}  source",
    ]
    for name, value in dataclasses.asdict(terms).items():
        if absent.get(name):
            continue
        lines.append(f"  {name:<22} {value:>9,}  {sources[name]}")
    width = max([70, *(len(c.name) for c in results)])
    lines += ["", f"  {'check':<{width}} result"]
    for check in results:
        verdict = "PASS" if check.passed else "FAIL"
        lines.append(f"  {check.name:<{width}} {verdict}  {check.detail}")
    passed = all(c.passed for c in results)
    lines += ["", f"  {'all checks pass' if passed else 'RECONCILIATION FAILED'}"]
    summary = {
        "run_id": run_id,
        "dataset": dataset.name,
        **(extra or {}),
        "terms": dataclasses.asdict(terms),
        "checks": {c.name: c.passed for c in results},
        "passed": passed,
    }
    lines.append(json.dumps(summary, separators=(",", ":")))
    return "\n".join(lines)


def reconcile(
    dataset: Dataset,
    run_id: str,
    report: dict,
    output_dir: pathlib.Path,
    settings: StackSettings,
    late_exact: bool = True,
) -> tuple[Terms, list[Check]]:
    terms, audit, raw = gather(dataset, run_id, report, output_dir, settings)
    contract = dataset.contract
    return terms, checks(
        terms, audit, contract.aggregate.means, raw, bool(contract.children), late_exact
    )


def main(argv=None) -> int:
    settings = StackSettings.from_env()
    parser = argparse.ArgumentParser(
        prog="python -m tools.reconcile",
        description="Reconcile one run from its sinks; exit 1 if any check fails.",
    )
    parser.add_argument("--run_id", type=run_id_argument, required=True)
    parser.add_argument("--output_dir", default=str(settings.home / "output"))
    parser.add_argument(
        "--report",
        default=None,
        help=f"the producer's report (default: <output>/<run>/{REPORT_NAME})",
    )
    args = parser.parse_args(argv)
    output_dir = pathlib.Path(args.output_dir).resolve()
    report_path = pathlib.Path(args.report or output_dir / args.run_id / REPORT_NAME)
    try:
        report = json.loads(report_path.read_text())
    except FileNotFoundError:
        print(f"beamline: error: no producer report at {report_path}", file=sys.stderr)
        return 2
    dataset = datasets.get(report.get("dataset", datasets.DEFAULT))
    terms, results = reconcile(dataset, args.run_id, report, output_dir, settings)
    print(render(dataset, args.run_id, terms, results))
    return 0 if all(c.passed for c in results) else 1


if __name__ == "__main__":
    sys.exit(main())
