"""The proof dataset: the smallest real record, keyed JSON with a sequence number.

A value is a JSON object with a string ``id`` and an integer ``seq``; the rest of
the object is kept as ``payload``.  The table is ``schemas/sql/001_proof.sql``.
"""

# No `from __future__ import annotations` here: Beam infers row schemas from the
# evaluated annotations of these NamedTuples.
import typing

from apache_beam import coders

__all__ = ["KEY_COLUMNS", "TABLE", "ProofRecord"]

TABLE = "proof_records"
KEY_COLUMNS = ("record_key",)


class ProofRecord(typing.NamedTuple):
    """One accepted proof record, with the Kafka coordinates it came from."""

    record_key: str
    seq: int
    payload: str  # the JSON object as text; a jsonb column in PostgreSQL
    kafka_topic: str
    kafka_partition: int
    kafka_offset: int
    run_id: str


coders.registry.register_coder(ProofRecord, coders.RowCoder)
