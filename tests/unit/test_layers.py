"""Imports point one way: schemas ← transforms ← the job ← the operator's tools.

``schemas/`` holds declarations (contracts, the pipeline's own row types, DDL) and
imports nothing of ``transforms/`` or ``beam_pipeline/``; ``transforms/`` is
reusable and imports nothing of ``beam_pipeline/``; the job's modules in
``beam_pipeline/`` import none of the operator's tools that live beside them (the
main job, the reconciliation, stack administration, producers, drills, the bench).
Read from the source with ``ast``, so an import inside a function counts too.
"""

import ast
import pathlib

import pytest

pytestmark = pytest.mark.unit

ROOT = pathlib.Path(__file__).parents[2]
FORBIDDEN = {"schemas": ("transforms", "beam_pipeline"), "transforms": ("beam_pipeline",)}


def _imported(path: pathlib.Path) -> set[str]:
    names = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
    return names


@pytest.mark.parametrize("package", sorted(FORBIDDEN))
def test_a_package_imports_nothing_from_the_layers_above_it(package):
    found = [
        f"{path.relative_to(ROOT)} imports {name}"
        for path in sorted((ROOT / package).glob("*.py"))
        for name in sorted(_imported(path))
        if name.split(".")[0] in FORBIDDEN[package]
    ]
    assert found == []


# The operator's tools in beam_pipeline/ (issue 13 moves them to a package of their own).
TOOLS = {
    "bench",
    "bench_baselines",
    "event_producer",
    "main_job",
    "peak_memory",
    "producer",
    "reconcile",
    "stack",
    "start_drill",
}


def test_the_job_imports_none_of_the_operators_tools():
    job = [p for p in sorted((ROOT / "beam_pipeline").glob("*.py")) if p.stem not in TOOLS]
    assert {p.stem for p in job} >= {"driver", "graph", "options", "runners", "java_services"}
    found = [
        f"{path.relative_to(ROOT)} imports {name}"
        for path in job
        for name in sorted(_imported(path))
        if name.startswith("beam_pipeline.") and name.split(".")[1] in TOOLS
    ]
    assert found == []
