"""Beam's Java side for local runners: one long-lived expansion service.

Cross-language transforms (``ReadFromKafka``, the PostgreSQL writer) are expanded by a
Java expansion service, and on local runners their Java code runs in a Java SDK
worker.  Without Docker, that worker is the loopback worker the expansion service
itself hosts (``--alsoStartLoopbackWorker``); the service is started with a
default environment of ``EXTERNAL`` at its own address, so that every runner,
including those that prefer Docker, sends the Java stages to it.

The service must outlive the job: it is started before the pipeline is built and
stopped after the job has finished or been cancelled.  ``with beam.Pipeline()``
with Beam's default ``BeamJarExpansionService`` stops the JVM when the block exits,
and needs a shaded jar from Maven that is not reachable here; hence this module.

Classpath: the folder ``run_local.sh setup`` staged in Beam's jar cache
(``~/.apache_beam/cache/jars/beamline-expansion-service-<beam version>/``).
Nothing is downloaded at run time.
"""

from __future__ import annotations

import contextlib
import ctypes
import logging
import os
import pathlib
import shutil
import signal
import socket
import subprocess
import sys
import time

import apache_beam

__all__ = ["JAVA_SDK_IMAGE", "ExpansionServiceError", "JavaExpansionService", "staged_classpath"]

_LOG = logging.getLogger(__name__)

# Beam's ExpansionService behind a loopback-only server that serves only staged files
# (java/expansion-service, LoopbackExpansionServer.java): Beam's own main binds every
# interface and returns any file a client names.
_MAIN_CLASS = "dev.beamline.xlang.LoopbackExpansionServer"
_PR_SET_PDEATHSIG = 1  # <linux/prctl.h>
_STAGED_JAR = f"beamline-expansion-service-{apache_beam.__version__}.jar"
# The Java SDK container Dataflow runs the Java stages in (Beam's own image for Java 17).
JAVA_SDK_IMAGE = f"apache/beam_java17_sdk:{apache_beam.__version__}"


class ExpansionServiceError(RuntimeError):
    """The expansion service is not staged, or did not start; the message says why."""


def staged_classpath(version: str = apache_beam.__version__) -> pathlib.Path:
    """The folder of jars that ``run_local.sh setup`` staged for this Beam version."""
    cache = pathlib.Path(
        os.environ.get("BEAM_JAR_CACHE", pathlib.Path.home() / ".apache_beam" / "cache" / "jars")
    )
    folder = cache / f"beamline-expansion-service-{version}"
    if not (folder / f"beamline-expansion-service-{version}.jar").is_file():
        raise ExpansionServiceError(
            f"Beam's Java side is not staged in {folder}: run ./run_local.sh setup"
        )
    return folder


def _die_with_parent() -> None:
    """In the child before exec: SIGTERM it when the thread that started it dies (Linux).

    A driver killed with SIGKILL never reaches ``stop()``; without this its JVM, whose
    loopback worker still reads Kafka and writes PostgreSQL, lives on as an orphan
    (seen: one at 56% of a core for five minutes after a test killed its driver).
    """
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)


def _free_port() -> int:
    with contextlib.closing(socket.socket(socket.AF_INET, socket.SOCK_STREAM)) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _java() -> str:
    java_home = os.environ.get("JAVA_HOME")
    if java_home and (pathlib.Path(java_home) / "bin" / "java").exists():
        return str(pathlib.Path(java_home) / "bin" / "java")
    java = shutil.which("java")
    if not java:
        raise ExpansionServiceError("Java is not installed: install a JDK 17 or set JAVA_HOME")
    return java


class JavaExpansionService:
    """A Java expansion service with its own loopback Java worker, as a context manager.

    Usage::

        with JavaExpansionService(log_dir) as service:
            ReadFromKafka(..., expansion_service=service.address)

    Args:
      log_dir: where the JVM's output goes (``expansion-service-<port>.log``).
      port: the port to listen on; 0 picks a free loopback port.
      heap: the JVM's maximum heap (``-Xmx``).
      java_image: expand for workers elsewhere (Dataflow): the Java stages get a
        ``DOCKER`` environment of this image with every jar of the classpath as
        artifacts, and no loopback worker is started.  ``None``: this JVM is the
        Java worker (``EXTERNAL``), as on every local runner.
      worker_heap: run each Java worker in a JVM of its own with this heap, ended
        with its job (``ProcessWorkerPool.java``), instead of a thread of this JVM
        that outlives it: for a service that outlives its jobs (the cluster's).
    """

    def __init__(
        self,
        log_dir: pathlib.Path,
        port: int = 0,
        heap: str = "2g",
        java_image: str | None = None,
        worker_heap: str | None = None,
    ):
        self._log_dir = pathlib.Path(log_dir)
        self._port = port or _free_port()
        self._heap = heap
        self._java_image = java_image
        self._worker_heap = worker_heap
        self._process: subprocess.Popen | None = None
        self.log_path = self._log_dir / f"expansion-service-{self._port}.log"

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self._port}"

    def command(self) -> list[str]:
        classpath = staged_classpath()
        pool = [f"-Dbeamline.workerHeap={self._worker_heap}"] if self._worker_heap else []
        head = [_java(), f"-Xmx{self._heap}", *pool, "-cp", f"{classpath}/*", _MAIN_CLASS]
        head.append(str(self._port))
        if self._java_image is not None:
            # Remote workers have none of this machine's jars: they get all of them.
            jars = ",".join(str(jar) for jar in sorted(classpath.glob("*.jar")))
            return [
                *head,
                "--defaultEnvironmentType=DOCKER",
                f"--defaultEnvironmentConfig={self._java_image}",
                f"--filesToStage={jars}",
            ]
        return [
            *head,
            "--alsoStartLoopbackWorker",
            "--defaultEnvironmentType=EXTERNAL",
            f"--defaultEnvironmentConfig={self.address}",
            # The environment's artifacts: by default the service lists its whole
            # classpath (140 jars, 140 MB), and the Python SDK fetches and hashes
            # every one of them into a temp folder for *each* cross-language transform
            # (seven in the graph: 9.2 s of a 10.8 s graph build).  The EXTERNAL worker
            # is this JVM and has the classpath already, so one small jar is staged.
            f"--filesToStage={classpath / _STAGED_JAR}",
        ]

    def start(self, timeout_s: float = 60.0) -> JavaExpansionService:
        command = self.command()
        self._log_dir.mkdir(parents=True, exist_ok=True)
        log_file = open(self.log_path, "ab")  # noqa: SIM115 - closed with the process
        _LOG.info(
            "starting the Java expansion service at %s (log: %s)", self.address, self.log_path
        )
        self._process = subprocess.Popen(
            command,
            stdout=log_file,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            preexec_fn=_die_with_parent,
        )
        log_file.close()
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self._process.poll() is not None:
                raise ExpansionServiceError(
                    f"the Java expansion service exited with code {self._process.returncode} "
                    f"while starting (see {self.log_path})"
                )
            with (
                contextlib.suppress(OSError),
                socket.create_connection(("127.0.0.1", self._port), timeout=1),
            ):
                return self
            time.sleep(0.2)
        self.stop()
        raise ExpansionServiceError(
            f"the Java expansion service did not listen on {self.address} within "
            f"{timeout_s:.0f} s (see {self.log_path})"
        )

    def alive(self) -> bool:
        """Whether the JVM started by ``start()`` is still running."""
        return self._process is not None and self._process.poll() is None

    def stop(self) -> None:
        if self._process is None or self._process.poll() is not None:
            return
        self._process.terminate()
        try:
            self._process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self._process.kill()
            self._process.wait()
        _LOG.info("stopped the Java expansion service at %s", self.address)

    def __enter__(self) -> JavaExpansionService:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()


def main(argv: list[str] | None = None) -> int:
    """``python -m beam_pipeline.java_services --port=N``: one expansion service (and
    its Java worker pool) that outlives the drivers using it, until SIGTERM.  The
    standalone Flink cluster's jobs run their Java stages in its workers, one JVM
    per worker, each ended with its job."""
    import argparse
    import threading

    from beam_pipeline.settings import StackSettings

    parser = argparse.ArgumentParser(prog="python -m beam_pipeline.java_services")
    parser.add_argument("--port", type=int, required=True)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    try:
        service = JavaExpansionService(
            StackSettings.from_env().home / "logs", args.port, heap="1g", worker_heap="2g"
        ).start()
    except ExpansionServiceError as e:
        print(f"beamline: error: {e}", file=sys.stderr)
        return 1
    try:
        while not stop.wait(1.0):
            if not service.alive():
                print(f"beamline: error: the JVM exited (see {service.log_path})", file=sys.stderr)
                return 1
    finally:
        service.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
