"""The pipeline's PostgreSQL role may upsert its tables and nothing else.

Migrations run as the owner; the pipeline writes as the writer, which
``python -m tools.stack migrate`` grants SELECT, INSERT and UPDATE on each
table (an upsert's needs) and temporary tables (the batched writer's staging
tables, which die with the session).  Each statement below is tried as the writer, on its
own (autocommit), against the real server.
"""

import uuid

import psycopg2
import pytest
from psycopg2 import errors

from datasets.customer_events import DATASET, CustomerEventCountsRow
from schemas import tables
from schemas.sql import staging_ddl, table_upsert
from tools.stack import all_tables

pytestmark = pytest.mark.integration


@pytest.fixture
def writer(stack):
    connection = psycopg2.connect(**stack.psycopg2_kwargs(writer=True))
    connection.autocommit = True  # CREATE DATABASE refuses a transaction block
    yield connection
    connection.close()


def _run(connection, statement, args=()):
    with connection.cursor() as cur:
        cur.execute(statement, args)


def test_the_writer_can_upsert_every_pipeline_table_and_read_it_back(writer, pg):
    run_id = f"priv-{uuid.uuid4().hex[:8]}"
    table = DATASET.tables.aggregate
    statement = table_upsert(table).replace("?", "%s")
    _run(
        writer,
        statement,
        tuple(CustomerEventCountsRow(0, 60_000, "search", 5, 0, "on_time", run_id)),
    )
    _run(
        writer, statement, tuple(CustomerEventCountsRow(0, 60_000, "search", 6, 1, "late", run_id))
    )
    with pg.cursor() as cur:
        cur.execute(f"SELECT event_count FROM {table.name} WHERE run_id = %s", (run_id,))
        assert cur.fetchall() == [(6,)]
    for t in all_tables():  # the grant reached every table
        _run(writer, f"SELECT count(*) FROM {t.name} WHERE false")


def test_the_writer_can_create_every_staging_table(writer):
    for t in all_tables():
        _run(writer, staging_ddl(t))
        _run(writer, f"SELECT count(*) FROM stage_{t.name}")


@pytest.mark.parametrize(
    "statement",
    [
        f"DELETE FROM {DATASET.tables.main.name}",
        f"TRUNCATE {DATASET.tables.aggregate.name}",
        f"DROP TABLE {tables.DEAD_LETTERS.name}",
        f"ALTER TABLE {DATASET.tables.main.name} ADD COLUMN intruder text",
        "CREATE TABLE intruder (x int)",
        "CREATE ROLE intruder",
        "CREATE DATABASE intruder",
    ],
)
def test_the_writer_may_not_delete_truncate_or_change_anything(writer, statement):
    with pytest.raises(errors.InsufficientPrivilege):
        _run(writer, statement)
