"""What a running job has written so far: the numbers of its progress line.

Read from the PostgreSQL tables by run id (Prism and Flink report counters only when
a job ends).  Part of the job; the reconciliation reads the same way.
"""

from __future__ import annotations

import contextlib
import typing

import psycopg2

from beam_pipeline.settings import StackSettings
from schemas import tables
from schemas.dataset import Dataset
from transforms.aggregate import LATE_STAGE

__all__ = ["read_only_cursor", "rows_so_far", "scalar"]


def rows_so_far(settings: StackSettings, dataset: Dataset, run_id: str) -> dict[str, int]:
    """Rows the run has in each PostgreSQL output now: a progress line's numbers."""
    main, aggregate = dataset.tables.main.name, dataset.tables.aggregate
    count = dataset.contract.aggregate.count_column
    own, shared = (run_id,), (run_id, dataset.name)  # the shared tables: this dataset's rows
    dead, dups = tables.DEAD_LETTERS.name, tables.DUPLICATE_LOG.name
    queries = {
        "events": (f"SELECT count(*) FROM {main} WHERE run_id = %s", own),
        "dead_letters": (f"SELECT count(*) FROM {dead} WHERE run_id = %s AND dataset = %s", shared),
        "late": (
            f"SELECT count(*) FROM {dead} WHERE run_id = %s AND dataset = %s AND stage = %s",
            (*shared, LATE_STAGE),
        ),
        "duplicates": (f"SELECT count(*) FROM {dups} WHERE run_id = %s AND dataset = %s", shared),
        "windowed": (f"SELECT sum({count}) FROM {aggregate.name} WHERE run_id = %s", own),
    }
    with read_only_cursor(settings) as cur:
        return {name: scalar(cur, sql, *params) for name, (sql, params) in queries.items()}


@contextlib.contextmanager
def read_only_cursor(settings: StackSettings) -> typing.Iterator:
    """A cursor on a read-only, autocommit session as the owner role; the connection
    is closed after."""
    connection = psycopg2.connect(**settings.psycopg2_kwargs())
    connection.set_session(readonly=True, autocommit=True)
    try:
        with connection.cursor() as cur:
            yield cur
    finally:
        connection.close()


def scalar(cursor, sql: str, *params) -> int:
    """The one value ``sql`` selects with ``params`` (0 for NULL)."""
    cursor.execute(sql, params)
    return int(cursor.fetchone()[0] or 0)
