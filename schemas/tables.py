"""The PostgreSQL tables the pipeline writes: name, row type, upsert key, DDL hints.

A dataset's tables derive from its contract (``DatasetTables.of``): the main table,
one per child array, and the aggregate's.  The pipeline's own tables (dead letters,
the duplicate log, the per-window stage counts) are shared by every dataset: each
row names its dataset, which leads the table's key, and its run.  DDL is derived
from these (``schemas.ddl``) and applied as additive migrations by
``python -m tools.stack migrate`` (``./run_local.sh start`` runs it).  The column
order of each upsert is the field order of its row type (the Java writer binds rows
positionally).
"""

from __future__ import annotations

import dataclasses

from schemas.contract import Contract, Table
from schemas.records import DeadLetter, Duplicate, StageCount

__all__ = ["DEAD_LETTERS", "DUPLICATE_LOG", "DatasetTables", "SHARED", "STAGE_COUNTS", "Table"]

DEAD_LETTERS = Table(
    "dead_letters",
    DeadLetter,
    ("dataset", "kafka_topic", "kafka_partition", "kafka_offset", "stage"),
    sql_types={"kafka_partition": "integer"},
)
DUPLICATE_LOG = Table(
    "duplicate_log",
    Duplicate,
    ("dataset", "kafka_topic", "kafka_partition", "kafka_offset"),
    sql_types={"kafka_partition": "integer", "kept_partition": "integer"},
)
STAGE_COUNTS = Table(
    "window_stage_counts",
    StageCount,
    ("dataset", "run_id", "window_start_ms", "window_end_ms", "stage"),
    generated_times=("window_start_ms",),
    forward_only="pane_index",
)

# The tables every dataset shares, in the order migrations create them.
SHARED = (DEAD_LETTERS, DUPLICATE_LOG, STAGE_COUNTS)


@dataclasses.dataclass(frozen=True)
class DatasetTables:
    """One dataset's tables, derived from its contract."""

    main: Table
    children: tuple[Table, ...]
    aggregate: Table

    @classmethod
    def of(cls, contract: Contract) -> DatasetTables:
        main, *children = contract.tables()
        return cls(main, tuple(children), contract.aggregate_table())

    def all(self) -> tuple[Table, ...]:
        """Every table of the dataset, in the order migrations create them."""
        return (self.main, *self.children, self.aggregate)
