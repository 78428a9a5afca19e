"""The terms derived from rows rather than counted: the offset audit and the windows' balance.

Pure functions over what the sinks hold (Kafka coordinates, the Parquet rows of the
main table and the aggregate); no I/O.
"""

from __future__ import annotations

import collections
import dataclasses
import math
import typing

from schemas.dataset import Dataset
from schemas.records import COORDINATE_COLUMNS

__all__ = [
    "Coordinate",
    "OffsetAudit",
    "WindowBalance",
    "audit_offsets",
    "coordinate",
    "final_panes",
    "window_balance",
]

Coordinate = tuple[str, int, int]  # (topic, partition, offset) of a Kafka record


@dataclasses.dataclass(frozen=True)
class OffsetAudit:
    """The run's offsets against the coordinates found in the outputs."""

    expected: int  # offsets in the run's ranges
    found: int  # rows across events, dead letters and the duplicate log
    missing: int  # expected offsets in no output
    unexpected: int  # offsets outside the run's ranges (or on another topic)
    repeated: int  # offsets in more than one row
    late_not_in_events: int = 0  # late dead letters naming no event's offset

    @property
    def exact(self) -> bool:
        """Every expected offset found once, and nothing else."""
        return self.missing == self.unexpected == self.repeated == 0 and self.found == self.expected


def audit_offsets(
    topic: str,
    ranges: typing.Mapping[int, tuple[int, int]],
    seen: typing.Iterable[Coordinate],
    late: typing.Iterable[Coordinate] = (),
    events: typing.Iterable[Coordinate] = (),
) -> OffsetAudit:
    """Compares ``seen`` coordinates with ``[start, end)`` per partition of ``topic``,
    and checks that each ``late`` coordinate is one of the ``events``."""
    counts = collections.Counter(seen)
    expected = {(topic, p, o) for p, (start, end) in ranges.items() for o in range(start, end)}
    return OffsetAudit(
        expected=len(expected),
        found=sum(counts.values()),
        missing=len(expected - counts.keys()),
        unexpected=len(counts.keys() - expected),
        repeated=sum(1 for n in counts.values() if n > 1),
        late_not_in_events=len(set(late) - set(events)),
    )


def coordinate(row: typing.Mapping) -> Coordinate:
    """The Kafka coordinate of a sink row (its ``COORDINATE_COLUMNS``)."""
    return tuple(row[c] for c in COORDINATE_COLUMNS)


def final_panes(counts: list[dict], keys: typing.Sequence[str], count: str) -> dict[tuple, dict]:
    """(window start, *keys) → the row of its final pane, from the aggregate's
    Parquet rows (they hold every pane written): the largest ``count``, then the
    highest pane index, as PostgreSQL's guard keeps it.  A window's count only grows,
    so this is its last pane even when a restore fired panes again with other
    indexes (transforms/aggregate.py)."""
    final: dict[tuple, dict] = {}
    for c in counts:
        window = (c["window_start_ms"], *(c[k] for k in keys))
        rank = (c[count], c["pane_index"])
        if window not in final or rank > (final[window][count], final[window]["pane_index"]):
            final[window] = c
    return final


class WindowBalance(typing.NamedTuple):
    unbalanced: int  # (window, group) pairs whose count + late events != events
    off_averages: int  # (window, group) pairs whose averages != their events' means


def window_balance(
    dataset: Dataset, events: list[dict], counts: list[dict], late: typing.Iterable[Coordinate]
) -> WindowBalance:
    """Each (window, group)'s final pane (the largest count) against its events.

    ``events`` and ``counts`` are the Parquet rows of the main table and the
    aggregate; windows are fixed, aligned to the epoch, of the length the count rows
    show; an event's window is that of its event-time column.  The count plus the
    window's late events must equal its events; each ``avg_<m>`` must equal the mean
    of ``m`` over the events that are not late (to 1e-9, relative).
    """
    contract = dataset.contract
    agg = contract.aggregate
    keys, count = agg.keys, agg.count_column
    time = contract.column(contract.event_time_field).name
    size = max((c["window_end_ms"] - c["window_start_ms"] for c in counts), default=1)
    final = final_panes(counts, keys, count)
    late = set(late)
    per_window: collections.Counter = collections.Counter()
    late_per_window: collections.Counter = collections.Counter()
    sums: dict[tuple, list[float]] = collections.defaultdict(lambda: [0.0] * len(agg.means))
    for e in events:
        window = (e[time] - e[time] % size, *(e[k] for k in keys))
        per_window[window] += 1
        if coordinate(e) in late:
            late_per_window[window] += 1
            continue
        for i, m in enumerate(agg.means):
            sums[window][i] += e[m]
    windows = per_window.keys() | final.keys()
    unbalanced = sum(
        1
        for w in windows
        if (final[w][count] if w in final else 0) + late_per_window[w] != per_window[w]
    )
    off = 0
    for w, row in final.items():
        n = row[count]  # a pane counts at least one event
        if any(
            not math.isclose(row[f"avg_{m}"], total / n, rel_tol=1e-9, abs_tol=1e-9)
            for m, total in zip(agg.means, sums[w], strict=True)
        ):
            off += 1
    return WindowBalance(unbalanced, off)
