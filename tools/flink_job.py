"""``./run_local.sh flink stop-job RUN_ID``: stop a run's job on the Flink cluster with
a savepoint, and say how to resume it.

The savepoint holds the job's state (the Kafka read's offsets, dedup's ids, the
windows' counts); ``python -m run … --run_id=RUN_ID --savepoint_path=<location>``
with the run's other flags resumes it where it stopped.
"""

from __future__ import annotations

import argparse
import sys

from beam_pipeline import flink_cluster
from beam_pipeline.identifiers import ConfigError, check_run_id
from beam_pipeline.runners import FLINK_REST_PORT
from beam_pipeline.settings import StackSettings


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="./run_local.sh flink stop-job")
    parser.add_argument("run_id")
    parser.add_argument("--flink_master", default=f"127.0.0.1:{FLINK_REST_PORT}")
    args = parser.parse_args(argv)
    try:
        run_id = check_run_id(args.run_id)
    except ConfigError as e:
        print(f"beamline: error: {e}", file=sys.stderr)
        return 2
    target = (StackSettings.from_env().home / "flink" / "state" / "savepoints").resolve()
    try:
        location = flink_cluster.stop_with_savepoint(
            args.flink_master, flink_cluster.job_name(run_id), target.as_uri()
        )
    except (flink_cluster.SavepointError, OSError) as e:
        print(f"beamline: error: {e}", file=sys.stderr)
        return 1
    print(f"run {run_id}: stopped with a savepoint at {location}")
    print(f"resume: python -m run <the run's flags> --run_id={run_id} --savepoint_path={location}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
