"""The customer-events contract: media-streaming events as JSON objects.

The contract is ``customer_events.schema.json`` next to this module, shipped as
package data.  It declares Draft 7 but uses only keywords whose meaning Draft 7
and 2020-12 share (``type``, ``properties``, ``required``,
``additionalProperties``, ``enum``, single-schema ``items``, ``minimum``,
``maximum``, ``minLength``, ``pattern``), so either validator gives the same
answer.  Every object, nested ones included, requires all of its keys and
allows no others.

Semantics worth knowing:

- ``format`` is not used (validators treat it as an annotation by default);
  timestamps are checked by ``pattern`` instead, written with ``[0-9]`` rather
  than ``\\d``, which in Python matches any Unicode digit;
- ``integer`` accepts a float with no fractional part (``1.0``), as the spec
  says, and rejects booleans; ``number`` rejects booleans too;
- Python validators search patterns with ``re.search``, where ``$`` also
  matches before one final newline, so ``"2026-11-22T05:00:00Z\\n"`` passes here
  although an ECMA-262 validator would refuse it.
"""

# No `from __future__ import annotations` here: row types may join this module,
# and Beam infers row schemas from evaluated annotations.
import json
import pathlib
import typing

from apache_beam import coders
from jsonschema import Draft7Validator

from transforms.normalise import canonical_json
from transforms.records import KafkaRecord

__all__ = [
    "EVENT_TIME_FIELD",
    "EventTypeCount",
    "CustomerEvent",
    "ID_FIELD",
    "SCHEMA_PATH",
    "load_schema",
    "to_customer_event",
    "to_event_type_count",
]

SCHEMA_PATH = pathlib.Path(__file__).resolve().with_name("customer_events.schema.json")


def load_schema() -> dict:
    """Reads the contract and returns it as a fresh dict.

    Returns:
        The parsed schema; a new object on every call, so callers may keep or
        change it freely.

    Raises:
        jsonschema.exceptions.SchemaError: the file is not a valid Draft 7 schema.
    """
    schema = json.loads(SCHEMA_PATH.read_text(encoding="utf-8"))
    Draft7Validator.check_schema(schema)
    return schema


# The field that identifies an event (dedup key) and the one that dates it.
ID_FIELD = "event_id"
EVENT_TIME_FIELD = "timestamp"


class CustomerEvent(typing.NamedTuple):
    """One valid, unique event: the columns people filter on, the whole event as JSON.

    ``payload`` is the event re-serialised (compact, UTF-8) and lands in a
    ``jsonb`` column; the Kafka coordinates say where the kept copy was read.
    """

    event_id: str
    user_id: str
    event_type: str
    event_time_ms: int
    device_type: str
    country: str
    content_id: str
    subscription_plan: str
    payload: str
    kafka_topic: str
    kafka_partition: int
    kafka_offset: int
    kafka_timestamp_ms: int
    run_id: str


class EventTypeCount(typing.NamedTuple):
    """Events of one type in one event-time window ``[window_start_ms, window_end_ms)``."""

    window_start_ms: int
    window_end_ms: int
    event_type: str
    event_count: int
    run_id: str


coders.registry.register_coder(CustomerEvent, coders.RowCoder)
coders.registry.register_coder(EventTypeCount, coders.RowCoder)


def to_customer_event(record: KafkaRecord, event: dict, event_time_ms: int, run_id: str):
    """The ``CustomerEvent`` row of a valid event read from ``record``."""
    return CustomerEvent(
        event_id=event["event_id"],
        user_id=event["user_id"],
        event_type=event["event_type"],
        event_time_ms=event_time_ms,
        device_type=event["device"]["type"],
        country=event["location"]["country"],
        content_id=event["content"]["id"],
        subscription_plan=event["user_subscription"]["plan"],
        payload=canonical_json(event),
        kafka_topic=record.topic,
        kafka_partition=record.partition,
        kafka_offset=record.offset,
        kafka_timestamp_ms=record.timestamp_ms,
        run_id=run_id,
    )


def to_event_type_count(
    event_type: str, count: int, window_start_ms: int, window_end_ms: int, run_id: str
) -> EventTypeCount:
    """The ``EventTypeCount`` row of one window's count (``CountPerWindow``'s ``to_row``)."""
    return EventTypeCount(window_start_ms, window_end_ms, event_type, count, run_id)
