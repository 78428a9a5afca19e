"""Additive migrations against the real PostgreSQL: create, add a column, refuse a type change."""

import typing
import uuid

import pytest

from schemas.ddl import NonAdditiveChange
from schemas.tables import Table
from tools.stack import migrate

pytestmark = pytest.mark.integration


class V1(typing.NamedTuple):
    id: str
    amount: int


class V2(typing.NamedTuple):
    id: str
    amount: int
    note: typing.Optional[str]


class V3(typing.NamedTuple):
    id: str
    amount: str  # was bigint
    note: typing.Optional[str]


@pytest.fixture
def scratch(pg):
    name = f"it_migrate_{uuid.uuid4().hex[:8]}"
    yield name
    with pg.cursor() as cur:
        cur.execute(f"DROP TABLE IF EXISTS {name}")


def _columns(pg, name):
    with pg.cursor() as cur:
        cur.execute(
            "SELECT column_name, data_type FROM information_schema.columns "
            "WHERE table_name = %s ORDER BY ordinal_position",
            (name,),
        )
        return cur.fetchall()


def test_tables_grow_additively_and_a_type_change_stops(stack, pg, scratch):
    assert len(migrate(stack, [Table(scratch, V1, ("id",))])) == 1  # CREATE TABLE
    with pg.cursor() as cur:
        cur.execute(f"INSERT INTO {scratch} (id, amount) VALUES ('a', 1)")
    assert migrate(stack, [Table(scratch, V1, ("id",))]) == []  # up to date: nothing to do

    applied = migrate(stack, [Table(scratch, V2, ("id",))])
    assert applied == [f"ALTER TABLE {scratch} ADD COLUMN IF NOT EXISTS note text"]
    with pg.cursor() as cur:
        cur.execute(f"SELECT id, amount, note FROM {scratch}")
        assert cur.fetchall() == [("a", 1, None)]  # the old row is kept

    before = _columns(pg, scratch)
    with pytest.raises(NonAdditiveChange, match=f"{scratch}.amount is bigint in PostgreSQL"):
        migrate(stack, [Table(scratch, V3, ("id",))])
    assert _columns(pg, scratch) == before


def test_a_declared_index_is_created_once(stack, pg, scratch):
    bare, indexed = Table(scratch, V1, ("id",)), Table(scratch, V1, ("id",), indexes=(("amount",),))
    assert len(migrate(stack, [bare])) == 1  # CREATE TABLE: a table of before the index
    index = f"CREATE INDEX IF NOT EXISTS {scratch}_amount_idx ON {scratch} (amount)"
    assert migrate(stack, [indexed]) == [index]
    assert migrate(stack, [indexed]) == []  # the database has it now: nothing to do
    with pg.cursor() as cur:
        cur.execute("SELECT indexname FROM pg_indexes WHERE tablename = %s", (scratch,))
        assert {name for (name,) in cur.fetchall()} == {f"{scratch}_pkey", f"{scratch}_amount_idx"}


def test_the_gold_rollup_views_add_up_sums_and_recompute_averages(stack, pg):
    # Two groups of one window: One year/DSL 2 versions (charges sum 100, tenure 30),
    # One year/No 1 version (charges 20, tenure 3).  By contract: 3 versions, average
    # charges 120 / 3 = 40.0 (not the mean of the averages, 35.0), tenure 11.0.
    from datasets.customers import CONTRACT, CustomersGoldRow

    migrate(stack)  # the views are created with the tables
    run_id = f"it-gold-{uuid.uuid4().hex[:8]}"
    hour = (0, 3_600_000)
    rows = [
        CustomersGoldRow(
            *hour, "One year", "DSL", 2, 100.0, 50.0, 30.0, 15.0, 0, "on_time", run_id
        ),
        CustomersGoldRow(*hour, "One year", "No", 1, 20.0, 20.0, 3.0, 3.0, 0, "on_time", run_id),
    ]
    table = CONTRACT.aggregate.name
    with pg.cursor() as cur:
        try:
            for row in rows:
                columns = ", ".join(row._fields)
                cur.execute(
                    f"INSERT INTO {table} ({columns}) VALUES ({', '.join(['%s'] * len(row))})",
                    row,
                )
            cur.execute(
                f"SELECT contract, customer_versions, avg_monthly_charges, avg_tenure "
                f"FROM {table}_by_contract WHERE run_id = %s",
                (run_id,),
            )
            assert cur.fetchall() == [("One year", 3, 40.0, 11.0)]
            cur.execute(
                f"SELECT internet_service, customer_versions FROM {table}_by_internet_service "
                "WHERE run_id = %s ORDER BY 1",
                (run_id,),
            )
            assert cur.fetchall() == [("DSL", 2), ("No", 1)]
        finally:
            cur.execute(f"DELETE FROM {table} WHERE run_id = %s", (run_id,))
