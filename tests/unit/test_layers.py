"""Imports point one way: schemas ← transforms ← datasets ← the job ← the operator's tools.

``schemas/`` holds declarations (contracts, the pipeline's own row types, DDL) and
imports nothing of the packages above it; ``runner_patches/`` (workarounds in the SDK
worker) imports nothing of Beamline, and only ``transforms/`` and the job import it;
``transforms/`` is reusable and imports nothing of the job; the job
(``beam_pipeline/``) imports none of the operator's tools (``tools/``: the main job,
the reconciliation, stack administration, producers, drills, the bench), which are
not staged to workers.
Read from the source with ``ast`` in every module, subpackages included, so an import
inside a function counts too.
"""

import ast
import pathlib

import pytest

pytestmark = pytest.mark.unit

ROOT = pathlib.Path(__file__).parents[2]
FORBIDDEN = {
    "runner_patches": ("schemas", "transforms", "datasets", "beam_pipeline", "tools"),
    "schemas": ("runner_patches", "transforms", "datasets", "beam_pipeline", "tools"),
    "transforms": ("datasets", "beam_pipeline", "tools"),
    "datasets": ("runner_patches", "beam_pipeline", "tools"),
    "beam_pipeline": ("tools",),
}


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
        for path in sorted((ROOT / package).rglob("*.py"))
        for name in sorted(_imported(path))
        if name.split(".")[0] in FORBIDDEN[package]
    ]
    assert found == []


# The packages a worker runs: what setup.py stages with --setup_file.
WORKER_PACKAGES = ("runner_patches", "schemas", "transforms", "datasets", "beam_pipeline")


def test_the_tools_are_not_staged_to_workers_and_faker_is_theirs_alone():
    import setuptools

    setup = (ROOT / "setup.py").read_text()
    namespace: dict = {}
    real_setup = setuptools.setup
    captured: dict = {}
    setuptools.setup = lambda **kw: captured.update(kw)
    try:
        exec(compile(setup, "setup.py", "exec"), namespace)
    finally:
        setuptools.setup = real_setup
    packages = set(captured["packages"])
    assert set(WORKER_PACKAGES) <= packages
    assert not any(name.split(".")[0] == "tools" for name in packages)
    assert not any(req.lower().startswith("faker") for req in captured["install_requires"])
    assert any(req.lower().startswith("faker") for req in captured["extras_require"]["tools"])
    found = [
        f"{path.relative_to(ROOT)} imports {name}"
        for package in WORKER_PACKAGES
        for path in sorted((ROOT / package).rglob("*.py"))
        for name in sorted(_imported(path))
        if name.split(".")[0] == "faker"
    ]
    assert found == []
