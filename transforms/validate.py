"""Validation of decoded events against a JSON Schema contract, with dead letters.

Two tiers, both built once per worker in ``setup``:

1. a compiled check (``compile_schema``): the schema turned into nested Python
   closures that answer valid or invalid and nothing more.  It covers exactly the
   keywords the contracts use (``type``, ``properties``, ``required``,
   ``additionalProperties`` as a boolean, ``enum`` of strings, single-schema
   ``items``, ``minimum``, ``maximum``, ``minLength``, ``pattern``) and refuses
   any other keyword when compiling, so it can never be silently more permissive
   than the contract;
2. ``jsonschema.Draft7Validator``, run only on the events the compiled check
   rejects, to name every violation in the dead letter.

``jsonschema`` is the reference: the compiled check follows its semantics, bool
is neither ``integer`` nor ``number``, a float with no fractional part is an
``integer``, and ``pattern`` is searched with ``re.search``.  Inputs are what
``json.loads`` returns (dict, list, str, int, float, bool, None).

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

import numbers
import re
import typing

import apache_beam as beam
from apache_beam.metrics import Metrics
from jsonschema import Draft7Validator
from jsonschema.exceptions import ValidationError

from schemas.records import DEAD_LETTER_TAG, KafkaRecord, dead_letter

__all__ = [
    "UnsupportedSchemaError",
    "ValidateEvents",
    "ValidateEventsFn",
    "ValidatorDisagreement",
    "compile_schema",
    "describe_errors",
]

STAGE = "validate"
MAX_DETAIL_CHARS = 2000
MAX_MESSAGE_CHARS = 300

Check = typing.Callable[[object], bool]

# Keywords the compiled check implements, and keywords that never affect validity.
_KEYWORDS = frozenset(
    {
        "type",
        "properties",
        "required",
        "additionalProperties",
        "enum",
        "items",
        "minimum",
        "maximum",
        "minLength",
        "pattern",
    }
)
_ANNOTATIONS = frozenset(
    {"$schema", "$id", "$comment", "title", "description", "default", "examples"}
)


class UnsupportedSchemaError(ValueError):
    """The schema uses a keyword, or a form of one, that ``compile_schema`` does not cover."""


class ValidatorDisagreement(RuntimeError):
    """The compiled check and ``jsonschema`` gave different answers for one event."""


# --- the compiled check ---------------------------------------------------------------


def _is_integer(x) -> bool:
    cls = type(x)
    if cls is int:
        return True
    if cls is float:
        return x.is_integer()
    if isinstance(x, bool):  # bool is an int subclass, but not a JSON integer
        return False
    return isinstance(x, int) or (isinstance(x, float) and x.is_integer())


def _is_number(x) -> bool:
    cls = type(x)
    if cls is int or cls is float:
        return True
    return not isinstance(x, bool) and isinstance(x, numbers.Number)


def _is_string(x) -> bool:
    return isinstance(x, str)


def _is_object(x) -> bool:
    return isinstance(x, dict)


def _is_array(x) -> bool:
    return isinstance(x, list)


def _is_boolean(x) -> bool:
    return isinstance(x, bool)


def _is_null(x) -> bool:
    return x is None


_TYPE_CHECKS: dict[str, Check] = {
    "string": _is_string,
    "integer": _is_integer,
    "number": _is_number,
    "object": _is_object,
    "array": _is_array,
    "boolean": _is_boolean,
    "null": _is_null,
}


def _always(x) -> bool:
    return True


def _never(x) -> bool:
    return False


def _all_of(checks: list[Check]) -> Check:
    """One check that passes when every check passes, tried in order.

    Here and below, explicit loops stand where ``all()``/``any()`` over a
    generator would read better: they make the whole check about 1.7x faster.
    """
    if not checks:
        return _always
    if len(checks) == 1:
        return checks[0]
    if len(checks) == 2:
        first, second = checks

        def both(x) -> bool:
            return first(x) and second(x)

        return both
    checks_ = tuple(checks)

    def every(x) -> bool:
        for check in checks_:  # noqa: SIM110 - see _all_of
            if not check(x):
                return False
        return True

    return every


def _type_check(types: tuple[str, ...]) -> Check:
    if len(types) == 1:
        return _TYPE_CHECKS[types[0]]
    checks = tuple(_TYPE_CHECKS[name] for name in types)

    def any_type(x) -> bool:
        for check in checks:  # noqa: SIM110 - see _all_of
            if check(x):
                return True
        return False

    return any_type


def _enum_check(values: list, where: str) -> Check:
    strings = [value for value in values if value is not None]
    if not all(isinstance(value, str) for value in strings):
        raise UnsupportedSchemaError(f"{where}: only enums of strings (and null) are supported")
    allowed = frozenset(strings)

    if len(strings) < len(values):  # a nullable enum: null is one of its values

        def one_of_or_null(x) -> bool:
            return x is None or (isinstance(x, str) and x in allowed)

        return one_of_or_null

    def one_of(x) -> bool:
        return isinstance(x, str) and x in allowed

    return one_of


def _string_check(min_length: int | None, pattern: str | None, guarded: bool) -> Check:
    search = re.compile(pattern).search if pattern is not None else None
    shortest = min_length or 0

    def string(x) -> bool:
        if guarded and not isinstance(x, str):
            return True
        if len(x) < shortest:
            return False
        return search is None or search(x) is not None

    return string


def _number_check(minimum, maximum, guarded: bool) -> Check:
    def number(x) -> bool:
        if guarded and not _is_number(x):
            return True
        if minimum is not None and x < minimum:
            return False
        return maximum is None or x <= maximum

    return number


def _object_check(
    properties: dict[str, Check], required: frozenset, closed: bool, guarded: bool
) -> Check:
    items = tuple(properties.items())
    allowed = frozenset(properties)

    if closed and required == allowed:
        # Every declared property is required and no other is allowed: the keys
        # must be exactly the declared ones, so each can be read without a test.
        def exact_object(x) -> bool:
            if guarded and not isinstance(x, dict):
                return True
            if x.keys() != required:
                return False
            for key, check in items:  # noqa: SIM110 - see _all_of
                if not check(x[key]):
                    return False
            return True

        return exact_object

    def object_(x) -> bool:
        if guarded and not isinstance(x, dict):
            return True
        keys = x.keys()
        if required and not keys >= required:
            return False
        if closed and not keys <= allowed:
            return False
        for key, check in items:  # noqa: SIM110 - see _all_of
            if key in x and not check(x[key]):
                return False
        return True

    return object_


def _array_check(item: Check, guarded: bool) -> Check:
    def array(x) -> bool:
        if guarded and not isinstance(x, list):
            return True
        for element in x:  # noqa: SIM110 - see _all_of
            if not item(element):
                return False
        return True

    return array


def _compile(schema, where: str) -> Check:
    if schema is True:
        return _always
    if schema is False:
        return _never
    if not isinstance(schema, dict):
        raise UnsupportedSchemaError(f"{where}: a schema must be an object or a boolean")
    unknown = schema.keys() - _KEYWORDS - _ANNOTATIONS
    if unknown:
        raise UnsupportedSchemaError(f"{where}: unsupported keywords {sorted(unknown)}")

    types = schema.get("type")
    if isinstance(types, str):
        types = (types,)
    if types is not None:
        types = tuple(types)
        for name in types:
            if name not in _TYPE_CHECKS:
                raise UnsupportedSchemaError(f"{where}: unknown type {name!r}")
    only = types[0] if types is not None and len(types) == 1 else None

    def applies(name: str) -> bool:
        return types is None or name in types or (name == "number" and "integer" in types)

    checks: list[Check] = []
    enum = schema.get("enum")
    if enum is not None:
        # The enum check runs first: when every value has an allowed type, it
        # implies the type check, which is then left out.
        checks.append(_enum_check(enum, where))
    if types is not None and (enum is None or not all(_type_check(types)(value) for value in enum)):
        checks.append(_type_check(types))
    # After a single-type check, the keyword checks of that type need no guard.
    if ("minLength" in schema or "pattern" in schema) and applies("string"):
        checks.append(
            _string_check(schema.get("minLength"), schema.get("pattern"), only != "string")
        )
    if ("minimum" in schema or "maximum" in schema) and applies("number"):
        checks.append(
            _number_check(
                schema.get("minimum"), schema.get("maximum"), only not in ("integer", "number")
            )
        )
    if {"properties", "required", "additionalProperties"} & schema.keys() and applies("object"):
        additional = schema.get("additionalProperties", True)
        if not isinstance(additional, bool):
            raise UnsupportedSchemaError(
                f"{where}: additionalProperties must be a boolean, not a schema"
            )
        properties = {
            key: _compile(sub, f"{where}.{key}")
            for key, sub in schema.get("properties", {}).items()
        }
        checks.append(
            _object_check(
                properties, frozenset(schema.get("required", ())), not additional, only != "object"
            )
        )
    if "items" in schema and applies("array"):
        if isinstance(schema["items"], list):
            raise UnsupportedSchemaError(f"{where}: only the single-schema form of items")
        checks.append(_array_check(_compile(schema["items"], f"{where}[]"), only != "array"))
    return _all_of(checks)


def compile_schema(schema: dict | bool) -> Check:
    """Compiles ``schema`` into a fast check that returns ``True`` for a valid instance.

    The check answers exactly as ``jsonschema.Draft7Validator(schema).is_valid``
    does for JSON values, without saying why.  Keyword semantics follow Draft 7
    (and 2020-12, which agrees on these keywords): each keyword constrains only
    instances of its own type, so ``minimum`` ignores a string and ``required``
    ignores a list; ``type`` may be a list; booleans are not numbers.

    Args:
        schema: A Draft 7 schema using only the supported keywords, plus the
            annotations ``$schema``, ``$id``, ``$comment``, ``title``,
            ``description``, ``default`` and ``examples``.

    Returns:
        A function of one JSON value returning ``True`` or ``False``; it never
        raises for a JSON value.

    Raises:
        jsonschema.exceptions.SchemaError: ``schema`` is not a valid Draft 7 schema.
        UnsupportedSchemaError: the schema uses any other keyword, an enum of
            non-strings, the list form of ``items``, or ``additionalProperties``
            as a schema.
    """
    Draft7Validator.check_schema(schema)
    return _compile(schema, "$")


# --- the explanation ------------------------------------------------------------------

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


# --- the transform --------------------------------------------------------------------


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


class ValidateEvents(beam.PTransform):
    """Validates decoded events against a JSON Schema contract.

    Takes the main output of ``DecodeJson``, ``(KafkaRecord, dict)`` pairs.
    Returns a ``DoOutputsTuple``: ``valid`` holds the valid pairs, untouched;
    ``[DEAD_LETTER_TAG]`` holds ``DeadLetter`` rows with stage ``validate``.

    Args:
        schema: The contract, e.g. ``datasets.customer_events.load_schema()``; it
            must be a valid Draft 7 schema that ``compile_schema`` supports, which
            is checked here, when the graph is built.
        run_id: Stamped on every dead letter.
    """

    def __init__(self, schema: dict, run_id: str):
        super().__init__()
        self._fn = ValidateEventsFn(schema, run_id)

    def expand(self, decoded):
        return decoded | "ValidateEvents" >> beam.ParDo(self._fn).with_outputs(
            DEAD_LETTER_TAG, main="valid"
        )
