"""The parts of a contract that describe an event: its fields and what comes of them.

A ``Field`` declares one JSON key (possibly nested) with its kind and constraints,
and gives its JSON Schema, its Avro type and the Python type of a row's value.  A
``Column`` takes a scalar field into the main table, a ``Child`` fans an array out
to a child table, and a ``Computed`` field is derived from two others during
normalisation.  ``schemas.contract.Contract`` puts them together and checks that
they agree.

Semantics fixed here:

- A field is required unless ``required=False``; an optional field's ``default``
  is filled in by normalisation.  ``nullable=True`` admits JSON ``null``.
- Avro cannot tell a missing field from a null one: optional fields are
  ``["null", T]`` unions with a null default, and a null read from Avro for an
  optional, non-nullable field means "absent" (``from_avro`` removes it).
- ``enum`` values become Avro ``string``s (Avro enum symbols cannot hold ``"TV
  Show"``); the enum is enforced by the JSON Schema check after decoding.
- ``timestamp`` fields are ISO-8601 text with an offset in both JSON and Avro; a
  column of one holds epoch milliseconds (``bigint``) beside a generated
  ``timestamptz`` column for people.
"""

# No `from __future__ import annotations` here: the row types built from these
# Python types are NamedTuples whose schemas Beam infers from evaluated annotations.
import dataclasses
import typing

__all__ = [
    "Child",
    "Column",
    "Computed",
    "ContractError",
    "Field",
    "SCALAR_KINDS",
    "TIMESTAMP_PATTERN",
]

TIMESTAMP_PATTERN = (
    r"^[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}(\.[0-9]{1,6})?"
    r"(Z|[+-][0-9]{2}:[0-9]{2})$"
)
DATE_PATTERN = r"^[0-9]{4}-[0-9]{2}-[0-9]{2}$"

SCALAR_KINDS = ("string", "integer", "number", "boolean", "timestamp", "date")
_KINDS = SCALAR_KINDS + ("object", "array")
_JSON_TYPES = {
    "string": "string",
    "integer": "integer",
    "number": "number",
    "boolean": "boolean",
    "timestamp": "string",
    "date": "string",
    "object": "object",
    "array": "array",
}
_AVRO_TYPES = {
    "string": "string",
    "integer": "long",
    "number": "double",
    "boolean": "boolean",
    "timestamp": "string",
    "date": "string",
}
_PY_TYPES = {
    "string": str,
    "integer": int,
    "number": float,
    "boolean": bool,
    "timestamp": int,  # epoch milliseconds in rows
    "date": str,
}


class ContractError(ValueError):
    """A contract that contradicts itself; the message names the field."""


@dataclasses.dataclass(frozen=True)
class Field:
    """One field of an event, possibly nested.

    Attributes:
      name: the JSON key (lower snake case, so it is also a column name).
      kind: one of string, integer, number, boolean, timestamp, date, object, array.
      required: the key must be present (else ``default`` fills it in normalisation).
      nullable: JSON ``null`` is a valid value.
      default: the value normalisation gives an absent optional field, and a null
        one: a field with a default is never null in a row.
      enum, pattern, min_length, minimum, maximum: constraints, as in JSON Schema.
      fields: an object's fields.
      items: an array's item field (its name is ignored).
      description: what the field means, carried into the JSON Schema.
    """

    name: str
    kind: str
    required: bool = True
    nullable: bool = False
    default: typing.Any = None
    enum: typing.Optional[tuple[str, ...]] = None
    pattern: typing.Optional[str] = None
    min_length: typing.Optional[int] = None
    minimum: typing.Optional[float] = None
    maximum: typing.Optional[float] = None
    fields: tuple["Field", ...] = ()
    items: typing.Optional["Field"] = None
    description: str = ""

    def __post_init__(self):
        if self.kind not in _KINDS:
            raise ContractError(f"{self.name}: unknown kind {self.kind!r}")
        if (self.kind == "object") != bool(self.fields):
            raise ContractError(f"{self.name}: an object and only an object has fields")
        if (self.kind == "array") != (self.items is not None):
            raise ContractError(f"{self.name}: an array and only an array has items")

    def json_schema(self) -> dict:
        schema: dict = {"type": _JSON_TYPES[self.kind]}
        if self.nullable:
            schema["type"] = [schema["type"], "null"]
        if self.description:
            schema["description"] = self.description
        if self.enum is not None:
            schema["enum"] = list(self.enum) + ([None] if self.nullable else [])
        pattern = self.pattern or {"timestamp": TIMESTAMP_PATTERN, "date": DATE_PATTERN}.get(
            self.kind
        )
        if pattern:
            schema["pattern"] = pattern
        for key, value in (
            ("minLength", self.min_length),
            ("minimum", self.minimum),
            ("maximum", self.maximum),
        ):
            if value is not None:
                schema[key] = value
        if self.kind == "object":
            schema["properties"] = {f.name: f.json_schema() for f in self.fields}
            schema["required"] = [f.name for f in self.fields if f.required]
            schema["additionalProperties"] = False
        if self.kind == "array":
            schema["items"] = self.items.json_schema()
        return schema

    def avro_type(self, record_name: str):
        if self.kind == "object":
            avro = {
                "type": "record",
                "name": record_name,
                "fields": [f.avro_field(f"{record_name}_{f.name}") for f in self.fields],
            }
        elif self.kind == "array":
            avro = {"type": "array", "items": self.items.avro_type(f"{record_name}_item")}
        else:
            avro = _AVRO_TYPES[self.kind]
        return ["null", avro] if self.nullable or not self.required else avro

    def avro_field(self, record_name: str) -> dict:
        field = {"name": self.name, "type": self.avro_type(record_name)}
        if not self.required:
            field["default"] = None
        return field

    def python_type(self):
        base = _PY_TYPES[self.kind]
        if self.default is not None:  # filled in when absent or null
            return base
        return typing.Optional[base] if self.nullable or not self.required else base

    @property
    def always_present(self) -> bool:
        """A row always has a value: required and not nullable, or filled by a default."""
        return self.default is not None or (self.required and not self.nullable)


@dataclasses.dataclass(frozen=True)
class Column:
    """A main-table column taken from a scalar field at ``path`` (dots for nesting).

    A timestamp field's column holds epoch milliseconds; its name ends in ``_ms``.
    """

    name: str
    path: str


@dataclasses.dataclass(frozen=True)
class Child:
    """An array field at the top level that fans out to a child table, one row per item."""

    table: str
    path: str


@dataclasses.dataclass(frozen=True)
class Computed:
    """``name`` = ``left`` ``op`` ``right`` (two fields, op one of + - *), when absent or null."""

    name: str
    left: str
    op: str
    right: str

    def __post_init__(self):
        if self.op not in ("+", "-", "*"):
            raise ContractError(f"computed {self.name}: op must be +, - or *")

    def apply(self, event: dict) -> None:
        """Sets ``event[name]`` in place when it is absent or null and both operands
        are present; a float result is rounded to 6 decimal places."""
        if event.get(self.name) is not None:
            return
        a, b = event.get(self.left), event.get(self.right)
        if a is None or b is None:
            return
        value = {"+": a + b, "-": a - b, "*": a * b}[self.op]
        event[self.name] = round(value, 6) if isinstance(value, float) else value
