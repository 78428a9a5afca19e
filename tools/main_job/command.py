"""``./run_local.sh`` (``python -m tools.main_job``) and a drill's streaming run.

``main`` prepares the run (``config.prepare``), checks Kafka, then either runs the
streaming job on a live feed (``streaming.run_streaming``) or, on the DirectRunner,
produces the records and runs ``python -m run`` over exactly their offsets in this
process.
"""

from __future__ import annotations

import argparse
import json
import time

from beam_pipeline import driver
from beam_pipeline.errors import print_error
from beam_pipeline.settings import StackSettings
from tools.main_job.config import Run, job_flags, prepare
from tools.main_job.outcome import keep_report, publish, reconcile_run
from tools.main_job.streaming import Fault, StreamOutcome, run_streaming
from tools.stack import ServiceUnavailable, check_kafka

__all__ = ["main", "stream"]


def main(argv: list[str] | None = None) -> int:
    """The main job; exit code: the pipeline's if it failed, else 1 if a
    reconciliation check failed (or Kafka is down), else 0; 2 for a bad flag."""
    run = prepare(argv)
    if not _kafka_up(run.settings):
        return 1
    if run.streaming:
        return run_streaming(run).code
    return _run_bounded(run)


def stream(argv: list[str], fault: Fault, parser: argparse.ArgumentParser) -> StreamOutcome:
    """A streaming run of the main job with a drill's ``fault`` (tools/drill.py);
    ``parser`` is the main job's (``make_parser``), with the drill's own flags added."""
    run = prepare(argv, parser)
    if not run.streaming:
        parser.error("a drill needs a streaming runner (--runner prism|flink|flink-cluster)")
    return run_streaming(run, fault) if _kafka_up(run.settings) else StreamOutcome(1, None)


def _run_bounded(run: Run) -> int:
    """Sends the records, then runs ``python -m run`` over exactly their offsets."""
    report = run.send()
    keep_report(run, report)
    print(
        f"run {run.run_id}: produced {report['sent']:,} {run.spec.value_format} records to "
        f"{run.topic} "
        f"(seed {run.seed}; injected {json.dumps(report['injected'])})",
        flush=True,
    )
    started = time.monotonic()
    code = driver.main(job_flags(run, report["offsets_before"], report["offsets_after"]))
    elapsed = time.monotonic() - started
    if code != 0:
        return code
    terms, results = reconcile_run(run, report)
    extra = {
        "events": run.spec.count,
        "pipeline_s": round(elapsed, 1),
        "records_per_s": round(report["sent"] / elapsed) if elapsed else None,
    }
    publish(run, terms, results, extra)
    return 0 if all(c.passed for c in results) else 1


def _kafka_up(settings: StackSettings) -> bool:
    try:
        check_kafka(settings.kafka_bootstrap_servers)
    except ServiceUnavailable as e:
        print_error(str(e))
        return False
    return True
