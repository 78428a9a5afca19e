"""The customer-events contract: media-streaming events as JSON (or Avro) objects.

One declaration, ``CONTRACT``; the JSON Schema the validator compiles, the Avro
schema, the row types, their pyarrow schemas and the PostgreSQL tables all derive
from it (``schemas.contract``).  Every object, nested ones included, requires all
of its keys and allows no others.

Semantics worth knowing:

- ``format`` is not used (validators treat it as an annotation by default);
  timestamps are checked by ``pattern``, written with ``[0-9]`` rather than
  ``\\d``, which in Python matches any Unicode digit;
- ``integer`` accepts a float with no fractional part (``1.0``), as the spec says,
  and rejects booleans; ``number`` rejects booleans too;
- Python validators search patterns with ``re.search``, where ``$`` also matches
  before one final newline, so ``"2026-11-22T05:00:00Z\\n"`` passes the pattern
  although an ECMA-262 validator would refuse it; normalisation then refuses it as
  a ``bad_timestamp`` (``datetime.fromisoformat`` does not take the newline).
"""

# No `from __future__ import annotations` here: the row types bound below are
# NamedTuples whose schemas Beam infers from evaluated annotations.
from schemas.contract import (
    Aggregate,
    Child,
    Column,
    Contract,
    Field,
    QualityCheck,
)
from schemas.dataset import Dataset

__all__ = [
    "CONTRACT",
    "CustomerEventCountsRow",
    "CustomerEventActionsRow",
    "CustomerEventRecommendationsRow",
    "CustomerEventSearchesRow",
    "CustomerEventsRow",
    "DATASET",
    "EVENT_TIME_FIELD",
    "ID_FIELD",
    "load_schema",
    "to_customer_event",
]


def _str(name, **kw):
    return Field(name, "string", **kw)


def _obj(name, *fields):
    return Field(name, "object", fields=tuple(fields))


CONTRACT = Contract(
    name="customer_events",
    title="One media-streaming customer event",
    module=__name__,
    topic="customer_events",
    table="customer_events",
    fields=(
        _str("event_id", min_length=1, description="unique per event; carries the run id"),
        _str("user_id", min_length=1, description="the Kafka key"),
        _str("run_id", min_length=1, description="the producer run that made the event"),
        _str("event_type", enum=("content_play", "search", "browse")),
        Field("timestamp", "timestamp", description="event time, ISO-8601 with an offset"),
        _obj(
            "device",
            _str("type", enum=("mobile", "desktop", "tablet", "smartTV")),
            _str("os", enum=("Android", "iOS", "Windows", "macOS", "Linux")),
            _str("os_version"),
            _str("app_version"),
            _str("model"),
        ),
        _obj("location", _str("country"), _str("city"), _str("region"), _str("timezone")),
        _obj(
            "content",
            _str("id"),
            _str("title"),
            _str("type", enum=("Movie", "TV Show", "Documentary", "Short")),
            Field("episode", "integer", nullable=True, minimum=1),
            Field("season", "integer", nullable=True, minimum=1),
            _str("provider"),
            _str("genre"),
            Field("release_year", "integer", minimum=1900, maximum=2100),
            Field("duration", "integer", minimum=0, description="minutes"),
            _str("language"),
        ),
        _obj(
            "user_subscription",
            _str("plan", enum=("Basic", "Standard", "Premium")),
            Field("start_date", "date"),
            _str("billing_cycle", enum=("monthly", "yearly")),
            Field("connected_services", "array", items=_str("service")),
        ),
        _obj(
            "event_details",
            Field("play_duration", "integer", minimum=0),
            Field("play_percentage", "number", minimum=0, maximum=100),
            _str("playback_quality", enum=("SD", "HD", "4K")),
            Field("buffering_incidents", "integer", minimum=0),
            Field("playback_speed", "number", minimum=0.1),
            Field("paused", "boolean"),
            Field("completed", "boolean"),
            _str("network_type", enum=("WiFi", "Mobile", "Ethernet")),
            _str("bandwidth"),
        ),
        Field(
            "user_action",
            "array",
            items=_obj(
                "action",
                _str(
                    "action_type",
                    enum=("play", "pause", "seek", "quality_change", "speed_change"),
                ),
                Field("timestamp", "timestamp"),
                Field("duration", "integer", nullable=True),
                Field("old_speed", "number", nullable=True),
                Field("new_speed", "number", nullable=True),
                Field("old_quality", "string", nullable=True),
                Field("new_quality", "string", nullable=True),
                Field("completed", "boolean", nullable=True),
            ),
        ),
        Field(
            "recommendations",
            "array",
            items=_obj(
                "recommendation",
                _str("content_id"),
                Field("position", "integer", minimum=1),
                _str("algorithm", enum=("content_based", "collaborative", "hybrid")),
                Field("clicked", "boolean"),
            ),
        ),
        Field(
            "search_history",
            "array",
            items=_obj(
                "search",
                _str("search_id"),
                Field("timestamp", "timestamp"),
                _str("query"),
                Field("results_count", "integer", minimum=0),
            ),
        ),
    ),
    id_field="event_id",
    event_time_field="timestamp",
    columns=(
        Column("event_id", "event_id"),
        Column("user_id", "user_id"),
        Column("event_type", "event_type"),
        Column("event_time_ms", "timestamp"),
        Column("device_type", "device.type"),
        Column("country", "location.country"),
        Column("content_id", "content.id"),
        Column("subscription_plan", "user_subscription.plan"),
    ),
    children=(
        Child("customer_event_actions", "user_action"),
        Child("customer_event_recommendations", "recommendations"),
        Child("customer_event_searches", "search_history"),
    ),
    partitioning=("event_date", "event_hour"),
    aggregates=(
        Aggregate(
            "customer_event_counts", key="event_type", window_s=60, count_column="event_count"
        ),
    ),
    quality_checks=(
        QualityCheck(
            "completed_play_has_duration",
            "NOT (payload->'event_details'->>'completed')::boolean "
            "OR (payload->'event_details'->>'play_duration')::int > 0",
        ),
    ),
    reconciliation=(
        "produced == valid_unique + duplicates + dead_letters",
        "parquet_events == postgres_events == valid_unique == gold_total",
    ),
    confluent_schema_id=1,
)

# The field that identifies an event (dedup key) and the one that dates it.
ID_FIELD = CONTRACT.id_field
EVENT_TIME_FIELD = CONTRACT.event_time_field

# Row types, bound here under their own names so that they pickle by reference.
CustomerEventsRow = CONTRACT.row_type()
_children = CONTRACT.child_row_types()
CustomerEventActionsRow = _children["customer_event_actions"]
CustomerEventRecommendationsRow = _children["customer_event_recommendations"]
CustomerEventSearchesRow = _children["customer_event_searches"]

# One pane of the events per event type per window (the counts table's row).
CustomerEventCountsRow = CONTRACT.aggregate_row_type()

DATASET = Dataset(CONTRACT)
to_customer_event = DATASET.to_row


def load_schema() -> dict:
    """The contract's JSON Schema, a fresh dict on every call (callers may change it)."""
    return CONTRACT.json_schema()
