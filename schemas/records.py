"""The pipeline's own typed rows, whatever the dataset: a Kafka record as read, a
dead letter, a logged duplicate, a stage count; and the pure functions that build
dead letters.

All are ``typing.NamedTuple`` rows registered with ``RowCoder``, so they cross
runner and language boundaries with a schema (the Java sinks require that).
"""

# No `from __future__ import annotations` here: Beam infers row schemas from the
# evaluated annotations of these NamedTuples.
import typing

from apache_beam import coders

__all__ = [
    "COORDINATE_COLUMNS",
    "DEAD_LETTER_TAG",
    "DeadLetter",
    "Duplicate",
    "KafkaRecord",
    "PIPELINE_VERSION",
    "StageCount",
    "dead_letter",
    "preview",
]

# The columns that name a row's Kafka record, in the rows written from records.
COORDINATE_COLUMNS = ("kafka_topic", "kafka_partition", "kafka_offset")

# The tag of every dead-letter output in the graph.
DEAD_LETTER_TAG = "dead_letters"

# Written into every dead letter: which code refused the record (setup.py agrees).
PIPELINE_VERSION = "0.1.0"

PREVIEW_CHARS = 200


class KafkaRecord(typing.NamedTuple):
    """One Kafka record as read, with the coordinates that identify it."""

    topic: str
    partition: int
    offset: int
    timestamp_ms: int
    key: typing.Optional[bytes]
    value: typing.Optional[bytes]


class DeadLetter(typing.NamedTuple):
    """A record a stage could not accept, with what a person needs to act on it.

    ``reason`` is a stable code to group by (``not_utf8``, ``invalid_json`` …);
    ``detail`` is the human-readable message, exception types included as text;
    ``payload`` the raw bytes, unchanged, and ``preview`` their first characters
    as readable text (see ``preview``).  ``dataset`` is the registered dataset whose
    graph made it (stamped by the graph, so stages need not know it); it leads the
    shared tables' keys.
    """

    stage: str
    reason: str
    detail: str
    payload: typing.Optional[bytes]
    preview: str
    kafka_topic: str
    kafka_partition: int
    kafka_offset: int
    kafka_timestamp_ms: int
    kafka_key: typing.Optional[bytes]
    run_id: str
    pipeline_version: str
    dataset: str = ""


class StageCount(typing.NamedTuple):
    """How many records of one event-time window reached one stage (a pane, as counts)."""

    window_start_ms: int
    window_end_ms: int
    stage: str  # read, valid, duplicate, late, dead_letter:<stage>
    record_count: int
    pane_index: int
    pane_timing: str
    run_id: str
    dataset: str = ""


class Duplicate(typing.NamedTuple):
    """A dropped copy: where it was read, and which kept copy it repeated."""

    event_id: str
    kafka_topic: str
    kafka_partition: int
    kafka_offset: int
    kafka_timestamp_ms: int
    kept_partition: int
    kept_offset: int
    run_id: str
    dataset: str = ""


coders.registry.register_coder(KafkaRecord, coders.RowCoder)
coders.registry.register_coder(DeadLetter, coders.RowCoder)
coders.registry.register_coder(Duplicate, coders.RowCoder)
coders.registry.register_coder(StageCount, coders.RowCoder)


def preview(value: typing.Optional[bytes], limit: int = PREVIEW_CHARS) -> str:
    """The start of ``value`` as text a person can read and PostgreSQL can store.

    UTF-8 where it decodes, ``\\xNN`` escapes where it does not, NUL as ``\\x00``;
    ``…`` marks a cut.
    """
    if value is None:
        return ""
    text = value[: limit * 4].decode("utf-8", errors="backslashreplace").replace("\x00", "\\x00")
    return text if len(text) <= limit else text[:limit] + "…"


def dead_letter(
    record: KafkaRecord, stage: str, reason: str, detail: str, run_id: str
) -> DeadLetter:
    """The dead letter of ``record`` at ``stage``; the raw bytes travel unchanged."""
    return DeadLetter(
        stage=stage,
        reason=reason,
        detail=detail[:2000].replace("\x00", "\\x00"),
        payload=record.value,
        preview=preview(record.value),
        kafka_topic=record.topic,
        kafka_partition=record.partition,
        kafka_offset=record.offset,
        kafka_timestamp_ms=record.timestamp_ms,
        kafka_key=record.key,
        run_id=run_id,
        pipeline_version=PIPELINE_VERSION,
    )
