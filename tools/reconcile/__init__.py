"""The run's reconciliation: every term from its own source, every check printed.

A late event is valid: it is in the events table and, as well, a dead letter of
stage ``late``.  For a ``keep_latest`` dataset the Parquet files hold every version
the pipeline emitted, PostgreSQL the latest per id; each version that lost to a
newer one is in the duplicate log too (``superseded``), so the sinks balance as
``parquet_events == valid_unique + superseded``.  A copy that arrives after its
id's dedup TTL is late (its window has closed): a dead letter of stage ``late`` and
a second Parquet row, while PostgreSQL keeps the first copy's row, so it balances
as a ``late_copy``.  Beside the counts, the offset audit reads the (topic,
partition, offset) of every row of the events, the dead letters (the late lane
excepted, late copies included) and the duplicate log, and compares them with the
run's offset ranges from the report: each offset must appear exactly once; and
every late dead letter must name an event's offset.

Modules, each with one reason to change:

- ``terms``: the terms and where each is read (``gather``, step by step);
- ``parquet``: the one way a run's Parquet files are listed and read;
- ``kafka``: the dead-letter topic's term;
- ``balance``: the offset audit and the windows' balance, derived from rows;
- ``check`` and ``equations``: how a check is declared, and the checks;
- ``render``: the table and its JSON line;
- ``command``: ``python -m tools.reconcile --run_id R``.
"""

from tools.reconcile.balance import OffsetAudit, audit_offsets, window_balance
from tools.reconcile.check import Check
from tools.reconcile.command import REPORT_NAME, main, reconcile
from tools.reconcile.equations import checks
from tools.reconcile.render import render
from tools.reconcile.terms import Gathered, Terms, gather

__all__ = [
    "REPORT_NAME",
    "Check",
    "Gathered",
    "OffsetAudit",
    "Terms",
    "audit_offsets",
    "checks",
    "gather",
    "main",
    "reconcile",
    "render",
    "window_balance",
]
