"""The PostgreSQL tables the pipeline writes: name, row type, upsert key, casts.

The DDL is ``schemas/sql/002_customer_events.sql``; the column order of each
table's upsert is the field order of its row type (``WriteToJdbc`` binds rows
positionally).
"""

# No `from __future__ import annotations`: the row modules below must not have it
# either, and this one stays consistent with them.
import dataclasses
import typing

from schemas.customer_events import CustomerEvent, EventTypeCount
from transforms.dedup import Duplicate
from transforms.records import DeadLetter

__all__ = ["COUNTS", "DEAD_LETTERS", "DUPLICATE_LOG", "EVENTS", "Table"]


@dataclasses.dataclass(frozen=True)
class Table:
    """A table and how rows of ``row_type`` are upserted into it."""

    name: str
    row_type: type
    key_columns: tuple[str, ...]
    casts: typing.Mapping[str, str] = dataclasses.field(default_factory=dict)


EVENTS = Table("customer_events", CustomerEvent, ("event_id",), {"payload": "jsonb"})
COUNTS = Table(
    "customer_event_counts",
    EventTypeCount,
    ("run_id", "window_start_ms", "window_end_ms", "event_type"),
)
DEAD_LETTERS = Table(
    "dead_letters", DeadLetter, ("kafka_topic", "kafka_partition", "kafka_offset", "stage")
)
DUPLICATE_LOG = Table(
    "duplicate_log", Duplicate, ("kafka_topic", "kafka_partition", "kafka_offset")
)
