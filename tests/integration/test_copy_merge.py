"""The batched writer's SQL against the real PostgreSQL: a batch COPYed into its
staging table and merged leaves a table exactly as today's per-row upserts, run one
by one in the batch's order, leave its twin.

Each example draws the rows already stored (written row by row into both), then a
row sequence (few keys, so keys repeat; equal and rising panes; several
coordinates of one id; two run ids), cuts it into batches and the batches into
flushes (one transaction each, as the Java writer commits them), and compares every
column but ``written_at`` after each flush.  The tables are temporary copies of the
pipeline's (``LIKE … INCLUDING ALL``): nothing is written to the real ones.
"""

import dataclasses
import io
import json
import typing

import psycopg2
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from datasets.customer_events import DATASET as CUSTOMER_EVENTS
from datasets.customers import DATASET as CUSTOMERS
from schemas import tables
from schemas.records import COORDINATE_COLUMNS
from schemas.row_types import unwrap_optional
from schemas.sql import copy_statement, merge_statements, staging_ddl, table_upsert
from transforms.sinks import csv_rows

pytestmark = pytest.mark.integration

KINDS = {
    "first_copy_only": CUSTOMER_EVENTS.tables.main,
    "keep_latest": CUSTOMERS.tables.main,
    "aggregate": CUSTOMER_EVENTS.tables.aggregate,
    "stage_counts": tables.STAGE_COUNTS,
    "child_no_guard": CUSTOMER_EVENTS.tables.children[0],
    "dead_letters_no_guard": tables.DEAD_LETTERS,
}

# Text PostgreSQL stores as given: no NUL (conform refuses it), no lone surrogate.
_TEXT = st.text(
    st.characters(exclude_categories=("Cs",), exclude_characters="\x00"), max_size=12
) | st.sampled_from(["", "\\.", '"', "a,b", "x\ny", "\r\n", "\\x00", "NULL"])
_JSON = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**53), 2**53) | _TEXT,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(_TEXT, inner, max_size=3),
    max_leaves=6,
).map(lambda v: json.dumps({"v": v}))
_FLOAT = st.floats(allow_nan=False, allow_infinity=False)


def _field_strategy(table, name, tp):
    """Few values where a column decides which rows meet (keys, guards, runs,
    coordinates); any value elsewhere."""
    base, nullable = unwrap_optional(tp)
    decisive = (
        name in table.key_columns
        or name in table.forward_only
        or name == "run_id"
        or name in COORDINATE_COLUMNS
    )
    if decisive:
        if name == "run_id":
            strategy = st.sampled_from(["run-a", "run-b"])
        elif name == "kafka_topic":  # 4 coordinates in all: a copy often repeats one
            strategy = st.just("t")
        elif base is str:
            strategy = st.sampled_from(["k1", "k2"])
        elif name in COORDINATE_COLUMNS:
            strategy = st.integers(0, 1)
        else:
            strategy = st.integers(0, 2)
    elif name in table.casts or table.sql_types.get(name) == "jsonb":
        strategy = _JSON
    elif base is str:
        strategy = _TEXT
    elif name in table.generated_times:  # a timestamptz beside it: years 1970-2100
        strategy = st.integers(0, 4_102_444_800_000)
    elif base is int:
        small = table.sql_types.get(name) == "integer"
        strategy = st.integers(-(2**31), 2**31 - 1) if small else st.integers(-(2**63), 2**63 - 1)
    elif base is float:
        strategy = _FLOAT
    elif base is bool:
        strategy = st.booleans()
    elif base is bytes:
        strategy = st.binary(max_size=8)
    else:
        raise TypeError(f"{table.name}.{name}: no strategy for {tp!r}")
    return st.none() | strategy if nullable else strategy


def _rows(table):
    hints = typing.get_type_hints(table.row_type)
    fields = {name: _field_strategy(table, name, tp) for name, tp in hints.items()}
    return st.builds(table.row_type, **fields)


@st.composite
def _flushes(draw, table):
    """Rows in order, cut into batches, the batches into flushes."""
    rows = draw(st.lists(_rows(table), min_size=1, max_size=24))
    cuts = sorted(draw(st.sets(st.integers(1, len(rows) - 1), max_size=6))) if len(rows) > 1 else []
    batches = [rows[a:b] for a, b in zip([0, *cuts], [*cuts, len(rows)], strict=True)]
    groups = draw(st.sets(st.integers(1, len(batches) - 1), max_size=4)) if len(batches) > 1 else ()
    ends = sorted(groups)
    return [batches[a:b] for a, b in zip([0, *ends], [*ends, len(batches)], strict=True)]


@pytest.fixture(scope="module")
def conn(stack):
    connection = psycopg2.connect(**stack.psycopg2_kwargs(writer=True))
    yield connection
    connection.close()


def _twins(conn, table):
    """Two empty temporary copies of ``table``: the merge's, and the per-row upserts'."""
    merged = dataclasses.replace(table, name=f"merged_{table.name}")
    upserted = dataclasses.replace(table, name=f"upserted_{table.name}")
    conn.rollback()  # after a failed example
    with conn.cursor() as cur:
        for twin in (merged, upserted):
            cur.execute(
                f"CREATE TEMP TABLE IF NOT EXISTS {twin.name} (LIKE {table.name} INCLUDING ALL)"
            )
            cur.execute(f"DELETE FROM {twin.name}")
        cur.execute(staging_ddl(merged))
    conn.commit()
    return merged, upserted


def _contents(conn, table):
    with conn.cursor() as cur:
        cur.execute(
            "SELECT column_name FROM information_schema.columns "
            "WHERE table_name = %s AND column_name <> 'written_at' ORDER BY ordinal_position",
            (table.name,),
        )
        columns = ", ".join(c for (c,) in cur.fetchall())
        key = ", ".join(table.key_columns)
        cur.execute(f"SELECT {columns} FROM {table.name} ORDER BY {key}")
        rows = cur.fetchall()
    conn.commit()
    return [tuple(bytes(v) if isinstance(v, memoryview) else v for v in row) for row in rows]


def _merge(conn, table, flush):
    """One flush as the Java writer runs it: COPY every batch, merge, commit."""
    with conn.cursor() as cur:
        for batch in flush:
            cur.copy_expert(copy_statement(table), io.BytesIO(csv_rows(batch, table.row_type)))
        for statement in merge_statements(table):
            cur.execute(statement)
    conn.commit()


def _upsert(conn, table, rows):
    statement = table_upsert(table).replace("?", "%s")
    with conn.cursor() as cur:
        for row in rows:
            cur.execute(
                statement, tuple(psycopg2.Binary(v) if isinstance(v, bytes) else v for v in row)
            )
    conn.commit()


@pytest.mark.parametrize("kind", sorted(KINDS))
def test_batches_merged_leave_what_upserts_row_by_row_leave(conn, kind):
    table = KINDS[kind]

    @settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
    @given(st.lists(_rows(table), max_size=4), _flushes(table))
    def check(stored, flushes):
        merged, upserted = _twins(conn, table)
        for twin in (merged, upserted):  # what earlier writes left
            _upsert(conn, twin, stored)
        for flush in flushes:
            _merge(conn, merged, flush)
            _upsert(conn, upserted, [row for batch in flush for row in batch])
            assert _contents(conn, merged) == _contents(conn, upserted)

    check()


def _event(run, offset, device="d"):
    return _EVENT._replace(run_id=run, kafka_offset=offset, device_type=device)


_EVENT = CUSTOMER_EVENTS.tables.main.row_type(
    "e1", "u", "play", 0, "d", "IS", "c", "Basic", "{}", "t", 0, 0, 0, "run-a"
)


@pytest.mark.parametrize(
    "stored, batch, kept",
    [
        # Another run in between: the last run's first copy replaces a row of that run.
        ([_event("run-a", 7)], [_event("run-b", 1), _event("run-a", 9)], ("run-a", 9, "d")),
        # One run, the stored row's: only its own record (retried) rewrites it.
        (
            [_event("run-a", 7)],
            [_event("run-a", 9), _event("run-a", 7, "retried")],
            ("run-a", 7, "retried"),
        ),
        ([_event("run-a", 7)], [_event("run-a", 9)], ("run-a", 7, "d")),
        # Nothing stored: the batch's first copy, as last rewritten by its own record.
        (
            [],
            [_event("run-a", 1), _event("run-a", 2), _event("run-a", 1, "again")],
            ("run-a", 1, "again"),
        ),
        # A stored row of another run: the batch's first copy wins.
        ([_event("run-b", 7)], [_event("run-a", 3), _event("run-a", 4)], ("run-a", 3, "d")),
    ],
)
def test_first_copy_only_merges_keep_the_copy_sequential_upserts_keep(conn, stored, batch, kept):
    table = CUSTOMER_EVENTS.tables.main
    merged, upserted = _twins(conn, table)
    _upsert(conn, merged, stored)
    _merge(conn, merged, [batch])
    _upsert(conn, upserted, stored + batch)
    with conn.cursor() as cur:
        cur.execute(f"SELECT run_id, kafka_offset, device_type FROM {merged.name}")
        assert cur.fetchall() == [kept]
    conn.commit()
    assert _contents(conn, merged) == _contents(conn, upserted)


def test_copy_reads_back_every_value_as_python_wrote_it(conn):
    table = tables.DEAD_LETTERS
    merged, _ = _twins(conn, table)
    tricky = ["", "\\.", 'a "quoted", text', "two\nlines\r\n", "ünï 😀", "\\x41", "NULL", " "]
    rows = [
        tables.DEAD_LETTERS.row_type(
            "stage", "reason", text, raw, text, "t", 0, offset, -1, key, "run", "v", "ds"
        )
        for offset, (text, raw, key) in enumerate(
            zip(
                tricky,
                [b"", b"\x00\xff", None, b"\\.", b'"', b"\n", b"x", b"\r"],
                [None, b""] * 4,
                strict=True,
            )
        )
    ]
    _merge(conn, merged, [rows])
    stored = _contents(conn, merged)
    assert [(r[2], r[3], r[4], r[9]) for r in stored] == [
        (r.detail, r.payload, r.preview, r.kafka_key) for r in rows
    ]


def test_doubles_booleans_and_json_round_trip_exactly(conn):
    table = CUSTOMERS.tables.main
    merged, upserted = _twins(conn, table)
    charges = [0.1, 1 / 3, -0.0, 5e-324, 1.7976931348623157e308, 1e16, 123456.789]
    row = table.row_type(**{name: _example(name) for name in table.row_type._fields})
    rows = [
        row._replace(
            customer_id=f"c{i}",
            monthly_charges=c,
            total_charges=None if i % 2 else -c,
            senior_citizen=bool(i % 2),
            payload=json.dumps({"n": c, "s": 'é\\"', "b": [True, None]}),
        )
        for i, c in enumerate(charges)
    ]
    _merge(conn, merged, [rows])
    _upsert(conn, upserted, rows)
    assert _contents(conn, merged) == _contents(conn, upserted)
    with conn.cursor() as cur:
        cur.execute(
            f"SELECT monthly_charges, senior_citizen FROM {merged.name} ORDER BY customer_id"
        )
        assert cur.fetchall() == [(r.monthly_charges, r.senior_citizen) for r in rows]
    conn.commit()


def _example(name):
    hints = typing.get_type_hints(CUSTOMERS.tables.main.row_type)
    base, _ = unwrap_optional(hints[name])
    return {str: "x", int: 1, float: 1.0, bool: False}[base]
