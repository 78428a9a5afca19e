"""How a reconciliation check is declared: once, as data, from the run's terms.

An :class:`Equation` relates sums of terms (fields of ``Terms``).  From its one
declaration come the three things a reader sees: the name (the terms' names, or
the words given for them, e.g. ``produced == valid_unique + duplicates +
dead_letters``), the verdict (every side equal, or the first at most the second)
and the detail (the same sums in numbers, ``100 vs 90 + 6 + 4``).  A :class:`Rule`
is a check that is no sum of terms (an offset audit, the windows' balance): its
name and detail are format strings over the :class:`Run`, its verdict a predicate.
Either kind says by a predicate on the :class:`Run` whether it applies to a run at
all, and a term says by one whether it is named (a term is always counted).
"""

from __future__ import annotations

import dataclasses
import typing

from tools.reconcile.balance import OffsetAudit
from tools.reconcile.terms import Terms

__all__ = [
    "Check",
    "Equation",
    "Predicate",
    "Relation",
    "Rule",
    "Run",
    "Term",
    "equal",
    "equation",
]


@dataclasses.dataclass(frozen=True)
class Check:
    """One check of a run: the name shown, whether it passed, the numbers behind it."""

    name: str
    passed: bool
    detail: str


@dataclasses.dataclass(frozen=True)
class Run:
    """What a check reads: the run's terms and offset audits, and what its dataset has."""

    terms: Terms
    audit: OffsetAudit  # the outputs' coordinates
    means: tuple[str, ...] = ()  # the aggregate's averaged fields
    raw: OffsetAudit | None = None  # the raw records', where the contract keeps them
    children: bool = False  # the contract fans out to child tables

    @property
    def averages(self) -> str:
        """The aggregate's average columns, as a name shows them: ``avg_a and avg_b``."""
        return " and ".join(f"avg_{m}" for m in self.means)


Predicate = typing.Callable[[Run], bool]


def _always(run: Run) -> bool:
    return True


@dataclasses.dataclass(frozen=True)
class Term:
    """One term of a sum: a field of ``Terms``, the words shown for it, its sign."""

    field: str
    label: str = ""  # shown instead of the field's name
    minus: bool = False
    shown: Predicate = _always  # named (text and numbers) only where this holds

    def value(self, run: Run) -> int:
        return getattr(run.terms, self.field)


Side = tuple[Term, ...]


@dataclasses.dataclass(frozen=True)
class Relation:
    """Sums of terms chained by ``==``: every side equal."""

    sides: tuple[Side, ...]

    def holds(self, run: Run) -> bool:
        sums = [sum(-t.value(run) if t.minus else t.value(run) for t in s) for s in self.sides]
        return len(set(sums)) == 1

    def name(self, run: Run) -> str:
        return " == ".join(_text(side, run, lambda t: t.label or t.field) for side in self.sides)

    def detail(self, run: Run) -> str:
        """The sides in numbers: ``a vs b`` for two, ``a == b == c`` for a chain."""
        joint = " vs " if len(self.sides) == 2 else " == "
        return joint.join(_text(side, run, lambda t: str(t.value(run))) for side in self.sides)


def _text(side: Side, run: Run, word: typing.Callable[[Term], str]) -> str:
    """A sum as text, its terms that are not shown left out (``a + b - c``)."""
    shown = [t for t in side if t.shown(run)]
    return word(shown[0]) + "".join(f" {'-' if t.minus else '+'} {word(t)}" for t in shown[1:])


@dataclasses.dataclass(frozen=True)
class Equation:
    """A check that one or more relations hold; named ``title`` + the relations
    (joined by ``, ``) + ``note``."""

    relations: tuple[Relation, ...]
    title: str = ""
    note: str = ""
    applies: Predicate = _always

    def check(self, run: Run) -> Check:
        return Check(
            self.title + ", ".join(r.name(run) for r in self.relations) + self.note,
            all(r.holds(run) for r in self.relations),
            ", ".join(r.detail(run) for r in self.relations),
        )


@dataclasses.dataclass(frozen=True)
class Rule:
    """A check that is no relation of sums: ``name`` and ``detail`` are format
    strings over the run (``{run.audit.missing}``), ``holds`` its verdict."""

    name: str
    holds: Predicate
    detail: str
    applies: Predicate = _always

    def check(self, run: Run) -> Check:
        return Check(self.name.format(run=run), self.holds(run), self.detail.format(run=run))


def equal(*sides: Term | str | tuple[Term | str, ...]) -> Relation:
    """Every side equal; a side is a term (a field's name or a :class:`Term`) or a
    tuple of terms, summed."""
    return Relation(tuple(_side(s) for s in sides))


def equation(
    *relations: Relation, title: str = "", note: str = "", applies: Predicate = _always
) -> Equation:
    return Equation(relations, title, note, applies)


def _side(terms: Term | str | tuple[Term | str, ...]) -> Side:
    terms = terms if isinstance(terms, tuple) else (terms,)
    return tuple(t if isinstance(t, Term) else Term(t) for t in terms)
