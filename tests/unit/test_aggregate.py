"""CountPerWindow: accumulating panes per (window, key), late firings and the late lane.

Expected rows are computed by hand in the comments.  Times are in seconds; windows
are [start, end) and close at end - 1 µs + allowed lateness: the watermark must pass
that instant (Beam's own garbage-collection time) for a window to be closed.

Each stream advances the watermark past every window before it jumps to infinity:
the BundleBasedDirectRunner does not hold its watermark for pending timers, so a
pane fired by a timer at the final jump reaches ``assert_that`` after it has
already closed its (global) window.  Flink and Prism hold the watermark.
"""

import functools

import apache_beam as beam
import pytest
from apache_beam.testing.test_stream import TestStream
from apache_beam.testing.util import assert_that, equal_to
from apache_beam.transforms.window import TimestampedValue

from datasets.customer_events import DATASET, CustomerEventCountsRow
from datasets.customers import DATASET as CUSTOMERS
from datasets.customers import CustomersGoldRow
from transforms.aggregate import LATE, LATE_TAG, ON_TIME, CountPerWindow

pytestmark = pytest.mark.unit

TO_ROW = functools.partial(DATASET.to_pane_row, run_id="r1")


def _at(event_type, seconds, n=0):
    return TimestampedValue(beam.Row(event_type=event_type, n=n), seconds)


def _row(start_s, end_s, key, count, pane, timing):
    return CustomerEventCountsRow(start_s * 1000, end_s * 1000, key, count, pane, timing, "r1")


def _count(lateness=0, period=None, size=60, combine=False):
    return CountPerWindow(
        DATASET.group_key,
        size,
        TO_ROW,
        CustomerEventCountsRow,
        allowed_lateness_s=lateness,
        window_period_s=period,
        combine_in_bundle=combine,
    )


def _version(contract, internet, charges, tenure, seconds):
    row = beam.Row(
        contract=contract, internet_service=internet, monthly_charges=charges, tenure=tenure
    )
    return TimestampedValue(row, seconds)


def _gold(contract, internet, n, sums, pane, timing):
    charges, tenure = sums
    return CustomersGoldRow(
        0, 3_600_000, contract, internet, n, charges, charges / n, tenure, tenure / n,
        pane, timing, "r1",
    )  # fmt: skip


def _n(arrival):
    return arrival.element.n


# Each case: the input (a list for a bounded Create, or a TestStream), the count, the
# panes it must emit, and what its late lane must hold (seen through `late_of`).
CASES = [
    pytest.param(
        # Windows of 60 s: [0, 60) holds play@0, play@59, search@30; [60, 120) holds
        # play@60; [120, 180) holds search@179.  The watermark jumps to the end after
        # everything is read, so each (window, type) fires once, on time, nothing late.
        [_at("play", 0), _at("play", 59), _at("search", 30), _at("play", 60), _at("search", 179)],
        _count(),
        [
            _row(0, 60, "play", 2, 0, ON_TIME),
            _row(0, 60, "search", 1, 0, ON_TIME),
            _row(60, 120, "play", 1, 0, ON_TIME),
            _row(120, 180, "search", 1, 0, ON_TIME),
        ],
        _n,
        [],
        id="bounded_input_gives_one_on_time_pane_per_window",
    ),
    pytest.param(
        # Window [0, 60), allowed lateness 30 s: on time until the watermark passes 60,
        # closed once it passes 90.
        #   play@10, play@20 with the watermark at 0        → in the window
        #   watermark → 61: on-time pane 0, count 2
        #   play@30 (watermark 61, window not yet closed)  → late pane 1, count 3
        #   play@40                                         → late pane 2, count 4
        #   watermark → 91: window closed
        #   play@50 (n=7)                                   → the late lane, in no pane
        #   search@70 in [60, 120) is on time: pane 0, count 1 at the end.
        # The late lane's window closes at 60 s - 1 µs + 30 s, i.e. 89,999.999 ms,
        # floored to 89,999 ms.
        TestStream()
        .advance_watermark_to(0)
        .add_elements([_at("play", 10), _at("play", 20)])
        .advance_watermark_to(61)
        .add_elements([_at("play", 30)])
        .add_elements([_at("play", 40)])
        .advance_watermark_to(91)
        .add_elements([_at("play", 50, n=7), _at("search", 70)])
        .advance_watermark_to(121)
        .advance_watermark_to_infinity(),
        _count(lateness=30),
        [
            _row(0, 60, "play", 2, 0, ON_TIME),
            _row(0, 60, "play", 3, 1, LATE),
            _row(0, 60, "play", 4, 2, LATE),
            _row(60, 120, "search", 1, 0, ON_TIME),
        ],
        lambda a: (a.element.n, a.window_start_ms, a.window_end_ms, a.closed_at_ms),
        [(7, 0, 60_000, 89_999)],
        id="watermark_late_firings_and_the_late_lane",
    ),
    pytest.param(
        # Lateness 0: the on-time pane and the close happen together when the watermark
        # passes 60; play@5 arriving after that is late, play@65 is on time in [60, 120).
        # Accounting for [0, 60): final count 1 + late 1 = 2 events.
        TestStream()
        .advance_watermark_to(0)
        .add_elements([_at("play", 1)])
        .advance_watermark_to(61)
        .add_elements([_at("play", 5, n=1), _at("play", 65)])
        .advance_watermark_to(121)
        .advance_watermark_to_infinity(),
        _count(),
        [_row(0, 60, "play", 1, 0, ON_TIME), _row(60, 120, "play", 1, 0, ON_TIME)],
        _n,
        [1],
        id="without_lateness_the_window_closes_at_its_end",
    ),
    pytest.param(
        # The composite cannot read the watermark: when the first 'play' arrives for
        # [0, 60) after the watermark passed 60, nothing of that key has closed yet, so
        # it is counted (pane 0, fired at once) rather than dropped.  A later 'play'@30
        # is late: by then the key's close timer for [0, 60) has fired.
        TestStream()
        .advance_watermark_to(200)
        .add_elements([_at("play", 10)])
        .advance_watermark_to(201)
        .add_elements([_at("play", 30, n=3)])
        .advance_watermark_to_infinity(),
        _count(),
        [_row(0, 60, "play", 1, 0, ON_TIME)],
        _n,
        [3],
        id="a_window_that_closed_without_data_still_counts_its_first_record",
    ),
    pytest.param(
        # The first case's elements in one bundle, then a late pair: counted per key and
        # window within the bundle before the keyed state, the panes must not change.
        # [0, 60): play@0, play@59 → on-time pane 2; then play@10, play@20 arrive with
        # the watermark at 61 (lateness 30): one group of 2 → late pane 1, count 4.
        TestStream()
        .advance_watermark_to(0)
        .add_elements([_at("play", 0), _at("play", 59), _at("search", 30)])
        .advance_watermark_to(61)
        .add_elements([_at("play", 10), _at("play", 20)])
        .advance_watermark_to(200)
        .advance_watermark_to_infinity(),
        _count(lateness=30, combine=True),
        [
            _row(0, 60, "play", 2, 0, ON_TIME),
            _row(0, 60, "search", 1, 0, ON_TIME),
            _row(0, 60, "play", 4, 1, LATE),
        ],
        lambda a: a.element,  # combined in bundles: a late count, not an element
        [],
        id="combining_in_bundles_first_gives_the_same_panes",
    ),
    pytest.param(
        # Size 60, period 30: t=40 is in [0, 60) and [30, 90); t=70 in [30, 90) and
        # [60, 120).
        [_at("play", 40), _at("play", 70)],
        _count(period=30),
        [
            _row(0, 60, "play", 1, 0, ON_TIME),
            _row(30, 90, "play", 2, 0, ON_TIME),
            _row(60, 120, "play", 1, 0, ON_TIME),
        ],
        _n,
        [],
        id="sliding_windows_count_each_record_in_every_window",
    ),
    pytest.param(
        # customers' gold: per hour and (contract, internet service), the versions and
        # their average monthly charges and tenure, in accumulating panes.  Lateness 600 s.
        #   One year/DSL: 40.0 & tenure 10 at 10 s, 60.0 & 20 at 20 s → on time at 3,601 s:
        #     2 versions, sums 100.0 and 30 → averages 50.0 and 15.0
        #   19.0 & 3 at 30 s arrives after the on-time pane, before the close (4,200 s):
        #     late pane 1: 3 versions, sums 119.0 and 33 → 39.666… and 11.0
        #   Two year/No at 100 s: its own group, on time.
        #   after the close (watermark 4,201 s), 99.0 & 99 at 40 s: the late lane, in no pane.
        TestStream()
        .advance_watermark_to(0)
        .add_elements(
            [_version("One year", "DSL", 40.0, 10, 10), _version("One year", "DSL", 60.0, 20, 20)]
        )
        .add_elements([_version("Two year", "No", 70.0, 5, 100)])
        .advance_watermark_to(3601)
        .add_elements([_version("One year", "DSL", 19.0, 3, 30)])
        .advance_watermark_to(4201)
        .add_elements([_version("One year", "DSL", 99.0, 99, 40)])
        .advance_watermark_to(7300)
        .advance_watermark_to_infinity(),
        CountPerWindow(
            CUSTOMERS.group_key,
            3600,
            functools.partial(CUSTOMERS.to_pane_row, run_id="r1"),
            CustomersGoldRow,
            allowed_lateness_s=600,
            sums=CUSTOMERS.measures,
        ),
        [
            _gold("One year", "DSL", 2, (100.0, 30), 0, ON_TIME),
            _gold("One year", "DSL", 3, (119.0, 33), 1, LATE),
            _gold("Two year", "No", 1, (70.0, 5), 0, ON_TIME),
        ],
        lambda a: a.element.monthly_charges,
        [99.0],
        id="the_gold_panes_carry_sums_and_averages_that_accumulate",
    ),
]


@pytest.mark.parametrize("source, count, panes, late_of, late", CASES)
def test_panes_and_late_lane(request, source, count, panes, late_of, late):
    bounded = isinstance(source, list)
    with request.getfixturevalue("pipeline" if bounded else "stream_pipeline") as p:
        out = p | (beam.Create(source) if bounded else source) | count
        assert_that(out.counts, equal_to(panes), label="CheckPanes")
        assert_that(out[LATE_TAG] | beam.Map(late_of), equal_to(late), label="CheckLateLane")


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"size": 0}, "window_size_s"),
        ({"lateness": -1}, "allowed_lateness_s"),
        ({"period": 90}, "window_period_s"),
    ],
)
def test_bad_parameters_are_refused(kwargs, message):
    with pytest.raises(ValueError, match=message):
        _count(**kwargs)


def test_sums_need_the_elements():
    with pytest.raises(ValueError, match="combine_in_bundle"):
        CountPerWindow(
            DATASET.group_key, 60, TO_ROW, CustomerEventCountsRow,
            sums=lambda e: (1,), combine_in_bundle=True,
        )  # fmt: skip


def _sent(event_type, seconds, arrived_s, n=0):
    """A record of event time ``seconds`` that arrived at ``arrived_s`` (its Kafka
    timestamp minus the read's delay, in event time)."""
    return TimestampedValue(beam.Row(event_type=event_type, n=n, arrived_s=arrived_s), seconds)


def _by_arrival(grace_s=60):
    return CountPerWindow(
        DATASET.group_key,
        60,
        TO_ROW,
        CustomerEventCountsRow,
        allowed_lateness_s=30,
        arrival_ms=lambda e: e.arrived_s * 1000,
        grace_s=grace_s,
    )


# One window [0, 60) of play, allowed lateness 30 s (closed from 89.999 s on):
#   a play@10 and b play@20 arrive at 10 s and 20 s, c play@30 at 70 s (after the
#   window's end, before its close: counted), d play@50 (n=7) at 95 s (after the close:
#   late), and search@70 at 75 s.
_RECORDS = [
    _sent("play", 10, 10),
    _sent("play", 20, 20),
    _sent("play", 30, 70),
    _sent("play", 50, 95, n=7),
    _sent("search", 70, 75),
]
# Live: the watermark follows the arrivals; the on-time pane fires after a and b.
LIVE = (
    TestStream()
    .advance_watermark_to(0)
    .add_elements(_RECORDS[:2])
    .advance_watermark_to(61)
    .add_elements(_RECORDS[2:3])
    .advance_watermark_to(91)
    .add_elements(_RECORDS[3:])
    .advance_watermark_to(200)
    .advance_watermark_to_infinity()
)


def _restored():
    """Run c82680a3d90c's situation: the job restored from a checkpoint taken after a
    and b were read, before c; Kafka replays c, d and the rest as a backlog, all read
    before the restored watermark (the newest timestamp read minus the delay) passes
    the window's end."""
    return (
        TestStream()
        .advance_watermark_to(0)
        .add_elements(_RECORDS[:2])
        .add_elements(_RECORDS[2:])
        .advance_watermark_to(200)
        .advance_watermark_to_infinity()
    )


@pytest.mark.parametrize(
    "stream, panes",
    [
        (
            LIVE,
            [
                _row(0, 60, "play", 2, 0, ON_TIME),
                _row(0, 60, "play", 3, 1, LATE),
                _row(60, 120, "search", 1, 0, ON_TIME),
            ],
        ),
        # Another pane sequence (pane 0 holds all three), the same last count and the
        # same late lane.
        (_restored(), [_row(0, 60, "play", 3, 0, ON_TIME), _row(60, 120, "search", 1, 0, ON_TIME)]),
    ],
    ids=["live", "restored"],
)
def test_a_record_is_late_by_its_own_arrival_whatever_the_watermark(stream_pipeline, stream, panes):
    with stream_pipeline as p:
        out = p | stream | _by_arrival()
        assert_that(out.counts, equal_to(panes), label="CheckPanes")
        assert_that(out[LATE_TAG] | beam.Map(_n), equal_to([7]), label="CheckLateLane")


def test_by_the_watermark_a_restore_counts_a_late_record(stream_pipeline):
    # The same restored stream judged by the runtime watermark (before issue 23): d
    # arrived after its window closed, yet it is counted, and the late lane is empty.
    with stream_pipeline as p:
        out = p | _restored() | _count(lateness=30)
        assert_that(
            out.counts,
            equal_to([_row(0, 60, "play", 4, 0, ON_TIME), _row(60, 120, "search", 1, 0, ON_TIME)]),
            label="CheckPanes",
        )
        assert_that(out[LATE_TAG] | beam.Map(_n), equal_to([]), label="CheckLateLane")


def test_a_record_after_its_windows_state_is_gone_is_late_too(stream_pipeline):
    # No grace: the window's state goes at its close (89.999 s).  c arrived at 70 s,
    # on time by the rule, but is read after the watermark passed 91 s: nothing can
    # count it any more, so it goes to the late lane (counter late_after_state_dropped).
    stream = (
        TestStream()
        .advance_watermark_to(0)
        .add_elements(_RECORDS[:2])
        .advance_watermark_to(91)
        .add_elements([_sent("play", 30, 70, n=3)])
        .advance_watermark_to(200)
        .advance_watermark_to_infinity()
    )
    with stream_pipeline as p:
        out = p | stream | _by_arrival(grace_s=0)
        assert_that(out.counts, equal_to([_row(0, 60, "play", 2, 0, ON_TIME)]), label="CheckPanes")
        assert_that(out[LATE_TAG] | beam.Map(_n), equal_to([3]), label="CheckLateLane")


def test_arrival_needs_the_elements():
    with pytest.raises(ValueError, match="combine_in_bundle"):
        CountPerWindow(
            DATASET.group_key, 60, TO_ROW, CustomerEventCountsRow,
            arrival_ms=lambda e: 0, combine_in_bundle=True,
        )  # fmt: skip
