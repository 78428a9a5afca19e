"""The benchmark's per-record step: Beamline's per-record semantics in a plain loop, no Beam.

``RecordStep`` is the one per-record step both baselines run.  It calls the
project's own pure functions in the order the graph applies them, so its
semantics cannot drift from the pipeline's:

1. decode with ``decode.decoder_for(CONTRACT, value_format)`` (as ``DecodeFn`` does);
2. validate with the check ``compile_schema`` builds from the contract's JSON
   Schema, and name the violations with ``jsonschema`` and ``describe_errors``
   only for a rejected event (as ``ValidateEventsFn`` does);
3. normalise with ``find_nul`` (skipped, as the graph skips it for JSON values,
   when ``json_may_hold_nul`` finds neither a zero byte nor ``\\u0000`` in the raw
   value), ``event_time_ms`` and ``to_customer_event`` (as ``NormaliseEventsFn`` does);
4. conform each row to the events table's DDL with ``violations`` (as
   ``ConformToSinks`` does);
5. keep the first copy of each event id, logging later copies as ``Duplicate``
   rows (the contract's ``drop_later_copies`` policy; a benchmark run spans far
   less event time than the dedup TTL, so no id expires), and fan each kept
   event's arrays out to its child tables' rows (as ``ToChildRows`` does from the
   payload, here from the normalised event the payload was written from);
6. count the kept events per ``(window, event_type)`` in fixed windows of event
   time aligned to the epoch, as ``CountPerWindow``'s one on-time pane per window
   on a bounded read.

Every record ends in exactly one of: the events, the dead letters, the duplicates.
"""

from __future__ import annotations

import collections
import dataclasses
import types

from jsonschema import Draft7Validator

from datasets.customer_events import (
    CONTRACT,
    DATASET,
    EVENT_TIME_FIELD,
    ID_FIELD,
    CustomerEventCountsRow,
    load_schema,
    to_customer_event,
)
from schemas.records import Duplicate, KafkaRecord, dead_letter
from transforms import conform, decode, normalise, schema_check, validate

__all__ = ["Outcome", "RecordStep"]


@dataclasses.dataclass
class Outcome:
    """What the step made of the records it was given, in arrival order.

    Attributes:
      records: records processed.
      events: the kept ``CustomerEventsRow`` of each event id (first copy).
      dead_letters: one ``DeadLetter`` per rejected record (stages decode,
        validate, normalise, sink).
      duplicates: one ``Duplicate`` per later copy of a kept id.
      children: child table → the rows of the kept events' array items.
      window_counts: ``(window_start_ms, window_end_ms, event_type)`` → kept events.
    """

    records: int = 0
    events: list = dataclasses.field(default_factory=list)
    dead_letters: list = dataclasses.field(default_factory=list)
    duplicates: list = dataclasses.field(default_factory=list)
    window_counts: dict = dataclasses.field(default_factory=collections.Counter)
    children: dict = dataclasses.field(
        default_factory=lambda: {child.name: [] for child in DATASET.tables.children}
    )

    def rows(self, name: str) -> list:
        """The rows of one output: an attribute, or a child table's."""
        return self.children[name] if name in self.children else getattr(self, name)

    def counts(self, run_id: str) -> list[CustomerEventCountsRow]:
        """The count rows: one on-time pane (index 0) per window and event type."""
        return [
            DATASET.to_pane_row(
                DATASET.group_key(types.SimpleNamespace(event_type=kind)),
                n,
                start,
                end,
                0,
                "on_time",
                run_id=run_id,
            )
            for (start, end, kind), n in sorted(self.window_counts.items())
        ]

    def summary(self) -> dict[str, int]:
        """Records, unique events, duplicates, dead letters and the windowed total."""
        return {
            "records": self.records,
            "valid_unique": len(self.events),
            "duplicates": len(self.duplicates),
            "dead_letters": len(self.dead_letters),
            "gold_total": sum(self.window_counts.values()),
        }


class RecordStep:
    """Beamline's per-record semantics for customer events, one record at a time.

    Call it with each ``KafkaRecord`` in arrival order; ``outcome`` accumulates.
    Never raises for a bad record: like the pipeline's DoFns, every failure is a
    dead letter with the same stage, reason and detail.

    Args:
      run_id: stamped on every row, dead letter and duplicate.
      value_format: ``json``, ``avro`` or ``avro_confluent``.
      window_size_s: the count windows' length in seconds of event time.

    Raises:
      ValueError: the contract keeps the latest copy by a field (``keep_latest``),
        which this step does not implement.
    """

    def __init__(
        self,
        run_id: str,
        value_format: str = "json",
        window_size_s: int = CONTRACT.aggregates[0].window_s,
    ):
        if CONTRACT.dedup.order_by is not None:
            raise ValueError("the benchmark's step keeps first copies only (drop_later_copies)")
        schema = load_schema()
        self._run_id = run_id
        self._decoder = decode.decoder_for(CONTRACT, value_format)
        # As the graph passes it to NormaliseEvents: the raw-bytes scan for JSON only.
        self._may_hold_nul = normalise.json_may_hold_nul if value_format == "json" else None
        self._is_valid = schema_check.compile_schema(schema)
        self._validator = Draft7Validator(schema)
        # Resolved once per table, as ConformToSinks does per worker.
        self._rules = conform._rules(DATASET.tables.main)
        self._window_ms = window_size_s * 1000
        self._id = CONTRACT.column(ID_FIELD).name
        (self._key,) = CONTRACT.aggregate.keys  # the baselines count by one key
        self._kept: dict[str, tuple[int, int]] = {}
        self.outcome = Outcome()

    def _reject(self, record: KafkaRecord, stage: str, reason: str, detail: str) -> None:
        self.outcome.dead_letters.append(dead_letter(record, stage, reason, detail, self._run_id))

    def __call__(self, record: KafkaRecord) -> None:
        self.outcome.records += 1
        run_id = self._run_id
        # 1. decode (DecodeFn)
        event = decode.decode_value(self._decoder, record.value)
        if isinstance(event, decode.DecodeError):
            return self._reject(record, decode.STAGE, event.reason, event.detail)
        # 2. validate (ValidateEventsFn)
        try:
            if not self._is_valid(event):
                errors = list(self._validator.iter_errors(event))
                if not errors:
                    raise validate.ValidatorDisagreement(
                        "the compiled check rejected the event but jsonschema finds no violation"
                    )
                return self._reject(record, validate.STAGE, *validate.describe_errors(errors))
        except Exception as e:  # noqa: BLE001 - as ValidateEventsFn
            return self._reject(
                record, validate.STAGE, "validate_error", f"{type(e).__name__}: {e}"
            )
        # 3. normalise (NormaliseEventsFn)
        try:
            scan = self._may_hold_nul
            nul = normalise.find_nul(event) if scan is None or scan(record.value) else None
            if nul:
                raise normalise.NormaliseError("nul_character", f"{nul} holds a NUL character")
            at_ms = normalise.event_time_ms(event[EVENT_TIME_FIELD])
            row, normalised = to_customer_event.build(record, event, at_ms, run_id)
        except normalise.NormaliseError as e:
            return self._reject(record, normalise.STAGE, e.reason, e.detail)
        except Exception as e:  # noqa: BLE001 - as NormaliseEventsFn
            return self._reject(
                record, normalise.STAGE, "normalise_error", f"{type(e).__name__}: {e}"
            )
        # 4. conform to the events table (ConformToSinks)
        found = conform.violations(DATASET.tables.main, row, self._rules)
        if found:
            detail = "; ".join(v.detail for v in found)
            return self._reject(record, conform.STAGE, found[0].reason, detail)
        # 5. keep the first copy of each id (DeduplicateById, drop_later_copies)
        event_id = str(getattr(row, self._id))
        kept = self._kept.get(event_id)
        if kept is not None:
            self.outcome.duplicates.append(
                Duplicate(
                    event_id,
                    row.kafka_topic,
                    row.kafka_partition,
                    row.kafka_offset,
                    row.kafka_timestamp_ms,
                    kept[0],
                    kept[1],
                    run_id,
                )
            )
            return None
        self._kept[event_id] = (row.kafka_partition, row.kafka_offset)
        self.outcome.events.append(row)
        # 5b. the arrays' items, for the child tables (as ToChildRows, from the
        # normalised event the payload was written from)
        for table, child_rows in to_customer_event.child_rows(normalised, run_id).items():
            self.outcome.children[table].extend(child_rows)
        # 6. count per (fixed window of event time, event type)
        start = at_ms - at_ms % self._window_ms
        self.outcome.window_counts[(start, start + self._window_ms, getattr(row, self._key))] += 1
        return None
