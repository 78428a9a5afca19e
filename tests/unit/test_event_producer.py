"""The producer on customer events: determinism, exact fault injection, the event shape.

The JSON Schema below is written from the event contract independently of the
generator, so a generator bug shows up as a schema failure, not as agreement.
"""

import collections
import dataclasses
import hashlib
import json
import os
import subprocess
import sys
import threading

import jsonschema
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from beam_pipeline.settings import REPO_ROOT
from datasets import customer_events
from schemas.values import event_time_ms
from tools import event_producer
from tools.event_producer import (
    MALFORMED_KINDS,
    Batch,
    BatchSpec,
    Injected,
    encoder_for,
    format_timestamp,
    generate,
    parse_timestamp,
)
from transforms.decode import DecodeError, decode_json_object

pytestmark = pytest.mark.unit

# The top-level keys of a customer event, in order, and its named invalid kinds.
EVENT_KEYS = tuple(f.name for f in customer_events.CONTRACT.fields)
INVALID_KINDS = tuple(customer_events.INVALID)

START_MS = 1_795_323_600_000  # 2026-11-22T05:00:00.000Z
RATIOS = {
    "malformed_ratio": 0.02,
    "invalid_ratio": 0.02,
    "duplicate_ratio": 0.05,
    "out_of_order_ratio": 0.01,
}

_TS = {"type": "string", "pattern": r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z$"}
_NULLABLE_INT = {"type": ["integer", "null"]}
_NULLABLE_NUM = {"type": ["number", "null"]}


def _obj(properties: dict, **extra) -> dict:
    return {
        "type": "object",
        "properties": properties,
        "required": list(properties),
        "additionalProperties": False,
        **extra,
    }


def _enum(*values) -> dict:
    return {"enum": list(values)}


STR = {"type": "string", "minLength": 1}
INT = {"type": "integer"}
NONNEG = {"type": "integer", "minimum": 0}
BOOL = {"type": "boolean"}

SCHEMA = _obj(
    {
        "event_id": {"type": "string", "pattern": r"^.+-\d{8}$"},
        "user_id": {"type": "string", "pattern": r"^u-\d+$"},
        "run_id": STR,
        "event_type": _enum("content_play", "search", "browse"),
        "timestamp": _TS,
        "device": _obj(
            {
                "type": _enum("mobile", "desktop", "tablet", "smartTV"),
                "os": _enum("Android", "iOS", "Windows", "macOS", "Linux"),
                "os_version": STR,
                "app_version": STR,
                "model": STR,
            }
        ),
        "location": _obj({"country": STR, "city": STR, "region": STR, "timezone": STR}),
        "content": _obj(
            {
                "id": STR,
                "title": STR,
                "type": _enum("Movie", "TV Show", "Documentary", "Short"),
                "episode": _NULLABLE_INT,
                "season": _NULLABLE_INT,
                "provider": STR,
                "genre": STR,
                "release_year": INT,
                "duration": {"type": "integer", "minimum": 1},
                "language": STR,
            },
            # episode and season are integers for a TV show and null for anything else.
            **{
                "if": {"properties": {"type": {"const": "TV Show"}}},
                "then": {"properties": {"episode": INT, "season": INT}},
                "else": {"properties": {"episode": {"type": "null"}, "season": {"type": "null"}}},
            },
        ),
        "user_subscription": _obj(
            {
                "plan": _enum("Basic", "Standard", "Premium"),
                "start_date": {"type": "string", "pattern": r"^\d{4}-\d{2}-\d{2}$"},
                "billing_cycle": _enum("monthly", "yearly"),
                "connected_services": {"type": "array", "items": STR},
            }
        ),
        "event_details": _obj(
            {
                "play_duration": NONNEG,
                "play_percentage": {"type": "number", "minimum": 0, "maximum": 100},
                "playback_quality": _enum("SD", "HD", "4K"),
                "buffering_incidents": NONNEG,
                "playback_speed": {"type": "number", "exclusiveMinimum": 0},
                "paused": BOOL,
                "completed": BOOL,
                "network_type": _enum("WiFi", "Mobile", "Ethernet"),
                "bandwidth": {"type": "string", "pattern": r"^\d+ Mbps$"},
            }
        ),
        "user_action": {
            "type": "array",
            "maxItems": 5,
            "items": _obj(
                {
                    "action_type": _enum("play", "pause", "seek", "quality_change", "speed_change"),
                    "timestamp": _TS,
                    "duration": _NULLABLE_INT,
                    "old_speed": _NULLABLE_NUM,
                    "new_speed": _NULLABLE_NUM,
                    "old_quality": {"type": ["string", "null"]},
                    "new_quality": {"type": ["string", "null"]},
                    "completed": {"type": ["boolean", "null"]},
                }
            ),
        },
        "recommendations": {
            "type": "array",
            "maxItems": 5,
            "items": _obj(
                {
                    "content_id": STR,
                    "position": {"type": "integer", "minimum": 1},
                    "algorithm": _enum("content_based", "collaborative", "hybrid"),
                    "clicked": BOOL,
                }
            ),
        },
        "search_history": {
            "type": "array",
            "maxItems": 3,
            "items": _obj(
                {"search_id": STR, "timestamp": _TS, "query": STR, "results_count": NONNEG}
            ),
        },
    }
)
VALIDATOR = jsonschema.Draft202012Validator(SCHEMA)
jsonschema.Draft202012Validator.check_schema(SCHEMA)


def _make(count=1000, seed=7, run_id="run-t", **overrides) -> Batch:
    return generate(count, run_id, seed, START_MS, **{**RATIOS, **overrides})


@pytest.fixture(scope="module")
def batch() -> Batch:
    return _make()


@dataclasses.dataclass
class Classified:
    """Each message judged only by the decoder, the schema and byte equality."""

    valid: list  # (index, key, event dict, kafka timestamp) of first sightings
    duplicates: list  # indices of repeats of an earlier message's key and value bytes
    malformed: list  # (index, DecodeError)
    invalid: list  # (index, decoded dict)


@pytest.fixture(scope="module")
def classified(batch) -> Classified:
    result = Classified([], [], [], [])
    seen = set()  # (key, value): a copy has its own, later Kafka timestamp
    for index, message in enumerate(batch.messages):
        key, value, timestamp = message
        if (key, value) in seen:
            result.duplicates.append(index)
            continue
        seen.add((key, value))
        try:
            document = decode_json_object(value)
        except DecodeError as e:
            result.malformed.append((index, e))
            continue
        if VALIDATOR.is_valid(document):
            result.valid.append((index, key, document, timestamp))
        else:
            result.invalid.append((index, document))
    return result


def _digest(messages) -> str:
    h = hashlib.sha256()
    for key, value, timestamp in messages:
        h.update(b"%d|%d|%d|" % (len(key), len(value), timestamp) + key + value)
    return h.hexdigest()


def test_same_arguments_give_the_same_bytes(batch):
    again = _make()
    assert again.messages == batch.messages
    assert again.labels == batch.labels and again.injected == batch.injected


def test_same_bytes_in_another_process_with_another_hash_seed(batch):
    code = (
        "from tools.event_producer import generate;"
        "import tests.unit.test_event_producer as t;"
        "print(t._digest(t._make().messages))"
    )
    env = {**os.environ, "PYTHONHASHSEED": "12345"}
    out = subprocess.run(
        [sys.executable, "-c", code], cwd=REPO_ROOT, env=env, capture_output=True, text=True
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == _digest(batch.messages)


def test_another_seed_gives_other_bytes(batch):
    other = _make(seed=8)
    assert _digest(other.messages) != _digest(batch.messages)
    # Same positions for the same ids would be a sign that only the ids differ.
    same = sum(a[1] == b[1] for a, b in zip(other.messages, batch.messages, strict=True))
    assert same < len(batch.messages) // 100
    # Faker is seeded too: its providers and cities change with the seed.
    for field in ("provider", "city"):
        assert _faker_values(other, field) != _faker_values(batch, field)


def _faker_values(b: Batch, field: str) -> set:
    section = "content" if field == "provider" else "location"
    return {
        json.loads(value)[section][field]
        for (_, value, _), label in zip(b.messages, b.labels, strict=True)
        if label == "valid"
    }


def test_run_id_is_in_every_event_id(batch, classified):
    for _, _, event, _ in classified.valid:
        assert event["run_id"] == "run-t"
        assert event["event_id"].startswith("run-t-")


def test_injected_counts_are_exact(batch):
    assert batch.injected == Injected(
        valid_unique=960, malformed=20, invalid=20, duplicates=50, out_of_order=10, total=1050
    )
    assert len(batch.messages) == len(batch.labels) == 1050
    kinds = collections.Counter(label.split("/")[0] for label in batch.labels)
    assert kinds == {
        "valid": 950,
        "out_of_order": 10,
        "duplicate": 50,
        "malformed": 20,
        "invalid": 20,
    }


def test_decoder_and_schema_agree_with_the_report(batch, classified):
    injected = batch.injected
    assert len(classified.valid) == injected.valid_unique
    assert len(classified.duplicates) == injected.duplicates
    assert len(classified.malformed) == injected.malformed
    assert len(classified.invalid) == injected.invalid
    by_label = {
        "duplicate": [i for i, _ in enumerate(batch.labels) if batch.labels[i] == "duplicate"],
        "malformed": [i for i, label in enumerate(batch.labels) if label.startswith("malformed")],
        "invalid": [i for i, label in enumerate(batch.labels) if label.startswith("invalid/")],
    }
    assert classified.duplicates == by_label["duplicate"]
    assert [i for i, _ in classified.malformed] == by_label["malformed"]
    assert [i for i, _ in classified.invalid] == by_label["invalid"]


def test_duplicates_copy_an_earlier_valid_message(batch, classified):
    valid_messages = {batch.messages[i][:2] for i, _, _, _ in classified.valid}
    first_seen = {}
    for index, (key, value, _) in enumerate(batch.messages):
        first_seen.setdefault((key, value), index)
    for index in classified.duplicates:
        key, value, timestamp = batch.messages[index]
        assert (key, value) in valid_messages  # same key and value bytes
        source = first_seen[(key, value)]
        assert source < index
        assert timestamp >= batch.messages[source][2]  # stamped when it is sent
    # Each duplicate repeats a different event, and no original is sent twice otherwise.
    repeated = {batch.messages[i][:2] for i in classified.duplicates}
    assert len(repeated) == batch.injected.duplicates


def test_valid_events_have_the_full_shape(batch, classified):
    ids = [event["event_id"] for _, _, event, _ in classified.valid]
    assert len(ids) == len(set(ids))
    for index, key, event, _ in classified.valid:
        value = batch.messages[index][1]
        assert json.loads(value.decode("utf-8", errors="strict")) == event
        assert tuple(event) == EVENT_KEYS
        assert key == event["user_id"].encode("utf-8")
        assert 1 <= int(event["user_id"][2:]) <= 200
        for action in event["user_action"]:
            assert parse_timestamp(action["timestamp"]) >= parse_timestamp(event["timestamp"])
        positions = [r["position"] for r in event["recommendations"]]
        assert positions == list(range(1, len(positions) + 1))
    types = collections.Counter(event["event_type"] for _, _, event, _ in classified.valid)
    assert set(types) == {"content_play", "search", "browse"}
    content_types = {event["content"]["type"] for _, _, event, _ in classified.valid}
    assert content_types == {"Movie", "TV Show", "Documentary", "Short"}


def test_event_ids_count_the_original_events(batch):
    originals = [
        m for m, label in zip(batch.messages, batch.labels, strict=True) if label != "duplicate"
    ]
    for seq, (_, value, _) in enumerate(originals):
        assert f'"event_id":"run-t-{seq:08d}"'.encode() in value or not value.startswith(b"{")


# A batch with every kind of message, at a rate whose slots are not whole
# milliseconds (1000 / 3), so that a slot computed without rounding would show.
_RICH_COUNT = 900
_RICH = {
    "rate_per_s": 3.0,
    "users": 40,
    "malformed_ratio": 0.03,
    "invalid_ratio": 0.03,
    "duplicate_ratio": 0.05,
    "out_of_order_ratio": 0.03,
    "late_ratio": 0.03,
    "late_shift_ms": 20_000,
    "late_copy_ratio": 0.02,
    "late_copy_after_ms": 15_000,
}
_COPIES = ("duplicate", "late_copy")


@pytest.fixture(scope="module")
def rich() -> Batch:
    b = generate(_RICH_COUNT, "run-r", 11, START_MS, **_RICH)
    roles = {label.split("/")[0] for label in b.labels}
    assert roles == {"valid", "malformed", "invalid", "out_of_order", "late", *_COPIES}
    return b


def _event_ms(value: bytes) -> int:
    return parse_timestamp(json.loads(value)["timestamp"])


@pytest.mark.parametrize("which, rate", [("batch", 1000.0), ("rich", _RICH["rate_per_s"])])
def test_kafka_timestamp_is_the_slot_of_the_original_it_follows(request, which, rate):
    # Original i is sent at start + round(i * 1000 / rate) on the feed's clock; a copy
    # (duplicate, late copy) is sent right after an original, at that original's slot.
    b = request.getfixturevalue(which)
    original = -1
    for (_, _, timestamp), label in zip(b.messages, b.labels, strict=True):
        if label not in _COPIES:
            original += 1
        assert original >= 0  # a copy never comes first
        assert timestamp == START_MS + round(original * 1000 / rate), (original, label)
    assert original == len(b.messages) - sum(b.labels.count(c) for c in _COPIES) - 1
    # Copies really differ from their source's stamp somewhere (sent later).
    source_stamp = {}
    later = 0
    for (key, value, timestamp), label in zip(b.messages, b.labels, strict=True):
        if label in _COPIES:
            assert timestamp >= source_stamp[(key, value)]
            later += timestamp > source_stamp[(key, value)]
        else:
            source_stamp[(key, value)] = timestamp
    assert later > 0


@pytest.mark.parametrize("which", ["batch", "rich"])
def test_kafka_timestamps_never_go_backwards(request, which):
    # Per partition too: a partition's records are a subsequence of the send order.
    stamps = [t for _, _, t in request.getfixturevalue(which).messages]
    assert all(a <= b for a, b in zip(stamps, stamps[1:], strict=False))
    assert stamps[0] == START_MS


def test_kafka_timestamp_is_the_event_time_only_for_valid_events_in_order(rich):
    seen = collections.Counter()
    for (_, value, timestamp), label in zip(rich.messages, rich.labels, strict=True):
        kind = label.split("/")[0]
        if kind in ("malformed", "invalid"):
            continue  # no event time to compare (their slot is checked above)
        event_ms = _event_ms(value)
        seen[kind] += 1
        if kind == "valid":
            assert timestamp == event_ms
        elif kind == "out_of_order":
            assert timestamp - event_ms >= 5_000  # at least the smallest shift
        else:  # late, duplicate, late copy: sent after their event time
            assert timestamp > event_ms, label
    assert set(seen) == {"valid", "out_of_order", "late", *_COPIES}


def test_a_late_event_is_stamped_at_least_the_shift_after_its_event_time(rich):
    # A late event is sent late_shift_ms to late_shift_ms + 5 s behind the latest
    # event time, which is at most its own slot; a late copy once the latest event
    # time is late_copy_after_ms past its source's.
    behind = {"late": [], "late_copy": []}
    for (_, value, timestamp), label in zip(rich.messages, rich.labels, strict=True):
        if label in behind:
            behind[label].append(timestamp - _event_ms(value))
    assert len(behind["late"]) == round(_RICH_COUNT * _RICH["late_ratio"])
    assert len(behind["late_copy"]) == round(_RICH_COUNT * _RICH["late_copy_ratio"])
    assert min(behind["late"]) >= _RICH["late_shift_ms"]
    assert min(behind["late_copy"]) >= _RICH["late_copy_after_ms"]


def test_in_order_events_advance_by_the_rate():
    b = generate(50, "r", 1, START_MS, rate_per_s=400.0)
    times = [t for _, _, t in b.messages]
    assert times == [START_MS + round(i * 2.5) for i in range(50)]
    assert json.loads(b.messages[0][1])["timestamp"] == "2026-11-22T05:00:00.000Z"


def test_malformed_values_fail_decoding(batch, classified):
    reasons = collections.Counter(e.reason for _, e in classified.malformed)
    assert set(reasons) == {
        "invalid_json",
        "not_utf8",
        "non_finite_number",
        "not_an_object",
        "empty_payload",
    }
    labels = {batch.labels[i] for i, _ in classified.malformed}
    assert labels == {f"malformed/{kind}" for kind in MALFORMED_KINDS}
    for index, _ in classified.malformed:
        key, _, timestamp = batch.messages[index]
        assert key.startswith(b"u-") and timestamp > 0


def test_invalid_events_decode_but_break_the_schema(batch, classified):
    seen_kinds = {batch.labels[i] for i, _ in classified.invalid}
    assert seen_kinds == {f"invalid/{kind}" for kind in INVALID_KINDS}
    ids = [doc["event_id"] for _, doc in classified.invalid]
    valid_ids = {event["event_id"] for _, _, event, _ in classified.valid}
    assert len(set(ids)) == len(ids) and not set(ids) & valid_ids
    documents = [doc for _, doc in classified.invalid]
    assert any("event_type" not in d for d in documents)
    assert any("timestamp" not in d for d in documents)
    assert any(isinstance(d.get("user_id"), int) for d in documents)
    assert any(d.get("event_type") == "teleport" for d in documents)
    assert any(d.get("timestamp") == "yesterday" for d in documents)
    for doc in documents:
        # Every invalid event breaks exactly one rule; the rest of it is a real event.
        assert len(list(VALIDATOR.iter_errors(doc))) == 1, doc["event_id"]


def test_exactly_the_out_of_order_events_go_back_in_time(batch, classified):
    # Duplicates go back in time too (they repeat earlier events), so they count as
    # predecessors but are not themselves judged.
    duplicates = set(classified.duplicates)
    out_of_order = []
    latest = None
    for index in sorted([i for i, _, _, _ in classified.valid] + classified.duplicates):
        event_ms = _event_ms(batch.messages[index][1])  # not the Kafka timestamp: its slot
        if index not in duplicates and latest is not None and event_ms < latest:
            out_of_order.append(index)
            assert 5_000 <= latest - event_ms <= 30_000
        latest = event_ms if latest is None else max(latest, event_ms)
    assert len(out_of_order) == batch.injected.out_of_order
    assert out_of_order == [i for i, label in enumerate(batch.labels) if label == "out_of_order"]


@settings(max_examples=25, deadline=None)
@given(
    count=st.integers(0, 120),
    malformed=st.floats(0, 0.3),
    invalid=st.floats(0, 0.3),
    duplicates=st.floats(0, 0.2),
    out_of_order=st.floats(0, 0.1),
)
def test_counts_are_rounded_ratios_for_any_batch(
    count, malformed, invalid, duplicates, out_of_order
):
    b = generate(
        count,
        "h",
        3,
        START_MS,
        users=5,
        malformed_ratio=malformed,
        invalid_ratio=invalid,
        duplicate_ratio=duplicates,
        out_of_order_ratio=out_of_order,
    )
    n_mal, n_inv = round(count * malformed), round(count * invalid)
    n_dup, n_ooo = round(count * duplicates), round(count * out_of_order)
    assert b.injected == Injected(count - n_mal - n_inv, n_mal, n_inv, n_dup, n_ooo, count + n_dup)
    assert len(b.messages) == count + n_dup
    assert all(key.startswith(b"u-") and int(key[2:]) <= 5 for key, _, _ in b.messages)


@pytest.mark.parametrize(
    "overrides, message",
    [
        ({"count": -1}, "count must not be negative"),
        ({"malformed_ratio": 1.5}, "malformed_ratio must be between 0 and 1"),
        ({"malformed_ratio": 0.6, "invalid_ratio": 0.6}, "cannot hold"),
        ({"duplicate_ratio": 0.95}, "cannot hold"),
        ({"rate_per_s": 0}, "rate_per_s must be a positive number"),
        ({"users": 0}, "users must be at least 1"),
        ({"start_ms": 0}, "start_ms must exceed"),
        ({"late_ratio": 0.1}, "needs a positive late_shift_ms"),
        ({"late_ratio": 0.1, "late_shift_ms": 10_000_000}, "too few for 10 late events"),
        ({"late_copy_ratio": 0.1}, "needs a positive late_copy_after_ms"),
        ({"late_copy_ratio": 0.1, "late_copy_after_ms": 10_000_000}, "too few for 10 late"),
    ],
)
def test_impossible_requests_are_value_errors(overrides, message):
    args = {"count": 100, "run_id": "r", "seed": 1, "start_ms": START_MS, **RATIOS}
    with pytest.raises(ValueError, match=message):
        generate(**{**args, **overrides})


def test_timestamps_round_trip():
    assert format_timestamp(START_MS + 123) == "2026-11-22T05:00:00.123Z"
    for ms in (1, 999, START_MS, START_MS + 86_399_999):
        assert parse_timestamp(format_timestamp(ms)) == ms
    for text in (
        "yesterday",
        "2026-11-22T05:00:00Z",
        "2026-11-22T05:00:00.123456Z",
        "2026-11-22T07:00:00.123+02:00",
        "2026-1-22T05:00:00.1234Z",  # 24 characters, but not format_timestamp's shape
    ):
        with pytest.raises(ValueError):
            parse_timestamp(text)


def test_paced_sends_each_message_at_its_event_time():
    # A fake clock at t=100 s: messages at 99 s (past: at once), 101.5 s and 103 s.
    now = [100.0]
    slept = []

    def sleep(seconds):
        slept.append(round(seconds, 3))
        now[0] += seconds

    messages = [(b"k", b"a", 99_000), (b"k", b"b", 101_500), (b"k", b"c", 103_000)]
    sent = []
    for message in event_producer.paced(messages, clock=lambda: now[0], sleep=sleep):
        sent.append((message[1], now[0]))
    assert sent == [(b"a", 100.0), (b"b", 101.5), (b"c", 103.0)]
    assert slept == [1.5, 1.5]


def test_late_events_go_back_by_the_shift_after_the_shift_has_passed():
    # 1,000 events at 10/s span 100 s; a 40 s shift: late events are chosen among those
    # at least 40 s (400 events) after the first, and each is sent 40-45 s behind the
    # latest valid event time sent before it; its Kafka timestamp is its slot (i / 10 s).
    b = generate(1000, "r", 3, START_MS, rate_per_s=10.0, late_ratio=0.02, late_shift_ms=40_000)
    assert b.injected.late == 20 == b.labels.count("late")
    latest = None
    for i, ((_, value, ts), label) in enumerate(zip(b.messages, b.labels, strict=True)):
        event_ms = _event_ms(value)
        if label == "late":
            assert i >= 400 and 40_000 <= latest - event_ms <= 45_000
            assert ts == START_MS + i * 100 > latest
        elif label in ("valid", "out_of_order"):
            latest = event_ms if latest is None else max(latest, event_ms)


def test_a_late_version_older_than_one_sent_before_is_not_counted_late():
    # customers keeps the latest version by updated_at; a version sent late is usually
    # older than one of its id already sent (same key, same partition, so the dedup
    # has kept that one): it is logged as superseded on arrival, never late.  The
    # report counts only the others as late; recomputed here from the sent bytes.
    import datasets

    customers = datasets.get("customers")
    b = generate(
        2000, "r", 5, START_MS, rate_per_s=20.0, late_ratio=0.03, late_shift_ms=40_000,
        users=300, dataset=customers,
    )  # fmt: skip
    newest: dict = {}
    reaching, superseded = 0, 0
    for (_, value, _), label in zip(b.messages, b.labels, strict=True):
        if label not in ("valid", "out_of_order", "late"):
            continue
        event = json.loads(value)
        at = event_time_ms(event["updated_at"])
        if label == "late":
            if event["customer_id"] in newest and at <= newest[event["customer_id"]]:
                superseded += 1
            else:
                reaching += 1
        newest[event["customer_id"]] = max(at, newest.get(event["customer_id"], at))
    assert superseded > 0 and reaching > 0, (superseded, reaching)
    assert (b.injected.late, b.injected.late_superseded) == (reaching, superseded)
    assert reaching + superseded == b.labels.count("late") == 60


def test_late_copies_repeat_an_earlier_event_after_the_lag_has_passed():
    # 1,000 events at 10/s span 100 s; copies 40 s behind: each is a byte copy (key
    # and value) of a valid original sent earlier, sent once the latest valid event
    # time is 40 s (400 events) past it, within one event's time, and stamped with
    # the slot of the original it follows (here that latest valid event time).
    b = generate(
        1000, "r", 3, START_MS, rate_per_s=10.0, duplicate_ratio=0.02,
        late_copy_ratio=0.02, late_copy_after_ms=40_000,
    )  # fmt: skip
    assert b.injected.late_copies == 20 == b.labels.count("late_copy")
    assert b.injected.total == 1000 + 20 + 20 == len(b.messages)
    assert b.injected.duplicates == 20 == b.labels.count("duplicate")  # not counted there
    sent_before, latest, previous_stamp = {}, None, None
    for message, label in zip(b.messages, b.labels, strict=True):
        if label == "late_copy":
            assert sent_before[message[1]] == "valid"  # a copy of a valid original
            assert 40_000 <= latest - _event_ms(message[1]) <= 40_100
            assert message[2] == previous_stamp == latest
        else:
            sent_before.setdefault(message[1], label)
        if label == "valid":
            latest = message[2] if latest is None else max(latest, message[2])
        previous_stamp = message[2]


def test_late_copies_are_for_datasets_that_drop_later_copies():
    import datasets

    with pytest.raises(ValueError, match="keeps the latest version"):
        generate(
            1000, "r", 3, START_MS, rate_per_s=10.0, late_copy_ratio=0.01,
            late_copy_after_ms=40_000, dataset=datasets.get("customers"),
        )  # fmt: skip


# JSON values as the pipeline meets them: non-ASCII and escaped text, big and small
# numbers, nesting.  NaN and infinities are not JSON (allow_nan=False refuses them).
_JSON_VALUES = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(), inner, max_size=4),
    max_leaves=20,
)


@settings(max_examples=200, deadline=None)
@given(event=st.dictionaries(st.text(), _JSON_VALUES, max_size=6))
def test_json_values_are_the_compact_utf8_json_the_producer_always_wrote(event):
    # The bytes json.dumps wrote before schemas.values.canonical_json took over.
    written = json.dumps(event, ensure_ascii=False, separators=(",", ":"), allow_nan=False)
    assert encoder_for("json").encode(event) == written.encode()


@pytest.mark.parametrize(
    "event, expected",
    [
        ({"city": "São Paulo", "q": "日本語 🎬"}, '{"city":"São Paulo","q":"日本語 🎬"}'),
        ({"a": {"b": [1, 2.5, -0.0, 1e-07, 1e300]}}, '{"a":{"b":[1,2.5,-0.0,1e-07,1e+300]}}'),
        ({"q": 'say "hi"\n\t\\', "nul": "\x00"}, r'{"q":"say \"hi\"\n\t\\","nul":"\u0000"}'),
        ({"sep": "\u2028", "big": 2**64}, '{"sep":"\u2028","big":18446744073709551616}'),
    ],
)  # fmt: skip
def test_json_values_of_tricky_events(event, expected):
    assert encoder_for("json").encode(event) == expected.encode("utf-8")


def test_json_values_refuse_nan():
    with pytest.raises(ValueError):
        encoder_for("json").encode({"x": float("nan")})


def test_a_stopped_live_feed_sends_no_further_message(monkeypatch):
    # Every message is due (Kafka timestamps in the past); the feed is stopped once the
    # first is produced: the report says one was sent, not three.
    from tools.event_producer import command

    stop = threading.Event()

    def produce(servers, topic, messages):
        delivered = []
        for message in messages:
            delivered.append(message)
            stop.set()
        return delivered

    monkeypatch.setattr(command, "end_offsets", lambda servers, topic: {0: 0})
    monkeypatch.setattr(command, "produce", produce)
    batch = generate(3, "r", 1, START_MS)
    report = event_producer.send_batch("k:9092", "t", batch, "r", 1, START_MS, True, stop)
    assert report["sent"] == 1


def test_a_batch_spec_is_generate_in_the_flags_words():
    spec = BatchSpec(
        count=600, rate_per_s=10.0, users=30, value_format="json", dataset=None,
        malformed=0.02, invalid=0.03, duplicates=0.04, out_of_order=0.05, drift=0.01,
        late=0.02, late_shift_ms=20_000, late_copies=0.01, late_copy_after_ms=15_000,
    )  # fmt: skip
    direct = generate(
        600, "r", 9, START_MS, rate_per_s=10.0, users=30, value_format="json",
        malformed_ratio=0.02, invalid_ratio=0.03, duplicate_ratio=0.04, out_of_order_ratio=0.05,
        drift_ratio=0.01, late_ratio=0.02, late_shift_ms=20_000, late_copy_ratio=0.01,
        late_copy_after_ms=15_000,
    )  # fmt: skip
    assert spec.generate("r", 9, START_MS) == direct
    # Every ratio is in use: a mapping that dropped one would change the labels.
    roles = {label.split("/")[0] for label in direct.labels}
    assert roles == {
        "valid",
        "malformed",
        "invalid",
        "out_of_order",
        "late",
        "duplicate",
        "late_copy",
    }
    assert any(label.startswith("invalid/drift_") for label in direct.labels)
    assert BatchSpec(50).generate("r", 1, START_MS) == generate(50, "r", 1, START_MS)
