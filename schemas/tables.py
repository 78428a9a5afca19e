"""The PostgreSQL tables the pipeline writes: name, row type, upsert key, DDL hints.

A dataset's tables derive from its contract (``DatasetTables.of``): the main table,
one per child array, and the aggregate's.  The pipeline's own tables (dead letters,
the duplicate log, the per-window stage counts) are shared by every dataset: each
row names its dataset, which leads the table's key, and its run.  Every table is
read by run (``RUN_READ``, ``SHARED_RUN_READ``): its key or an index it declares
serves that read.  Their SQL derives from these: the DDL and its indexes
(``schemas.ddl``, applied as additive migrations by ``python -m tools.stack
migrate``; ``./run_local.sh start`` runs it) and the upsert (``schemas.sql``).  The
column order of each upsert is the field order of its row type (the Java writer
binds rows positionally).
"""

from __future__ import annotations

import dataclasses
import typing

from schemas.contract import Contract
from schemas.records import DeadLetter, Duplicate, StageCount

__all__ = [
    "DEAD_LETTERS",
    "DUPLICATE_LOG",
    "RUN_READ",
    "SHARED_RUN_READ",
    "SHARED",
    "STAGE_COUNTS",
    "DatasetTables",
    "Table",
]

# What a read of one run's rows names (the progress line, the reconciliation, the
# bench's probes, a dashboard): the run, and in a shared table the dataset too.  Each
# table's primary key or one of its ``indexes`` leads with these columns.
RUN_READ = ("run_id",)
SHARED_RUN_READ = ("run_id", "dataset")


@dataclasses.dataclass(frozen=True)
class Table:
    """A PostgreSQL table written from rows of ``row_type``.

    Attributes:
      name: the table.
      row_type: the ``NamedTuple`` bound positionally by the upsert.
      key_columns: the upsert's conflict target and primary key.
      casts: column → SQL type its bound text is cast to (``jsonb``).
      sql_types: column → SQL type where the default from the Python type is wrong.
      generated_times: ``*_ms`` columns that get a generated ``timestamptz`` beside them.
      forward_only: the columns the upsert never lets go backwards, compared in order
        (an aggregate's: its count, then ``pane_index``; a ``keep_latest`` main
        table's: its order column).
      first_copy_only: within a run, a key's row is rewritten only by the record
        that wrote it, never by another copy (a main table that drops later copies).
      indexes: the columns of each index beside the primary key (``schemas.ddl``
        names them ``<table>_<columns>_idx``): the reads by run where the key does
        not lead with the run's columns (``RUN_READ``, ``SHARED_RUN_READ``).
    """

    name: str
    row_type: type
    key_columns: tuple[str, ...]
    casts: typing.Mapping[str, str] = dataclasses.field(default_factory=dict)
    sql_types: typing.Mapping[str, str] = dataclasses.field(default_factory=dict)
    generated_times: tuple[str, ...] = ()
    forward_only: tuple[str, ...] = ()
    first_copy_only: bool = False
    indexes: tuple[tuple[str, ...], ...] = ()


DEAD_LETTERS = Table(
    "dead_letters",
    DeadLetter,
    ("dataset", "kafka_topic", "kafka_partition", "kafka_offset", "stage"),
    sql_types={"kafka_partition": "integer"},
    indexes=(SHARED_RUN_READ,),
)
DUPLICATE_LOG = Table(
    "duplicate_log",
    Duplicate,
    ("dataset", "kafka_topic", "kafka_partition", "kafka_offset"),
    sql_types={"kafka_partition": "integer", "kept_partition": "integer"},
    indexes=(SHARED_RUN_READ,),
)
# Its key leads with (dataset, run_id): a read by run needs no other index.
STAGE_COUNTS = Table(
    "window_stage_counts",
    StageCount,
    ("dataset", "run_id", "window_start_ms", "window_end_ms", "stage"),
    generated_times=("window_start_ms",),
    forward_only=("record_count", "pane_index"),
)

# The tables every dataset shares, in the order migrations create them.
SHARED = (DEAD_LETTERS, DUPLICATE_LOG, STAGE_COUNTS)


@dataclasses.dataclass(frozen=True)
class DatasetTables:
    """One dataset's tables, derived from its contract.

    The main table is keyed by the id column; a ``keep_latest`` dataset's upsert is
    guarded on the order column, so an older version never overwrites a newer; a
    ``drop_later_copies`` dataset's keeps the first copy's row, so a copy that comes
    after the dedup TTL (a late event) never replaces it.  A child table is keyed by
    the id column and the item's index.  The aggregate's keeps the latest pane of
    each (run, window, group).
    """

    main: Table
    children: tuple[Table, ...]
    aggregate: Table

    @classmethod
    def of(cls, contract: Contract) -> DatasetTables:
        return cls(_main_table(contract), _child_tables(contract), _aggregate_table(contract))

    def all(self) -> tuple[Table, ...]:
        """Every table of the dataset, in the order migrations create them."""
        return (self.main, *self.children, self.aggregate)


def _main_table(contract: Contract) -> Table:
    timestamps = tuple(
        c.name for c in contract.columns if contract.field(c.path).kind == "timestamp"
    )
    return Table(
        contract.table,
        contract.row_type(),
        (contract.id_column(),),
        casts={"payload": "jsonb"},
        sql_types={"payload": "jsonb", "kafka_partition": "integer"},
        generated_times=timestamps,
        forward_only=(contract.order_column(),) if contract.order_column() else (),
        first_copy_only=contract.dedup.kind == "drop_later_copies",
        indexes=(RUN_READ,),
    )


def _child_tables(contract: Contract) -> tuple[Table, ...]:
    tables = []
    row_types = contract.child_row_types().values()
    for child, row_type in zip(contract.children, row_types, strict=True):
        items = contract.field(child.path).items
        times = tuple(
            column
            for column, name in contract.child_columns(child)
            if items.kind == "object"
            and next(f for f in items.fields if f.name == name).kind == "timestamp"
        )
        key = (contract.id_column(), "item_index")
        tables.append(Table(child.table, row_type, key, generated_times=times, indexes=(RUN_READ,)))
    return tuple(tables)


def _aggregate_table(contract: Contract) -> Table:
    agg = contract.aggregate
    return Table(
        agg.name,
        contract.aggregate_row_type(),
        ("run_id", "window_start_ms", "window_end_ms", *agg.keys),
        generated_times=("window_start_ms",),  # its key leads with run_id: no index
        # A window's count only grows (transforms.aggregate): the row of the largest
        # count is the final one, even when a restore fired its panes again with other
        # indexes.
        forward_only=(agg.count_column, "pane_index"),
    )
