"""The proof graph on Create: accepted rows, dead letters, nothing lost."""

import json

import apache_beam as beam
import pytest
from apache_beam.testing.util import assert_that, equal_to

from beam_pipeline.proof import build_proof
from schemas.proof import ProofRecord
from transforms.records import KafkaRecord

pytestmark = pytest.mark.unit


def _records(values):
    return [
        KafkaRecord("proof", i % 3, i, 1_700_000_000_000 + i, b"k", v) for i, v in enumerate(values)
    ]


def test_every_record_ends_in_exactly_one_output(pipeline):
    values = [
        json.dumps({"id": "a", "seq": 1, "x": "é"}).encode(),  # offset 0: accepted
        b"{oops",  # 1: decode / invalid_json
        json.dumps({"seq": 2}).encode(),  # 2: validate / missing_field (id)
        json.dumps({"id": "b", "seq": "3"}).encode(),  # 3: validate / wrong_type (seq)
        json.dumps({"id": "c", "seq": True}).encode(),  # 4: bool is not an integer here
        json.dumps({"id": "d", "seq": 4}).encode(),  # 5: accepted
    ]
    with pipeline as p:
        out = build_proof(p, beam.Create(_records(values)), run_id="r9")
        assert_that(
            out.records,
            equal_to(
                [
                    ProofRecord("a", 1, '{"id":"a","seq":1,"x":"é"}', "proof", 0, 0, "r9"),
                    ProofRecord("d", 4, '{"id":"d","seq":4}', "proof", 2, 5, "r9"),
                ]
            ),
            label="CheckRecords",
        )
        assert_that(
            out.dead_letters | beam.Map(lambda d: (d.offset, d.stage, d.reason, d.run_id)),
            equal_to(
                [
                    (1, "decode", "invalid_json", "r9"),
                    (2, "validate", "missing_field", "r9"),
                    (3, "validate", "wrong_type", "r9"),
                    (4, "validate", "wrong_type", "r9"),
                ]
            ),
            label="CheckDeadLetters",
        )
