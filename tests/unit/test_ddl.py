"""DDL from row types, the indexes of the reads by run, and the additive-migration planner."""

import typing

import pytest

from schemas import tables
from schemas.ddl import (
    NonAdditiveChange,
    check_key,
    create_statement,
    index_name,
    index_statements,
    plan_migration,
    serves,
)
from schemas.tables import RUN_READ, SHARED_RUN_READ, Table
from tools.stack import all_tables

pytestmark = pytest.mark.unit


class Row(typing.NamedTuple):
    id: str
    at_ms: int
    note: typing.Optional[str]
    blob: bytes


TABLE = Table("t", Row, ("id",), sql_types={"blob": "bytea"}, generated_times=("at_ms",))

# What information_schema.columns says of the table created from TABLE.
CREATED = {
    "id": ("text", False),
    "at_ms": ("bigint", False),
    "at": ("timestamp with time zone", True),
    "note": ("text", True),
    "blob": ("bytea", False),
    "written_at": ("timestamp with time zone", False),
}


def test_create_statement_lists_every_column_and_the_key():
    assert create_statement(TABLE) == (
        "CREATE TABLE IF NOT EXISTS t (\n"
        "    id text NOT NULL,\n"
        "    at_ms bigint NOT NULL,\n"
        "    at timestamptz GENERATED ALWAYS AS (to_timestamp(at_ms / 1000.0)) STORED,\n"
        "    note text,\n"
        "    blob bytea NOT NULL,\n"
        "    written_at timestamptz NOT NULL DEFAULT now(),\n"
        "    PRIMARY KEY (id)\n"
        ")"
    )


def test_a_new_table_is_created_and_an_up_to_date_one_left_alone():
    assert plan_migration(TABLE, {}) == [create_statement(TABLE)]
    assert plan_migration(TABLE, CREATED) == []


def test_a_new_field_is_added_as_a_nullable_column():
    older = {k: v for k, v in CREATED.items() if k != "note"}
    assert plan_migration(TABLE, older) == ["ALTER TABLE t ADD COLUMN IF NOT EXISTS note text"]
    older = {k: v for k, v in CREATED.items() if k != "blob"}
    # NOT NULL is dropped: rows written before the column existed have no value.
    assert plan_migration(TABLE, older) == ["ALTER TABLE t ADD COLUMN IF NOT EXISTS blob bytea"]


def test_a_column_the_contract_relaxed_drops_not_null():
    strict = dict(CREATED, note=("text", False))
    assert plan_migration(TABLE, strict) == ["ALTER TABLE t ALTER COLUMN note DROP NOT NULL"]


@pytest.mark.parametrize(
    "existing, message",
    [
        (dict(CREATED, at_ms=("integer", False)), "t.at_ms is integer in PostgreSQL but bigint"),
        (dict(CREATED, legacy=("text", True)), "column\\(s\\) legacy that its contract no longer"),
    ],
)
def test_a_non_additive_change_stops_with_a_clear_message(existing, message):
    with pytest.raises(NonAdditiveChange, match=message):
        plan_migration(TABLE, existing)


def test_a_changed_primary_key_stops_with_the_statements_that_fix_it():
    table = tables.STAGE_COUNTS
    check_key(table, table.key_columns)  # as the contract says: nothing to do
    with pytest.raises(NonAdditiveChange) as refused:
        check_key(table, ("run_id", "window_start_ms", "window_end_ms", "stage"))
    message = str(refused.value)
    assert "UPDATE window_stage_counts SET dataset = <value> WHERE dataset IS NULL;" in message
    assert message.endswith(
        "ALTER TABLE window_stage_counts DROP CONSTRAINT window_stage_counts_pkey, "
        "ADD PRIMARY KEY (dataset, run_id, window_start_ms, window_end_ms, stage)"
    )


class RunRow(typing.NamedTuple):
    id: str
    run_id: str


INDEXED = Table("r", RunRow, ("id",), indexes=(RUN_READ,))
INDEX = "CREATE INDEX IF NOT EXISTS r_run_id_idx ON r (run_id)"
INDEXED_COLUMNS = {
    "id": ("text", False),
    "run_id": ("text", False),
    "written_at": ("timestamp with time zone", False),
}


def test_a_new_table_is_created_with_its_indexes():
    assert plan_migration(INDEXED, {}) == [create_statement(INDEXED), INDEX]
    # The table's own statement is unchanged by its indexes.
    assert create_statement(INDEXED) == create_statement(Table("r", RunRow, ("id",)))


def test_an_existing_table_gets_a_missing_index_and_keeps_one_it_has():
    assert plan_migration(INDEXED, INDEXED_COLUMNS, [("id",)]) == [INDEX]
    # Present under any name: the columns are what count.
    assert plan_migration(INDEXED, INDEXED_COLUMNS, [("id",), ("run_id",)]) == []
    # An index on other columns, or the same columns in another order, is not it.
    assert plan_migration(INDEXED, INDEXED_COLUMNS, [("id",), ("run_id", "id")]) == [INDEX]


def test_an_index_on_a_new_column_comes_after_the_column():
    older = {k: v for k, v in INDEXED_COLUMNS.items() if k != "run_id"}
    assert plan_migration(INDEXED, older, [("id",)]) == [
        "ALTER TABLE r ADD COLUMN IF NOT EXISTS run_id text",
        INDEX,
    ]


def test_an_index_on_no_such_column_is_refused():
    with pytest.raises(TypeError, match="r: index on dataset: no such column"):
        index_statements(Table("r", RunRow, ("id",), indexes=(("run_id", "dataset"),)))


def test_a_read_is_served_by_the_columns_an_index_or_the_key_leads_with():
    # window_stage_counts's key: (dataset, run_id, window_start_ms, …).
    assert serves(tables.STAGE_COUNTS, ("run_id", "dataset"))  # in any order
    assert not serves(tables.STAGE_COUNTS, ("run_id",))  # not its leading column
    assert serves(INDEXED, ("run_id",))
    assert not serves(Table("r", RunRow, ("id",)), ("run_id",))


@pytest.mark.parametrize("table", all_tables(), ids=lambda t: t.name)
def test_every_read_by_run_is_served_by_an_index_or_the_key(table):
    # The progress line, the reconciliation and the bench read every table by run
    # (a shared table: by run and dataset); without an index each read is a scan of
    # every run's rows (customer_events: 300 MB after a few weeks of runs).
    read = SHARED_RUN_READ if table in tables.SHARED else RUN_READ
    assert serves(table, read)
    # No index the key already serves; PostgreSQL keeps 63 bytes of a name.
    for index in table.indexes:
        assert not serves(Table(table.name, table.row_type, table.key_columns), index)
    assert all(len(index_name(table, index)) <= 63 for index in table.indexes)
