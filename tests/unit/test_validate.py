"""Schema validation: the contract, the compiled check, the DoFn, and the composite."""

import copy
import json

import apache_beam as beam
import pytest
from apache_beam.testing.util import assert_that, equal_to
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from jsonschema import Draft7Validator, Draft202012Validator
from jsonschema.exceptions import SchemaError

from datasets.customer_events import load_schema
from schemas.records import DEAD_LETTER_TAG, DeadLetter, KafkaRecord
from transforms.decode import DecodeJson
from transforms.schema_check import UnsupportedSchemaError, compile_schema
from transforms.validate import ValidateEvents, ValidateEventsFn, describe_errors

pytestmark = pytest.mark.unit

SCHEMA = load_schema()
FAST = compile_schema(SCHEMA)
DRAFT7 = Draft7Validator(SCHEMA)
DRAFT2020 = Draft202012Validator(SCHEMA)

_VALID_EVENT = {
    "event_id": "evt-000001",
    "user_id": "user-42",
    "run_id": "run-7",
    "event_type": "content_play",
    "timestamp": "2026-11-22T05:00:00.123Z",
    "device": {
        "type": "smartTV",
        "os": "Linux",
        "os_version": "6.1",
        "app_version": "4.12.0",
        "model": "Bravia X90",
    },
    "location": {
        "country": "NL",
        "city": "Utrecht",
        "region": "Utrecht",
        "timezone": "Europe/Amsterdam",
    },
    "content": {
        "id": "c-123",
        "title": "The Long Night",
        "type": "TV Show",
        "episode": 3,
        "season": 1,
        "provider": "Northwind",
        "genre": "Drama",
        "release_year": 2024,
        "duration": 3120,
        "language": "nl",
    },
    "user_subscription": {
        "plan": "Premium",
        "start_date": "2025-01-15",
        "billing_cycle": "yearly",
        "connected_services": ["spotify", "alexa"],
    },
    "event_details": {
        "play_duration": 1800,
        "play_percentage": 57.7,
        "playback_quality": "4K",
        "buffering_incidents": 1,
        "playback_speed": 1.25,
        "paused": False,
        "completed": False,
        "network_type": "WiFi",
        "bandwidth": "48 Mbps",
    },
    "user_action": [
        {
            "action_type": "play",
            "timestamp": "2026-11-22T04:30:00Z",
            "duration": None,
            "old_speed": None,
            "new_speed": None,
            "old_quality": None,
            "new_quality": None,
            "completed": None,
        },
        {
            "action_type": "speed_change",
            "timestamp": "2026-11-22T04:45:10.5+01:00",
            "duration": None,
            "old_speed": 1.0,
            "new_speed": 1.25,
            "old_quality": None,
            "new_quality": None,
            "completed": None,
        },
        {
            "action_type": "pause",
            "timestamp": "2026-11-22T04:50:00.000001-05:00",
            "duration": 42,
            "old_speed": None,
            "new_speed": None,
            "old_quality": "HD",
            "new_quality": "4K",
            "completed": False,
        },
    ],
    "recommendations": [
        {"content_id": "c-124", "position": 1, "algorithm": "hybrid", "clicked": True},
        {"content_id": "c-9", "position": 2, "algorithm": "collaborative", "clicked": False},
    ],
    "search_history": [
        {
            "search_id": "s-1",
            "timestamp": "2026-11-21T22:10:00Z",
            "query": "long night",
            "results_count": 12,
        }
    ],
}


def valid_event() -> dict:
    """A fresh copy of a hand-written event that satisfies every rule of the contract."""
    return copy.deepcopy(_VALID_EVENT)


_DELETE = object()


def _mutated(path, value) -> dict:
    """``valid_event()`` with the value at ``path`` replaced, or deleted if ``_DELETE``."""
    event = valid_event()
    parent = event
    for step in path[:-1]:
        parent = parent[step]
    if value is _DELETE:
        del parent[path[-1]]
    else:
        parent[path[-1]] = value
    return event


def _record(event, offset=0) -> KafkaRecord:
    return KafkaRecord("events", 0, offset, 1_700_000_000_000, b"k", json.dumps(event).encode())


def _fn() -> ValidateEventsFn:
    fn = ValidateEventsFn(SCHEMA, run_id="r1")
    fn.setup()
    return fn


def _outputs(event, fn=None):
    record = _record(event)
    return record, list((fn or _fn()).process((record, event)))


# --- the contract ---------------------------------------------------------------------


def test_contract_is_draft7_and_loads_fresh_copies():
    assert SCHEMA["$schema"] == "http://json-schema.org/draft-07/schema#"
    Draft7Validator.check_schema(SCHEMA)
    Draft202012Validator.check_schema(SCHEMA)
    first = load_schema()
    first["required"].clear()
    assert load_schema() == SCHEMA


def test_every_object_requires_all_its_keys_and_allows_no_others():
    def objects(schema):
        if schema.get("type") == "object":
            yield schema
            for sub in schema["properties"].values():
                yield from objects(sub)
        if "items" in schema:
            yield from objects(schema["items"])

    found = list(objects(SCHEMA))
    assert len(found) == 9  # the event, five nested objects, three kinds of array item
    for schema in found:
        assert schema["additionalProperties"] is False
        assert sorted(schema["required"]) == sorted(schema["properties"])


def test_the_hand_written_event_is_valid():
    event = valid_event()
    assert FAST(event) and DRAFT7.is_valid(event) and DRAFT2020.is_valid(event)
    record, outputs = _outputs(event)
    assert outputs == [(record, event)]
    assert outputs[0][1] is event  # the pair goes on untouched


@pytest.mark.parametrize(
    "path, value",
    [
        (("content", "episode"), None),
        (("content", "season"), None),
        (("content", "duration"), 3120.0),  # an integral float is a JSON Schema integer
        (("event_details", "play_percentage"), 100),
        (("event_details", "play_percentage"), 0),
        (("event_details", "playback_speed"), 0.1),
        (("content", "release_year"), 1900),
        (("content", "release_year"), 2100),
        (("user_action",), []),
        (("user_subscription", "connected_services"), []),
        (("device", "model"), ""),  # only the three ids must be non-empty
        (("timestamp",), "2026-11-22T05:00:00+05:30"),
        # Python's `$` also matches before one final newline; jsonschema agrees.
        (("timestamp",), "2026-11-22T05:00:00Z\n"),
    ],
)
def test_edge_values_that_are_valid(path, value):
    event = _mutated(path, value)
    assert FAST(event) and DRAFT7.is_valid(event)
    record, outputs = _outputs(event)
    assert outputs == [(record, event)]


# --- dead letters -----------------------------------------------------------------------

_INVALID = [
    # (path, value, reason, text the detail must contain)
    (("user_id",), _DELETE, "missing_field", "user_id: 'user_id' is a required property"),
    (("device", "os"), _DELETE, "missing_field", "device.os: 'os' is a required property"),
    (("user_action", 2, "completed"), _DELETE, "missing_field", "user_action[2].completed: "),
    (("user_id",), 42, "wrong_type", "user_id: 42 is not of type 'string'"),
    (("location",), [], "wrong_type", "location: [] is not of type 'object'"),
    (("user_action",), {}, "wrong_type", "user_action: {} is not of type 'array'"),
    (("event_type",), "teleport", "schema_violation", "event_type: 'teleport' is not one of"),
    (("user_action", 1, "action_type"), "rewind", "schema_violation", "user_action[1].action_"),
    (("content", "type"), "movie", "schema_violation", "content.type: 'movie' is not one of"),
    (("timestamp",), "2026-11-22 05:00:00Z", "schema_violation", "timestamp: '2026-11-22 05"),
    (("timestamp",), "2026-11-22T05:00:00", "schema_violation", "timestamp: "),  # no zone
    (("timestamp",), "٢٠٢٦-11-22T05:00:00Z", "schema_violation", "timestamp: "),  # not ASCII
    (("search_history", 0, "timestamp"), "yesterday", "schema_violation", "search_history[0]"),
    (("user_subscription", "start_date"), "2025-1-15", "schema_violation", "start_date: "),
    (("bonus",), 1, "schema_violation", "bonus: is not allowed (additionalProperties is false)"),
    (("device", "colour"), "red", "schema_violation", "device.colour: is not allowed"),
    (("content", "duration"), True, "wrong_type", "content.duration: True is not of type 'int"),
    (("content", "episode"), False, "wrong_type", "content.episode: False is not of type"),
    (("event_details", "play_percentage"), True, "wrong_type", "play_percentage: True is not"),
    (("recommendations", 0, "position"), 1.5, "wrong_type", "recommendations[0].position: 1.5"),
    (("location", "city"), None, "wrong_type", "location.city: None is not of type 'string'"),
    (("event_id",), None, "wrong_type", "event_id: None is not of type 'string'"),
    (("event_id",), "", "schema_violation", "event_id: '' should be non-empty"),
    (("recommendations", 1, "position"), 0, "schema_violation", "less than the minimum of 1"),
    (("event_details", "play_percentage"), 100.5, "schema_violation", "maximum of 100"),
    (("content", "release_year"), 1899, "schema_violation", "content.release_year: 1899 is"),
    (("content", "episode"), 0, "schema_violation", "content.episode: 0 is less than"),
    (("event_details", "playback_speed"), 0, "schema_violation", "minimum of 0.1"),
    (("user_subscription", "connected_services", 1), 7, "wrong_type", "connected_services[1]: 7"),
]


@pytest.mark.parametrize("path, value, reason, text", _INVALID)
def test_each_violation_gives_one_dead_letter(path, value, reason, text):
    event = _mutated(path, value)
    assert not FAST(event) and not DRAFT7.is_valid(event)
    record, outputs = _outputs(event)
    assert len(outputs) == 1 and outputs[0].tag == DEAD_LETTER_TAG
    letter = outputs[0].value
    assert isinstance(letter, DeadLetter)
    assert (letter.stage, letter.reason, letter.run_id) == ("validate", reason, "r1")
    assert (letter.payload, letter.kafka_offset, letter.kafka_key) == (
        record.value,
        record.offset,
        b"k",
    )
    assert text in letter.detail
    assert ";" not in letter.detail  # exactly one violation, so one entry


def test_detail_lists_every_violation_sorted_by_path():
    event = valid_event()
    event["user_id"] = 42
    event["event_type"] = "teleport"
    _, [out] = _outputs(event)
    assert (out.value.reason, out.value.detail) == (
        "wrong_type",
        "event_type: 'teleport' is not one of ['content_play', 'search', 'browse']; "
        "user_id: 42 is not of type 'string'",
    )


def test_missing_field_wins_over_wrong_type_and_violations():
    event = _mutated(("device", "os"), _DELETE)
    event["user_action"].append({**event["user_action"][0], "duration": "long"})
    event["event_type"] = "teleport"
    _, [out] = _outputs(event)
    assert out.value.reason == "missing_field"
    assert out.value.detail.split("; ") == [
        "device.os: 'os' is a required property",
        "event_type: 'teleport' is not one of ['content_play', 'search', 'browse']",
        "user_action[3].duration: 'long' is not of type 'integer', 'null'",
    ]


def test_a_non_object_event_is_a_wrong_type():
    reason, detail = describe_errors(DRAFT7.iter_errors([]))
    assert (reason, detail) == ("wrong_type", "$: [] is not of type 'object'")


def test_paths_sort_numerically_and_detail_is_capped():
    event = valid_event()
    event["user_action"] = [{**event["user_action"][0], "action_type": "x" * 50}] * 500
    _, [out] = _outputs(event)
    detail = out.value.detail
    assert out.value.reason == "schema_violation"
    assert len(detail) <= 2000 and detail.endswith(" more")
    entries = detail.split("; ")
    assert entries[0].startswith("user_action[0].action_type: ")
    assert entries[1].startswith("user_action[1].action_type: ")
    assert entries[-1].startswith("… and ") and int(entries[-1].split()[2]) == 500 - (
        len(entries) - 1
    )


def test_a_failure_inside_validation_is_a_dead_letter():
    fn = _fn()

    def broken(event):
        raise RuntimeError("boom")

    fn._is_valid = broken
    _, [out] = _outputs(valid_event(), fn)
    assert (out.tag, out.value.reason, out.value.detail) == (
        DEAD_LETTER_TAG,
        "validate_error",
        "RuntimeError: boom",
    )


def test_disagreeing_tiers_are_a_validate_error_not_a_silent_pass():
    fn = _fn()
    fn._is_valid = lambda event: False
    _, [out] = _outputs(valid_event(), fn)
    assert out.value.reason == "validate_error"
    assert out.value.detail.startswith("ValidatorDisagreement: ")


def test_a_bad_schema_fails_when_the_graph_is_built():
    with pytest.raises(UnsupportedSchemaError, match="patternProperties"):
        ValidateEvents({"type": "object", "patternProperties": {"^a": {}}}, "r")
    with pytest.raises(UnsupportedSchemaError, match="items"):
        ValidateEventsFn({"items": [{"type": "string"}]}, "r")
    with pytest.raises(SchemaError):
        ValidateEvents({"type": "text"}, "r")


# --- the composite ----------------------------------------------------------------------


def test_composite_routes_valid_pairs_and_dead_letters(pipeline):
    values = [
        json.dumps(valid_event()).encode(),  # 0: valid
        json.dumps(_mutated(("user_id",), _DELETE)).encode(),  # 1: missing_field
        json.dumps(_mutated(("content", "duration"), True)).encode(),  # 2: wrong_type
        b"{not json",  # 3: dead at decode, never reaches validation
        json.dumps(_mutated(("event_type",), "teleport")).encode(),  # 4: schema_violation
        json.dumps(_mutated(("content", "episode"), None)).encode(),  # 5: valid
    ]
    records = [
        KafkaRecord("events", i % 2, i, 1_700_000_000_000 + i, None, v)
        for i, v in enumerate(values)
    ]
    with pipeline as p:
        decoded = p | beam.Create(records) | DecodeJson("r2")
        out = decoded.decoded | ValidateEvents(SCHEMA, "r2")
        assert_that(
            out.valid | "Valid" >> beam.Map(lambda pair: (pair[0].offset, pair[1]["event_id"])),
            equal_to([(0, "evt-000001"), (5, "evt-000001")]),
            label="CheckValid",
        )
        assert_that(
            out[DEAD_LETTER_TAG]
            | "Letters" >> beam.Map(lambda d: (d.kafka_offset, d.stage, d.reason, d.run_id)),
            equal_to(
                [
                    (1, "validate", "missing_field", "r2"),
                    (2, "validate", "wrong_type", "r2"),
                    (4, "validate", "schema_violation", "r2"),
                ]
            ),
            label="CheckDeadLetters",
        )
        assert_that(
            decoded[DEAD_LETTER_TAG] | "DecodeLetters" >> beam.Map(lambda d: d.kafka_offset),
            equal_to([3]),
            label="CheckDecodeDeadLetters",
        )


# --- the compiled check agrees with jsonschema -----------------------------------------

_JSON = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=12),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=6), children, max_size=4)
    ),
    max_leaves=12,
)

# Values on the contract's boundaries: bounds, integral floats, bools, near-miss strings.
_EDGES = st.sampled_from(
    [
        None,
        True,
        False,
        0,
        1,
        -1,
        0.0,
        -0.0,
        1.0,
        1.5,
        0.1,
        0.09999999999999999,
        100,
        100.0,
        100.00000000000001,
        1899,
        1900,
        2100,
        2100.0,
        2101,
        2**64,
        1e300,
        "",
        "x",
        "content_play",
        "teleport",
        "Movie",
        "TV Show",
        "smartTV",
        "4K",
        "2025-01-15",
        "2026-11-22T05:00:00Z",
        "2026-11-22T05:00:00Z\n",
        "2026-11-22T05:00:00.1234567Z",
        "2026-11-22T05:00:00+0100",
        "٢٠٢٦-11-22T05:00:00Z",
        [],
        {},
        ["a"],
        [1],
    ]
)


def _conforming(schema):
    """A strategy for values that satisfy ``schema`` (the contract's keywords only)."""
    if "enum" in schema:
        return st.sampled_from(schema["enum"])
    types = schema["type"] if isinstance(schema["type"], list) else [schema["type"]]
    options = []
    for name in types:
        low, high = schema.get("minimum"), schema.get("maximum")
        if name == "string":
            if "pattern" in schema:
                options.append(st.from_regex(schema["pattern"]))
            else:
                options.append(st.text(min_size=schema.get("minLength", 0), max_size=10))
        elif name == "integer":
            whole = st.integers(min_value=low, max_value=high)
            options.append(whole | whole.filter(lambda n: abs(n) < 2**53).map(float))
        elif name == "number":
            options.append(
                st.floats(min_value=low, max_value=high, allow_nan=False, allow_infinity=False)
                | st.integers(min_value=None if low is None else int(low) + 1, max_value=high)
            )
        elif name == "boolean":
            options.append(st.booleans())
        elif name == "null":
            options.append(st.none())
        elif name == "object":
            options.append(
                st.fixed_dictionaries({k: _conforming(v) for k, v in schema["properties"].items()})
            )
        elif name == "array":
            options.append(st.lists(_conforming(schema["items"]), max_size=3))
    return st.one_of(options)


def _paths(value, prefix=()):
    yield prefix
    if isinstance(value, dict):
        for key, child in value.items():
            yield from _paths(child, (*prefix, key))
    elif isinstance(value, list):
        for index, child in enumerate(value):
            yield from _paths(child, (*prefix, index))


@st.composite
def _near_valid_events(draw):
    """A valid event (hand-written or generated) with zero to three random mutations.

    Every drawn value is copied before it is mutated or mutated into: ``_EDGES``
    samples the same ``[]`` and ``{}`` objects every time, and a mutation of one of
    them changed what later draws produced (hypothesis: FlakyStrategyDefinition)."""
    event = copy.deepcopy(draw(st.just(None).map(lambda _: valid_event()) | _conforming(SCHEMA)))
    for _ in range(draw(st.integers(0, 3))):
        path = draw(st.sampled_from(list(_paths(event))))
        parent = event
        for step in path[:-1]:
            parent = parent[step]
        target = parent[path[-1]] if path else event
        operation = draw(st.sampled_from(["replace", "delete", "add_key"]))
        if operation == "add_key" and isinstance(target, dict):
            target[draw(st.text(max_size=6) | st.sampled_from(list(SCHEMA["properties"])))] = (
                copy.deepcopy(draw(_EDGES | _JSON))
            )
        elif operation == "delete" and path:
            del parent[path[-1]]
        elif path:
            parent[path[-1]] = copy.deepcopy(draw(_EDGES | _JSON))
    return event


_FN = _fn()
_PROPERTY_RECORD = KafkaRecord("events", 0, 0, 0, None, b"{}")


def _assert_tiers_agree(event):
    expected = DRAFT7.is_valid(event)
    assert FAST(event) is expected, list(DRAFT7.iter_errors(event))
    assert DRAFT2020.is_valid(event) is expected  # the contract means the same in 2020-12


@settings(max_examples=1000, deadline=None)
@given(
    st.dictionaries(
        st.sampled_from(list(SCHEMA["properties"])) | st.text(max_size=8), _EDGES | _JSON
    )
)
def test_compiled_check_agrees_on_random_objects(event):
    _assert_tiers_agree(event)


@settings(max_examples=1000, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(_near_valid_events())
def test_compiled_check_agrees_on_mutated_valid_events(event):
    _assert_tiers_agree(event)
    outputs = list(_FN.process((_PROPERTY_RECORD, event)))
    assert len(outputs) == 1
    assert (outputs[0] == (_PROPERTY_RECORD, event)) is FAST(event)
