"""The callables the graph applies to a contract's rows, built by ``schemas.dataset``.

``PartitionOf`` gives a main-table row's Parquet folder, ``GroupKey`` its group in
the aggregate and ``Measures`` the values the aggregate averages; ``PaneRow`` makes
the aggregate's row of one pane.  Each is a small picklable object (not a closure)
so that the runner can ship it to workers.
"""

import json
import operator

from schemas.values import hive_partition

__all__ = ["GroupKey", "Measures", "PaneRow", "PartitionOf"]


class PartitionOf:
    """A main-table row → its Hive-style partition folder (``hive_partition`` of its
    event-time column).  Picklable."""

    def __init__(self, column: str, granularity: str):
        self._column = column
        self._granularity = granularity

    def __call__(self, row) -> str:
        return hive_partition(getattr(row, self._column), self._granularity)


class GroupKey:
    """A row's group in the aggregate: the JSON array of its key columns' values.

    A string, so that its coder is deterministic as keyed state requires, and JSON so
    that ``PaneRow`` gets each value back with its type.  Picklable."""

    def __init__(self, columns: tuple[str, ...]):
        self._get = operator.attrgetter(*columns)
        self._single = len(columns) == 1

    def __call__(self, row) -> str:
        values = self._get(row)
        return json.dumps([values] if self._single else list(values), separators=(",", ":"))


class Measures:
    """A row's values of the aggregate's ``means`` columns (``CountPerWindow``'s ``sums``)."""

    def __init__(self, columns: tuple[str, ...]):
        self._columns = columns

    def __call__(self, row) -> tuple:
        return tuple(getattr(row, c) for c in self._columns)


class PaneRow:
    """``CountPerWindow``'s ``to_row`` for a contract's aggregate: one pane → its row.

    ``key`` is a ``GroupKey``; ``totals`` are the sums of the means, in order (each
    becomes ``sum_<m>`` and ``avg_<m>``).  Picklable (the row type pickles by reference).
    """

    def __init__(self, row_type: type):
        self._row_type = row_type

    def __call__(
        self, key, count, window_start_ms, window_end_ms, pane_index, timing, totals=(), *, run_id
    ):
        measures = [v for total in totals for v in (float(total), total / count)]
        return self._row_type(
            window_start_ms,
            window_end_ms,
            *json.loads(key),
            count,
            *measures,
            pane_index,
            timing,
            run_id,
        )
