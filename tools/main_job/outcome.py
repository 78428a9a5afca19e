"""How a run of the main job ends: the producer's report kept beside the run's
outputs, the run reconciled from its sinks, the table printed and the ledger's line
(``tools/ledger.py``: what the runner matrix shows)."""

from __future__ import annotations

import dataclasses
import json

from beam_pipeline.errors import print_error
from beam_pipeline.preflight import committed_offsets
from tools import ledger, reconcile
from tools.main_job.config import Run

__all__ = ["committed", "keep_report", "publish", "reconcile_run"]


def keep_report(run: Run, report: dict) -> None:
    """Writes the producer's report to ``<run_dir>/producer.json`` (what the
    reconciliation and the drills read the run back by)."""
    run.run_dir.mkdir(parents=True, exist_ok=True)
    (run.run_dir / reconcile.REPORT_NAME).write_text(json.dumps(report, indent=2) + "\n")


def reconcile_run(run: Run, report: dict) -> tuple[reconcile.Terms, list[reconcile.Check]]:
    """The run reconciled from its sinks against the producer's ``report``.
    Raises what the sinks' clients raise."""
    return reconcile.reconcile(run.dataset, run.run_id, report, run.run_dir.parent, run.settings)


def publish(
    run: Run,
    terms: reconcile.Terms,
    results: list[reconcile.Check],
    extra: dict,
    record: bool = True,
) -> None:
    """Prints the reconciliation's table with ``extra`` and, with ``record``,
    appends the run's ledger line."""
    print(reconcile.render(run.dataset, run.run_id, terms, results, extra))
    if not record:
        return
    ledger.record(
        run.settings,
        "main",
        **{
            **extra,
            "run_id": run.run_id,
            "dataset": run.dataset.name,
            "runner": run.runner,
            "value_format": run.spec.value_format,
            "passed": all(c.passed for c in results),
            "checks": {c.name: c.passed for c in results},
            "terms": dataclasses.asdict(terms),
        },
    )


def committed(run: Run, report: dict) -> int | None:
    """Records of the run whose offsets the job committed to its group by the end
    (commits follow checkpoints: the last few seconds' may be missing); None when
    they cannot be read (the reconciliation stands without them)."""
    try:
        offsets = committed_offsets(
            run.settings.kafka_bootstrap_servers, f"beamline-{run.run_id}", report["topic"]
        )
    except Exception as e:  # noqa: BLE001 - the reconciliation stands without it
        print_error(f"cannot read the run's committed offsets: {e}")
        return None
    before = {int(p): o for p, o in report["offsets_before"].items()}
    return sum(max(0, offsets.get(p, o) - o) for p, o in before.items())
