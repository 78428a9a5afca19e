"""When a measured run reached each of its moments: the probes the bench samples.

``FirstRow``: whether the run has a row yet in any of its PostgreSQL tables, one
``EXISTS`` per table, each read by run through the index or key that serves it
(``schemas.tables.RUN_READ``, ``SHARED_RUN_READ``): an index probe per table, not a
scan of every run's rows, so that probing every 0.5 s costs PostgreSQL next to
nothing.
"""

from __future__ import annotations

import psycopg2

from beam_pipeline.settings import StackSettings
from schemas import tables
from schemas.dataset import Dataset

__all__ = ["FirstRow", "first_row_sql", "run_reads"]


def run_reads(dataset: Dataset) -> list[tuple[tables.Table, tuple[str, ...]]]:
    """Each PostgreSQL table a run of ``dataset`` writes, with the columns a read of
    the run's rows names: the dataset's tables by run, the shared ones by run and
    dataset (their rows of other datasets are not this run's)."""
    return [
        *((t, tables.RUN_READ) for t in dataset.tables.all()),
        *((t, tables.SHARED_RUN_READ) for t in tables.SHARED),
    ]


def _where(read: tuple[str, ...]) -> str:
    """``run_id = %(run_id)s AND …``: a read's columns as named parameters."""
    return " AND ".join(f"{column} = %({column})s" for column in read)


def first_row_sql(dataset: Dataset) -> str:
    """``SELECT EXISTS (…) OR …``: whether the run has a row in any of its tables.
    Parameters ``run_id`` and ``dataset``."""
    return "SELECT " + " OR ".join(
        f"EXISTS (SELECT 1 FROM {table.name} WHERE {_where(read)})"
        for table, read in run_reads(dataset)
    )


class FirstRow:
    """Whether the run has any row yet in any of the dataset's PostgreSQL tables
    (``first_row_sql``), on a read-only session kept open between calls."""

    def __init__(self, settings: StackSettings, dataset: Dataset, run_id: str):
        self._sql = first_row_sql(dataset)
        self._params = {"run_id": run_id, "dataset": dataset.name}
        self._connection = psycopg2.connect(**settings.psycopg2_kwargs())
        self._connection.set_session(readonly=True, autocommit=True)

    def __call__(self) -> bool:
        with self._connection.cursor() as cur:
            cur.execute(self._sql, self._params)
            return bool(cur.fetchone()[0])

    def close(self) -> None:
        self._connection.close()
