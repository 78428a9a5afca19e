"""The minimal ``events`` dataset: generic product events from a web or app client.

Flat JSON objects, one per user action (a page view, a click, an item added to the
cart, a purchase, a sign-up), keyed by user on the topic ``events``.  Normalisation
fills ``source`` with ``web`` when a client sends none and enriches each purchase
with ``revenue = amount × quantity``; the aggregate counts events per type per
minute.  The faults the generator injects are derived from this contract
(``tools.event_producer.derived_invalid``).
"""

# No `from __future__ import annotations` here: the row types bound below are
# NamedTuples whose schemas Beam infers from evaluated annotations.
import random

from schemas.contract import Aggregate, Contract
from schemas.dataset import Dataset
from schemas.fields import Column, Computed, Field
from schemas.values import format_timestamp

__all__ = ["CONTRACT", "DATASET", "EventTypeCountsRow", "EventsRow", "new_maker"]

EVENT_TYPES = ("page_view", "click", "add_to_cart", "purchase", "signup")
SOURCES = ("web", "ios", "android")

CONTRACT = Contract(
    name="events",
    title="One product event from a web or app client",
    module=__name__,
    topic="events",
    table="events",
    fields=(
        Field("event_id", "string", min_length=1, description="unique per event"),
        Field("user_id", "string", min_length=1, description="the Kafka key"),
        Field("run_id", "string", min_length=1, description="the producer run"),
        Field("event_type", "string", enum=EVENT_TYPES),
        Field("timestamp", "timestamp", description="event time, ISO-8601 with an offset"),
        Field(
            "source",
            "string",
            enum=SOURCES,
            required=False,
            default="web",
            description="the client; web when absent",
        ),
        Field("session_id", "string", min_length=1),
        Field("page", "string"),
        Field("amount", "number", nullable=True, minimum=0, description="purchases only"),
        Field("quantity", "integer", minimum=0),
        Field(
            "revenue",
            "number",
            required=False,
            nullable=True,
            description="enrichment: amount × quantity",
        ),
    ),
    id_field="event_id",
    event_time_field="timestamp",
    columns=(
        Column("event_id", "event_id"),
        Column("user_id", "user_id"),
        Column("event_type", "event_type"),
        Column("event_time_ms", "timestamp"),
        Column("source", "source"),
        Column("session_id", "session_id"),
        Column("page", "page"),
        Column("amount", "amount"),
        Column("quantity", "quantity"),
        Column("revenue", "revenue"),
    ),
    computed=(Computed("revenue", "amount", "*", "quantity"),),
    confluent_schema_id=3,
    aggregates=(
        Aggregate("event_type_counts", keys=("event_type",), window_s=60, count_column="events"),
    ),
)

EventsRow = CONTRACT.row_type()
EventTypeCountsRow = CONTRACT.aggregate_row_type()

_PAGES = ("/", "/search", "/product", "/cart", "/checkout", "/account", "/help")
_WEIGHTS = (0.5, 0.25, 0.12, 0.08, 0.05)


def new_maker(rng: random.Random, fake, users: int, start_ms: int):
    """The record maker of one batch: ``users`` users, each with a few sessions."""
    sessions = {n: [fake.uuid4()[:8] for _ in range(3)] for n in range(1, users + 1)}

    def make(seq: int, event_ms: int, run_id: str) -> dict:
        user = rng.randint(1, users)
        event_type = rng.choices(EVENT_TYPES, _WEIGHTS)[0]
        purchase = event_type == "purchase"
        record = {
            "event_id": f"{run_id}-{seq:08d}",
            "user_id": f"u-{user}",
            "run_id": run_id,
            "event_type": event_type,
            "timestamp": format_timestamp(event_ms),
            "source": rng.choice(SOURCES),
            "session_id": rng.choice(sessions[user]),
            "page": "/checkout" if purchase else rng.choice(_PAGES),
            "amount": round(rng.uniform(2.0, 400.0), 2) if purchase else None,
            "quantity": rng.randint(1, 4) if purchase else 0,
        }
        if rng.random() < 0.1:  # an older client that sends no source
            del record["source"]
        return record

    return make


DATASET = Dataset(CONTRACT, key_field="user_id", new_maker=new_maker)
