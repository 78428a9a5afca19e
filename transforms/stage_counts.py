"""Records per stage per window of their Kafka timestamp: the stage counts.

A dashboard compares, window by window, how many records were read, were valid,
were duplicates, arrived late or were dead-lettered at each stage.  The window is
the one of the record's Kafka timestamp, which the producer sets to the event time,
so every stage of one record counts in the same window.
"""

from __future__ import annotations

import functools

import apache_beam as beam
from apache_beam.transforms.window import TimestampedValue

from schemas.records import DeadLetter, StageCount
from transforms.aggregate import LATE_STAGE, CountPerWindow

__all__ = ["CountStages", "to_stage_count"]


class CountStages(CountPerWindow):
    """``(records, valid, duplicates, dead_letters)`` → ``StageCount`` rows, one per pane.

    Input: a tuple of four PCollections, in this order: ``KafkaRecord`` rows as
    read; ``(KafkaRecord, row)`` pairs that passed every check; ``Duplicate`` rows;
    ``DeadLetter`` rows.  Each element counts once, under its stage — ``read``,
    ``valid``, ``duplicate``, ``late`` (a dead letter of stage ``late``) or
    ``dead_letter:<stage>`` — in the window of its Kafka timestamp.  Output: the
    ``StageCount`` rows of ``CountPerWindow``'s accumulating panes, counted per
    bundle first; a stage's final count is its row of the highest ``pane_index``.
    Elements that arrive after their window closed (its end plus
    ``allowed_lateness_s``) are in no count.

    A ``CountPerWindow`` keyed by stage.  Each input is counted per stage and
    window within its bundle where it is produced (``ReadCombineInBundle`` …), so
    what reaches the union of the four, and the keyed count (``CountPanesPerBatch``,
    directly under this composite's label), is a batch of counts per stage and
    bundle, not an element per record.

    Args:
        window_size_s: The window length in seconds of event time.
        allowed_lateness_s: How long after its end a window still takes elements.
        run_id: Stamped on every row.
        dataset: The dataset's name, stamped on every row.
    """

    def __init__(self, window_size_s: int, allowed_lateness_s: int, run_id: str, dataset: str):
        super().__init__(
            _itself,
            window_size_s,
            functools.partial(to_stage_count, run_id=run_id, dataset=dataset),
            StageCount,
            allowed_lateness_s=allowed_lateness_s,
            combine_in_bundle=True,
        )

    def expand(self, inputs):
        records, valid, duplicates, dead_letters = inputs
        by_stage = (
            self.batch_per_key(
                records | "ReadAtKafkaTime" >> beam.Map(_at(lambda _: "read", _record_ms)),
                "Read",
            ),
            self.batch_per_key(
                valid | "ValidAtKafkaTime" >> beam.Map(_at(lambda _: "valid", _pair_ms)),
                "Valid",
            ),
            self.batch_per_key(
                duplicates
                | "DuplicateAtKafkaTime" >> beam.Map(_at(lambda _: "duplicate", _letter_ms)),
                "Duplicate",
            ),
            self.batch_per_key(
                dead_letters | "DeadLetterAtKafkaTime" >> beam.Map(_at(_stage_key, _letter_ms)),
                "DeadLetter",
            ),
        ) | "CollectStages" >> beam.Flatten()
        counted = self.count_batches(by_stage)
        return counted.counts | "AsStageCounts" >> beam.Map(lambda c: c).with_output_types(
            StageCount
        )


def to_stage_count(
    stage: str,
    count: int,
    start_ms: int,
    end_ms: int,
    pane_index: int,
    timing: str,
    run_id: str,
    dataset: str,
) -> StageCount:
    """The ``StageCount`` row of one pane (``CountPerWindow``'s ``to_row``)."""
    return StageCount(start_ms, end_ms, stage, count, pane_index, timing, run_id, dataset)


def _itself(stage: str) -> str:
    return stage


def _at(stage_of, time_of):
    """An element → its stage, timestamped at ``time_of(element)`` milliseconds."""
    return lambda x: TimestampedValue(stage_of(x), time_of(x) / 1000)


def _record_ms(record) -> int:
    return record.timestamp_ms


def _pair_ms(pair) -> int:
    return pair[0].timestamp_ms


def _letter_ms(row) -> int:
    return row.kafka_timestamp_ms


def _stage_key(letter: DeadLetter) -> str:
    return LATE_STAGE if letter.stage == LATE_STAGE else f"dead_letter:{letter.stage}"
