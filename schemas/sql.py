"""The statements that write and read a table's rows (``schemas.ddl`` shapes the tables).

``table_upsert`` gives the per-row ``INSERT … ON CONFLICT DO UPDATE`` for a
``schemas.tables.Table``, with the table's guards; ``upsert_statement`` is the same
from its parts.  The batched writer loads a batch of rows with ``COPY`` into a
temporary staging table (``staging_ddl``, ``copy_statement``) and writes it with
``merge_statements``, which leave the table as those per-row upserts, run in the
batch's order, would.  ``rollup_views`` gives the ``SELECT`` of each rollup view of
a contract's aggregate, which ``python -m tools.stack migrate`` creates beside the
tables.
"""

from __future__ import annotations

import typing

from schemas.contract import Aggregate
from schemas.ddl import expected_columns
from schemas.records import COORDINATE_COLUMNS
from schemas.row_types import unwrap_optional

__all__ = [
    "copy_statement",
    "forward_only_clause",
    "merge_statements",
    "rollup_views",
    "stage_columns",
    "staging_ddl",
    "staging_table",
    "table_upsert",
    "upsert_statement",
]

# The staging table's own column: the row's place in its batch (COPY numbers rows in
# input order).
ORDER_COLUMN = "_ord"


def table_upsert(table) -> str:
    """``upsert_statement`` for a ``schemas.tables.Table``, with its guards."""
    return upsert_statement(
        table.name,
        table.row_type,
        table.key_columns,
        table.casts,
        table.forward_only or None,
        first_copy_only=table.first_copy_only,
    )


def upsert_statement(
    table: str,
    row_type: type,
    key_columns: typing.Sequence[str],
    casts: typing.Mapping[str, str] | None = None,
    forward_only: str | typing.Sequence[str] | None = None,
    *,
    first_copy_only: bool = False,
) -> str:
    """``INSERT … ON CONFLICT (keys) DO UPDATE`` over every field of ``row_type``.

    The statement binds fields positionally in the row's field order, which is how
    the Java writer binds them.  ``casts`` maps a column to the SQL type its text
    is cast to (``CAST(? AS jsonb)``: strings are bound as varchar).  With
    ``forward_only`` (a column, or columns compared in order as a tuple), an update
    happens only when the incoming row's value is at least the stored one, so a
    retried earlier pane (or an older version of a record) can never overwrite a
    later one.  With ``first_copy_only``
    (rows with ``run_id`` and Kafka coordinates), a key's row is rewritten within a
    run only by the record that wrote it (a retried bundle, a re-run), never by
    another copy of it: a copy that came after the dedup TTL leaves the first one.

    Raises:
      ValueError: a key or guard column is not a field of ``row_type``, or both
        guards are asked for.
    """
    casts = casts or {}
    columns = list(row_type._fields)
    values = ", ".join(f"CAST(? AS {casts[c]})" if c in casts else "?" for c in columns)
    conflict = _on_conflict(row_type, key_columns, forward_only, first_copy_only=first_copy_only)
    return f"INSERT INTO {table} AS t ({', '.join(columns)}) VALUES ({values}) {conflict}"


def _on_conflict(
    row_type: type,
    key_columns: typing.Sequence[str],
    forward_only: str | typing.Sequence[str] | None,
    *,
    first_copy_only: bool,
) -> str:
    """``ON CONFLICT (keys) DO UPDATE SET … [WHERE guard]``: the part of an upsert that
    the per-row statement and the batch's merge share (see ``upsert_statement``)."""
    columns = list(row_type._fields)
    unknown = set(key_columns) - set(columns)
    if unknown:
        raise ValueError(f"key columns {sorted(unknown)} are not fields of {row_type.__name__}")
    updates = ", ".join(f"{c} = EXCLUDED.{c}" for c in columns if c not in key_columns)
    statement = f"ON CONFLICT ({', '.join(key_columns)}) DO UPDATE SET {updates}"
    if forward_only is not None and first_copy_only:
        raise ValueError("an upsert is forward_only or first_copy_only, not both")
    if first_copy_only:
        needed = ("run_id", *COORDINATE_COLUMNS)
        if not set(needed) <= set(columns):
            raise ValueError(f"first_copy_only needs the columns {', '.join(needed)}")
        mine = ", ".join(f"t.{c}" for c in COORDINATE_COLUMNS)
        theirs = ", ".join(f"EXCLUDED.{c}" for c in COORDINATE_COLUMNS)
        statement += f" WHERE t.run_id IS DISTINCT FROM EXCLUDED.run_id OR ({mine}) = ({theirs})"
    if forward_only is not None:
        guard = (forward_only,) if isinstance(forward_only, str) else tuple(forward_only)
        for column in guard:
            if column not in columns:
                raise ValueError(f"forward_only column {column!r} is not a field")
        statement += f" WHERE {forward_only_clause(guard)}"
    return statement


def forward_only_clause(columns: typing.Sequence[str]) -> str:
    """The upsert's ``WHERE`` for a ``forward_only`` guard: the incoming row
    (``EXCLUDED``) is at least the stored one (``t``) on ``columns``, compared in order
    as a row value.  A row written before the first column existed (NULL) may be
    replaced."""
    first = columns[0]
    if len(columns) == 1:
        return f"t.{first} IS NULL OR EXCLUDED.{first} >= t.{first}"
    new = ", ".join(f"EXCLUDED.{c}" for c in columns)
    old = ", ".join(f"t.{c}" for c in columns)
    return f"t.{first} IS NULL OR ({new}) >= ({old})"


def staging_table(table) -> str:
    """The temporary table a batch of ``table``'s rows is copied into."""
    return f"stage_{table.name}"


def stage_columns(table) -> list[tuple[str, str]]:
    """``(column, SQL type)`` of each field of ``table``'s row, in field order, as the
    staging table holds it: a column the upsert casts (``casts``) has the cast's type,
    so ``COPY`` parses its text as the per-row statement's ``CAST`` does."""
    fields = set(table.row_type._fields)
    return [
        (c.name, table.casts.get(c.name, c.sql_type))
        for c in expected_columns(table)
        if c.name in fields
    ]


def staging_ddl(table) -> str:
    """``CREATE TEMP TABLE IF NOT EXISTS`` for ``table``'s staging table: its row's
    fields, no constraint, and ``_ord`` numbering the rows in the order ``COPY`` reads
    them.  It lives as long as its connection and is emptied at every commit."""
    columns = ", ".join(f"{name} {sql_type}" for name, sql_type in stage_columns(table))
    return (
        f"CREATE TEMP TABLE IF NOT EXISTS {staging_table(table)} "
        f"({ORDER_COLUMN} bigint GENERATED ALWAYS AS IDENTITY, {columns}) ON COMMIT DELETE ROWS"
    )


def copy_statement(table) -> str:
    """``COPY … FROM STDIN`` of CSV rows into ``table``'s staging table: every field
    in field order, a quoted empty value the empty string, an unquoted one NULL."""
    columns = ", ".join(table.row_type._fields)
    return f"COPY {staging_table(table)} ({columns}) FROM STDIN WITH (FORMAT csv)"


def merge_statements(table) -> tuple[str, ...]:
    """The statements, run in order in one transaction after the ``COPY``, that write
    the staged batch to ``table`` and leave it as ``table_upsert`` run row by row in
    the batch's order would, every guard kept.

    One ``INSERT … ON CONFLICT`` cannot touch a row twice, so each picks one row per
    key (``DISTINCT ON``), the one sequential upserts would leave:

    - no guard: the last row;
    - ``forward_only``: the largest on the guard's columns, the last of equals (the
      guard's ``>=`` lets an equal row through); the guard then refuses it if the
      stored row is larger;
    - ``first_copy_only``: a row of another run always replaces the stored one, and
      within a run only a row with the stored row's coordinates does.  So the rows
      after the last change of run decide: the first of them names the coordinates,
      and the last row with those coordinates wins, unless the stored row is of the
      same run (and the batch has one run), when the last row with the *stored*
      coordinates does.  Where the batch changes run, a first statement writes the
      last row before that change, so the stored row is of another run when the
      second runs.

    Raises:
      ValueError: a ``forward_only`` column may be NULL (its rows would not order as
        the per-row guard compares them).
    """
    name, stage, key = table.name, staging_table(table), table.key_columns
    columns = ", ".join(table.row_type._fields)
    conflict = _on_conflict(
        table.row_type,
        key,
        table.forward_only or None,
        first_copy_only=table.first_copy_only,
    )
    keys = ", ".join(f"s.{c}" for c in key)
    hints = typing.get_type_hints(table.row_type)

    def insert(pick: str) -> str:
        return f"INSERT INTO {name} AS t ({columns}) SELECT {columns} FROM ({pick}) s {conflict}"

    if table.forward_only:
        nullable = [c for c in table.forward_only if unwrap_optional(hints[c])[1]]
        if nullable:
            raise ValueError(f"{name}: forward_only column(s) {', '.join(nullable)} may be NULL")
        order = ", ".join(f"s.{c} DESC" for c in table.forward_only)
        return (
            insert(
                f"SELECT DISTINCT ON ({keys}) s.* FROM {stage} s "
                f"ORDER BY {keys}, {order}, s.{ORDER_COLUMN} DESC"
            ),
        )
    if not table.first_copy_only:
        return (
            insert(
                f"SELECT DISTINCT ON ({keys}) s.* FROM {stage} s "
                f"ORDER BY {keys}, s.{ORDER_COLUMN} DESC"
            ),
        )
    same_key = " AND ".join(f"l.{c} = s.{c}" for c in key)
    # A row followed, for its key, by a row of another run.
    run_changes_after = (
        f"EXISTS (SELECT FROM {stage} l WHERE {same_key} "
        f"AND l.{ORDER_COLUMN} > s.{ORDER_COLUMN} AND l.run_id IS DISTINCT FROM s.run_id)"
    )
    before_change = insert(
        f"SELECT DISTINCT ON ({keys}) s.* FROM {stage} s WHERE {run_changes_after} "
        f"ORDER BY {keys}, s.{ORDER_COLUMN} DESC"
    )
    first = ", ".join(
        f"first_value({c}) OVER (PARTITION BY {', '.join(key)} ORDER BY {ORDER_COLUMN}) "
        f"AS _first_{c}"
        for c in COORDINATE_COLUMNS
    )
    last_run = f"SELECT s.*, {first} FROM {stage} s WHERE NOT {run_changes_after}"
    mine = ", ".join(f"s.{c}" for c in COORDINATE_COLUMNS)
    stored = ", ".join(f"c.{c}" for c in COORDINATE_COLUMNS)
    firsts = ", ".join(f"s._first_{c}" for c in COORDINATE_COLUMNS)
    same_stored_key = " AND ".join(f"c.{c} = s.{c}" for c in key)
    # LIMIT 1 keeps the lookup a per-row index probe (the key is unique anyway).
    last = insert(
        f"SELECT DISTINCT ON ({keys}) s.* FROM ({last_run}) s "
        f"LEFT JOIN LATERAL (SELECT c.run_id, {stored} FROM {name} c "
        f"WHERE {same_stored_key} LIMIT 1) c ON true "
        f"ORDER BY {keys}, CASE WHEN c.run_id = s.run_id "
        f"THEN ({mine}) IS NOT DISTINCT FROM ({stored}) "
        f"ELSE ({mine}) IS NOT DISTINCT FROM ({firsts}) END DESC, s.{ORDER_COLUMN} DESC"
    )
    return before_change, last


def rollup_views(aggregate: Aggregate) -> dict[str, str]:
    """The aggregate's rollup views: ``<name>_by_<key>`` → its ``SELECT``, per rollup.

    Each adds up the counts and sums over the other keys, per run and window, and
    recomputes the averages from them (an average of averages would be wrong).
    """
    return {
        f"{aggregate.name}_by_{key}": _rollup_select(aggregate, key) for key in aggregate.rollups
    }


def _rollup_select(aggregate: Aggregate, key: str) -> str:
    count = aggregate.count_column
    group = ["run_id", "window_start_ms", "window_end_ms", "window_start", key]
    sums = [f"sum({count}) AS {count}"]
    for m in aggregate.means:
        sums.append(f"sum(sum_{m}) AS sum_{m}")
        sums.append(f"sum(sum_{m}) / sum({count}) AS avg_{m}")
    grouping = ", ".join(group)
    return f"SELECT {grouping}, {', '.join(sums)} FROM {aggregate.name} GROUP BY {grouping}"
