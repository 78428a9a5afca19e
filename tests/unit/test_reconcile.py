"""The reconciliation's checks and offset audit fail when a term or an offset is off."""

import dataclasses
import json

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

import datasets
from datasets.customer_events import DATASET
from tools.reconcile import Terms, _parquet, audit_offsets, checks, render, window_balance

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


def _all_offsets():
    return [("t", p, o) for p, (a, b) in RANGES.items() for o in range(a, b)]


def test_a_balanced_run_passes_every_check():
    audit = audit_offsets("t", RANGES, _all_offsets())
    assert (audit.expected, audit.found, audit.missing, audit.unexpected, audit.repeated) == (
        100,
        100,
        0,
        0,
        0,
    )
    results = checks(BALANCED, audit)
    assert len(results) == 10 and all(c.passed for c in results)


@pytest.mark.parametrize(
    "change, failing",
    [
        ({"valid_unique": 89}, "produced == valid_unique"),
        ({"parquet_events": 91}, "parquet_events == postgres_events"),
        ({"gold_total": 89}, "parquet_events == postgres_events"),
        ({"parquet_dead_letters": 5}, "dead_letters + late == parquet_dead_letters"),
        ({"kafka_dead_letters": 7}, "dead_letters + late == parquet_dead_letters == kafka"),
        ({"late": 3}, "parquet_events == postgres_events"),
        ({"unbalanced_windows": 1}, "every window: final count"),
        ({"stage_read": 99}, "stage counts"),
        ({"stage_late": 1}, "stage counts"),
        ({"injected_late": 3}, "late == injected"),
        ({"parquet_gold_total": 80}, "gold_total == parquet_gold_total"),
        ({"injected_duplicates": 7}, "duplicates == injected duplicates"),
        ({"injected_dead_letters": 5}, "dead_letters == injected malformed"),
    ],
)
def test_each_term_off_by_one_fails_its_check(change, failing):
    audit = audit_offsets("t", RANGES, _all_offsets())
    results = checks(dataclasses.replace(BALANCED, **change), audit)
    failed = [c.name for c in results if not c.passed]
    assert any(name.startswith(failing) for name in failed)
    assert not any(c.name.startswith("every offset") for c in results if not c.passed)


def test_after_a_stop_the_late_lane_may_hold_fewer_never_more():
    audit = audit_offsets("t", RANGES, _all_offsets())
    fewer = dataclasses.replace(BALANCED, injected_late=5)  # 3 sent late came in on time
    more = dataclasses.replace(BALANCED, injected_late=1)
    assert not all(c.passed for c in checks(fewer, audit))
    assert all(c.passed for c in checks(fewer, audit, late_exact=False))
    failed = [c.name for c in checks(more, audit, late_exact=False) if not c.passed]
    assert failed == ["late <= injected beyond the allowed lateness (the job was stopped)"]


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
    audit = audit_offsets("t", RANGES, _all_offsets())
    good = render(DATASET, "r1", BALANCED, checks(BALANCED, audit), {"events": 94})
    bad_terms = dataclasses.replace(BALANCED, duplicates=5)
    bad = render(DATASET, "r1", bad_terms, checks(bad_terms, audit))
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


def test_the_averages_are_checked_only_where_the_aggregate_has_means():
    audit = audit_offsets("t", RANGES, _all_offsets())
    names = [c.name for c in checks(BALANCED, audit, ("monthly_charges", "tenure"))]
    assert (
        "every window: final avg_monthly_charges and avg_tenure == the means of its events" in names
    )
    assert not any("avg_" in c.name for c in checks(BALANCED, audit))
    off = checks(dataclasses.replace(BALANCED, off_averages=1), audit, ("tenure",))
    assert [c.name for c in off if not c.passed] == [
        "every window: final avg_tenure == the means of its events"
    ]


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
    audit = audit_offsets("t", RANGES, _all_offsets())
    assert all(c.passed for c in checks(keep_latest, audit))
    off = checks(dataclasses.replace(keep_latest, superseded=19), audit)
    assert [c.name for c in off if not c.passed][0].startswith("parquet_events ==")


def test_the_raw_records_must_hold_every_offset_exactly_once():
    audit = audit_offsets("t", RANGES, _all_offsets())
    whole = dataclasses.replace(BALANCED, parquet_raw=100)
    assert all(c.passed for c in checks(whole, audit, raw=audit))
    assert not any(c.name.startswith("raw records") for c in checks(whole, audit))
    one_twice = audit_offsets("t", RANGES, [*_all_offsets()[1:], ("t", 1, 0)])
    failed = [c for c in checks(whole, audit, raw=one_twice) if not c.passed]
    assert [c.name for c in failed] == ["raw records: every offset of the run exactly once"]
    assert "1 missing, 0 unexpected, 1 repeated" in failed[0].detail


def test_the_child_tables_must_hold_every_item_of_the_events():
    audit = audit_offsets("t", RANGES, _all_offsets())
    whole = dataclasses.replace(
        BALANCED, child_items=240, postgres_children=240, parquet_children=240
    )
    assert all(c.passed for c in checks(whole, audit, children=True))
    assert not any("children" in c.name for c in checks(whole, audit))
    short = dataclasses.replace(whole, parquet_children=239)
    failed = [c.name for c in checks(short, audit, children=True) if not c.passed]
    assert failed == ["postgres_children == parquet_children == child_items"]


def test_the_table_shows_only_the_terms_of_outputs_the_dataset_has():
    audit = audit_offsets("t", RANGES, _all_offsets())
    rendered = {
        name: render(datasets.get(name), "r1", BALANCED, checks(BALANCED, audit))
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


def test_parquet_rows_skip_files_a_write_has_in_flight(tmp_path):
    table = pa.table({"x": [1, 2, 3]})
    (tmp_path / "hour=1").mkdir()
    pq.write_table(table, tmp_path / "hour=1" / "part-0.parquet")
    (tmp_path / ".temp-beam-1234").mkdir()
    pq.write_table(table, tmp_path / ".temp-beam-1234" / "part-1.parquet")
    assert _parquet(tmp_path) == 3
    assert _parquet(tmp_path / "absent") == 0


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


def _audit_103():
    """Every one of the 103 offsets found once."""
    offsets = [("t", p, o) for p, (a, b) in RANGES_103.items() for o in range(a, b)]
    return audit_offsets("t", RANGES_103, offsets)


def test_late_copies_after_the_dedup_ttl_balance_as_their_own_term():
    audit = _audit_103()
    results = checks(LATE_COPIES, audit, children=True)
    assert [c.name for c in results if not c.passed] == []
    assert "late_copies == injected copies after the dedup TTL" in [c.name for c in results]


@pytest.mark.parametrize(
    "change, failing",
    [
        # A copy the dedup should have dropped counted as a late copy: one too many.
        ({"late_copies": 4}, "produced == valid_unique"),
        # The producer's copies not all found as late copies.
        ({"injected_late_copies": 4}, "late_copies == injected copies"),
        # A second PostgreSQL row for a copy (the first copy did not keep its id's row).
        ({"postgres_events": 91}, "parquet_events == postgres_events"),
        # A copy's child rows not in Parquet twice.
        ({"parquet_children": 248}, "postgres_children == parquet_children"),
    ],
)
def test_each_late_copy_term_off_fails_its_check(change, failing):
    audit = _audit_103()
    results = checks(dataclasses.replace(LATE_COPIES, **change), audit, children=True)
    failed = [c.name for c in results if not c.passed]
    assert any(name.startswith(failing) for name in failed), failed


def test_after_a_stop_a_late_copy_may_be_caught_as_a_duplicate():
    # The job was down: one copy was read while its id was still remembered, so it is
    # in the duplicate log (7 duplicates) instead of the late lane.
    audit = _audit_103()
    caught = dataclasses.replace(
        LATE_COPIES,
        duplicates=7,
        late_copies=2,
        parquet_events=92,
        late=4,
        stage_late=4,
        parquet_dead_letters=8,
        kafka_dead_letters=8,
        parquet_children=248,
        late_copy_items=8,
    )
    assert not all(c.passed for c in checks(caught, audit, children=True))
    assert all(c.passed for c in checks(caught, audit, children=True, late_exact=False))
