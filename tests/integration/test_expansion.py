"""The Java expansion service stages one small jar, not its whole classpath.

By default Beam's expansion service lists its 140-jar classpath as the artifacts
of every environment it returns, and the Python SDK copies and hashes all of them
for each cross-language transform (9 of the 11 s it took to build the graph).
"""

import apache_beam as beam
import pytest
from apache_beam.runners.portability import artifact_service

from beam_pipeline.graph import GraphParams, build_graph, production_sinks
from beam_pipeline.java_services import JavaExpansionService
from transforms.sinks import JdbcTarget

pytestmark = pytest.mark.integration


def test_each_cross_language_transform_fetches_at_most_one_artifact(
    stack, tmp_path, monkeypatch
):
    fetched = []
    resolve = artifact_service.resolve_artifacts

    def counted(artifacts, service, dest):
        stored = resolve(artifacts, service, dest)
        fetched.append(len(stored))
        return stored

    monkeypatch.setattr(artifact_service, "resolve_artifacts", counted)
    service = JavaExpansionService(tmp_path / "logs").start()
    try:
        target = JdbcTarget(stack.jdbc_url, stack.pg_user, stack.pg_password())
        sinks = production_sinks(
            str(tmp_path / "out"), target, service.address, stack.kafka_bootstrap_servers
        )
        pipeline = beam.Pipeline(runner="FnApiRunner")
        build_graph(pipeline, beam.Create([]), GraphParams(run_id="x"), sinks)
    finally:
        service.stop()
    assert fetched, "no cross-language transform was expanded"
    assert max(fetched) == 1, fetched
