"""A valid event → its normalised form and its rows (``RowBuilder``), and ``value_at``.

Normalisation, in order: an absent optional field gets its default (normalised as
a value of its kind), a null field with a default gets the default; computed
fields are computed where absent or null; every timestamp, nested ones included, is
rewritten in UTC (``Z``, milliseconds, or microseconds when it has them).  The input
event is never changed: only the containers on the way are copied (scalars are
immutable).  The event is valid for its contract (``ValidateEvents`` passed it), so
every required key is present; a timestamp ``datetime.fromisoformat`` cannot read
raises ``ValueError`` (``NormaliseEvents`` makes it a dead letter).
"""

import copy
import datetime
import re

from schemas.contract import Contract
from schemas.fields import Child
from schemas.records import KafkaRecord
from schemas.values import canonical_json, event_time_ms

__all__ = ["RowBuilder", "value_at"]


class RowBuilder:
    """Valid event → the contract's normalised main row (``NormaliseEvents``' ``to_row``).

    The row's ``payload`` is the normalised event as JSON; its event-time column is
    the ``event_ms`` given (the caller parsed it), its other timestamp columns epoch
    milliseconds.  Everything that depends only on the contract is resolved when the
    builder is made, none of it per record.  Pure and picklable.
    """

    def __init__(self, contract: Contract):
        self._plan = _object_plan(contract.fields)
        self._computed = contract.computed
        self._row_type = contract.row_type()
        self._id_field = contract.id_field
        # (column, path, how to read it) for every main-table column.
        self._columns = tuple(
            (
                c.name,
                c.path,
                "event_time"
                if c.path == contract.event_time_field
                else "timestamp"
                if contract.field(c.path).kind == "timestamp"
                else "value",
            )
            for c in contract.columns
        )
        # (table, path, row type, item columns) per child table; the item columns
        # are (item field, is a timestamp), or None for scalar items.
        self._children = tuple(
            (child.table, child.path, row_type, _item_columns(contract, child))
            for child, row_type in zip(
                contract.children, contract.child_row_types().values(), strict=True
            )
        )

    def normalise(self, event: dict) -> dict:
        """A new dict: ``event`` normalised (see the module's docstring)."""
        event = _normalised_object(self._plan, event)
        for rule in self._computed:
            rule.apply(event)
        return event

    def __call__(self, record: KafkaRecord, event: dict, event_ms: int, run_id: str):
        return self.build(record, event, event_ms, run_id)[0]

    def build(self, record: KafkaRecord, event: dict, event_ms: int, run_id: str) -> tuple:
        """``(row, normalised event)``: the row ``__call__`` gives, and the event its
        payload was written from, for ``child_rows`` without parsing the payload."""
        event = self.normalise(event)
        values = {}
        for name, path, kind in self._columns:
            value = value_at(event, path)
            if kind == "event_time":
                value = event_ms
            elif kind == "timestamp" and value is not None:
                value = event_time_ms(value)
            values[name] = value
        row = self._row_type(
            **values,
            payload=canonical_json(event),
            kafka_topic=record.topic,
            kafka_partition=record.partition,
            kafka_offset=record.offset,
            kafka_timestamp_ms=record.timestamp_ms,
            run_id=run_id,
        )
        return row, event

    def child_rows(self, event: dict, run_id: str) -> dict[str, list]:
        """The child-table rows of a normalised event, per child table: one per item,
        in the array's order, with its ``item_index``."""
        event_id = value_at(event, self._id_field)
        rows = {}
        for table, path, row_type, columns in self._children:
            out = []
            for index, item in enumerate(value_at(event, path)):
                if columns is None:
                    values = [item]
                else:
                    values = [
                        event_time_ms(item[name])
                        if is_time and item.get(name) is not None
                        else item.get(name)
                        for name, is_time in columns
                    ]
                out.append(row_type(event_id, index, *values, run_id))
            rows[table] = out
        return rows


def value_at(event: dict, path: str):
    """The value at ``path`` (dots for nesting) of an event; ``KeyError`` if absent."""
    value = event
    for part in path.split("."):
        value = value[part]
    return value


# A plan says what normalising a value takes, resolved from the contract's fields
# once per builder.  A value's work is None (nothing to do: the value is kept as it
# is, a container too), ("timestamp", None), ("object", the object's plan) or
# ("array", the items' work); an object's plan is (name, required, default, work)
# per field that may change: a required field with no default and no work is left
# out, so an object or array with nothing to change anywhere inside is not copied.


def _object_plan(fields) -> tuple:
    plan = ((f.name, f.required, f.default, _work(f)) for f in fields)
    return tuple(step for step in plan if not (step[1] and step[2] is None and step[3] is None))


def _work(field):
    if field.kind == "timestamp":
        return ("timestamp", None)
    if field.kind == "object":
        plan = _object_plan(field.fields)
        return ("object", plan) if plan else None
    if field.kind == "array":
        items = _work(field.items)
        return ("array", items) if items is not None else None
    return None


def _normalised_object(plan: tuple, obj: dict) -> dict:
    """A new dict: ``obj``'s fields normalised, absent optional ones at their default."""
    out = dict(obj)
    for name, required, default, work in plan:
        if name in out:
            if out[name] is None:
                if default is not None:
                    out[name] = copy.deepcopy(default)
            elif work is not None:
                out[name] = _normalised(work, out[name])
        elif not required:  # (a missing required key: validation refused it)
            out[name] = _normalised(work, copy.deepcopy(default))
    return out


def _normalised(work, value):
    """``value`` normalised as ``work`` says; containers are new, the input is unchanged."""
    if value is None or work is None:
        return value
    kind, inner = work
    if kind == "timestamp":
        return _utc(value)
    if kind == "object":
        return _normalised_object(inner, value)
    return [_normalised(inner, item) for item in value]


# Text already in the form ``_utc`` writes for a whole millisecond.
_UTC_MS = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}\.[0-9]{3}Z")


def _utc(text: str) -> str:
    """ISO-8601 with an offset → the same instant in UTC, ``Z``, ms (µs if it has them)."""
    if _UTC_MS.fullmatch(text):
        datetime.datetime.fromisoformat(text)  # a real instant, or ValueError
        return text
    moment = datetime.datetime.fromisoformat(text).astimezone(datetime.timezone.utc)
    spec = "milliseconds" if moment.microsecond % 1000 == 0 else "microseconds"
    return moment.replace(tzinfo=None).isoformat(timespec=spec) + "Z"


def _item_columns(contract: Contract, child: Child):
    """A child table's item columns as (item field, is a timestamp), in row order; None
    when its items are scalars (one ``value`` column)."""
    items = contract.field(child.path).items
    if items.kind != "object":
        return None
    kinds = {f.name: f.kind for f in items.fields}
    return tuple((name, kinds[name] == "timestamp") for _, name in contract.child_columns(child))
