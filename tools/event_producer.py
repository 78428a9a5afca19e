"""The generator: deterministic records of any dataset for Kafka, with exact faults.

The records come from the dataset's record maker (``datasets/<name>.py``, given a
seeded ``random.Random`` and Faker); this module is the one fault injector for all
of them.  ``generate`` builds one batch of keyed values and injects, in exact
numbers, the faults a pipeline must survive:

- **malformed** values: bytes that are not a strict UTF-8 JSON object (truncated
  JSON, non-UTF-8 bytes, a ``NaN`` literal, a top-level array, an empty value, a
  JSON string).  ``transforms.decode.decode_json_object`` rejects every one;
- **invalid** events: well-formed JSON objects that break the contract (a
  required field missing, a wrong type, an enum violation, an unparseable
  timestamp): the ones the dataset names, or ``derived_invalid`` from its
  contract.  They decode, and must fail schema validation;
- **duplicates**: extra messages that are byte copies (key, value and Kafka
  timestamp) of an earlier valid event, sent after it;
- **out-of-order** events: valid events whose event time is 5–30 s earlier than
  the latest event time sent before them;
- **late** events: valid events sent further behind than a streaming job's window
  and allowed lateness, for its late lane;
- **late copies**: byte copies of an earlier valid event sent once the event time
  has moved on past the job's dedup TTL, so that its id has been forgotten (the
  rule in the README's "Dedup after its TTL").

The batch is a pure function of the arguments of ``generate``: the same arguments
give byte-identical messages.  All randomness comes from ``random.Random(seed)``
and a Faker instance seeded with ``seed``; the wall clock is never read.

``python -m tools.event_producer --dataset events --count 10000 --seed 7 --malformed 0.02``
sends a batch to Kafka and prints one JSON line: what was injected, what was sent
and the per-partition offsets before and after.
"""

from __future__ import annotations

import argparse
import bisect
import dataclasses
import datetime
import io
import json
import math
import random
import secrets
import struct
import sys
import time

import fastavro
from faker import Faker

import datasets
from beam_pipeline.identifiers import run_id_argument
from beam_pipeline.settings import StackSettings
from datasets import customer_events
from schemas.dataset import Dataset
from schemas.normalise import value_at
from schemas.values import event_time_ms, format_timestamp
from tools.producer import end_offsets, produce

__all__ = [
    "Batch",
    "batch_from_args",
    "EVENT_KEYS",
    "AVRO_INVALID_KINDS",
    "INVALID_KINDS",
    "Injected",
    "MALFORMED_KINDS",
    "derived_invalid",
    "format_timestamp",
    "generate",
    "main",
    "parse_timestamp",
    "encoder_for",
    "paced",
    "send_batch",
]


# The top-level keys of a customer event, in order.
EVENT_KEYS = tuple(f.name for f in customer_events.CONTRACT.fields)

# Malformed kinds, assigned in turn to the chosen indices (in index order); the
# invalid kinds are the dataset's (``encoder_for(...).invalid_kinds``).
MALFORMED_KINDS = ("truncated", "not_utf8", "nan_literal", "array", "empty", "json_string")
INVALID_KINDS = tuple(customer_events.INVALID)
AVRO_INVALID_KINDS = tuple(customer_events.AVRO_INVALID)

# A Confluent schema id no contract has.
UNKNOWN_SCHEMA_ID = 999

# Out-of-order events go back this far (ms) behind the latest event time sent before them.
OUT_OF_ORDER_SHIFT_MS = (5_000, 30_000)
# A duplicate is sent after at most this many further original events.
DUPLICATE_MAX_LAG = 50

_EPOCH = datetime.datetime(1970, 1, 1, tzinfo=datetime.timezone.utc)


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
        user id in UTF-8, the value the event bytes, the timestamp the event time
        in epoch milliseconds (for malformed and invalid values, the event time
        their slot in the batch would have had).
      injected: the counts of each kind of message.
      labels: one label per message, in the same order: ``valid``,
        ``out_of_order``, ``late``, ``duplicate``, ``late_copy``, ``malformed/<kind>`` or
        ``invalid/<kind>`` (kinds from ``MALFORMED_KINDS`` and ``INVALID_KINDS``).
    """

    messages: list[tuple[bytes, bytes, int]]
    injected: Injected
    labels: tuple[str, ...]
    value_format: str = "json"
    dataset: str = "customer_events"


def parse_timestamp(text: str) -> int:
    """The inverse of ``format_timestamp``; raises ``ValueError`` for any other shape."""
    moment = datetime.datetime.strptime(text, "%Y-%m-%dT%H:%M:%S.%fZ")
    if len(text) != 24:
        raise ValueError(f"not an ISO-8601 UTC timestamp with milliseconds: {text!r}")
    delta = moment.replace(tzinfo=datetime.timezone.utc) - _EPOCH
    return delta.days * 86_400_000 + delta.seconds * 1000 + delta.microseconds // 1000


def _count(count: int, ratio: float, name: str) -> int:
    if not 0.0 <= ratio <= 1.0:
        raise ValueError(f"{name} must be between 0 and 1, got {ratio}")
    return round(count * ratio)


def _encode(event: dict) -> bytes:
    return json.dumps(event, ensure_ascii=False, separators=(",", ":"), allow_nan=False).encode()


def _number_path(fields, prefix: str = "") -> str | None:
    """The first ``number`` field of a contract, depth first (``a.b``), or None."""
    for f in fields:
        if f.kind == "number":
            return prefix + f.name
        if f.kind == "object":
            found = _number_path(f.fields, f"{prefix}{f.name}.")
            if found:
                return found
    return None


def _set(record: dict, path: str, value) -> None:
    *parents, leaf = path.split(".")
    for name in parents:
        record = record[name]
    record[leaf] = value


def _malformed(kind: str, event: dict, nan_path: str | None) -> bytes:
    """A value of ``kind`` that ``decode_json_object`` must reject, made from ``event``."""
    if kind == "truncated":
        data = _encode(event)
        return data[: len(data) // 2]
    if kind == "not_utf8":
        return _encode(event).decode().encode("utf-16")  # starts with the BOM b"\xff\xfe"
    if kind == "nan_literal":
        _set(event, nan_path, float("nan"))
        return json.dumps(event, separators=(",", ":")).encode()
    if kind == "array":
        return _encode([event])
    if kind == "empty":
        return b""
    if kind == "json_string":
        return _encode(json.dumps(event))
    raise ValueError(f"unknown malformed kind {kind!r}")


# Schema drift: an upstream producer that added a field, or changed a number to a string.
DRIFT_KINDS = ("drift_unknown_field", "drift_number_as_string")
DRIFT_FIELD = "added_upstream_v2"


def _drifted(kind: str, event: dict, contract) -> dict:
    """``event`` as a producer whose schema drifted would send it."""
    path = _number_path(contract.fields)
    if kind == "drift_number_as_string" and path is not None:
        _set(event, path, "12.5")
    elif kind in DRIFT_KINDS:  # a contract without a number: a new field instead
        event[DRIFT_FIELD] = "a field the contract does not know"
    else:
        raise ValueError(f"unknown drift kind {kind!r}")
    return event


def derived_invalid(contract, avro: bool = False) -> dict:
    """Faults derived from a contract's constraints, for a dataset that names none.

    Top-level fields only: the event time unparseable; the first enum field with an
    unknown value; for JSON also the event time and that enum field missing and the
    first string field with a minimum length given a number; for Avro (which cannot
    carry a missing or mistyped field) the first such string empty and the first
    field with a minimum below it."""
    time_field = contract.event_time_field
    enum = next(f.name for f in contract.fields if f.enum)
    text = next(f.name for f in contract.fields if f.kind == "string" and f.min_length)
    kinds = {
        f"unknown_{enum}": lambda e: e.update({enum: "teleport"}),
        f"bad_{time_field}": lambda e: e.update({time_field: "yesterday"}),
    }
    if avro:
        low = next(
            f for f in contract.fields if f.minimum is not None and f.kind in ("integer", "number")
        )
        kinds[f"empty_{text}"] = lambda e: e.update({text: ""})
        kinds[f"below_minimum_{low.name}"] = lambda e: e.update({low.name: low.minimum - 1})
    else:
        kinds[f"missing_{enum}"] = lambda e: e.pop(enum)
        kinds[f"missing_{time_field}"] = lambda e: e.pop(time_field)
        kinds[f"{text}_not_string"] = lambda e: e.update({text: 12345})
    return kinds


class _JsonFormat:
    """JSON values: ``MALFORMED_KINDS``, and the dataset's invalid kinds."""

    name = "json"
    malformed_kinds = MALFORMED_KINDS

    def __init__(self, dataset: Dataset):
        self._invalid = dataset.invalid or derived_invalid(dataset.contract)
        self.invalid_kinds = tuple(self._invalid)
        self._nan_path = _number_path(dataset.contract.fields)
        if self._nan_path is None:
            self.malformed_kinds = tuple(k for k in MALFORMED_KINDS if k != "nan_literal")

    def encode(self, event: dict) -> bytes:
        return _encode(event)

    def malformed(self, kind: str, event: dict) -> bytes:
        return _malformed(kind, event, self._nan_path)

    def invalid(self, kind: str, event: dict) -> bytes:
        self._invalid[kind](event)
        return _encode(event)


class _AvroFormat:
    """Avro values with the contract's schema, schemaless or in Confluent's wire format.

    Avro cannot carry a missing field or a mistyped one, so its invalid kinds break
    the contract within Avro's types; its malformed kinds are bytes the strict
    decoder refuses (a truncated record, one with a trailing byte, an empty value,
    the event as JSON, and for the wire format a bad magic byte and an unknown id).
    """

    def __init__(self, dataset: Dataset, confluent: bool):
        contract = dataset.contract
        self.name = "avro_confluent" if confluent else "avro"
        self._schema = fastavro.parse_schema(contract.avro_schema())
        self._schema_id = contract.confluent_schema_id if confluent else None
        extra = ("bad_magic_byte", "unknown_schema_id") if confluent else ()
        self.malformed_kinds = ("truncated", "trailing_bytes", "empty", "json_value") + extra
        self._invalid = dataset.avro_invalid or derived_invalid(contract, avro=True)
        self.invalid_kinds = tuple(self._invalid)

    def _frame(self, body: bytes, schema_id: int | None = None) -> bytes:
        if self._schema_id is None:
            return body
        sid = self._schema_id if schema_id is None else schema_id
        return struct.pack(">bI", 0, sid) + body

    def encode(self, event: dict) -> bytes:
        buffer = io.BytesIO()
        fastavro.schemaless_writer(buffer, self._schema, event)
        return self._frame(buffer.getvalue())

    def malformed(self, kind: str, event: dict) -> bytes:
        value = self.encode(event)
        if kind == "truncated":
            return value[: len(value) // 2]
        if kind == "trailing_bytes":
            return value + b"\x00"
        if kind == "empty":
            return b""
        if kind == "json_value":
            return _encode(event)
        if kind == "bad_magic_byte":
            return b"\x01" + value[1:]
        if kind == "unknown_schema_id":
            return struct.pack(">bI", 0, UNKNOWN_SCHEMA_ID) + value[5:]
        raise ValueError(f"unknown malformed kind {kind!r}")

    def invalid(self, kind: str, event: dict) -> bytes:
        self._invalid[kind](event)
        return self.encode(event)


def encoder_for(name: str, dataset: Dataset | None = None):
    """The encoder of ``name`` (``json``, ``avro`` or ``avro_confluent``) for ``dataset``
    (default: customer events)."""
    dataset = dataset or datasets.get(datasets.DEFAULT)
    if name == "json":
        return _JsonFormat(dataset)
    if name in ("avro", "avro_confluent"):
        return _AvroFormat(dataset, confluent=name == "avro_confluent")
    raise ValueError(f"value format must be json, avro or avro_confluent, not {name!r}")


def _dedup_order(contract):
    """For a ``keep_latest`` contract, event → the value its dedup orders by (a
    timestamp as epoch milliseconds, as in the row); None otherwise."""
    path = contract.dedup.order_by
    if path is None:
        return None
    if contract.field(path).kind == "timestamp":
        return lambda event: event_time_ms(value_at(event, path))
    return lambda event: value_at(event, path)


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

    Args:
      count: number of original events (valid + malformed + invalid).
      run_id: written into every event and its ``event_id``.
      seed: seeds ``random.Random`` and Faker; same arguments, same bytes.
      start_ms: event time of the first event, epoch milliseconds; must exceed the
        largest out-of-order shift so that no timestamp is zero or negative (Kafka
        reads a zero timestamp as "now").
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
      ValueError: an argument is out of range, or the ratios ask for more
        malformed, invalid, out-of-order and duplicated events than ``count`` allows.
    """
    if count < 0:
        raise ValueError(f"count must not be negative, got {count}")
    if users < 1:
        raise ValueError(f"users must be at least 1, got {users}")
    if not rate_per_s > 0 or math.isinf(rate_per_s):
        raise ValueError(f"rate_per_s must be a positive number, got {rate_per_s}")
    if start_ms <= OUT_OF_ORDER_SHIFT_MS[1]:
        raise ValueError(f"start_ms must exceed {OUT_OF_ORDER_SHIFT_MS[1]}, got {start_ms}")
    n_malformed = _count(count, malformed_ratio, "malformed_ratio")
    n_invalid = _count(count, invalid_ratio, "invalid_ratio")
    n_duplicates = _count(count, duplicate_ratio, "duplicate_ratio")
    n_late = _count(count, out_of_order_ratio, "out_of_order_ratio")
    n_beyond = _count(count, late_ratio, "late_ratio")
    n_drift = _count(count, drift_ratio, "drift_ratio")
    n_copies = _count(count, late_copy_ratio, "late_copy_ratio")
    if n_copies and late_copy_after_ms <= 0:
        raise ValueError(
            f"late_copy_ratio needs a positive late_copy_after_ms, got {late_copy_after_ms}"
        )
    if n_drift and value_format != "json":
        raise ValueError(
            "drift_ratio is for JSON values: a drifted Avro producer writes with another "
            "schema id (the malformed kind unknown_schema_id)"
        )
    if n_beyond and late_shift_ms <= 0:
        raise ValueError(f"late_ratio needs a positive late_shift_ms, got {late_shift_ms}")
    n_valid = count - n_malformed - n_invalid - n_drift
    if n_valid < 0 or n_duplicates + n_late + n_beyond + (1 if n_late else 0) > n_valid:
        raise ValueError(
            f"{count} events cannot hold {n_malformed} malformed, {n_invalid} invalid, "
            f"{n_late} out-of-order, {n_beyond} late and {n_duplicates} duplicated events"
        )

    dataset = dataset or datasets.get(datasets.DEFAULT)
    if n_copies and dataset.contract.dedup.kind != "drop_later_copies":
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

    faulty = rng.sample(range(count), n_malformed + n_invalid + n_drift)
    malformed = sorted(faulty[:n_malformed])
    invalid = sorted(faulty[n_malformed : n_malformed + n_invalid])
    drift = sorted(faulty[n_malformed + n_invalid :])
    roles: dict[int, str] = {}
    roles.update(
        (i, f"malformed/{encoder.malformed_kinds[k % len(encoder.malformed_kinds)]}")
        for k, i in enumerate(malformed)
    )
    roles.update(
        (i, f"invalid/{encoder.invalid_kinds[k % len(encoder.invalid_kinds)]}")
        for k, i in enumerate(invalid)
    )
    roles.update((i, f"invalid/{DRIFT_KINDS[k % len(DRIFT_KINDS)]}") for k, i in enumerate(drift))
    valid = [i for i in range(count) if i not in roles]
    late = set(rng.sample(valid[1:], n_late))
    first_late = math.ceil(late_shift_ms * rate_per_s / 1000)
    candidates = [i for i in valid[1:] if i >= first_late and i not in late]
    if n_beyond > len(candidates):
        raise ValueError(
            f"only {len(candidates)} valid events come {late_shift_ms} ms after the first: "
            f"too few for {n_beyond} late events (send more events, or a smaller shift)"
        )
    beyond = set(rng.sample(candidates, n_beyond))
    sources = sorted(rng.sample([i for i in valid if i not in late | beyond], n_duplicates))
    # after[i]: the duplicate sources sent right after original event i.
    after: dict[int, list[int]] = {}
    for j in sources:
        after.setdefault(rng.randint(j, min(count - 1, j + DUPLICATE_MAX_LAG)), []).append(j)
    # A late copy's source is a valid original at its nominal time whose time plus
    # the copy's lag comes before the last valid original's: the copy is sent right
    # after the first valid original at or past that time.
    copy_lag = math.ceil(late_copy_after_ms * rate_per_s / 1000)
    on_time = [i for i in valid if i not in late | beyond]
    duplicated = set(sources)
    copyable = [i for i in on_time if i not in duplicated and i + copy_lag <= on_time[-1]]
    if n_copies > len(copyable):
        raise ValueError(
            f"only {len(copyable)} valid events come {late_copy_after_ms} ms before the last: "
            f"too few for {n_copies} late copies (send more events, or a smaller lag)"
        )
    copies = sorted(rng.sample(copyable, n_copies))
    for j in copies:
        due = on_time[bisect.bisect_left(on_time, j + copy_lag)]
        after.setdefault(due, []).append(j)

    messages: list[tuple[bytes, bytes, int]] = []
    labels: list[str] = []
    sent: dict[int, tuple[bytes, bytes, int]] = {}
    latest_ms = None  # the latest valid event time sent so far
    ids: set = set()  # the ids of the valid originals
    order_of = _dedup_order(dataset.contract)  # keep_latest: event → its order value
    newest: dict = {}  # id → the greatest order value sent so far (keep_latest)
    late_superseded = 0
    copies_set = set(copies)
    for i in range(count):
        event_ms = start_ms + round(i * 1000 / rate_per_s)
        role = roles.get(i, "valid")
        if i in late:
            event_ms = min(event_ms, latest_ms) - rng.randint(*OUT_OF_ORDER_SHIFT_MS)
            role = "out_of_order"
        elif i in beyond:
            event_ms = latest_ms - late_shift_ms - rng.randint(0, 5_000)
            role = "late"
        event = make(i, event_ms, run_id)
        key = str(event[dataset.key_field]).encode()
        if role.startswith("malformed/"):
            value = encoder.malformed(role.split("/", 1)[1], event)
        elif role.startswith("invalid/drift_"):
            value = _encode(_drifted(role.split("/", 1)[1], event, dataset.contract))
        elif role.startswith("invalid/"):
            value = encoder.invalid(role.split("/", 1)[1], event)
        else:
            value = encoder.encode(event)
            latest_ms = event_ms if latest_ms is None else max(latest_ms, event_ms)
        message = (key, value, event_ms)
        if role in ("valid", "out_of_order", "late"):
            event_id = event[dataset.contract.id_field]
            ids.add(event_id)
            if order_of is not None:
                order = order_of(event)
                if role == "late" and event_id in newest and order <= newest[event_id]:
                    late_superseded += 1
                newest[event_id] = max(order, newest.get(event_id, order))
        sent[i] = message
        messages.append(message)
        labels.append(role)
        for j in after.get(i, ()):
            messages.append(sent[j])
            labels.append("late_copy" if j in copies_set else "duplicate")

    injected = Injected(
        valid_unique=n_valid,
        malformed=n_malformed,
        invalid=n_invalid + n_drift,
        duplicates=n_duplicates,
        out_of_order=n_late,
        total=count + n_duplicates + n_copies,
        late=n_beyond - late_superseded,
        replaced=n_valid - len(ids),
        late_superseded=late_superseded,
        late_copies=n_copies,
    )
    return Batch(
        messages=messages,
        injected=injected,
        labels=tuple(labels),
        value_format=encoder.name,
        dataset=dataset.name,
    )


def paced(messages, clock=time.time, sleep=time.sleep, stop=None):
    """Yields ``(key, value, timestamp_ms)`` messages no earlier than their timestamps.

    A live feed: a message whose event time is in the future waits for it; one whose
    event time has passed (out of order, a duplicate) goes at once.  Setting the
    ``stop`` event ends the feed early (the report then says what was sent).
    """
    for message in messages:
        wait_s = message[2] / 1000 - clock()
        if wait_s > 0:
            if stop is None:
                sleep(wait_s)
            elif stop.wait(wait_s):
                return
        if stop is not None and stop.is_set():
            return
        yield message


def send_batch(
    bootstrap_servers: str,
    topic: str,
    batch: Batch,
    run_id: str,
    seed: int,
    start_ms: int,
    live: bool = False,
    stop=None,
) -> dict:
    """Sends ``batch`` to ``topic`` and returns the producer's report.

    The report says what was injected and sent, and the per-partition end offsets
    before and after the send; ``produced`` is their difference per partition.
    With no other writer on the topic, the batch is exactly the offsets
    ``[offsets_before[p], offsets_after[p])`` of each partition ``p``.  With
    ``live``, each message is sent when the wall clock reaches its event time.
    """
    before = end_offsets(bootstrap_servers, topic)
    delivered = produce(bootstrap_servers, topic, paced(batch.messages) if live else batch.messages)
    after = end_offsets(bootstrap_servers, topic)
    return {
        "run_id": run_id,
        "dataset": batch.dataset,
        "topic": topic,
        "value_format": batch.value_format,
        "seed": seed,
        "start_ms": start_ms,
        "injected": dataclasses.asdict(batch.injected),
        "sent": len(delivered),
        "offsets_before": before,
        "offsets_after": after,
        "produced": {p: after[p] - before.get(p, 0) for p in after},
    }


def batch_from_args(args, count: int, run_id: str, seed: int, start_ms: int) -> Batch:
    """``generate`` with the fault ratios, rate, pool and format of parsed CLI ``args``."""
    return generate(
        count,
        run_id,
        seed,
        start_ms,
        rate_per_s=args.rate,
        users=getattr(args, "users", 200),
        malformed_ratio=args.malformed,
        invalid_ratio=args.invalid,
        duplicate_ratio=args.duplicates,
        out_of_order_ratio=args.out_of_order,
        value_format=args.value_format,
        late_ratio=getattr(args, "late", 0.0),
        late_shift_ms=round(getattr(args, "late_shift_s", 0) * 1000),
        dataset=datasets.get(getattr(args, "dataset", datasets.DEFAULT)),
        drift_ratio=getattr(args, "drift", 0.0),
        late_copy_ratio=getattr(args, "late_copies", 0.0),
        late_copy_after_ms=round(getattr(args, "late_copy_after_s", 0) * 1000),
    )


def main(argv=None) -> int:
    """Generates a batch, sends it to Kafka and prints a one-line JSON report."""
    parser = argparse.ArgumentParser(
        prog="python -m tools.event_producer",
        description="Send a dataset's deterministic records, with injected faults, to Kafka.",
    )
    parser.add_argument("--dataset", default=datasets.DEFAULT, choices=datasets.names())
    parser.add_argument("--count", type=int, default=1000, help="original events to generate")
    parser.add_argument("--seed", type=int, default=None, help="default: random, reported")
    parser.add_argument(
        "--run_id", type=run_id_argument, default=None, help="default: a random 12-hex id"
    )
    parser.add_argument("--rate", type=float, default=1000.0, help="events per second")
    parser.add_argument("--start_ms", type=int, default=None, help="default: now")
    parser.add_argument("--users", type=int, default=200, help="size of the user pool")
    parser.add_argument("--malformed", type=float, default=0.0, help="ratio of malformed")
    parser.add_argument("--invalid", type=float, default=0.0, help="ratio of invalid")
    parser.add_argument("--duplicates", type=float, default=0.0, help="ratio of duplicates")
    parser.add_argument("--out_of_order", type=float, default=0.0, help="ratio out of order")
    parser.add_argument("--late", type=float, default=0.0, help="ratio sent --late_shift_s behind")
    parser.add_argument("--late_shift_s", type=float, default=0.0, help="how far behind")
    parser.add_argument("--topic", default=None, help="default: the dataset's topic")
    parser.add_argument(
        "--live", action="store_true", help="send each event when its event time comes"
    )
    parser.add_argument(
        "--value_format", default="json", choices=("json", "avro", "avro_confluent")
    )
    args = parser.parse_args(argv)
    run_id = args.run_id or secrets.token_hex(6)
    seed = args.seed if args.seed is not None else secrets.randbelow(2**31)
    start_ms = args.start_ms if args.start_ms is not None else time.time_ns() // 1_000_000
    try:
        batch = batch_from_args(args, args.count, run_id, seed, start_ms)
    except ValueError as e:
        parser.error(str(e))
    report = send_batch(
        StackSettings.from_env().kafka_bootstrap_servers,
        args.topic or datasets.get(args.dataset).contract.topic,
        batch,
        run_id,
        seed,
        start_ms,
        live=args.live,
    )
    print(json.dumps(report))
    return 0


if __name__ == "__main__":
    sys.exit(main())
