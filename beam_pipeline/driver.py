"""The driver behind ``python -m run``: flags → config → service checks → graph → run → summary.

Exit codes: 0 done, 1 a service is missing or the job failed, 2 a bad flag.
Every failure the user can fix is one line on stderr saying what to do
(``beam_pipeline.errors.print_error``).  A Dataflow job is built and submitted by
``beam_pipeline.dataflow``; a run on the local runners is waited for here
(``job_wait``), and ends with one summary line (``run_summary``).
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import logging
import os
import pathlib
import shutil
import sys
import time

import apache_beam as beam
from apache_beam.options.pipeline_options import PipelineOptions

import datasets
from beam_pipeline import flink_cluster, loopback_servers
from beam_pipeline.dataflow import run_on_dataflow
from beam_pipeline.earlier_parquet import set_aside_earlier_parquet, settle_earlier_parquet
from beam_pipeline.errors import print_error
from beam_pipeline.flink_run import cancel_cluster_job, cluster_expansion_service, detached
from beam_pipeline.java_services import ExpansionServiceError, JavaExpansionService
from beam_pipeline.job_graph import build_job_graph
from beam_pipeline.job_wait import wait_for_job
from beam_pipeline.options import BeamlineOptions, Config, ConfigError
from beam_pipeline.preflight import (
    ServiceUnavailable,
    check_kafka,
    check_postgres,
    commit_offsets,
)
from beam_pipeline.progress import rows_so_far
from beam_pipeline.run_summary import run_counts, summary_line
from beam_pipeline.runners import (
    RunnerSetupError,
    flink_cluster_master,
    preload_loopback,
    preset_flags,
    runner_flag,
    runner_name,
)
from beam_pipeline.settings import MissingPasswordError, StackSettings
from transforms.sinks import JdbcTarget

__all__ = ["help_text", "jdbc_target", "job_started_line", "main", "unknown_flags"]

_LOG = logging.getLogger(__name__)

# Runners whose ``pipeline.run()`` runs the whole job before it returns (the
# FnApiRunner, in this process): the job starts as it is handed over.
_RUNS_WITHIN_RUN = frozenset({"DirectRunner"})


def main(argv: list[str] | None = None) -> int:
    """Runs the job that ``argv`` (default: ``sys.argv[1:]``) describes; returns the exit code."""
    argv = list(sys.argv[1:] if argv is None else argv)
    if "-h" in argv or "--help" in argv:
        print(help_text())
        return 0
    settings = StackSettings.from_env()
    try:
        config, options = _configure(argv, settings)
    except ConfigError as e:
        print_error(str(e))
        return 2
    except RunnerSetupError as e:
        print_error(str(e))
        return 1
    if config.runner == "DataflowRunner":
        return run_on_dataflow(config, options, settings)
    try:
        target = _check_services(config, settings)
    except (ServiceUnavailable, MissingPasswordError) as e:
        print_error(str(e))
        return 1
    return _run(argv, config, options, settings, target)


def help_text() -> str:
    """``python -m run --help``: Beamline's flags, then every flag Beam knows."""
    return _parser().format_help()


def unknown_flags(argv: list[str]) -> list[str]:
    """The flags in ``argv`` that neither Beamline, Beam nor the runner's job server
    knows (Beam only warns)."""
    known, unknown = _parser().parse_known_args(argv)
    runner = runner_name(known.runner)
    return [arg for arg in unknown if arg.startswith("-") and not runner_flag(runner, arg)]


def job_started_line(run_id: str, runner: str = "") -> str:
    """``run <id>: job started on the <runner>``, logged once the runner has the job
    (``_start_job``); without ``runner``, the start every runner's line shares (the
    bench times the start of a job it did not submit itself by this line)."""
    return f"run {run_id}: job started on the {runner}"


def jdbc_target(settings: StackSettings) -> JdbcTarget:
    """Where the pipeline writes: as the writer role, its password named, never given."""
    return JdbcTarget(settings.jdbc_url, settings.pg_writer, **settings.writer_password_reference())


# --- flags → config -----------------------------------------------------------------------


class _Parser(argparse.ArgumentParser):
    """Raises ``ConfigError`` instead of printing usage and exiting: one line per problem."""

    def error(self, message):
        raise ConfigError(f"{message}: see python -m run --help")


def _parser() -> argparse.ArgumentParser:
    """Beamline's flags first, then every flag Beam knows (``--runner`` …)."""
    parser = _Parser(
        prog="python -m run",
        usage="python -m run [Beamline flags] [Beam flags]",
        description="Run Beamline: Kafka → decode → validate → normalise → dedup → "
        "windowed counts → Parquet + PostgreSQL, dead letters as data.",
        conflict_handler="resolve",
        allow_abbrev=False,
    )
    classes = [BeamlineOptions] + [
        c for c in PipelineOptions.__subclasses__() if c is not BeamlineOptions
    ]
    for cls in classes:
        cls._add_argparse_args(parser.add_argument_group(f"{cls.__name__}"))
    return parser


def _checkpoint_dir(settings: StackSettings, run_id: str) -> pathlib.Path:
    """A run's checkpoints (Flink): kept if the job fails, removed once it ends cleanly."""
    return settings.home / "flink-checkpoints" / run_id


def _configure(argv: list[str], settings: StackSettings) -> tuple[Config, PipelineOptions]:
    """The frozen config of ``argv``, and Beam's options: ``argv`` and the runner's presets.

    Raises:
      ConfigError: a bad flag.
      RunnerSetupError: the runner's local part is missing.
    """
    unknown = unknown_flags(argv)
    if unknown:
        raise ConfigError(f"unknown flag {unknown[0].split('=')[0]}: see python -m run --help")
    config = Config.from_options(PipelineOptions(argv))
    presets = preset_flags(
        config.runner,
        argv,
        config.unbounded,
        _checkpoint_dir(settings, config.run_id),
        job_name=flink_cluster.job_name(config.run_id),
        detach=config.detach,
    )
    preload_loopback(config.runner, argv, os.environ)
    if config.detach and not (
        config.runner == "FlinkRunner" and flink_cluster_master(argv) is not None
    ):
        raise ConfigError(
            "--detach submits to a Flink cluster: add --runner=FlinkRunner "
            "--flink_master=host:port (./run_local.sh flink start)"
        )
    return config, PipelineOptions(argv + presets)


# --- service checks ---------------------------------------------------------------------


def _check_services(config: Config, settings: StackSettings) -> JdbcTarget:
    """Kafka and PostgreSQL answer; the run's start offsets are committed for its group.
    Returns where the sinks write.

    Raises:
      ServiceUnavailable, MissingPasswordError: the message says what to start or set.
    """
    check_kafka(config.kafka_bootstrap_servers)
    check_postgres(settings)
    target = jdbc_target(settings)
    if config.kafka_start_offsets is not None:
        commit_offsets(
            config.kafka_bootstrap_servers,
            config.consumer_group(),
            config.kafka_topic,
            config.kafka_start_offsets,
        )
    return target


def _expansion_service(
    config: Config,
    cluster: str | None,
    services: contextlib.ExitStack,
    settings: StackSettings,
) -> str:
    """The expansion service of the run's Java stages: the flag's; a Flink cluster's
    (a worker that outlives this driver); else one started for the run, stopped when
    ``services`` closes.

    Raises:
      ExpansionServiceError, ServiceUnavailable: the message says what to do.
    """
    if config.expansion_service:
        return config.expansion_service
    if cluster:
        return cluster_expansion_service()
    return services.enter_context(JavaExpansionService(settings.home / "logs")).address


# --- graph → run → summary --------------------------------------------------------------


def _start_job(pipeline: beam.Pipeline, config: Config):
    """``pipeline.run()``, and the line saying the runner has the job
    (``job_started_line``): after ``run()`` returns on a portable runner (its job
    service has the artifacts staged and has answered the request to run), before it
    on the DirectRunner, whose ``run()`` runs the whole job here and returns at its end."""
    line = job_started_line(config.run_id, config.runner)
    if config.runner in _RUNS_WITHIN_RUN:
        _LOG.info("%s", line)
        return pipeline.run()
    result = pipeline.run()
    _LOG.info("%s", line)
    return result


def _run(
    argv: list[str],
    config: Config,
    options: PipelineOptions,
    settings: StackSettings,
    target: JdbcTarget,
) -> int:
    """Builds the job, runs it on a local runner or a Flink cluster, waits for it and
    prints the summary line; returns the exit code."""
    dataset = datasets.get(config.dataset)
    output_prefix = config.output_prefix
    started = time.monotonic()
    earlier = (
        None
        if config.unbounded or config.detach or output_prefix.startswith("gs://")
        else set_aside_earlier_parquet(pathlib.Path(output_prefix), dataset.parquet_outputs())
    )
    state = "FAILED"  # until the job says otherwise
    try:
        with contextlib.ExitStack() as services:
            cluster = flink_cluster_master(argv) if config.runner == "FlinkRunner" else None
            try:
                expansion_service = _expansion_service(config, cluster, services, settings)
            except (ExpansionServiceError, ServiceUnavailable) as e:
                print_error(str(e))
                return 1
            loopback_servers.install()  # Beam's local gRPC servers: 127.0.0.1, not every interface
            pipeline = beam.Pipeline(options=options)
            build_job_graph(pipeline, config, dataset, target, expansion_service)
            _LOG.info(
                "run %s: reading %s on the %s", config.run_id, config.kafka_topic, config.runner
            )
            result = _start_job(pipeline, config)
            if config.detach:
                return detached(cluster, options.get_all_options()["job_name"], config.run_id)
            if config.unbounded:
                print(
                    f"run {config.run_id}: streaming from {config.kafka_topic} on the "
                    f"{config.runner}; Ctrl-C stops it",
                    flush=True,
                )
            state = wait_for_job(
                result,
                config.duration_s,
                functools.partial(rows_so_far, settings, dataset, config.run_id),
                config.progress_every_s,
                started,
            )
            if cluster:
                cancel_cluster_job(cluster, options.get_all_options()["job_name"])
            counts = run_counts(result, settings, dataset, config.run_id, config.unbounded)
    finally:
        # A run that never started, or failed, puts the earlier files back.
        if earlier is not None:
            settle_earlier_parquet(earlier, replaced=state == "DONE")
    # The run id was checked to be one plain folder name; this says so again before
    # anything is removed.
    state_dir = _checkpoint_dir(settings, config.run_id)
    if state in ("DONE", "CANCELLED") and state_dir.parent == settings.home / "flink-checkpoints":
        shutil.rmtree(state_dir, ignore_errors=True)
    elapsed = time.monotonic() - started
    print(summary_line(config.run_id, state, elapsed, counts, config.unbounded, output_prefix))
    return 0 if state in ("DONE", "CANCELLED") else 1
