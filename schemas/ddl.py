"""PostgreSQL DDL derived from row types, applied as additive migrations.

``create_statement`` gives the ``CREATE TABLE IF NOT EXISTS`` of a ``Table`` and
``index_statements`` the ``CREATE INDEX IF NOT EXISTS`` of each index it declares;
``plan_migration`` compares them with the columns and indexes the database already
has and returns the additive statements that bring the table up to date
(``ADD COLUMN IF NOT EXISTS``, ``DROP NOT NULL`` where the contract relaxed a
column, a missing index), or raises ``NonAdditiveChange`` for anything else: a
column whose type changed, one the contract no longer has, or a primary key that
is not the upsert's key (every upsert would fail on it).  Those need a person; the
message says what to run.  ``serves`` says whether a table's key or an index
leads with the columns a read names.
"""

# No `from __future__ import annotations`: Table holds NamedTuple row types.
import typing

from schemas.row_types import unwrap_optional

__all__ = [
    "NonAdditiveChange",
    "check_key",
    "create_statement",
    "expected_columns",
    "index_name",
    "index_statements",
    "plan_migration",
    "serves",
]

_SQL_TYPES = {
    str: "text",
    int: "bigint",
    float: "double precision",
    bool: "boolean",
    bytes: "bytea",
}

# information_schema.columns.data_type spells some types differently.
_INFORMATION_SCHEMA = {"timestamptz": "timestamp with time zone"}


class NonAdditiveChange(RuntimeError):
    """The database's table differs from its contract in a way only a person should fix."""


class ColumnSpec(typing.NamedTuple):
    name: str
    sql_type: str
    nullable: bool
    definition: str  # the text after the name in CREATE TABLE / ADD COLUMN


def expected_columns(table) -> list[ColumnSpec]:
    """Every column of ``table`` in order: the row's fields, generated times, ``written_at``."""
    columns = []
    for name, tp in typing.get_type_hints(table.row_type).items():
        base, nullable = unwrap_optional(tp)
        sql_type = table.sql_types.get(name) or _SQL_TYPES.get(base)
        if sql_type is None:
            raise TypeError(f"{table.name}.{name}: no SQL type for {tp!r}")
        definition = sql_type if nullable else f"{sql_type} NOT NULL"
        columns.append(ColumnSpec(name, sql_type, nullable, definition))
        if name in table.generated_times:
            generated = name[: -len("_ms")]
            columns.append(
                ColumnSpec(
                    generated,
                    "timestamptz",
                    True,
                    f"timestamptz GENERATED ALWAYS AS (to_timestamp({name} / 1000.0)) STORED",
                )
            )
    columns.append(
        ColumnSpec("written_at", "timestamptz", False, "timestamptz NOT NULL DEFAULT now()")
    )
    return columns


def create_statement(table) -> str:
    """``CREATE TABLE IF NOT EXISTS`` with every column and the upsert key as primary key."""
    lines = [f"    {c.name} {c.definition}" for c in expected_columns(table)]
    lines.append(f"    PRIMARY KEY ({', '.join(table.key_columns)})")
    return f"CREATE TABLE IF NOT EXISTS {table.name} (\n" + ",\n".join(lines) + "\n)"


def index_name(table, columns: typing.Sequence[str]) -> str:
    """``<table>_<column>_…_idx``: the name an index of ``table`` is created under."""
    return f"{table.name}_{'_'.join(columns)}_idx"


def index_statements(table, present: typing.Collection[tuple[str, ...]] = ()) -> list[str]:
    """``CREATE INDEX IF NOT EXISTS`` for each of ``table.indexes`` whose columns are
    not the columns of an index in ``present`` (the primary key's included).

    Raises:
      TypeError: an index names a column the table does not have.
    """
    columns = {c.name for c in expected_columns(table)}
    statements = []
    for index in table.indexes:
        unknown = [c for c in index if c not in columns]
        if unknown:
            raise TypeError(f"{table.name}: index on {', '.join(unknown)}: no such column")
        if tuple(index) not in {tuple(p) for p in present}:
            statements.append(
                f"CREATE INDEX IF NOT EXISTS {index_name(table, index)} "
                f"ON {table.name} ({', '.join(index)})"
            )
    return statements


def serves(table, read: typing.Sequence[str]) -> bool:
    """Whether ``table``'s primary key or one of its indexes leads with the columns
    ``read`` names by equality (in any order), so that PostgreSQL finds those rows
    without reading the table."""
    wanted = set(read)
    return any(
        set(columns[: len(wanted)]) == wanted for columns in (table.key_columns, *table.indexes)
    )


def plan_migration(
    table,
    existing: typing.Mapping[str, tuple[str, bool]],
    indexes: typing.Collection[tuple[str, ...]] = (),
) -> list[str]:
    """The statements that make ``existing`` match ``table``, additive ones only.

    Args:
      table: the ``schemas.tables.Table`` wanted.
      existing: column → (``information_schema`` data type, nullable) as the database
        has it; empty when the table does not exist.
      indexes: the columns of each index the table has in the database, its primary
        key's included.

    Raises:
      NonAdditiveChange: a type differs, or a column is no longer in the contract.
    """
    if not existing:
        return [create_statement(table), *index_statements(table)]
    wanted = {c.name: c for c in expected_columns(table)}
    gone = sorted(set(existing) - set(wanted))
    if gone:
        raise NonAdditiveChange(
            f"table {table.name} has column(s) {', '.join(gone)} that its contract no longer "
            "declares: dropping or renaming a column is not an additive change; migrate it by "
            "hand (or restore the field)"
        )
    statements = []
    for column in wanted.values():
        if column.name not in existing:
            # Added columns are nullable: rows written before them have no value.
            definition = column.definition.replace(" NOT NULL", "")
            if column.name == "written_at":
                definition = column.definition
            statements.append(
                f"ALTER TABLE {table.name} ADD COLUMN IF NOT EXISTS {column.name} {definition}"
            )
            continue
        have_type, have_nullable = existing[column.name]
        want_type = _INFORMATION_SCHEMA.get(column.sql_type, column.sql_type)
        if have_type != want_type:
            raise NonAdditiveChange(
                f"column {table.name}.{column.name} is {have_type} in PostgreSQL but {want_type} "
                "in its contract: changing a column's type is not an additive change; migrate "
                "it by hand"
            )
        if column.nullable and not have_nullable:
            statements.append(f"ALTER TABLE {table.name} ALTER COLUMN {column.name} DROP NOT NULL")
    # After the columns: an index may be on a column added above.
    return statements + index_statements(table, indexes)


def check_key(table, existing_key: typing.Sequence[str]) -> None:
    """Raises ``NonAdditiveChange`` when the table's primary key (``existing_key``, its
    columns in order) is not the upsert's key, with the statements that fix it."""
    if tuple(existing_key) == tuple(table.key_columns):
        return
    added = [c for c in table.key_columns if c not in existing_key]  # NULL in older rows
    fill = "".join(f"UPDATE {table.name} SET {c} = <value> WHERE {c} IS NULL; " for c in added)
    raise NonAdditiveChange(
        f"table {table.name} has primary key ({', '.join(existing_key)}) but its contract "
        f"upserts on ({', '.join(table.key_columns)}): changing a key is not an additive change; "
        f"migrate it by hand: {fill}ALTER TABLE {table.name} DROP CONSTRAINT {table.name}_pkey, "
        f"ADD PRIMARY KEY ({', '.join(table.key_columns)})"
    )
