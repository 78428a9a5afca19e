"""The Java expansion service stages one small jar, not its whole classpath.

By default Beam's expansion service lists its 140-jar classpath as the artifacts
of every environment it returns, and the Python SDK copies and hashes all of them
for each cross-language transform (9 of the 11 s it took to build the graph).
"""

import os
import pathlib
import signal
import subprocess
import sys
import time

import apache_beam as beam
import pytest
from apache_beam.runners.portability import artifact_service

from beam_pipeline.graph import GraphParams, build_graph, production_sinks
from beam_pipeline.java_services import JavaExpansionService
from transforms.sinks import JdbcTarget

pytestmark = pytest.mark.integration


def test_each_cross_language_transform_fetches_at_most_one_artifact(stack, tmp_path, monkeypatch):
    fetched = []
    resolve = artifact_service.resolve_artifacts

    def counted(artifacts, service, dest):
        stored = resolve(artifacts, service, dest)
        fetched.append(len(stored))
        return stored

    monkeypatch.setattr(artifact_service, "resolve_artifacts", counted)
    service = JavaExpansionService(tmp_path / "logs").start()
    try:
        target = JdbcTarget(stack.jdbc_url, stack.pg_user, **stack.password_reference())
        sinks = production_sinks(
            str(tmp_path / "out"), target, service.address, stack.kafka_bootstrap_servers
        )
        pipeline = beam.Pipeline(runner="FnApiRunner")
        build_graph(pipeline, beam.Create([]), GraphParams(run_id="x"), sinks)
    finally:
        service.stop()
    assert fetched, "no cross-language transform was expanded"
    assert max(fetched) == 1, fetched


def test_the_password_is_in_no_expanded_transform_and_no_log(stack, tmp_path):
    # WriteToJdbc put it in clear into its payload: in the expansion request, in the
    # pipeline every runner receives, in the service's debug log.  The JDBC writer's
    # payload names the file instead, which the worker reads when it connects.
    password = stack.pg_password().encode()
    service = JavaExpansionService(tmp_path / "logs").start()
    try:
        target = JdbcTarget(stack.jdbc_url, stack.pg_user, **stack.password_reference())
        sinks = production_sinks(
            str(tmp_path / "out"), target, service.address, stack.kafka_bootstrap_servers
        )
        pipeline = beam.Pipeline(runner="FnApiRunner")
        build_graph(pipeline, beam.Create([]), GraphParams(run_id="x"), sinks)
        graph = pipeline.to_runner_api()
    finally:
        service.stop()
    proto = graph.SerializeToString()
    writers = [
        t.unique_name
        for t in graph.components.transforms.values()
        if t.spec.urn == "beam:transform:pardo:v1"
        and any(b"PostgresUpsertRegistrar$UpsertFn" in d.payload for d in t.display_data)
    ]
    assert len(writers) == 5, writers  # one Java writer per PostgreSQL table
    assert password not in proto
    assert password not in service.log_path.read_bytes()


_KILLED_DRIVER = """
import os, pathlib, sys
from beam_pipeline.java_services import JavaExpansionService
service = JavaExpansionService(pathlib.Path(sys.argv[1])).start()
print(service._process.pid, flush=True)
os.kill(os.getpid(), 9)
"""


def test_the_jvm_dies_with_a_driver_killed_by_sigkill(tmp_path):
    # A driver that never reaches stop(): its JVM must not live on reading Kafka.
    driver = subprocess.run(
        [sys.executable, "-c", _KILLED_DRIVER, str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=pathlib.Path(__file__).parents[2],
    )
    assert driver.returncode == -signal.SIGKILL, driver.stderr[-2000:]
    jvm = int(driver.stdout.split()[0])
    deadline = time.monotonic() + 30
    while pathlib.Path(f"/proc/{jvm}").exists() and time.monotonic() < deadline:
        time.sleep(0.1)
    alive = pathlib.Path(f"/proc/{jvm}").exists()
    if alive:
        os.kill(jvm, signal.SIGKILL)
    assert not alive, f"the expansion service JVM {jvm} outlived its driver"
