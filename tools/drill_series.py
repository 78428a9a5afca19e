"""A series of fault drills: every drill (or one) with several seeds, one streaming
run after another, and the table of their outcomes.

    ./run_local.sh drill all --seeds 3 [--seed 10] [other main-job flags]

``plan`` lists the runs: each drill with the seeds ``--seed`` (default 1) up to
``--seed + --seeds - 1``, drill by drill.  ``run_series`` runs them through a
single-drill runner (``tools.drill.run_drill``; a fake in the tests), goes on past
a run that fails or raises (a FAIL cell with its one-line reason), and stops after
the current run once ``stop`` is set (Ctrl-C).  ``render`` prints drill × seed:

    drill          seed 1                                 seed 2
    stop-resume    PASS lost 0, twice 0, late 98 of 100   FAIL lost 3, twice 0, late 98 of 100
    postgres-down  FAIL: raised OSError: no such service  PASS lost 0, twice 0, late 98 of 100
    2 of 4 drill runs passed

A cell's counts are the run's ``lost``, ``written twice`` and late events of those
sent late (``tools.drill.tally``); a FAIL adds why (its fault, the failed checks,
the job's exit) or, when nothing was reconciled, says only why.
"""

from __future__ import annotations

import dataclasses
import threading
import typing

__all__ = ["DrillResult", "exit_code", "plan", "render", "run_series", "seeds"]

# The first seed of a series unless --seed gives it.
FIRST_SEED = 1
NOT_RUN = "(not run)"


@dataclasses.dataclass(frozen=True)
class DrillResult:
    """One drill run's outcome.

    Attributes:
      drill: the drill's name (a key of ``tools.drill.DRILLS``).
      seed: the records' seed (None: not known, the run drew one and failed first).
      passed: reconciled, every check passed, nothing lost or written twice.
      counts: the run's tally (``tools.drill.tally``); empty when nothing was
        reconciled.
      injected_late: the events sent late (the late lane's expected size).
      reason: why it failed, one line; empty when it passed or the counts say it.
      run_id: the run's id; None when it failed before it had one.
      code: the single drill's exit code (0 only when it passed).
    """

    drill: str
    seed: int | None
    passed: bool
    counts: typing.Mapping[str, int] = dataclasses.field(default_factory=dict)
    injected_late: int = 0
    reason: str = ""
    run_id: str | None = None
    code: int = 0

    @classmethod
    def raised(cls, drill: str, seed: int | None, error: BaseException) -> DrillResult:
        """The FAIL of a run that raised ``error``: its type and first line."""
        text = str(error).strip().splitlines()
        detail = f": {text[0]}" if text else ""
        return cls(drill, seed, False, reason=f"raised {type(error).__name__}{detail}", code=1)

    def cell(self) -> str:
        """``PASS lost 0, twice 0, late 98 of 100``; a FAIL adds its reason."""
        verdict = "PASS" if self.passed else "FAIL"
        if not self.counts:
            return f"{verdict}: {self.reason}" if self.reason else verdict
        counts = (
            f"lost {self.counts['lost']}, twice {self.counts['written twice']}, "
            f"late {self.counts['late']} of {self.injected_late}"
        )
        return f"{verdict} {counts}" + (f": {self.reason}" if self.reason else "")


def seeds(count: int, first: int | None) -> list[int]:
    """The seeds of each drill: ``first`` (default ``FIRST_SEED``) and the ``count - 1``
    after it."""
    if count < 1:
        raise ValueError(f"--seeds is how many runs of each drill, at least 1 (got {count})")
    start = FIRST_SEED if first is None else first
    return list(range(start, start + count))


def plan(drills: typing.Sequence[str], seed_list: typing.Sequence[int | None]) -> list[tuple]:
    """The runs in order, ``(drill, seed)``: drill by drill, each with every seed."""
    return [(d, s) for d in drills for s in seed_list]


RunOne = typing.Callable[[str, int | None], DrillResult]


def run_series(
    runs: typing.Sequence[tuple[str, int | None]],
    run_one: RunOne,
    stop: threading.Event | None = None,
) -> list[DrillResult]:
    """Runs ``runs`` one after another through ``run_one``; their results in order.
    A run that raises is a FAIL with its reason and the series goes on; once
    ``stop`` is set (Ctrl-C) no further run starts; a KeyboardInterrupt (Ctrl-C
    twice) ends the current run as a FAIL and the series with it."""
    stop = stop or threading.Event()
    results = []
    for drill, seed in runs:
        if stop.is_set():
            break
        try:
            results.append(run_one(drill, seed))
        except KeyboardInterrupt:
            results.append(DrillResult(drill, seed, False, reason="interrupted (Ctrl-C)", code=1))
            break
        except Exception as e:  # noqa: BLE001 - one drill's error is its cell, not the series'
            results.append(DrillResult.raised(drill, seed, e))
    return results


def exit_code(runs: typing.Sequence[tuple], results: typing.Sequence[DrillResult]) -> int:
    """0 only when every planned run ran and passed, else 1."""
    return 0 if len(results) == len(runs) and all(r.passed for r in results) else 1


def render(runs: typing.Sequence[tuple], results: typing.Sequence[DrillResult]) -> str:
    """The table of ``runs`` (drills down, seeds across; a run not reached is
    ``(not run)``), then ``N of M drill runs passed`` (M: the runs that ran, and
    the planned ones when Ctrl-C stopped the series first)."""
    drills = list(dict.fromkeys(d for d, _ in runs))
    seed_list = list(dict.fromkeys(s for _, s in runs))
    # By position in the plan (results are in its order, fewer when stopped).
    done = {run: result.cell() for run, result in zip(runs, results, strict=False)}
    rows = [["drill", *(f"seed {s}" for s in seed_list)]]
    rows += [[d, *(done.get((d, s), NOT_RUN) for s in seed_list)] for d in drills]
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    lines = [
        "  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip() for row in rows
    ]
    passed = sum(r.passed for r in results)
    total = f"{passed} of {len(results)} drill runs passed"
    if len(results) < len(runs):
        total += f" (stopped after {len(results)} of {len(runs)} planned)"
    return "\n".join([*lines, total])
