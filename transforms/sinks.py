"""Sinks: Parquet files and PostgreSQL rows (a Java JDBC writer, cross-language).

Both take typed ``NamedTuple`` rows.  The Parquet schema and the SQL statements are
derived from the row type, so a field added to the row reaches both.
``WriteTablesToPostgres`` hands the Java writer one CSV batch of a table's rows per
element (``CopyBatch``).
"""

from __future__ import annotations

import dataclasses
import io
import typing

import apache_beam as beam
import pyarrow as pa
import pyarrow.csv as pa_csv
import pyarrow.parquet as pq
from apache_beam import coders
from apache_beam.io.filesystems import FileSystems
from apache_beam.io.parquetio import WriteToParquetBatched
from apache_beam.transforms import window
from apache_beam.transforms.external import ExternalTransform, NamedTupleBasedPayloadBuilder
from apache_beam.utils.timestamp import Timestamp
from apache_beam.utils.windowed_value import WindowedValue

from schemas.row_types import unwrap_optional
from schemas.sql import copy_statement, merge_statements, staging_ddl
from transforms.batching import BatchCoder

__all__ = [
    "POSTGRES_COPY_MERGE_URN",
    "CopyBatch",
    "JdbcTarget",
    "WriteParquetFiles",
    "WriteTablesToPostgres",
    "arrow_schema",
    "csv_rows",
]

# Registered by java/expansion-service (PostgresCopyMergeRegistrar).
POSTGRES_COPY_MERGE_URN = "beamline:transform:postgres_copy_merge:v1"

_ARROW_TYPES = {
    str: pa.string(),
    int: pa.int64(),
    float: pa.float64(),
    bool: pa.bool_(),
    bytes: pa.binary(),
}


def arrow_schema(row_type: type) -> pa.Schema:
    """The pyarrow schema of a ``NamedTuple`` row type (``Optional[X]`` → nullable)."""
    fields = []
    for name, tp in typing.get_type_hints(row_type).items():
        base, nullable = unwrap_optional(tp)
        if base not in _ARROW_TYPES:
            raise TypeError(f"{row_type.__name__}.{name}: no Parquet type for {tp!r}")
        fields.append(pa.field(name, _ARROW_TYPES[base], nullable=nullable))
    return pa.schema(fields)


def rows_to_table(rows: typing.Sequence[tuple], schema: pa.Schema) -> pa.Table:
    """Typed rows (``NamedTuple``, fields in ``schema``'s order) as one pyarrow Table,
    built column by column: no dict per row."""
    if not rows:
        return schema.empty_table()
    columns = zip(*rows, strict=True)
    return pa.Table.from_arrays(
        [pa.array(column, type=field.type) for column, field in zip(columns, schema, strict=True)],
        schema=schema,
    )


class _RowsToTablesFn(beam.DoFn):
    """Typed rows → pyarrow Tables of up to ``max_rows`` rows (the rest at the end of
    the bundle), for Beam's batched Parquet write."""

    def __init__(self, schema: pa.Schema, max_rows: int = 50_000):
        self._schema = schema
        self._max_rows = max_rows

    def start_bundle(self):
        self._rows: list[tuple] = []

    def process(self, row):
        self._rows.append(row)
        if len(self._rows) >= self._max_rows:
            yield rows_to_table(self._rows, self._schema)
            self._rows = []

    def finish_bundle(self):
        if self._rows:
            yield window.GlobalWindows.windowed_value(rows_to_table(self._rows, self._schema))
            self._rows = []


@dataclasses.dataclass(frozen=True)
class JdbcTarget:
    """A database to write to, and where the worker finds its password.

    The password itself is never here: it would travel in the job graph (the
    expansion request, the pipeline every runner receives, a Dataflow job file).
    Exactly one of ``password_file`` (a path on the worker) and ``password_env``
    (an environment variable of the worker) names it; the Java writer reads it
    when it first connects.
    """

    jdbc_url: str
    username: str
    password_file: str | None = None
    password_env: str | None = None

    def __post_init__(self):
        if (self.password_file is None) == (self.password_env is None):
            raise ValueError("JdbcTarget needs exactly one of password_file and password_env")


# One table's rows as the Java writer COPYs them: ``rows`` CSV lines (``csv_rows``).
# The functional form: Beam infers a cross-language payload's schema from evaluated
# annotations, which ``from __future__ import annotations`` would leave as strings.
CopyBatch = typing.NamedTuple(  # noqa: UP014
    "CopyBatch", [("table", str), ("rows", int), ("csv", bytes)]
)
beam.coders.registry.register_coder(CopyBatch, beam.coders.RowCoder)

_CopyMergeConfig = typing.NamedTuple(  # noqa: UP014
    "_CopyMergeConfig",
    [
        ("jdbc_url", str),
        ("username", str),
        ("password_file", typing.Optional[str]),  # noqa: UP045
        ("password_env", typing.Optional[str]),  # noqa: UP045
        ("tables", typing.List[str]),  # noqa: UP006
        ("stage_ddl", typing.List[str]),  # noqa: UP006
        ("copy_sql", typing.List[str]),  # noqa: UP006
        ("merge_tables", typing.List[str]),  # noqa: UP006
        ("merge_sql", typing.List[str]),  # noqa: UP006
        ("flush_bytes", int),
    ],
)


def csv_rows(rows: typing.Sequence[tuple], row_type: type) -> bytes:
    """Typed rows as the CSV that ``schemas.sql.copy_statement`` reads, one line a row.

    Every value is quoted, so an empty string is ``""`` and NULL an empty field, and a
    ``\\.`` is data, never the end of the input.  pyarrow writes the text in C++,
    column by column: doubles in their shortest form that reads back the same,
    booleans as ``true``/``false``.  ``bytes`` fields go as bytea's hex text
    (``\\x…``), which pyarrow's CSV writer cannot do itself.
    """
    schema = arrow_schema(row_type)
    if not rows:
        return b""
    arrays = []
    for column, field in zip(zip(*rows, strict=True), schema, strict=True):
        if field.type == pa.binary():
            text = [None if v is None else "\\x" + v.hex() for v in column]
            arrays.append(pa.array(text, type=pa.string()))
        else:
            arrays.append(pa.array(column, type=field.type))
    table = pa.Table.from_arrays(arrays, names=schema.names)
    out = io.BytesIO()
    options = pa_csv.WriteOptions(include_header=False, quoting_style="all_valid")
    pa_csv.write_csv(table, out, options)
    return out.getvalue()


class _ToCopyBatchesFn(beam.DoFn):
    """One table's rows → ``CopyBatch`` elements: one per bundle, or one each time
    ``max_rows`` rows or about ``max_bytes`` of text are held.  Nothing is held
    across bundles.  A batch goes to the global window, stamped with the earliest
    timestamp of its rows (the writer reads neither)."""

    def __init__(self, table: str, row_type: type, max_rows: int, max_bytes: int):
        self._table = table
        self._row_type = row_type
        self._max_rows = max_rows
        self._max_bytes = max_bytes
        hints = typing.get_type_hints(row_type)
        # The fields whose length the text's size follows; the rest count as a few bytes.
        self._sized = [
            (i, 2 if unwrap_optional(tp)[0] is bytes else 1)
            for i, tp in enumerate(hints.values())
            if unwrap_optional(tp)[0] in (str, bytes)
        ]
        self._fixed = 4 * len(hints)

    def start_bundle(self):
        self._rows: list[tuple] = []
        self._bytes = 0
        self._earliest = None

    def process(self, row, timestamp=beam.DoFn.TimestampParam):
        self._rows.append(row)
        size = self._fixed
        for i, factor in self._sized:
            value = row[i]
            if value:
                size += factor * len(value)
        self._bytes += size
        if self._earliest is None or timestamp < self._earliest:
            self._earliest = timestamp
        if len(self._rows) >= self._max_rows or self._bytes >= self._max_bytes:
            yield self._batch()

    def finish_bundle(self):
        if self._rows:
            yield self._batch()

    def _batch(self) -> window.WindowedValue:
        batch = CopyBatch(self._table, len(self._rows), csv_rows(self._rows, self._row_type))
        value = window.GlobalWindows.windowed_value(batch, timestamp=self._earliest)
        self._rows, self._bytes, self._earliest = [], 0, None
        return value


class WriteTablesToPostgres(beam.PTransform):
    """Writes the rows of several tables to PostgreSQL through one Java writer, a
    batch of one table's rows per element.

    The input is a dict, table name → that table's ``NamedTuple`` rows; ``tables``
    are the ``schemas.tables.Table`` of each.  Each table's rows become ``CopyBatch``
    elements (CSV text, ``csv_rows``), one per bundle or per ``max_rows`` rows or
    ``max_bytes`` of text; the batches of every table are flattened into Beamline's
    Java writer (``PostgresCopyMergeRegistrar``).  Per bundle, or each time it holds
    ``flush_bytes`` of text, it writes one transaction: for each table in name order,
    ``COPY`` into a temporary staging table and the statements of
    ``schemas.sql.merge_statements``, which leave the table as the per-row upserts
    would, every guard kept.  A transient failure is retried with backoff, any other
    fails the bundle, which the runner retries; the merges make that idempotent.  The
    password never travels: ``target`` names where the worker finds it.
    """

    def __init__(
        self,
        tables: typing.Sequence[typing.Any],
        target: JdbcTarget,
        expansion_service: str,
        max_rows: int = 5_000,
        max_bytes: int = 8 << 20,
        flush_bytes: int = 16 << 20,
    ):
        super().__init__()
        self._tables = {t.name: t for t in sorted(tables, key=lambda t: t.name)}
        if len(self._tables) != len(tables):
            raise ValueError("WriteTablesToPostgres: a table is named twice")
        self._max_rows = max_rows
        self._max_bytes = max_bytes
        ordered = list(self._tables.values())
        merges = [(t.name, m) for t in ordered for m in merge_statements(t)]
        self._config = _CopyMergeConfig(
            jdbc_url=target.jdbc_url,
            username=target.username,
            password_file=target.password_file,
            password_env=target.password_env,
            tables=[t.name for t in ordered],
            stage_ddl=[staging_ddl(t) for t in ordered],
            copy_sql=[copy_statement(t) for t in ordered],
            merge_tables=[name for name, _ in merges],
            merge_sql=[sql for _, sql in merges],
            flush_bytes=flush_bytes,
        )
        self._expansion_service = expansion_service

    def expand(self, rows_by_table):
        given = set(rows_by_table)
        if given != set(self._tables):
            raise ValueError(
                f"WriteTablesToPostgres writes {sorted(self._tables)} but was given the rows "
                f"of {sorted(given)}"
            )
        batches = [
            rows_by_table[name]
            | f"Batch{name}"
            >> beam.ParDo(
                _ToCopyBatchesFn(name, table.row_type, self._max_rows, self._max_bytes)
            ).with_output_types(CopyBatch)
            # Every batch is in the global window already: one windowing for the Flatten.
            | f"Global{name}" >> beam.WindowInto(window.GlobalWindows())
            for name, table in self._tables.items()
        ]
        return (
            batches
            | "FlattenBatches" >> beam.Flatten().with_output_types(CopyBatch)
            | "CopyMerge"
            >> ExternalTransform(
                POSTGRES_COPY_MERGE_URN,
                NamedTupleBasedPayloadBuilder(self._config),
                self._expansion_service,
            )
        )


class _WriteWindowFileFn(beam.DoFn):
    """``(partition, chunks of rows of one window pane)`` → one Parquet file named
    after the window and pane, in the partition's folder (``partition`` "": no
    folder)."""

    def __init__(self, prefix: str, schema: pa.Schema):
        self._folder, self._name = prefix.rsplit("/", 1)
        self._schema = schema

    def process(
        self, element, win=beam.DoFn.WindowParam, pane=beam.DoFn.PaneInfoParam
    ) -> typing.Iterator[str]:
        partition, chunks = element
        table = rows_to_table([row for chunk in chunks for row in chunk], self._schema)
        if isinstance(win, window.GlobalWindow):
            span = "all"
        else:
            span = f"{win.start.micros // 1000}-{win.end.micros // 1000}"
        folder = FileSystems.join(self._folder, partition) if partition else self._folder
        path = FileSystems.join(folder, f"{self._name}-{span}-pane{pane.index}.parquet")
        # Beam's file systems: a local folder, or gs:// on Dataflow's workers.  The
        # rename replaces an earlier attempt's file, so a retry never adds one.
        with FileSystems.create(path + ".tmp") as out:
            pq.write_table(table, out)
        FileSystems.rename([path + ".tmp"], [path])
        yield path


class RowChunk(list):
    """Rows bound for one file, gathered in one bundle; travels as one pickle."""


class _RowChunkCoder(BatchCoder):
    """A ``RowChunk`` as one pickle, as a ``Batch`` travels."""

    def to_type_hint(self):
        return RowChunk


coders.registry.register_coder(RowChunk, _RowChunkCoder)


class _ChunkPerFileFn(beam.DoFn):
    """Rows → ``(partition, RowChunk)``, one per partition and file window per
    bundle, so the file write's ``GroupByKey`` is handed a chunk, not each row.

    With ``window_s`` (an unbounded input) a row's file window is the one of its
    **arrival** time, never earlier than its own: late data (a late event, a late
    pane of counts) is behind the watermark, and windowed by its own time it would
    be dropped by the ``GroupByKey``; at arrival time it is on time.  A chunk is
    stamped with the earliest arrival it holds, which lies in its window, so the
    ``WindowInto`` after this step puts it in the window of all its rows.
    """

    def __init__(self, partition_of, window_s: int | None, max_rows: int = 5000):
        self._partition_of = partition_of
        self._window_us = None if window_s is None else window_s * 1_000_000
        self._max_rows = max_rows

    def start_bundle(self):
        self._open: dict[tuple, list] = {}  # (partition, window start) → [earliest, rows]

    def process(self, row, timestamp=beam.DoFn.TimestampParam):
        partition = self._partition_of(row) if self._partition_of else ""
        if self._window_us is None:
            at, span = timestamp.micros, None
        else:
            at = max(timestamp.micros, Timestamp.now().micros)
            span = at - at % self._window_us
        chunk = self._open.get((partition, span))
        if chunk is None:
            chunk = self._open[(partition, span)] = [at, RowChunk()]
        chunk[0] = min(chunk[0], at)
        chunk[1].append(row)
        if len(chunk[1]) >= self._max_rows:
            del self._open[(partition, span)]
            yield self._emit(partition, chunk)

    def finish_bundle(self):
        for (partition, _), chunk in self._open.items():
            yield self._emit(partition, chunk)
        self._open = {}

    @staticmethod
    def _emit(partition: str, chunk: list) -> WindowedValue:
        earliest, rows = chunk
        return WindowedValue((partition, rows), Timestamp(micros=earliest), [window.GlobalWindow()])


class WriteParquetFiles(beam.PTransform):
    """Writes typed rows to ``<prefix>-SSSSS-of-NNNNN.parquet`` files.

    Files appear only when the write finalizes (Beam writes to a temporary folder
    first), so a reader never sees a half-written file.  Rows become pyarrow tables
    column by column (``rows_to_table``), never a dict per row.

    On an unbounded input, rows are cut into windows of ``window_s`` of **arrival**
    time (late rows would otherwise be dropped by the write's own grouping), a
    chunk per window and bundle reaches the grouping, and each window pane becomes
    one file, ``<prefix>-<start>-<end>-pane<N>.parquet``,
    written to a temporary name and renamed, so a retried bundle rewrites the same
    file instead of adding one.  (Beam's own unbounded file write uses windowed side
    inputs that make Prism 2.71 panic in its aggregate stage.)

    With ``partition_of`` (row → a folder such as ``year=2026/month=11/day=22/hour=05``)
    the files go to Hive-style partition folders beside the prefix's name: one file
    per partition and pane, ``<folder>/<partition>/<name>-<start>-<end>-pane<N>.parquet``
    (a bounded input: ``<name>-all-pane0.parquet``, all of a partition's rows in one
    file, grouped in memory).
    """

    def __init__(
        self,
        file_path_prefix: str,
        row_type: type,
        window_s: int = 60,
        partition_of: typing.Optional[typing.Callable[[typing.Any], str]] = None,
    ):
        super().__init__()
        self._prefix = file_path_prefix
        self._row_type = row_type
        self._window_s = window_s
        self._partition_of = partition_of

    def expand(self, rows):
        partition_of = self._partition_of
        schema = arrow_schema(self._row_type)
        if rows.is_bounded and partition_of is None:
            return (
                rows
                | "ToTables" >> beam.ParDo(_RowsToTablesFn(schema))
                | "WriteToParquet"
                >> WriteToParquetBatched(self._prefix, schema, file_name_suffix=".parquet")
            )
        chunks = rows | "ChunkPerFile" >> beam.ParDo(
            _ChunkPerFileFn(partition_of, None if rows.is_bounded else self._window_s)
        ).with_output_types(tuple[str, RowChunk])
        if not rows.is_bounded:
            chunks = chunks | "FileWindows" >> beam.WindowInto(window.FixedWindows(self._window_s))
        return (
            chunks
            | "GroupWindow" >> beam.GroupByKey()
            | "WriteWindowFile" >> beam.ParDo(_WriteWindowFileFn(self._prefix, schema))
        )
