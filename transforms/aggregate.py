"""Counting per key in event-time windows, with accumulating panes and a late lane.

``CountPerWindow`` behaves like ``WindowInto(FixedWindows(size) or SlidingWindows,
trigger=AfterWatermark(late=AfterCount(1)), accumulation_mode=ACCUMULATING,
allowed_lateness=L)`` followed by a count per key, with one difference that is the
reason it exists: **a record that arrives after its window closed comes out of a
tagged output instead of vanishing.**  Beam's Python SDK drops such records inside
the ``GroupByKey`` with only a counter, and a separate "lateness detector" in front
of the ``GroupByKey`` cannot be exact, because a ``DoFn`` cannot read the watermark:
the first record of a window that closed without data would pass the detector and
still be dropped.  Here the decision and the count are made by one stateful
``DoFn`` per key, in the global window, so every record is either in a pane or in
the late output, never neither.

Per key the state is the map of open windows (count, next pane index, whether
the on-time pane fired, the totals of ``sums``) and one number,
``closed_through``: the latest event-time timer that fired (milliseconds).  A
timer at ``t`` fires only once the input watermark has passed ``t``.  A window's
close is ``end - 1µs + allowed_lateness`` (Beam's own garbage-collection time).

**Which records are late.**  With ``arrival_ms`` (element → when its record
arrived, in event time: its Kafka timestamp minus the read's watermark delay), a
record is late for a window when the window closed at or before its arrival:
a function of the record alone, so a replay after a restore, another runner or
another interleaving of partitions judges every record the same way.  The
window's state is kept ``grace_s`` past its close, so that the rule, not the
runtime watermark, decides (a record the rule calls on time whose window's state
is already gone goes to the late lane too, counted by ``late_after_state_dropped``).
Without ``arrival_ms`` the runtime watermark decides: a window whose close is at
or before ``closed_through`` is expired.  One watermark timer per key is set to
the earliest pending deadline:

- at the window's end (its ``max_timestamp``), the **on-time pane** (pane 0);
- each record counted after that, a **late pane** with the accumulated count and
  the next pane index;
- at the close plus ``grace_s``, the window's state is dropped.

A window's count only grows, pane after pane: with the arrival rule, every pane
ever emitted for a window (before a crash or after the restore) counts a subset of
the records its last pane counts, so **the pane with the largest count is the
final one** whatever the pane indexes say (a restore fires panes again, with other
indexes).  Sinks keep the row of the largest count (``schemas.tables``).

State is therefore bounded by the keys times the windows open at once
(``1 + (allowed_lateness + grace) / period``); no processing-time timer is used.

On a bounded read (the DirectRunner) the watermark jumps to the end once all is
read, so every window fires exactly one on-time pane and nothing is ever late.
"""

from __future__ import annotations

import operator
import typing

import apache_beam as beam
from apache_beam import coders
from apache_beam.metrics import Metrics
from apache_beam.transforms import window
from apache_beam.transforms.timeutil import TimeDomain
from apache_beam.transforms.userstate import ReadModifyWriteStateSpec, TimerSpec, on_timer
from apache_beam.transforms.window import TimestampedValue
from apache_beam.utils.timestamp import Timestamp
from apache_beam.utils.windowed_value import WindowedValue

from runner_patches import keyed_bundles, state_weight
from transforms.batching import Batch, BatchPerKey

__all__ = ["LATE_STAGE", "LATE_TAG", "LateArrival", "CountPerWindow", "ON_TIME", "LATE"]

# The tag of CountPerWindow's late lane: a LateArrival per record of closed windows.
LATE_TAG = "late"
# The dead-letter stage of a late arrival (a valid event that is in no window count).
LATE_STAGE = "late"

# Pane timings, as Beam names them (PaneInfoTiming), lower case: a pane row's timing.
ON_TIME = "on_time"
LATE = "late"

# to_row(key, count, window_start_ms, window_end_ms, pane_index, timing[, totals])
ToRow = typing.Callable[..., typing.Any]


class LateArrival(typing.NamedTuple):
    """A record whose window(s) had closed when it arrived."""

    element: typing.Any
    window_start_ms: int
    window_end_ms: int
    closed_at_ms: int  # the event time at which its (last) window closed


class _Window(typing.NamedTuple):
    start_ms: int
    end_ms: int

    @property
    def max_ms(self) -> int:  # Beam's IntervalWindow.max_timestamp(), in milliseconds
        return self.end_ms - 1


class _CountPanesFn(beam.DoFn):
    """``(key, Batch)`` → pane rows; elements of closed windows → ``LATE_TAG``; each
    at its element's timestamp (the timer's panes at the timer's)."""

    # (closed_through, {(start_ms, end_ms): [count, next_pane_index, on_time_fired,
    # totals]}),
    # one cell so that a batch costs one state read (on Prism each read is a round
    # trip).  Times are kept in milliseconds: runners deliver timers at millisecond
    # precision (the FnApiRunner fires a timer set for 59.999999 s at 59.999 s), and
    # Kafka times are milliseconds.
    STATE = ReadModifyWriteStateSpec("windows", coders.PickleCoder())
    FIRE = TimerSpec("fire", TimeDomain.WATERMARK)

    def __init__(
        self,
        windowfn: window.WindowFn,
        allowed_lateness_s: int,
        to_row: ToRow,
        weighted: bool,
        sums: typing.Optional[typing.Callable[[typing.Any], tuple]] = None,
        arrival_ms: typing.Optional[typing.Callable[[typing.Any], int]] = None,
        grace_s: int = 0,
    ):
        self._windowfn = windowfn
        self._arrival_ms = arrival_ms
        self._grace_ms = grace_s * 1000
        self._sums = sums
        self._weighted = weighted  # elements are counts already combined (an int each)
        self._lateness_ms = allowed_lateness_s * 1000
        self._to_row = to_row
        self._on_time = Metrics.counter(self.__class__, "panes_on_time")
        self._late_panes = Metrics.counter(self.__class__, "panes_late")
        self._late = Metrics.counter(self.__class__, "late_records")
        self._partly_late = Metrics.counter(self.__class__, "records_missing_some_windows")
        self._closed = Metrics.counter(self.__class__, "windows_closed")
        self._dropped_early = Metrics.counter(self.__class__, "late_after_state_dropped")

    def setup(self):
        state_weight.install()
        keyed_bundles.install()

    def _close_ms(self, win: _Window) -> int:
        return win.max_ms + self._lateness_ms

    def _drop_ms(self, win: _Window) -> int:
        """When the window's state goes: its close plus the grace."""
        return win.max_ms + self._lateness_ms + self._grace_ms

    def _pane(self, key, win: _Window, entry: list, timing: str):
        pane_index = entry[1]
        entry[1] += 1
        (self._on_time if timing == ON_TIME else self._late_panes).inc()
        if self._sums is None:
            return self._to_row(key, entry[0], win.start_ms, win.end_ms, pane_index, timing)
        return self._to_row(
            key, entry[0], win.start_ms, win.end_ms, pane_index, timing, tuple(entry[3])
        )

    def _next_deadline(self, open_windows: dict) -> int | None:
        deadlines = [
            self._drop_ms(_Window(*w)) if fired else _Window(*w).max_ms
            for w, (_, _, fired, _) in open_windows.items()
        ]
        return min(deadlines, default=None)

    def _save(self, closed_through, open_windows: dict, state, fire) -> None:
        state.write((closed_through, open_windows))
        if open_windows:
            fire.set(Timestamp(micros=self._next_deadline(open_windows) * 1000))

    def process(
        self,
        element,
        state=beam.DoFn.StateParam(STATE),
        fire=beam.DoFn.TimerParam(FIRE),
    ):
        key, batch = element
        closed_through, open_windows = state.read() or (None, {})
        outputs, counted = [], False
        for ts_us, value in batch:
            counted |= self._count(key, ts_us, value, closed_through, open_windows, outputs)
        yield from outputs
        if counted:
            self._save(closed_through, open_windows, state, fire)

    def _count(
        self, key, ts_us: int, value, closed_through, open_windows: dict, outputs: list
    ) -> bool:
        """Counts one element into ``open_windows``; appends its late panes or its
        late arrival to ``outputs``, at the element's timestamp.  Whether it was
        counted in some window."""
        timestamp = Timestamp(micros=ts_us)
        weight = value if self._weighted else 1
        arrival = None if self._arrival_ms is None else self._arrival_ms(value)
        measures = self._sums(value) if self._sums is not None else ()
        wins = [
            _Window(w.start.micros // 1000, w.end.micros // 1000)
            for w in self._windowfn.assign(window.WindowFn.AssignContext(timestamp, value))
        ]
        missed = []
        for win in wins:
            if closed_through is not None and self._drop_ms(win) <= closed_through:
                missed.append(win)  # its state is gone
                if arrival is not None and arrival < self._close_ms(win):
                    self._dropped_early.inc(weight)
                continue
            if arrival is not None and self._close_ms(win) <= arrival:
                missed.append(win)  # it had closed when the record arrived
                continue
            entry = open_windows.setdefault(tuple(win), [0, 0, False, [0] * len(measures)])
            entry[0] += weight
            for i, m in enumerate(measures):
                entry[3][i] += m
            if entry[2]:  # the on-time pane has fired: this is a late firing
                outputs.append(TimestampedValue(self._pane(key, win, entry, LATE), timestamp))
        if missed and len(missed) == len(wins):
            self._late.inc(weight)
            last = max(missed)
            outputs.append(
                beam.pvalue.TaggedOutput(
                    LATE_TAG,
                    TimestampedValue(
                        LateArrival(value, last.start_ms, last.end_ms, self._close_ms(last)),
                        timestamp,
                    ),
                )
            )
        elif missed:
            # Sliding windows only: counted in its open windows, missing from closed ones.
            self._partly_late.inc()
        return len(missed) < len(wins)

    @on_timer(FIRE)
    def fire(
        self,
        key=beam.DoFn.KeyParam,
        fired_at=beam.DoFn.TimestampParam,
        state=beam.DoFn.StateParam(STATE),
        fire=beam.DoFn.TimerParam(FIRE),
    ):
        now = fired_at.micros // 1000
        closed_through, open_windows = state.read() or (None, {})
        closed_through = now if closed_through is None else max(closed_through, now)
        for w in sorted(open_windows):
            win, entry = _Window(*w), open_windows[w]
            if not entry[2] and win.max_ms <= now:
                entry[2] = True
                yield self._pane(key, win, entry, ON_TIME)
            if self._drop_ms(win) <= now:
                del open_windows[w]
                self._closed.inc()
        self._save(closed_through, open_windows, state, fire)


class _CombineInBundleFn(beam.DoFn):
    """``(key, element)`` → ``(key, Batch of counts)``, once per key and bundle.

    The batch holds one count per set of windows the key's elements fell in, each
    stamped with the earliest timestamp of its elements (which falls in the same
    windows as all of them), so the keyed count downstream is handed one element,
    and reads and writes its state once, per key and bundle.
    """

    def __init__(self, windowfn: window.WindowFn):
        self._windowfn = windowfn

    def start_bundle(self):
        self._groups: dict[str, dict[tuple, list[int]]] = {}

    def process(self, element, timestamp=beam.DoFn.TimestampParam):
        key, value = element
        wins = tuple(
            (w.start.micros, w.end.micros)
            for w in self._windowfn.assign(window.WindowFn.AssignContext(timestamp, value))
        )
        group = self._groups.setdefault(key, {}).setdefault(wins, [0, timestamp.micros])
        group[0] += 1
        group[1] = min(group[1], timestamp.micros)

    def finish_bundle(self):
        for key, groups in self._groups.items():
            batch = Batch((earliest_us, n) for n, earliest_us in groups.values())
            yield WindowedValue((key, batch), batch.earliest(), [window.GlobalWindow()])
        self._groups = {}


class CountPerWindow(beam.PTransform):
    """Counts elements per key in event-time windows, in accumulating panes.

    Input: timestamped elements.  Main output (``counts``): ``to_row(key, count,
    window_start_ms, window_end_ms, pane_index, timing)`` for every pane of every
    (window, key) that holds an element — pane 0 ``on_time`` when the watermark
    passes the window's end, then one ``late`` pane per late element, each with the
    count so far.  A sink that keeps the row of the largest count (then the
    highest ``pane_index``) holds the final count, also across a restore.
    ``[LATE_TAG]``: one ``LateArrival`` per element that arrived after all of its
    windows had closed (the window's end plus ``allowed_lateness_s``, in event
    time); it is in no count.

    Args:
      key: the element field to count by, or a function of the element.
      window_size_s: the window length in seconds of event time.
      to_row: builds an output row; its type is ``row_type``.
      row_type: the output type (a ``NamedTuple`` registered with ``RowCoder``).
      allowed_lateness_s: how long after its end a window still takes elements.
      window_period_s: when set, sliding windows that start every ``window_period_s``.
      combine_in_bundle: count per key and window within each bundle first, so the
        keyed state is touched once per group rather than once per element (on
        Prism every state access is a round trip); the late output then carries
        counts (``LateArrival.element`` is the number of late elements), not elements.
      sums: element → a tuple of numbers, summed per pane like the count; ``to_row``
        then gets the totals as a seventh argument.  Not with ``combine_in_bundle``
        (the late lane must carry the elements).
      arrival_ms: element → when it arrived, in event time (milliseconds): an
        element is late for a window that closed at or before that time, whatever
        the runtime watermark says (the module's docstring).  Not with
        ``combine_in_bundle``.
      grace_s: with ``arrival_ms``, how long past its close a window's state is kept
        for elements the rule still calls on time (more than the read's lag behind
        the clock it stamps records with).
    """

    def __init__(
        self,
        key: str | typing.Callable[[typing.Any], str],
        window_size_s: int,
        to_row: ToRow,
        row_type: type,
        *,
        allowed_lateness_s: int = 0,
        window_period_s: int | None = None,
        combine_in_bundle: bool = False,
        sums: typing.Optional[typing.Callable[[typing.Any], tuple]] = None,
        arrival_ms: typing.Optional[typing.Callable[[typing.Any], int]] = None,
        grace_s: int = 0,
    ):
        super().__init__()
        if sums is not None and combine_in_bundle:
            raise ValueError("sums need the elements: not with combine_in_bundle")
        if arrival_ms is not None and combine_in_bundle:
            raise ValueError("arrival_ms needs the elements: not with combine_in_bundle")
        if grace_s < 0:
            raise ValueError(f"grace_s must not be negative (got {grace_s})")
        self._sums = sums
        self._arrival_ms = arrival_ms
        self._grace_s = grace_s if arrival_ms is not None else 0
        if window_size_s <= 0:
            raise ValueError(f"window_size_s must be positive (got {window_size_s})")
        if allowed_lateness_s < 0:
            raise ValueError(f"allowed_lateness_s must not be negative (got {allowed_lateness_s})")
        if window_period_s is not None and not 0 < window_period_s <= window_size_s:
            raise ValueError(
                f"window_period_s must be in (0, window_size_s] (got {window_period_s})"
            )
        self._key = key if callable(key) else operator.attrgetter(key)
        self._windowfn = (
            window.SlidingWindows(window_size_s, window_period_s)
            if window_period_s
            else window.FixedWindows(window_size_s)
        )
        self._lateness_s = allowed_lateness_s
        self._combine_in_bundle = combine_in_bundle
        self._to_row = to_row
        self._row_type = row_type

    def expand(self, elements):
        return self.count_batches(self.batch_per_key(elements))

    def batch_per_key(self, elements, label: str = ""):
        """``elements`` → ``(key, Batch)``: keyed, and batched (or, with
        ``combine_in_bundle``, counted) per key and bundle, fused with the step that
        produced them.  ``label`` prefixes the step names, for one call per input."""
        key = self._key
        # A str key: its coder is deterministic, as keyed state requires.
        keyed = elements | f"{label}KeyByGroup" >> beam.Map(
            lambda element: (str(key(element)), element)
        ).with_output_types(tuple[str, typing.Any])
        if self._combine_in_bundle:
            return keyed | f"{label}CombineInBundle" >> beam.ParDo(
                _CombineInBundleFn(self._windowfn)
            ).with_output_types(tuple[str, Batch])
        return keyed | f"{label}BatchPerKey" >> BatchPerKey()

    def count_batches(self, batches):
        """``(key, Batch)`` → the panes (``counts``) and the late lane (``LATE_TAG``)."""
        # Named apart from the per-element step it replaced (CountPanes): a savepoint
        # of that state fails to restore instead of being misread.
        return batches | "CountPanesPerBatch" >> beam.ParDo(
            _CountPanesFn(
                self._windowfn,
                self._lateness_s,
                self._to_row,
                self._combine_in_bundle,
                self._sums,
                self._arrival_ms,
                self._grace_s,
            )
        ).with_outputs(LATE_TAG, main="counts")
