"""The state cache's weighing: Beam's answer, without rebuilding the module-globals set.

Beam 2.71 weighs every state value it caches with ``objsize``, whose default
rebuilds a set of every module's globals on each call; ``runner_patches.state_weight``
keeps that set.  These tests fail if the rebuild comes back in a keyed step.
"""

import typing

import apache_beam as beam
import objsize
import objsize.traverse
import pytest
from apache_beam.runners.worker import statecache

from runner_patches import state_weight
from schemas.records import KafkaRecord
from transforms.dedup import DeduplicateById

pytestmark = pytest.mark.unit


class _Row(typing.NamedTuple):
    event_id: str
    kafka_topic: str
    kafka_partition: int
    kafka_offset: int
    kafka_timestamp_ms: int


@pytest.mark.parametrize(
    "value",
    [
        (0, 17, 1_795_323_600_000, None),  # dedup's state
        (1_795_323_600_000, {(0, 60_000): [3, 1, True], (60_000, 120_000): [1, 0, False]}),
        [_Row("e-1", "t", 0, 1, 2), "text" * 100, b"bytes" * 10],
        {"module globals are not counted": vars(typing)},
        {"str keys": {"are not followed": "by objsize"}, 1: "but other keys are"},
        [("shared",) * 3, 2.5, b"", True, False, None, -(2**70)],
    ],
)
def test_weight_is_beams_own(value):
    assert state_weight.weigh(value) == state_weight.BEAM_WEIGH(value)


def test_plain_values_are_weighed_without_objsize(monkeypatch):
    dedup_state = (0, 17, 1_795_323_600_000, None)
    expected = state_weight.BEAM_WEIGH(dedup_state)

    def refuse(*_, **__):
        raise AssertionError("objsize was called for a plain value")

    monkeypatch.setattr(objsize, "get_deep_size", refuse)
    assert state_weight.weigh(dedup_state) == expected
    assert state_weight.weigh([{(0, 60_000): [3, 1, True]}]) > 0
    with pytest.raises(AssertionError, match="objsize was called"):
        state_weight.weigh(_Row("e-1", "t", 0, 1, 2))  # a NamedTuple: objsize's job


def test_the_module_globals_set_is_kept_until_a_module_is_added(monkeypatch):
    first = state_weight.module_globals_ids()
    assert state_weight.module_globals_ids() is first
    assert id(vars(typing)) in first
    monkeypatch.setitem(__import__("sys").modules, "beamline_test_module", type(typing)("m"))
    assert state_weight.module_globals_ids() is not first


def test_a_keyed_step_never_rebuilds_the_module_globals_set(pipeline, monkeypatch):
    # Start from Beam's weighing, as a fresh worker does, and count the rebuilds.
    monkeypatch.setattr(statecache, "get_deep_size", state_weight.BEAM_WEIGH)
    rebuilds = []
    original = objsize.traverse._iter_modules_globals

    def counted():
        rebuilds.append(1)
        return original()

    monkeypatch.setattr(objsize.traverse, "_iter_modules_globals", counted)
    rows = [_Row(f"e-{i % 7}", "t", 0, i, 1_000 + i) for i in range(40)]
    with pipeline as p:
        _ = (
            p
            | beam.Create(rows)
            | beam.Map(
                lambda r: beam.window.TimestampedValue(
                    (
                        KafkaRecord(
                            r.kafka_topic, 0, r.kafka_offset, r.kafka_timestamp_ms, None, b""
                        ),
                        r,
                    ),
                    r.kafka_timestamp_ms / 1000,
                )
            )
            | DeduplicateById("event_id", 3600, "r1")
        )
    assert state_weight.installed()
    assert rebuilds == []
