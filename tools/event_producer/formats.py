"""How the generator writes a record down: JSON, Avro or Confluent-framed Avro, and
the faulty bytes of each format.

``encoder_for(name, dataset)`` gives a ``ValueFormat``: it encodes a valid record,
makes a malformed value (bytes the format's strict decoder refuses) and an invalid
one (a value that decodes but breaks the dataset's contract).  Every method takes a
fresh record dict and may mutate it.
"""

from __future__ import annotations

import io
import json
import struct
import typing

import fastavro

import datasets
from schemas.dataset import Dataset, Mutation
from schemas.values import canonical_json, event_time_ms, format_timestamp

__all__ = [
    "DRIFT_FIELD",
    "DRIFT_KINDS",
    "MALFORMED_KINDS",
    "UNKNOWN_SCHEMA_ID",
    "ValueFormat",
    "derived_invalid",
    "encoder_for",
    "number_path",
    "parse_timestamp",
]

# Malformed kinds of JSON values, assigned in turn to the chosen indices (in index
# order); the invalid kinds are the dataset's (``encoder_for(...).invalid_kinds``).
MALFORMED_KINDS = ("truncated", "not_utf8", "nan_literal", "array", "empty", "json_string")

# Schema drift: an upstream producer that added a field, or changed a number to a string.
DRIFT_KINDS = ("drift_unknown_field", "drift_number_as_string")
DRIFT_FIELD = "added_upstream_v2"

# A Confluent schema id no contract has.
UNKNOWN_SCHEMA_ID = 999


class ValueFormat(typing.Protocol):
    """One value format for one dataset.

    Attributes:
      name: ``json``, ``avro`` or ``avro_confluent`` (what ``python -m run`` takes).
      malformed_kinds: the kinds ``malformed`` makes, in the order they are assigned.
      invalid_kinds: the kinds ``invalid`` makes, in the order they are assigned.
    """

    name: str
    malformed_kinds: tuple[str, ...]
    invalid_kinds: tuple[str, ...]

    def encode(self, event: dict) -> bytes:
        """The value of a valid record."""

    def malformed(self, kind: str, event: dict) -> bytes:
        """Bytes the format's strict decoder refuses, made from ``event``."""

    def invalid(self, kind: str, event: dict) -> bytes:
        """A value that decodes to ``event`` broken by the fault ``kind``."""


def encoder_for(name: str, dataset: Dataset | None = None) -> ValueFormat:
    """The encoder of ``name`` (``json``, ``avro`` or ``avro_confluent``) for ``dataset``
    (default: customer events); ``ValueError`` for another name."""
    dataset = dataset or datasets.get(datasets.DEFAULT)
    if name == "json":
        return _JsonFormat(dataset)
    if name in ("avro", "avro_confluent"):
        return _AvroFormat(dataset, confluent=name == "avro_confluent")
    raise ValueError(f"value format must be json, avro or avro_confluent, not {name!r}")


def derived_invalid(contract, avro: bool = False) -> dict[str, Mutation]:
    """Faults derived from a contract's constraints, for a dataset that names none.

    Top-level fields only: the event time unparseable; the first enum field with an
    unknown value; for JSON also the event time and that enum field missing and the
    first string field with a minimum length given a number; for Avro (which cannot
    carry a missing or mistyped field) the first such string empty and the first
    field with a minimum below it."""
    time_field = contract.event_time_field
    enum = next(f.name for f in contract.fields if f.enum)
    text = next(f.name for f in contract.fields if f.kind == "string" and f.min_length)
    kinds = {
        f"unknown_{enum}": lambda e: e.update({enum: "teleport"}),
        f"bad_{time_field}": lambda e: e.update({time_field: "yesterday"}),
    }
    if avro:
        low = next(
            f for f in contract.fields if f.minimum is not None and f.kind in ("integer", "number")
        )
        kinds[f"empty_{text}"] = lambda e: e.update({text: ""})
        kinds[f"below_minimum_{low.name}"] = lambda e: e.update({low.name: low.minimum - 1})
    else:
        kinds[f"missing_{enum}"] = lambda e: e.pop(enum)
        kinds[f"missing_{time_field}"] = lambda e: e.pop(time_field)
        kinds[f"{text}_not_string"] = lambda e: e.update({text: 12345})
    return kinds


def number_path(fields, prefix: str = "") -> str | None:
    """The first ``number`` field of a contract's ``fields``, depth first (``a.b``), or None."""
    for f in fields:
        if f.kind == "number":
            return prefix + f.name
        if f.kind == "object":
            found = number_path(f.fields, f"{prefix}{f.name}.")
            if found:
                return found
    return None


def parse_timestamp(text: str) -> int:
    """The inverse of ``format_timestamp``: ``2026-11-22T05:00:00.123Z`` → epoch
    milliseconds; raises ``ValueError`` for any other shape."""
    ms = event_time_ms(text)  # NormaliseError is a ValueError
    if format_timestamp(ms) != text:
        raise ValueError(f"not an ISO-8601 UTC timestamp with milliseconds: {text!r}")
    return ms


def _json(value) -> bytes:
    """Compact UTF-8 JSON, as a ``jsonb`` column stores it (``canonical_json``)."""
    return canonical_json(value).encode()


def _set(record: dict, path: str, value) -> None:
    *parents, leaf = path.split(".")
    for name in parents:
        record = record[name]
    record[leaf] = value


class _JsonFormat:
    """JSON values: ``MALFORMED_KINDS`` (without ``nan_literal`` for a contract with no
    number), the dataset's invalid kinds, and the ``DRIFT_KINDS`` of a drifted producer."""

    name = "json"
    malformed_kinds = MALFORMED_KINDS

    def __init__(self, dataset: Dataset):
        self._invalid = dataset.invalid or derived_invalid(dataset.contract)
        self.invalid_kinds = tuple(self._invalid)
        self._number_path = number_path(dataset.contract.fields)
        if self._number_path is None:
            self.malformed_kinds = tuple(k for k in MALFORMED_KINDS if k != "nan_literal")

    def encode(self, event: dict) -> bytes:
        return _json(event)

    def malformed(self, kind: str, event: dict) -> bytes:
        """A value of ``kind`` that ``decode_json_object`` must reject."""
        if kind == "truncated":
            data = _json(event)
            return data[: len(data) // 2]
        if kind == "not_utf8":
            return _json(event).decode().encode("utf-16")  # starts with the BOM b"\xff\xfe"
        if kind == "nan_literal":
            _set(event, self._number_path, float("nan"))
            return json.dumps(event, separators=(",", ":")).encode()
        if kind == "array":
            return _json([event])
        if kind == "empty":
            return b""
        if kind == "json_string":
            return _json(json.dumps(event))
        raise ValueError(f"unknown malformed kind {kind!r}")

    def invalid(self, kind: str, event: dict) -> bytes:
        self._invalid[kind](event)
        return _json(event)

    def drifted(self, kind: str, event: dict) -> bytes:
        """``event`` as a producer whose schema drifted would send it: the first number
        sent as a string, or (``drift_unknown_field``, or a contract with no number) a
        field the contract does not know."""
        if kind == "drift_number_as_string" and self._number_path is not None:
            _set(event, self._number_path, "12.5")
        elif kind in DRIFT_KINDS:
            event[DRIFT_FIELD] = "a field the contract does not know"
        else:
            raise ValueError(f"unknown drift kind {kind!r}")
        return _json(event)


class _AvroFormat:
    """Avro values with the contract's schema, schemaless or in Confluent's wire format.

    Avro cannot carry a missing field or a mistyped one, so its invalid kinds break
    the contract within Avro's types; its malformed kinds are bytes the strict
    decoder refuses (a truncated record, one with a trailing byte, an empty value,
    the event as JSON, and for the wire format a bad magic byte and an unknown id).
    """

    def __init__(self, dataset: Dataset, confluent: bool):
        contract = dataset.contract
        self.name = "avro_confluent" if confluent else "avro"
        self._schema = fastavro.parse_schema(contract.avro_schema())
        self._schema_id = contract.confluent_schema_id if confluent else None
        extra = ("bad_magic_byte", "unknown_schema_id") if confluent else ()
        self.malformed_kinds = ("truncated", "trailing_bytes", "empty", "json_value") + extra
        self._invalid = dataset.avro_invalid or derived_invalid(contract, avro=True)
        self.invalid_kinds = tuple(self._invalid)

    def encode(self, event: dict) -> bytes:
        buffer = io.BytesIO()
        fastavro.schemaless_writer(buffer, self._schema, event)
        return self._frame(buffer.getvalue())

    def malformed(self, kind: str, event: dict) -> bytes:
        value = self.encode(event)
        if kind == "truncated":
            return value[: len(value) // 2]
        if kind == "trailing_bytes":
            return value + b"\x00"
        if kind == "empty":
            return b""
        if kind == "json_value":
            return _json(event)
        if kind == "bad_magic_byte":
            return b"\x01" + value[1:]
        if kind == "unknown_schema_id":
            return struct.pack(">bI", 0, UNKNOWN_SCHEMA_ID) + value[5:]
        raise ValueError(f"unknown malformed kind {kind!r}")

    def invalid(self, kind: str, event: dict) -> bytes:
        self._invalid[kind](event)
        return self.encode(event)

    def _frame(self, body: bytes) -> bytes:
        if self._schema_id is None:
            return body
        return struct.pack(">bI", 0, self._schema_id) + body
