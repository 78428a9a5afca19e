"""One contract per dataset, and everything derived from it.

A ``Contract`` declares a dataset's fields once.  From it come:

- ``json_schema()``: the validator's JSON Schema, within what Draft 7 and 2020-12
  share (``type``, ``properties``, ``required``, ``additionalProperties``, ``enum``,
  single-schema ``items``, ``minimum``, ``maximum``, ``minLength``, ``pattern``);
- ``avro_schema()``: the Avro record schema for binary payloads;
- ``row_type()`` and ``child_row_types()``: Beam rows (``NamedTuple`` + ``RowCoder``)
  for the main table and one per array that fans out to a child table;

and, outside this module, the PostgreSQL tables of those rows
(``schemas.tables.DatasetTables.of``), whose pyarrow schemas come from the same row
types (``transforms.sinks.arrow_schema``).

It also declares what later stages read: the id and event-time fields, the dedup
policy, the main table's Parquet partitioning (Hive-style folders of the event
time), an optional raw (bronze) output and the aggregate.

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

# No `from __future__ import annotations` here: the row types built below are
# NamedTuples whose schemas Beam infers from evaluated annotations.
import dataclasses
import re
import typing

from apache_beam import coders

from schemas.values import PARTITION_GRANULARITIES

__all__ = [
    "Aggregate",
    "Child",
    "Column",
    "Computed",
    "Contract",
    "ContractError",
    "DedupPolicy",
    "Field",
    "TIMESTAMP_PATTERN",
]

TIMESTAMP_PATTERN = (
    r"^[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}(\.[0-9]{1,6})?"
    r"(Z|[+-][0-9]{2}:[0-9]{2})$"
)
DATE_PATTERN = r"^[0-9]{4}-[0-9]{2}-[0-9]{2}$"

_SCALARS = ("string", "integer", "number", "boolean", "timestamp", "date")
_KINDS = _SCALARS + ("object", "array")
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
_NAME = re.compile(r"^[a-z_][a-z0-9_]*$")

# Columns every main table carries after the contract's own.
ENVELOPE = (
    ("payload", str),
    ("kafka_topic", str),
    ("kafka_partition", int),
    ("kafka_offset", int),
    ("kafka_timestamp_ms", int),
    ("run_id", str),
)
_RESERVED = {name for name, _ in ENVELOPE} | {"written_at", "item_index"}


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
class DedupPolicy:
    """``drop_later_copies`` by the id, or ``keep_latest`` by the id ordered by ``order_by``."""

    kind: str
    order_by: typing.Optional[str] = None

    def __post_init__(self):
        if self.kind not in ("drop_later_copies", "keep_latest"):
            raise ContractError(f"unknown dedup policy {self.kind!r}")
        if (self.kind == "keep_latest") != (self.order_by is not None):
            raise ContractError("keep_latest and only keep_latest orders by a field")


@dataclasses.dataclass(frozen=True)
class Aggregate:
    """Events counted, and numeric columns summed and averaged, per group of ``keys``
    columns in event-time windows of ``window_s``.

    Its table, ``name``, holds one row per (window, group) and pane:
    ``window_start_ms, window_end_ms, <keys…>, <count_column>, sum_<m>, avg_<m> (for
    each of ``means``), pane_index, pane_timing, run_id`` (``Contract.aggregate_row_type``).
    Each of ``rollups`` (one of the keys) gets a view ``<name>_by_<key>`` that sums the
    counts and sums over the other keys and recomputes the averages from them
    (``schemas.sql.rollup_views``).

    One aggregate per contract, grouped by every key at once, so that each event's
    lateness is decided once (by the state of its one group); a coarser grouping is a
    rollup view, exact because sums add up.
    """

    name: str
    keys: tuple[str, ...]
    window_s: int = 60
    allowed_lateness_s: int = 0
    count_column: str = "record_count"
    means: tuple[str, ...] = ()
    rollups: tuple[str, ...] = ()

    def measure_columns(self) -> tuple[str, ...]:
        """The row's columns after the count: ``sum_<m>, avg_<m>`` per mean."""
        return tuple(c for m in self.means for c in (f"sum_{m}", f"avg_{m}"))


def _row(name: str, columns, module: str) -> type:
    row_type = typing.NamedTuple(name, list(columns))
    # Pickled by reference: the dataset module binds the type under this name.
    row_type.__module__ = module
    coders.registry.register_coder(row_type, coders.RowCoder)
    return row_type


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
        if event.get(self.name) is not None:
            return
        a, b = event.get(self.left), event.get(self.right)
        if a is None or b is None:
            return
        value = {"+": a + b, "-": a - b, "*": a * b}[self.op]
        event[self.name] = round(value, 6) if isinstance(value, float) else value


@dataclasses.dataclass(frozen=True)
class Contract:
    """A dataset: its fields and everything later stages need to know about it."""

    name: str
    title: str
    module: str  # the dataset module that binds the row types, for pickling
    topic: str
    table: str
    fields: tuple[Field, ...]
    id_field: str
    event_time_field: str
    columns: tuple[Column, ...]
    dedup: DedupPolicy = DedupPolicy("drop_later_copies")
    children: tuple[Child, ...] = ()
    partition_by: typing.Optional[str] = None  # the main table's Parquet: "day" or "hour"
    raw_output: typing.Optional[str] = None  # a Parquet folder of every record as read
    aggregates: tuple[Aggregate, ...] = ()
    computed: tuple[Computed, ...] = ()
    confluent_schema_id: typing.Optional[int] = None

    def __post_init__(self):
        names = [f.name for f in self.fields]
        if len(set(names)) != len(names):
            raise ContractError(f"{self.name}: a field is declared twice")
        for name in names:
            if not _NAME.match(name):
                raise ContractError(f"{self.name}.{name}: field names are lower snake case")
        for column in self.columns:
            if column.name in _RESERVED:
                raise ContractError(f"{self.name}: column {column.name} is reserved")
            field = self.field(column.path)
            if field.kind not in _SCALARS:
                raise ContractError(f"{self.name}: column {column.name} is not a scalar")
            if field.kind == "timestamp" and not column.name.endswith("_ms"):
                raise ContractError(f"{self.name}: timestamp column {column.name} must end in _ms")
        for path in (self.id_field, self.event_time_field, self.dedup.order_by):
            if path:
                self.field(path)
        if self.field(self.event_time_field).kind != "timestamp":
            raise ContractError(f"{self.name}: the event-time field must be a timestamp")
        if self.id_field not in {c.path for c in self.columns}:
            raise ContractError(f"{self.name}: the id field must be a column")
        for child in self.children:
            if self.field(child.path).kind != "array" or "." in child.path:
                raise ContractError(f"{self.name}: child {child.table} is not a top-level array")
        if self.children and self.dedup.kind == "keep_latest":
            # A newer version with fewer items would leave the older one's rows behind.
            raise ContractError(f"{self.name}: child tables need drop_later_copies")
        for rule in self.computed:
            for path in (rule.name, rule.left, rule.right):
                self.field(path)
        if self.partition_by is not None and self.partition_by not in PARTITION_GRANULARITIES:
            raise ContractError(
                f"{self.name}: partition_by is one of {', '.join(PARTITION_GRANULARITIES)}"
            )
        if self.raw_output is not None and not _NAME.match(self.raw_output):
            raise ContractError(f"{self.name}: raw_output is a lower snake case folder name")
        if len(self.aggregates) != 1:
            raise ContractError(
                f"{self.name}: declare exactly one aggregate (group it by every key at once; "
                "coarser groupings are its rollups)"
            )
        self._check_aggregate(self.aggregate)
        if self.dedup.order_by and self.dedup.order_by not in {c.path for c in self.columns}:
            raise ContractError(f"{self.name}: the dedup order must be a column")
        object.__setattr__(self, "_rows", {})

    def _check_aggregate(self, agg: Aggregate) -> None:
        where = f"{self.name}: aggregate {agg.name}"
        if not agg.keys:
            raise ContractError(f"{where}: group by at least one key column")
        for key in agg.keys:
            # Keys are part of the table's primary key, which cannot hold NULL.
            if not self._column_field(key, where).always_present:
                raise ContractError(f"{where}: key {key} must be a column that is never null")
        for column in agg.means:
            field = self._column_field(column, where)
            if field.kind not in ("integer", "number") or not field.always_present:
                raise ContractError(f"{where}: mean {column} must be a numeric column never null")
        if not set(agg.rollups) <= set(agg.keys) or len(agg.keys) < 2 and agg.rollups:
            raise ContractError(f"{where}: a rollup is one of two or more keys")
        reserved = {"window_start_ms", "window_end_ms", "pane_index", "pane_timing", "run_id"}
        names = [*agg.keys, agg.count_column, *agg.measure_columns()]
        if len(set(names)) != len(names) or reserved & set(names):
            raise ContractError(f"{where}: its column names collide")

    def _column_field(self, column: str, where: str) -> Field:
        if column not in {c.name for c in self.columns}:
            raise ContractError(f"{where}: {column} is not a column")
        return self.field(self.column_path(column))

    # --- lookups ---------------------------------------------------------------

    def field(self, path: str) -> Field:
        fields, found = self.fields, None
        for part in path.split("."):
            found = next((f for f in fields if f.name == part), None)
            if found is None:
                raise ContractError(f"{self.name}: no field {path!r}")
            fields = found.fields
        return found

    def column(self, path: str) -> Column:
        return next(c for c in self.columns if c.path == path)

    # --- derived forms -----------------------------------------------------------

    def json_schema(self) -> dict:
        """The JSON Schema of one event (Draft 7 ∩ 2020-12), as a fresh dict."""
        root = Field(self.name, "object", fields=self.fields, description=self.title).json_schema()
        return {"$schema": "http://json-schema.org/draft-07/schema#", "title": self.title, **root}

    def avro_schema(self) -> dict:
        """The Avro record schema of one event (namespace ``beamline``)."""
        record = _camel(self.name)
        return {
            "type": "record",
            "name": record,
            "namespace": "beamline",
            "doc": self.title,
            "fields": [f.avro_field(f"{record}_{f.name}") for f in self.fields],
        }

    VALUE_FORMATS = ("json", "avro", "avro_confluent")

    def avro_absent_if_null(self) -> list[str]:
        """Top-level fields that are optional but not nullable: Avro cannot say
        "absent", so a null read for one of them means the key is absent."""
        return [f.name for f in self.fields if not f.required and not f.nullable]

    def row_type(self) -> type:
        """The main table's row: the declared columns, then the envelope (built once)."""
        if "main" not in self._rows:
            columns = [(c.name, self.field(c.path).python_type()) for c in self.columns]
            self._rows["main"] = _row(
                f"{_camel(self.name)}Row", columns + list(ENVELOPE), self.module
            )
        return self._rows["main"]

    def child_columns(self, child: Child) -> list[tuple[str, str]]:
        """(column, item field) of a child table's item columns; timestamps get ``_ms``."""
        items = self.field(child.path).items
        if items.kind != "object":
            return [("value", "")]
        return [
            (f"{f.name}_ms" if f.kind == "timestamp" else f.name, f.name)
            for f in items.fields
            if f.kind in _SCALARS
        ]

    def child_row_types(self) -> dict[str, type]:
        """Per child table: the parent id, the item's index, its scalar fields, run_id."""
        id_column = self.column(self.id_field)
        for child in self.children:
            if child.table in self._rows:
                continue
            items = self.field(child.path).items
            parts = [
                (id_column.name, self.field(self.id_field).python_type()),
                ("item_index", int),
            ]
            if items.kind == "object":
                by_name = {f.name: f for f in items.fields}
                parts += [(c, by_name[f].python_type()) for c, f in self.child_columns(child)]
            else:
                parts.append(("value", items.python_type()))
            parts.append(("run_id", str))
            self._rows[child.table] = _row(f"{_camel(child.table)}Row", parts, self.module)
        return {child.table: self._rows[child.table] for child in self.children}

    def id_column(self) -> str:
        """The main table's column of the id field: the dedup key and the upsert key."""
        return self.column(self.id_field).name

    def order_column(self) -> typing.Optional[str]:
        """The main table's column that orders versions (``keep_latest``), or None."""
        return self.column(self.dedup.order_by).name if self.dedup.order_by else None

    @property
    def aggregate(self) -> Aggregate:
        """The one windowed count the graph makes (a contract declares exactly one)."""
        return self.aggregates[0]

    def aggregate_row_type(self) -> type:
        """The aggregate's row: one pane of one (window, group) (built once)."""
        if "aggregate" not in self._rows:
            agg = self.aggregate
            parts = [
                ("window_start_ms", int),
                ("window_end_ms", int),
                *((key, self.field(self.column_path(key)).python_type()) for key in agg.keys),
                (agg.count_column, int),
                *((column, float) for column in agg.measure_columns()),
                ("pane_index", int),
                ("pane_timing", str),  # on_time | late
                ("run_id", str),
            ]
            self._rows["aggregate"] = _row(f"{_camel(agg.name)}Row", parts, self.module)
        return self._rows["aggregate"]

    def column_path(self, column: str) -> str:
        """The field path of the main-table column ``column``."""
        for c in self.columns:
            if c.name == column:
                return c.path
        raise ContractError(f"{self.name}: no column {column!r}")


def _camel(name: str) -> str:
    return "".join(part.capitalize() for part in name.split("_"))
