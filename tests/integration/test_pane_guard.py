"""The counts upsert only moves forward, run against the real PostgreSQL table.

The Java writer binds the statement positionally with ``?``; here psycopg2 binds
the same text with ``%s``, so the SQL that PostgreSQL runs is the pipeline's own.
"""

import uuid

import pytest

from datasets.customer_events import DATASET, CustomerEventCountsRow
from transforms.sinks import upsert_statement

pytestmark = pytest.mark.integration


def _write(pg, row):
    table = DATASET.tables.aggregate
    sql = upsert_statement(
        table.name, table.row_type, table.key_columns, table.casts, table.forward_only
    )
    with pg.cursor() as cur:
        cur.execute(sql.replace("?", "%s"), tuple(row))


def _stored(pg, run_id):
    with pg.cursor() as cur:
        cur.execute(
            "SELECT event_count, pane_index, pane_timing FROM customer_event_counts "
            "WHERE run_id = %s",
            (run_id,),
        )
        return cur.fetchall()


def test_a_retried_earlier_pane_never_overwrites_a_later_one(pg):
    run_id = f"guard-{uuid.uuid4().hex[:8]}"

    def pane(count, index, timing):
        return CustomerEventCountsRow(0, 60_000, "search", count, index, timing, run_id)

    _write(pg, pane(5, 0, "on_time"))
    _write(pg, pane(7, 2, "late"))
    assert _stored(pg, run_id) == [(7, 2, "late")]
    _write(pg, pane(6, 1, "late"))  # pane 1 retried after pane 2 landed: refused
    _write(pg, pane(5, 0, "on_time"))  # and the on-time pane again: refused
    assert _stored(pg, run_id) == [(7, 2, "late")]
    _write(pg, pane(7, 2, "late"))  # the same pane again: idempotent
    _write(pg, pane(8, 3, "late"))  # a later pane: accepted
    assert _stored(pg, run_id) == [(8, 3, "late")]
