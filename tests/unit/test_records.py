"""The dead-letter envelope: every field filled, a readable preview, Kafka headers."""

import pathlib
import re

import pytest

from schemas.records import PIPELINE_VERSION, KafkaRecord, dead_letter, preview
from transforms.kafka_io import MAX_DEAD_LETTER_MESSAGE_BYTES, dead_letter_message

pytestmark = pytest.mark.unit


@pytest.mark.parametrize(
    "value, expected",
    [
        (None, ""),
        (b"", ""),
        ('{"a": "Zoë"}'.encode(), '{"a": "Zoë"}'),
        (b"a\x00b", "a\\x00b"),  # NUL escaped: PostgreSQL text cannot hold it
        (b"\xff\xfe{", "\\xff\\xfe{"),  # not UTF-8: escaped, not dropped
        (b"x" * 201, "x" * 200 + "…"),
    ],
)
def test_preview_is_readable_text(value, expected):
    assert preview(value) == expected


def test_a_dead_letter_carries_everything_a_person_needs():
    record = KafkaRecord("events", 2, 41, 1_795_323_600_000, b"u-7", b"\x00{bad")
    letter = dead_letter(record, "decode", "invalid_json", "Expecting value \x00 here", "r9")
    assert letter.payload == b"\x00{bad"  # the raw bytes travel unchanged
    assert letter.preview == "\\x00{bad"
    assert letter.detail == "Expecting value \\x00 here"
    assert (letter.kafka_topic, letter.kafka_partition, letter.kafka_offset) == ("events", 2, 41)
    assert (letter.kafka_timestamp_ms, letter.kafka_key) == (1_795_323_600_000, b"u-7")
    assert (letter.run_id, letter.pipeline_version) == ("r9", PIPELINE_VERSION)


def test_the_pipeline_version_is_the_package_version():
    setup = (pathlib.Path(__file__).parents[2] / "setup.py").read_text()
    assert re.search(r'version="([^"]+)"', setup).group(1) == PIPELINE_VERSION


def test_a_dead_letter_message_keeps_key_and_bytes_and_says_why_in_headers():
    record = KafkaRecord("events", 2, 41, 123, b"u-7", b"[1]")
    letter = dead_letter(record, "decode", "not_an_object", "a list", "r9")
    message = dead_letter_message(letter._replace(dataset="events"))
    assert (message.key, message.value) == (b"u-7", b"[1]")
    assert message.headers == {
        "beamline.stage": "decode",
        "beamline.reason": "not_an_object",
        "beamline.detail": "a list",
        "beamline.source.topic": "events",
        "beamline.source.partition": "2",
        "beamline.source.offset": "41",
        "beamline.source.timestamp_ms": "123",
        "beamline.run_id": "r9",
        "beamline.dataset": "events",
        "beamline.pipeline_version": PIPELINE_VERSION,
    }


def _message_bytes(message) -> int:
    headers = sum(len(k) + len(v.encode()) for k, v in message.headers.items())
    return len(message.key or b"") + len(message.value or b"") + headers


@pytest.mark.parametrize("key_bytes", [3, 900_000])
def test_a_dead_letter_message_always_fits_the_topic(key_bytes):
    # A 1,040,000-byte record the broker accepted, plus nine headers with a
    # 2,000-character detail, is over Kafka's 1 MiB request limit: its send would
    # fail the bundle on every retry.
    record = KafkaRecord("events", 0, 7, 1, b"k" * key_bytes, b"v" * 1_040_000)
    letter = dead_letter(record, "decode", "invalid_json", "é" * 3000, "r9")
    message = dead_letter_message(letter)
    assert _message_bytes(message) <= MAX_DEAD_LETTER_MESSAGE_BYTES
    assert message.value == b"v" * len(message.value) and len(message.value) > 400_000
    assert message.key == b"k" * len(message.key)
    assert message.headers["beamline.truncated"].startswith(
        f"key {key_bytes} bytes, value 1040000 bytes, cut to fit the topic"
    )
    assert letter.payload == record.value  # PostgreSQL and Parquet get it whole


def test_a_message_that_fits_is_not_cut():
    record = KafkaRecord("events", 0, 7, 1, None, b"v" * 900_000)
    message = dead_letter_message(dead_letter(record, "decode", "invalid_json", "x", "r9"))
    assert message.value == record.value and message.key is None
    assert "beamline.truncated" not in message.headers
