"""Rows that cannot poison a sink: every column checked against its DDL before the fan-out.

The PostgreSQL writer has no output for failed rows: a row PostgreSQL refuses fails the
whole batch, the bundle is retried, and the same row fails it again — a job that
restarts forever.  ``ConformToSinks`` checks each row against the columns that
``schemas.ddl`` derives for its table, and sends a row that would violate one to the
dead-letter output (stage ``sink``) instead, so the Parquet files, the table and the
window counts downstream all receive the same set of rows.  Rows arrive as
``(KafkaRecord, row)`` pairs, so the dead letter keeps the raw bytes and the key.

What is refused, per PostgreSQL column type:

- ``text``: a NUL character (PostgreSQL cannot store one), a lone surrogate (not
  encodable as UTF-8), more than ``KEY_TEXT_BYTES`` UTF-8 bytes in a primary-key
  column (a B-tree index entry must fit in a third of a page, 2,704 bytes for the
  whole key) or more than ``TEXT_BYTES`` anywhere;
- ``jsonb`` (bound as text with ``CAST(? AS jsonb)``): text that is not JSON, or a
  JSON string holding ``\\u0000`` (``jsonb`` refuses it);
- ``bigint`` / ``integer`` / ``smallint``: a value outside the type's range;
- ``double precision`` / ``numeric``: NaN or an infinity (JSON has neither, and
  ``numeric`` columns and Parquet decimals refuse them);
- a ``*_ms`` column with a generated ``timestamptz`` beside it: a time outside the
  years 1–9999 (``to_timestamp`` fails beyond PostgreSQL's range, Python's and
  Arrow's before it);
- ``NOT NULL`` columns: ``None``.

An unexpected database error (the database down, a constraint this module does not
know) still fails the bundle and the runner retries it; that is deliberate: such a
failure is not the row's fault, and retrying is what recovers from it.
"""

from __future__ import annotations

import math
import typing

import apache_beam as beam
from apache_beam.metrics import Metrics

from schemas import ddl
from schemas.records import DEAD_LETTER_TAG, KafkaRecord
from transforms.decode import loads
from transforms.normalise import find_nul

__all__ = ["ConformToSinks", "KEY_TEXT_BYTES", "STAGE", "TEXT_BYTES", "Violation", "violations"]

STAGE = "sink"

KEY_TEXT_BYTES = 1000
TEXT_BYTES = 100 * 1024 * 1024
_INT_RANGES = {
    "smallint": (-(2**15), 2**15 - 1),
    "integer": (-(2**31), 2**31 - 1),
    "bigint": (-(2**63), 2**63 - 1),
}
# 0001-01-01T00:00:00Z and 9999-12-31T23:59:59.999Z in epoch milliseconds.
_TIME_RANGE_MS = (-62_135_596_800_000, 253_402_300_799_999)


class Violation(typing.NamedTuple):
    column: str
    reason: str
    detail: str


def _check_text(name: str, value: str, limit: int) -> Violation | None:
    if "\x00" in value:
        return Violation(name, "nul_character", f"{name} holds a NUL character")
    try:
        size = len(value.encode("utf-8"))
    except UnicodeEncodeError as e:
        return Violation(name, "not_utf8", f"{name} is not encodable as UTF-8: {e.reason}")
    if size > limit:
        return Violation(name, "too_long", f"{name} is {size:,} UTF-8 bytes (limit {limit:,})")
    return None


def _check_json(name: str, value: str) -> Violation | None:
    try:
        parsed = loads(value)
    except ValueError as e:
        return Violation(name, "not_json", f"{name} is not JSON: {e}")
    # jsonb text holds a NUL only as the escape \u0000: walk the parsed value for
    # its path only when the text has one.
    where = find_nul(parsed) if "\\u0000" in value else None
    if where:
        return Violation(
            name, "nul_character", f"{name} holds \\u0000 at {where}: jsonb refuses it"
        )
    return None


class _Rule(typing.NamedTuple):
    """What one column of a table accepts, resolved once per table."""

    column: ddl.ColumnSpec
    key: bool  # part of the primary key
    cast: str | None  # the SQL type the bound text is cast to
    time: bool  # a *_ms column with a generated timestamptz


def _rules(table) -> list[_Rule]:
    """The rules of every column a row of ``table`` binds (not generated ones)."""
    fields = set(table.row_type._fields)
    return [
        _Rule(
            column,
            column.name in table.key_columns,
            table.casts.get(column.name),
            column.name in table.generated_times,
        )
        for column in ddl.expected_columns(table)
        if column.name in fields
    ]


def _check(rule: _Rule, value) -> Violation | None:
    column, key, cast, time = rule
    name, sql_type = column.name, column.sql_type
    if value is None:
        if column.nullable:
            return None
        return Violation(name, "null_value", f"{name} is null in a NOT NULL column")
    if sql_type in ("text", "jsonb") and isinstance(value, str):
        found = _check_text(name, value, KEY_TEXT_BYTES if key else TEXT_BYTES)
        if found or "jsonb" not in (sql_type, cast):
            return found
        return _check_json(name, value)
    if sql_type in _INT_RANGES and isinstance(value, int) and not isinstance(value, bool):
        low, high = _INT_RANGES[sql_type]
        if not low <= value <= high:
            return Violation(name, "out_of_range", f"{name}={value} is outside {sql_type}")
        if time and not _TIME_RANGE_MS[0] <= value <= _TIME_RANGE_MS[1]:
            return Violation(
                name, "timestamp_out_of_range", f"{name}={value} ms is outside years 1-9999"
            )
        return None
    if sql_type in ("double precision", "numeric") and isinstance(value, (int, float)):
        if not math.isfinite(value):
            return Violation(name, "not_finite", f"{name} is {value}")
        return None
    if sql_type == "boolean" and isinstance(value, bool):
        return None
    if sql_type == "bytea" and isinstance(value, bytes):
        return None
    return Violation(name, "wrong_type", f"{name} is a {type(value).__name__}, not {sql_type}")


def violations(table, row, rules: list[_Rule] | None = None) -> list[Violation]:
    """Every column of ``row`` that ``table``'s DDL would refuse (none: the row is safe).

    ``rules``: ``table``'s column rules when the caller resolved them already.
    """
    checked = (
        _check(rule, getattr(row, rule.column.name))
        for rule in (_rules(table) if rules is None else rules)
    )
    return [problem for problem in checked if problem]


# (record as read, stage, reason, detail) → its dead letter.
ToDeadLetter = typing.Callable[[typing.Any, str, str, str], typing.Any]


class _ConformFn(beam.DoFn):
    def __init__(self, table, to_dead_letter: ToDeadLetter):
        self._table = table
        self._rules = _rules(table)
        self._to_dead_letter = to_dead_letter
        self._conformed = Metrics.counter(self.__class__, "conformed")
        self._refused = Metrics.counter(self.__class__, "sink_refused")

    def process(self, element):
        record, row = element
        try:
            found = violations(self._table, row, self._rules)
        except Exception as e:  # noqa: BLE001 - a row the check cannot judge is refused
            found = [Violation("*", "conform_error", f"{type(e).__name__}: {e}")]
        if not found:
            self._conformed.inc()
            yield element
            return
        self._refused.inc()
        detail = "; ".join(v.detail for v in found)
        yield beam.pvalue.TaggedOutput(
            DEAD_LETTER_TAG, self._to_dead_letter(record, STAGE, found[0].reason, detail)
        )


class ConformToSinks(beam.PTransform):
    """Rows that every sink of ``table`` accepts; the others as dead letters.

    Input: ``(KafkaRecord, row)`` pairs (``NormaliseEvents``' output).  Returns a
    ``DoOutputsTuple``: ``rows``, the accepted pairs (timestamps kept), and
    ``[DEAD_LETTER_TAG]``: ``to_dead_letter(record, "sink", reason, detail)`` per
    refused row, its reason that of the first violated column.

    Args:
      table: the ``schemas.contract.Table`` the rows are written to.
      to_dead_letter: builds the dead letter of a refused row from its record as read.
    """

    def __init__(self, table, to_dead_letter: ToDeadLetter):
        super().__init__()
        self._table = table
        self._to_dead_letter = to_dead_letter

    def expand(self, rows):
        return rows | "Conform" >> beam.ParDo(
            _ConformFn(self._table, self._to_dead_letter)
        ).with_output_types(tuple[KafkaRecord, self._table.row_type]).with_outputs(
            DEAD_LETTER_TAG, main="rows"
        )
