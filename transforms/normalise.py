"""Normalising valid events into typed rows stamped with their event time.

A valid event can still be unfit for the sinks, and each such event becomes one
dead letter with stage ``normalise`` (reason code in brackets):

- an event time the contract's pattern lets through but no calendar has, such as
  month 13 or 25 o'clock [``bad_timestamp``];
- a NUL character in any string, which PostgreSQL cannot store in ``text`` or
  ``jsonb`` and which would otherwise fail a whole database batch
  [``nul_character``];
- any other exception while building the row [``normalise_error``], with its
  type in the detail.

The output is the pair ``(KafkaRecord, row)``: the record as read travels beside its
row, so a later stage that refuses the row (the sinks' check, the late lane) makes
its dead letter from the raw bytes and the Kafka key, not from the normalised row.
Its timestamp is the event time, whatever timestamp the record was read with:
windows and dedup expiry follow the event, not the transport.
"""

from __future__ import annotations

import typing

import apache_beam as beam
from apache_beam.metrics import Metrics
from apache_beam.transforms.window import TimestampedValue

from schemas.records import DEAD_LETTER_TAG, KafkaRecord, dead_letter
from schemas.values import NormaliseError, canonical_json, event_time_ms

__all__ = [
    "NormaliseError",
    "NormaliseEvents",
    "NormaliseEventsFn",
    "canonical_json",
    "event_time_ms",
    "find_nul",
    "json_may_hold_nul",
]

STAGE = "normalise"


def find_nul(value, path: str = "$") -> str | None:
    """The path of the first string (or object key) holding a NUL character, if any."""
    if isinstance(value, str):
        return path if "\x00" in value else None
    if isinstance(value, dict):
        for key, item in value.items():
            where = f"{path}.{key}"
            if "\x00" in key:
                return where
            found = find_nul(item, where)
            if found:
                return found
    elif isinstance(value, list):
        for i, item in enumerate(value):
            found = find_nul(item, f"{path}[{i}]")
            if found:
                return found
    return None


def json_may_hold_nul(raw: typing.Optional[bytes]) -> bool:
    """False when no string that ``decode_json_object`` decodes from ``raw`` holds a NUL.

    Strict JSON carries a NUL in a string only as the escape ``\\u0000`` (a raw
    control character in a string is invalid JSON), so bytes with neither a zero
    byte nor that escape decode to no NUL: one C-speed scan of the raw bytes
    instead of a walk over the whole decoded event.  Valid for that decoder only.
    """
    return raw is None or b"\x00" in raw or b"\\u0000" in raw


ToRow = typing.Callable[[KafkaRecord, dict, int, str], typing.Any]


class NormaliseEventsFn(beam.DoFn):
    """``(KafkaRecord, dict)`` → ``(record, to_row(record, event, event_time_ms, run_id))``
    at event time.

    Every input yields exactly one output: a timestamped pair, or a ``DeadLetter``
    (stage ``normalise``) on ``DEAD_LETTER_TAG``.  Never raises for a bad event.
    """

    def __init__(
        self,
        to_row: ToRow,
        event_time_field: str,
        run_id: str,
        may_hold_nul: typing.Optional[typing.Callable[[bytes], bool]] = None,
    ):
        self._to_row = to_row
        self._event_time_field = event_time_field
        self._run_id = run_id
        self._may_hold_nul = may_hold_nul
        self._normalised = Metrics.counter(self.__class__, "normalised")
        self._rejected = Metrics.counter(self.__class__, "normalise_rejected")

    def process(self, element: tuple[KafkaRecord, dict]):
        record, event = element
        try:
            scan = self._may_hold_nul
            nul = find_nul(event) if scan is None or scan(record.value) else None
            if nul:
                raise NormaliseError("nul_character", f"{nul} holds a NUL character")
            at_ms = event_time_ms(event[self._event_time_field])
            row = self._to_row(record, event, at_ms, self._run_id)
        except NormaliseError as e:
            reason, detail = e.reason, e.detail
        except Exception as e:  # noqa: BLE001 - a bad event never fails the bundle
            reason, detail = "normalise_error", f"{type(e).__name__}: {e}"
        else:
            self._normalised.inc()
            yield TimestampedValue((record, row), at_ms / 1000)
            return
        self._rejected.inc()
        yield beam.pvalue.TaggedOutput(
            DEAD_LETTER_TAG, dead_letter(record, STAGE, reason, detail, self._run_id)
        )


class NormaliseEvents(beam.PTransform):
    """Valid ``(KafkaRecord, dict)`` pairs → ``(KafkaRecord, row)`` pairs timestamped at
    event time (the row typed; the record as read, for later stages' dead letters).

    Returns a ``DoOutputsTuple``: ``rows`` holds the pairs, ``[DEAD_LETTER_TAG]``
    the ``DeadLetter`` rows with stage ``normalise``.

    Args:
      to_row: builds the row from the record, the event, its event time (ms) and
        the run id.
      row_type: the row's ``NamedTuple`` type (registered with ``RowCoder``).
      event_time_field: the event's ISO-8601 event-time field.
      run_id: stamped on every dead letter.
      may_hold_nul: a test of the record's raw value that is False only when the
        decoded event cannot hold a NUL (``json_may_hold_nul`` for the strict JSON
        decoder); then the walk over the event is skipped.  None: always walk.
    """

    def __init__(
        self,
        to_row: ToRow,
        row_type: type,
        event_time_field: str,
        run_id: str,
        may_hold_nul: typing.Optional[typing.Callable[[bytes], bool]] = None,
    ):
        super().__init__()
        self._fn = NormaliseEventsFn(to_row, event_time_field, run_id, may_hold_nul)
        self._row_type = row_type

    def expand(self, valid):
        return valid | "Normalise" >> beam.ParDo(self._fn).with_output_types(
            tuple[KafkaRecord, self._row_type]
        ).with_outputs(DEAD_LETTER_TAG, main="rows")
