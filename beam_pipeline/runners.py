"""Runner presets: what each runner needs added to the user's flags, in one place.

Transforms never ask which runner they run on; the driver calls ``preset_flags``
once and appends the result to the Beam flags (flags the user gave win: a preset
is only added when its flag is absent).

- ``DirectRunner``: nothing; with cross-language transforms Beam runs the
  FnApiRunner, Java stages in the expansion service's loopback worker.
- ``PrismRunner``: the binary that ``./run_local.sh setup`` built with ``go
  install`` (``--prism_location``), Python stages in this process
  (``--environment_type=LOOPBACK``), and ``--streaming`` for an unbounded read.
- ``DataflowRunner``: nothing; Dataflow keeps Beam's default container
  environments.
"""

from __future__ import annotations

import os
import pathlib

__all__ = ["PRISM_BINARY", "RunnerSetupError", "preset_flags"]

# Where `go install …/cmd/prism@v<beam>` puts the binary (run_local.sh setup), and
# where Beam's own Prism runner looks for a Go-installed binary.
PRISM_BINARY = pathlib.Path.home() / ".apache_beam" / "cache" / "prism" / "bin" / "prism"


class RunnerSetupError(RuntimeError):
    """A runner's local part is missing; the message says how to install it."""


def _given(argv: list[str], flag: str) -> bool:
    return any(arg == flag or arg.startswith(flag + "=") for arg in argv)


def preset_flags(runner: str, argv: list[str], unbounded: bool) -> list[str]:
    """The Beam flags ``runner`` needs that ``argv`` does not already set."""
    presets: list[tuple[str, str | None]] = []
    if runner == "PrismRunner":
        location = os.environ.get("BEAMLINE_PRISM", str(PRISM_BINARY))
        if not _given(argv, "--prism_location") and not pathlib.Path(location).is_file():
            raise RunnerSetupError(
                f"Prism is not installed at {location}: run ./run_local.sh setup "
                "(it builds Prism with go install)"
            )
        presets += [("--prism_location", location), ("--environment_type", "LOOPBACK")]
        if unbounded:
            presets.append(("--streaming", None))
    flags = []
    for flag, value in presets:
        if not _given(argv, flag):
            flags.append(flag if value is None else f"{flag}={value}")
    return flags
