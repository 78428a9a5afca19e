"""Shared fixtures.

Unit tests run on the FnApiRunner, pinned: the DirectRunner would first try
Prism, which it downloads from the network.  Integration tests talk to the
Kafka broker and PostgreSQL server that ``./run_local.sh start`` runs.
"""

import os

import pytest
from apache_beam.options.pipeline_options import PipelineOptions
from apache_beam.testing.test_pipeline import TestPipeline

UNIT_RUNNER = "FnApiRunner"

# The suite's runs are not measurements: none goes into the run ledger (tools/ledger.py).
os.environ["BEAMLINE_LEDGER"] = "off"


@pytest.fixture
def pipeline():
    """A TestPipeline on the in-process FnApiRunner; runs when the ``with`` block exits."""
    return TestPipeline(runner=UNIT_RUNNER, options=PipelineOptions([]))


STREAM_RUNNER = "BundleBasedDirectRunner"


@pytest.fixture
def stream_pipeline():
    """A streaming TestPipeline for ``TestStream`` (the BundleBasedDirectRunner runs it;
    no cross-language transform may be in it)."""
    return TestPipeline(runner=STREAM_RUNNER, options=PipelineOptions(["--streaming"]))
