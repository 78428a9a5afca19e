"""The upserts' guards, run against the real PostgreSQL tables: the counts only move
forward, and an event's row belongs to the copy that wrote it first.

The per-row upsert binds the statement positionally with ``?``; here psycopg2 binds
the same text with ``%s``, so the SQL that PostgreSQL runs is the pipeline's own.
Each row is written both ways: by that upsert, and as a one-row batch COPYed and
merged as the batched writer does (``schemas.sql.merge_statements``).
"""

import io
import uuid

import pytest

from datasets.customer_events import DATASET, CustomerEventCountsRow
from schemas.sql import (
    copy_statement,
    merge_statements,
    staging_ddl,
    table_upsert,
    upsert_statement,
)
from transforms.sinks import csv_rows

pytestmark = pytest.mark.integration


@pytest.fixture(params=["upsert", "merge"])
def way(request):
    return request.param


def _write(pg, row, table=DATASET.tables.aggregate, way="upsert"):
    with pg.cursor() as cur:
        if way == "upsert":
            cur.execute(table_upsert(table).replace("?", "%s"), tuple(row))
            return
        cur.execute(staging_ddl(table))
        cur.execute("BEGIN")  # the staging table empties at every commit
        cur.copy_expert(copy_statement(table), io.BytesIO(csv_rows([row], table.row_type)))
        for statement in merge_statements(table):
            cur.execute(statement)
        cur.execute("COMMIT")


def _stored(pg, run_id):
    with pg.cursor() as cur:
        cur.execute(
            "SELECT event_count, pane_index, pane_timing FROM customer_event_counts "
            "WHERE run_id = %s",
            (run_id,),
        )
        return cur.fetchall()


def test_a_retried_earlier_pane_never_overwrites_a_later_one(pg, way):
    run_id = f"guard-{uuid.uuid4().hex[:8]}"

    def pane(count, index, timing):
        return CustomerEventCountsRow(0, 60_000, "search", count, index, timing, run_id)

    _write(pg, pane(5, 0, "on_time"), way=way)
    _write(pg, pane(7, 2, "late"), way=way)
    assert _stored(pg, run_id) == [(7, 2, "late")]
    _write(pg, pane(6, 1, "late"), way=way)  # pane 1 retried after pane 2 landed: refused
    _write(pg, pane(5, 0, "on_time"), way=way)  # and the on-time pane again: refused
    assert _stored(pg, run_id) == [(7, 2, "late")]
    _write(pg, pane(7, 2, "late"), way=way)  # the same pane again: idempotent
    _write(pg, pane(8, 3, "late"), way=way)  # a later pane: accepted
    assert _stored(pg, run_id) == [(8, 3, "late")]


def test_a_restored_pane_with_the_larger_count_wins_whatever_its_index(pg):
    # Run c82680a3d90c, window 1796669380000 content_play: before the TaskManager was
    # killed the job wrote pane 0 (on time) and pane 1 (late); restored from a
    # checkpoint taken before pane 0, it read the window's events again and fired
    # pane 0 with all of them.  A window's count only grows, so that is the last pane.
    table = DATASET.tables.aggregate
    sequence = [(564, 0, "on_time"), (565, 1, "late"), (569, 0, "on_time")]

    def stored_after(sql):
        run_id = f"restore-{uuid.uuid4().hex[:8]}"
        with pg.cursor() as cur:
            for count, index, timing in sequence:
                row = CustomerEventCountsRow(
                    1_796_669_380_000,
                    1_796_669_390_000,
                    "content_play",
                    count,
                    index,
                    timing,
                    run_id,
                )
                cur.execute(sql.replace("?", "%s"), tuple(row))
        return _stored(pg, run_id)

    assert stored_after(table_upsert(table)) == [(569, 0, "on_time")]
    # The guard on the pane index alone (before issue 23) kept the smaller count.
    by_index = upsert_statement(
        table.name, table.row_type, table.key_columns, forward_only="pane_index"
    )
    assert stored_after(by_index) == [(565, 1, "late")]


def test_a_later_copy_of_an_event_never_replaces_the_first_within_a_run(pg, way):
    # A copy that came after its id's dedup TTL is late, and written like every event
    # (docs/pipeline.md, Dedup after its TTL): the row stays the first copy's.  The first
    # copy itself (a retried bundle, a re-run) rewrites it, and so does another run.
    table = DATASET.tables.main
    run_id = f"copy-{uuid.uuid4().hex[:8]}"
    row = _event_row(run_id)
    _write(pg, row, table, way)
    _write(pg, row._replace(kafka_partition=2, kafka_offset=99, device_type="copy"), table, way)
    assert _event(pg, row.event_id) == (0, 7, run_id, "first")
    _write(pg, row._replace(device_type="retried"), table, way)  # the same record: rewritten
    assert _event(pg, row.event_id) == (0, 7, run_id, "retried")
    other = f"other-{uuid.uuid4().hex[:8]}"  # a replay under another run id: its own
    _write(pg, row._replace(run_id=other, kafka_offset=99, device_type="replay"), table, way)
    assert _event(pg, row.event_id) == (0, 99, other, "replay")


def _event_row(run_id):
    """A customer event row as the graph builds it (values only need to fit)."""
    return DATASET.tables.main.row_type(
        event_id=f"{run_id}-e1",
        user_id="u-1",
        event_type="play",
        event_time_ms=1_795_323_600_000,
        device_type="first",
        country="Iceland",
        content_id="c-1",
        subscription_plan="Basic",
        payload="{}",
        kafka_topic="customer_events",
        kafka_partition=0,
        kafka_offset=7,
        kafka_timestamp_ms=1_795_323_600_000,
        run_id=run_id,
    )


def _event(pg, event_id):
    with pg.cursor() as cur:
        cur.execute(
            "SELECT kafka_partition, kafka_offset, run_id, device_type FROM customer_events "
            "WHERE event_id = %s",
            (event_id,),
        )
        return cur.fetchone()
