"""Schemas and statements derived from the row types."""

import typing

import pyarrow as pa
import pytest

from beam_pipeline import driver
from beam_pipeline.settings import MissingPasswordError, StackSettings
from schemas import tables
from schemas.records import DeadLetter
from tools.stack import all_tables
from transforms.sinks import JdbcTarget, arrow_schema, upsert_statement

pytestmark = pytest.mark.unit


def test_arrow_schema_follows_the_row_type():
    schema = arrow_schema(DeadLetter)
    assert schema.names == list(DeadLetter._fields)
    assert schema.field("payload").type == pa.binary() and schema.field("payload").nullable
    offset = schema.field("kafka_offset")
    assert offset.type == pa.int64() and not offset.nullable


def test_arrow_schema_refuses_an_unknown_type():
    class Row(typing.NamedTuple):
        when: object

    with pytest.raises(TypeError, match="Row.when"):
        arrow_schema(Row)


def test_upsert_binds_every_field_in_order_and_updates_the_rest():
    class Row(typing.NamedTuple):
        record_key: str
        seq: int
        payload: str
        run_id: str

    sql = upsert_statement("proof", Row, ["record_key"], casts={"payload": "jsonb"})
    assert sql == (
        "INSERT INTO proof AS t (record_key, seq, payload, run_id) "
        "VALUES (?, ?, CAST(? AS jsonb), ?) "
        "ON CONFLICT (record_key) DO UPDATE SET seq = EXCLUDED.seq, payload = EXCLUDED.payload, "
        "run_id = EXCLUDED.run_id"
    )


def test_a_forward_only_upsert_never_moves_back():
    class Pane(typing.NamedTuple):
        window: int
        count: int
        pane_index: int

    sql = upsert_statement("panes", Pane, ["window"], forward_only="pane_index")
    assert sql.endswith(
        "DO UPDATE SET count = EXCLUDED.count, pane_index = EXCLUDED.pane_index "
        "WHERE t.pane_index IS NULL OR EXCLUDED.pane_index >= t.pane_index"
    )
    with pytest.raises(ValueError, match="forward_only"):
        upsert_statement("panes", Pane, ["window"], forward_only="nope")


@pytest.mark.parametrize("table", all_tables(), ids=lambda t: t.name)
def test_every_table_has_an_upsert_over_its_row_type(table):
    sql = upsert_statement(table.name, table.row_type, table.key_columns, table.casts)
    assert sql.count("?") == len(table.row_type._fields)
    assert f"ON CONFLICT ({', '.join(table.key_columns)})" in sql


def test_upsert_refuses_a_key_that_is_not_a_field():
    with pytest.raises(ValueError, match="nope"):
        upsert_statement("t", tables.DEAD_LETTERS.row_type, ["nope"])


@pytest.mark.parametrize(
    "reference",
    [{}, {"password_file": "/run/secrets/pg", "password_env": "PGPASSWORD"}],
)
def test_target_names_exactly_one_place_for_the_password(reference):
    with pytest.raises(ValueError, match="exactly one of password_file and password_env"):
        JdbcTarget("jdbc:postgresql://h/db", "u", **reference)


def test_password_reference_names_the_variable_or_the_file_never_the_value(tmp_path):
    settings = StackSettings.from_env({"BEAMLINE_HOME": str(tmp_path)})
    with pytest.raises(MissingPasswordError, match="BEAMLINE_PG_WRITER_PASSWORD"):
        settings.writer_password_reference({})
    assert settings.writer_password_reference({"BEAMLINE_PG_WRITER_PASSWORD": "s3cret"}) == {
        "password_env": "BEAMLINE_PG_WRITER_PASSWORD"
    }
    settings.writer_password_file.parent.mkdir()
    settings.writer_password_file.write_text("s3cret\n")
    assert settings.writer_password_reference({}) == {
        "password_file": str(settings.writer_password_file)
    }


def test_the_pipeline_writes_as_the_writer_role_not_the_owner(tmp_path, monkeypatch):
    monkeypatch.delenv("BEAMLINE_PG_WRITER_PASSWORD", raising=False)
    settings = StackSettings.from_env({"BEAMLINE_HOME": str(tmp_path), "BEAMLINE_PG_WRITER": "w1"})
    settings.writer_password_file.parent.mkdir()
    settings.writer_password_file.write_text("s3cret")
    target = driver.jdbc_target(settings)
    assert (target.username, target.password_file) == ("w1", str(settings.writer_password_file))
