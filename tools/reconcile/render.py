"""The reconciliation as a person and a machine read it: a table of terms and checks,
then one JSON line.

The table names each term's value and where it was read (terms of outputs the
dataset does not have are left out of it), then each check's verdict and numbers,
then ``all checks pass`` or ``RECONCILIATION FAILED``.  The last line is one JSON
object: ``run_id``, ``dataset``, the caller's ``extra`` fields, every term, each
check's name → passed, and ``passed``.
"""

from __future__ import annotations

import dataclasses
import json

from schemas import tables
from schemas.dataset import Dataset
from tools.reconcile.check import Check
from tools.reconcile.terms import Terms

__all__ = ["render"]


def render(
    dataset: Dataset,
    run_id: str,
    terms: Terms,
    results: list[Check],
    extra: dict | None = None,
) -> str:
    """The table a person reads; its last line is one JSON object for machines."""
    sources = _sources(dataset)
    contract = dataset.contract
    # Terms of outputs this dataset does not have stay in the JSON line, not the table.
    absent = {
        "off_averages": not contract.aggregate.means,
        "parquet_raw": not contract.raw_output,
        "child_items": not contract.children,
        "postgres_children": not contract.children,
        "parquet_children": not contract.children,
        # Late copies come only when the producer sent some (or the run found some).
        "late_copies": not (terms.late_copies or terms.injected_late_copies),
        "late_copy_items": not (terms.late_copies and contract.children),
        "injected_late_copies": not (terms.late_copies or terms.injected_late_copies),
    }
    lines = [
        f"Reconciliation of run {run_id} ({dataset.name})",
        "",
        f"  {'term':<22} {'value':>9}  source",
    ]
    for name, value in dataclasses.asdict(terms).items():
        if absent.get(name):
            continue
        lines.append(f"  {name:<22} {value:>9,}  {sources[name]}")
    width = max([70, *(len(c.name) for c in results)])
    lines += ["", f"  {'check':<{width}} result"]
    for check in results:
        verdict = "PASS" if check.passed else "FAIL"
        lines.append(f"  {check.name:<{width}} {verdict}  {check.detail}")
    passed = all(c.passed for c in results)
    lines += ["", f"  {'all checks pass' if passed else 'RECONCILIATION FAILED'}"]
    summary = {
        "run_id": run_id,
        "dataset": dataset.name,
        **(extra or {}),
        "terms": dataclasses.asdict(terms),
        "checks": {c.name: c.passed for c in results},
        "passed": passed,
    }
    lines.append(json.dumps(summary, separators=(",", ":")))
    return "\n".join(lines)


def _sources(dataset: Dataset) -> dict[str, str]:
    """Where each term is read, for the table a person reads."""
    main, aggregate = dataset.tables.main.name, dataset.tables.aggregate.name
    count = dataset.contract.aggregate.count_column
    n = len(dataset.tables.children)
    dead, stages = tables.DEAD_LETTERS.name, tables.STAGE_COUNTS.name
    return {
        "produced": "Kafka end offsets, after − before (producer report)",
        "valid_unique": f"PostgreSQL {main}: distinct {dataset.contract.id_column()}",
        "postgres_events": f"PostgreSQL {main}: rows",
        "parquet_events": f"Parquet {main}/: rows",
        "duplicates": f"PostgreSQL {tables.DUPLICATE_LOG.name}: rows",
        "dead_letters": f"PostgreSQL {dead}: rows, late lane excepted",
        "parquet_dead_letters": "Parquet dead_letters/: rows",
        "kafka_dead_letters": "Kafka dead_letters topic: distinct source records of the run",
        "gold_total": f"PostgreSQL {aggregate}: sum of {count}",
        "parquet_gold_total": f"Parquet {aggregate}/: sum of {count}",
        "injected_duplicates": "producer report: duplicates injected",
        "injected_dead_letters": "producer report: malformed + invalid injected",
        "late": f"PostgreSQL {dead}: rows of stage late",
        "unbalanced_windows": "windows where count + late events != events",
        "off_averages": "windows where an average != the mean of its events",
        "windows_disagreeing": f"windows where PostgreSQL {aggregate}.{count} != "
        "Parquet's final pane",
        "parquet_raw": f"Parquet {dataset.contract.raw_output}/: rows",
        "child_items": f"PostgreSQL {main}: items of the {n} arrays with child tables",
        "postgres_children": f"PostgreSQL: rows of the {n} child tables",
        "parquet_children": f"Parquet: rows of the {n} child tables",
        "stage_read": f"PostgreSQL {stages}: records read",
        "stage_late": f"PostgreSQL {stages}: late records",
        "injected_late": "producer report: sent beyond the allowed lateness",
        "superseded": f"duplicate log rows whose record is in Parquet {main}/",
        "injected_replaced": "producer report: valid versions of an id sent twice or more",
        "late_copies": f"late dead letters in no PostgreSQL {main} row nor the duplicate log",
        "late_copy_items": f"PostgreSQL {main}: child items of the late copies' ids",
        "injected_late_copies": "producer report: copies sent after the dedup TTL",
    }
