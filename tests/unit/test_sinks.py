"""Schemas and statements derived from the row types."""

import typing

import pyarrow as pa
import pytest

from schemas.proof import KEY_COLUMNS, TABLE, ProofRecord
from transforms.records import DeadLetter
from transforms.sinks import JdbcTarget, arrow_schema, upsert_statement

pytestmark = pytest.mark.unit


def test_arrow_schema_follows_the_row_type():
    schema = arrow_schema(DeadLetter)
    assert schema.names == list(DeadLetter._fields)
    assert schema.field("payload").type == pa.binary() and schema.field("payload").nullable
    assert schema.field("offset").type == pa.int64() and not schema.field("offset").nullable


def test_arrow_schema_refuses_an_unknown_type():
    class Row(typing.NamedTuple):
        when: object

    with pytest.raises(TypeError, match="Row.when"):
        arrow_schema(Row)


def test_upsert_binds_every_field_in_order_and_updates_the_rest():
    sql = upsert_statement(TABLE, ProofRecord, KEY_COLUMNS, casts={"payload": "jsonb"})
    assert sql == (
        "INSERT INTO proof_records (record_key, seq, payload, kafka_topic, kafka_partition, "
        "kafka_offset, run_id) VALUES (?, ?, CAST(? AS jsonb), ?, ?, ?, ?) "
        "ON CONFLICT (record_key) DO UPDATE SET seq = EXCLUDED.seq, payload = EXCLUDED.payload, "
        "kafka_topic = EXCLUDED.kafka_topic, kafka_partition = EXCLUDED.kafka_partition, "
        "kafka_offset = EXCLUDED.kafka_offset, run_id = EXCLUDED.run_id"
    )


def test_upsert_refuses_a_key_that_is_not_a_field():
    with pytest.raises(ValueError, match="nope"):
        upsert_statement(TABLE, ProofRecord, ["nope"])


def test_target_repr_hides_the_password():
    assert "s3cret" not in repr(JdbcTarget("jdbc:postgresql://h/db", "u", "s3cret"))
