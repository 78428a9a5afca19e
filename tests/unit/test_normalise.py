"""NormaliseEvents: event time parsed to UTC ms, rows timestamped, unfit events dead-lettered."""

import copy
import json
import pickle

import apache_beam as beam
import pytest
from apache_beam.testing.util import assert_that, equal_to
from apache_beam.transforms.window import TimestampedValue

from datasets.customer_events import CustomerEventsRow, to_customer_event
from schemas.records import DEAD_LETTER_TAG, DeadLetter, KafkaRecord
from schemas.values import format_timestamp
from tools.event_producer import generate
from transforms.decode import decode_json_object
from transforms.normalise import (
    NormaliseError,
    NormaliseEvents,
    NormaliseEventsFn,
    event_time_ms,
    json_may_hold_nul,
)

pytestmark = pytest.mark.unit

# 2026-11-22T05:00:00Z, computed by hand: 1970→2026 is 56 years with 14 leap days,
# 20,454 days; Jan..Oct 2026 is 304 days, plus 21 → 20,779 days × 86,400 s
# = 1,795,305,600 s, + 5 h × 3,600 s = 1,795,323,600 s.
FIVE_AM_S = 1_795_323_600


@pytest.mark.parametrize(
    "text, expected_ms",
    [
        ("2026-11-22T05:00:00Z", FIVE_AM_S * 1000),
        ("2026-11-22T05:00:00.123Z", FIVE_AM_S * 1000 + 123),
        ("2026-11-22T06:30:00+01:30", FIVE_AM_S * 1000),  # same instant, other offset
        ("2026-11-22T05:00:00.5-00:00", FIVE_AM_S * 1000 + 500),
    ],
)
def test_event_time_is_utc_milliseconds(text, expected_ms):
    assert event_time_ms(text) == expected_ms


@pytest.mark.parametrize(
    "text",
    [
        "2026-13-01T00:00:00Z",  # month 13 matches the contract's pattern
        "2026-02-30T00:00:00Z",
        "2026-11-22T25:00:00Z",
        "2026-11-22T05:00:00",  # no offset: which instant?
        "yesterday",
    ],
)
def test_impossible_or_naive_times_are_refused(text):
    with pytest.raises(NormaliseError) as info:
        event_time_ms(text)
    assert info.value.reason == "bad_timestamp"


def _event():
    return json.loads(generate(1, "n1", 3, FIVE_AM_S * 1000).messages[0][1])


def _record(offset=4):
    return KafkaRecord("customer_events", 1, offset, 1, b"u-1", b"{...}")


def _fn():
    return NormaliseEventsFn(to_customer_event, "timestamp", "r1")


def test_a_valid_event_becomes_a_row_at_its_event_time_beside_its_record():
    event = _event()
    record = _record()
    (out,) = _fn().process((record, event))
    assert isinstance(out, TimestampedValue)
    assert out.timestamp.micros == event_time_ms(event["timestamp"]) * 1000
    kept, row = out.value
    assert kept is record  # the raw bytes and key travel on, for later dead letters
    assert isinstance(row, CustomerEventsRow)
    assert (row.event_id, row.user_id, row.event_type) == (
        event["event_id"],
        event["user_id"],
        event["event_type"],
    )
    assert (row.kafka_partition, row.kafka_offset, row.run_id) == (1, 4, "r1")
    assert row.device_type == event["device"]["type"]
    assert '"event_id":"' + event["event_id"] + '"' in row.payload


@pytest.mark.parametrize(
    "change, reason, where",
    [
        (lambda e: e.update(timestamp="2026-13-01T00:00:00Z"), "bad_timestamp", "2026-13-01"),
        (lambda e: e["location"].update(city="Pa\x00ris"), "nul_character", "$.location.city"),
        (lambda e: e["user_action"].append({"a\x00": 1}), "nul_character", "$.user_action"),
        (lambda e: e.pop("device"), "normalise_error", "KeyError"),
    ],
)
def test_an_unfit_event_is_one_dead_letter(change, reason, where):
    event = copy.deepcopy(_event())
    change(event)
    (out,) = _fn().process((_record(9), event))
    assert out.tag == DEAD_LETTER_TAG
    letter = out.value
    assert isinstance(letter, DeadLetter)
    assert (letter.stage, letter.reason, letter.kafka_offset) == ("normalise", reason, 9)
    assert where in letter.detail


@pytest.mark.parametrize(
    "raw, may_hold",
    [
        (b'{"a":"plain"}', False),
        (b'{"a":"Pa\\u0000ris"}', True),  # the escape: decodes to a NUL
        (b'{"a\\u0000":1}', True),  # in a key
        (b'{"a":"\\\\u0000"}', True),  # an escaped backslash: no NUL, but the walk decides
        (b'{"a":"\x00"}', True),  # a raw zero byte (invalid JSON; the decoder refuses it)
        (None, True),
    ],
)
def test_json_raw_scan_says_when_a_nul_is_possible(raw, may_hold):
    assert json_may_hold_nul(raw) is may_hold


@pytest.mark.parametrize("scan", [None, json_may_hold_nul])
def test_a_nul_escape_in_the_raw_json_is_a_dead_letter_with_or_without_the_scan(scan):
    event = _event()
    event["location"]["city"] = "Pa\x00ris"
    raw = json.dumps(event).encode()  # json.dumps writes the NUL as \u0000
    assert b"\\u0000" in raw
    record = KafkaRecord("customer_events", 1, 9, 1, b"u-1", raw)
    fn = NormaliseEventsFn(to_customer_event, "timestamp", "r1", scan)
    (out,) = fn.process((record, decode_json_object(raw)))
    assert out.tag == DEAD_LETTER_TAG
    assert (out.value.reason, "$.location.city" in out.value.detail) == ("nul_character", True)


def test_the_scan_lets_a_clean_event_through_as_a_row():
    raw = json.dumps(_event()).encode()
    record = KafkaRecord("customer_events", 1, 9, 1, b"u-1", raw)
    fn = NormaliseEventsFn(to_customer_event, "timestamp", "r1", json_may_hold_nul)
    (out,) = fn.process((record, decode_json_object(raw)))
    assert isinstance(out.value[1], CustomerEventsRow)


def test_building_a_row_leaves_the_decoded_event_unchanged():
    event = _event()
    event["user_action"][0]["timestamp"] = "2026-11-22T06:00:00+01:00"  # to be rewritten
    before = copy.deepcopy(event)
    row = to_customer_event(_record(), event, 0, "r1")
    assert event == before
    assert '"timestamp":"2026-11-22T05:00:00.000Z"' in row.payload


def test_the_row_builder_pickles_and_builds_the_same_rows_on_the_other_side():
    # Workers get the builder pickled inside the DoFn; everything it resolved from
    # the contract travels with it.
    event = _event()
    copied = pickle.loads(pickle.dumps(to_customer_event))
    assert copied(_record(), event, 0, "r1") == to_customer_event(_record(), event, 0, "r1")
    normalised = to_customer_event.normalise(event)
    assert copied.child_rows(normalised, "r1") == to_customer_event.child_rows(normalised, "r1")


def test_composite_splits_rows_and_dead_letters_with_event_timestamps(pipeline):
    good = _event()
    bad = copy.deepcopy(good)
    bad["timestamp"] = "2026-02-30T00:00:00Z"
    with pipeline as p:
        out = (
            p
            | beam.Create([(_record(1), good), (_record(2), bad)])
            | NormaliseEvents(to_customer_event, CustomerEventsRow, "timestamp", "r1")
        )
        assert_that(
            out.rows
            | "Stamp"
            >> beam.Map(
                lambda pair, ts=beam.DoFn.TimestampParam: (pair[1].kafka_offset, ts.micros)
            ),
            equal_to([(1, event_time_ms(good["timestamp"]) * 1000)]),
            label="CheckRows",
        )
        assert_that(
            out[DEAD_LETTER_TAG] | "Letters" >> beam.Map(lambda d: (d.kafka_offset, d.reason)),
            equal_to([(2, "bad_timestamp")]),
            label="CheckDeadLetters",
        )


@pytest.mark.parametrize(
    "ms, text",
    [
        (0, "1970-01-01T00:00:00.000Z"),
        (-62135596800000, "0001-01-01T00:00:00.000Z"),  # the first valid instant
        (-59011459200001, "0099-12-31T23:59:59.999Z"),
        (253402300799999, "9999-12-31T23:59:59.999Z"),  # the last
    ],
)
def test_a_formatted_time_has_four_year_digits_and_reads_back(ms, text):
    assert format_timestamp(ms) == text
    assert event_time_ms(text) == ms


def test_build_gives_the_row_and_the_event_its_payload_and_child_rows_come_from():
    batch = generate(300, "r1", 11, 1_795_323_600_000, out_of_order_ratio=0.1)
    for i, (_, value, _) in enumerate(batch.messages):
        event = decode_json_object(value)
        at_ms = event_time_ms(event["timestamp"])
        row, normalised = to_customer_event.build(_record(), event, at_ms, "r1")
        assert row == to_customer_event(_record(), event, at_ms, "r1"), i
        assert row.payload == json.dumps(normalised, ensure_ascii=False, separators=(",", ":"))
        from_payload = to_customer_event.child_rows(json.loads(row.payload), "r1")
        assert to_customer_event.child_rows(normalised, "r1") == from_payload, i


@pytest.mark.parametrize(
    "text, expected",
    [
        ("2026-11-22T05:00:00.000Z", "2026-11-22T05:00:00.000Z"),  # already in UTC ms form
        ("2026-11-22T06:00:00.000+01:00", "2026-11-22T05:00:00.000Z"),
        ("2026-11-22T05:00:00Z", "2026-11-22T05:00:00.000Z"),
        ("2026-11-22T05:00:00.000123Z", "2026-11-22T05:00:00.000123Z"),
        ("2026-02-30T05:00:00.000Z", ValueError),  # the UTC form, but no such day
        ("2026-11-22T25:00:00.000Z", ValueError),
        ("0000-11-22T05:00:00.000Z", ValueError),
    ],
)
def test_nested_timestamps_are_rewritten_in_utc_or_refused(text, expected):
    event = _event()
    event["user_action"][0]["timestamp"] = text
    if expected is ValueError:
        with pytest.raises(ValueError):
            to_customer_event.normalise(event)
    else:
        assert to_customer_event.normalise(event)["user_action"][0]["timestamp"] == expected
