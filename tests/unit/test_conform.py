"""ConformToSinks: a row a column would refuse becomes a dead letter (stage sink)."""

import typing

import apache_beam as beam
import pytest
from apache_beam.testing.util import assert_that, equal_to

from schemas.records import DEAD_LETTER_TAG, KafkaRecord, dead_letter
from schemas.tables import Table
from transforms.conform import KEY_TEXT_BYTES, ConformToSinks, violations

pytestmark = pytest.mark.unit


class Row(typing.NamedTuple):
    event_id: str
    amount: float
    small: int
    event_time_ms: int
    note: typing.Optional[str]
    payload: str
    kafka_topic: str
    kafka_partition: int
    kafka_offset: int
    kafka_timestamp_ms: int


TABLE = Table(
    "proof",
    Row,
    ("event_id",),
    casts={"payload": "jsonb"},
    sql_types={"amount": "numeric", "small": "integer", "kafka_partition": "integer"},
    generated_times=("event_time_ms",),
)
GOOD = Row("e1", 9.5, 7, 1_795_323_600_000, None, '{"a":"b"}', "t", 0, 0, 0)


@pytest.mark.parametrize(
    "change, column, reason",
    [
        ({"note": "a\x00b"}, "note", "nul_character"),
        ({"note": "\ud800"}, "note", "not_utf8"),
        ({"event_id": "x" * (KEY_TEXT_BYTES + 1)}, "event_id", "too_long"),
        ({"small": 2**31}, "small", "out_of_range"),
        ({"event_time_ms": 2**63}, "event_time_ms", "out_of_range"),
        ({"event_time_ms": 10**16}, "event_time_ms", "timestamp_out_of_range"),
        ({"amount": float("nan")}, "amount", "not_finite"),
        ({"amount": float("-inf")}, "amount", "not_finite"),
        ({"payload": '{"a":"\\u0000"}'}, "payload", "nul_character"),
        ({"payload": "{not json"}, "payload", "not_json"),
        ({"event_id": None}, "event_id", "null_value"),
        ({"small": "7"}, "small", "wrong_type"),
    ],
)
def test_each_poison_is_named_by_column_and_reason(change, column, reason):
    found = violations(TABLE, GOOD._replace(**change))
    assert [(v.column, v.reason) for v in found] == [(column, reason)]


def test_a_row_within_every_limit_passes():
    edge = GOOD._replace(
        event_id="é" * (KEY_TEXT_BYTES // 2),  # 2 bytes each: exactly at the limit
        small=-(2**31),
        event_time_ms=253_402_300_799_999,  # 9999-12-31T23:59:59.999Z
        note="",
    )
    assert violations(TABLE, GOOD) == []
    assert violations(TABLE, edge) == []


def _raw(row) -> bytes:
    """The bytes the row was read from: here not its payload, as a real record's
    raw JSON is not the normalised payload either."""
    return b"raw:" + row.payload.encode("utf-8", errors="surrogatepass")


def _conformed(p, rows):
    pairs = [
        (KafkaRecord(r.kafka_topic, r.kafka_partition, r.kafka_offset, 0, b"key", _raw(r)), r)
        for r in rows
    ]
    return (
        p
        | beam.Create(pairs)
        | ConformToSinks(
            TABLE,
            lambda record, stage, reason, detail: dead_letter(record, stage, reason, detail, "r"),
        )
    )


def test_refused_rows_leave_as_dead_letters_with_their_coordinates(pipeline):
    rows = [GOOD, GOOD._replace(event_id="e2", note="\x00", kafka_offset=5)]
    with pipeline as p:
        out = _conformed(p, rows)
        assert_that(
            out.rows | "Ids" >> beam.Map(lambda pair: pair[1].event_id),
            equal_to(["e1"]),
            label="Ok",
        )
        # The dead letter keeps the record as read: its raw bytes and its key.
        assert_that(
            out[DEAD_LETTER_TAG]
            | beam.Map(lambda d: (d.stage, d.reason, d.kafka_offset, d.payload, d.kafka_key)),
            equal_to([("sink", "nul_character", 5, b'raw:{"a":"b"}', b"key")]),
            label="Refused",
        )


class _Unjudgeable(str):
    """Text whose every search raises: what an unforeseen failure of a check looks like."""

    def __contains__(self, item):
        raise RuntimeError("cannot search me")


def test_a_row_the_check_cannot_judge_is_a_dead_letter_not_a_failed_bundle(pipeline):
    rows = [GOOD, GOOD._replace(event_id="e3", payload=_Unjudgeable('{"a":"b"}'), kafka_offset=8)]
    with pipeline as p:
        out = _conformed(p, rows)
        assert_that(
            out.rows | "Ids" >> beam.Map(lambda pair: pair[1].event_id),
            equal_to(["e1"]),
            label="Ok",
        )
        assert_that(
            out[DEAD_LETTER_TAG] | beam.Map(lambda d: (d.reason, d.kafka_offset, d.detail)),
            equal_to([("conform_error", 8, "RuntimeError: cannot search me")]),
            label="Refused",
        )
