"""The run ledger: one JSON line per finished run of the operator's tools.

The main job, the drills, the benchmark and the Dataflow build each append what
they measured to ``<home>/runs.jsonl`` (``.beamline/runs.jsonl``); the runner matrix
in docs/runners.md is generated from those lines (``python -m tools.runner_matrix``),
never typed.
"""

from __future__ import annotations

import datetime
import json
import os
import pathlib
import typing

from beam_pipeline.settings import StackSettings

__all__ = ["LEDGER_NAME", "ledger_path", "read", "record"]

LEDGER_NAME = "runs.jsonl"


def ledger_path(settings: StackSettings) -> pathlib.Path:
    return settings.home / LEDGER_NAME


# BEAMLINE_LEDGER=off: runs record nothing (the test suite's runs are not measurements).
LEDGER_SWITCH = "BEAMLINE_LEDGER"


def record(settings: StackSettings, kind: str, **fields: typing.Any) -> dict:
    """Appends one line ``{"kind": kind, "at": <UTC time>, **fields}``; returns it
    (and appends nothing with ``BEAMLINE_LEDGER=off``)."""
    if {"kind", "at"} & fields.keys():
        raise ValueError("a ledger line's kind and at are its own: name the field otherwise")
    line = {
        "kind": kind,
        "at": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        **fields,
    }
    if os.environ.get(LEDGER_SWITCH) == "off":
        return line
    path = ledger_path(settings)
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a") as out:
        out.write(json.dumps(line, separators=(",", ":"), sort_keys=True) + "\n")
    return line


def read(path: pathlib.Path) -> list[dict]:
    """The ledger's lines, oldest first; none when it does not exist."""
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
