"""Runner presets: what each runner needs added to the user's flags, in one place.

Transforms never ask which runner they run on; the driver calls ``preset_flags``
once and appends the result to the Beam flags (flags the user gave win: a preset
is only added when its flag is absent).

- ``DirectRunner``: nothing; with cross-language transforms Beam runs the
  FnApiRunner, Java stages in the expansion service's loopback worker.
- ``PrismRunner``: the binary that ``./run_local.sh setup`` built with ``go
  install`` (``--prism_location``), Python stages in this process
  (``--environment_type=LOOPBACK``), and ``--streaming`` for an unbounded read.
- ``FlinkRunner``: Beam's portable Flink job server that ``./run_local.sh setup``
  assembled from Maven Central (``--flink_job_server_jar``), an embedded Flink
  mini-cluster unless told otherwise (``--flink_master=[local]``), Python stages in
  this process, ``--streaming`` (for a bounded read too: see ``preset_flags``), and
  for an unbounded read a checkpoint every 5 s
  (with ``--checkpointing_interval=-1`` no event reached PostgreSQL in 90 s) kept in
  files under ``.beamline/flink-checkpoints`` (Flink's default keeps them in the job
  manager's memory, at most 5 MB: a backlog of 10,000 events outgrew it, every
  checkpoint failed and no window ever fired), and
  ``--finish_bundle_before_checkpointing`` (below).  The job server is
  Beam 2.62.0, the newest release whose Flink runner and job-service modules are
  both on that Maven Central; it speaks the portable protocol to the 2.71 SDKs.
  On the stack's cluster (``--flink_master=host:port``) the driver starts no job
  server: it submits through the cluster's long-lived one (``--job_endpoint``,
  ``cluster_job_server``; ``./run_local.sh flink start`` starts it), unless the
  user names a job server or a jar.
  Its own flags (``FLINK_FLAGS``: ``--checkpointing_interval``,
  ``--max_bundle_time_mills`` …) are accepted with ``--runner=FlinkRunner``; the
  Python SDK forwards them to the job server.

  Why ``--finish_bundle_before_checkpointing``: by default Beam's Flink operator
  finishes an open bundle *inside* a checkpoint and keeps that bundle's output in
  a buffer that it empties only when the operator next sees an element or a
  watermark.  The read's first stage (split the Kafka source) sees exactly one
  element and one watermark in its life; when the first checkpoint came while
  that one bundle was open, the splits stayed in the buffer for good and the job
  read nothing (4 of 9 starts; Beam 2.62, flink-1.19).  With the flag the bundle
  is finished before the checkpoint barrier and its output goes downstream.
- ``DataflowRunner``: ``--setup_file`` (this repository's ``setup.py``, so the
  workers install Beamline's packages and pinned dependencies), and ``--streaming``
  for an unbounded read.  The Python stages keep Beam's default container; the
  Java stages get Beam's Java SDK container (``JavaExpansionService(java_image=…)``).
"""

from __future__ import annotations

import importlib
import os
import pathlib
import typing

from apache_beam.options.pipeline_options import PortableOptions, StandardOptions
from apache_beam.portability import common_urns

from beam_pipeline.identifiers import ConfigError
from beam_pipeline.settings import REPO_ROOT

__all__ = [
    "FLINK_FLAGS",
    "FLINK_JOB_SERVER_VERSION",
    "PARALLEL_RUNNERS",
    "PRISM_BINARY",
    "RUNNERS",
    "RUNNER_PRESETS",
    "RunnerSetupError",
    "check_beam_flags",
    "cluster_job_server",
    "flink_cluster_master",
    "flink_job_server_jar",
    "loopback_preload",
    "preload_loopback",
    "preset_flags",
    "runner_flag",
    "runner_flags",
    "runner_name",
]

# The runners Beamline runs on (README, Runners): what a bad --runner is told to use.
RUNNERS = ("DirectRunner", "PrismRunner", "FlinkRunner", "DataflowRunner")

# Beam's runners by lower-case class name, as Beam resolves a --runner value.
_BEAM_RUNNERS = {name.lower(): name for name in StandardOptions.KNOWN_RUNNER_NAMES}

# The --environment_type values Beam's portable runners accept besides a beam:env: URN.
_ENVIRONMENT_TYPES = (
    "LOOPBACK",
    *(name for name in vars(common_urns.environments) if name.isupper()),
)


def runner_name(runner: str | None) -> str:
    """``--runner``'s value as the class name Beam resolves it to: ``flink``,
    ``FlinkRunner`` and ``apache_beam.runners.portability.flink_runner.FlinkRunner``
    are all ``FlinkRunner``; a name Beam does not know keeps its last dotted part."""
    name = (runner or StandardOptions.DEFAULT_RUNNER).rsplit(".", 1)[-1]
    return _BEAM_RUNNERS.get(name.lower()) or _BEAM_RUNNERS.get(f"{name.lower()}runner") or name


def _runner_exists(runner: str) -> bool:
    """Whether Beam can create ``runner``: a runner it knows by name, or the fully
    qualified name of a class that can be imported."""
    if "." not in runner:
        return runner_name(runner) in _BEAM_RUNNERS.values()
    module, _, name = runner.rpartition(".")
    try:
        return isinstance(getattr(importlib.import_module(module), name), type)
    except (ImportError, AttributeError, ValueError):
        return False


def check_beam_flags(options) -> str:
    """Checks the values of Beam's own flags that Beam would only refuse with a
    traceback once the job is built (``--runner``, ``--environment_type``); returns
    the runner's class name.

    Raises:
      ConfigError: naming the flag, its value and the values one can use.
    """
    runner = options.view_as(StandardOptions).runner
    if runner is not None and not _runner_exists(runner):
        raise ConfigError(
            f"--runner={runner}: Beam has no such runner; Beamline runs on "
            f"{', '.join(RUNNERS[:-1])} or {RUNNERS[-1]}"
        )
    environment = options.view_as(PortableOptions).environment_type
    if environment and not (
        environment in _ENVIRONMENT_TYPES or environment.startswith("beam:env:")
    ):
        raise ConfigError(
            f"--environment_type={environment}: not an environment type; use one of "
            f"{', '.join(_ENVIRONMENT_TYPES)} or a beam:env: URN (the runner presets "
            "choose one when the flag is absent)"
        )
    return runner_name(runner)


# Where `go install …/cmd/prism@v<beam>` puts the binary (run_local.sh setup), and
# where Beam's own Prism runner looks for a Go-installed binary.
PRISM_BINARY = pathlib.Path.home() / ".apache_beam" / "cache" / "prism" / "bin" / "prism"


# java/flink-job-server/pom.xml builds this version (a unit test keeps them equal).
FLINK_JOB_SERVER_VERSION = "2.62.0"


def flink_job_server_jar() -> pathlib.Path:
    """The launcher jar that ``./run_local.sh setup`` staged in Beam's jar cache."""
    cache = pathlib.Path(
        os.environ.get("BEAM_JAR_CACHE", pathlib.Path.home() / ".apache_beam" / "cache" / "jars")
    )
    name = f"beamline-flink-job-server-{FLINK_JOB_SERVER_VERSION}"
    return cache / name / f"{name}.jar"


def loopback_preload() -> pathlib.Path:
    """``native/loopback_bind.c`` as ``./run_local.sh setup`` built it, beside the jar."""
    return flink_job_server_jar().parent / "libbeamline_loopback.so"


def preload_loopback(runner: str, argv: list[str], env: typing.MutableMapping[str, str]) -> None:
    """Puts ``loopback_preload()`` first in ``env``'s ``LD_PRELOAD`` when this process
    will start Beam's Flink job server (embedded Flink, or a cluster submission with
    a ``--flink_job_server_jar`` of its own), which inherits ``env``: Beam Java's
    servers in it (FnAPI, and a cluster submission's job and artifact services) bind
    every interface otherwise (``ServerFactory`` builds them with ``forPort``).  A
    cluster's TaskManager and its long-lived job server get it from
    ``run_local.sh``."""
    if runner != "FlinkRunner" or cluster_job_server(argv) or _given(argv, "--job_endpoint"):
        return
    lib = loopback_preload()
    if not lib.is_file():
        raise RunnerSetupError(
            f"the loopback library for Flink's job server is not built at {lib}: "
            "run ./run_local.sh setup"
        )
    preloaded = [p for p in env.get("LD_PRELOAD", "").split(":") if p and p != str(lib)]
    env["LD_PRELOAD"] = ":".join([str(lib), *preloaded])


# Options of Beam's Flink job server (FlinkPipelineOptions, Beam 2.62) that Python
# does not declare: the portable runner forwards them once the job server has
# described them, so they are flags of `python -m run` with the FlinkRunner.
FLINK_FLAGS = frozenset(
    (
        "--checkpointing_interval",
        "--checkpointing_mode",
        "--checkpoint_timeout_millis",
        "--min_pause_between_checkpoints",
        "--num_concurrent_checkpoints",
        "--fail_on_checkpointing_errors",
        "--finish_bundle_before_checkpointing",
        "--unaligned_checkpoint_enabled",
        "--shutdown_sources_after_idle_ms",
        "--number_of_execution_retries",
        "--execution_retry_delay",
        "--object_reuse",
        "--operator_chaining",
        "--state_backend",
        "--state_backend_storage_path",
        "--externalized_checkpoints_enabled",
        "--max_bundle_size",
        "--max_bundle_time_mills",
        "--latency_tracking_interval",
        "--auto_watermark_interval",
        "--savepoint_path",
        "--attached_mode",
        "--allow_non_restored_state",
        "--flink_conf_dir",
    )
)


# Elements in a Flink bundle: most are batches (transforms/batching.py, the Kafka
# read's), so a bundle of 50 holds up to some 50,000 records.
FLINK_MAX_BUNDLE_ELEMENTS = 50

# The stack's standalone Flink cluster (scripts/flink.sh) and the workers beside it.
FLINK_REST_PORT = int(os.environ.get("BEAMLINE_FLINK_REST_PORT", "8081"))
PYTHON_WORKERS_PORT = int(os.environ.get("BEAMLINE_PYTHON_WORKERS_PORT", "50000"))
CLUSTER_EXPANSION_PORT = int(os.environ.get("BEAMLINE_CLUSTER_EXPANSION_PORT", "8097"))
FLINK_JOB_PORT = int(os.environ.get("BEAMLINE_FLINK_JOB_PORT", "8099"))


# The runners of ./run_local.sh --runner NAME (and of its bench): the flags each stands for.
RUNNER_PRESETS = {
    "direct": ("--runner=DirectRunner",),
    "flink": ("--runner=FlinkRunner",),  # embedded: a mini-cluster in the job server
    "flink-cluster": (
        "--runner=FlinkRunner",
        f"--flink_master=127.0.0.1:{FLINK_REST_PORT}",
        "--parallelism=2",
    ),
    "prism": ("--runner=PrismRunner",),
}


# The presets whose job runs at a parallelism of its own (Flink's: the embedded
# mini-cluster's, or the slots it takes on the cluster).
PARALLEL_RUNNERS = ("flink", "flink-cluster")


def runner_flags(runner: str, parallelism: int | None = None) -> list[str]:
    """``RUNNER_PRESETS[runner]``, with ``--parallelism=<parallelism>`` in place of the
    preset's own when given.

    Raises:
      ValueError: ``parallelism`` below 1, or for a runner not in ``PARALLEL_RUNNERS``.
    """
    flags = list(RUNNER_PRESETS[runner])
    if parallelism is None:
        return flags
    if runner not in PARALLEL_RUNNERS or parallelism < 1:
        raise ValueError(
            f"--parallelism {parallelism}: a positive number, with --runner "
            f"{' or '.join(PARALLEL_RUNNERS)}"
        )
    return [f for f in flags if not f.startswith("--parallelism=")] + [
        f"--parallelism={parallelism}"
    ]


def flink_cluster_master(argv: list[str]) -> str | None:
    """The ``--flink_master`` of ``argv`` when it names a cluster (not the embedded
    ``[local]`` or ``[auto]``), else ``None``."""
    for arg in argv:
        if arg.startswith("--flink_master="):
            master = arg.split("=", 1)[1]
            return None if master in ("[local]", "[auto]", "") else master
    return None


def cluster_job_server(argv: list[str]) -> bool:
    """Whether a FlinkRunner run of ``argv`` submits through the Flink cluster's
    long-lived job server (``FLINK_JOB_PORT``): it names a cluster and neither a job
    server (``--job_endpoint``) nor a jar to start one from (``--flink_job_server_jar``)."""
    return (
        flink_cluster_master(argv) is not None
        and not _given(argv, "--job_endpoint")
        and not _given(argv, "--flink_job_server_jar")
    )


def runner_flag(runner: str, arg: str) -> bool:
    """Whether ``arg`` is a flag that ``runner``'s job server takes."""
    return runner == "FlinkRunner" and arg.split("=", 1)[0] in FLINK_FLAGS


class RunnerSetupError(RuntimeError):
    """A runner's local part is missing; the message says how to install it."""


def _given(argv: list[str], flag: str) -> bool:
    return any(arg == flag or arg.startswith(flag + "=") for arg in argv)


def preset_flags(
    runner: str,
    argv: list[str],
    unbounded: bool,
    state_dir: pathlib.Path | None = None,
    job_name: str | None = None,
    detach: bool = False,
) -> list[str]:
    """The Beam flags ``runner`` needs that ``argv`` does not already set.

    ``state_dir``: where an unbounded Flink job keeps its checkpoints (files).
    ``job_name``: the name a Flink cluster knows the job by (the driver stops it
    there by that name).  ``detach``: the job server submits a cluster job and
    returns (``--attached_mode``: false) instead of watching it to its end.
    """
    presets: list[tuple[str, str | None]] = []
    if runner == "PrismRunner":
        location = os.environ.get("BEAMLINE_PRISM", str(PRISM_BINARY))
        if not _given(argv, "--prism_location") and not pathlib.Path(location).is_file():
            raise RunnerSetupError(
                f"Prism is not installed at {location}: run ./run_local.sh setup "
                "(it builds Prism with go install)"
            )
        presets += [("--prism_location", location), ("--environment_type", "LOOPBACK")]
    if runner == "FlinkRunner":
        if cluster_job_server(argv):
            # The cluster's long-lived job server (scripts/flink.sh): this driver
            # starts no JVM of its own to translate and submit the job.
            presets.append(("--job_endpoint", f"127.0.0.1:{FLINK_JOB_PORT}"))
        else:
            jar = flink_job_server_jar()
            if not _given(argv, "--flink_job_server_jar") and not jar.is_file():
                raise RunnerSetupError(
                    f"Beam's Flink job server is not staged at {jar}: run ./run_local.sh setup"
                )
            presets.append(("--flink_job_server_jar", str(jar)))
        if flink_cluster_master(argv) is None:
            presets += [("--flink_master", "[local]"), ("--environment_type", "LOOPBACK")]
        else:
            # A cluster's TaskManager asks the stack's worker pool for Python workers,
            # one per slot, and never reaches back into this driver.
            presets += [
                ("--environment_type", "EXTERNAL"),
                ("--environment_config", f"127.0.0.1:{PYTHON_WORKERS_PORT}"),
                ("--sdk_worker_parallelism", "2"),
            ]
            if job_name is not None:
                presets.append(("--job_name", job_name))
            if detach:
                # A bare flag: the portable runner turns a job-server boolean whose
                # default is true into store_false, so this sets attachedMode=false.
                presets.append(("--attached_mode", None))
    # Flink streams bounded reads too: its batch mode ran the same 21,000-record
    # backlog in 471 s instead of 66 s (the bench, 20,000 events), the stateful
    # stages' bundles being cut per key.  A streaming job over a bounded read ends
    # when the read does.
    if (unbounded and runner == "PrismRunner") or runner == "FlinkRunner":
        presets.append(("--streaming", None))
    if runner == "FlinkRunner":
        # Flink cuts a bundle at 1,000 *elements* (or 1 s), and an element is now a
        # batch of up to 2,000 records: 1,000 of them in one bundle ran the
        # TaskManager out of heap at parallelism 1 (bench run c858fb00ce6d).
        presets.append(("--max_bundle_size", str(FLINK_MAX_BUNDLE_ELEMENTS)))
    if unbounded and runner == "FlinkRunner":
        presets += [
            ("--checkpointing_interval", "5000"),
            ("--finish_bundle_before_checkpointing", None),
        ]
        if state_dir is not None:
            presets += [
                ("--state_backend", "filesystem"),
                ("--state_backend_storage_path", state_dir.resolve().as_uri()),
            ]
    if runner == "DataflowRunner":
        presets.append(("--setup_file", str(REPO_ROOT / "setup.py")))
        if unbounded:
            presets.append(("--streaming", None))
    flags = []
    for flag, value in presets:
        if not _given(argv, flag):
            flags.append(flag if value is None else f"{flag}={value}")
    return flags
