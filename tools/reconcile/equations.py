"""The reconciliation's checks, each declared once (see :mod:`tools.reconcile.check`).

Their names are read by the drills, the runner matrix and the tests: a name is part
of the interface, and changes only with them.
"""

from __future__ import annotations

import typing

from tools.reconcile.balance import OffsetAudit
from tools.reconcile.check import Check, Rule, Run, Term, equal, equation
from tools.reconcile.terms import Terms

__all__ = ["CHECKS", "checks"]


def checks(
    terms: Terms,
    audit: OffsetAudit,
    means: typing.Sequence[str] = (),
    raw: typing.Optional[OffsetAudit] = None,
    children: bool = False,
) -> list[Check]:
    """Every check of a run, passed or not, with the numbers behind it, in the order
    of :data:`CHECKS`; with the aggregate's ``means``, the averages are checked too,
    with the ``raw`` output's audit, that it holds every offset of the run exactly
    once, and with ``children``, the child tables' rows.  Every check is exact, after
    a fault too: a live job judges late events and late copies by their own records
    (``GraphParams.arrival_delay_ms``), so a restore cannot change the verdicts."""
    run = Run(terms, audit, tuple(means), raw, children)
    return [c.check(run) for c in CHECKS if c.applies(run)]


def _copies(run: Run) -> bool:
    return bool(run.terms.late_copies)


# A late copy is a record beside its id's kept one: its own Parquet row and dead
# letter, no PostgreSQL row (the first copy keeps it).  Named only when present.
_LATE_COPIES = Term("late_copies", shown=_copies)
_INJECTED_LATE = Term("injected_late", "injected beyond the allowed lateness")
_INJECTED_DUPLICATES = Term("injected_duplicates", "injected duplicates")
_PAIRS_OFF = " (window, group) pairs off"

CHECKS = (
    equation(equal("produced", ("valid_unique", "duplicates", "dead_letters", _LATE_COPIES))),
    equation(
        equal(
            "parquet_events",
            ("postgres_events", "superseded", _LATE_COPIES),
            ("valid_unique", "superseded", _LATE_COPIES),
            ("gold_total", "late"),
        )
    ),
    equation(equal(("dead_letters", "late"), "parquet_dead_letters", "kafka_dead_letters")),
    Rule(
        "every window: final count + its late events == its events",
        lambda run: run.terms.unbalanced_windows == 0,
        "{run.terms.unbalanced_windows}" + _PAIRS_OFF,
    ),
    Rule(
        "every window: final {run.averages} == the means of its events",
        lambda run: run.terms.off_averages == 0,
        "{run.terms.off_averages}" + _PAIRS_OFF,
        applies=lambda run: bool(run.means),
    ),
    equation(
        equal(Term("stage_read", "read"), "produced"),
        equal(Term("stage_late", "late"), "late"),
        title="stage counts: ",
    ),
    equation(equal("gold_total", "parquet_gold_total")),
    Rule(
        "every window: PostgreSQL's count == Parquet's final pane",
        lambda run: run.terms.windows_disagreeing == 0,
        "{run.terms.windows_disagreeing}" + _PAIRS_OFF,
    ),
    Rule(
        "every offset of the run exactly once across the outputs",
        lambda run: run.audit.exact and run.audit.late_not_in_events == 0,
        "{run.audit.expected} offsets, {run.audit.found} rows: {run.audit.missing} missing, "
        "{run.audit.unexpected} unexpected, {run.audit.repeated} repeated, "
        "{run.audit.late_not_in_events} late not in events",
    ),
    Rule(
        "raw records: every offset of the run exactly once",
        lambda run: run.raw.exact and run.terms.parquet_raw == run.terms.produced,
        "{run.raw.expected} offsets, {run.terms.parquet_raw} rows: {run.raw.missing} missing, "
        "{run.raw.unexpected} unexpected, {run.raw.repeated} repeated",
        applies=lambda run: run.raw is not None,
    ),
    equation(
        equal(
            "postgres_children",
            ("parquet_children", Term("late_copy_items", minus=True, shown=_copies)),
            "child_items",
        ),
        applies=lambda run: run.children,
    ),
    equation(
        equal(
            "duplicates",
            (_INJECTED_DUPLICATES, Term("injected_replaced", "replaced versions")),
        ),
    ),
    equation(
        equal("late_copies", Term("injected_late_copies", "injected copies after the dedup TTL")),
        applies=lambda run: bool(run.terms.late_copies or run.terms.injected_late_copies),
    ),
    equation(equal("dead_letters", Term("injected_dead_letters", "injected malformed + invalid"))),
    equation(equal("late", (_INJECTED_LATE, _LATE_COPIES))),
)
