"""The statements that write and read a table's rows (``schemas.ddl`` shapes the tables).

``table_upsert`` gives the ``INSERT … ON CONFLICT DO UPDATE`` the Java writer runs
for a ``schemas.tables.Table``, with the table's guards; ``upsert_statement`` is the
same from its parts.  ``rollup_views`` gives the ``SELECT`` of each rollup view of a
contract's aggregate, which ``python -m tools.stack migrate`` creates beside the
tables.
"""

from __future__ import annotations

import typing

from schemas.contract import Aggregate
from schemas.records import COORDINATE_COLUMNS

__all__ = ["forward_only_clause", "rollup_views", "table_upsert", "upsert_statement"]


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
    unknown = set(key_columns) - set(columns)
    if unknown:
        raise ValueError(f"key columns {sorted(unknown)} are not fields of {row_type.__name__}")
    values = ", ".join(f"CAST(? AS {casts[c]})" if c in casts else "?" for c in columns)
    updates = ", ".join(f"{c} = EXCLUDED.{c}" for c in columns if c not in key_columns)
    statement = (
        f"INSERT INTO {table} AS t ({', '.join(columns)}) VALUES ({values}) "
        f"ON CONFLICT ({', '.join(key_columns)}) DO UPDATE SET {updates}"
    )
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
