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
import datetime
import random

from schemas.contract import Aggregate, Contract
from schemas.dataset import Dataset
from schemas.fields import Child, Column, Field
from schemas.values import format_timestamp

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
    aggregates=(
        Aggregate(
            "customer_event_counts", keys=("event_type",), window_s=60, count_column="event_count"
        ),
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


# --- the generator's record maker --------------------------------------------------
# (tools.event_producer injects the faults; Faker comes in as an argument.)

EVENT_TYPES = ("content_play", "search", "browse")
_EVENT_TYPE_WEIGHTS = (0.6, 0.2, 0.2)

# (device type, os, os versions, models)
_DEVICES = (
    ("mobile", "Android", ("12", "13", "14", "15"), ("Pixel 8", "Galaxy S23", "Moto G84")),
    ("mobile", "iOS", ("16.7", "17.4", "18.1"), ("iPhone 13", "iPhone 14", "iPhone 15 Pro")),
    ("tablet", "Android", ("13", "14"), ("Galaxy Tab S9", "Lenovo Tab P12")),
    ("tablet", "iOS", ("17.4", "18.1"), ("iPad Air", "iPad Pro 11")),
    ("desktop", "Windows", ("10", "11"), ("Dell XPS 15", "HP Pavilion", "Surface Laptop")),
    ("desktop", "macOS", ("13.6", "14.4", "15.1"), ("MacBook Air", "MacBook Pro", "iMac")),
    ("desktop", "Linux", ("6.1", "6.8"), ("ThinkPad X1", "Framework 13")),
    ("smartTV", "Android", ("11", "12"), ("Sony Bravia", "Philips OLED", "TCL C845")),
    ("smartTV", "Linux", ("6.0", "7.0"), ("Samsung QN90", "LG C3")),
)
_APP_VERSIONS = ("5.2.0", "5.3.1", "5.4.0", "5.4.2", "6.0.0")

# (country, ((region, timezone), ...))
_LOCATIONS = (
    (
        "United States",
        (
            ("California", "America/Los_Angeles"),
            ("New York", "America/New_York"),
            ("Texas", "America/Chicago"),
            ("Colorado", "America/Denver"),
        ),
    ),
    ("Canada", (("Ontario", "America/Toronto"), ("British Columbia", "America/Vancouver"))),
    ("United Kingdom", (("England", "Europe/London"), ("Scotland", "Europe/London"))),
    ("Germany", (("Bavaria", "Europe/Berlin"), ("Hesse", "Europe/Berlin"))),
    ("France", (("Ile-de-France", "Europe/Paris"), ("Occitanie", "Europe/Paris"))),
    ("Brazil", (("Sao Paulo", "America/Sao_Paulo"),)),
    ("India", (("Maharashtra", "Asia/Kolkata"), ("Karnataka", "Asia/Kolkata"))),
    ("Japan", (("Tokyo", "Asia/Tokyo"), ("Osaka", "Asia/Tokyo"))),
    ("Australia", (("New South Wales", "Australia/Sydney"),)),
)

_CONTENT_TYPES = ("Movie", "TV Show", "Documentary", "Short")
# Length in minutes per content type.
_DURATION_MINUTES = {
    "Movie": (80, 180),
    "TV Show": (20, 60),
    "Documentary": (40, 120),
    "Short": (5, 20),
}
_GENRES = ("Drama", "Comedy", "Action", "Thriller", "Sci-Fi", "Horror", "Romance", "Animation")
_LANGUAGES = ("English", "Spanish", "French", "German", "Japanese", "Hindi", "Portuguese")
_PLANS = ("Basic", "Standard", "Premium")
_QUALITIES = {"Basic": ("SD",), "Standard": ("SD", "HD"), "Premium": ("SD", "HD", "4K")}
_SERVICES = ("Alexa", "Google Home", "Chromecast", "AirPlay", "Spotify", "Discord")
_NETWORKS = {
    "mobile": ("WiFi", "Mobile"),
    "tablet": ("WiFi", "Mobile"),
    "desktop": ("WiFi", "Ethernet"),
    "smartTV": ("WiFi", "Ethernet"),
}
_BANDWIDTHS_MBPS = (5, 10, 25, 50, 100, 300)
_SPEEDS = (0.5, 0.75, 1.0, 1.25, 1.5, 2.0)
_ACTION_TYPES = ("pause", "seek", "quality_change", "speed_change")
_ALGORITHMS = ("content_based", "collaborative", "hybrid")


class _World:
    """The users and the catalogue a batch draws from, made once per batch."""

    def __init__(self, rng: random.Random, fake, users: int, start_ms: int):
        start_day = (
            datetime.datetime.fromtimestamp(start_ms / 1000, tz=datetime.timezone.utc)
        ).date()
        providers = sorted({fake.company() for _ in range(8)})
        cities = [fake.city() for _ in range(min(users, 100))]
        self.catalogue = [
            self._content(rng, fake, k, providers, start_day.year) for k in range(300)
        ]
        self.queries = [" ".join(fake.words(rng.randint(1, 3))) for _ in range(100)]
        self.queries += [c["title"].lower() for c in self.catalogue[:50]]
        self.users = [self._user(rng, n, cities, start_day) for n in range(1, users + 1)]

    @staticmethod
    def _content(rng, fake, k, providers, max_year) -> dict:
        content_type = rng.choice(_CONTENT_TYPES)
        low, high = _DURATION_MINUTES[content_type]
        tv_show = content_type == "TV Show"
        return {
            "id": f"c-{k:05d}",
            "title": " ".join(fake.words(rng.randint(1, 4))).title(),
            "type": content_type,
            "episode": rng.randint(1, 24) if tv_show else None,
            "season": rng.randint(1, 8) if tv_show else None,
            "provider": rng.choice(providers),
            "genre": rng.choice(_GENRES),
            "release_year": rng.randint(1970, max_year),
            "duration": rng.randint(low, high) * 60 + rng.randint(0, 59),
            "language": rng.choice(_LANGUAGES),
        }

    @staticmethod
    def _user(rng, n, cities, start_day) -> dict:
        device_type, os_name, versions, models = rng.choice(_DEVICES)
        country, regions = rng.choice(_LOCATIONS)
        region, timezone = rng.choice(regions)
        plan = rng.choice(_PLANS)
        started = start_day - datetime.timedelta(days=rng.randint(1, 1500))
        return {
            "user_id": f"u-{n}",
            "device": {
                "type": device_type,
                "os": os_name,
                "os_version": rng.choice(versions),
                "app_version": rng.choice(_APP_VERSIONS),
                "model": rng.choice(models),
            },
            "location": {
                "country": country,
                "city": rng.choice(cities),
                "region": region,
                "timezone": timezone,
            },
            "user_subscription": {
                "plan": plan,
                "start_date": started.isoformat(),
                "billing_cycle": rng.choice(("monthly", "yearly")),
                "connected_services": rng.sample(_SERVICES, rng.randint(0, 3)),
            },
        }


def _event(rng, world: _World, run_id: str, seq: int, event_ms: int) -> dict:
    """One valid event; nested objects are fresh copies, safe to mutate."""
    user = rng.choice(world.users)
    content = dict(rng.choice(world.catalogue))
    event_type = rng.choices(EVENT_TYPES, _EVENT_TYPE_WEIGHTS)[0]
    plan = user["user_subscription"]["plan"]
    device_type = user["device"]["type"]
    quality = rng.choice(_QUALITIES[plan])
    speed = 1.0
    actions: list[dict] = []
    paused = completed = False
    play_duration = 0
    if event_type == "content_play":
        play_duration = rng.randint(1, content["duration"])
        completed = play_duration >= content["duration"] * 0.95
        at_ms = event_ms
        actions.append(_action("play", at_ms, duration=play_duration, completed=completed))
        for _ in range(rng.randint(0, 4)):
            at_ms += rng.randint(1_000, 600_000)
            kind = rng.choice(_ACTION_TYPES)
            if kind == "pause":
                paused = True
                actions.append(_action(kind, at_ms, duration=rng.randint(1, 900)))
            elif kind == "seek":
                actions.append(_action(kind, at_ms, duration=rng.randint(5, 600)))
            elif kind == "quality_change":
                new = rng.choice(_QUALITIES[plan])
                actions.append(_action(kind, at_ms, old_quality=quality, new_quality=new))
                quality = new
            else:
                new = rng.choice(_SPEEDS)
                actions.append(_action(kind, at_ms, old_speed=speed, new_speed=new))
                speed = new
    searches = rng.randint(1, 3) if event_type == "search" else rng.randint(0, 1)
    history = []
    search_ms = event_ms - rng.randint(0, 3_600_000)
    for _ in range(searches):
        history.append(
            {
                "search_id": f"s-{rng.getrandbits(48):012x}",
                "timestamp": format_timestamp(search_ms),
                "query": rng.choice(world.queries),
                "results_count": rng.randint(0, 500),
            }
        )
        search_ms = min(event_ms, search_ms + rng.randint(1_000, 120_000))
    picks = rng.sample(world.catalogue, rng.randint(0, 5))
    return {
        "event_id": f"{run_id}-{seq:08d}",
        "user_id": user["user_id"],
        "run_id": run_id,
        "event_type": event_type,
        "timestamp": format_timestamp(event_ms),
        "device": dict(user["device"]),
        "location": dict(user["location"]),
        "content": content,
        "user_subscription": {
            **user["user_subscription"],
            "connected_services": list(user["user_subscription"]["connected_services"]),
        },
        "event_details": {
            "play_duration": play_duration,
            "play_percentage": round(100.0 * play_duration / content["duration"], 2),
            "playback_quality": quality,
            "buffering_incidents": rng.randint(0, 3) if event_type == "content_play" else 0,
            "playback_speed": speed,
            "paused": paused,
            "completed": completed,
            "network_type": rng.choice(_NETWORKS[device_type]),
            "bandwidth": f"{rng.choice(_BANDWIDTHS_MBPS)} Mbps",
        },
        "user_action": actions,
        "recommendations": [
            {
                "content_id": pick["id"],
                "position": position,
                "algorithm": rng.choice(_ALGORITHMS),
                "clicked": rng.random() < 0.15,
            }
            for position, pick in enumerate(picks, start=1)
        ],
        "search_history": history,
    }


def _action(action_type: str, at_ms: int, **fields) -> dict:
    action = {
        "action_type": action_type,
        "timestamp": format_timestamp(at_ms),
        "duration": None,
        "old_speed": None,
        "new_speed": None,
        "old_quality": None,
        "new_quality": None,
        "completed": None,
    }
    action.update(fields)
    return action


def new_maker(rng: random.Random, fake, users: int, start_ms: int):
    """The record maker of one batch: a pool of ``users`` users and a catalogue."""
    world = _World(rng, fake, users, start_ms)

    def make(seq: int, event_ms: int, run_id: str) -> dict:
        return _event(rng, world, run_id, seq, event_ms)

    return make


def _user_id_not_string(event: dict) -> None:
    event["user_id"] = int(event["user_id"][2:])


def _duration_not_integer(event: dict) -> None:
    event["content"]["duration"] = f"{event['content']['duration']} s"


def _negative_duration(event: dict) -> None:
    event["content"]["duration"] = -event["content"]["duration"] - 1


# The faults this dataset names itself (the injector derives others from a contract):
# JSON objects that break the contract, and the breaks Avro's types can carry.
INVALID = {
    "missing_event_type": lambda e: e.pop("event_type"),
    "missing_timestamp": lambda e: e.pop("timestamp"),
    "user_id_not_string": _user_id_not_string,
    "unknown_event_type": lambda e: e.update(event_type="teleport"),
    "bad_timestamp": lambda e: e.update(timestamp="yesterday"),
    "duration_not_integer": _duration_not_integer,
}
AVRO_INVALID = {
    "unknown_event_type": INVALID["unknown_event_type"],
    "bad_timestamp": INVALID["bad_timestamp"],
    "empty_event_id": lambda e: e.update(event_id=""),
    "negative_duration": _negative_duration,
}

DATASET = Dataset(
    CONTRACT,
    key_field="user_id",
    new_maker=new_maker,
    invalid=INVALID,
    avro_invalid=AVRO_INVALID,
)
to_customer_event = DATASET.to_row


def load_schema() -> dict:
    """The contract's JSON Schema, a fresh dict on every call (callers may change it)."""
    return CONTRACT.json_schema()
