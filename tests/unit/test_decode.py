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
    decode_batch,
    decode_json_object,
    decoder_for,
    loads,
    strict_decode_json_object,
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


# --- the orjson path agrees with the strict decoder ----------------------------------


def _outcome(decode, value):
    """What a decoder makes of ``value``: the dict's repr (types and key order
    included: ``1 == 1.0 == True``), or the rejection's reason and detail."""
    try:
        return "dict", repr(decode(value))
    except DecodeError as e:
        return "rejected", e.reason, e.detail


_JSON_SCALARS = (
    st.none()
    | st.booleans()
    | st.integers()
    | st.integers(min_value=2**63 - 10, max_value=2**65)
    | st.integers(min_value=-(2**65), max_value=-(2**63) + 10)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=12)
    | st.sampled_from(["\x00", ":", "a:b", "\ud800", "\udc00x", "\\u003a", "é", "\u2028"])
)
_JSON_VALUES = st.recursive(
    _JSON_SCALARS,
    lambda children: (
        st.lists(children, max_size=4)
        | st.lists(
            st.tuples(st.sampled_from(["a", "b", ":", "a:"]) | st.text(max_size=4), children),
            max_size=4,
        )
    ),
    max_leaves=25,
)


def _render(value) -> str:
    """JSON text of ``value``, where a list of (key, value) pairs is an object that may
    repeat a key; strings escaped now one way, now another."""
    if isinstance(value, list) and value and all(isinstance(x, tuple) for x in value):
        return "{" + ",".join(f"{_render(k)}:{_render(v)}" for k, v in value) + "}"
    if isinstance(value, tuple):
        return "{" + f"{_render(value[0])}:{_render(value[1])}" + "}"
    if isinstance(value, list):
        return "[" + ",".join(_render(x) for x in value) + "]"
    if isinstance(value, str):
        return json.dumps(value, ensure_ascii=len(value) % 2 == 0)
    return json.dumps(value)


def _as_bytes(text: str) -> bytes:
    return text.encode("utf-8", errors="surrogatepass")


@settings(max_examples=3000, deadline=None)
@given(st.one_of(st.none(), st.binary(max_size=256)))
def test_fast_decoder_agrees_with_the_strict_one_on_any_bytes(value):
    assert _outcome(decode_json_object, value) == _outcome(strict_decode_json_object, value)


@settings(max_examples=3000, deadline=None)
@given(
    _JSON_VALUES, st.sampled_from(["", " ", "\n", "\ufeff", "\t"]), st.sampled_from(["", " ", "x"])
)
def test_fast_decoder_agrees_with_the_strict_one_on_json_text(value, before, after):
    value = _as_bytes(before + _render(value) + after)
    assert _outcome(decode_json_object, value) == _outcome(strict_decode_json_object, value)


@pytest.mark.parametrize(
    "text",
    [
        '{"a": 1, "a": 1}',
        '{"a": 1, "\\u0061": 2}',  # the same key, escaped
        '{"x": {"b": [{"c": 1, "c": 2}]}}',  # nested
        '{"a": "\\u003a", "a": 1}',  # an escaped colon where a member is lost
        '{"a": 1, "a": "\\u003A"}',
        '{"a:": 1, "a": 2}',  # colons inside keys and strings
        '{"t": "12:00:00", "u": "::"}',
        '[{"a": 1, "a": 2}]',  # a repeat in a document that is not an object
        "\ufeff{}",
        '{"a": "\\ud800"}',  # a lone surrogate: the standard library accepts it
        '{"a": "\\udc00\\ud800"}',
        '{"a": "\\ud83d\\ude00"}',  # a pair
        '{"a": 18446744073709551615}',
        '{"a": 18446744073709551616}',  # beyond 64 bits: orjson would make a float
        '{"a": -9223372036854775809}',
        '{"a": 1234567890123456789012345678901234567890}',
        '{"a": 1e400}',  # the standard library makes it inf
        '{"a": -1e400}',
        '{"a": 1e-400}',
        '{"a": 0.1234567890123456789012}',
        '{"a": -0}',
        '{"a": -0.0}',
        '{"a": NaN}',
        '{"a": Infinity}',
        '{"a": "x\\u0000y"}',
        '{"a": 1}\x00',
        '{"a": "\x7f"}',
        '"just a string"',
        "1.5",
        "",
    ],
)
def test_fast_decoder_agrees_on_crafted_values(text):
    value = _as_bytes(text)
    assert _outcome(decode_json_object, value) == _outcome(strict_decode_json_object, value)


@pytest.mark.parametrize(
    "value",
    [b"\xed\xa0\x80", b"\xc0\xaf", b"\xf4\x90\x80\x80", b"\xff", b"\xe2\x82"],
)
def test_fast_decoder_agrees_on_invalid_utf8(value):
    value = b'{"a": "' + value + b'"}'
    assert _outcome(decode_json_object, value) == _outcome(strict_decode_json_object, value)


@pytest.mark.parametrize(
    "depth", [*range(195, 205), 254, 255, 256, 500, 990, 1000, 1023, 1024, 1030, 5000]
)
@pytest.mark.parametrize("bracket", ["[]", "{}"])
def test_fast_decoder_agrees_at_any_depth(depth, bracket):
    if bracket == "[]":
        text = '{"a": ' + "[" * depth + "]" * depth + "}"
    else:
        text = '{"a": ' * depth + "1" + "}" * depth
    value = text.encode()
    assert _outcome(decode_json_object, value) == _outcome(strict_decode_json_object, value)


def test_decode_batch_gives_one_outcome_per_value_in_order():
    def failing(value):
        raise KeyError("boom")

    out = decode_batch([b'{"a": 1}', b"", b"[1]"])
    assert out[0] == {"a": 1}
    assert [(e.reason, e.detail) for e in out[1:]] == [
        ("empty_payload", "the record has no value"),
        ("not_an_object", "top level is a JSON list"),
    ]
    (error,) = decode_batch([b"{}"], failing)
    assert (error.reason, error.detail) == ("decode_error", "KeyError: 'boom'")


@settings(max_examples=2000, deadline=None)
@given(_JSON_VALUES, st.sampled_from(["", "NaN", "1e400", "-Infinity", "\ufeff"]))
def test_loads_agrees_with_the_standard_library(value, extra):
    text = _render(value)
    text = text.replace("null", extra, 1) if extra != "\ufeff" else extra + text
    assert _lenient_outcome(loads, text) == _lenient_outcome(json.loads, text)
    data = _as_bytes(text)
    assert _lenient_outcome(loads, data) == _lenient_outcome(json.loads, data)


def _lenient_outcome(parse, text):
    try:
        return "parsed", repr(parse(text))
    except ValueError as e:
        return "refused", type(e).__name__, str(e)
