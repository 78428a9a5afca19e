"""Workarounds for Beam 2.71 runner behaviour, installed in every Python worker.

Each module patches one piece of the SDK worker and says why, what it changes and
where the fix belongs upstream; each has an idempotent ``install()`` that the
stateful DoFns call in ``setup()``, so the patch reaches whichever worker runs them.
The package imports nothing of Beamline: ``transforms/`` and ``beam_pipeline/`` may
import it, ``schemas/`` and ``datasets/`` do not.
"""

__all__ = ["keyed_bundles", "state_weight"]
