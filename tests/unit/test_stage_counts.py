"""CountStages: each record under its stage, in the window of its Kafka timestamp."""

import apache_beam as beam
import pytest
from apache_beam.testing.util import assert_that, equal_to

from schemas.records import Duplicate, KafkaRecord, StageCount, dead_letter
from transforms.aggregate import LATE_STAGE, ON_TIME
from transforms.stage_counts import CountStages

pytestmark = pytest.mark.unit


def _record(offset, ms):
    return KafkaRecord("t", 0, offset, ms, b"k", b"{}")


def test_each_record_counts_under_its_stage_in_the_window_of_its_kafka_time(pipeline):
    # Windows of 60 s.  Read: offsets 0-4 at 1 s, 2 s, 3 s, 61 s, 62 s → [0, 60) 3,
    # [60, 120) 2.  Valid: offsets 0, 1 (1 s, 2 s) and 3 (61 s) → 2 and 1.  Duplicate:
    # offset 1's copy at 59 s → [0, 60) 1.  Dead letters: offset 2 at validate (3 s),
    # offset 4 late (62 s) → "dead_letter:validate" 1 in [0, 60), "late" 1 in [60, 120).
    # Every window fires one on-time pane (a bounded input): pane 0.
    records = [_record(i, ms) for i, ms in enumerate((1_000, 2_000, 3_000, 61_000, 62_000))]
    valid = [(records[i], f"row-{i}") for i in (0, 1, 3)]
    duplicates = [Duplicate("e-1", "t", 0, 5, 59_000, 0, 1, "r1")]
    letters = [
        dead_letter(records[2], "validate", "wrong_type", "x", "r1"),
        dead_letter(records[4], LATE_STAGE, "after_window_closed", "x", "r1"),
    ]

    def row(start_s, stage, count):
        return StageCount(
            start_s * 1000, (start_s + 60) * 1000, stage, count, 0, ON_TIME, "r1", "d"
        )

    with pipeline as p:
        inputs = tuple(
            p | f"Create{i}" >> beam.Create(xs)
            for i, xs in enumerate((records, valid, duplicates, letters))
        )
        counts = inputs | CountStages(60, 0, "r1", "d")
        assert_that(
            counts,
            equal_to(
                [
                    row(0, "read", 3),
                    row(60, "read", 2),
                    row(0, "valid", 2),
                    row(60, "valid", 1),
                    row(0, "duplicate", 1),
                    row(0, "dead_letter:validate", 1),
                    row(60, "late", 1),
                ]
            ),
        )
        assert counts.element_type is StageCount
