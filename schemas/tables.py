"""The PostgreSQL tables the pipeline writes: name, row type, upsert key, DDL hints.

The customer-events table derives from its contract; the pipeline's own tables
(window counts, dead letters, the duplicate log, the per-window stage counts) from
their row types.  DDL is
derived from these (``schemas.ddl``) and applied as additive migrations by
``python -m tools.stack migrate`` (``./run_local.sh start`` runs it).
The column order of each upsert is the field order of its row type
(the Java writer binds rows positionally).
"""

from schemas.contract import Table
from schemas.customer_events import CONTRACT, EventTypeCount
from schemas.records import DeadLetter, Duplicate, StageCount

__all__ = ["ALL", "COUNTS", "DEAD_LETTERS", "DUPLICATE_LOG", "EVENTS", "STAGE_COUNTS", "Table"]

EVENTS = CONTRACT.tables()[0]
COUNTS = Table(
    "customer_event_counts",
    EventTypeCount,
    ("run_id", "window_start_ms", "window_end_ms", "event_type"),
    generated_times=("window_start_ms",),
    forward_only="pane_index",
)
DEAD_LETTERS = Table(
    "dead_letters",
    DeadLetter,
    ("kafka_topic", "kafka_partition", "kafka_offset", "stage"),
    sql_types={"kafka_partition": "integer"},
)
DUPLICATE_LOG = Table(
    "duplicate_log",
    Duplicate,
    ("kafka_topic", "kafka_partition", "kafka_offset"),
    sql_types={"kafka_partition": "integer", "kept_partition": "integer"},
)

STAGE_COUNTS = Table(
    "window_stage_counts",
    StageCount,
    ("run_id", "window_start_ms", "window_end_ms", "stage"),
    generated_times=("window_start_ms",),
    forward_only="pane_index",
)

# Every table the pipeline writes, in the order migrations create them.
ALL = (EVENTS, COUNTS, DEAD_LETTERS, DUPLICATE_LOG, STAGE_COUNTS)
