"""The main job behind ``./run_local.sh``: produce a run's events, process them, reconcile.

1. generate ``--events`` records of the dataset with injected faults (2% malformed,
   2% invalid, 5% duplicated by default) under a new ``run_id``, send them to the
   topic and keep the producer's report in ``<output>/<run_id>/producer.json``;
2. run the DAG (``python -m run``) over exactly the run's offsets: from the
   report's offsets before the send to those after it, partition by partition
   (with ``--runner`` prism, flink or flink-cluster: a streaming job on a live
   feed, until the run balances);
3. reconcile the run from its sinks and print the table.

Flags this package does not know go to ``python -m run`` unchanged.  Exit code: the
pipeline's if it failed, else 1 if a reconciliation check failed, else 0.

Modules: ``config`` (the flags, the settled ``Run``, the flags of ``python -m
run``), ``streaming`` (the live run, in named steps), ``outcome`` (the report kept,
the reconciliation printed, the ledger's line), ``command`` (``main`` and the
drills' ``stream``).
"""

from __future__ import annotations

from tools.main_job.command import main, stream
from tools.main_job.config import CLUSTER_MASTER, RUNNERS, Run, make_parser, prepare
from tools.main_job.streaming import Fault, Feed, StreamingJob, StreamOutcome

__all__ = [
    "CLUSTER_MASTER",
    "RUNNERS",
    "Fault",
    "Feed",
    "Run",
    "StreamOutcome",
    "StreamingJob",
    "main",
    "make_parser",
    "prepare",
    "stream",
]
