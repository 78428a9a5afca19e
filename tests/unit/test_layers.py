"""Imports point one way: schemas ← transforms ← the job.

``schemas/`` holds declarations (contracts, the pipeline's own row types, DDL) and
imports nothing of ``transforms/`` or ``beam_pipeline/``; ``transforms/`` is
reusable and imports nothing of ``beam_pipeline/``.  Read from the source with
``ast``, so an import inside a function counts too.
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
