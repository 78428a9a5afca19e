"""One contract per dataset: the declaration everything else derives from.

A ``Contract`` declares a dataset's fields once (``schemas.fields``), and what later
stages read: the id and event-time fields, the main table's columns, the dedup
policy, the child tables, the main table's Parquet partitioning (Hive-style folders
of the event time), an optional raw (bronze) output, the computed fields and the
one aggregate.  Making one checks that these agree (``ContractError`` names what
does not).  From it come:

- ``json_schema()``: the validator's JSON Schema, within what Draft 7 and 2020-12
  share (``type``, ``properties``, ``required``, ``additionalProperties``, ``enum``,
  single-schema ``items``, ``minimum``, ``maximum``, ``minLength``, ``pattern``);
- ``avro_schema()``: the Avro record schema for binary payloads;
- ``row_type()``, ``child_row_types()`` and ``aggregate_row_type()``: Beam rows
  (``NamedTuple`` + ``RowCoder``) of the main table, of each array that fans out to
  a child table and of the aggregate, built once when the contract is made;

and, in the modules beside this one, the PostgreSQL tables of those rows
(``schemas.tables``) and their SQL (``schemas.ddl``, ``schemas.sql``), the graph's
callables over the rows (``schemas.rows``) and the normalised row of an event
(``schemas.normalise``).  Their pyarrow schemas come from the same row types
(``transforms.sinks.arrow_schema``).
"""

# No `from __future__ import annotations` here: the row types built below are
# NamedTuples whose schemas Beam infers from evaluated annotations.
import dataclasses
import re
import typing

from apache_beam import coders

from schemas.fields import SCALAR_KINDS, Child, Column, Computed, ContractError, Field
from schemas.values import PARTITION_GRANULARITIES

__all__ = ["Aggregate", "Contract", "DedupPolicy"]

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
            if field.kind not in SCALAR_KINDS:
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
        # The rows are part of the declaration: built once, here, and never changed.
        object.__setattr__(self, "_main_row", _main_row(self))
        object.__setattr__(self, "_child_rows", tuple(_child_row(self, c) for c in self.children))
        object.__setattr__(self, "_aggregate_row", _aggregate_row(self))

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
        """The main table's row: the declared columns, then the envelope (``ENVELOPE``)."""
        return self._main_row

    def child_columns(self, child: Child) -> list[tuple[str, str]]:
        """(column, item field) of a child table's item columns; timestamps get ``_ms``."""
        items = self.field(child.path).items
        if items.kind != "object":
            return [("value", "")]
        return [
            (f"{f.name}_ms" if f.kind == "timestamp" else f.name, f.name)
            for f in items.fields
            if f.kind in SCALAR_KINDS
        ]

    def child_row_types(self) -> dict[str, type]:
        """Per child table, its row: the parent id, the item's index, its scalar
        fields (timestamps as ``<name>_ms``) or ``value``, then ``run_id``."""
        return {c.table: row for c, row in zip(self.children, self._child_rows, strict=True)}

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
        """The aggregate's row: one pane of one (window, group) (see ``Aggregate``)."""
        return self._aggregate_row

    def column_path(self, column: str) -> str:
        """The field path of the main-table column ``column``."""
        for c in self.columns:
            if c.name == column:
                return c.path
        raise ContractError(f"{self.name}: no column {column!r}")


# --- the row types, built once per contract by Contract.__post_init__ ---------------


def _main_row(contract: Contract) -> type:
    columns = [(c.name, contract.field(c.path).python_type()) for c in contract.columns]
    return _row(f"{_camel(contract.name)}Row", columns + list(ENVELOPE), contract.module)


def _child_row(contract: Contract, child: Child) -> type:
    items = contract.field(child.path).items
    parts = [
        (contract.id_column(), contract.field(contract.id_field).python_type()),
        ("item_index", int),
    ]
    if items.kind == "object":
        by_name = {f.name: f for f in items.fields}
        parts += [(c, by_name[f].python_type()) for c, f in contract.child_columns(child)]
    else:
        parts.append(("value", items.python_type()))
    parts.append(("run_id", str))
    return _row(f"{_camel(child.table)}Row", parts, contract.module)


def _aggregate_row(contract: Contract) -> type:
    agg = contract.aggregate
    parts = [
        ("window_start_ms", int),
        ("window_end_ms", int),
        *((key, contract.field(contract.column_path(key)).python_type()) for key in agg.keys),
        (agg.count_column, int),
        *((column, float) for column in agg.measure_columns()),
        ("pane_index", int),
        ("pane_timing", str),  # on_time | late
        ("run_id", str),
    ]
    return _row(f"{_camel(agg.name)}Row", parts, contract.module)


def _row(name: str, columns, module: str) -> type:
    row_type = typing.NamedTuple(name, list(columns))
    # Pickled by reference: the dataset module binds the type under this name.
    row_type.__module__ = module
    coders.registry.register_coder(row_type, coders.RowCoder)
    return row_type


def _camel(name: str) -> str:
    return "".join(part.capitalize() for part in name.split("_"))
