"""The statements over a table's rows: the upsert with its guards, the rollup views."""

import typing

import pytest

from schemas import tables
from schemas.contract import Aggregate
from schemas.sql import (
    copy_statement,
    merge_statements,
    rollup_views,
    stage_columns,
    staging_ddl,
    table_upsert,
    upsert_statement,
)
from tools.stack import all_tables

pytestmark = pytest.mark.unit


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


def test_a_first_copy_upsert_is_rewritten_only_by_the_same_record_within_a_run():
    class Event(typing.NamedTuple):
        event_id: str
        kafka_topic: str
        kafka_partition: int
        kafka_offset: int
        run_id: str

    sql = upsert_statement("events", Event, ["event_id"], first_copy_only=True)
    assert sql.endswith(
        "WHERE t.run_id IS DISTINCT FROM EXCLUDED.run_id OR "
        "(t.kafka_topic, t.kafka_partition, t.kafka_offset) = "
        "(EXCLUDED.kafka_topic, EXCLUDED.kafka_partition, EXCLUDED.kafka_offset)"
    )

    class Pane(typing.NamedTuple):
        window: int
        pane_index: int

    with pytest.raises(ValueError, match="first_copy_only needs"):
        upsert_statement("panes", Pane, ["window"], first_copy_only=True)
    with pytest.raises(ValueError, match="not both"):
        upsert_statement(
            "events", Event, ["event_id"], forward_only="kafka_offset", first_copy_only=True
        )


@pytest.mark.parametrize("table", all_tables(), ids=lambda t: t.name)
def test_every_table_has_an_upsert_over_its_row_type(table):
    sql = table_upsert(table)  # with the table's guards, as the graph builds it
    assert sql.count("?") == len(table.row_type._fields)
    assert f"ON CONFLICT ({', '.join(table.key_columns)})" in sql


def test_upsert_refuses_a_key_that_is_not_a_field():
    with pytest.raises(ValueError, match="nope"):
        upsert_statement("t", tables.DEAD_LETTERS.row_type, ["nope"])


def test_a_rollup_view_adds_up_counts_and_sums_and_recomputes_the_averages():
    agg = Aggregate("g", keys=("a", "b"), count_column="n", means=("x",), rollups=("a",))
    group = "run_id, window_start_ms, window_end_ms, window_start, a"
    # avg_x is sum(sum_x) / sum(n): the mean of all the events, not of the averages.
    assert rollup_views(agg) == {
        "g_by_a": f"SELECT {group}, sum(n) AS n, sum(sum_x) AS sum_x, "
        f"sum(sum_x) / sum(n) AS avg_x FROM g GROUP BY {group}"
    }
    assert rollup_views(Aggregate("g", keys=("a",))) == {}


@pytest.mark.parametrize("table", all_tables(), ids=lambda t: t.name)
def test_every_table_has_a_staging_table_a_copy_and_a_merge(table):
    fields = ", ".join(table.row_type._fields)
    assert staging_ddl(table).startswith(f"CREATE TEMP TABLE IF NOT EXISTS stage_{table.name} (")
    assert copy_statement(table) == (
        f"COPY stage_{table.name} ({fields}) FROM STDIN WITH (FORMAT csv)"
    )
    merges = merge_statements(table)
    assert len(merges) == (2 if table.first_copy_only else 1)
    conflict = table_upsert(table).split(" ON CONFLICT ", 1)[1]
    for merge in merges:  # today's guard, word for word
        assert merge.startswith(f"INSERT INTO {table.name} AS t ({fields}) SELECT {fields} FROM (")
        assert merge.endswith(f" ON CONFLICT {conflict}")


def test_a_staged_column_has_the_type_the_upsert_casts_its_text_to():
    class Row(typing.NamedTuple):
        key: str
        doc: str
        part: int

    table = tables.Table("t", Row, ("key",), casts={"doc": "jsonb"}, sql_types={"part": "integer"})
    assert stage_columns(table) == [("key", "text"), ("doc", "jsonb"), ("part", "integer")]


def test_a_merge_refuses_a_forward_only_column_that_may_be_null():
    class Row(typing.NamedTuple):
        key: str
        version: typing.Optional[int]

    with pytest.raises(ValueError, match="version"):
        merge_statements(tables.Table("t", Row, ("key",), forward_only=("version",)))
