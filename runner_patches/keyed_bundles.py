"""No split of a bundle that runs a stateful DoFn: a workaround for Prism 2.71.

Prism's ``stageState.splitBundle`` (``runners/prism/internal/engine/elementmanager.go``
at v2.71.0) releases the key of every residual element from the stage's in-progress
keys while the primary bundle is still running in the SDK, which commits that
key's state only when the bundle finishes.  Another bundle for the same key (the
residual, or a timer) can then read the state before the primary's write lands,
and one of the two read-modify-writes is lost.  Seen here: a window's stage count
stayed two records short for minutes while every other check balanced (one
Prism streaming run in four).

``install()`` makes the SDK worker decline every split request for a bundle that
holds a stateful DoFn (an empty ``ProcessBundleSplitResponse``; declining is always
allowed) and leaves every other bundle as it was.  Prism then has no residual to
release a key for.  Beamline's stateful DoFns call it in ``setup()``, so it reaches
every Python worker that runs them; the FnApiRunner and Flink do not split these
bundles, so only Prism's behaviour changes.  Upstream, ``splitBundle`` should
release a key only when the primary bundle ends.
"""

from __future__ import annotations

from apache_beam.portability import common_urns
from apache_beam.portability.api import beam_fn_api_pb2, beam_runner_api_pb2
from apache_beam.runners.worker import bundle_processor

__all__ = ["holds_user_state", "install", "installed"]

_beam_try_split = bundle_processor.BundleProcessor.try_split


def holds_user_state(processor: bundle_processor.BundleProcessor) -> bool:
    """Whether a ParDo of the bundle's descriptor declares state or timers.

    Kept on the processor, which the worker reuses for every bundle of its
    descriptor (descriptor ids repeat across the jobs a worker runs: no global cache).
    """
    known = getattr(processor, "_beamline_holds_user_state", None)
    if known is None:
        pardos = (
            beam_runner_api_pb2.ParDoPayload.FromString(t.spec.payload)
            for t in processor.process_bundle_descriptor.transforms.values()
            if t.spec.urn == common_urns.primitives.PAR_DO.urn
        )
        known = any(p.state_specs or p.timer_family_specs for p in pardos)
        processor._beamline_holds_user_state = known
    return known


def _try_split(self, bundle_split_request):
    if holds_user_state(self):
        return beam_fn_api_pb2.ProcessBundleSplitResponse()
    return _beam_try_split(self, bundle_split_request)


def install() -> None:
    """Declines splits of stateful bundles in this worker process; idempotent."""
    bundle_processor.BundleProcessor.try_split = _try_split


def installed() -> bool:
    return bundle_processor.BundleProcessor.try_split is _try_split
