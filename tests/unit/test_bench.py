"""The benchmark's pure parts: the baselines' per-record step, its checks, the verdict.

Expected counts are hand-computed from the hand-made records below.
"""

import json

import pytest

from beam_pipeline import bench, bench_baselines
from beam_pipeline.event_producer import generate
from beam_pipeline.reconcile import Check
from transforms.records import KafkaRecord

pytestmark = pytest.mark.unit

START_MS = 1_795_323_600_000  # 2026-11-22T05:00:00Z, a window boundary


def _events(n):
    return [json.loads(v) for _, v, _ in generate(n, "b1", 5, START_MS, rate_per_s=1).messages]


def _record(offset, value: bytes) -> KafkaRecord:
    return KafkaRecord("bench_t", 0, offset, START_MS + offset, b"k", value)


def test_the_step_sorts_each_record_into_exactly_one_outcome():
    first, second = _events(2)
    invalid = dict(second, event_type="dance")  # not in the contract's enum
    records = [
        _record(0, json.dumps(first).encode()),
        _record(1, json.dumps(first).encode()),  # a duplicate of offset 0
        _record(2, b'{"event_id": '),  # malformed
        _record(3, json.dumps(invalid).encode()),
        _record(4, json.dumps(second).encode()),
    ]
    step = bench_baselines.RecordStep("b1")
    for record in records:
        step(record)
    # 5 records: 2 unique events, 1 duplicate, 2 dead letters (decode, validate).
    assert step.outcome.summary() == {
        "records": 5,
        "valid_unique": 2,
        "duplicates": 1,
        "dead_letters": 2,
        "gold_total": 2,
    }
    assert [(d.stage, d.kafka_offset) for d in step.outcome.dead_letters] == [
        ("decode", 2),
        ("validate", 3),
    ]
    (duplicate,) = step.outcome.duplicates
    assert (duplicate.kafka_offset, duplicate.kept_offset) == (1, 0)


def test_a_nul_escape_is_a_dead_letter_in_the_baseline_too():
    (event,) = _events(1)
    event["location"]["city"] = "Pa\x00ris"
    step = bench_baselines.RecordStep("b1")
    step(_record(0, json.dumps(event).encode()))
    assert [(d.stage, d.reason) for d in step.outcome.dead_letters] == [
        ("normalise", "nul_character")
    ]


_REPORT = {
    "sent": 105,
    "injected": {"valid_unique": 96, "duplicates": 5, "malformed": 2, "invalid": 2, "late": 0},
}


def test_baseline_counts_must_match_the_producers_report():
    good = {"records": 105, "valid_unique": 96, "duplicates": 5, "dead_letters": 4,
            "gold_total": 96}  # fmt: skip
    assert bench.baseline_problems("A", good, _REPORT) == []
    off = dict(good, duplicates=4)
    (problem,) = bench.baseline_problems("A", off, _REPORT)
    assert "duplicates is 4" in problem and "says 5" in problem
    (table,) = bench.baseline_problems("A", good, _REPORT, {"events": 95})
    assert "events holds 95 rows, expected 96" in table


def test_no_figures_unless_the_run_balances():
    passed, failed = Check("a", True, "ok"), Check("b", False, "1 missing")
    assert bench.verdict(0, [passed]) == (0, [])
    assert bench.verdict(0, [passed, failed]) == (1, ["check failed: b: 1 missing"])
    assert bench.verdict(0, []) == (1, ["no reconciliation checks ran"])
    assert bench.verdict(3, [passed])[0] == 3
    assert bench.verdict(0, [passed], ["baseline A: off"]) == (1, ["baseline A: off"])
