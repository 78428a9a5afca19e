"""Planning a batch: how many of each fault, which original gets which role, and
which copies follow which original.

Index arithmetic only: no record is made and no byte is written here.  Roles are
drawn with the batch's seeded ``random.Random`` in a fixed order, so a plan is a
pure function of its arguments and the generator's state.

The roles of original ``i`` (``0 <= i < count``), exactly one each:

- ``valid``: sent at its nominal event time;
- ``malformed/<kind>``, ``invalid/<kind>``: poison, of the kinds the value
  format makes (``formats.ValueFormat``; ``invalid/drift_*``: a producer whose
  schema drifted, JSON only);
- ``out_of_order``: valid, sent 5–30 s behind the latest valid event time sent
  before it (within a streaming job's allowed lateness);
- ``late``: valid, sent ``late_shift_ms`` to ``late_shift_ms + 5 s`` behind it
  (beyond the window's close and the allowed lateness: the late lane's).

Copies follow originals: a ``duplicate`` is a byte copy of a valid original sent
within ``DUPLICATE_MAX_LAG`` further originals; a ``late_copy`` one sent once the
event time has moved ``late_copy_after_ms`` past its source's (after its id's dedup
TTL).
"""

from __future__ import annotations

import bisect
import dataclasses
import math
import random
import typing

__all__ = [
    "DUPLICATE_MAX_LAG",
    "LATE_SPREAD_MS",
    "OUT_OF_ORDER_SHIFT_MS",
    "Counts",
    "Plan",
    "plan",
]

# Out-of-order events go back this far (ms) behind the latest event time sent before them.
OUT_OF_ORDER_SHIFT_MS = (5_000, 30_000)
# A duplicate is sent after at most this many further original events.
DUPLICATE_MAX_LAG = 50
# A late event goes back up to this much (ms) beyond its shift.
LATE_SPREAD_MS = 5_000


@dataclasses.dataclass(frozen=True)
class Counts:
    """The exact number of each role in a batch: ``round(count * ratio)`` each.

    ``malformed``, ``invalid``, ``drift``, ``out_of_order`` and ``late`` are originals
    (out of ``count``); ``duplicates`` and ``late_copies`` are extra messages.
    """

    count: int
    malformed: int
    invalid: int
    drift: int
    duplicates: int
    out_of_order: int
    late: int
    late_copies: int

    @property
    def valid(self) -> int:
        """Originals that satisfy the contract (out-of-order and late ones included)."""
        return self.count - self.malformed - self.invalid - self.drift

    @classmethod
    def of(
        cls,
        count: int,
        *,
        malformed_ratio: float,
        invalid_ratio: float,
        duplicate_ratio: float,
        out_of_order_ratio: float,
        late_ratio: float,
        drift_ratio: float,
        late_copy_ratio: float,
        late_shift_ms: int,
        late_copy_after_ms: int,
        value_format: str,
    ) -> Counts:
        """The counts of a batch of ``count`` originals.

        Raises:
          ValueError: a ratio outside [0, 1]; late events or late copies without a
            positive shift; drift in a format other than JSON; or more malformed,
            invalid, out-of-order, late and duplicated events than ``count`` holds.
        """
        counts = cls(
            count=count,
            malformed=_count(count, malformed_ratio, "malformed_ratio"),
            invalid=_count(count, invalid_ratio, "invalid_ratio"),
            duplicates=_count(count, duplicate_ratio, "duplicate_ratio"),
            out_of_order=_count(count, out_of_order_ratio, "out_of_order_ratio"),
            late=_count(count, late_ratio, "late_ratio"),
            drift=_count(count, drift_ratio, "drift_ratio"),
            late_copies=_count(count, late_copy_ratio, "late_copy_ratio"),
        )
        if counts.late_copies and late_copy_after_ms <= 0:
            raise ValueError(
                f"late_copy_ratio needs a positive late_copy_after_ms, got {late_copy_after_ms}"
            )
        if counts.drift and value_format != "json":
            raise ValueError(
                "drift_ratio is for JSON values: a drifted Avro producer writes with another "
                "schema id (the malformed kind unknown_schema_id)"
            )
        if counts.late and late_shift_ms <= 0:
            raise ValueError(f"late_ratio needs a positive late_shift_ms, got {late_shift_ms}")
        # The first valid original is never out of order: it has no predecessor.
        shifted = counts.out_of_order + counts.late + (1 if counts.out_of_order else 0)
        if counts.valid < 0 or counts.duplicates + shifted > counts.valid:
            raise ValueError(
                f"{count} events cannot hold {counts.malformed} malformed, {counts.invalid} "
                f"invalid, {counts.out_of_order} out-of-order, {counts.late} late and "
                f"{counts.duplicates} duplicated events"
            )
        return counts


@dataclasses.dataclass(frozen=True)
class Plan:
    """Which original gets which role, and which copies are sent after which original.

    Attributes:
      roles: the role of each original, by index (see the module's docstring).
      copies_after: original ``i`` → ``(source, label)`` of each copy sent right after
        it, in send order; ``label`` is ``duplicate`` or ``late_copy``.
    """

    roles: tuple[str, ...]
    copies_after: typing.Mapping[int, tuple[tuple[int, str], ...]]


def plan(
    counts: Counts,
    rng: random.Random,
    *,
    malformed_kinds: typing.Sequence[str],
    invalid_kinds: typing.Sequence[str],
    drift_kinds: typing.Sequence[str],
    rate_per_s: float,
    late_shift_ms: int,
    late_copy_after_ms: int,
) -> Plan:
    """Draws the roles of a batch's originals and the copies' sources and places.

    The poison indices are one ``rng.sample``, split into malformed, invalid and
    drifted ones; each gets the kinds in turn, in index order.  Out-of-order events,
    late events and duplicate sources are disjoint samples of the valid originals
    (never the first one); late events come ``late_shift_ms`` or more after the first
    (so that a streaming job has been reading for that long).  Late copies' sources
    are on-time valid originals that are not duplicated, each copy sent right after
    the first on-time original ``late_copy_after_ms`` or more after its source.

    Raises:
      ValueError: too few valid originals come ``late_shift_ms`` after the first, or
        ``late_copy_after_ms`` before the last, for the late events or late copies.
    """
    count = counts.count
    poison = rng.sample(range(count), counts.malformed + counts.invalid + counts.drift)
    invalid_from = counts.malformed
    drift_from = counts.malformed + counts.invalid
    roles = ["valid"] * count
    _assign(roles, poison[:invalid_from], "malformed", malformed_kinds)
    _assign(roles, poison[invalid_from:drift_from], "invalid", invalid_kinds)
    _assign(roles, poison[drift_from:], "invalid", drift_kinds)
    valid = [i for i in range(count) if roles[i] == "valid"]

    out_of_order = set(rng.sample(valid[1:], counts.out_of_order))
    first_late = math.ceil(late_shift_ms * rate_per_s / 1000)
    candidates = [i for i in valid[1:] if i >= first_late and i not in out_of_order]
    if counts.late > len(candidates):
        raise ValueError(
            f"only {len(candidates)} valid events come {late_shift_ms} ms after the first: "
            f"too few for {counts.late} late events (send more events, or a smaller shift)"
        )
    late = set(rng.sample(candidates, counts.late))
    for i in out_of_order:
        roles[i] = "out_of_order"
    for i in late:
        roles[i] = "late"
    on_time = [i for i in valid if roles[i] == "valid"]

    copies_after: dict[int, list[tuple[int, str]]] = {}
    sources = sorted(rng.sample(on_time, counts.duplicates))
    for j in sources:
        due = rng.randint(j, min(count - 1, j + DUPLICATE_MAX_LAG))
        copies_after.setdefault(due, []).append((j, "duplicate"))
    # A late copy's source is an on-time original whose time plus the copy's lag
    # comes before the last on-time original's: the copy is sent right after the
    # first on-time original at or past that time.
    copy_lag = math.ceil(late_copy_after_ms * rate_per_s / 1000)
    duplicated = set(sources)
    copyable = [i for i in on_time if i not in duplicated and i + copy_lag <= on_time[-1]]
    if counts.late_copies > len(copyable):
        raise ValueError(
            f"only {len(copyable)} valid events come {late_copy_after_ms} ms before the last: "
            f"too few for {counts.late_copies} late copies (send more events, or a smaller lag)"
        )
    for j in sorted(rng.sample(copyable, counts.late_copies)):
        due = on_time[bisect.bisect_left(on_time, j + copy_lag)]
        copies_after.setdefault(due, []).append((j, "late_copy"))
    return Plan(tuple(roles), {i: tuple(c) for i, c in copies_after.items()})


def _count(count: int, ratio: float, name: str) -> int:
    if not 0.0 <= ratio <= 1.0:
        raise ValueError(f"{name} must be between 0 and 1, got {ratio}")
    return round(count * ratio)


def _assign(roles: list[str], indices: list[int], fault: str, kinds: typing.Sequence[str]) -> None:
    """``fault/<kind>`` to each of ``indices``, the kinds in turn in index order."""
    for k, i in enumerate(sorted(indices)):
        roles[i] = f"{fault}/{kinds[k % len(kinds)]}"
