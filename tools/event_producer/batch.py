"""A batch: a dataset's records with exact faults, in send order, and what it holds.

``generate`` makes one: the plan (``planning``) says which original gets which
role, the dataset's record maker makes each record, its value format
(``formats``) writes it down, and the versions of each id are tracked so that the
report says which late events a ``keep_latest`` dedup supersedes on arrival.
``BatchSpec`` holds what the operator tools' flags ask for, in their words.
"""

from __future__ import annotations

import dataclasses
import math
import random

from faker import Faker

import datasets
from schemas.dataset import Dataset
from schemas.normalise import value_at
from schemas.values import event_time_ms
from tools.event_producer.formats import DRIFT_KINDS, ValueFormat, encoder_for
from tools.event_producer.planning import (
    LATE_SPREAD_MS,
    OUT_OF_ORDER_SHIFT_MS,
    Counts,
    plan,
)

__all__ = ["Batch", "BatchSpec", "Injected", "generate"]


@dataclasses.dataclass(frozen=True)
class Injected:
    """How many messages of each kind a batch holds.

    Attributes:
      valid_unique: original events that satisfy the event contract, counted once
        (out-of-order events included, duplicates not).
      malformed: values that are not a strict UTF-8 JSON object.
      invalid: well-formed JSON objects that break the event contract.
      duplicates: extra messages that repeat an earlier valid event byte for byte.
      out_of_order: valid events whose event time precedes the latest one sent before.
      late: valid events sent ``late_shift_ms`` or more behind the latest event time,
        meant to arrive after their window closed (on a streaming runner), and that
        reach the late lane: for a ``keep_latest`` dataset, not those older than a
        version of their id sent before them (``late_superseded``).
      total: every message in the batch: ``valid_unique + malformed + invalid + duplicates``.
      replaced: valid originals whose id another valid original has too (versions of
        a ``keep_latest`` dataset): all but one version per id end in the duplicate
        log, whatever order they arrive in (0 when every id is unique).
      late_superseded: late events of a ``keep_latest`` dataset that are no newer (by
        the dedup order) than a version of their id sent before them: the dedup
        logs them on arrival (one id's versions share a Kafka key, hence a
        partition and its order), so they never reach the late lane.
      late_copies: byte copies of a valid event sent ``late_copy_after_ms`` or more
        of event time after it: on a streaming runner its id has been forgotten
        (the dedup TTL) and its window has closed, so each is a late event, not a
        duplicate (counted in ``total``, not in ``duplicates`` nor ``late``).
    """

    valid_unique: int
    malformed: int
    invalid: int
    duplicates: int
    out_of_order: int
    total: int
    late: int = 0
    replaced: int = 0
    late_superseded: int = 0
    late_copies: int = 0


@dataclasses.dataclass(frozen=True)
class Batch:
    """One generated batch, in send order.

    Attributes:
      messages: ``(key, value, timestamp_ms)`` per Kafka record: the key is the
        user id in UTF-8, the value the event bytes, the timestamp the feed's clock
        when a live feed sends it, in epoch milliseconds (a real producer's
        CreateTime): original ``i``'s slot ``start_ms + round(i * 1000 /
        rate_per_s)``, and for a copy the slot of the original it is sent after.
        It equals the event time only for valid originals sent in order; an
        out-of-order or late event carries its later slot.  Non-decreasing in
        send order, so per partition too.
      injected: the counts of each kind of message.
      labels: one label per message, in the same order: ``valid``,
        ``out_of_order``, ``late``, ``duplicate``, ``late_copy``, ``malformed/<kind>`` or
        ``invalid/<kind>`` (the value format's kinds, and ``DRIFT_KINDS``).
    """

    messages: list[tuple[bytes, bytes, int]]
    injected: Injected
    labels: tuple[str, ...]
    value_format: str = "json"
    dataset: str = "customer_events"


@dataclasses.dataclass(frozen=True)
class BatchSpec:
    """What a batch is made of, in the operator's flags' words (``--malformed``,
    ``--late`` …): ratios are shares of ``count``; the defaults are ``generate``'s.
    ``generate`` below checks the values."""

    count: int
    rate_per_s: float = 1000.0
    users: int = 200
    value_format: str = "json"
    dataset: Dataset | None = None
    malformed: float = 0.0
    invalid: float = 0.0
    duplicates: float = 0.0
    out_of_order: float = 0.0
    drift: float = 0.0
    late: float = 0.0
    late_shift_ms: int = 0
    late_copies: float = 0.0
    late_copy_after_ms: int = 0

    def generate(self, run_id: str, seed: int, start_ms: int) -> Batch:
        """The batch of this spec for ``run_id``, ``seed`` and ``start_ms``; raises
        ``ValueError`` as ``generate`` does."""
        return generate(
            self.count,
            run_id,
            seed,
            start_ms,
            rate_per_s=self.rate_per_s,
            users=self.users,
            malformed_ratio=self.malformed,
            invalid_ratio=self.invalid,
            duplicate_ratio=self.duplicates,
            out_of_order_ratio=self.out_of_order,
            value_format=self.value_format,
            late_ratio=self.late,
            late_shift_ms=self.late_shift_ms,
            dataset=self.dataset,
            drift_ratio=self.drift,
            late_copy_ratio=self.late_copies,
            late_copy_after_ms=self.late_copy_after_ms,
        )


def generate(
    count: int,
    run_id: str,
    seed: int,
    start_ms: int,
    rate_per_s: float = 1000.0,
    users: int = 200,
    malformed_ratio: float = 0.0,
    invalid_ratio: float = 0.0,
    duplicate_ratio: float = 0.0,
    out_of_order_ratio: float = 0.0,
    value_format: str = "json",
    late_ratio: float = 0.0,
    late_shift_ms: int = 0,
    dataset: Dataset | None = None,
    drift_ratio: float = 0.0,
    late_copy_ratio: float = 0.0,
    late_copy_after_ms: int = 0,
) -> Batch:
    """Generates one deterministic batch of a dataset's records with injected faults.

    Original event ``i`` (``0 <= i < count``) has the nominal event time
    ``start_ms + round(i * 1000 / rate_per_s)`` and the id ``f"{run_id}-{i:08d}"``,
    and is exactly one of valid, malformed or invalid.  The numbers of malformed,
    invalid, out-of-order and duplicated events are ``round(count * ratio)`` each;
    which indices get each role is drawn with ``rng.sample`` and the four index sets
    are disjoint (out-of-order events and duplicate sources are valid events, and an
    out-of-order event is never duplicated).  The first valid event is never out of
    order.  An out-of-order event's time is 5–30 s before the latest valid event time
    sent before it; every other valid original is sent at its nominal time, so among
    the originals exactly the out-of-order events are earlier than a predecessor
    (duplicates, sent after their source, are earlier too).  Each duplicate follows
    its source within ``DUPLICATE_MAX_LAG`` further original events.

    Every message's Kafka timestamp is the feed's clock at its send slot, as a live
    producer's CreateTime would be: original ``i``'s nominal time (whatever its
    event time, and for malformed and invalid values too), and for a copy sent after
    original ``i`` (a duplicate, a late copy) that same slot: the source's key and
    value bytes with the later timestamp.  So timestamps never go backwards, and only
    valid in-order originals are stamped with their event time.  Why: the pipeline is
    to judge an event late by its record's Kafka timestamp (when it was sent) against
    its window's close, a rule a replay after a restore cannot change; a late event
    stamped with its own old event time would look on time.

    Args:
      count: number of original events (valid + malformed + invalid).
      run_id: written into every event and its ``event_id``.
      seed: seeds ``random.Random`` and Faker; same arguments, same bytes.
      start_ms: event time and Kafka timestamp of the first event, epoch
        milliseconds (Kafka reads a zero timestamp as "now"); must exceed the
        largest out-of-order shift so that no event time is zero or negative.
      rate_per_s: events per second of event time.
      users: size of the user pool ``u-1`` … ``u-<users>``.
      malformed_ratio: share of originals that are not a JSON object.
      invalid_ratio: share of originals that are JSON objects breaking the contract.
      duplicate_ratio: extra byte-identical copies of valid events, as a share of
        ``count``.
      out_of_order_ratio: share of originals that are valid but out of order.
      late_ratio: share of originals that are valid and sent ``late_shift_ms`` to
        ``late_shift_ms + 5 s`` behind the latest valid event time, chosen among the
        events at least ``late_shift_ms`` after the first (so that a streaming job
        has been reading for that long); never duplicated, never out of order.
      late_shift_ms: how far behind a late event is; pick more than the window plus
        the allowed lateness plus the watermark's delay, and a margin.
      late_copy_ratio: byte copies of valid events (never out of order, late or
        duplicated), as a share of ``count``, each sent right after the first valid
        original whose event time is ``late_copy_after_ms`` or more past its source's
        (``drop_later_copies`` datasets only: a ``keep_latest`` copy is judged by
        its order, not by its arrival).
      late_copy_after_ms: how far behind a late copy is; pick more than the job's
        dedup TTL plus the watermark's delay, and a margin.
      drift_ratio: share of originals from a producer whose schema drifted (JSON
        only), half with a field the contract does not know, half with a number
        sent as a string (``DRIFT_KINDS``); the contract refuses both, so they are
        counted as invalid.
      dataset: whose records (its record maker, key field and invalid kinds);
        default customer events.
      value_format: ``json``, ``avro`` (schemaless, the contract's schema) or
        ``avro_confluent`` (Confluent's wire format, the contract's schema id); the
        malformed and invalid kinds are the format's own.

    Returns:
      The ``Batch``: messages in send order, their labels and the injected counts.

    Raises:
      ValueError: an argument is out of range, the ratios ask for more malformed,
        invalid, out-of-order, late and duplicated events than ``count`` allows, or
        for faults the dataset or the format cannot carry.
    """
    if count < 0:
        raise ValueError(f"count must not be negative, got {count}")
    if users < 1:
        raise ValueError(f"users must be at least 1, got {users}")
    if not rate_per_s > 0 or math.isinf(rate_per_s):
        raise ValueError(f"rate_per_s must be a positive number, got {rate_per_s}")
    if start_ms <= OUT_OF_ORDER_SHIFT_MS[1]:
        raise ValueError(f"start_ms must exceed {OUT_OF_ORDER_SHIFT_MS[1]}, got {start_ms}")
    counts = Counts.of(
        count,
        malformed_ratio=malformed_ratio,
        invalid_ratio=invalid_ratio,
        duplicate_ratio=duplicate_ratio,
        out_of_order_ratio=out_of_order_ratio,
        late_ratio=late_ratio,
        drift_ratio=drift_ratio,
        late_copy_ratio=late_copy_ratio,
        late_shift_ms=late_shift_ms,
        late_copy_after_ms=late_copy_after_ms,
        value_format=value_format,
    )
    dataset = dataset or datasets.get(datasets.DEFAULT)
    if counts.late_copies and dataset.contract.dedup.kind != "drop_later_copies":
        raise ValueError(
            f"late copies are for datasets that drop later copies; {dataset.name} keeps "
            "the latest version, which its dedup orders by its own field"
        )
    if dataset.new_maker is None:
        raise ValueError(f"dataset {dataset.name} has no generator (no record maker)")
    encoder = encoder_for(value_format, dataset)
    rng = random.Random(seed)
    fake = Faker("en_US")
    fake.seed_instance(seed)
    make = dataset.new_maker(rng, fake, users, start_ms)
    planned = plan(
        counts,
        rng,
        malformed_kinds=encoder.malformed_kinds,
        invalid_kinds=encoder.invalid_kinds,
        drift_kinds=DRIFT_KINDS,
        rate_per_s=rate_per_s,
        late_shift_ms=late_shift_ms,
        late_copy_after_ms=late_copy_after_ms,
    )

    messages: list[tuple[bytes, bytes, int]] = []
    labels: list[str] = []
    sent: dict[int, tuple[bytes, bytes]] = {}  # original → its key and value
    latest_ms = None  # the latest valid event time sent so far
    versions = _Versions(dataset)
    for i, role in enumerate(planned.roles):
        slot_ms = start_ms + round(i * 1000 / rate_per_s)  # the feed's clock at send i
        event_ms = slot_ms
        if role == "out_of_order":
            event_ms = min(event_ms, latest_ms) - rng.randint(*OUT_OF_ORDER_SHIFT_MS)
        elif role == "late":
            event_ms = latest_ms - late_shift_ms - rng.randint(0, LATE_SPREAD_MS)
        event = make(i, event_ms, run_id)
        key = str(event[dataset.key_field]).encode()
        value = _value(encoder, role, event)
        if role in _VALID_ROLES:
            latest_ms = event_ms if latest_ms is None else max(latest_ms, event_ms)
            versions.add(event, late=role == "late")
        sent[i] = (key, value)
        messages.append((key, value, slot_ms))
        labels.append(role)
        for source, label in planned.copies_after.get(i, ()):
            messages.append((*sent[source], slot_ms))
            labels.append(label)

    injected = Injected(
        valid_unique=counts.valid,
        malformed=counts.malformed,
        invalid=counts.invalid + counts.drift,
        duplicates=counts.duplicates,
        out_of_order=counts.out_of_order,
        total=count + counts.duplicates + counts.late_copies,
        late=counts.late - versions.late_superseded,
        replaced=counts.valid - len(versions.ids),
        late_superseded=versions.late_superseded,
        late_copies=counts.late_copies,
    )
    return Batch(
        messages=messages,
        injected=injected,
        labels=tuple(labels),
        value_format=encoder.name,
        dataset=dataset.name,
    )


# The roles of originals that satisfy the contract.
_VALID_ROLES = frozenset({"valid", "out_of_order", "late"})


def _value(encoder: ValueFormat, role: str, event: dict) -> bytes:
    """The bytes of an original of ``role`` (``fault/kind`` for poison)."""
    fault, _, kind = role.partition("/")
    if fault == "malformed":
        return encoder.malformed(kind, event)
    if kind in DRIFT_KINDS:  # JSON only (``Counts.of`` refuses drift in another format)
        return encoder.drifted(kind, event)
    if fault == "invalid":
        return encoder.invalid(kind, event)
    return encoder.encode(event)


class _Versions:
    """The ids of a batch's valid originals, and for a ``keep_latest`` dataset the
    newest version (by the dedup's order) sent so far per id: the late versions no
    newer than one sent before them are ``late_superseded``."""

    def __init__(self, dataset: Dataset):
        self._id_field = dataset.contract.id_field
        self._order_of = _dedup_order(dataset.contract)
        self._newest: dict = {}  # id → the greatest order value sent so far
        self.ids: set = set()
        self.late_superseded = 0

    def add(self, event: dict, late: bool) -> None:
        event_id = event[self._id_field]
        self.ids.add(event_id)
        if self._order_of is None:
            return
        order = self._order_of(event)
        newest = self._newest.get(event_id)
        if late and newest is not None and order <= newest:
            self.late_superseded += 1
        self._newest[event_id] = order if newest is None else max(order, newest)


def _dedup_order(contract):
    """For a ``keep_latest`` contract, event → the value its dedup orders by (a
    timestamp as epoch milliseconds, as in the row); None otherwise."""
    path = contract.dedup.order_by
    if path is None:
        return None
    if contract.field(path).kind == "timestamp":
        return lambda event: event_time_ms(value_at(event, path))
    return lambda event: value_at(event, path)
