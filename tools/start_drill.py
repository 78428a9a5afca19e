"""A start drill: does a streaming job's data reach PostgreSQL each time it starts?

    python -m tools.start_drill [--runner FlinkRunner] [--runs 10] [-- <run flags>]

The drill makes a fresh topic, puts ``--backlog`` customer events in it, then starts
the streaming job ``--runs`` times over that topic from offset 0, each run with
its own run id.  A run passes when its first event row is in PostgreSQL within
``--deadline_s`` seconds of the job saying it streams; then it is stopped with
SIGINT, as a person would.  A run that stalls keeps its driver log (and the job
server's, which the driver prints) under ``.beamline/logs/start-drill-*.log``.

It prints one JSON line per run and a summary; the exit code is 1 if any run
stalled or failed to stop.  Needs the stack (``./run_local.sh start``).  It is a
drill, not a CI step: ten Flink starts took about seven minutes here.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import uuid

from beam_pipeline.progress import rows_so_far
from beam_pipeline.settings import REPO_ROOT, StackSettings
from tools.event_producer import generate, send_batch
from tools.stack import create_topics, delete_topics

__all__ = ["main"]

_STARTED = "streaming from"


def _wait_for(condition, deadline_s: float) -> float | None:
    """Seconds until ``condition()`` held, polled every 0.5 s; None at the deadline."""
    start = time.monotonic()
    while time.monotonic() - start < deadline_s:
        if condition():
            return time.monotonic() - start
        time.sleep(0.5)
    return None


def _one_run(settings, topic: str, runner: str, extra: list[str], deadline_s: float) -> dict:
    run_id = f"drill{uuid.uuid4().hex[:7]}"
    log_path = settings.home / "logs" / f"start-drill-{run_id}.log"
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as output_dir, open(log_path, "w") as log:
        job = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "run",
                f"--runner={runner}",
                f"--kafka_topic={topic}",
                "--kafka_start_offsets="
                + ",".join(f"{p}=0" for p in range(settings.kafka_partitions)),
                f"--run_id={run_id}",
                f"--output_dir={output_dir}",
                *extra,
            ],
            cwd=REPO_ROOT,
            stdout=log,
            stderr=subprocess.STDOUT,
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
        )
        try:
            started_s = _wait_for(
                lambda: job.poll() is not None or _STARTED in log_path.read_text(), 240
            )
            first_row_s = None
            if job.poll() is None and started_s is not None:
                first_row_s = _wait_for(
                    lambda: rows_so_far(settings, run_id)["events"] > 0, deadline_s
                )
            job.send_signal(signal.SIGINT)
            stop_s = _wait_for(lambda: job.poll() is not None, 90)
            code = job.returncode if stop_s is not None else "killed: no stop within 90 s"
        finally:
            if job.poll() is None:
                job.kill()
                job.wait()
    if first_row_s is not None and code == 0:
        log_path.unlink()
        log_path = None
    return {
        "run_id": run_id,
        "job_started_s": None if started_s is None else round(started_s, 1),
        "first_row_s": None if first_row_s is None else round(first_row_s, 1),
        "stop_s": None if stop_s is None else round(stop_s, 1),
        "exit": code,
        "log": None if log_path is None else str(log_path),
    }


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m tools.start_drill",
        description="Start a streaming job N times; count the runs whose data reached PostgreSQL.",
    )
    parser.add_argument("--runner", default="FlinkRunner")
    parser.add_argument("--runs", type=int, default=10)
    parser.add_argument("--backlog", type=int, default=900, help="events in the topic")
    parser.add_argument("--deadline_s", type=float, default=60.0)
    parser.add_argument("extra", nargs=argparse.REMAINDER, help="-- then flags for python -m run")
    args = parser.parse_args(argv)
    extra = args.extra[1:] if args.extra[:1] == ["--"] else args.extra

    settings = StackSettings.from_env()
    topic = f"start_drill_{uuid.uuid4().hex[:8]}"
    create_topics(settings.kafka_bootstrap_servers, [topic], settings.kafka_partitions)
    try:
        batch = generate(args.backlog, "drill", 1, time.time_ns() // 1_000_000)
        send_batch(settings.kafka_bootstrap_servers, topic, batch, "drill", 1, 0)
        results = []
        for _ in range(args.runs):
            result = _one_run(settings, topic, args.runner, extra, args.deadline_s)
            print(json.dumps(result), flush=True)
            results.append(result)
    finally:
        delete_topics(settings.kafka_bootstrap_servers, [topic])

    reached = [r["first_row_s"] for r in results if r["first_row_s"] is not None]
    clean = [r for r in results if r["exit"] == 0]
    summary = (
        f"{args.runner}: {len(reached)} of {len(results)} runs wrote rows within "
        f"{args.deadline_s:.0f} s of starting to stream; {len(clean)} stopped cleanly"
    )
    if reached:
        summary += (
            f"; first row after {statistics.median(reached):.1f} s median "
            f"({min(reached):.1f}-{max(reached):.1f})"
        )
    print(summary)
    return 0 if len(reached) == len(clean) == len(results) else 1


if __name__ == "__main__":
    sys.exit(main())
