"""The run's one summary line: its end state, its rate and what it counted.

A bounded run's numbers are the job's counters (Beam metrics); a streaming run's are
the rows that reached the sinks, as a cancelled streaming job's counters are partial
or absent on portable runners (Flink reports none).
"""

from __future__ import annotations

import logging

import apache_beam as beam

from beam_pipeline.progress import rows_so_far
from beam_pipeline.settings import StackSettings
from schemas.dataset import Dataset

__all__ = ["SUMMARY_COUNTERS", "run_counts", "summary_line"]

_LOG = logging.getLogger(__name__)

# The counters of the summary line, in the order of the graph.  "step/name" counts
# only in steps whose name holds "step" (CountPerWindow's counters exist in the
# event counts and in the stage counts).
SUMMARY_COUNTERS = (
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


def run_counts(
    result, settings: StackSettings, dataset: Dataset, run_id: str, unbounded: bool
) -> dict[str, int]:
    """The summary line's numbers: the sinks' rows (``rows <output>``) for an unbounded
    run, else ``SUMMARY_COUNTERS`` by their last name.  Never raises: a runner without
    metrics gives zeros, unreachable sinks an empty mapping (a warning is logged)."""
    return _sink_rows(settings, dataset, run_id) if unbounded else _counters(result)


def summary_line(
    run_id: str,
    state: str,
    elapsed_s: float,
    counts: dict[str, int],
    unbounded: bool,
    output_prefix: str,
) -> str:
    """``run <id>: <state> in <s> s[, <rate> records/s]; <name> <value>, …; Parquet under …``.

    The rate is of ``records_read`` and only for a bounded run: a streaming job's
    rate would mostly measure how long it waited for data.
    """
    read = counts.get("records_read", 0)
    rate = f", {read / elapsed_s:,.0f} records/s" if elapsed_s > 0 and not unbounded else ""
    return (
        f"run {run_id}: {state} in {elapsed_s:.1f} s{rate}; "
        + ", ".join(f"{name} {value}" for name, value in counts.items())
        + f"; Parquet under {output_prefix}/"
    )


def _counter(result, name: str) -> int:
    step, _, name = name.rpartition("/")
    wanted = beam.metrics.MetricsFilter().with_name(name)
    if step:
        wanted = wanted.with_step(step)
    counters = result.metrics().query(wanted)["counters"]
    return sum(c.committed or c.attempted or 0 for c in counters)


def _counters(result) -> dict[str, int]:
    try:
        return {name.rpartition("/")[2]: _counter(result, name) for name in SUMMARY_COUNTERS}
    except Exception as e:  # noqa: BLE001 - a runner without metrics still ends cleanly
        _LOG.warning("no counters from the runner: %s", e)
        return dict.fromkeys((name.rpartition("/")[2] for name in SUMMARY_COUNTERS), 0)


def _sink_rows(settings: StackSettings, dataset: Dataset, run_id: str) -> dict[str, int]:
    try:
        return {f"rows {k}": v for k, v in rows_so_far(settings, dataset, run_id).items()}
    except Exception as e:  # noqa: BLE001 - the summary line must still print
        _LOG.warning("cannot count the sinks' rows: %s", e)
        return {}
