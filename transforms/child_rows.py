"""A kept event's arrays out to their child tables' rows."""

from __future__ import annotations

import typing

import apache_beam as beam

from transforms.decode import loads

__all__ = ["ExplodeChildRows"]

# (the normalised event, run_id) → {child table: its rows}: a contract's RowBuilder.child_rows
ChildRows = typing.Callable[[dict, str], typing.Mapping[str, typing.Sequence]]


class ExplodeChildRows(beam.PTransform):
    """Main-table rows → one PCollection per child table, the items of their arrays.

    Input: main-table rows whose ``payload`` is the normalised event as JSON (as
    ``NormaliseEvents`` writes it).  Output: a dict from each child table of
    ``row_types`` to a PCollection of that table's row type, typed with it; each
    input row yields the rows ``child_rows`` makes of its event, in no particular
    order across tables.  A payload that is not JSON fails the bundle: the payload
    was written by this pipeline, so that is a bug, not bad data.

    Args:
        child_rows: The event and the run id → the rows of each child table.
        row_types: Child table → its row type (``Contract.child_row_types()``); not
            empty.
        run_id: Passed to ``child_rows``.
    """

    def __init__(self, child_rows: ChildRows, row_types: typing.Mapping[str, type], run_id: str):
        super().__init__()
        if not row_types:
            raise ValueError("row_types must name at least one child table")
        self._child_rows = child_rows
        self._row_types = dict(row_types)
        self._run_id = run_id

    def expand(self, rows):
        fanned = rows | "ToChildRows" >> beam.ParDo(
            _ChildRowsFn(self._child_rows, self._run_id)
        ).with_outputs(*self._row_types)
        return {
            table: fanned[table]
            | f"As{row_type.__name__}" >> beam.Map(lambda r: r).with_output_types(row_type)
            for table, row_type in self._row_types.items()
        }


class _ChildRowsFn(beam.DoFn):
    """A kept event's row → its child rows, each to its table's tagged output."""

    def __init__(self, child_rows: ChildRows, run_id: str):
        self._child_rows = child_rows
        self._run_id = run_id

    def process(self, row):
        for table, rows in self._child_rows(loads(row.payload), self._run_id).items():
            for child in rows:
                yield beam.pvalue.TaggedOutput(table, child)
