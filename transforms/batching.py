"""Batches of keyed elements, formed per bundle: what crosses a keyed boundary.

A runner pays for every element it hands from one stage to the next: on Flink a
keyed hand-off is a gRPC round trip into the TaskManager and back, and a stateful
``DoFn`` reads and writes its state once per element.  ``BatchPerKey`` collects,
within one bundle, the elements of each key (and window) into one ``Batch`` and
emits ``(key, Batch)``, so the keyed step downstream is handed, and touches its
state, once per key and bundle instead of once per element.

A ``Batch`` is a list of ``(timestamp in microseconds, element)``: each element
keeps its own event time, and the batch is stamped with the earliest of them, so
it holds the watermark no later than its oldest element would have.  Nothing is
kept across bundles: a batch is emitted when it reaches ``max_items`` or when the
bundle finishes (on Flink before every checkpoint, with
``--finish_bundle_before_checkpointing``), so a checkpoint never holds a record
in a buffer.  ``Batch`` travels with one pickle per batch (``BatchCoder``), not a
coder call per item.
"""

from __future__ import annotations

import pickle

import apache_beam as beam
from apache_beam import coders
from apache_beam.utils.timestamp import Timestamp
from apache_beam.utils.windowed_value import WindowedValue

__all__ = ["Batch", "BatchCoder", "BatchPerKey", "MAX_BATCH_ITEMS"]

# A batch is emitted at this many elements even inside a bundle: it bounds the
# memory of a bundle's open batches and the size of one state access downstream.
MAX_BATCH_ITEMS = 2000


class Batch(list):
    """``(timestamp in microseconds, element)`` pairs of one key, in arrival order."""

    def earliest(self) -> Timestamp:
        return Timestamp(micros=min(ts for ts, _ in self))


class BatchCoder(coders.Coder):
    """A ``Batch`` as one pickle (protocol 5); not deterministic, so never a key.

    A subclass that names another ``list`` type carries it the same way (the Parquet
    sink's ``RowChunk``)."""

    def encode(self, value: Batch) -> bytes:
        return pickle.dumps(value, protocol=5)

    def decode(self, encoded: bytes) -> Batch:
        return pickle.loads(encoded)

    def is_deterministic(self) -> bool:
        return False

    def to_type_hint(self):
        return Batch


coders.registry.register_coder(Batch, BatchCoder)


class _BatchPerKeyFn(beam.DoFn):
    def __init__(self, max_items: int):
        self._max_items = max_items

    def start_bundle(self):
        self._open: dict[tuple, Batch] = {}

    def process(self, element, timestamp=beam.DoFn.TimestampParam, win=beam.DoFn.WindowParam):
        key, value = element
        batch = self._open.get((key, win))
        if batch is None:
            batch = self._open[(key, win)] = Batch()
        batch.append((timestamp.micros, value))
        if len(batch) >= self._max_items:
            del self._open[(key, win)]
            yield WindowedValue((key, batch), batch.earliest(), [win])

    def finish_bundle(self):
        for (key, win), batch in self._open.items():
            yield WindowedValue((key, batch), batch.earliest(), [win])
        self._open = {}


class BatchPerKey(beam.PTransform):
    """``(key, element)`` → ``(key, Batch)``: one batch per key, window and bundle.

    The key must be a ``str`` (its coder is deterministic, as keyed state needs).
    """

    def __init__(self, max_items: int = MAX_BATCH_ITEMS):
        super().__init__()
        if max_items <= 0:
            raise ValueError(f"max_items must be positive (got {max_items})")
        self._max_items = max_items

    def expand(self, keyed):
        return keyed | beam.ParDo(_BatchPerKeyFn(self._max_items)).with_output_types(
            tuple[str, Batch]
        )
