"""DDL from row types and the additive-migration planner."""

import typing

import pytest

from schemas import tables
from schemas.ddl import NonAdditiveChange, check_key, create_statement, plan_migration
from schemas.tables import Table

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
