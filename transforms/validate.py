"""Validation of decoded events against a JSON Schema contract, with dead letters.

Two tiers, both built once per worker in ``setup``:

1. the contract compiled into a fast check (``transforms.schema_check``), which
   answers valid or invalid and nothing more, and refuses when compiling any
   keyword it does not cover;
2. ``jsonschema.Draft7Validator``, run only on the events the compiled check
   rejects, to name every violation in the dead letter.

Reason codes of the dead letters (stage ``validate``):

- ``missing_field``: at least one ``required`` property is absent;
- ``wrong_type``: otherwise, at least one value has the wrong JSON type;
- ``schema_violation``: otherwise, any other keyword failed (``enum``,
  ``pattern``, bounds, ``minLength``, an extra property …);
- ``validate_error``: validation itself raised; the detail starts with the
  exception type.  This includes ``ValidatorDisagreement``: the compiled check
  rejected an event in which ``jsonschema`` finds no violation, which is a bug
  in the compiled check.

The detail lists every violation as ``path: message``, sorted by path and joined
with ``"; "``, e.g. ``event_type: 'teleport' is not one of [...]; user_id: 42 is
not of type 'string'``.  A missing property is named by its own path
(``device.os``), as is an extra one.  The detail is capped at 2000 characters,
ending in ``… and N more`` when violations had to be left out.
"""

from __future__ import annotations

import re
import typing

import apache_beam as beam
from apache_beam.metrics import Metrics
from jsonschema import Draft7Validator
from jsonschema.exceptions import ValidationError

from schemas.records import DEAD_LETTER_TAG, KafkaRecord, dead_letter
from transforms.schema_check import Check, compile_schema

__all__ = [
    "STAGE",
    "ValidateEvents",
    "ValidateEventsFn",
    "ValidatorDisagreement",
    "describe_errors",
]

STAGE = "validate"
MAX_DETAIL_CHARS = 2000
MAX_MESSAGE_CHARS = 300


class ValidatorDisagreement(RuntimeError):
    """The compiled check and ``jsonschema`` gave different answers for one event."""


class ValidateEvents(beam.PTransform):
    """Validates decoded events against a JSON Schema contract.

    Takes ``Decode``'s main output (``decoded``): ``(KafkaRecord, dict)`` pairs.
    Returns a ``DoOutputsTuple``: ``valid`` holds the valid pairs, untouched;
    ``[DEAD_LETTER_TAG]`` holds ``DeadLetter`` rows with stage ``validate``.  Every
    input pair is in exactly one of the two.

    Args:
        schema: The contract's JSON Schema (``Contract.json_schema()``); it must be
            a valid Draft 7 schema that ``compile_schema`` supports, which is
            checked here, when the graph is built (``SchemaError`` or
            ``UnsupportedSchemaError`` otherwise).
        run_id: Stamped on every dead letter.
    """

    def __init__(self, schema: dict, run_id: str):
        super().__init__()
        self._fn = ValidateEventsFn(schema, run_id)

    def expand(self, decoded):
        return decoded | "ValidateEvents" >> beam.ParDo(self._fn).with_outputs(
            DEAD_LETTER_TAG, main="valid"
        )


class ValidateEventsFn(beam.DoFn):
    """``(KafkaRecord, dict)`` → the same pair if valid; rejects to ``DEAD_LETTER_TAG``.

    Every input yields exactly one output: the untouched pair on the main output,
    or a ``DeadLetter`` (stage ``validate``) on the dead-letter output.  Never
    raises for a bad event.  Counters: ``valid``, ``invalid`` (every dead
    letter), ``validate_errors`` (the ``validate_error`` dead letters among them).
    """

    def __init__(self, schema: dict, run_id: str):
        # Compiled here too, so that a bad or unsupported schema fails the graph's
        # construction, not a worker; each worker compiles its own in setup().
        compile_schema(schema)
        self._schema = schema
        self._run_id = run_id
        self._is_valid: Check | None = None
        self._validator: Draft7Validator | None = None
        self._valid = Metrics.counter(self.__class__, "valid")
        self._invalid = Metrics.counter(self.__class__, "invalid")
        self._errors = Metrics.counter(self.__class__, "validate_errors")

    def setup(self):
        self._is_valid = compile_schema(self._schema)
        self._validator = Draft7Validator(self._schema)

    def process(self, element: tuple[KafkaRecord, dict]):
        record, event = element
        try:
            if self._is_valid(event):
                self._valid.inc()
                yield element
                return
            errors = list(self._validator.iter_errors(event))
            if not errors:
                raise ValidatorDisagreement(
                    "the compiled check rejected the event but jsonschema finds no violation"
                )
            reason, detail = describe_errors(errors)
        except Exception as e:  # noqa: BLE001 - a bad event never fails the bundle
            reason, detail = "validate_error", f"{type(e).__name__}: {e}"
            self._errors.inc()
        self._invalid.inc()
        yield beam.pvalue.TaggedOutput(
            DEAD_LETTER_TAG, dead_letter(record, STAGE, reason, detail, self._run_id)
        )


def describe_errors(errors: typing.Iterable[ValidationError]) -> tuple[str, str]:
    """The dead-letter ``(reason, detail)`` of a non-empty set of ``jsonschema`` errors.

    Args:
        errors: Errors from ``iter_errors`` on the whole event, so that their
            paths start at the event's top level.

    Returns:
        ``reason``: ``missing_field`` if any error is a ``required`` error, else
        ``wrong_type`` if any is a ``type`` error, else ``schema_violation``.
        ``detail``: every violation as ``path: message``, sorted by path, at most
        2000 characters.
    """
    keywords = set()
    entries = []
    for error in errors:
        keywords.add(error.validator)
        for path, message in _entries(error):
            entries.append((_sort_key(path), _render_path(path), _shorten(message)))
    if "required" in keywords:
        reason = "missing_field"
    elif "type" in keywords:
        reason = "wrong_type"
    else:
        reason = "schema_violation"
    entries.sort()
    parts: list[str] = []
    used = 0
    for index, (_, path, message) in enumerate(entries):
        part = f"{path}: {message}"
        left_after = len(entries) - index - 1
        tail = len(f"; … and {len(entries)} more") if left_after else 0
        if used + 2 * bool(parts) + len(part) + tail > MAX_DETAIL_CHARS:
            parts.append(f"… and {len(entries) - index} more")
            break
        used += 2 * bool(parts) + len(part)
        parts.append(part)
    return reason, "; ".join(parts)


_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


def _render_path(path: typing.Sequence) -> str:
    if not path:
        return "$"
    parts = []
    for step in path:
        if isinstance(step, int):
            parts.append(f"[{step}]")
        elif _NAME.fullmatch(step):
            parts.append(f".{step}" if parts else step)
        else:
            parts.append(f"[{_shorten(repr(step), 60)}]")
    return "".join(parts)


def _sort_key(path: typing.Sequence) -> tuple:
    return tuple((0, step) if isinstance(step, int) else (1, step) for step in path)


def _shorten(text: str, limit: int = MAX_MESSAGE_CHARS) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _entries(error: ValidationError) -> list[tuple[list, str]]:
    """``(path, message)`` pairs for one error; missing and extra keys get their own path."""
    path = list(error.absolute_path)
    if error.validator == "required":
        for name in error.validator_value:
            if error.message == f"{name!r} is a required property":
                return [(path + [name], error.message)]
    if error.validator == "additionalProperties" and isinstance(error.instance, dict):
        declared = error.schema.get("properties", {}) if isinstance(error.schema, dict) else {}
        extras = [key for key in error.instance if key not in declared]
        if extras:
            return [
                (path + [key], "is not allowed (additionalProperties is false)") for key in extras
            ]
    return [(path, error.message)]
