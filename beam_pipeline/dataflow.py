"""The job on Dataflow: built here, written offline (``--dry_run=True``) or submitted.

Nothing here talks to the local Kafka or PostgreSQL: the job's workers reach the
servers named by ``--kafka_bootstrap_servers`` and ``BEAMLINE_PG_HOST``.  The Java
stages run in Beam's Java SDK container with every jar of the staged classpath.
"""

from __future__ import annotations

import pathlib
import sys
import time

import apache_beam as beam
from apache_beam.options.pipeline_options import DebugOptions, PipelineOptions, TestOptions
from google.protobuf import json_format

import datasets
from beam_pipeline.errors import print_error
from beam_pipeline.java_services import JAVA_SDK_IMAGE, JavaExpansionService
from beam_pipeline.job_graph import build_job_graph
from beam_pipeline.kafka_security import ENV as KAFKA_PROPERTIES_ENV
from beam_pipeline.options import Config
from beam_pipeline.settings import StackSettings
from transforms.sinks import JdbcTarget

__all__ = ["DATAFLOW_PASSWORD_ENV", "dry_run_command", "pipeline_path", "run_on_dataflow"]

# The variable a Dataflow job's Java workers read the writer's password from: a path
# on this machine means nothing there (docs/dataflow.md).
DATAFLOW_PASSWORD_ENV = "BEAMLINE_PG_WRITER_PASSWORD"


def run_on_dataflow(config: Config, options: PipelineOptions, settings: StackSettings) -> int:
    """Builds the job for Dataflow: written to ``--dataflow_job_file`` with
    ``--dry_run=True`` (nothing leaves this machine), else submitted, printing its id.

    Returns the driver's exit code: 0 built or submitted, 2 a flag Dataflow cannot
    honour (one line on stderr says which).
    """
    dry_run = options.view_as(TestOptions).dry_run
    job_file = options.view_as(DebugOptions).dataflow_job_file
    if dry_run and not job_file:
        print_error(
            "--dry_run=True builds the job without submitting it: add --dataflow_job_file=PATH"
        )
        return 2
    if config.kafka_start_offsets is not None:
        print_error(
            "--kafka_start_offsets commits offsets for a consumer group before the job: "
            "not on Dataflow; use --kafka_start_read_time_ms"
        )
        return 2
    if config.kafka_security:
        print_error(
            f"{KAFKA_PROPERTIES_ENV} names a file on this machine, which Dataflow's workers "
            "cannot read: unset it (Kafka security on Dataflow is not supported yet)"
        )
        return 2
    dataset = datasets.get(config.dataset)
    target = JdbcTarget(
        settings.remote_jdbc_url, settings.pg_writer, password_env=DATAFLOW_PASSWORD_ENV
    )
    started = time.monotonic()
    with JavaExpansionService(settings.home / "logs", java_image=JAVA_SDK_IMAGE) as service:
        pipeline = beam.Pipeline(options=options)
        build_job_graph(pipeline, config, dataset, target, service.address)
        result = pipeline.run()
    if dry_run:
        _write_dataflow_job(result.job, job_file)
        print(
            f"run {config.run_id}: Dataflow job built in {time.monotonic() - started:.1f} s, "
            f"not submitted (--dry_run); written to {job_file} and "
            f"{pipeline_path(job_file)}"
        )
        return 0
    print(f"run {config.run_id}: submitted to Dataflow as job {result.job_id()}")
    return 0


def pipeline_path(job_file: str) -> str:
    """Where a dry run writes the portable pipeline: beside ``job_file``,
    ``<name>.pipeline.json``."""
    return f"{job_file.removesuffix('.json')}.pipeline.json"


def dry_run_command(
    job_file: str | pathlib.Path,
    run_id: str,
    output_dir: str = "gs://beamline-demo-data/runs",
) -> list[str]:
    """``python -m run`` building the demo project's Dataflow job offline into
    ``job_file`` (and ``pipeline_path(job_file)``): no Google Cloud account needed,
    nothing submitted."""
    return [
        sys.executable,
        "-m",
        "run",
        "--runner=DataflowRunner",
        "--project=beamline-demo",
        "--region=europe-west1",
        "--temp_location=gs://beamline-demo-tmp/tmp",
        f"--output_dir={output_dir}",
        "--kafka_bootstrap_servers=10.128.0.5:9092",
        f"--run_id={run_id}",
        "--dry_run=True",
        f"--dataflow_job_file={job_file}",
    ]


def _write_dataflow_job(job, job_file: str) -> None:
    """The job as Dataflow receives it, offline: the job request (its environment as
    Beam builds it, minus staged packages) and, beside it, the portable pipeline
    (which a submission stages as ``pipeline.pb``)."""
    from apache_beam.runners.dataflow.internal import apiclient
    from apache_beam.runners.internal import names

    apiclient.DataflowApplicationClient._apply_sdk_environment_overrides(
        job.proto_pipeline, {}, job.options
    )
    staged_url = f"{job.google_cloud_options.staging_location}/{names.STAGED_PIPELINE_FILENAME}"
    job.proto.environment = apiclient.Environment(
        packages=[],
        options=job.options,
        environment_version=apiclient._FNAPI_ENVIRONMENT_MAJOR_VERSION,
        proto_pipeline_staged_url=staged_url,
        proto_pipeline=job.proto_pipeline,
    ).proto
    pathlib.Path(job_file).write_text(job.json() + "\n")
    pathlib.Path(pipeline_path(job_file)).write_text(
        json_format.MessageToJson(job.proto_pipeline) + "\n"
    )
