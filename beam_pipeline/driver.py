"""The driver behind ``python -m run``: flags → config → checks → graph → run.

Exit codes: 0 done, 1 a service is missing or the job failed, 2 a bad flag.
Every failure the user can fix is one line on stderr saying what to do.
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import logging
import os
import pathlib
import shutil
import signal
import sys
import threading
import time
import typing

import apache_beam as beam
from apache_beam.options.pipeline_options import (
    DebugOptions,
    PipelineOptions,
    StandardOptions,
    TestOptions,
)
from google.protobuf import json_format

import datasets
from beam_pipeline import flink_cluster, loopback_servers
from beam_pipeline.graph import GraphParams, build_graph, production_sinks
from beam_pipeline.java_services import (
    JAVA_SDK_IMAGE,
    ExpansionServiceError,
    JavaExpansionService,
)
from beam_pipeline.kafka_security import ENV as KAFKA_PROPERTIES_ENV
from beam_pipeline.options import BeamlineOptions, Config, ConfigError
from beam_pipeline.preflight import (
    ServiceUnavailable,
    check_kafka,
    check_listening,
    check_postgres,
    commit_offsets,
)
from beam_pipeline.progress import rows_so_far
from beam_pipeline.runners import (
    CLUSTER_EXPANSION_PORT,
    PYTHON_WORKERS_PORT,
    RunnerSetupError,
    flink_cluster_master,
    preload_loopback,
    preset_flags,
    runner_flag,
    runner_name,
)
from beam_pipeline.settings import MissingPasswordError, StackSettings
from schemas.dataset import Dataset
from transforms.kafka_io import ReadKafkaRecords
from transforms.sinks import JdbcTarget

__all__ = ["help_text", "main"]

_LOG = logging.getLogger(__name__)


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


def help_text() -> str:
    return _parser().format_help()


def unknown_flags(argv: list[str]) -> list[str]:
    """The flags in ``argv`` that neither Beamline, Beam nor the runner's job server
    knows (Beam only warns)."""
    known, unknown = _parser().parse_known_args(argv)
    runner = runner_name(known.runner)
    return [arg for arg in unknown if arg.startswith("-") and not runner_flag(runner, arg)]


def _error(message: str) -> None:
    print(f"beamline: error: {message}", file=sys.stderr)


def _counter(result, name: str) -> int:
    # "step/name" counts only in steps whose name holds "step" (CountPerWindow's
    # counters exist in the event counts and in the stage counts).
    step, _, name = name.rpartition("/")
    wanted = beam.metrics.MetricsFilter().with_name(name)
    if step:
        wanted = wanted.with_step(step)
    counters = result.metrics().query(wanted)["counters"]
    return sum(c.committed or c.attempted or 0 for c in counters)


# The counters of the summary line, in the order of the graph.
_SUMMARY_COUNTERS = (
    "records_read",
    "decoded",
    "decode_rejected",
    "valid",
    "invalid",
    "normalised",
    "normalise_rejected",
    "sink_refused",
    "unique",
    "duplicates",
    "superseded",
    "CountPerWindow/panes_on_time",
    "CountPerWindow/panes_late",
    "CountPerWindow/late_records",
)


_TERMINAL = ("DONE", "FAILED", "CANCELLED", "STOPPED", "UPDATED", "DRAINED")


_SET_ASIDE = ".replaced"


def set_aside_earlier_parquet(
    prefix: pathlib.Path, outputs: typing.Iterable[str]
) -> pathlib.Path | None:
    """Moves the batch Parquet files an earlier run under the same run id left in the
    ``outputs`` folders of ``prefix`` into ``prefix/.replaced/``, so a re-run replaces
    them instead of adding to them (a re-run that ends with another shard count would
    leave stale ``part-SSSSS-of-NNNNN`` files that the reconciliation counts).  Returns that
    folder, or ``None`` when there was nothing."""
    # rglob: a partitioned output keeps its files in partition folders.
    earlier = [f for name in outputs for f in sorted((prefix / name).rglob("*.parquet"))]
    if not earlier:
        return None
    aside = prefix / _SET_ASIDE
    for f in earlier:
        target = aside / f.relative_to(prefix)
        target.parent.mkdir(parents=True, exist_ok=True)
        os.replace(f, target)
    _LOG.info("set aside %d Parquet files of an earlier run under %s", len(earlier), aside)
    return aside


def settle_earlier_parquet(aside: pathlib.Path, replaced: bool) -> None:
    """After the run: drops the set-aside files when the run replaced them, else puts
    back those that no new file took the place of."""
    if not replaced:
        for f in sorted(aside.rglob("*.parquet")):
            target = aside.parent / f.relative_to(aside)
            if not target.exists():
                os.replace(f, target)
    shutil.rmtree(aside, ignore_errors=True)


def jdbc_target(settings: StackSettings) -> JdbcTarget:
    """Where the pipeline writes: as the writer role, its password named, never given."""
    return JdbcTarget(settings.jdbc_url, settings.pg_writer, **settings.writer_password_reference())


# The variable a Dataflow job's Java workers read the writer's password from: a path
# on this machine means nothing there (README, "Dataflow").
DATAFLOW_PASSWORD_ENV = "BEAMLINE_PG_WRITER_PASSWORD"


def _build_graph(
    pipeline: beam.Pipeline,
    config: Config,
    dataset: Dataset,
    target: JdbcTarget,
    expansion_service: str,
    consumer_config: dict,
) -> None:
    """The job's graph: the dataset's graph between the Kafka read and the sinks."""
    build_graph(
        pipeline,
        dataset,
        ReadKafkaRecords(
            config.kafka_bootstrap_servers,
            [config.kafka_topic],
            expansion_service,
            max_num_records=config.kafka_max_records,
            max_read_time_s=config.kafka_max_read_time_s,
            start_read_time_ms=config.kafka_start_read_time_ms,
            consumer_config=consumer_config,
            partition_counts=config.kafka_partition_counts,
            commit_offsets=config.unbounded,  # an unbounded read always has a group
            max_delay_s=config.kafka_max_delay_s if config.unbounded else 0,
        ),
        GraphParams(
            run_id=config.run_id,
            dedup_ttl_s=config.dedup_ttl_s,
            window_size_s=config.window_size_s,
            window_period_s=config.window_period_s,
            allowed_lateness_s=config.allowed_lateness_s,
            value_format=config.value_format,
            batch=not pipeline.options.view_as(StandardOptions).streaming,
        ),
        production_sinks(
            dataset,
            config.output_prefix,
            target,
            expansion_service,
            config.kafka_bootstrap_servers,
            file_window_s=config.window_size_s,
            kafka_producer_config=config.producer_config(),
        ),
    )


def _run_on_dataflow(config: Config, options: PipelineOptions, settings: StackSettings) -> int:
    """Builds the job for Dataflow: written to ``--dataflow_job_file`` with
    ``--dry_run=True`` (nothing leaves this machine), else submitted, printing its id.

    Nothing here talks to the local Kafka or PostgreSQL: the job's workers reach the
    servers named by ``--kafka_bootstrap_servers`` and ``BEAMLINE_PG_HOST``.  The Java
    stages run in Beam's Java SDK container with every jar of the staged classpath.
    """
    dry_run = options.view_as(TestOptions).dry_run
    job_file = options.view_as(DebugOptions).dataflow_job_file
    if dry_run and not job_file:
        _error("--dry_run=True builds the job without submitting it: add --dataflow_job_file=PATH")
        return 2
    if config.kafka_start_offsets is not None:
        _error(
            "--kafka_start_offsets commits offsets for a consumer group before the job: "
            "not on Dataflow; use --kafka_start_read_time_ms"
        )
        return 2
    if config.kafka_security:
        _error(
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
        _build_graph(pipeline, config, dataset, target, service.address, config.consumer_config())
        result = pipeline.run()
    if dry_run:
        _write_dataflow_job(result.job, job_file)
        print(
            f"run {config.run_id}: Dataflow job built in {time.monotonic() - started:.1f} s, "
            f"not submitted (--dry_run); written to {job_file} and "
            f"{_pipeline_path(job_file)}"
        )
        return 0
    print(f"run {config.run_id}: submitted to Dataflow as job {result.job_id()}")
    return 0


def _pipeline_path(job_file: str) -> str:
    return f"{job_file.removesuffix('.json')}.pipeline.json"


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
    pathlib.Path(_pipeline_path(job_file)).write_text(
        json_format.MessageToJson(job.proto_pipeline) + "\n"
    )


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if "-h" in argv or "--help" in argv:
        print(help_text())
        return 0
    settings = StackSettings.from_env()
    try:
        unknown = unknown_flags(argv)
        if unknown:
            raise ConfigError(f"unknown flag {unknown[0].split('=')[0]}: see python -m run --help")
        config = Config.from_options(PipelineOptions(argv))
        # A run's checkpoints (Flink): kept if the job fails, removed once it ends cleanly.
        state_dir = settings.home / "flink-checkpoints" / config.run_id
        presets = preset_flags(
            config.runner,
            argv,
            config.unbounded,
            state_dir,
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
        options = PipelineOptions(argv + presets)
    except ConfigError as e:
        _error(str(e))
        return 2
    except RunnerSetupError as e:
        _error(str(e))
        return 1
    if config.runner == "DataflowRunner":
        return _run_on_dataflow(config, options, settings)
    consumer_config = config.consumer_config()
    try:
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
    except (ServiceUnavailable, MissingPasswordError) as e:
        _error(str(e))
        return 1

    dataset = datasets.get(config.dataset)
    output_prefix = config.output_prefix
    started = time.monotonic()
    earlier = (
        None
        if config.unbounded or config.detach or output_prefix.startswith("gs://")
        else set_aside_earlier_parquet(pathlib.Path(output_prefix), dataset.parquet_outputs())
    )
    with contextlib.ExitStack() as services:
        cluster = flink_cluster_master(argv) if config.runner == "FlinkRunner" else None
        try:
            if config.expansion_service:
                expansion_service = config.expansion_service
            elif cluster:
                # A cluster's Java stages need a worker that outlives this driver.
                expansion_service = f"127.0.0.1:{CLUSTER_EXPANSION_PORT}"
                check_listening(expansion_service, "the Flink cluster's expansion service")
                check_listening(
                    f"127.0.0.1:{PYTHON_WORKERS_PORT}", "the Flink cluster's Python workers"
                )
            else:
                expansion_service = services.enter_context(
                    JavaExpansionService(settings.home / "logs")
                ).address
        except (ExpansionServiceError, ServiceUnavailable) as e:
            _error(str(e))
            return 1
        loopback_servers.install()  # Beam's local gRPC servers: 127.0.0.1, not every interface
        pipeline = beam.Pipeline(options=options)
        _build_graph(pipeline, config, dataset, target, expansion_service, consumer_config)
        _LOG.info("run %s: reading %s on the %s", config.run_id, config.kafka_topic, config.runner)
        result = pipeline.run()
        if config.detach:
            return _detached(cluster, options.get_all_options()["job_name"], config.run_id)
        if config.unbounded:
            print(
                f"run {config.run_id}: streaming from {config.kafka_topic} on the "
                f"{config.runner}; Ctrl-C stops it",
                flush=True,
            )
        state = _wait(
            result,
            config.duration_s,
            functools.partial(rows_so_far, settings, dataset, config.run_id),
            config.progress_every_s,
            started,
        )
        if cluster:
            name = options.get_all_options()["job_name"]
            for jid in flink_cluster.cancel_jobs(cluster, name):
                print(f"cancelled job {jid} on the Flink cluster at {cluster}", flush=True)
        # A cancelled streaming job's counters are partial or absent on portable
        # runners (Flink reports none): say what reached the sinks instead.
        counts = (
            _sink_rows(settings, dataset, config.run_id) if config.unbounded else _counters(result)
        )
    if earlier is not None:
        settle_earlier_parquet(earlier, replaced=state == "DONE")
    # The run id was checked to be one plain folder name; this says so again before
    # anything is removed.
    if state in ("DONE", "CANCELLED") and state_dir.parent == settings.home / "flink-checkpoints":
        shutil.rmtree(state_dir, ignore_errors=True)
    elapsed = time.monotonic() - started
    read = counts.get("records_read", 0)
    # A streaming job's rate would mostly measure how long it waited for data.
    rate = f", {read / elapsed:,.0f} records/s" if elapsed > 0 and not config.unbounded else ""
    print(
        f"run {config.run_id}: {state} in {elapsed:.1f} s{rate}; "
        + ", ".join(f"{name} {value}" for name, value in counts.items())
        + f"; Parquet under {output_prefix}/"
    )
    return 0 if state in ("DONE", "CANCELLED") else 1


def _detached(cluster: str, name: str, run_id: str) -> int:
    """A detached submission's end: the job's id once it runs on the cluster; the
    driver exits and leaves it (and its checkpoints) running."""
    try:
        jid = flink_cluster.wait_until_running(cluster, name)
    except (flink_cluster.SavepointError, OSError) as e:
        _error(f"the detached job did not start: {e}")
        return 1
    print(
        f"run {run_id}: submitted to the Flink cluster at {cluster} as job {jid} (detached, "
        f"http://{cluster}/#/job/running/{jid}); it runs until "
        f"./run_local.sh flink stop-job {run_id}",
        flush=True,
    )
    return 0


def _sink_rows(settings: StackSettings, dataset: Dataset, run_id: str) -> dict[str, int]:
    try:
        return {f"rows {k}": v for k, v in rows_so_far(settings, dataset, run_id).items()}
    except Exception as e:  # noqa: BLE001 - the summary line must still print
        _LOG.warning("cannot count the sinks' rows: %s", e)
        return {}


def _counters(result) -> dict[str, int]:
    try:
        return {name.rpartition("/")[2]: _counter(result, name) for name in _SUMMARY_COUNTERS}
    except Exception as e:  # noqa: BLE001 - a runner without metrics still ends cleanly
        _LOG.warning("no counters from the runner: %s", e)
        return dict.fromkeys((name.rpartition("/")[2] for name in _SUMMARY_COUNTERS), 0)


def _progress(snapshot, started: float, every_s: float, stop: threading.Event) -> None:
    """Prints one progress line every ``every_s`` seconds until ``stop`` is set.

    The numbers are rows already in the sinks: portable runners report counters
    only when a job ends.
    """
    while not stop.wait(every_s):
        try:
            counts = snapshot()
        except Exception as e:  # noqa: BLE001 - progress must never stop the job
            counts = {"unavailable": str(e).splitlines()[0]}
        print(
            f"  … {time.monotonic() - started:.0f} s, rows so far: "
            + ", ".join(f"{name} {value}" for name, value in counts.items()),
            flush=True,
        )


def _still_running(result) -> bool:
    try:
        return str(result.state) not in _TERMINAL
    except Exception as e:  # noqa: BLE001 - the job service is gone: the job with it
        _LOG.debug("the job's state is unavailable: %s", e)
        return False


def _wait(result, duration_s: int | None, progress, progress_every_s: int, started: float) -> str:
    """Waits for the job: to its end, for ``duration_s``, or until Ctrl-C; then cancels it.

    Returns the final state.  Ctrl-C (SIGINT) is caught here rather than raised
    inside Beam's wait, which would close the job service's channel and leave
    nothing to cancel with; a job still running when the wait ends is cancelled,
    so a stop by time or by Ctrl-C leaves no job behind.
    """
    done, interrupted, quiet = threading.Event(), threading.Event(), threading.Event()

    def wait_for_job():
        try:
            try:
                result.wait_until_finish()
            except Exception as e:  # noqa: BLE001 - a cancelled job "fails"; the state says
                _LOG.debug("the wait ended: %s", e)
            # Beam's portable runner opens the job's state stream with a deadline of
            # --job_server_timeout (300 s by default): the wait above ends then, with
            # DEADLINE_EXCEEDED, while a streaming job runs on.  Poll its state instead.
            while _still_running(result):
                time.sleep(1)
        finally:
            done.set()

    threading.Thread(target=wait_for_job, name="beamline-wait", daemon=True).start()
    threading.Thread(
        target=_progress, args=(progress, started, progress_every_s, quiet), daemon=True
    ).start()
    in_main = threading.current_thread() is threading.main_thread()
    previous = signal.signal(signal.SIGINT, lambda *_: interrupted.set()) if in_main else None
    deadline = time.monotonic() + duration_s if duration_s else None
    try:
        while not done.wait(0.2):
            if interrupted.is_set() or (deadline is not None and time.monotonic() >= deadline):
                break
    finally:
        if in_main:
            signal.signal(signal.SIGINT, previous)
        quiet.set()
    if not done.is_set():
        print("stopping the job …", flush=True)
        result.cancel()
        done.wait(120)
    state = str(result.state)
    if state not in _TERMINAL:
        state = "CANCELLED"
    return state
