"""One copy per id, by the contract's policy, with state that expires in event time.

Policies: drop later copies (customer events), or keep the latest version by a
field (telco customers, by ``updated_at``).

Beam's own ``Deduplicate`` uses a processing-time timer, which forces the legacy
DirectRunner (that refuses cross-language pipelines) and ties state lifetime to
the wall clock.  This composite remembers each id in one of ``buckets`` keyed
state cells (``bucket_of``: a CRC-32 of the id) and forgets it with an
**event-time** timer ``ttl_s`` after its kept copy's timestamp, so state is
bounded by the rate of distinct ids times the TTL, and a replay of old data
expires as the original did.  Copies reach their bucket in batches, one per
bucket and bundle (``transforms.batching``): the runner hands over, and the state
is read and written, once per bucket and bundle rather than once per record.

With ``arrival_ms`` (a record → when it arrived, in event time: its Kafka
timestamp minus the read's watermark delay) whether an id is still remembered is
decided by the copy itself: a copy that arrived at or after the kept copy's
timestamp plus the TTL starts the id afresh, whatever the runtime watermark had
done by then, so a replay after a restore judges every copy as the first run did.
The state is then kept ``grace_s`` longer than the TTL, for the rule to read.
"""

import typing
import zlib

import apache_beam as beam
from apache_beam import coders
from apache_beam.metrics import Metrics
from apache_beam.transforms.timeutil import TimeDomain
from apache_beam.transforms.userstate import BagStateSpec, TimerSpec, on_timer
from apache_beam.transforms.window import TimestampedValue
from apache_beam.utils.timestamp import Timestamp

from runner_patches import keyed_bundles, state_weight
from schemas.records import Duplicate
from transforms.batching import BatchPerKey

__all__ = ["DEDUP_BUCKETS", "DUPLICATES_TAG", "DeduplicateById", "bucket_of"]

DUPLICATES_TAG = "duplicates"

# Ids are kept in this many buckets of keyed state (``bucket_of``).
DEDUP_BUCKETS = 64


def bucket_of(event_id: str, buckets: int) -> str:
    """The state bucket of an id: CRC-32 of its UTF-8 bytes modulo ``buckets``.

    Never ``hash()``: it is salted per process, and every worker must agree."""
    return str(zlib.crc32(event_id.encode("utf-8", "surrogatepass")) % buckets)


class _Kept(typing.NamedTuple):
    """What the state remembers of a kept copy."""

    event_id: str
    partition: int
    offset: int
    timestamp_ms: int  # its Kafka timestamp
    order: typing.Any  # its order value (keep_latest), else None
    forgotten_from_ms: int  # event time from which its id is forgotten (+ TTL)


class _OneCopyPerBucketFn(beam.DoFn):
    """``(bucket, Batch of (record, row) pairs)`` → the kept pairs, each at its own
    timestamp, and a ``Duplicate`` per logged copy (tagged).

    Without ``order_by`` the first copy is kept and every later one is logged.  With
    it, a copy newer by ``order_by`` than the kept one is emitted and the copy it
    replaces is logged, naming its replacement (counter ``superseded``); an older or
    equal copy is logged at once, naming the kept one.  Downstream, an upsert
    guarded on ``order_by`` (``forward_only``) keeps the latest row whatever order
    the writes land in.

    The state of a bucket is a bag of ``_Kept`` entries, appended to as copies are
    kept (a commit sends only the new entries); the latest entry of an id is its
    kept copy.  One watermark timer per bucket purges the entries whose id is
    forgotten (``forgotten_from_ms`` plus the grace); it is set to the earliest such
    time rounded up to a slot (a sixteenth of the TTL, or the grace if longer), so
    that the end of a bounded input fires it a few times per bucket rather than
    once per id.
    """

    SEEN = BagStateSpec("seen", coders.PickleCoder())
    PURGE = TimerSpec("purge", TimeDomain.WATERMARK)

    def __init__(
        self,
        id_field: str,
        ttl_s: int,
        run_id: str,
        order_by: str | None,
        expire: bool = True,
        arrival_ms: typing.Optional[typing.Callable[[typing.Any], int]] = None,
        grace_s: int = 0,
    ):
        self._id_field = id_field
        self._ttl_ms = ttl_s * 1000
        self._arrival_ms = arrival_ms
        self._grace_ms = grace_s * 1000 if arrival_ms is not None else 0
        # The purge runs in slots of a sixteenth of the TTL (or the grace, if
        # longer): when the watermark jumps far (the end of a bounded read), each
        # bucket's timer fires about 16 times per TTL of event time, each firing
        # rewriting the bucket, instead of once per second of expiries.  With the
        # arrival rule the purge never decides a verdict; without it, an id may be
        # remembered up to one slot past its TTL.
        self._slot_ms = max(self._grace_ms, self._ttl_ms // 16, 1)
        self._expire = expire
        self._run_id = run_id
        self._order_by = order_by
        self._unique = Metrics.counter(self.__class__, "unique")
        self._duplicates = Metrics.counter(self.__class__, "duplicates")
        self._superseded = Metrics.counter(self.__class__, "superseded")

    def setup(self):
        state_weight.install()
        keyed_bundles.install()

    def process(
        self,
        element,
        seen=beam.DoFn.StateParam(SEEN),
        purge=beam.DoFn.TimerParam(PURGE),
    ):
        _, batch = element
        kept = {entry.event_id: entry for entry in seen.read()}
        for ts_us, pair in batch:
            record, row = pair
            event_id = str(getattr(row, self._id_field))
            order = getattr(row, self._order_by) if self._order_by else None
            this = _Kept(
                event_id,
                record.partition,
                record.offset,
                record.timestamp_ms,
                order,
                ts_us // 1000 + self._ttl_ms,
            )
            previous = kept.get(event_id)
            if (
                previous is not None
                and self._arrival_ms is not None
                and self._arrival_ms(record) >= previous.forgotten_from_ms
            ):
                previous = None  # it came after its id's TTL: a first copy again
            if previous is not None and (self._order_by is None or order <= previous.order):
                self._duplicates.inc()
                yield beam.pvalue.TaggedOutput(
                    DUPLICATES_TAG,
                    TimestampedValue(
                        self._logged(record.topic, this, previous), Timestamp(micros=ts_us)
                    ),
                )
                continue
            if previous is None:
                self._unique.inc()
            else:
                self._superseded.inc()
                yield beam.pvalue.TaggedOutput(
                    DUPLICATES_TAG,
                    TimestampedValue(
                        self._logged(record.topic, previous, this), Timestamp(micros=ts_us)
                    ),
                )
            kept[event_id] = this
            seen.add(this)
            yield TimestampedValue(pair, Timestamp(micros=ts_us))
        if self._expire and kept:
            self._set_purge(purge, kept.values())

    def _set_purge(self, purge, entries: typing.Iterable[_Kept]) -> None:
        earliest = min(e.forgotten_from_ms for e in entries) + self._grace_ms
        slot = -(-earliest // self._slot_ms) * self._slot_ms  # rounded up
        purge.set(Timestamp(micros=slot * 1000))

    def _logged(self, topic: str, dropped: _Kept, kept: _Kept) -> Duplicate:
        """The log row of copy ``dropped`` given ``kept``."""
        return Duplicate(
            event_id=dropped.event_id,
            kafka_topic=topic,
            kafka_partition=dropped.partition,
            kafka_offset=dropped.offset,
            kafka_timestamp_ms=dropped.timestamp_ms,
            kept_partition=kept.partition,
            kept_offset=kept.offset,
            run_id=self._run_id,
        )

    @on_timer(PURGE)
    def purge(
        self,
        fired_at=beam.DoFn.TimestampParam,
        seen=beam.DoFn.StateParam(SEEN),
        purge=beam.DoFn.TimerParam(PURGE),
    ):
        now_ms = fired_at.micros // 1000
        kept = {entry.event_id: entry for entry in seen.read()}
        remembered = [e for e in kept.values() if e.forgotten_from_ms + self._grace_ms > now_ms]
        seen.clear()
        for entry in remembered:
            seen.add(entry)
        if remembered:
            self._set_purge(purge, remembered)


class DeduplicateById(beam.PTransform):
    """Keeps one copy of each id seen within ``ttl_s`` of event time.

    Two policies, as a contract's ``DedupPolicy`` declares them:

    - ``order_by=None`` (``drop_later_copies``): the first copy is kept, later ones
      are logged.  Which copy is first among copies arriving together is
      unspecified; exactly one is kept.
    - ``order_by=<field>`` (``keep_latest``): the copy with the greatest value of
      that field is kept; each replaced or stale copy is logged, naming the copy
      that replaced it.  A replaced copy has already been emitted: an upsert keyed
      on the id (guarded on the field) ends with the latest, while append-only
      outputs such as Parquet files hold every version emitted.

    Input: ``(KafkaRecord, row)`` pairs with event-time timestamps, the row carrying
    the id field; the record's coordinates name each copy.  Main output
    (``unique``): the kept pairs.
    ``[DUPLICATES_TAG]``: one ``Duplicate`` per logged copy.  Both keep each copy's
    timestamp.  An id is forgotten ``ttl_s`` of event time after its last kept copy
    (an event-time timer per bucket, to a sixteenth of the TTL).

    Args:
      id_field: the row field that identifies an event.
      ttl_s: how long, in event time after a kept copy, its id is remembered.
      run_id: written into every ``Duplicate``.
      order_by: the field that orders versions, for ``keep_latest``.
      expire: set the expiry timers.  ``False`` for a batch job: its watermark
        passes only once all its input is read, so no timer would fire before the
        end anyway and every id is remembered for the whole run, timers or not.
        Skipping them is the same output for less work (a timer is set per bucket
        and batch, and fired per bucket and slot of expiries).
      arrival_ms: a ``KafkaRecord`` → when it arrived, in event time: whether an
        id is remembered is then the copy's own verdict (the module's docstring).
      grace_s: with ``arrival_ms``, how much longer than the TTL the state is kept.
      buckets: how many keyed state cells the ids are spread over.
    """

    def __init__(
        self,
        id_field: str,
        ttl_s: int,
        run_id: str,
        order_by: str | None = None,
        *,
        expire: bool = True,
        arrival_ms: typing.Optional[typing.Callable[[typing.Any], int]] = None,
        grace_s: int = 0,
        buckets: int = DEDUP_BUCKETS,
    ):
        super().__init__()
        if ttl_s <= 0:
            raise ValueError(f"ttl_s must be positive (got {ttl_s})")
        if buckets <= 0:
            raise ValueError(f"buckets must be positive (got {buckets})")
        self._buckets = buckets
        self._id_field = id_field
        self._ttl_s = ttl_s
        self._run_id = run_id
        self._order_by = order_by
        self._expire = expire
        self._arrival_ms = arrival_ms
        self._grace_s = grace_s

    def expand(self, pairs):
        id_field, buckets = self._id_field, self._buckets
        fn = _OneCopyPerBucketFn(
            id_field,
            self._ttl_s,
            self._run_id,
            self._order_by,
            self._expire,
            self._arrival_ms,
            self._grace_s,
        )
        # The step names differ from the per-id state's (KeyById, DropLaterCopies):
        # a savepoint of that shape fails to restore instead of being misread.
        return (
            pairs
            | "KeyByBucket"
            >> beam.Map(
                lambda pair: (bucket_of(str(getattr(pair[1], id_field)), buckets), pair)
            ).with_output_types(tuple[str, typing.Any])
            | "BatchPerBucket" >> BatchPerKey()
            | "DropLaterCopiesPerBucket"
            >> beam.ParDo(fn).with_outputs(DUPLICATES_TAG, main="unique")
        )
