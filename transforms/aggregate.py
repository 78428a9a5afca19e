"""Counting events per key in fixed event-time windows.

Windows are ``[start, start + size)`` in event time (the element timestamps set
by ``NormaliseEvents``).  The trigger is Beam's default: one pane when the
watermark passes the window's end; on a bounded read the watermark jumps to the
end once everything is read, so each window fires once, complete.
"""

from __future__ import annotations

import typing

import apache_beam as beam
from apache_beam.metrics import Metrics
from apache_beam.transforms import window

__all__ = ["CountPerWindow"]

ToRow = typing.Callable[[str, int, int, int], typing.Any]


class _ToCountRowFn(beam.DoFn):
    def __init__(self, to_row: ToRow):
        self._to_row = to_row
        self._windows = Metrics.counter(self.__class__, "window_counts")

    def process(self, element, win=beam.DoFn.WindowParam):
        key, count = element
        self._windows.inc()
        yield self._to_row(key, count, win.start.micros // 1000, win.end.micros // 1000)


class CountPerWindow(beam.PTransform):
    """Counts rows per ``key_field`` value in fixed windows of ``window_size_s``.

    Input: timestamped rows.  Output: ``to_row(key, count, window_start_ms,
    window_end_ms)`` for every (window, key) that holds at least one row.

    Args:
      key_field: the row field to count by.
      window_size_s: the window length in seconds of event time.
      to_row: builds the output row; its type is ``row_type``.
      row_type: the output ``NamedTuple`` type (registered with ``RowCoder``).
    """

    def __init__(self, key_field: str, window_size_s: int, to_row: ToRow, row_type: type):
        super().__init__()
        if window_size_s <= 0:
            raise ValueError(f"window_size_s must be positive (got {window_size_s})")
        self._key_field = key_field
        self._window_size_s = window_size_s
        self._to_row = to_row
        self._row_type = row_type

    def expand(self, rows):
        key_field = self._key_field
        return (
            rows
            | "FixedWindows" >> beam.WindowInto(window.FixedWindows(self._window_size_s))
            | "KeyAndOne" >> beam.Map(lambda row: (getattr(row, key_field), 1))
            | "Count" >> beam.CombinePerKey(sum)
            | "ToRow" >> beam.ParDo(_ToCountRowFn(self._to_row)).with_output_types(self._row_type)
        )
