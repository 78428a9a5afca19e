"""Additive migrations against the real PostgreSQL: create, add a column, refuse a type change."""

import typing
import uuid

import pytest

from schemas.contract import Table
from schemas.ddl import NonAdditiveChange
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
