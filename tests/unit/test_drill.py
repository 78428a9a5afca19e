"""The fault drills: when a fault is due, and the summary line's lost and doubled counts."""

import dataclasses
import time

import pytest

from tests.unit.test_reconcile import BALANCED
from tools import drill, main_job
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
    run = main_job._prepare(["--runner", "flink", "--late_copies", "0.01"])
    assert "--dedup_ttl_s=40" in run.run_flags
    assert run.args.late_copy_after_s == 75.0
    assert run.batch.injected.late_copies == 100
    given = main_job._prepare(["--runner", "flink", "--late_copies", "0.01", "--dedup_ttl_s=50"])
    assert [f for f in given.run_flags if f.startswith("--dedup_ttl_s")] == ["--dedup_ttl_s=50"]
    assert given.args.late_copy_after_s == 85.0
    assert main_job._prepare(["--runner", "flink"]).batch.injected.late_copies == 0


def test_late_copies_need_a_streaming_runner(capsys):
    with pytest.raises(SystemExit) as exited:
        main_job._prepare(["--runner", "direct", "--late_copies", "0.01"])
    assert exited.value.code == 2
    assert "--late_copies needs a streaming runner" in capsys.readouterr().err
