"""``./run_local.sh bench``: Beamline's throughput against two hand-written baselines.

    ./run_local.sh bench [--runner direct|prism|flink] [--events 100000] [--seed S] [--keep_topic]
                         [any flag of python -m run]

One invocation, on the same records:

1. generates ``--events`` customer events with the standard fault mix (2%
   malformed, 2% invalid, 5% duplicated, 1% out of order, none late) and sends
   them to a fresh topic ``bench_<run_id>`` (the stack's partition count; deleted
   at the end unless ``--keep_topic``), keeping the producer's report;
2. runs Beamline end to end over exactly those offsets (``python -m run`` in a
   subprocess, the flags ``main_job`` passes, on ``--runner``: a bounded backlog,
   so Flink runs it as a batch job on its embedded mini-cluster and Prism as a
   bounded pipeline), measuring its wall time, the time
   to the run's first row in PostgreSQL (start-up), the CPU seconds of each
   process of its tree and of the Kafka and PostgreSQL servers, and the tree's
   peak resident memory; then reconciles the run exactly as ``main_job`` does;
3. baseline A: one Python process that consumes the same offsets, applies the
   same per-record functions (``bench_baselines.RecordStep``) and writes Parquet
   and PostgreSQL tables of its own (``bench_a_<table>``, dropped at the end);
4. baseline B: the same step over the consumed records in memory, no I/O;
5. prints a table, then one JSON line (the last line of stdout) with every figure.

Records are everything sent: duplicates and bad records included.  A Beamline run
that fails or does not balance, or a baseline whose counts differ from the
producer's report, prints no figures and exits non-zero.

Exit codes: 0 figures printed; 1 a service is missing, the run failed or did not
balance, or a baseline's counts are off; 2 a bad flag.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import os
import pathlib
import secrets
import shutil
import subprocess
import sys
import tempfile
import threading
import time
import typing

import psycopg2

from beam_pipeline.runners import RUNNER_PRESETS
from beam_pipeline.settings import REPO_ROOT, MissingPasswordError, StackSettings
from datasets.customer_events import CONTRACT, DATASET
from schemas import tables
from tools import bench_baselines, ledger, reconcile
from tools.event_producer import BatchSpec, send_batch
from tools.peak_memory import tree_rss
from tools.stack import (
    ServiceUnavailable,
    check_kafka,
    check_postgres,
    create_topics,
    delete_topics,
)

__all__ = [
    "BeamlineRun",
    "baseline_problems",
    "build_figures",
    "main",
    "render",
    "verdict",
]

_LOG = logging.getLogger(__name__)

RUNNERS = RUNNER_PRESETS

# The standard fault mix of ./run_local.sh on the DirectRunner (nothing is late there).
FAULTS = {"malformed": 0.02, "invalid": 0.02, "duplicates": 0.05, "out_of_order": 0.01, "late": 0.0}
RATE_PER_S = 100.0  # events per second of event time, as main_job's default

SAMPLE_EVERY_S = 0.5
_TICK = os.sysconf("SC_CLK_TCK")
_MIB = 1024 * 1024


def _parser(settings: StackSettings) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="./run_local.sh bench",
        description="Beamline end to end against a hand-written consumer (A) and the same "
        "per-record work in memory (B), on the same records.",
        allow_abbrev=False,
    )
    parser.add_argument("--runner", default="direct", choices=sorted(RUNNERS))
    parser.add_argument("--events", type=int, default=100_000, help="original events to produce")
    parser.add_argument("--seed", type=int, default=None, help="default: random, reported")
    parser.add_argument(
        "--value_format", default="json", choices=("json", "avro", "avro_confluent")
    )
    parser.add_argument(
        "--keep_topic", action="store_true", help="keep the bench_<run_id> topic at the end"
    )
    parser.add_argument("--output_dir", default=str(settings.home / "output"))
    return parser


def parse_args(parser: argparse.ArgumentParser, argv: list[str]) -> argparse.Namespace:
    """The bench's flags; every other flag is kept in ``run_flags`` for ``python -m run``."""
    args, run_flags = parser.parse_known_args(argv)
    args.run_flags = run_flags
    return args


def _error(message: str) -> None:
    print(f"beamline: error: {message}", file=sys.stderr)


def _offsets(offsets: typing.Mapping) -> str:
    return ",".join(f"{p}={o}" for p, o in sorted(offsets.items(), key=lambda kv: int(kv[0])))


# --- measuring processes ---------------------------------------------------------------


def _stat(pid: int) -> list[str] | None:
    """The fields of ``/proc/<pid>/stat`` after the command name (field 3 onwards)."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return None


def _cpu_s(pid: int, reaped_children: bool = False) -> float | None:
    """utime + stime of ``pid`` in seconds (and of its reaped children, if asked)."""
    fields = _stat(pid)
    if fields is None:
        return None
    # After the name: state(3) ppid(4) … utime(14) stime(15) cutime(16) cstime(17).
    ticks = int(fields[11]) + int(fields[12])
    if reaped_children:
        ticks += int(fields[13]) + int(fields[14])
    return ticks / _TICK


def _find_pid(pidfile: pathlib.Path, needle: str) -> int | None:
    """The pid in the first line of ``pidfile``, else a process whose command line
    holds ``needle`` (``/proc``)."""
    try:
        pid = int(pidfile.read_text().split()[0])
        if _stat(pid) is not None:
            return pid
    except (OSError, ValueError, IndexError):
        pass
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/cmdline", "rb") as f:
                cmdline = f.read().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        if needle in cmdline:
            return int(entry)
    return None


def _server_cpu_s(pid: int | None) -> float | None:
    """CPU seconds a server has used so far: the process, its reaped children (a
    PostgreSQL backend that ended) and its live descendants."""
    if pid is None:
        return None
    total = _cpu_s(pid, reaped_children=True)
    if total is None:
        return None
    for child in tree_rss(pid):
        if child != pid:
            total += _cpu_s(child) or 0.0
    return total


def _service_pids(settings: StackSettings) -> dict[str, int | None]:
    pg_data = settings.home / "postgres" / "data"
    return {
        "kafka": _find_pid(settings.home / "kafka" / "kafka.pid", "kafka.Kafka"),
        "postgres": _find_pid(pg_data / "postmaster.pid", f"-D {pg_data}"),
    }


class _FirstRow:
    """Whether the run has any row yet in any of the pipeline's PostgreSQL tables."""

    def __init__(self, settings: StackSettings, run_id: str):
        self._run_id = run_id
        self._sql = "SELECT " + " OR ".join(
            f"EXISTS (SELECT 1 FROM {t.name} WHERE run_id = %(run)s)"
            for t in (*DATASET.tables.all(), *tables.SHARED)
        )
        self._connection = psycopg2.connect(**settings.psycopg2_kwargs())
        self._connection.set_session(readonly=True, autocommit=True)

    def __call__(self) -> bool:
        with self._connection.cursor() as cur:
            cur.execute(self._sql, {"run": self._run_id})
            return bool(cur.fetchone()[0])

    def close(self) -> None:
        self._connection.close()


@dataclasses.dataclass(frozen=True)
class BeamlineRun:
    """How one Beamline subprocess went.

    Attributes:
      exit_code: the subprocess's.
      wall_s: launch to exit.
      first_row_s: launch to the first row of the run in PostgreSQL, or None.
      cpu_s: ``"<process> [pid]"`` → utime + stime at its last sample (a process's
        last ≤ 0.5 s are missed when it ends between samples).
      tree_cpu_s: the subprocess and every descendant it waited for, from
        ``wait4``'s resource usage: exact, the total the samples approximate.
      peak_rss_mib: the largest sum of the tree's resident memory over the samples.
      services_cpu_s: ``kafka``/``postgres`` → CPU seconds the server used during
        the run (after − before), or None when its process was not found.
    """

    exit_code: int
    wall_s: float
    first_row_s: float | None
    cpu_s: dict
    tree_cpu_s: float
    peak_rss_mib: float
    services_cpu_s: dict


def _run_beamline(
    command: list[str], settings: StackSettings, run_id: str, log_path: pathlib.Path
) -> BeamlineRun:
    """Runs ``command`` and measures it; its output goes to ``log_path``."""
    services = _service_pids(settings)
    before = {name: _server_cpu_s(pid) for name, pid in services.items()}
    probe = _FirstRow(settings, run_id)
    cpu: dict[int, tuple[str, float]] = {}
    peak = [0]
    first_row: list[float] = []
    stop = threading.Event()
    with open(log_path, "wb") as log:
        started = time.monotonic()
        child = subprocess.Popen(command, cwd=REPO_ROOT, stdout=log, stderr=subprocess.STDOUT)

    def sample() -> None:
        while True:
            now = time.monotonic()
            tree = tree_rss(child.pid)
            peak[0] = max(peak[0], sum(rss for _, rss in tree.values()))
            for pid, (name, _) in tree.items():
                used = _cpu_s(pid)
                if used is not None:
                    cpu[pid] = (name, used)
            if not first_row:
                try:
                    if probe():
                        first_row.append(now - started)
                except psycopg2.Error as e:  # a probe must never stop the measurement
                    _LOG.debug("first-row probe failed: %s", e)
            if stop.wait(max(0.0, SAMPLE_EVERY_S - (time.monotonic() - now))):
                return

    sampler = threading.Thread(target=sample, name="bench-sampler", daemon=True)
    sampler.start()
    try:
        _, status, usage = os.wait4(child.pid, 0)
    except BaseException:
        child.terminate()
        child.wait(60)
        raise
    finally:
        ended = time.monotonic()
        stop.set()
        sampler.join(10)
    child.returncode = os.waitstatus_to_exitcode(status)
    after = {name: _server_cpu_s(pid) for name, pid in services.items()}
    try:
        if not first_row and probe():
            first_row.append(ended - started)  # rows landed after the last sample
    finally:
        probe.close()
    return BeamlineRun(
        exit_code=child.returncode,
        wall_s=ended - started,
        first_row_s=first_row[0] if first_row else None,
        cpu_s={f"{name} [{pid}]": used for pid, (name, used) in cpu.items()},
        tree_cpu_s=usage.ru_utime + usage.ru_stime,
        peak_rss_mib=peak[0] / _MIB,
        services_cpu_s={
            name: None
            if before[name] is None or after[name] is None
            else after[name] - before[name]
            for name in services
        },
    )


# --- decisions and figures (pure) ------------------------------------------------------


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


def _rate(records: int, seconds: float | None) -> float | None:
    return round(records / seconds, 1) if seconds else None


def _ratio(a: float | None, b: float | None) -> float | None:
    return round(a / b, 4) if a and b else None


def build_figures(
    *,
    run_id: str,
    runner: str,
    events: int,
    report: typing.Mapping,
    beamline: BeamlineRun,
    a_wall_s: float,
    b_wall_s: float,
) -> dict:
    """Every figure of a benchmark, as the JSON line carries them.

    Rates are records sent (duplicates and bad records included) per second of
    wall time.  Beamline's steady state is those records over the time from its
    first row in PostgreSQL to its exit; start-up is launch to first row.  Ratios
    are Beamline's rate over a baseline's (below 1: Beamline is slower).
    """
    records = report["sent"]
    startup = beamline.first_row_s
    steady = beamline.wall_s - startup if startup is not None else None
    rate = _rate(records, beamline.wall_s)
    steady_rate = _rate(records, steady)
    a_rate, b_rate = _rate(records, a_wall_s), _rate(records, b_wall_s)
    cpu = dict(sorted(beamline.cpu_s.items(), key=lambda kv: -kv[1]))
    return {
        "run_id": run_id,
        "runner": runner,
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
            "peak_rss_mib": round(beamline.peak_rss_mib),
            "tree_cpu_s": round(beamline.tree_cpu_s, 1),
            "cpu_s": {k: round(v, 1) for k, v in cpu.items()},
            "services_cpu_s": {
                k: None if v is None else round(v, 1) for k, v in beamline.services_cpu_s.items()
            },
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


def _num(value, unit: str = "", digits: int = 1) -> str:
    if value is None:
        return "n/a"
    return f"{value:,.{digits}f}{unit}"


def render(figures: typing.Mapping) -> str:
    """A table a person reads, then exactly one JSON line with every figure."""
    f, bl = figures, figures["beamline"]
    a, b, r = figures["baseline_a"], figures["baseline_b"], figures["ratios"]
    lines = [
        f"Benchmark {f['run_id']}: {f['records']:,} records ({f['events']:,} events + faults, "
        f"{f['value_format']}, seed {f['seed']}) on topic {f['topic']}, runner {f['runner']}",
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
        f"  steady-state ratios: {_num(r['steady_over_a'], digits=3)} of A, "
        f"{_num(r['steady_over_b'], digits=3)} of B",
        f"  peak RSS of the Beamline process tree: {_num(bl['peak_rss_mib'], ' MiB', 0)}",
        f"  CPU seconds, Beamline tree (wait4): {_num(bl['tree_cpu_s'], ' s')}; per process "
        "(last 0.5 s sample):",
    ]
    lines += [f"    {seconds:>8,.1f} s  {name}" for name, seconds in bl["cpu_s"].items()]
    for name, seconds in bl["services_cpu_s"].items():
        lines.append(f"    {_num(seconds):>8} s  {name} server (during the run)")
    lines.append(json.dumps(figures, separators=(",", ":")))
    return "\n".join(lines)


# --- the benchmark ---------------------------------------------------------------------


def _beamline_command(args, run_id: str, topic: str, report: dict) -> list[str]:
    """``python -m run`` with the flags ``main_job.main`` passes for a bounded run."""
    return [
        sys.executable,
        "-m",
        "run",
        *RUNNERS[args.runner],
        f"--run_id={run_id}",
        f"--kafka_topic={topic}",
        f"--value_format={args.value_format}",
        f"--kafka_start_offsets={_offsets(report['offsets_before'])}",
        f"--kafka_stop_offsets={_offsets(report['offsets_after'])}",
        f"--output_dir={args.output_dir}",
        *args.run_flags,  # any other flag goes to python -m run, as with ./run_local.sh
    ]


def _ranges(report: dict) -> dict[int, tuple[int, int]]:
    before, after = report["offsets_before"], report["offsets_after"]
    return {int(p): (int(before.get(p, 0)), int(end)) for p, end in after.items()}


def _fail(code: int, reasons: list[str]) -> int:
    for reason in reasons:
        _error(reason)
    return code


def _bench(args, settings: StackSettings, run_id: str, topic: str) -> int:
    seed = args.seed if args.seed is not None else secrets.randbelow(2**31)
    start_ms = time.time_ns() // 1_000_000
    spec = BatchSpec(args.events, rate_per_s=RATE_PER_S, value_format=args.value_format, **FAULTS)
    try:
        batch = spec.generate(run_id, seed, start_ms)
    except ValueError as e:  # the batch cannot hold the fault mix (too few events)
        _error(f"--events {args.events}: {e}")
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
    run = _run_beamline(_beamline_command(args, run_id, topic, report), settings, run_id, log_path)
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
        events=args.events,
        report=report,
        beamline=run,
        a_wall_s=a.wall_s,
        b_wall_s=b.wall_s,
    )
    print(render(figures), flush=True)
    ledger.record(settings, "bench", **figures)
    return 0


def main(argv: list[str] | None = None) -> int:
    """Runs one benchmark; see the module docstring for what and the exit codes."""
    # force: importing Beam has configured the root logger already.  Under
    # ``python -m`` this module's logger is ``__main__``, hence both names.
    logging.basicConfig(level=logging.WARNING, format="[bench] %(message)s", force=True)
    for name in ("beam_pipeline", __name__):
        logging.getLogger(name).setLevel(logging.INFO)
    settings = StackSettings.from_env()
    parser = _parser(settings)
    args = parse_args(parser, sys.argv[1:] if argv is None else argv)
    if args.events <= 0:
        parser.error(f"--events must be a positive number (got {args.events})")
    args.output_dir = str(pathlib.Path(args.output_dir).resolve())
    try:
        check_kafka(settings.kafka_bootstrap_servers)
        check_postgres(settings)
    except (ServiceUnavailable, MissingPasswordError) as e:
        _error(str(e))
        return 1
    run_id = secrets.token_hex(6)
    topic = f"bench_{run_id}"
    create_topics(settings.kafka_bootstrap_servers, [topic], partitions=settings.kafka_partitions)
    try:
        return _bench(args, settings, run_id, topic)
    finally:
        if args.keep_topic:
            _LOG.info("topic %s kept", topic)
        else:
            delete_topics(settings.kafka_bootstrap_servers, [topic])


if __name__ == "__main__":
    sys.exit(main())
