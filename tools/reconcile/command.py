"""``python -m tools.reconcile --run_id R``: reconcile one run from its sinks.

Prints the table (:func:`~tools.reconcile.render.render`) whose last line is one
JSON object; exits 0 if every check passes, 1 if one fails, 2 without the
producer's report.
"""

from __future__ import annotations

import argparse
import json
import pathlib

import datasets
from beam_pipeline.errors import print_error
from beam_pipeline.identifiers import run_id_argument
from beam_pipeline.settings import StackSettings
from schemas.dataset import Dataset
from tools.reconcile.check import Check
from tools.reconcile.equations import checks
from tools.reconcile.render import render
from tools.reconcile.terms import Terms, gather

__all__ = ["REPORT_NAME", "main", "reconcile"]

REPORT_NAME = "producer.json"  # the producer's report, in <output>/<run>/


def reconcile(
    dataset: Dataset,
    run_id: str,
    report: dict,
    output_dir: pathlib.Path,
    settings: StackSettings,
) -> tuple[Terms, list[Check]]:
    """The run's terms, read from its sinks, and every check of them."""
    terms, audit, raw = gather(dataset, run_id, report, output_dir, settings)
    contract = dataset.contract
    return terms, checks(terms, audit, contract.aggregate.means, raw, bool(contract.children))


def main(argv=None) -> int:
    settings = StackSettings.from_env()
    parser = argparse.ArgumentParser(
        prog="python -m tools.reconcile",
        description="Reconcile one run from its sinks; exit 1 if any check fails.",
    )
    parser.add_argument("--run_id", type=run_id_argument, required=True)
    parser.add_argument("--output_dir", default=str(settings.home / "output"))
    parser.add_argument(
        "--report",
        default=None,
        help=f"the producer's report (default: <output>/<run>/{REPORT_NAME})",
    )
    args = parser.parse_args(argv)
    output_dir = pathlib.Path(args.output_dir).resolve()
    report_path = pathlib.Path(args.report or output_dir / args.run_id / REPORT_NAME)
    try:
        report = json.loads(report_path.read_text())
    except FileNotFoundError:
        print_error(f"no producer report at {report_path}")
        return 2
    dataset = datasets.get(report.get("dataset", datasets.DEFAULT))
    terms, results = reconcile(dataset, args.run_id, report, output_dir, settings)
    print(render(dataset, args.run_id, terms, results))
    return 0 if all(c.passed for c in results) else 1
