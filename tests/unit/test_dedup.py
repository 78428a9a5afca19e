"""DeduplicateById: first copy kept, later copies logged, state expiring in event time."""

import typing

import apache_beam as beam
import pytest
from apache_beam.testing import test_stream
from apache_beam.testing.util import assert_that, equal_to
from apache_beam.transforms.window import TimestampedValue
from apache_beam.utils.timestamp import Timestamp

from schemas.records import Duplicate, KafkaRecord
from tests.state_fakes import Bag
from transforms.batching import Batch
from transforms.dedup import DUPLICATES_TAG, DeduplicateById, _OneCopyPerBucketFn, bucket_of

pytestmark = pytest.mark.unit


class Row(typing.NamedTuple):
    event_id: str
    updated_at: str = ""


def _pair(event_id, partition, offset, ts_s, updated_at=""):
    """A (record as read, row) pair as NormaliseEvents emits it, at ``ts_s``."""
    record = KafkaRecord("events", partition, offset, ts_s * 1000, b"k", b"v")
    return TimestampedValue((record, Row(event_id, updated_at)), ts_s)


def test_keeps_one_copy_per_id_and_logs_the_others(pipeline):
    # a: three copies within the TTL -> 1 kept, 2 duplicates; b: one copy -> kept.
    elements = [
        _pair("a", 0, 1, 100),
        _pair("b", 1, 1, 101),
        _pair("a", 2, 7, 102),
        _pair("a", 0, 9, 105),
    ]
    with pipeline as p:
        out = p | beam.Create(elements) | DeduplicateById("event_id", ttl_s=600, run_id="r")
        assert_that(
            out.unique | "Ids" >> beam.Map(lambda pair: pair[1].event_id),
            equal_to(["a", "b"]),
            label="CheckUnique",
        )
        assert_that(
            out[DUPLICATES_TAG] | "Count" >> beam.combiners.Count.Globally(),
            equal_to([2]),
            label="CheckDuplicateCount",
        )
        # Every dropped copy names the kept copy of its id, and coordinates never repeat.
        assert_that(
            out[DUPLICATES_TAG]
            | "Check"
            >> beam.Map(
                lambda d: (
                    d.event_id,
                    d.run_id,
                    (d.kafka_partition, d.kafka_offset) != (d.kept_partition, d.kept_offset),
                )
            ),
            equal_to([("a", "r", True), ("a", "r", True)]),
            label="CheckDuplicateRows",
        )


def _copies_around_the_ttl():
    """'a' at t=0 and t=30, the watermark past 61, then 'a' again at t=100."""
    return (
        test_stream.TestStream()
        .advance_watermark_to(0)
        .add_elements([_pair("a", 0, 0, 0), _pair("a", 0, 1, 30)])
        .advance_watermark_to(61)
        .add_elements([_pair("a", 0, 2, 100)])
        .advance_watermark_to_infinity()
    )


def test_a_copy_after_the_ttl_is_kept_again(stream_pipeline):
    # TTL 60 s.  'a' at t=0 sets expiry at t=60.  The watermark passes 60, the state
    # clears, so 'a' at t=100 is a new first copy; 'a' at t=30 (before expiry) is a duplicate.
    stream = _copies_around_the_ttl()
    with stream_pipeline as p:
        out = p | stream | DeduplicateById("event_id", ttl_s=60, run_id="r")
        assert_that(
            out.unique | "Offsets" >> beam.Map(lambda pair: pair[0].offset),
            equal_to([0, 2]),
            label="CheckKept",
        )
        assert_that(
            out[DUPLICATES_TAG],
            equal_to([Duplicate("a", "events", 0, 1, 30_000, 0, 0, "r")]),
            label="CheckDuplicates",
        )


def test_without_expiry_an_id_is_remembered_for_the_whole_run(stream_pipeline):
    # A batch job's setting: the same input as above, but no timer clears 'a', so
    # its copy at t=100 is a duplicate too.
    stream = _copies_around_the_ttl()
    with stream_pipeline as p:
        out = p | stream | DeduplicateById("event_id", ttl_s=60, run_id="r", expire=False)
        assert_that(
            out.unique | "Offsets" >> beam.Map(lambda pair: pair[0].offset),
            equal_to([0]),
            label="CheckKept",
        )
        assert_that(
            out[DUPLICATES_TAG] | "DroppedOffsets" >> beam.Map(lambda d: d.kafka_offset),
            equal_to([1, 2]),
            label="CheckDuplicates",
        )


def test_ttl_must_be_positive():
    with pytest.raises(ValueError, match="ttl_s"):
        DeduplicateById("event_id", ttl_s=0, run_id="r")


def test_keep_latest_keeps_the_newest_version_and_logs_the_others(stream_pipeline):
    # Policy keep_latest by updated_at (the telco customers contract):
    #   c@0 (v 2026-01-02) first            → emitted
    #   c@1 (v 2026-01-01) older            → logged, naming offset 0 as kept
    #   c@2 (v 2026-01-03) newer            → emitted; offset 0 logged as replaced by 2
    #   c@3 (v 2026-01-03) equal            → logged, naming offset 2
    # Emitted offsets 0 and 2; the log holds 1→0, 0→2, 3→2: 4 records, 2 emitted
    # (an upsert guarded on updated_at ends with offset 2), 3 logged, 1 in both.
    stream = (
        test_stream.TestStream()
        .advance_watermark_to(0)
        .add_elements([_pair("c", 0, 0, 10, "2026-01-02"), _pair("c", 0, 1, 11, "2026-01-01")])
        .add_elements([_pair("c", 0, 2, 12, "2026-01-03")])
        .add_elements([_pair("c", 0, 3, 13, "2026-01-03")])
        .advance_watermark_to_infinity()
    )
    with stream_pipeline as p:
        out = p | stream | DeduplicateById("event_id", 600, "r", order_by="updated_at")
        assert_that(
            out.unique | "Offsets" >> beam.Map(lambda pair: pair[0].offset),
            equal_to([0, 2]),
            label="CheckEmitted",
        )
        assert_that(
            out[DUPLICATES_TAG] | "Pairs" >> beam.Map(lambda d: (d.kafka_offset, d.kept_offset)),
            equal_to([(1, 0), (0, 2), (3, 2)]),
            label="CheckLog",
        )


def _batch(*pairs):
    return Batch((int(p.timestamp.micros), p.value) for p in pairs)


def test_the_arrival_rule_reads_the_kept_copys_forgotten_time():
    # TTL 60 s: 'e1' kept from t=1 s is forgotten from 61 s of event time.  A copy
    # that arrived (Kafka time here) at 200 s starts the id afresh whatever the
    # purge timer has done; one that arrived at 50 s is a duplicate.
    fn = _OneCopyPerBucketFn("event_id", 60, "r", None, arrival_ms=lambda r: r.timestamp_ms)
    seen = Bag()
    first = list(fn.process(("0", _batch(_pair("e1", 0, 1, 1))), seen, seen))
    assert [p.value[0].offset for p in first] == [1]
    again = list(
        fn.process(("0", _batch(_pair("e1", 0, 2, 50), _pair("e1", 0, 3, 200))), seen, seen)
    )
    assert [o.tag for o in again[:1]] == [DUPLICATES_TAG] and again[0].value.value.kept_offset == 1
    assert [p.value[0].offset for p in again[1:]] == [3]


def test_the_purge_forgets_ids_in_slots_of_a_sixteenth_of_the_ttl():
    fn = _OneCopyPerBucketFn("event_id", 60, "r", None)
    seen = Bag()
    list(fn.process(("0", _batch(_pair("a", 0, 1, 0), _pair("b", 0, 2, 30.5))), seen, seen))
    assert seen.timer == Timestamp(60)  # a is forgotten from 60 s
    fn.purge(Timestamp(60), seen, seen)
    assert [e.event_id for e in seen.entries] == ["b"]
    # b from 90.5 s, rounded up to a slot of 60 / 16 = 3.75 s
    assert seen.timer == Timestamp(93.75)


def test_buckets_come_from_crc32_not_the_salted_hash():
    # crc32(b"a") = 0xE8B7BE43: 0x43 % 64 = 3, in every process whatever PYTHONHASHSEED.
    assert bucket_of("a", 64) == "3"
    assert {bucket_of(str(i), 8) for i in range(100)} == {str(b) for b in range(8)}


@pytest.mark.parametrize("buckets", [1, 3])
def test_ids_sharing_a_bucket_keep_their_own_copies(pipeline, buckets):
    elements = [_pair(i, 0, n, 100 + n) for n, i in enumerate("abcabca")]
    with pipeline as p:
        out = (
            p
            | beam.Create(elements)
            | DeduplicateById("event_id", ttl_s=600, run_id="r", buckets=buckets)
        )
        assert_that(
            out.unique | "Offsets" >> beam.Map(lambda pair: pair[0].offset),
            equal_to([0, 1, 2]),
            label="CheckKept",
        )
        assert_that(
            out[DUPLICATES_TAG] | "Pairs" >> beam.Map(lambda d: (d.kafka_offset, d.kept_offset)),
            equal_to([(3, 0), (4, 1), (5, 2), (6, 0)]),
            label="CheckLog",
        )
