"""Beam's Python worker pool for EXTERNAL environments, on the loopback address,
with a state cache in every worker it starts.

The standalone Flink cluster (``./run_local.sh flink start``) runs a job's Python
stages in SDK workers that this pool starts, one process each, when the
TaskManager asks (``--environment_type=EXTERNAL --environment_config=<pool>``).
Beam's ``worker_pool_main`` binds every interface; ``loopback_servers`` makes it
bind ``127.0.0.1``.  The pool starts each worker as ``python -c …``: the stack puts
the project's environment first on ``PATH``.

Beam's ``worker_pool_main`` starts its workers with no state cache
(``state_cache_size=0``, and no flag to change it; a pipeline's
``--max_cache_memory_usage_mb`` never reaches a worker the pool starts, whose
``SdkHarness`` gets the pool's size): every read of keyed state, dedup's included,
is then a round trip to the runner.  This pool gives each worker
``--state_cache_mb`` (default 100, what Beam gives a worker it starts itself); the
pool's log (each line timed) shows it in each worker's command line.
"""

from __future__ import annotations

import argparse
import logging
import sys

from apache_beam.runners.worker import worker_pool_main

from beam_pipeline import loopback_servers

__all__ = ["STATE_CACHE_MB", "main", "parse_args"]

_LOG = logging.getLogger(__name__)

STATE_CACHE_MB = 100  # sdk_worker_main's default for --max_cache_memory_usage_mb


def parse_args(argv: list[str]) -> argparse.Namespace:
    """``--service_port`` (required) and ``--state_cache_mb`` (default ``STATE_CACHE_MB``)."""
    parser = argparse.ArgumentParser(prog="python -m beam_pipeline.worker_pool")
    parser.add_argument("--service_port", type=int, required=True)
    parser.add_argument("--state_cache_mb", type=int, default=STATE_CACHE_MB)
    args = parser.parse_args(argv)
    if args.state_cache_mb < 0:
        parser.error(f"--state_cache_mb must be 0 or more (got {args.state_cache_mb})")
    return args


def main(argv: list[str] | None = None) -> None:
    """Serves the pool until interrupted."""
    args = parse_args(sys.argv[1:] if argv is None else argv)
    loopback_servers.install()
    # Each line with its time (Beam's own pool logs none): when the TaskManager asked
    # for a worker is a step of a job's start-up (docs/performance.md).
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s", force=True
    )
    address, server = worker_pool_main.BeamFnExternalWorkerPoolServicer.start(
        use_process=True,
        port=args.service_port,
        state_cache_size=args.state_cache_mb << 20,  # SdkHarness takes bytes
    )
    _LOG.info(
        "Python worker pool at %s: each worker with a state cache of %d MB",
        address,
        args.state_cache_mb,
    )
    try:
        server.wait_for_termination()
    except KeyboardInterrupt:
        server.stop(0)


if __name__ == "__main__":
    main()
