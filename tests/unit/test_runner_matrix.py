"""The runner matrix: newest line per cell, its cells, and docs/runners.md holding what
the committed lines give."""

import pathlib

import pytest

from tools import ledger, runner_matrix

pytestmark = pytest.mark.unit

TERMS = {"produced": 1050, "late": 10, "injected_late": 10, "duplicates": 50}
CHECKS = {runner_matrix._DEDUP: True, runner_matrix._LATE: True}


def _main(runner, at, run_id="r1", passed=True, **extra):
    return {
        "kind": "main",
        "at": at,
        "runner": runner,
        "run_id": run_id,
        "passed": passed,
        "terms": TERMS,
        "checks": CHECKS,
        "run_s": 99.5,
        **extra,
    }


def _row(table: str, label: str) -> list[str]:
    line = next(x for x in table.splitlines() if x.startswith(f"| {label} |"))
    return [cell.strip() for cell in line.strip("|").split("|")]


def test_the_newest_line_of_a_cell_wins_and_other_cells_stay():
    lines = [
        _main("prism", "2026-12-01T10:00:00+00:00", run_id="old"),
        _main("prism", "2026-12-03T10:00:00+00:00", run_id="new"),
        _main("flink", "2026-12-02T10:00:00+00:00", run_id="fl"),
        {"kind": "bench", "at": "2026-12-02T11:00:00+00:00", "runner": "unknown"},
        {"kind": "other", "at": "2026-12-02T11:00:00+00:00"},
    ]
    assert [x["run_id"] for x in runner_matrix.select(lines)] == ["fl", "new"]


def test_a_streaming_run_shows_its_late_lane_dedup_and_commits():
    table = runner_matrix.render(
        [_main("flink-cluster", "2026-12-03T10:00:00+00:00", offsets_committed=1040)]
    )
    row = _row(table, runner_matrix.RUNNERS["flink-cluster"])
    assert row[1:5] == [
        "PASS: 1,050 records, 99.5 s (run `r1`)",
        "exact: 10 of 10",
        "exact: 50",
        "1,040 of 1,050 at the stop",
    ]
    assert row[5:] == ["not run", "not run", "not run"]


def test_a_run_with_late_copies_reads_its_late_check_by_its_longer_name():
    # With copies after the dedup TTL the check is "late == injected … + late_copies".
    checks = {runner_matrix._DEDUP: True, runner_matrix._LATE + " + late_copies": True}
    terms = {**TERMS, "late": 13, "late_copies": 3}
    line = _main("flink", "2026-12-03T10:00:00+00:00", checks=checks, terms=terms)
    table = runner_matrix.render([line])
    assert _row(table, runner_matrix.RUNNERS["flink"])[2] == "exact: 13 of 10 + 3 late copies"
    checks[runner_matrix._LATE + " + late_copies"] = False
    table = runner_matrix.render([line])
    assert _row(table, runner_matrix.RUNNERS["flink"])[2] == "off: 13 of 10 + 3 late copies"


def test_a_bounded_run_has_no_late_lane_and_no_group():
    table = runner_matrix.render(
        [_main("direct", "2026-12-03T10:00:00+00:00", passed=False, pipeline_s=12.0)]
    )
    row = _row(table, runner_matrix.RUNNERS["direct"])
    assert row[1].startswith("FAIL: 1,050 records")
    assert row[2].startswith("n/a") and row[4].startswith("n/a")


def test_drills_and_the_bench_fill_their_own_cells():
    drill = {
        "kind": "drill",
        "at": "2026-12-03T10:00:00+00:00",
        "runner": "flink-cluster",
        "drill": "taskmanager-kill",
        "run_id": "d1",
        "passed": False,
        "lost": 0,
        "written_twice": 12,
        "produced": 6300,
    }
    bench = {
        "kind": "bench",
        "at": "2026-12-03T10:00:00+00:00",
        "runner": "flink-cluster",
        "events": 20000,
        "beamline": {"records_per_s": 152.6},
        "ratios": {"beamline_over_a": 0.0704},
    }
    row = _row(runner_matrix.render([drill, bench]), runner_matrix.RUNNERS["flink-cluster"])
    assert row[5] == "not run"
    assert row[6] == "FAIL: lost 0, twice 12 of 6,300 (run `d1`)"
    assert row[7] == "153 (0.070), 20,000 events"


def test_the_drill_table_counts_every_run_of_a_drill_and_shows_the_newest():
    lines = [
        {
            "kind": "drill",
            "at": f"2026-12-0{3 + i}T10:00:00+00:00",
            "runner": "flink-cluster",
            "drill": drill,
            "run_id": f"d{i}",
            "at_share": 0.4,
            "early": early,
            "passed": passed,
            **dict.fromkeys(("produced", "landed", "dead_lettered", "duplicates"), 10),
            "late": 1,
            "lost": 0,
            "written_twice": i,
        }
        for i, (drill, early, passed) in enumerate(
            [
                ("stop-resume", False, True),
                ("taskmanager-kill", False, True),
                ("stop-resume", True, False),
            ]
        )
    ]
    # d0 again, as the committed lines and the ledger both hold it: one run, not two.
    rows = runner_matrix.render_drills([*lines, dict(lines[0])], since="").splitlines()[2:]
    assert rows == [
        "| `taskmanager-kill` | flink-cluster | 1/1 PASS | PASS, `d1`, 2026-12-04 | "
        "40% of the feed | 10 | 10 | 10 | 10 | 1 | 0 | 1 |",
        "| `stop-resume` | flink-cluster | 1/2 PASS | FAIL, `d2`, 2026-12-05 | "
        "40% of the feed, during start-up | 10 | 10 | 10 | 10 | 1 | 0 | 2 |",
    ]
    # Runs judged before the checks became exact (issue 23) are not counted.
    rows = runner_matrix.render_drills(lines, since="2026-12-04T00:00:00+00:00").splitlines()
    assert [r.split(" | ")[2] for r in rows[2:]] == ["1/1 PASS", "0/1 PASS"]
    # The runner matrix's own drill cells still show the newest run only.
    row = _row(runner_matrix.render(lines), runner_matrix.RUNNERS["flink-cluster"])
    assert row[5].endswith("(run `d2`)") and row[6].endswith("(run `d1`)")


def test_splice_replaces_only_the_text_between_the_markers():
    page = f"intro\n{runner_matrix.BEGIN}\nold table\n{runner_matrix.END}\nafter\n"
    assert runner_matrix.splice(page, "| new |") == (
        f"intro\n{runner_matrix.BEGIN}\n| new |\n{runner_matrix.END}\nafter\n"
    )
    with pytest.raises(ValueError, match="markers"):
        runner_matrix.splice("no markers here", "| new |")


def test_the_runners_page_holds_what_the_committed_lines_give():
    page = runner_matrix.PAGE.read_text()
    assert runner_matrix.SOURCE.exists()
    lines = ledger.read(runner_matrix.SOURCE)
    assert runner_matrix.generated_page(page, lines) == page


def test_the_generated_tables_are_on_the_runners_page_only():
    # The README links to the page; a second copy of a table there would drift.
    readme = (pathlib.Path(__file__).parents[2] / "README.md").read_text()
    page = runner_matrix.PAGE.read_text()
    for marker in (runner_matrix.BEGIN, runner_matrix.DRILLS_BEGIN):
        assert marker in page
        assert marker not in readme
    assert "docs/runners.md" in readme


def test_a_ledger_line_keeps_its_kind_and_time(tmp_path, monkeypatch):
    from beam_pipeline.settings import StackSettings

    monkeypatch.setenv("BEAMLINE_LEDGER", "on")  # the suite turns it off (conftest)
    settings = StackSettings.from_env({"BEAMLINE_HOME": str(tmp_path)})
    first = ledger.record(settings, "main", run_id="r1")
    ledger.record(settings, "drill", run_id="r2")
    assert [x["run_id"] for x in ledger.read(ledger.ledger_path(settings))] == ["r1", "r2"]
    assert first["at"].endswith("+00:00")
    with pytest.raises(ValueError, match="kind and at"):
        ledger.record(settings, "drill", at=0.4)
    assert ledger.read(tmp_path / "none.jsonl") == []
    monkeypatch.setenv("BEAMLINE_LEDGER", "off")
    ledger.record(settings, "main", run_id="r3")
    assert len(ledger.read(ledger.ledger_path(settings))) == 2
