"""Beam's Python worker pool for EXTERNAL environments, on the loopback address.

The standalone Flink cluster (``./run_local.sh flink start``) runs a job's Python
stages in SDK workers that this pool starts, one process each, when the
TaskManager asks (``--environment_type=EXTERNAL --environment_config=<pool>``).
Beam's ``worker_pool_main`` binds every interface; ``loopback_servers`` makes it
bind ``127.0.0.1``.  The pool starts each worker as ``python -c …``: the stack puts
the project's environment first on ``PATH``.
"""

from __future__ import annotations

import sys

from apache_beam.runners.worker import worker_pool_main

from beam_pipeline import loopback_servers


def main(argv: list[str] | None = None) -> None:
    loopback_servers.install()
    worker_pool_main.main(sys.argv if argv is None else argv)


if __name__ == "__main__":
    main()
