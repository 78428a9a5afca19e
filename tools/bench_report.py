"""The bench's figures: every number of one benchmark, the table and the JSON line."""

from __future__ import annotations

import json
import typing

from tools.bench_measure import BeamlineRun

__all__ = ["PHASES", "build_figures", "render"]

# The run's phases, one after another: name, label, and the ``BeamlineRun`` moments
# (seconds from the launch) it goes from and to; None is the launch, the submission.
PHASES = (
    ("submit_to_job_visible", "submit → job visible", None, "job_visible_s"),
    ("job_visible_to_first_row", "job visible → first row", "job_visible_s", "first_row_s"),
    ("first_row_to_last_row", "first row → last row", "first_row_s", "last_row_s"),
    ("last_row_to_exit", "last row → exit", "last_row_s", "wall_s"),
)


def build_figures(
    *,
    run_id: str,
    runner: str,
    parallelism: int | None,
    events: int,
    report: typing.Mapping,
    beamline: BeamlineRun,
    a_wall_s: float,
    b_wall_s: float,
) -> dict:
    """Every figure of a benchmark, as the JSON line carries them.

    Rates are records sent (duplicates and bad records included) per second of
    wall time.  Beamline's steady state is those records over the time from its
    first row in PostgreSQL to its exit; start-up is launch to first row.  The
    phases (``PHASES``) split the run at the moments the bench saw; ``writing`` is
    the records over first row → last row.  Ratios are Beamline's rate over a
    baseline's (below 1: Beamline is slower).  ``job`` is the shape of the job on a
    Flink cluster (``flink_cluster.job_shape``), with the elements that crossed between
    its vertices per record sent; None on the other runners.
    """
    records = report["sent"]
    startup = beamline.first_row_s
    steady = beamline.wall_s - startup if startup is not None else None
    rate = _rate(records, beamline.wall_s)
    steady_rate = _rate(records, steady)
    a_rate, b_rate = _rate(records, a_wall_s), _rate(records, b_wall_s)
    cpu = dict(sorted(beamline.cpu_s.items(), key=lambda kv: -kv[1]))
    roles = dict(sorted(beamline.role_cpu_s.items(), key=lambda kv: -kv[1]))
    phases = _phases(beamline)
    shape = beamline.shape
    return {
        "run_id": run_id,
        "runner": runner,
        "parallelism": parallelism,
        "events": events,
        "records": records,
        "seed": report["seed"],
        "value_format": report["value_format"],
        "topic": report["topic"],
        "beamline": {
            "wall_s": round(beamline.wall_s, 2),
            "records_per_s": rate,
            "startup_s": None if startup is None else round(startup, 2),
            "steady_s": None if steady is None else round(steady, 2),
            "steady_records_per_s": steady_rate,
            "phases_s": {k: None if v is None else round(v, 2) for k, v in phases.items()},
            "writing_records_per_s": _rate(records, phases["first_row_to_last_row"]),
            "peak_rss_mib": round(beamline.peak_rss_mib),
            "tree_cpu_s": round(beamline.tree_cpu_s, 1),
            "role_cpu_s": {k: round(v, 1) for k, v in roles.items()},
            "cpu_s": {k: round(v, 1) for k, v in cpu.items()},
            "services_cpu_s": {
                k: None if v is None else round(v, 1) for k, v in beamline.services_cpu_s.items()
            },
        },
        "job": None
        if shape is None
        else {
            "vertices": shape.vertices,
            "operators": shape.operators,
            "sdk_stages": shape.sdk_stages,
            "edge_elements": shape.edge_elements,
            "elements_per_record": shape.elements_per_record(records),
        },
        "baseline_a": {"wall_s": round(a_wall_s, 2), "records_per_s": a_rate},
        "baseline_b": {"wall_s": round(b_wall_s, 3), "records_per_s": b_rate},
        "ratios": {
            "beamline_over_a": _ratio(rate, a_rate),
            "beamline_over_b": _ratio(rate, b_rate),
            "steady_over_a": _ratio(steady_rate, a_rate),
            "steady_over_b": _ratio(steady_rate, b_rate),
        },
    }


def render(figures: typing.Mapping) -> str:
    """A table a person reads, then exactly one JSON line with every figure."""
    f, bl = figures, figures["beamline"]
    a, b, r = figures["baseline_a"], figures["baseline_b"], figures["ratios"]
    lines = [
        f"Benchmark {f['run_id']}: {f['records']:,} records ({f['events']:,} events + faults, "
        f"{f['value_format']}, seed {f['seed']}) on topic {f['topic']}, runner {f['runner']}"
        + (f", parallelism {f['parallelism']}" if f["parallelism"] else ""),
        "",
        f"  {'':<34} {'wall s':>10} {'records/s':>12} {'Beamline ÷':>11}",
        f"  {'Beamline, end to end':<34} {_num(bl['wall_s'], digits=2):>10} "
        f"{_num(bl['records_per_s']):>12} {'':>11}",
        f"  {'Beamline, steady (first row→exit)':<34} {_num(bl['steady_s'], digits=2):>10} "
        f"{_num(bl['steady_records_per_s']):>12} {'':>11}",
        f"  {'A: one consumer, Parquet + PG':<34} {_num(a['wall_s'], digits=2):>10} "
        f"{_num(a['records_per_s']):>12} {_num(r['beamline_over_a'], digits=3):>11}",
        f"  {'B: per-record work in memory':<34} {_num(b['wall_s'], digits=3):>10} "
        f"{_num(b['records_per_s']):>12} {_num(r['beamline_over_b'], digits=3):>11}",
        "",
        f"  Beamline start-up (launch → first row in PostgreSQL): {_num(bl['startup_s'], ' s', 2)}",
        *_phase_lines(bl),
        f"  steady-state ratios: {_num(r['steady_over_a'], digits=3)} of A, "
        f"{_num(r['steady_over_b'], digits=3)} of B",
        *_job_lines(figures["job"]),
        f"  peak RSS of the Beamline process tree: {_num(bl['peak_rss_mib'], ' MiB', 0)}",
        f"  CPU seconds, Beamline tree (wait4): {_num(bl['tree_cpu_s'], ' s')}; by role, sampled "
        "every 0.5 s",
        "  (the tree and, on a Flink cluster, the cluster's processes):",
    ]
    lines += [f"    {seconds:>8,.1f} s  {role}" for role, seconds in bl["role_cpu_s"].items()]
    lines.append("  per process (its last sample):")
    lines += [f"    {seconds:>8,.1f} s  {name}" for name, seconds in bl["cpu_s"].items()]
    for name, seconds in bl["services_cpu_s"].items():
        lines.append(f"    {_num(seconds):>8} s  {name} server (during the run)")
    lines.append(json.dumps(figures, separators=(",", ":")))
    return "\n".join(lines)


def _job_lines(job: typing.Mapping | None) -> list[str]:
    """The job's shape on a Flink cluster, one line (none elsewhere)."""
    if job is None:
        return []
    return [
        f"  Flink job: {job['vertices']} vertices, {job['operators']} chained operators "
        f"({job['sdk_stages']} Beam stages); {job['edge_elements']:,} elements between "
        f"vertices, {_num(job['elements_per_record'], digits=2)} per record"
    ]


def _phase_lines(beamline: typing.Mapping) -> list[str]:
    """The phases' seconds, and the records per second of first row → last row."""
    lines = [f"  {'phases (ends sampled every 0.5 s; last row: its written_at)':<59} s  records/s"]
    for name, label, _, _ in PHASES:
        line = f"    {label:<50} {_num(beamline['phases_s'][name], digits=2):>8}"
        if name == "first_row_to_last_row":
            line += f" {_num(beamline['writing_records_per_s']):>10}"
        lines.append(line)
    return lines


def _phases(run: BeamlineRun) -> dict[str, float | None]:
    """Each of ``PHASES`` in seconds; None where the bench did not see one of its ends."""
    phases = {}
    for name, _, start, end in PHASES:
        begun = 0.0 if start is None else getattr(run, start)
        ended = getattr(run, end)
        phases[name] = None if begun is None or ended is None else ended - begun
    return phases


def _rate(records: int, seconds: float | None) -> float | None:
    return round(records / seconds, 1) if seconds else None


def _ratio(a: float | None, b: float | None) -> float | None:
    return round(a / b, 4) if a and b else None


def _num(value, unit: str = "", digits: int = 1) -> str:
    if value is None:
        return "n/a"
    return f"{value:,.{digits}f}{unit}"
