"""The Java expansion service: one small staged jar, no secret, loopback only.

By default Beam's expansion service lists its 140-jar classpath as the artifacts
of every environment it returns, and the Python SDK copies and hashes all of them
for each cross-language transform (9 of the 11 s it took to build the graph).  The
expanded pipeline and the service's log hold no password; the service listens on
loopback only, serves only its staged jar, and dies with its driver.
"""

import os
import pathlib
import signal
import subprocess
import sys
import time

import apache_beam as beam
import grpc
import pytest
from apache_beam.portability.api import (
    beam_artifact_api_pb2,
    beam_artifact_api_pb2_grpc,
    beam_runner_api_pb2,
)
from apache_beam.runners.portability import artifact_service

from beam_pipeline.driver import jdbc_target
from beam_pipeline.graph import GraphParams, build_graph, production_sinks
from beam_pipeline.java_services import JavaExpansionService, staged_classpath
from beam_pipeline.kafka_security import KafkaSecurity
from datasets.customer_events import DATASET
from tests.payloads import readable
from tests.procnet import LOOPBACK, listening_sockets
from transforms.kafka_io import ReadKafkaRecords

pytestmark = pytest.mark.integration


KAFKA_PASSWORD = "kafka-secret-3f9a1c"


def _kafka_security(tmp_path):
    """Client settings with a SASL password, as BEAMLINE_KAFKA_PROPERTIES names them."""
    path = tmp_path / "kafka-client.properties"
    path.write_text(
        "security.protocol=SASL_SSL\nsasl.mechanism=SCRAM-SHA-512\n"
        "sasl.jaas.config=org.apache.kafka.common.security.scram.ScramLoginModule required "
        f'username="beamline" password="{KAFKA_PASSWORD}";\n'
    )
    path.chmod(0o600)
    return KafkaSecurity.load(path).java_config()


def _production_graph(stack, tmp_path):
    """The graph with the Kafka read and the production sinks, Kafka with SASL
    settings, expanded by a service started for it: the pipeline proto, and the
    (stopped) service, whose log the caller may read."""
    service = JavaExpansionService(tmp_path / "logs").start()
    kafka_security = _kafka_security(tmp_path)
    try:
        sinks = production_sinks(
            DATASET,
            str(tmp_path / "out"),
            jdbc_target(stack),
            service.address,
            stack.kafka_bootstrap_servers,
            kafka_producer_config=kafka_security,
        )
        read = ReadKafkaRecords(
            stack.kafka_bootstrap_servers,
            ["t"],
            service.address,
            consumer_config={"group.id": "g", **kafka_security},
            commit_offsets=True,
            max_delay_s=5,
        )
        pipeline = beam.Pipeline(runner="FnApiRunner")
        build_graph(pipeline, DATASET, read, GraphParams(run_id="x"), sinks)
        return pipeline.to_runner_api(), service
    finally:
        service.stop()


def test_each_cross_language_transform_fetches_at_most_one_artifact(stack, tmp_path, monkeypatch):
    fetched = []
    resolve = artifact_service.resolve_artifacts

    def counted(artifacts, service, dest):
        stored = resolve(artifacts, service, dest)
        fetched.append(len(stored))
        return stored

    monkeypatch.setattr(artifact_service, "resolve_artifacts", counted)
    _production_graph(stack, tmp_path)
    assert fetched, "no cross-language transform was expanded"
    assert max(fetched) == 1, fetched


def test_no_password_is_in_an_expanded_transform_or_the_log(stack, tmp_path):
    # WriteToJdbc put it in clear into its payload: in the expansion request, in the
    # pipeline every runner receives, in the service's debug log.  The JDBC writer's
    # payload names the file instead, which the worker reads when it connects; the
    # Kafka clients get references that Kafka's FileConfigProvider resolves.
    passwords = (
        stack.pg_password().encode(),
        stack.writer_password().encode(),
        KAFKA_PASSWORD.encode(),
    )
    graph, service = _production_graph(stack, tmp_path)
    proto = graph.SerializeToString()

    def java_writers(fn: bytes) -> list[str]:
        return [
            t.unique_name
            for t in graph.components.transforms.values()
            if t.spec.urn == "beam:transform:pardo:v1"
            and any(fn in d.payload for d in t.display_data)
        ]

    # One Java writer for every PostgreSQL table (customer events' main table, its
    # three child tables and its aggregate, then dead letters, duplicates, stage
    # counts), a batch per element; it was one per table (8), a row per element.
    assert len(java_writers(b"PostgresCopyMergeRegistrar$CopyMergeFn")) == 1
    assert java_writers(b"PostgresUpsertRegistrar$UpsertFn") == []
    log = service.log_path.read_bytes()
    proto = readable(proto)  # Java DoFns are Snappy streams: a plain search misses strings
    assert b"jdbc:postgresql://" in proto
    assert b"${beamline:" + str(tmp_path).encode() in proto  # the read's and the write's
    assert not [p for p in passwords if p in proto or p in log]


_KILLED_DRIVER = """
import os, pathlib, sys
from beam_pipeline.java_services import JavaExpansionService, staged_classpath
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


def test_the_service_listens_on_loopback_only_and_serves_only_its_staged_jar(stack, tmp_path):
    # Beam's own main listened on every interface and returned any file a client
    # named (the password file, or any file at all when run as root).
    service = JavaExpansionService(tmp_path / "logs").start()
    try:
        listening = listening_sockets(service._process.pid)
        channel = grpc.insecure_channel(service.address)
        stub = beam_artifact_api_pb2_grpc.ArtifactRetrievalServiceStub(channel)

        def fetch(path):
            artifact = beam_runner_api_pb2.ArtifactInformation(
                type_urn="beam:artifact:type:file:v1",
                type_payload=beam_runner_api_pb2.ArtifactFilePayload(
                    path=str(path)
                ).SerializeToString(),
            )
            request = beam_artifact_api_pb2.GetArtifactRequest(artifact=artifact)
            return b"".join(r.data for r in stub.GetArtifact(request, timeout=30))

        staged = next(staged_classpath().glob("beamline-expansion-service-*.jar"))
        assert fetch(staged) == staged.read_bytes()
        for secret in (stack.password_file, pathlib.Path("/etc/passwd")):
            with pytest.raises(grpc.RpcError) as refused:
                fetch(secret)
            assert refused.value.code() == grpc.StatusCode.PERMISSION_DENIED
        channel.close()
    finally:
        service.stop()
    assert listening, "found no listening socket of the service"
    assert {address for address, _ in listening} <= LOOPBACK, listening  # Beam's main: "::"
