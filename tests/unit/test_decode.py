"""Strict JSON decoding: the pure function, the DoFn, and the composite."""

import json

import apache_beam as beam
import pytest
from apache_beam.testing.util import assert_that, equal_to
from hypothesis import given, settings
from hypothesis import strategies as st

from schemas.records import DEAD_LETTER_TAG, DeadLetter, KafkaRecord
from transforms.decode import (
    MAX_VALUE_BYTES,
    DecodeError,
    DecodeFn,
    DecodeJson,
    DecodeJsonFn,
    decode_json_object,
    decoder_for,
)

pytestmark = pytest.mark.unit


def _record(value, offset=0):
    return KafkaRecord("t", 1, offset, 1_700_000_000_000, b"k", value)


@pytest.mark.parametrize(
    "value, reason",
    [
        (None, "empty_payload"),
        (b"", "empty_payload"),
        (
            b"\xff\xfe{\x00}\x00",
            "not_utf8",
        ),  # UTF-16 LE with BOM: json.loads(bytes) would accept it
        ('{"a": 1}'.encode("utf-32"), "not_utf8"),
        (b"\xef\xbb\xbf{}", "invalid_json"),  # UTF-8 BOM
        ('{"a": 1}'.encode("utf-16-be"), "invalid_json"),  # valid UTF-8 bytes, NULs between
        (b"{not json", "invalid_json"),
        (b'{"a": 1} {"b": 2}', "invalid_json"),
        (b'{"a": NaN}', "non_finite_number"),
        (b'{"a": -Infinity}', "non_finite_number"),
        (b'{"a": 1, "a": 2}', "duplicate_key"),
        (b"[1, 2]", "not_an_object"),
        (b'"a string"', "not_an_object"),
        (b"null", "not_an_object"),
        (b"[" * 100_000 + b"]" * 100_000, "too_deep"),
        (b'{"a": "' + b"x" * MAX_VALUE_BYTES + b'"}', "too_large"),
    ],
)
def test_rejects_with_reason(value, reason):
    with pytest.raises(DecodeError) as raised:
        decode_json_object(value)
    assert raised.value.reason == reason


def test_accepts_an_object_and_keeps_unicode():
    assert decode_json_object('{"name": "Zoë", "n": [1, 2.5, null]}'.encode()) == {
        "name": "Zoë",
        "n": [1, 2.5, None],
    }


def test_fn_yields_exactly_one_output_per_record():
    fn = DecodeJsonFn(run_id="r1")
    good = list(fn.process(_record(b'{"id": "a"}', offset=5)))
    bad = list(fn.process(_record(b"{", offset=6)))
    assert good == [(_record(b'{"id": "a"}', offset=5), {"id": "a"})]
    assert len(bad) == 1 and bad[0].tag == DEAD_LETTER_TAG
    letter = bad[0].value
    assert (letter.stage, letter.reason, letter.kafka_offset, letter.payload, letter.run_id) == (
        "decode",
        "invalid_json",
        6,
        b"{",
        "r1",
    )


def test_composite_routes_main_and_dead_letters(pipeline):
    records = [_record(b'{"id": "a"}', 0), _record(b"[]", 1), _record(b"\xc3\x28", 2)]
    with pipeline as p:
        out = p | beam.Create(records) | DecodeJson("r1")
        assert_that(
            out.decoded | "Ids" >> beam.Map(lambda pair: (pair[0].offset, pair[1]["id"])),
            equal_to([(0, "a")]),
            label="CheckDecoded",
        )
        assert_that(
            out[DEAD_LETTER_TAG]
            | "Reasons" >> beam.Map(lambda d: (d.kafka_offset, d.stage, d.reason)),
            equal_to([(1, "decode", "not_an_object"), (2, "decode", "not_utf8")]),
            label="CheckDeadLetters",
        )


@settings(max_examples=2000, deadline=None)
@given(st.one_of(st.none(), st.binary(max_size=256)))
def test_any_bytes_give_an_object_or_one_dead_letter(value):
    outputs = list(DecodeJsonFn(run_id="r").process(_record(value)))
    assert len(outputs) == 1
    out = outputs[0]
    if isinstance(out, tuple) and not hasattr(out, "tag"):
        assert isinstance(out[1], dict)
    else:
        assert out.tag == DEAD_LETTER_TAG and isinstance(out.value, DeadLetter)
        assert out.value.payload == value


@settings(max_examples=500, deadline=None)
@given(
    st.dictionaries(
        st.text(max_size=10),
        st.recursive(
            st.none()
            | st.booleans()
            | st.integers()
            | st.text(max_size=20)
            | st.floats(allow_nan=False, allow_infinity=False),
            lambda children: (
                st.lists(children, max_size=4)
                | st.dictionaries(st.text(max_size=5), children, max_size=4)
            ),
            max_leaves=20,
        ),
        max_size=6,
    )
)
def test_every_json_object_round_trips(document):
    assert decode_json_object(json.dumps(document).encode()) == document


# --- Avro ---------------------------------------------------------------------------


def _avro_value(confluent=False):
    from tools.event_producer import encoder_for, generate

    batch = generate(1, "a1", 4, 1_795_323_600_000)
    event = json.loads(batch.messages[0][1])
    return event, encoder_for("avro_confluent" if confluent else "avro").encode(event)


def _decoder(value_format):
    from datasets.customer_events import CONTRACT

    return decoder_for(CONTRACT, value_format)


def test_avro_decodes_the_contracts_events_exactly():
    event, value = _avro_value()
    assert _decoder("avro")(value) == event
    event, value = _avro_value(confluent=True)
    assert value[:5] == b"\x00\x00\x00\x00\x01"  # magic byte 0, schema id 1
    assert _decoder("avro_confluent")(value) == event


@pytest.mark.parametrize(
    "value_format, change, reason",
    [
        ("avro", lambda v: None, "empty_payload"),
        ("avro", lambda v: b"", "empty_payload"),
        ("avro", lambda v: v[: len(v) // 2], "invalid_avro"),
        ("avro", lambda v: v + b"\x00", "trailing_bytes"),
        ("avro", lambda v: b"\x00" * (MAX_VALUE_BYTES + 1), "too_large"),
        # A string claiming 2**62 bytes, then nothing: the reader runs out, allocates nothing.
        ("avro", lambda v: b"\xfe\xff\xff\xff\xff\xff\xff\xff\x7f", "invalid_avro"),
        ("avro_confluent", lambda v: v[:3], "truncated_header"),
        ("avro_confluent", lambda v: b"\x01" + v[1:], "bad_magic_byte"),
        ("avro_confluent", lambda v: b"\x00\x00\x00\x03\xe7" + v[5:], "unknown_schema_id"),
        ("avro_confluent", lambda v: v + b"\x01\x02", "trailing_bytes"),
        ("avro_confluent", lambda v: v[5:], "bad_magic_byte"),  # schemaless on a wire topic
    ],
)
def test_avro_rejects_with_reason(value_format, change, reason):
    _, value = _avro_value(confluent=value_format == "avro_confluent")
    with pytest.raises(DecodeError) as raised:
        _decoder(value_format)(change(value))
    assert raised.value.reason == reason


@pytest.mark.parametrize("value_format", ["avro", "avro_confluent"])
def test_any_bytes_give_one_avro_event_or_one_dead_letter(value_format):
    fn = DecodeFn(_decoder(value_format), run_id="r")
    _, valid = _avro_value(confluent=value_format == "avro_confluent")

    @settings(max_examples=1500, deadline=None)
    @given(
        st.one_of(
            st.none(),
            st.binary(max_size=512),
            # Near misses: a valid value with bytes flipped, cut or appended.
            st.tuples(st.integers(0, len(valid) - 1), st.integers(0, 255)).map(
                lambda f: valid[: f[0]] + bytes([f[1]]) + valid[f[0] + 1 :]
            ),
            st.integers(0, len(valid)).map(lambda n: valid[:n]),
            st.binary(min_size=1, max_size=8).map(lambda tail: valid + tail),
        )
    )
    def check(value):
        outputs = list(fn.process(_record(value)))
        assert len(outputs) == 1
        out = outputs[0]
        if hasattr(out, "tag"):
            assert out.tag == DEAD_LETTER_TAG and out.value.payload == value
        else:
            assert isinstance(out[1], dict)

    check()
