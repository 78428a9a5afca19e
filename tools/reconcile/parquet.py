"""The one way the reconciliation lists and reads a run's Parquet files.

An output folder (``<output>/<run>/<table>/``) holds the files its writes have
finished, possibly under partition folders (``hour=…``).  While a write is in
flight Beam stages its files under a hidden folder (``.temp-beam-…``); those are
not outputs yet, and a file under any hidden folder is skipped.  Every reader of a
run's Parquet goes through :func:`parquet_files`, so two terms read from the same
folder always see the same files.
"""

from __future__ import annotations

import pathlib

import pyarrow.parquet as pq

__all__ = ["parquet_files", "parquet_row_count", "parquet_rows"]


def parquet_files(folder: pathlib.Path) -> list[pathlib.Path]:
    """The finished Parquet files under ``folder``, sorted; none if it is absent."""
    return [
        f
        for f in sorted(folder.rglob("*.parquet"))
        if not any(part.startswith(".") for part in f.relative_to(folder).parts)
    ]


def parquet_row_count(folder: pathlib.Path) -> int:
    """Rows of the finished Parquet files under ``folder`` (from their footers); 0 if none."""
    return sum(pq.ParquetFile(f).metadata.num_rows for f in parquet_files(folder))


def parquet_rows(folder: pathlib.Path, columns: list[str]) -> list[dict]:
    """``columns`` of every row of the finished Parquet files under ``folder``, file by
    file in path order.  Partition folders add no columns."""
    rows: list[dict] = []
    for f in parquet_files(folder):
        rows += pq.read_table(f, columns=columns, partitioning=None).to_pylist()
    return rows
