"""A bundle that runs a stateful DoFn is never split; other bundles still are.

Runs the real FnApiRunner with its split manager (the hook Beam's own split tests
use): the runner asks the worker to split the stage's bundle in half once the
first element is being processed, and the test records the worker's answer.
"""

import threading

import apache_beam as beam
import pytest
from apache_beam import coders
from apache_beam.runners.portability.fn_api_runner import fn_runner
from apache_beam.testing.util import assert_that, equal_to
from apache_beam.transforms import environments
from apache_beam.transforms.userstate import ReadModifyWriteStateSpec

from runner_patches import keyed_bundles

pytestmark = pytest.mark.unit

_started = threading.Event()
_gate = threading.Event()


def _hold_first_element():
    """Lets the split request arrive while the bundle is still at its first element."""
    if not _started.is_set():
        _started.set()
        assert _gate.wait(30), "the split manager never let the bundle go on"


class _CountPerKeyFn(beam.DoFn):
    COUNT = ReadModifyWriteStateSpec("count", coders.VarIntCoder())

    def setup(self):
        keyed_bundles.install()  # as Beamline's stateful DoFns do

    def process(self, element, count=beam.DoFn.StateParam(COUNT)):
        _hold_first_element()
        n = (count.read() or 0) + 1
        count.write(n)
        yield element[0], n


def _identity(x):
    _hold_first_element()
    return x


def _run_with_one_split(stage, build, size):
    _started.clear()
    _gate.clear()
    answers = []

    def split_manager(num_elements):
        if num_elements != size:  # another bundle of the stage (timers, an empty one)
            return
        yield  # let the runner send the bundle's input
        assert _started.wait(30), "the bundle never started"
        answers.append((yield 0.5))
        _gate.set()

    with (
        fn_runner.split_manager(stage, split_manager),
        # Over gRPC, so that the split request arrives while the bundle runs.
        beam.Pipeline(
            runner=fn_runner.FnApiRunner(
                default_environment=environments.EmbeddedPythonGrpcEnvironment.default()
            )
        ) as p,
    ):
        build(p)
    return answers


def test_the_worker_declines_to_split_a_stateful_bundle():
    elements = [(f"k{i % 3}", i) for i in range(30)]

    def build(p):
        counted = p | beam.Create(elements) | "CountPerKey" >> beam.ParDo(_CountPerKeyFn())
        finals = counted | beam.CombinePerKey(max)
        assert_that(finals, equal_to([("k0", 10), ("k1", 10), ("k2", 10)]))

    answers = _run_with_one_split("CountPerKey", build, len(elements))
    assert answers == [None]  # asked once, declined: no primary, no residual
    assert keyed_bundles.installed()


def test_a_stateless_bundle_still_splits():
    keyed_bundles.install()
    elements = list(range(30))

    def build(p):
        out = p | beam.Create(elements) | beam.Reshuffle() | "Identity" >> beam.Map(_identity)
        assert_that(out, equal_to(elements))

    answers = _run_with_one_split("Identity", build, len(elements))
    assert len(answers) == 1 and answers[0] is not None
    assert answers[0].channel_splits, answers[0]
