"""Sinks: Parquet files and PostgreSQL rows (Beam's Java ``JdbcIO`` via ``WriteToJdbc``).

Both take typed ``NamedTuple`` rows.  The Parquet schema and the SQL upsert are
derived from the row type, so a field added to the row reaches both.
"""

from __future__ import annotations

import dataclasses
import typing

import apache_beam as beam
import pyarrow as pa
from apache_beam.io.jdbc import WriteToJdbc
from apache_beam.io.parquetio import WriteToParquet

__all__ = ["JdbcTarget", "WriteParquetFiles", "WriteToPostgres", "arrow_schema", "upsert_statement"]

_ARROW_TYPES = {
    str: pa.string(),
    int: pa.int64(),
    float: pa.float64(),
    bool: pa.bool_(),
    bytes: pa.binary(),
}


def _unwrap_optional(tp) -> tuple[type, bool]:
    if typing.get_origin(tp) is typing.Union:
        args = [a for a in typing.get_args(tp) if a is not type(None)]
        if len(args) == 1:
            return args[0], True
    return tp, False


def arrow_schema(row_type: type) -> pa.Schema:
    """The pyarrow schema of a ``NamedTuple`` row type (``Optional[X]`` → nullable)."""
    fields = []
    for name, tp in typing.get_type_hints(row_type).items():
        base, nullable = _unwrap_optional(tp)
        if base not in _ARROW_TYPES:
            raise TypeError(f"{row_type.__name__}.{name}: no Parquet type for {tp!r}")
        fields.append(pa.field(name, _ARROW_TYPES[base], nullable=nullable))
    return pa.schema(fields)


def upsert_statement(
    table: str,
    row_type: type,
    key_columns: typing.Sequence[str],
    casts: typing.Mapping[str, str] | None = None,
) -> str:
    """``INSERT … ON CONFLICT (keys) DO UPDATE`` over every field of ``row_type``.

    The statement binds fields positionally in the row's field order, which is how
    ``WriteToJdbc`` binds them.  ``casts`` maps a column to the SQL type its text
    is cast to (``CAST(? AS jsonb)``: strings are bound as varchar).
    """
    casts = casts or {}
    columns = list(row_type._fields)
    unknown = set(key_columns) - set(columns)
    if unknown:
        raise ValueError(f"key columns {sorted(unknown)} are not fields of {row_type.__name__}")
    values = ", ".join(f"CAST(? AS {casts[c]})" if c in casts else "?" for c in columns)
    updates = ", ".join(f"{c} = EXCLUDED.{c}" for c in columns if c not in key_columns)
    return (
        f"INSERT INTO {table} ({', '.join(columns)}) VALUES ({values}) "
        f"ON CONFLICT ({', '.join(key_columns)}) DO UPDATE SET {updates}"
    )


@dataclasses.dataclass(frozen=True)
class JdbcTarget:
    """A database to write to.  ``repr`` hides the password."""

    jdbc_url: str
    username: str
    password: str = dataclasses.field(repr=False)
    driver_class_name: str = "org.postgresql.Driver"


class WriteToPostgres(beam.PTransform):
    """Writes typed rows with ``WriteToJdbc`` and an explicit upsert.

    The Java writer batches statements and retries a failed batch; it has no
    output for failed rows, so a row the database refuses fails the bundle (and
    the runner retries it).  Upserts make those retries and re-reads idempotent.
    """

    def __init__(
        self,
        table: str,
        row_type: type,
        statement: str,
        target: JdbcTarget,
        expansion_service: str,
        batch_size: int = 1000,
    ):
        super().__init__()
        self._table = table
        self._row_type = row_type
        self._statement = statement
        self._target = target
        self._expansion_service = expansion_service
        self._batch_size = batch_size

    def expand(self, rows):
        return (
            rows
            # Cross-language sinks need the schema'd coder on their input.
            | "AsRows" >> beam.Map(lambda row: row).with_output_types(self._row_type)
            | "WriteToJdbc"
            >> WriteToJdbc(
                table_name=self._table,
                driver_class_name=self._target.driver_class_name,
                jdbc_url=self._target.jdbc_url,
                username=self._target.username,
                password=self._target.password,
                statement=self._statement,
                write_batch_size=self._batch_size,
                expansion_service=self._expansion_service,
            )
        )


class WriteParquetFiles(beam.PTransform):
    """Writes typed rows to ``<prefix>-SSSSS-of-NNNNN.parquet`` files.

    Files appear only when the write finalizes (Beam writes to a temporary folder
    first), so a reader never sees a half-written file.
    """

    def __init__(self, file_path_prefix: str, row_type: type):
        super().__init__()
        self._prefix = file_path_prefix
        self._row_type = row_type

    def expand(self, rows):
        return (
            rows
            | "ToDict" >> beam.Map(lambda row: row._asdict())
            | "WriteToParquet"
            >> WriteToParquet(
                self._prefix, arrow_schema(self._row_type), file_name_suffix=".parquet"
            )
        )
