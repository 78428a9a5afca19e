"""One benchmark: the records, the Beamline run, its reconciliation, the two baselines.

``run_bench`` produces the records to a fresh topic, runs Beamline over exactly
their offsets (measured by ``bench_measure``), reconciles the run as ``main_job``
does, runs baselines A and B on the same records (``bench_baselines``) and prints
the figures (``bench_report``) only when the run balances and both baselines'
counts match the producer's report (``verdict``, ``baseline_problems``).
"""

from __future__ import annotations

import json
import logging
import pathlib
import secrets
import shutil
import sys
import tempfile
import time
import typing

import psycopg2

from beam_pipeline.errors import print_error
from beam_pipeline.runners import runner_flags
from beam_pipeline.settings import StackSettings
from datasets.customer_events import CONTRACT, DATASET
from tools import bench_baselines, ledger, reconcile
from tools.bench_measure import run_beamline
from tools.bench_report import build_figures, render
from tools.event_producer import BatchSpec, send_batch
from tools.main_job.config import run_flags_for

__all__ = [
    "FAULTS",
    "RATE_PER_S",
    "baseline_problems",
    "beamline_command",
    "parallelism_of",
    "run_bench",
    "verdict",
]

_LOG = logging.getLogger(__name__)

# The standard fault mix of ./run_local.sh on the DirectRunner (nothing is late there).
FAULTS = {"malformed": 0.02, "invalid": 0.02, "duplicates": 0.05, "out_of_order": 0.01, "late": 0.0}
RATE_PER_S = 100.0  # events per second of event time, as main_job's default


def run_bench(args, settings: StackSettings, run_id: str, topic: str) -> int:
    """Runs one benchmark on ``topic`` (created by the caller) under ``run_id``, with
    the flags ``args`` of ``bench.parse_args``; returns the exit code (0 figures
    printed and recorded in the ledger; 1 the run failed, did not balance, or a
    baseline's counts are off; 2 too few ``--events`` for the fault mix), each
    reason one line on stderr."""
    seed = args.seed if args.seed is not None else secrets.randbelow(2**31)
    start_ms = time.time_ns() // 1_000_000
    spec = BatchSpec(args.events, rate_per_s=RATE_PER_S, value_format=args.value_format, **FAULTS)
    try:
        batch = spec.generate(run_id, seed, start_ms)
    except ValueError as e:  # the batch cannot hold the fault mix (too few events)
        print_error(f"--events {args.events}: {e}")
        return 2
    report = send_batch(settings.kafka_bootstrap_servers, topic, batch, run_id, seed, start_ms)
    del batch  # the records are in Kafka now; the baselines read them from there
    output_dir = pathlib.Path(args.output_dir)
    run_dir = output_dir / run_id
    run_dir.mkdir(parents=True, exist_ok=True)
    (run_dir / reconcile.REPORT_NAME).write_text(json.dumps(report, indent=2) + "\n")
    _LOG.info(
        "run %s: produced %s %s records to %s (seed %s; injected %s)",
        run_id,
        f"{report['sent']:,}",
        args.value_format,
        topic,
        seed,
        json.dumps(report["injected"]),
    )

    log_path = run_dir / "beamline.log"
    _LOG.info("run %s: Beamline on the %s (output in %s)", run_id, args.runner, log_path)
    command = beamline_command(args, run_id, topic, report)
    run = run_beamline(command, settings, run_id, log_path)
    lines = log_path.read_text(errors="replace").strip().splitlines()
    if run.exit_code != 0:
        for line in lines[-5:]:
            print(f"  {line}", file=sys.stderr)
        return _fail(*verdict(run.exit_code, []))
    summary = next((x for x in reversed(lines) if x.startswith(f"run {run_id}: DONE")), None)
    _LOG.info("%s", summary or f"run {run_id}: Beamline done in {run.wall_s:.1f} s")
    terms, results = reconcile.reconcile(DATASET, run_id, report, output_dir, settings)
    code, reasons = verdict(run.exit_code, results)
    if code:
        return _fail(code, [*reasons, f"run {run_id} does not balance: no figures"])
    _LOG.info("run %s: all %d checks pass", run_id, len(results))

    window_s = CONTRACT.aggregates[0].window_s
    parquet_dir = pathlib.Path(tempfile.mkdtemp(prefix="bench_a_", dir=run_dir))
    try:
        _LOG.info("run %s: baseline A (one consumer, Parquet + PostgreSQL)", run_id)
        a = bench_baselines.run_consumer_baseline(
            settings.kafka_bootstrap_servers,
            topic,
            _ranges(report),
            run_id,
            args.value_format,
            window_s,
            settings.psycopg2_kwargs(),
            parquet_dir,
        )
    finally:
        shutil.rmtree(parquet_dir, ignore_errors=True)
        connection = psycopg2.connect(**settings.psycopg2_kwargs())
        try:
            bench_baselines.drop_baseline_tables(connection)
        finally:
            connection.close()
    problems = baseline_problems("A", a.outcome.summary(), report, a.table_rows)
    _LOG.info("run %s: baseline B (the same step in memory)", run_id)
    b = bench_baselines.run_memory_baseline(a.records, run_id, args.value_format, window_s)
    problems += baseline_problems("B", b.outcome.summary(), report)
    code, reasons = verdict(run.exit_code, results, problems)
    if code:
        return _fail(code, [*reasons, "a baseline's counts are off: no figures"])
    figures = build_figures(
        run_id=run_id,
        runner=args.runner,
        parallelism=parallelism_of(command),
        events=args.events,
        report=report,
        beamline=run,
        a_wall_s=a.wall_s,
        b_wall_s=b.wall_s,
    )
    print(render(figures), flush=True)
    ledger.record(settings, "bench", **figures)
    return 0


def verdict(
    exit_code: int,
    results: typing.Sequence[reconcile.Check],
    problems: typing.Sequence[str] = (),
) -> tuple[int, list[str]]:
    """Whether the figures may be printed: ``(0, [])``, else an exit code and why.

    A Beamline run that failed keeps its exit code; a run with any failing
    reconciliation check, or a baseline with a ``problem``, exits 1.  Figures of a
    run that does not balance would measure a pipeline that lost or repeated data.
    """
    if exit_code != 0:
        return exit_code, [f"the Beamline run failed (exit code {exit_code})"]
    failed = [f"check failed: {c.name}: {c.detail}" for c in results if not c.passed]
    if failed or not results:
        return 1, failed or ["no reconciliation checks ran"]
    if problems:
        return 1, list(problems)
    return 0, []


def baseline_problems(
    name: str,
    summary: typing.Mapping[str, int],
    report: typing.Mapping,
    table_rows: typing.Mapping[str, int] | None = None,
) -> list[str]:
    """Where a baseline's counts differ from what the producer's report predicts.

    Expected, as the reconciliation's terms: every record sent is processed;
    unique events = ``injected.valid_unique``; duplicates = ``injected.duplicates``;
    dead letters = ``injected.malformed + injected.invalid``; the windowed total =
    the unique events (nothing is late).  With ``table_rows`` (baseline A), the
    rows its tables hold must be those counts too.
    """
    injected = report["injected"]
    expected = {
        "records": report["sent"],
        "valid_unique": injected["valid_unique"],
        "duplicates": injected["duplicates"],
        "dead_letters": injected["malformed"] + injected["invalid"],
        "gold_total": injected["valid_unique"] - injected.get("late", 0),
    }
    problems = [
        f"baseline {name}: {term} is {summary.get(term)}, the producer's report says {value}"
        for term, value in expected.items()
        if summary.get(term) != value
    ]
    for term, rows in (table_rows or {}).items():
        want = expected.get("valid_unique" if term == "events" else term)
        if want is not None and rows != want:
            problems.append(f"baseline {name}: table {term} holds {rows} rows, expected {want}")
    return problems


def beamline_command(args, run_id: str, topic: str, report: dict) -> list[str]:
    """``python -m run`` on ``--runner`` (its preset, with ``--parallelism``), with the
    flags the main job passes for a bounded run over the report's offsets; any other
    flag of the bench's goes to ``python -m run`` too, as with ./run_local.sh."""
    return [
        sys.executable,
        "-m",
        "run",
        *runner_flags(args.runner, args.parallelism),
        *run_flags_for(
            run_id=run_id,
            dataset=DATASET.name,
            topic=topic,
            value_format=args.value_format,
            start=report["offsets_before"],
            stop=report["offsets_after"],
            output_dir=args.output_dir,
            extra=args.run_flags,
        ),
    ]


def parallelism_of(command: typing.Sequence[str]) -> int | None:
    """The ``--parallelism`` that ``command`` asks for (its last), or None: the runner's
    default."""
    given = [arg.split("=", 1)[1] for arg in command if arg.startswith("--parallelism=")]
    return int(given[-1]) if given else None


def _ranges(report: dict) -> dict[int, tuple[int, int]]:
    before, after = report["offsets_before"], report["offsets_after"]
    return {int(p): (int(before.get(p, 0)), int(end)) for p, end in after.items()}


def _fail(code: int, reasons: list[str]) -> int:
    for reason in reasons:
        print_error(reason)
    return code
