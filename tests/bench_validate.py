"""Micro-benchmark of the two validation tiers on valid customer events; not a test.

Run from the project root::

    .beamline/venv/bin/python tests/bench_validate.py

It builds ~3000 valid events by mutating the hand-written event of
``tests/unit/test_validate.py`` deterministically, checks that both tiers accept
every one, then times each tier over all of them (best of several rounds) and
prints events per second and the ratio.  Valid events are the hot path: the
compiled check is the only tier they meet in ``ValidateEventsFn``.
"""

import copy
import pathlib
import sys
import time
import warnings

ROOT = pathlib.Path(__file__).resolve().parents[1]

EVENTS = 3000
ROUNDS = 5

_EVENT_TYPES = ("content_play", "search", "browse")
_DEVICES = (
    ("mobile", "Android"),
    ("mobile", "iOS"),
    ("desktop", "Windows"),
    ("desktop", "macOS"),
    ("tablet", "iOS"),
    ("smartTV", "Linux"),
)
_CONTENT_TYPES = ("Movie", "TV Show", "Documentary", "Short")
_PLANS = ("Basic", "Standard", "Premium")
_QUALITIES = ("SD", "HD", "4K")
_NETWORKS = ("WiFi", "Mobile", "Ethernet")
_ACTIONS = ("play", "pause", "seek", "quality_change", "speed_change")
_ALGORITHMS = ("content_based", "collaborative", "hybrid")


def make_events(base: dict, count: int = EVENTS) -> list[dict]:
    """``count`` valid events, each ``base`` with fields varied by its index (no randomness)."""
    events = []
    for i in range(count):
        event = copy.deepcopy(base)
        event["event_id"] = f"evt-{i:06d}"
        event["user_id"] = f"user-{i % 997}"
        event["event_type"] = _EVENT_TYPES[i % 3]
        event["timestamp"] = f"2026-11-22T{i % 24:02d}:{i % 60:02d}:{(i * 7) % 60:02d}.{i:03d}Z"
        event["device"]["type"], event["device"]["os"] = _DEVICES[i % len(_DEVICES)]
        content = event["content"]
        content["type"] = _CONTENT_TYPES[i % 4]
        content["episode"] = None if content["type"] == "Movie" else 1 + i % 12
        content["season"] = None if content["type"] == "Movie" else 1 + i % 5
        content["release_year"] = 1950 + i % 76
        content["duration"] = 60 * (5 + i % 175)
        event["user_subscription"]["plan"] = _PLANS[i % 3]
        event["user_subscription"]["connected_services"] = ["alexa", "spotify", "hue"][: i % 4]
        details = event["event_details"]
        details["play_duration"] = (i * 13) % content["duration"]
        details["play_percentage"] = round(100 * details["play_duration"] / content["duration"], 2)
        details["playback_quality"] = _QUALITIES[i % 3]
        details["playback_speed"] = (0.5, 1.0, 1.25, 1.5, 2.0)[i % 5]
        details["network_type"] = _NETWORKS[i % 3]
        details["completed"] = i % 10 == 0
        template = base["user_action"][i % len(base["user_action"])]
        event["user_action"] = [
            {**template, "action_type": _ACTIONS[(i + k) % 5]} for k in range(i % 6)
        ]
        event["recommendations"] = [
            {
                "content_id": f"c-{i + k}",
                "position": k + 1,
                "algorithm": _ALGORITHMS[k % 3],
                "clicked": k == i % 4,
            }
            for k in range(i % 5)
        ]
        event["search_history"] = base["search_history"] * (i % 3)
        events.append(event)
    return events


def _rate(check, events) -> float:
    """Events per second of ``check`` over ``events``, best of ``ROUNDS`` rounds."""
    best = float("inf")
    for _ in range(ROUNDS):
        start = time.perf_counter()
        for event in events:
            check(event)
        best = min(best, time.perf_counter() - start)
    return len(events) / best


def main() -> None:
    from jsonschema import Draft7Validator

    from datasets.customer_events import load_schema
    from tests.unit.test_validate import valid_event
    from transforms.schema_check import compile_schema

    schema = load_schema()
    validator = Draft7Validator(schema)
    fast = compile_schema(schema)
    events = make_events(valid_event())
    assert all(fast(e) for e in events) and all(validator.is_valid(e) for e in events)

    def iter_errors(event):
        return list(validator.iter_errors(event))

    is_valid = _rate(validator.is_valid, events)
    listed = _rate(iter_errors, events)
    compiled = _rate(fast, events)
    print(f"{len(events)} valid events, best of {ROUNDS} rounds, Python {sys.version.split()[0]}")
    print(f"  jsonschema Draft7Validator.is_valid     {is_valid:>12,.0f} events/s")
    print(f"  jsonschema Draft7Validator.iter_errors  {listed:>12,.0f} events/s")
    print(f"  compiled check                          {compiled:>12,.0f} events/s")
    print(f"  ratio compiled / is_valid               {compiled / is_valid:>12.1f}x")
    print(f"  ratio compiled / iter_errors            {compiled / listed:>12.1f}x")


if __name__ == "__main__":
    warnings.filterwarnings("ignore", category=FutureWarning)  # google-cloud vs grpcio
    sys.path.insert(0, str(ROOT))
    main()
