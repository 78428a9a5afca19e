"""When a measured run reached each of its moments: the probes the bench samples.

- the job visible (``job_visible_probe``): on a Flink cluster, once the job is listed
  in the JobManager's REST API (``/jobs/overview``, by the name the driver gives it);
  on the other runners, once the driver logs that the runner has the job
  (``beam_pipeline.driver.job_started_line``);
- the first row (``FirstRow``): whether the run has a row yet in any of its
  PostgreSQL tables, one ``EXISTS`` per table, each read by run through the index or
  key that serves it (``schemas.tables.RUN_READ``, ``SHARED_RUN_READ``): an index
  probe per table, not a scan of every run's rows, so that probing every 0.5 s costs
  PostgreSQL next to nothing;
- the last row (``last_row_at``, once the run has ended): the newest ``written_at``
  of the run's rows, PostgreSQL's clock when the row was inserted (an upsert that
  later updates a row, such as a later pane of a window, leaves it as it was).
"""

from __future__ import annotations

import pathlib
import typing

import psycopg2

from beam_pipeline import flink_cluster
from beam_pipeline.driver import job_started_line
from beam_pipeline.progress import read_only_cursor
from beam_pipeline.runners import flink_cluster_master
from beam_pipeline.settings import StackSettings
from schemas import tables
from schemas.dataset import Dataset

__all__ = [
    "ClusterJob",
    "FirstRow",
    "LogLine",
    "first_row_sql",
    "job_visible_probe",
    "last_row_at",
    "last_row_sql",
    "run_reads",
]


def job_visible_probe(
    command: typing.Sequence[str], run_id: str, log_path: pathlib.Path
) -> typing.Callable[[], bool]:
    """Whether the job of ``command`` (``python -m run …`` for ``run_id``, its output
    in ``log_path``) is visible yet: in the cluster's REST API when the command names
    a Flink cluster (``--flink_master=host:port``), else by the driver's line."""
    master = flink_cluster_master(list(command))
    if master is not None:
        return ClusterJob(master, flink_cluster.job_name(run_id))
    return LogLine(log_path, job_started_line(run_id))


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


def last_row_sql(dataset: Dataset) -> str:
    """``SELECT greatest((SELECT max(written_at) FROM … WHERE …), …)``: when the run's
    newest row was inserted (NULL: no row).  Parameters ``run_id`` and ``dataset``."""
    newest = ", ".join(
        f"(SELECT max(written_at) FROM {table.name} WHERE {_where(read)})"
        for table, read in run_reads(dataset)
    )
    return f"SELECT greatest({newest})"


def last_row_at(settings: StackSettings, dataset: Dataset, run_id: str) -> float | None:
    """When the run's newest row was inserted, in seconds since the epoch (the same
    host's clock as ``time.time()``); None when the run has no row."""
    with read_only_cursor(settings) as cur:
        cur.execute(last_row_sql(dataset), {"run_id": run_id, "dataset": dataset.name})
        newest = cur.fetchone()[0]
    return None if newest is None else newest.timestamp()


class LogLine:
    """Whether the file at ``path``, which a process is writing, holds ``text`` yet:
    each call reads only what was added since the last one."""

    def __init__(self, path: pathlib.Path, text: str):
        self._path = pathlib.Path(path)
        self._needle = text.encode()
        self._offset = 0
        self._carry = b""  # the end of the last read, for a line split between reads

    def __call__(self) -> bool:
        try:
            with self._path.open("rb") as f:
                f.seek(self._offset)
                added = f.read()
        except OSError:
            return False
        self._offset += len(added)
        seen = self._carry + added
        if self._needle in seen:
            return True
        self._carry = seen[len(seen) - len(self._needle) + 1 :]
        return False


class ClusterJob:
    """Whether the Flink cluster at ``master`` lists a job named ``name``, in any
    state, in its REST API (``/jobs/overview``)."""

    def __init__(self, master: str, name: str):
        self._master = master
        self._name = name

    def __call__(self) -> bool:
        try:
            return bool(flink_cluster.jobs_named(self._master, self._name))
        except (OSError, ValueError, KeyError):  # the REST API is down or not yet up
            return False
