"""Dropping later copies of an event by id, with state that expires in event time.

Beam's own ``Deduplicate`` uses a processing-time timer, which forces the legacy
DirectRunner (that refuses cross-language pipelines) and ties state lifetime to
the wall clock.  This composite keeps one small state cell per id and clears it
with an **event-time** timer ``ttl_s`` after the first copy's timestamp, so state
is bounded by the rate of distinct ids times the TTL, and a replay of old data
expires exactly as the original did.
"""

import typing

import apache_beam as beam
from apache_beam import coders
from apache_beam.metrics import Metrics
from apache_beam.transforms.timeutil import TimeDomain
from apache_beam.transforms.userstate import ReadModifyWriteStateSpec, TimerSpec, on_timer
from apache_beam.utils.timestamp import Duration

__all__ = ["DUPLICATES_TAG", "DeduplicateById", "Duplicate"]

DUPLICATES_TAG = "duplicates"


class Duplicate(typing.NamedTuple):
    """A dropped copy: where it was read, and which kept copy it repeated."""

    event_id: str
    kafka_topic: str
    kafka_partition: int
    kafka_offset: int
    kept_partition: int
    kept_offset: int
    run_id: str


coders.registry.register_coder(Duplicate, coders.RowCoder)


class _DropLaterCopiesFn(beam.DoFn):
    """``(id, row)`` → the row if it is the first copy, else a ``Duplicate`` (tagged)."""

    KEPT = ReadModifyWriteStateSpec("kept", coders.TupleCoder([coders.VarIntCoder()] * 2))
    EXPIRY = TimerSpec("expiry", TimeDomain.WATERMARK)

    def __init__(self, ttl_s: int, run_id: str):
        self._ttl = Duration(seconds=ttl_s)
        self._run_id = run_id
        self._unique = Metrics.counter(self.__class__, "unique")
        self._duplicates = Metrics.counter(self.__class__, "duplicates")

    def process(
        self,
        element,
        timestamp=beam.DoFn.TimestampParam,
        kept=beam.DoFn.StateParam(KEPT),
        expiry=beam.DoFn.TimerParam(EXPIRY),
    ):
        event_id, row = element
        first = kept.read()
        if first is None:
            kept.write((row.kafka_partition, row.kafka_offset))
            expiry.set(timestamp + self._ttl)
            self._unique.inc()
            yield row
            return
        self._duplicates.inc()
        yield beam.pvalue.TaggedOutput(
            DUPLICATES_TAG,
            Duplicate(
                event_id=event_id,
                kafka_topic=row.kafka_topic,
                kafka_partition=row.kafka_partition,
                kafka_offset=row.kafka_offset,
                kept_partition=first[0],
                kept_offset=first[1],
                run_id=self._run_id,
            ),
        )

    @on_timer(EXPIRY)
    def expire(self, kept=beam.DoFn.StateParam(KEPT)):
        kept.clear()


class DeduplicateById(beam.PTransform):
    """Keeps the first copy of each id seen within ``ttl_s`` of event time.

    Input: rows with event-time timestamps that carry the id field and their Kafka
    coordinates (``kafka_topic``, ``kafka_partition``, ``kafka_offset``).  Main
    output: the kept rows.  ``[DUPLICATES_TAG]``: one ``Duplicate`` per dropped copy.
    Which copy is kept among copies arriving together is unspecified; exactly one is.

    Args:
      id_field: the row field that identifies an event.
      ttl_s: how long, in event time after a first copy, later copies are dropped.
      run_id: written into every ``Duplicate``.
    """

    def __init__(self, id_field: str, ttl_s: int, run_id: str):
        super().__init__()
        if ttl_s <= 0:
            raise ValueError(f"ttl_s must be positive (got {ttl_s})")
        self._id_field = id_field
        self._ttl_s = ttl_s
        self._run_id = run_id

    def expand(self, pairs):
        id_field = self._id_field
        return (
            pairs
            | "KeyById" >> beam.Map(lambda row: (str(getattr(row, id_field)), row))
            | "DropLaterCopies"
            >> beam.ParDo(_DropLaterCopiesFn(self._ttl_s, self._run_id)).with_outputs(
                DUPLICATES_TAG, main="unique"
            )
        )
