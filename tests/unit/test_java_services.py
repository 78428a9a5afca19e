"""The expansion service's command line: a long-lived service runs each Java worker in
a JVM of its own; a run's own service keeps Beam's thread-per-worker pool."""

import pytest

from beam_pipeline import java_services
from beam_pipeline.java_services import JavaExpansionService

pytestmark = pytest.mark.unit


@pytest.fixture
def classpath(tmp_path, monkeypatch):
    monkeypatch.setattr(java_services, "staged_classpath", lambda: tmp_path)
    return tmp_path


def test_a_long_lived_service_gives_each_worker_its_own_jvm(classpath, tmp_path):
    command = JavaExpansionService(tmp_path, 8097, heap="1g", worker_heap="2g").command()
    assert command.index("-Dbeamline.workerHeap=2g") < command.index("-cp")
    assert command[command.index("-cp") + 2 :][:2] == [java_services._MAIN_CLASS, "8097"]
    assert "--alsoStartLoopbackWorker" in command and "-Xmx1g" in command


def test_a_runs_own_service_keeps_workers_in_its_jvm(classpath, tmp_path):
    command = JavaExpansionService(tmp_path, 8097).command()
    assert not [arg for arg in command if arg.startswith("-Dbeamline.workerHeap")]
