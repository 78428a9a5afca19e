"""The one-line error every Beamline command prints for a failure the user can fix.

``python -m run``, the main job, the bench and the drills all say what went wrong and
what to do in one line on stderr, prefixed ``beamline: error:``; the caller chooses
the exit code (2 for a bad flag, 1 for a missing service or a failed job).
"""

from __future__ import annotations

import sys

__all__ = ["print_error"]


def print_error(message: str) -> None:
    """Write ``beamline: error: <message>`` to stderr."""
    print(f"beamline: error: {message}", file=sys.stderr)
