"""The generator and each contract agree: what it labels valid passes the schema and
becomes a row, what it labels invalid fails, what it labels malformed does not decode."""

import json

import jsonschema
import pytest

import datasets
from schemas.records import KafkaRecord
from schemas.values import event_time_ms
from tools.event_producer import generate
from tools.event_producer.formats import number_path
from transforms.decode import DecodeError, decoder_for
from transforms.schema_check import compile_schema

pytestmark = pytest.mark.unit

GENERATED = [n for n in datasets.names() if datasets.get(n).new_maker is not None]


def test_the_minimal_datasets_have_generators():
    assert {"customer_events", "events"} <= set(GENERATED)


@pytest.mark.parametrize("name", GENERATED)
@pytest.mark.parametrize("value_format", ["json", "avro", "avro_confluent"])
def test_every_label_matches_what_decode_and_validate_decide(name, value_format):
    dataset = datasets.get(name)
    contract = dataset.contract
    schema = contract.json_schema()
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
        dataset=dataset,
    )
    assert batch.dataset == name
    decode = decoder_for(contract, value_format)
    verdicts = []
    for offset, ((key, value, ts), label) in enumerate(
        zip(batch.messages, batch.labels, strict=True)
    ):
        try:
            event = decode(value)
        except DecodeError:
            verdicts.append((label.split("/")[0], "malformed"))
            continue
        ok = fast(event)
        assert ok == slow.is_valid(event)
        verdicts.append((label.split("/")[0], "valid" if ok else "invalid"))
        if ok:  # a valid record becomes a row of the main table, keyed as declared
            record = KafkaRecord(contract.topic, 0, offset, ts, key, value)
            at_ms = event_time_ms(event[contract.event_time_field])
            row = dataset.to_row(record, event, at_ms, "agree")
            assert getattr(row, contract.id_column()) == event[contract.id_field]
            assert key == str(event[dataset.key_field]).encode()
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
    kinds = {label.split("/")[1] for label in batch.labels if "/" in label}
    assert len(kinds) >= 6  # every format has at least four malformed and two invalid kinds


@pytest.mark.parametrize("name", GENERATED)
def test_schema_drift_is_refused_by_the_contract_and_counted_invalid(name):
    dataset = datasets.get(name)
    fast = compile_schema(dataset.contract.json_schema())
    decode = decoder_for(dataset.contract, "json")
    batch = generate(400, "drift", 5, 1_795_300_000_000, drift_ratio=0.05, dataset=dataset)
    drifted = [
        decode(value)
        for (_, value, _), label in zip(batch.messages, batch.labels, strict=True)
        if label.startswith("invalid/drift_")
    ]
    assert len(drifted) == batch.injected.invalid == 20
    assert not any(fast(event) for event in drifted)
    extra = sum(1 for e in drifted if "added_upstream_v2" in e)
    # Half have a new field; the other half a number sent as a string (or, for a
    # contract without a number, a new field too).
    assert extra == (10 if number_path(dataset.contract.fields) else 20)
    assert sum(1 for e in drifted if '"12.5"' in json.dumps(e)) == 20 - extra
    with pytest.raises(ValueError, match="drift_ratio is for JSON"):
        generate(10, "d", 5, 1_795_300_000_000, drift_ratio=0.5, value_format="avro")
