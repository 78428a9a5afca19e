"""How the contracts' values are written down: event times as epoch milliseconds,
payloads as canonical JSON.  Pure functions, no Beam: declarations and transforms
share them.
"""

from __future__ import annotations

import datetime
import json

__all__ = [
    "PARTITION_GRANULARITIES",
    "NormaliseError",
    "canonical_json",
    "event_time_ms",
    "format_timestamp",
    "hive_partition",
]

_EPOCH = datetime.datetime(1970, 1, 1, tzinfo=datetime.timezone.utc)
_MILLISECOND = datetime.timedelta(milliseconds=1)


class NormaliseError(ValueError):
    """A valid event that cannot become a row; ``reason`` is a stable code."""

    def __init__(self, reason: str, detail: str):
        super().__init__(f"{reason}: {detail}")
        self.reason = reason
        self.detail = detail


def event_time_ms(text: str) -> int:
    """ISO-8601 text with an offset (``…Z`` or ``…+02:00``) → epoch milliseconds (UTC).

    Raises:
      NormaliseError: not a real instant, or no UTC offset (a naive time has no
        single meaning).
    """
    try:
        moment = datetime.datetime.fromisoformat(text)
    except (TypeError, ValueError) as e:
        raise NormaliseError("bad_timestamp", f"{text!r}: {e}") from None
    if moment.utcoffset() is None:
        raise NormaliseError("bad_timestamp", f"{text!r} has no UTC offset")
    return (moment - _EPOCH) // _MILLISECOND


def canonical_json(event: dict) -> str:
    """The event as compact JSON text, non-ASCII kept: what a ``jsonb`` column stores."""
    return json.dumps(event, ensure_ascii=False, separators=(",", ":"), allow_nan=False)


def format_timestamp(ms: int) -> str:
    """Epoch milliseconds as ISO-8601 UTC with milliseconds: ``2026-11-22T05:00:00.123Z``;
    the year has four digits (``0001-…``), as ``event_time_ms`` reads it back.  Raises
    ``OverflowError`` outside the years 1-9999."""
    moment = _EPOCH + datetime.timedelta(milliseconds=ms)
    return f"{moment.year:04d}-{moment:%m-%dT%H:%M:%S}.{ms % 1000:03d}Z"


# Hive-style partition folders of an event time, coarsest first.
PARTITION_GRANULARITIES = {
    "day": "year={t.year:04d}/month={t.month:02d}/day={t.day:02d}",
    "hour": "year={t.year:04d}/month={t.month:02d}/day={t.day:02d}/hour={t.hour:02d}",
}


def hive_partition(ms: int, granularity: str) -> str:
    """The partition folder of epoch milliseconds ``ms`` (UTC): for ``hour``,
    ``year=2026/month=11/day=22/hour=05``; zero-padded, so folders sort by time.
    A time outside datetime's years 1-9999 goes to ``year=out_of_range``."""
    try:
        moment = _EPOCH + datetime.timedelta(milliseconds=ms)
    except OverflowError:
        return "year=out_of_range"
    return PARTITION_GRANULARITIES[granularity].format(t=moment)
