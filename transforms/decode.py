"""Strict JSON decoding of Kafka record values, with dead letters for the rest.

Rules (each rejection is a dead letter with the reason code in brackets):

- the value must be present and non-empty [``empty_payload``];
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
"""

from __future__ import annotations

import json
import typing

import apache_beam as beam
from apache_beam.metrics import Metrics

from transforms.records import DEAD_LETTER_TAG, KafkaRecord, dead_letter

__all__ = ["DecodeError", "DecodeJson", "DecodeJsonFn", "decode_json_object"]

STAGE = "decode"


class DecodeError(ValueError):
    """A value that is not a strict UTF-8 JSON object; ``reason`` is a stable code."""

    def __init__(self, reason: str, detail: str):
        super().__init__(f"{reason}: {detail}")
        self.reason = reason
        self.detail = detail


def _reject_constant(name: str):
    raise DecodeError("non_finite_number", f"{name} is not a JSON number")


def _unique_keys(pairs):
    result = {}
    for key, value in pairs:
        if key in result:
            raise DecodeError("duplicate_key", f"key {key!r} appears more than once")
        result[key] = value
    return result


def decode_json_object(value: typing.Optional[bytes]) -> dict:
    """Decodes ``value`` as one UTF-8 JSON object, or raises ``DecodeError``."""
    if not value:
        raise DecodeError("empty_payload", "the record has no value")
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


class DecodeJsonFn(beam.DoFn):
    """``KafkaRecord`` → ``(KafkaRecord, dict)``; rejects to ``DEAD_LETTER_TAG``.

    Every input yields exactly one output: a decoded pair on the main output or a
    ``DeadLetter`` on the dead-letter output.  Never raises for a bad value.
    """

    def __init__(self, run_id: str):
        self._run_id = run_id
        self._decoded = Metrics.counter(self.__class__, "decoded")
        self._rejected = Metrics.counter(self.__class__, "decode_rejected")

    def process(self, record: KafkaRecord):
        try:
            payload = decode_json_object(record.value)
        except DecodeError as e:
            reason, detail = e.reason, e.detail
        except Exception as e:  # noqa: BLE001 - any failure to decode is the record's, not ours
            reason, detail = "decode_error", f"{type(e).__name__}: {e}"
        else:
            self._decoded.inc()
            yield record, payload
            return
        self._rejected.inc()
        yield beam.pvalue.TaggedOutput(
            DEAD_LETTER_TAG, dead_letter(record, STAGE, reason, detail, self._run_id)
        )


class DecodeJson(beam.PTransform):
    """Decodes Kafka values as JSON objects.

    Returns a ``DoOutputsTuple``: the main output holds ``(KafkaRecord, dict)``
    pairs, ``[DEAD_LETTER_TAG]`` holds ``DeadLetter`` rows with stage ``decode``.
    """

    def __init__(self, run_id: str):
        super().__init__()
        self._run_id = run_id

    def expand(self, records):
        return records | "DecodeJson" >> beam.ParDo(DecodeJsonFn(self._run_id)).with_outputs(
            DEAD_LETTER_TAG, main="decoded"
        )
