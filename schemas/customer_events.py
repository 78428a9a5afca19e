"""The customer-events contract: media-streaming events as JSON objects.

The contract is ``customer_events.schema.json`` next to this module, shipped as
package data.  It declares Draft 7 but uses only keywords whose meaning Draft 7
and 2020-12 share (``type``, ``properties``, ``required``,
``additionalProperties``, ``enum``, single-schema ``items``, ``minimum``,
``maximum``, ``minLength``, ``pattern``), so either validator gives the same
answer.  Every object, nested ones included, requires all of its keys and
allows no others.

Semantics worth knowing:

- ``format`` is not used (validators treat it as an annotation by default);
  timestamps are checked by ``pattern`` instead, written with ``[0-9]`` rather
  than ``\\d``, which in Python matches any Unicode digit;
- ``integer`` accepts a float with no fractional part (``1.0``), as the spec
  says, and rejects booleans; ``number`` rejects booleans too;
- Python validators search patterns with ``re.search``, where ``$`` also
  matches before one final newline, so ``"2026-11-22T05:00:00Z\\n"`` passes here
  although an ECMA-262 validator would refuse it.
"""

# No `from __future__ import annotations` here: row types may join this module,
# and Beam infers row schemas from evaluated annotations.
import json
import pathlib

from jsonschema import Draft7Validator

__all__ = ["SCHEMA_PATH", "load_schema"]

SCHEMA_PATH = pathlib.Path(__file__).resolve().with_name("customer_events.schema.json")


def load_schema() -> dict:
    """Reads the contract and returns it as a fresh dict.

    Returns:
        The parsed schema; a new object on every call, so callers may keep or
        change it freely.

    Raises:
        jsonschema.exceptions.SchemaError: the file is not a valid Draft 7 schema.
    """
    schema = json.loads(SCHEMA_PATH.read_text(encoding="utf-8"))
    Draft7Validator.check_schema(schema)
    return schema
