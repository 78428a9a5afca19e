"""The generator: deterministic records of any dataset for Kafka, with exact faults.

The records come from the dataset's record maker (``datasets/<name>.py``, given a
seeded ``random.Random`` and Faker); this package is the one fault injector for all
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
  rule in docs/pipeline.md, "Dedup after its TTL").

The batch is a pure function of the arguments of ``generate``: the same arguments
give byte-identical messages.  All randomness comes from ``random.Random(seed)``
and a Faker instance seeded with ``seed``; the wall clock is never read.

``python -m tools.event_producer --dataset events --count 10000 --seed 7 --malformed 0.02``
sends a batch to Kafka and prints one JSON line: what was injected, what was sent
and the per-partition offsets before and after.

Modules: ``planning`` (how many of each fault, which original gets which role),
``formats`` (JSON, Avro and Confluent-framed Avro values, and their faulty bytes),
``batch`` (``generate``: the plan, the records, their bytes), ``command`` (sending
and the command line).
"""

from __future__ import annotations

from schemas.values import format_timestamp
from tools.event_producer.batch import Batch, BatchSpec, Injected, generate
from tools.event_producer.command import main, paced, send_batch
from tools.event_producer.formats import (
    DRIFT_KINDS,
    MALFORMED_KINDS,
    derived_invalid,
    encoder_for,
    parse_timestamp,
)

__all__ = [
    "DRIFT_KINDS",
    "MALFORMED_KINDS",
    "Batch",
    "BatchSpec",
    "Injected",
    "derived_invalid",
    "encoder_for",
    "format_timestamp",
    "generate",
    "main",
    "paced",
    "parse_timestamp",
    "send_batch",
]
