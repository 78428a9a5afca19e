"""The fault drills: when a fault is due, and the summary line's lost and doubled counts."""

import dataclasses
import time

import pytest

from tests.unit.test_reconcile import BALANCED
from tools import drill, main_job
from tools.main_job.config import job_flags
from tools.reconcile import OffsetAudit

pytestmark = pytest.mark.unit

# A balanced run (the reconciliation's tests): 90 landed, 6 duplicates, 4 dead letters, 2 late.
TERMS = BALANCED
EXACT = OffsetAudit(expected=100, found=100, missing=0, unexpected=0, repeated=0)


def _feed(fraction: float, events: int) -> main_job.Feed:
    """A feed of 100 s that is ``fraction`` through, with ``events`` rows written."""
    start_ms = round((time.time() - fraction * 100) * 1000)
    return main_job.Feed("r1", start_ms, 100.0, lambda: {"events": events})


def test_a_fault_waits_for_its_share_of_the_feed_and_for_rows():
    fault = drill.StopAndResume(at=0.4, early=False)
    assert not fault.due(_feed(0.2, events=50))
    assert not fault.due(_feed(0.5, events=0))  # the job is not up yet
    assert fault.due(_feed(0.5, events=1))


def test_an_early_fault_does_not_wait_for_rows():
    assert drill.KillTaskManager(at=0.1, early=True).due(_feed(0.2, events=0))


def test_a_feed_before_its_first_event_is_at_zero_and_ends_at_one():
    future = main_job.Feed("r1", round(time.time() * 1000) + 60_000, 100.0, dict)
    assert future.fraction_sent() == 0.0
    assert _feed(3.0, 0).fraction_sent() == 1.0


def test_summary_passes_a_run_that_lost_and_doubled_nothing():
    line = drill.summary("stop-resume", drill.tally(TERMS, EXACT), passed=True)
    assert line == (
        "drill stop-resume: produced 100, landed 90, dead-lettered 4, duplicates 6, late 2, "
        "lost 0, written twice 0 — PASS"
    )


def test_summary_counts_missing_offsets_as_lost():
    audit = dataclasses.replace(EXACT, found=97, missing=3)
    line = drill.summary("x", drill.tally(TERMS, audit), passed=True)
    assert "lost 3, written twice 0 — FAIL" in line


def test_summary_counts_parquet_rows_beyond_postgres_and_repeated_offsets_as_twice():
    terms = dataclasses.replace(TERMS, parquet_events=95)
    audit = dataclasses.replace(EXACT, found=102, repeated=2)
    assert "written twice 7 — FAIL" in drill.summary("x", drill.tally(terms, audit), passed=True)


def test_summary_fails_when_the_reconciliation_failed():
    assert drill.summary("x", drill.tally(TERMS, EXACT), passed=False).endswith("FAIL")


def test_summary_names_late_copies_and_does_not_count_their_parquet_rows_twice():
    # Three copies after their ids' dedup TTL: three Parquet rows beyond PostgreSQL's,
    # each a late copy by rule, none written twice; a fourth extra row still is.
    from tests.unit.test_reconcile import LATE_COPIES

    exact = dataclasses.replace(EXACT, expected=103, found=103)
    line = drill.summary("x", drill.tally(LATE_COPIES, exact), passed=True)
    assert line == (
        "drill x: produced 103, landed 90, dead-lettered 4, duplicates 6, late 5, "
        "late copies 3, lost 0, written twice 0 — PASS"
    )
    extra = dataclasses.replace(LATE_COPIES, parquet_events=94)
    assert "written twice 1 — FAIL" in drill.summary("x", drill.tally(extra, exact), True)


def test_late_copies_shorten_the_dedup_ttl_and_come_after_it():
    # Streaming defaults: windows of 10 s, 30 s of lateness, so the TTL defaults to
    # 40 s when copies are asked for; each copy comes 40 + 5 (watermark delay) + 30 s
    # behind.  A TTL given on the command line is kept.
    run = main_job.prepare(["--runner", "flink", "--late_copies", "0.01"])
    assert "--dedup_ttl_s=40" in run.run_flags
    assert run.spec.late_copy_after_ms == 75_000
    assert run.batch.injected.late_copies == 100
    given = main_job.prepare(["--runner", "flink", "--late_copies", "0.01", "--dedup_ttl_s=50"])
    assert [f for f in given.run_flags if f.startswith("--dedup_ttl_s")] == ["--dedup_ttl_s=50"]
    assert given.spec.late_copy_after_ms == 85_000
    assert main_job.prepare(["--runner", "flink"]).batch.injected.late_copies == 0


def test_late_copies_need_a_streaming_runner(capsys):
    with pytest.raises(SystemExit) as exited:
        main_job.prepare(["--runner", "direct", "--late_copies", "0.01"])
    assert exited.value.code == 2
    assert "--late_copies needs a streaming runner" in capsys.readouterr().err


@pytest.mark.parametrize(
    "argv, late, late_shift_ms",
    [
        # DirectRunner: nothing is ever late.
        ([], 0.0, 0),
        # Streaming: 1% late by default, sent 10 (window) + 30 (lateness) + 5
        # (watermark delay) + 30 (margin) s behind; the job's own flags move it.
        (["--runner", "prism"], 0.01, 75_000),
        (["--runner", "prism", "--late", "0.02", "--window_size_s=60"], 0.02, 125_000),
    ],
)
def test_a_run_settles_its_late_events_from_the_runner_and_the_jobs_flags(
    argv, late, late_shift_ms
):
    run = main_job.prepare([*argv, "--events", "2000", "--rate", "10"])
    assert (run.spec.late, run.spec.late_shift_ms) == (late, late_shift_ms)
    assert run.topic == "customer_events" and run.spec.count == 2000


def test_python_m_run_gets_the_runs_offsets_and_then_the_flags_passed_through():
    run = main_job.prepare(["--kafka_topic", "t1", "--dataset", "events", "--window_size_s=60"])
    flags = job_flags(run, {1: 7, 0: 5}, {0: 9, 1: 8})
    assert flags == [
        f"--run_id={run.run_id}",
        "--dataset=events",
        "--kafka_topic=t1",
        "--value_format=json",
        "--kafka_start_offsets=0=5,1=7",
        "--kafka_stop_offsets=0=9,1=8",
        f"--output_dir={run.output_dir}",
        "--window_size_s=60",
    ]
    assert "--kafka_stop_offsets=0=9,1=8" not in job_flags(run, {0: 5})


class _Process:
    """A driver that runs until it is sent Ctrl-C, or ends by itself after 50 polls."""

    def __init__(self):
        self.code, self.polls = None, 0

    def poll(self):
        self.polls += 1
        if self.polls > 50 and self.code is None:
            self.code = 0
        return self.code

    def send_signal(self, sig):
        self.code = 0

    def wait(self, timeout_s):
        return self.code if self.code is not None else 0


class _DueFault:
    def __init__(self, due: bool, raises: bool = False):
        self._due, self._raises, self.injected = due, raises, 0

    def due(self, feed):
        return self._due

    def inject(self, job, feed):
        self.injected += 1
        if self._raises:
            raise OSError("no such service")


@pytest.mark.parametrize(
    "fault, balanced, code, recorded",
    [
        (None, True, 0, True),  # the main job's own run: balanced, in the ledger
        (None, False, 1, True),  # not balanced after settle_s
        (_DueFault(due=True), True, 0, False),  # a drill records its own line
        (_DueFault(due=False), True, 1, False),  # never injected: the drill fails
        (_DueFault(due=True, raises=True), True, 1, False),  # its injection failed
    ],
)
def test_a_streaming_run_ends_with_the_right_code(
    monkeypatch, tmp_path, fault, balanced, code, recorded
):
    from types import SimpleNamespace

    from tools.main_job import streaming

    monkeypatch.setattr(streaming, "POLL_S", 0)
    monkeypatch.setattr(streaming, "end_offsets", lambda servers, topic: {0: 0})
    monkeypatch.setattr(
        streaming.StreamingJob, "start", lambda job, extra=(): setattr(job, "process", _Process())
    )
    report = {"run_id": "r", "topic": "t", "offsets_before": {"0": 0}, "offsets_after": {"0": 9}}
    monkeypatch.setattr(main_job.Run, "send", lambda run, live, stop: report)
    checks = [SimpleNamespace(name="balance", passed=balanced)]
    monkeypatch.setattr(streaming, "reconcile_run", lambda run, rep: (None, checks))
    monkeypatch.setattr(streaming, "committed", lambda run, rep: 9)
    published = []
    monkeypatch.setattr(
        streaming, "publish", lambda run, terms, results, extra, record: published.append(record)
    )
    argv = ["--runner", "prism", "--events", "50", "--late", "0", "--settle_s", "0"]
    run = main_job.prepare([*argv, "--output_dir", str(tmp_path)])
    outcome = streaming.run_streaming(run, fault)
    assert (outcome.code, outcome.report, published) == (code, report, [recorded])
    assert (run.run_dir / "producer.json").exists()
    if fault is not None:
        assert fault.injected == (1 if fault._due else 0)
        # A fault never injected, or whose injection raised, says so (drill all's cell).
        assert bool(outcome.fault_problem) == (code == 1)


def test_ctrl_c_in_a_streaming_run_reaches_an_outer_handler_of_ours_only():
    import signal
    import threading

    from tools.main_job import streaming

    heard, event = [], threading.Event()
    previous = signal.signal(signal.SIGINT, lambda *_: heard.append("outer"))
    try:
        with streaming._ctrl_c_sets(event):
            signal.getsignal(signal.SIGINT)(signal.SIGINT, None)
        assert event.is_set() and heard == ["outer"]
        signal.signal(signal.SIGINT, signal.default_int_handler)
        with streaming._ctrl_c_sets(inner := threading.Event()):
            signal.getsignal(signal.SIGINT)(signal.SIGINT, None)  # no KeyboardInterrupt
        assert inner.is_set()
    finally:
        signal.signal(signal.SIGINT, previous)


# drill all / --seeds: the series, with the single-drill runner a fake (no services).

from tools import drill_series  # noqa: E402
from tools.drill_series import DrillResult  # noqa: E402

COUNTS = {"produced": 100, "lost": 0, "written twice": 0, "late": 2}


def _passed(name, seed):
    return DrillResult(name, seed, True, COUNTS, injected_late=2, run_id=f"{name}-{seed}")


class _Fake:
    """The single-drill runner: records its calls; ``outcomes`` maps (drill, seed) to
    a result, an exception to raise, or a callable run in its place."""

    def __init__(self, **outcomes):
        self.calls, self.outcomes = [], outcomes

    def __call__(self, name, seed):
        self.calls.append((name, seed))
        outcome = self.outcomes.get(f"{name}/{seed}")
        if isinstance(outcome, BaseException):
            raise outcome
        if callable(outcome):
            outcome()
        return outcome if isinstance(outcome, DrillResult) else _passed(name, seed)


@pytest.mark.parametrize(
    "count, first, seeds",
    [(3, None, [1, 2, 3]), (2, 10, [10, 11]), (1, 0, [0])],
)
def test_the_seeds_of_a_series_start_at_seed_and_count_up(count, first, seeds):
    assert drill_series.seeds(count, first) == seeds


def test_a_series_needs_at_least_one_seed(capsys):
    with pytest.raises(ValueError, match="at least 1"):
        drill_series.seeds(0, None)
    with pytest.raises(SystemExit) as exited:
        drill.main(["all", "--seeds", "0"], run_one=_Fake())
    assert exited.value.code == 2 and "--seeds" in capsys.readouterr().err


def test_drill_all_runs_every_drill_with_every_seed_in_order_and_passes(capsys):
    fake = _Fake()
    assert drill.main(["all", "--seeds", "2", "--events", "500"], run_one=fake) == 0
    assert fake.calls == [(d, s) for d in drill.DRILLS for s in (1, 2)]
    out = capsys.readouterr().out
    assert "seeds 1, 2 (--seed and the ones after it)" in out
    assert out.rstrip().endswith("12 of 12 drill runs passed")


def test_a_failing_or_raising_drill_is_a_fail_cell_and_the_series_goes_on(capsys):
    lost = DrillResult("stop-resume", 2, False, {**COUNTS, "lost": 3}, injected_late=2)
    fake = _Fake(**{"stop-resume/2": lost, "broker-restart/1": OSError("no such service\nmore")})
    assert drill.main(["all", "--seeds", "2"], run_one=fake) == 1
    assert len(fake.calls) == 12  # every run ran
    table = capsys.readouterr().out.splitlines()[-8:]
    assert table[0].split() == ["drill", "seed", "1", "seed", "2"]
    assert table[1].startswith("stop-resume       PASS lost 0, twice 0, late 2 of 2")
    assert table[1].endswith("FAIL lost 3, twice 0, late 2 of 2")
    assert "FAIL: raised OSError: no such service" in table[3]
    assert table[-1] == "10 of 12 drill runs passed"


def test_seeds_work_with_one_drill_from_seed():
    fake = _Fake()
    assert drill.main(["taskmanager-kill", "--seeds", "3", "--seed", "7"], run_one=fake) == 0
    assert fake.calls == [("taskmanager-kill", 7), ("taskmanager-kill", 8), ("taskmanager-kill", 9)]


def test_one_drill_without_seeds_runs_once_with_its_own_exit_code_and_no_table(capsys):
    failed = DrillResult("poison-burst", None, False, reason="x", code=3)
    fake = _Fake(**{"poison-burst/None": failed})
    assert drill.main(["poison-burst"], run_one=fake) == 3
    assert fake.calls == [("poison-burst", None)]
    assert "drill runs passed" not in capsys.readouterr().out


def test_ctrl_c_stops_the_series_after_the_current_run_and_prints_what_ran(capsys):
    import signal

    def ctrl_c():  # what SIGINT runs while a drill is running
        signal.getsignal(signal.SIGINT)(signal.SIGINT, None)

    fake = _Fake(**{"stop-resume/2": ctrl_c})
    assert drill.main(["all", "--seeds", "2"], run_one=fake) == 1
    assert fake.calls == [("stop-resume", 1), ("stop-resume", 2)]
    out = capsys.readouterr().out.splitlines()
    assert out[-1] == "2 of 2 drill runs passed (stopped after 2 of 12 planned)"
    assert out[-2].startswith("schema-drift") and out[-2].count("(not run)") == 2
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler  # restored


def test_ctrl_c_twice_ends_the_current_run_as_a_fail():
    runs = drill_series.plan(["a", "b"], [1])
    results = drill_series.run_series(runs, _Fake(**{"a/1": KeyboardInterrupt()}))
    assert [(r.drill, r.passed, r.reason) for r in results] == [
        ("a", False, "interrupted (Ctrl-C)")
    ]
    assert drill_series.exit_code(runs, results) == 1


def test_the_table_puts_drills_down_and_seeds_across():
    runs = drill_series.plan(["stop-resume", "postgres-down"], [1, 2])
    results = [
        _passed("stop-resume", 1),
        DrillResult("stop-resume", 2, False, COUNTS, 2, reason="the job exited 1"),
        DrillResult.raised("postgres-down", 1, OSError("no such service")),
    ]
    assert drill_series.render(runs, results) == (
        # Each column as wide as its widest cell, two spaces between.
        "drill          seed 1                                 seed 2\n"
        "stop-resume    PASS lost 0, twice 0, late 2 of 2      "
        "FAIL lost 0, twice 0, late 2 of 2: the job exited 1\n"
        "postgres-down  FAIL: raised OSError: no such service  (not run)\n"
        "1 of 3 drill runs passed (stopped after 3 of 4 planned)"
    )
    assert drill_series.exit_code(runs, results) == 1
    assert drill_series.exit_code(runs[:1], results[:1]) == 0


def test_run_drill_passes_its_seed_and_fault_flags_and_returns_its_outcome(monkeypatch):
    from types import SimpleNamespace

    from beam_pipeline.settings import StackSettings

    sent = []
    outcome = main_job.StreamOutcome(0, {"run_id": "r9", "dataset": "events", "seed": 5})
    monkeypatch.setattr(main_job, "stream", lambda argv, f, p: sent.append(argv) or outcome)
    monkeypatch.setattr(drill.datasets, "get", lambda name: name)
    gathered = SimpleNamespace(terms=TERMS, audit=EXACT)
    monkeypatch.setattr(drill.reconcile, "gather", lambda *a: gathered)
    parser = drill.make_parser(StackSettings.from_env())
    argv = ["all", "--seed", "1"]
    result = drill.run_drill("poison-burst", argv, parser, seed=5)
    assert sent == [[*argv, "--seed=5", "--malformed=0.05", "--invalid=0.05"]]
    assert (result.passed, result.seed, result.run_id, result.code) == (True, 5, "r9", 0)
    assert result.cell() == "PASS lost 0, twice 0, late 2 of 2"
    # The run whose fault failed before anything was reconciled: a FAIL with its reason.
    outcome = main_job.StreamOutcome(1, None, fault_problem="the drill's fault failed: boom")
    failed = drill.run_drill("postgres-down", argv, parser, seed=6)
    assert failed.cell() == "FAIL: the drill's fault failed: boom"
    assert failed.code == 1
