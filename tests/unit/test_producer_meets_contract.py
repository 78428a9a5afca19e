"""The producer and the contract agree: what it labels valid passes the schema, invalid fails."""

import jsonschema
import pytest

from datasets.customer_events import CONTRACT, load_schema
from tools.event_producer import generate
from transforms.decode import DecodeError, decoder_for
from transforms.validate import compile_schema

pytestmark = pytest.mark.unit


@pytest.mark.parametrize("value_format", ["json", "avro", "avro_confluent"])
def test_every_label_matches_what_decode_and_validate_decide(value_format):
    schema = load_schema()
    fast = compile_schema(schema)
    slow = jsonschema.Draft7Validator(schema)
    batch = generate(
        600,
        "agree",
        11,
        1_795_300_000_000,
        malformed_ratio=0.05,
        invalid_ratio=0.05,
        duplicate_ratio=0.05,
        out_of_order_ratio=0.05,
        value_format=value_format,
    )
    decode = decoder_for(CONTRACT, value_format)
    verdicts = []
    for (_, value, _), label in zip(batch.messages, batch.labels, strict=True):
        try:
            event = decode(value)
        except DecodeError:
            verdicts.append((label.split("/")[0], "malformed"))
            continue
        ok = fast(event)
        assert ok == slow.is_valid(event)
        verdicts.append((label.split("/")[0], "valid" if ok else "invalid"))
    expected = {
        "valid": "valid",
        "out_of_order": "valid",
        "duplicate": "valid",
        "malformed": "malformed",
        "invalid": "invalid",
    }
    assert all(expected[kind] == verdict for kind, verdict in verdicts), [
        v for v in verdicts if expected[v[0]] != v[1]
    ][:5]
    assert sum(1 for _, v in verdicts if v == "invalid") == batch.injected.invalid == 30
