"""CountPerWindow: counts per key in fixed event-time windows, one row per (window, key)."""

import functools

import apache_beam as beam
import pytest
from apache_beam.testing.util import assert_that, equal_to
from apache_beam.transforms.window import TimestampedValue

from schemas.customer_events import EventTypeCount, to_event_type_count
from transforms.aggregate import CountPerWindow

pytestmark = pytest.mark.unit


def _at(event_type, seconds):
    return TimestampedValue(beam.Row(event_type=event_type), seconds)


def test_counts_per_type_and_minute(pipeline):
    # Windows of 60 s: [0, 60) holds play@0, play@59, search@30; [60, 120) holds
    # play@60; [120, 180) holds search@179.  Hand-counted rows below.
    rows = [_at("play", 0), _at("play", 59), _at("search", 30), _at("play", 60), _at("search", 179)]
    to_row = functools.partial(to_event_type_count, run_id="r1")
    with pipeline as p:
        counts = p | beam.Create(rows) | CountPerWindow("event_type", 60, to_row, EventTypeCount)
        assert_that(
            counts,
            equal_to(
                [
                    EventTypeCount(0, 60_000, "play", 2, "r1"),
                    EventTypeCount(0, 60_000, "search", 1, "r1"),
                    EventTypeCount(60_000, 120_000, "play", 1, "r1"),
                    EventTypeCount(120_000, 180_000, "search", 1, "r1"),
                ]
            ),
        )


def test_window_size_must_be_positive():
    with pytest.raises(ValueError, match="window_size_s"):
        CountPerWindow("event_type", 0, to_event_type_count, EventTypeCount)
