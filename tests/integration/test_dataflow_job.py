"""The Dataflow job, built offline: ``python -m run --runner=DataflowRunner --dry_run=True
--dataflow_job_file=PATH`` writes the job request and its portable pipeline.

Built the way a user builds it (a subprocess, the real expansion service), then read
back: the Kafka read, every PostgreSQL write and every Parquet write are in it, the
Java stages run in Beam's Java SDK container with the staged classpath (never a
worker on this machine), the Parquet files go to the gs:// output, the job streams
an unbounded read, and neither PostgreSQL password appears anywhere in it.
"""

import base64
import binascii
import contextlib
import json
import subprocess

import apache_beam
import pytest
from apache_beam.internal import pickler
from apache_beam.portability.api import beam_runner_api_pb2

from beam_pipeline.dataflow import dry_run_command
from beam_pipeline.java_services import staged_classpath
from beam_pipeline.settings import REPO_ROOT
from datasets.customer_events import DATASET
from tests.payloads import readable

pytestmark = pytest.mark.integration

DOCKER = "beam:env:docker:v1"
OUTPUT = "gs://beamline-demo-data/runs"


@pytest.fixture(scope="module")
def job(tmp_path_factory):
    folder = tmp_path_factory.mktemp("dataflow")
    job_file = folder / "job.json"
    run = subprocess.run(
        dry_run_command(job_file, "df_test", output_dir=OUTPUT),
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert run.returncode == 0, run.stderr[-3000:]
    assert "not submitted (--dry_run)" in run.stdout
    pipeline_file = folder / "job.pipeline.json"
    return {
        "job": json.loads(job_file.read_text()),
        "pipeline": json.loads(pipeline_file.read_text()),
        "text": job_file.read_text() + pipeline_file.read_text(),
    }


def _transforms(job) -> dict[str, dict]:
    return {t["uniqueName"]: t for t in job["pipeline"]["components"]["transforms"].values()}


def _environment(job, transform: dict) -> dict:
    return job["pipeline"]["components"]["environments"][transform["environmentId"]]


def _image(environment: dict) -> str:
    payload = beam_runner_api_pb2.DockerPayload.FromString(base64.b64decode(environment["payload"]))
    return payload.container_image


def _java_leaves(job, prefix: str) -> list[dict]:
    """The leaf transforms under ``prefix`` that run in a Java environment."""
    found = []
    for name, transform in _transforms(job).items():
        if name.startswith(prefix + "/") and not transform.get("subtransforms"):
            environment_id = transform.get("environmentId")
            if environment_id and "java" in _image(_environment(job, transform)):
                found.append(transform)
    return found


def test_the_job_streams_an_unbounded_read(job):
    assert job["job"]["type"] == "JOB_TYPE_STREAMING"


def test_the_kafka_read_and_the_postgres_write_run_in_beams_java_container(job):
    # One writer for every table (transforms.sinks.WriteTablesToPostgres).
    writes = ["WriteTablesPostgres/CopyMerge"]
    staged = len(list(staged_classpath().glob("*.jar")))
    for prefix in ["ReadRecords/ReadFromKafka", "WriteDeadLettersKafka", *writes]:
        leaves = _java_leaves(job, prefix)
        assert leaves, f"{prefix} has no Java stage"
        for leaf in leaves:
            environment = _environment(job, leaf)
            assert environment["urn"] == DOCKER
            assert _image(environment).endswith(f"beam_java17_sdk:{apache_beam.__version__}")
            assert len(environment["dependencies"]) == staged  # the whole classpath


def test_no_environment_points_at_this_machine(job):
    environments = job["pipeline"]["components"]["environments"].values()
    assert {e["urn"] for e in environments} == {DOCKER}
    images = {
        p["containerImage"]
        for p in job["job"]["environment"]["workerPools"][0]["sdkHarnessContainerImages"]
    }
    assert any("beam_python3.11_sdk" in i for i in images), images
    assert any("beam_java17_sdk" in i for i in images), images
    assert "127.0.0.1" not in job["text"] and "localhost:" not in job["text"]


def test_every_parquet_write_goes_to_the_gs_output(job):
    expected = {"WriteEventsParquet", "WriteCountsParquet", "WriteDeadLettersParquet"} | {
        f"Write{t.row_type.__name__}Parquet" for t in DATASET.tables.children
    }
    transforms = _transforms(job)
    folders = {}
    for name in expected:
        write = transforms[f"{name}/WriteWindowFile"]
        payload = beam_runner_api_pb2.ParDoPayload.FromString(
            base64.b64decode(write["spec"]["payload"])
        )
        fn = pickler.loads(payload.do_fn.payload)[0]
        folders[name] = fn._folder
    for name, folder in folders.items():
        assert folder.startswith(f"{OUTPUT}/df_test/"), (name, folder)


def _haystack(job) -> bytes:
    """The job's bytes with every base64 payload decoded, every Java Snappy stream and
    every pickled Python DoFn decompressed: a password in an encoded payload is found."""
    decoded, pickled = [job["text"].encode()], []

    def walk(value):
        if isinstance(value, dict):
            for item in value.values():
                walk(item)
        elif isinstance(value, list):
            for item in value:
                walk(item)
        elif isinstance(value, str) and len(value) >= 8:
            with contextlib.suppress(binascii.Error, ValueError):
                decoded.append(base64.b64decode(value, validate=True))

    walk(job["job"])
    walk(job["pipeline"])
    for transform in _transforms(job).values():
        if transform.get("spec", {}).get("urn") == "beam:transform:pardo:v1":
            payload = beam_runner_api_pb2.ParDoPayload.FromString(
                base64.b64decode(transform["spec"]["payload"])
            )
            pickled.append(payload.do_fn.payload)
    return readable(b"\n".join(decoded), pickled)


def test_no_password_is_anywhere_in_the_job(job, stack):
    haystack = _haystack(job)
    # The reference the Java writer resolves on the worker is there; the value never.
    assert b"BEAMLINE_PG_WRITER_PASSWORD" in haystack
    assert b"jdbc:postgresql://" in haystack  # inside a Snappy stream: the search sees in
    for password in (stack.pg_password(), stack.writer_password()):
        assert password and password.encode() not in haystack
