"""Strict decoding of Kafka record values (JSON, Avro), with dead letters for the rest.

``Decode(decoder, run_id)`` applies a decoder — a callable from the value's bytes
to a ``dict`` that raises ``DecodeError`` — and turns every failure, whatever its
type, into one dead letter with stage ``decode``.  Three decoders:
``decode_json_object``, ``AvroDecoder`` (schemaless Avro binary) and
``ConfluentAvroDecoder`` (Confluent's wire format).

JSON rules (each rejection is a dead letter with the reason code in brackets):

- the value must be present and non-empty [``empty_payload``], and at most
  ``MAX_VALUE_BYTES`` [``too_large``]: one huge record cannot hold a worker;
- it must be valid UTF-8 [``not_utf8``].  Bytes are decoded as UTF-8 *before*
  parsing: ``json.loads`` on bytes would silently accept UTF-16, UTF-32 and a
  BOM, which a Kafka contract of UTF-8 JSON does not allow;
- it must be one JSON document [``invalid_json``]; a leading BOM is refused as
  invalid JSON;
- ``NaN``, ``Infinity`` and ``-Infinity`` are not JSON [``non_finite_number``];
- an object may not repeat a key [``duplicate_key``]: which copy wins is
  undefined across parsers;
- the top level must be an object [``not_an_object``];
- nesting deep enough to exhaust the parser's recursion [``too_deep``];
- any other exception while decoding is caught too [``decode_error``], with its
  type in the detail: a decoder never fails a bundle.

``decode_json_object`` parses with orjson, and gives exactly what the strict
standard-library decoder ``strict_decode_json_object`` gives — the same dict, or
the same reason and detail — by sending every value it cannot vouch for to that
decoder:

- a value orjson refuses: the strict decoder names why, or accepts what orjson
  alone refuses (a lone surrogate escape, a number beyond a double);
- a value starting with a BOM;
- one with 200 opening brackets or more: deep enough to nest beyond orjson's
  re-encoding (255 levels), or near the standard library's recursion limit;
- one with a run of 19 digits: an integer beyond 64 bits, which orjson would
  make a float;
- one spelling a colon as ``\\u003a``;
- one where a key repeats.  orjson keeps the last copy of a repeated key without
  a word, so the fast path counts members instead: outside strings a colon
  occurs once per member, and every colon inside a string survives orjson's
  compact re-encoding of the result, so the re-encoding holds fewer colons than
  the value exactly when a member was dropped.

Avro rules:

- the value must be present [``empty_payload``] and at most ``MAX_VALUE_BYTES``
  [``too_large``];
- it must decode with the contract's schema [``invalid_avro``, with the exception
  type in the detail] and decoding must consume every byte [``trailing_bytes``]:
  a shorter record followed by garbage is not a record;
- with the Confluent wire format, the value starts with the magic byte 0
  [``bad_magic_byte``] and a 4-byte schema id this pipeline knows
  [``unknown_schema_id``]; a value shorter than that header is
  [``truncated_header``].

Avro block counts are bounded by the bytes: every item of every array in a
contract takes at least one byte (there is no null-only item kind), so a forged
count of 2**62 items runs out of input and fails in at most ``len(value)`` steps,
allocating nothing in advance.  Strings are checked as UTF-8 by the reader.
"""

from __future__ import annotations

import io
import json
import struct
import typing

import apache_beam as beam
import fastavro
import orjson
from apache_beam.metrics import Metrics

from schemas.contract import Contract
from schemas.fields import ContractError
from schemas.records import DEAD_LETTER_TAG, KafkaRecord, dead_letter

__all__ = [
    "AvroDecoder",
    "ConfluentAvroDecoder",
    "Decode",
    "DecodeError",
    "DecodeFn",
    "DecodeJson",
    "DecodeJsonFn",
    "MAX_VALUE_BYTES",
    "decode_batch",
    "decode_json_object",
    "decode_value",
    "decoder_for",
    "loads",
    "strict_decode_json_object",
]

STAGE = "decode"
MAX_VALUE_BYTES = 1 << 20  # 1 MiB: Kafka's default message.max.bytes is about that


class DecodeError(ValueError):
    """A value that is not a strict UTF-8 JSON object; ``reason`` is a stable code."""

    def __init__(self, reason: str, detail: str):
        super().__init__(f"{reason}: {detail}")
        self.reason = reason
        self.detail = detail


def _reject_constant(name: str):
    raise DecodeError("non_finite_number", f"{name} is not a JSON number")


def _unique_keys(pairs):
    result = dict(pairs)
    if len(result) == len(pairs):
        return result
    seen = set()
    for key, _ in pairs:
        if key in seen:
            raise DecodeError("duplicate_key", f"key {key!r} appears more than once")
        seen.add(key)
    raise AssertionError("unreachable: fewer keys than pairs means a repeated key")


def decode_json_object(value: typing.Optional[bytes]) -> dict:
    """Decodes ``value`` as one UTF-8 JSON object, or raises ``DecodeError``.

    The fast path (orjson) where it is sure to agree with ``strict_decode_json_object``,
    that decoder everywhere else (see the module's docstring).
    """
    if not value or len(value) > MAX_VALUE_BYTES or _needs_strict(value):
        return strict_decode_json_object(value)
    try:
        document = orjson.loads(value)
    except orjson.JSONDecodeError:
        return strict_decode_json_object(value)
    if orjson.dumps(document).count(b":") != value.count(b":"):
        return strict_decode_json_object(value)  # a repeated key: the strict decoder names it
    if not isinstance(document, dict):
        raise DecodeError("not_an_object", f"top level is a JSON {type(document).__name__}")
    return document


# Fewer opening brackets than this nest less deeply than orjson re-encodes (255
# levels), and leave the standard library's recursion limit (1,000 frames) room for
# the caller's own stack.
_SHALLOW_BRACKETS = 200
_BOM = b"\xef\xbb\xbf"
# Every digit as 0, so that one substring search finds a run of 19 digits.
_DIGITS_AS_ZERO = bytes.maketrans(b"123456789", b"000000000")
_LONG_DIGIT_RUN = b"0" * 19


def _needs_strict(value: bytes) -> bool:
    """True for a value the orjson path cannot vouch for (see the module's docstring)."""
    return (
        value.startswith(_BOM)
        or value.count(b"{") + value.count(b"[") >= _SHALLOW_BRACKETS
        or b"\\u003a" in value
        or b"\\u003A" in value
        or _LONG_DIGIT_RUN in value.translate(_DIGITS_AS_ZERO)
    )


def loads(text: str | bytes):
    """``json.loads(text)``'s result or exception, faster: orjson where it agrees (the
    value passes ``decode_json_object``'s checks before orjson: no 19-digit run, fewer
    than 200 opening brackets …), the standard library elsewhere.

    Unlike ``decode_json_object`` it is as lenient as ``json.loads``: a repeated key
    keeps its last copy, ``NaN`` and ``Infinity`` are numbers.  For JSON this
    pipeline wrote itself (a row's payload) or checks again (``jsonb`` columns).
    """
    raw = text.encode("utf-8", errors="surrogatepass") if isinstance(text, str) else text
    if not _needs_strict(raw):
        try:
            return orjson.loads(raw)
        except orjson.JSONDecodeError:
            pass
    return json.loads(text)


def strict_decode_json_object(value: typing.Optional[bytes]) -> dict:
    """Decodes ``value`` as one UTF-8 JSON object with the standard library, or raises
    ``DecodeError``: the reference ``decode_json_object`` agrees with."""
    if not value:
        raise DecodeError("empty_payload", "the record has no value")
    if len(value) > MAX_VALUE_BYTES:
        raise DecodeError("too_large", f"{len(value)} bytes, more than {MAX_VALUE_BYTES}")
    try:
        text = value.decode("utf-8", errors="strict")
    except UnicodeDecodeError as e:
        raise DecodeError("not_utf8", f"byte {e.start}: {e.reason}") from None
    try:
        document = json.loads(text, parse_constant=_reject_constant, object_pairs_hook=_unique_keys)
    except DecodeError:
        raise
    except json.JSONDecodeError as e:
        raise DecodeError("invalid_json", f"{e.msg} at line {e.lineno} column {e.colno}") from None
    except RecursionError:
        raise DecodeError("too_deep", "nesting exceeds the parser's recursion limit") from None
    if not isinstance(document, dict):
        raise DecodeError("not_an_object", f"top level is a JSON {type(document).__name__}")
    return document


class AvroDecoder:
    """Schemaless Avro binary → ``dict``, strictly (see the module's Avro rules).

    Args:
      schema: the Avro record schema (``Contract.avro_schema()``).
      absent_if_null: top-level fields that are optional but not nullable: Avro
        cannot say "absent", so a null read for one of them removes the key.
    """

    def __init__(self, schema: dict, absent_if_null: typing.Sequence[str] = ()):
        self._schema = schema
        self._absent_if_null = tuple(absent_if_null)
        self._parsed = None

    def _parsed_schema(self):
        if self._parsed is None:
            self._parsed = fastavro.parse_schema(self._schema)
        return self._parsed

    def __call__(self, value: typing.Optional[bytes]) -> dict:
        if not value:
            raise DecodeError("empty_payload", "the record has no value")
        return self.decode_body(value, 0)

    def decode_body(self, value: bytes, start: int) -> dict:
        if len(value) > MAX_VALUE_BYTES:
            raise DecodeError("too_large", f"{len(value)} bytes, more than {MAX_VALUE_BYTES}")
        buffer = io.BytesIO(value)
        buffer.seek(start)
        try:
            record = fastavro.schemaless_reader(buffer, self._parsed_schema(), None)
        except Exception as e:  # noqa: BLE001 - any reader failure is the value's
            raise DecodeError("invalid_avro", f"{type(e).__name__}: {e}") from None
        if buffer.tell() != len(value):
            raise DecodeError(
                "trailing_bytes", f"the record ends at byte {buffer.tell()} of {len(value)}"
            )
        if not isinstance(record, dict):
            raise DecodeError("not_an_object", f"the schema gives a {type(record).__name__}")
        for name in self._absent_if_null:
            if record.get(name, ...) is None:
                del record[name]
        return record


class ConfluentAvroDecoder:
    """Confluent's wire format: magic byte 0, a big-endian 4-byte schema id, Avro binary.

    Args:
      decoders: schema id → the ``AvroDecoder`` of that schema.  Ids are fixed in
        ``schemas/`` (no registry is consulted).
    """

    HEADER = struct.Struct(">bI")

    def __init__(self, decoders: typing.Mapping[int, AvroDecoder]):
        self._decoders = dict(decoders)

    def __call__(self, value: typing.Optional[bytes]) -> dict:
        if not value:
            raise DecodeError("empty_payload", "the record has no value")
        if len(value) < self.HEADER.size:
            raise DecodeError("truncated_header", f"{len(value)} bytes, the header needs 5")
        magic, schema_id = self.HEADER.unpack_from(value)
        if magic != 0:
            raise DecodeError("bad_magic_byte", f"first byte is {magic}, not 0")
        decoder = self._decoders.get(schema_id)
        if decoder is None:
            raise DecodeError(
                "unknown_schema_id", f"schema id {schema_id}; known: {sorted(self._decoders)}"
            )
        return decoder.decode_body(value, self.HEADER.size)

    @classmethod
    def encode(cls, schema_id: int, body: bytes) -> bytes:
        """The wire-format value of an Avro ``body`` written with schema ``schema_id``."""
        return cls.HEADER.pack(0, schema_id) + body


Decoder = typing.Callable[[typing.Optional[bytes]], dict]


def decode_value(decoder: Decoder, value: typing.Optional[bytes]) -> dict | DecodeError:
    """``decoder(value)``, or the ``DecodeError`` of its failure, whatever it raised:
    any other exception becomes reason ``decode_error`` with its type in the detail."""
    try:
        return decoder(value)
    except DecodeError as e:
        return e
    except Exception as e:  # noqa: BLE001 - any failure to decode is the record's, not ours
        return DecodeError("decode_error", f"{type(e).__name__}: {e}")


def decode_batch(
    values: typing.Iterable[typing.Optional[bytes]], decoder: Decoder = decode_json_object
) -> list[dict | DecodeError]:
    """``decode_value`` of each value, in order: one dict or ``DecodeError`` per value."""
    return [decode_value(decoder, value) for value in values]


class DecodeFn(beam.DoFn):
    """``KafkaRecord`` → ``(KafkaRecord, dict)``; rejects to ``DEAD_LETTER_TAG``.

    Every input yields exactly one output: a decoded pair on the main output or a
    ``DeadLetter`` (stage ``decode``) on the dead-letter output.  Never raises for
    a bad value, whatever the decoder raises.
    """

    def __init__(self, decoder: Decoder, run_id: str):
        self._decoder = decoder
        self._run_id = run_id
        self._decoded = Metrics.counter(self.__class__, "decoded")
        self._rejected = Metrics.counter(self.__class__, "decode_rejected")

    def process(self, record: KafkaRecord):
        payload = decode_value(self._decoder, record.value)
        if not isinstance(payload, DecodeError):
            self._decoded.inc()
            yield record, payload
            return
        self._rejected.inc()
        yield beam.pvalue.TaggedOutput(
            DEAD_LETTER_TAG,
            dead_letter(record, STAGE, payload.reason, payload.detail, self._run_id),
        )


class Decode(beam.PTransform):
    """Decodes Kafka values with ``decoder``.

    Returns a ``DoOutputsTuple``: the main output ``decoded`` holds ``(KafkaRecord,
    dict)`` pairs, ``[DEAD_LETTER_TAG]`` holds ``DeadLetter`` rows with stage ``decode``.
    """

    def __init__(self, decoder: Decoder, run_id: str):
        super().__init__()
        self._decoder = decoder
        self._run_id = run_id

    def expand(self, records):
        return records | "Decode" >> beam.ParDo(DecodeFn(self._decoder, self._run_id)).with_outputs(
            DEAD_LETTER_TAG, main="decoded"
        )


class DecodeJsonFn(DecodeFn):
    """``DecodeFn`` with ``decode_json_object``."""

    def __init__(self, run_id: str):
        super().__init__(decode_json_object, run_id)


class DecodeJson(Decode):
    """``Decode`` with ``decode_json_object``: strict UTF-8 JSON objects."""

    def __init__(self, run_id: str):
        super().__init__(decode_json_object, run_id)


def decoder_for(contract: Contract, value_format: str):
    """The decoder of ``contract``'s values in ``value_format`` (``Contract.VALUE_FORMATS``)."""
    if value_format == "json":
        return decode_json_object
    avro = AvroDecoder(contract.avro_schema(), contract.avro_absent_if_null())
    if value_format == "avro":
        return avro
    if value_format == "avro_confluent":
        if contract.confluent_schema_id is None:
            raise ContractError(f"{contract.name} has no Confluent schema id")
        return ConfluentAvroDecoder({contract.confluent_schema_id: avro})
    raise ContractError(f"value format must be one of {', '.join(contract.VALUE_FORMATS)}")
