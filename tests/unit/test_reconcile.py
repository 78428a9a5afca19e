"""The reconciliation's checks and offset audit fail when a term or an offset is off."""

import dataclasses
import json

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

import datasets
from datasets.customer_events import DATASET
from tools.reconcile import Terms, audit_offsets, checks, render, window_balance
from tools.reconcile import main as reconcile_main
from tools.reconcile.balance import final_panes
from tools.reconcile.parquet import parquet_row_count, parquet_rows

pytestmark = pytest.mark.unit

# A balanced run: 100 records = 90 unique + 6 duplicates + 4 dead letters; 2 of the
# 90 arrived after their window closed: counted 88, late 2 (dead letters of stage late).
BALANCED = Terms(
    produced=100,
    valid_unique=90,
    postgres_events=90,
    parquet_events=90,
    duplicates=6,
    dead_letters=4,
    parquet_dead_letters=6,
    kafka_dead_letters=6,
    gold_total=88,
    parquet_gold_total=88,
    injected_duplicates=6,
    injected_dead_letters=4,
    late=2,
    unbalanced_windows=0,
    stage_read=100,
    stage_late=2,
    injected_late=2,
)
RANGES = {0: (10, 50), 1: (0, 30), 2: (5, 35)}  # 40 + 30 + 30 = 100 offsets


def _all_offsets(ranges=RANGES):
    return [("t", p, o) for p, (a, b) in ranges.items() for o in range(a, b)]


EXACT = audit_offsets("t", RANGES, _all_offsets())  # every one of the 100 offsets once


# BALANCED with 3 late copies: the producer sent 103 records, 3 of them byte copies
# of kept events after their ids' dedup TTL.  Each copy is late (2 + 3 = 5 late dead
# letters), has a second Parquet row (93) and no PostgreSQL row (the first copy keeps
# its id's row: 90); the copies' 12 child items are in Parquet's child tables again.
LATE_COPIES = dataclasses.replace(
    BALANCED,
    produced=103,
    parquet_events=93,
    parquet_dead_letters=9,
    kafka_dead_letters=9,
    late=5,
    stage_read=103,
    stage_late=5,
    late_copies=3,
    injected_late_copies=3,
    child_items=240,
    postgres_children=240,
    parquet_children=252,
    late_copy_items=12,
)
RANGES_103 = {**RANGES, 2: (5, 38)}

EXACT_103 = audit_offsets("t", RANGES_103, _all_offsets(RANGES_103))  # the 103 offsets once


# A balanced run, its exact offset audit and what its dataset has.
RUNS = {
    "balanced": (BALANCED, EXACT, {}),
    "late copies": (LATE_COPIES, EXACT_103, {"children": True}),
}

# The checks' names are read by the drills, the runner matrix and the ledger: they
# are part of the interface.
BALANCED_NAMES = [
    "produced == valid_unique + duplicates + dead_letters",
    "parquet_events == postgres_events + superseded == valid_unique + superseded == "
    "gold_total + late",
    "dead_letters + late == parquet_dead_letters == kafka_dead_letters",
    "every window: final count + its late events == its events",
    "stage counts: read == produced, late == late",
    "gold_total == parquet_gold_total",
    "every window: PostgreSQL's count == Parquet's final pane",
    "every offset of the run exactly once across the outputs",
    "duplicates == injected duplicates + replaced versions",
    "dead_letters == injected malformed + invalid",
    "late == injected beyond the allowed lateness",
]
LATE_COPIES_NAMES = [
    "produced == valid_unique + duplicates + dead_letters + late_copies",
    "parquet_events == postgres_events + superseded + late_copies == valid_unique + "
    "superseded + late_copies == gold_total + late",
    *BALANCED_NAMES[2:8],
    "postgres_children == parquet_children - late_copy_items == child_items",
    "duplicates == injected duplicates + replaced versions",
    "late_copies == injected copies after the dedup TTL",
    "dead_letters == injected malformed + invalid",
    "late == injected beyond the allowed lateness + late_copies",
]


@pytest.mark.parametrize(
    "run, names", [("balanced", BALANCED_NAMES), ("late copies", LATE_COPIES_NAMES)]
)
def test_a_balanced_run_passes_every_check_and_names_each(run, names):
    terms, audit, flags = RUNS[run]
    results = checks(terms, audit, **flags)
    assert [c.name for c in results] == names
    assert [c.name for c in results if not c.passed] == []


def test_the_offsets_of_a_balanced_run_are_each_found_once():
    assert (EXACT.expected, EXACT.found, EXACT.missing, EXACT.unexpected, EXACT.repeated) == (
        100,
        100,
        0,
        0,
        0,
    )


def test_a_check_shows_its_numbers_in_the_order_of_its_name():
    # 103 vs 90 + 6 + 4 + 3; the chain of the sinks with == throughout.
    produced, sinks, *_ = checks(LATE_COPIES, EXACT_103)
    assert produced.detail == "103 vs 90 + 6 + 4 + 3"
    assert sinks.detail == "93 == 90 + 0 + 3 == 90 + 0 + 3 == 88 + 5"


@pytest.mark.parametrize(
    "run, change, failing",
    [
        ("balanced", {"valid_unique": 89}, "produced == valid_unique"),
        ("balanced", {"parquet_events": 91}, "parquet_events == postgres_events"),
        ("balanced", {"gold_total": 89}, "parquet_events == postgres_events"),
        ("balanced", {"parquet_dead_letters": 5}, "dead_letters + late == parquet_dead_letters"),
        ("balanced", {"kafka_dead_letters": 7}, "dead_letters + late == parquet_dead_letters =="),
        ("balanced", {"late": 3}, "parquet_events == postgres_events"),
        ("balanced", {"unbalanced_windows": 1}, "every window: final count"),
        # PostgreSQL kept another pane than Parquet's last (run c82680a3d90c's guard).
        ("balanced", {"windows_disagreeing": 1}, "every window: PostgreSQL's count"),
        ("balanced", {"stage_read": 99}, "stage counts"),
        ("balanced", {"stage_late": 1}, "stage counts"),
        ("balanced", {"injected_late": 3}, "late == injected"),
        ("balanced", {"parquet_gold_total": 80}, "gold_total == parquet_gold_total"),
        ("balanced", {"injected_duplicates": 7}, "duplicates == injected duplicates"),
        ("balanced", {"injected_dead_letters": 5}, "dead_letters == injected malformed"),
        # A copy the dedup should have dropped counted as a late copy: one too many.
        ("late copies", {"late_copies": 4}, "produced == valid_unique"),
        # The producer's copies not all found as late copies.
        ("late copies", {"injected_late_copies": 4}, "late_copies == injected copies"),
        # A second PostgreSQL row for a copy (the first copy did not keep its id's row).
        ("late copies", {"postgres_events": 91}, "parquet_events == postgres_events"),
        # A copy's child rows not in Parquet twice.
        ("late copies", {"parquet_children": 248}, "postgres_children == parquet_children"),
    ],
)
def test_each_term_off_fails_its_check(run, change, failing):
    terms, audit, flags = RUNS[run]
    results = checks(dataclasses.replace(terms, **change), audit, **flags)
    failed = [c.name for c in results if not c.passed]
    assert any(name.startswith(failing) for name in failed), failed
    assert not any(name.startswith("every offset") for name in failed)


@pytest.mark.parametrize(
    "run, change, failing",
    [
        # 3 sent late came in on time (a restored job judging by its lagging watermark).
        ("balanced", {"injected_late": 5}, "late == injected beyond the allowed lateness"),
        # One copy was read while its id was still remembered, so it is in the
        # duplicate log (7 duplicates) instead of the late lane.
        (
            "late copies",
            {
                "duplicates": 7,
                "late_copies": 2,
                "parquet_events": 92,
                "late": 4,
                "stage_late": 4,
                "parquet_dead_letters": 8,
                "kafka_dead_letters": 8,
                "parquet_children": 248,
                "late_copy_items": 8,
            },
            "duplicates == injected duplicates",
        ),
    ],
)
def test_a_verdict_a_restore_changed_fails_an_exact_check(run, change, failing):
    # The sinks still balance (nothing lost, nothing twice): only the checks of what
    # was sent late, or copied after the TTL, can tell.  No check is relaxed after a
    # fault any more.
    terms, audit, flags = RUNS[run]
    failed = [
        c.name for c in checks(dataclasses.replace(terms, **change), audit, **flags) if not c.passed
    ]
    assert any(name.startswith(failing) for name in failed), failed
    assert not any(name.startswith("every offset") for name in failed)


ONE_TWICE = audit_offsets("t", RANGES, [*_all_offsets()[1:], ("t", 1, 0)])


@pytest.mark.parametrize(
    "whole, flags, change, off_flags, failing, detail",
    [
        (
            dataclasses.replace(BALANCED, parquet_raw=100),
            {"raw": EXACT},
            {},
            {"raw": ONE_TWICE},
            "raw records: every offset of the run exactly once",
            "100 offsets, 100 rows: 1 missing, 0 unexpected, 1 repeated",
        ),
        (
            dataclasses.replace(
                BALANCED, child_items=240, postgres_children=240, parquet_children=240
            ),
            {"children": True},
            {"parquet_children": 239},
            {},
            "postgres_children == parquet_children == child_items",
            "240 == 239 == 240",
        ),
        (
            BALANCED,
            {"means": ("tenure",)},
            {"off_averages": 1},
            {},
            "every window: final avg_tenure == the means of its events",
            "1 (window, group) pairs off",
        ),
    ],
    ids=["raw records", "child tables", "averages"],
)
def test_an_optional_output_is_checked_only_where_the_dataset_has_it(
    whole, flags, change, off_flags, failing, detail
):
    assert all(c.passed for c in checks(whole, EXACT, **flags))
    assert failing not in [c.name for c in checks(whole, EXACT)]
    off = checks(dataclasses.replace(whole, **change), EXACT, **{**flags, **off_flags})
    assert [(c.name, c.detail) for c in off if not c.passed] == [(failing, detail)]


def test_the_averages_check_names_every_average():
    names = [c.name for c in checks(BALANCED, EXACT, ("monthly_charges", "tenure"))]
    assert (
        "every window: final avg_monthly_charges and avg_tenure == the means of its events" in names
    )


@pytest.mark.parametrize(
    "seen, missing, unexpected, repeated",
    [
        (_all_offsets()[1:], 1, 0, 0),  # one record in no output
        (_all_offsets() + [("t", 1, 0)], 0, 0, 1),  # one record in two outputs
        (_all_offsets() + [("t", 1, 30)], 0, 1, 0),  # a record after the run's range
        (_all_offsets()[:-1] + [("other", 2, 34)], 1, 1, 0),  # right offset, wrong topic
    ],
)
def test_the_offset_audit_finds_lost_repeated_and_foreign_records(
    seen, missing, unexpected, repeated
):
    audit = audit_offsets("t", RANGES, seen)
    assert (audit.missing, audit.unexpected, audit.repeated) == (missing, unexpected, repeated)
    assert not _offset_check(audit).passed


def test_a_late_dead_letter_must_name_an_event():
    events = _all_offsets()[:90]
    fine = audit_offsets("t", RANGES, _all_offsets(), late=events[:2], events=events)
    stray = audit_offsets("t", RANGES, _all_offsets(), late=[_all_offsets()[95]], events=events)
    assert _offset_check(fine).passed
    assert stray.late_not_in_events == 1 and not _offset_check(stray).passed


def _offset_check(audit):
    (found,) = [c for c in checks(BALANCED, audit) if c.name.startswith("every offset")]
    return found


def test_render_ends_with_one_json_object_that_says_pass_or_fail():
    good = render(DATASET, "r1", BALANCED, checks(BALANCED, EXACT), {"events": 94})
    bad_terms = dataclasses.replace(BALANCED, duplicates=5)
    bad = render(DATASET, "r1", bad_terms, checks(bad_terms, EXACT))
    last = json.loads(good.splitlines()[-1])
    assert last["passed"] is True and last["events"] == 94 and last["terms"]["produced"] == 100
    assert json.loads(bad.splitlines()[-1])["passed"] is False
    assert "FAIL" in bad and "RECONCILIATION FAILED" in bad and "FAIL" not in good


def _event(offset, time_ms, contract, charges=50.0, tenure=10):
    return {
        "kafka_topic": "t",
        "kafka_partition": 0,
        "kafka_offset": offset,
        "updated_at_ms": time_ms,
        "contract": contract,
        "internet_service": "DSL",
        "monthly_charges": charges,
        "tenure": tenure,
    }


def _count(start_ms, contract, n, pane, avg_charges, avg_tenure):
    return {
        "window_start_ms": start_ms,
        "window_end_ms": start_ms + 3_600_000,
        "contract": contract,
        "internet_service": "DSL",
        "customer_versions": n,
        "avg_monthly_charges": avg_charges,
        "avg_tenure": avg_tenure,
        "pane_index": pane,
    }


def test_the_window_balance_counts_and_averages_each_datasets_own_columns():
    # customers: windows of an hour by (contract, internet service).  Hour 0 "One
    # year"/DSL: events at offsets 0 (charges 40, tenure 10), 1 (60, 20) and 2 (late,
    # 99, 99); its panes say 1 then 2 (the highest counts): 2 + 1 late == 3 events,
    # averages over the two that are not late: charges 50, tenure 15.  Hour 1 "Two
    # year": one event and no count row: off by one.
    customers = datasets.get("customers")
    hour = 3_600_000
    events = [
        _event(0, 10, "One year", 40.0, 10),
        _event(1, 20, "One year", 60.0, 20),
        _event(2, 30, "One year", 99.0, 99),
    ]
    counts = [_count(0, "One year", 1, 0, 40.0, 10.0), _count(0, "One year", 2, 1, 50.0, 15.0)]
    late = [("t", 0, 2)]
    assert window_balance(customers, events, counts, late) == (0, 0)
    extra = [*events, _event(3, hour + 5, "Two year")]
    assert window_balance(customers, extra, counts, late).unbalanced == 1
    # The late one uncounted, and (not excluded) it moves the means.
    assert window_balance(customers, events, counts, []) == (1, 1)
    wrong_mean = [counts[0], _count(0, "One year", 2, 1, 50.0, 15.5)]
    assert window_balance(customers, events, wrong_mean, late) == (0, 1)


def test_a_keep_latest_run_balances_with_its_superseded_versions():
    # 100 records: 4 dead letters, 6 byte copies and 90 versions of 30 customers.  30
    # ids end in PostgreSQL; the 60 other versions are in the duplicate log with the 6
    # copies (66 rows).  20 of the 60 were emitted before a newer one replaced them
    # (superseded: in Parquet and the log), 40 arrived older and were logged at once:
    # Parquet holds 30 + 20 = 50 rows, 48 counted and 2 late.
    keep_latest = dataclasses.replace(
        BALANCED,
        valid_unique=30,
        postgres_events=30,
        parquet_events=50,
        superseded=20,
        duplicates=66,
        injected_replaced=60,
        gold_total=48,
        parquet_gold_total=48,
    )
    assert all(c.passed for c in checks(keep_latest, EXACT))
    off = checks(dataclasses.replace(keep_latest, superseded=19), EXACT)
    assert [c.name for c in off if not c.passed][0].startswith("parquet_events ==")


def test_the_table_shows_only_the_terms_of_outputs_the_dataset_has():
    rendered = {
        name: render(datasets.get(name), "r1", BALANCED, checks(BALANCED, EXACT))
        for name in ("customer_events", "customers", "events")
    }
    rows = {name: [line.split()[0] for line in text.splitlines()[3:26] if line.startswith("  ")]
            for name, text in rendered.items()}  # fmt: skip
    assert "child_items" in rows["customer_events"] and "parquet_raw" not in rows["customer_events"]
    assert "parquet_raw" in rows["customers"] and "off_averages" in rows["customers"]
    assert not {"child_items", "parquet_raw", "off_averages"} & set(rows["events"])
    # The JSON line keeps every term, whatever the dataset.
    for text in rendered.values():
        assert set(json.loads(text.splitlines()[-1])["terms"]) == set(dataclasses.asdict(BALANCED))


def test_both_parquet_readers_skip_files_a_write_has_in_flight(tmp_path):
    # One finished file of 3 rows; Beam's staging folder holds 3 more, not yet
    # output.  The row count (dead letters, child tables) and the rows (events,
    # counts, raw records) must see the same 3.
    table = pa.table({"x": [1, 2, 3]})
    (tmp_path / "hour=1").mkdir()
    pq.write_table(table, tmp_path / "hour=1" / "part-0.parquet")
    (tmp_path / ".temp-beam-1234").mkdir()
    pq.write_table(table, tmp_path / ".temp-beam-1234" / "part-1.parquet")
    assert parquet_row_count(tmp_path) == 3
    assert parquet_rows(tmp_path, ["x"]) == [{"x": 1}, {"x": 2}, {"x": 3}]
    assert parquet_row_count(tmp_path / "absent") == 0
    assert parquet_rows(tmp_path / "absent", ["x"]) == []


def test_the_command_without_a_producer_report_says_where_it_looked(tmp_path, capsys):
    assert reconcile_main(["--run_id", "r1", "--output_dir", str(tmp_path)]) == 2
    expected = f"beamline: error: no producer report at {tmp_path / 'r1' / 'producer.json'}\n"
    assert capsys.readouterr().err == expected


def test_the_final_pane_is_the_largest_count_whatever_its_index():
    # Run c82680a3d90c's window: before the TaskManager was killed, pane 0 (on time,
    # 564) and pane 1 (late, 565) were written; the restored job fired pane 0 again
    # with every event of the window (569).  The last pane is the one of 569.
    def pane(count, index, timing):
        return {
            "window_start_ms": 1_796_669_380_000,
            "event_type": "content_play",
            "event_count": count,
            "pane_index": index,
            "pane_timing": timing,
        }

    panes = [pane(564, 0, "on_time"), pane(565, 1, "late"), pane(569, 0, "on_time")]
    final = final_panes(panes, ["event_type"], "event_count")
    assert final == {(1_796_669_380_000, "content_play"): pane(569, 0, "on_time")}
    # Equal counts: the higher index, as PostgreSQL's guard keeps it.
    final = final_panes(
        [pane(569, 0, "on_time"), pane(569, 2, "late")], ["event_type"], "event_count"
    )
    assert final[(1_796_669_380_000, "content_play")]["pane_index"] == 2
