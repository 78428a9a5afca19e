"""The whole graph on Create: every record in exactly one output, outputs as the labels say.

The input is a generated batch whose labels say what each message is (valid,
out of order, duplicate, malformed/<kind>, invalid/<kind>); the expectations
below come from those labels, not from running the graph.
"""

import collections
import json

import apache_beam as beam
import pytest
from apache_beam.testing.util import assert_that, equal_to

from beam_pipeline.event_producer import generate
from beam_pipeline.graph import GraphParams, build_graph
from transforms.records import KafkaRecord

pytestmark = pytest.mark.unit

START_MS = 1_795_323_600_000  # 2026-11-22T05:00:00Z, a window boundary
RATE = 2.0  # events per second of event time: 400 events span 200 s, four windows


def _batch():
    return generate(
        400,
        "g1",
        5,
        START_MS,
        rate_per_s=RATE,
        malformed_ratio=0.03,
        invalid_ratio=0.03,
        duplicate_ratio=0.05,
        out_of_order_ratio=0.02,
    )


def _records(batch):
    # Offsets in send order, spread over three partitions.
    return [
        KafkaRecord("customer_events", i % 3, i, ts, key, value)
        for i, (key, value, ts) in enumerate(batch.messages)
    ]


def test_every_record_lands_in_exactly_one_output(pipeline):
    batch = _batch()
    records = _records(batch)
    labels = batch.labels
    kept_ids = sorted(
        {
            json.loads(r.value)["event_id"]
            for r, label in zip(records, labels, strict=True)
            if label in ("valid", "out_of_order", "duplicate")
        }
    )
    stages = collections.Counter(
        {"malformed": "decode", "invalid": "validate"}[label.split("/")[0]]
        for label in labels
        if "/" in label
    )
    # Which minute each kept original falls in (the producer stamps the Kafka record
    # with the event time, so the record timestamp is the event time).
    windows = collections.Counter()
    for r, label in zip(records, labels, strict=True):
        if label in ("valid", "out_of_order"):
            event = json.loads(r.value)
            start = (r.timestamp_ms // 60_000) * 60_000
            windows[(start, event["event_type"])] += 1

    with pipeline as p:
        out = build_graph(p, beam.Create(records), GraphParams("g1", window_size_s=60))
        assert_that(
            out.events | "Ids" >> beam.Map(lambda e: e.event_id),
            equal_to(kept_ids),
            label="CheckEvents",
        )
        assert_that(
            out.dead_letters | "Stages" >> beam.Map(lambda d: d.stage),
            equal_to(list(stages.elements())),
            label="CheckDeadLetterStages",
        )
        assert_that(
            out.duplicates | "DupCount" >> beam.combiners.Count.Globally(),
            equal_to([labels.count("duplicate")]),
            label="CheckDuplicates",
        )
        assert_that(
            out.counts
            | "Windows" >> beam.Map(lambda c: ((c.window_start_ms, c.event_type), c.event_count)),
            equal_to(list(windows.items())),
            label="CheckWindowCounts",
        )
        coordinates = (
            out.events | "EvOffsets" >> beam.Map(lambda e: e.kafka_offset),
            out.dead_letters | "DlOffsets" >> beam.Map(lambda d: d.kafka_offset),
            out.duplicates | "DupOffsets" >> beam.Map(lambda d: d.kafka_offset),
        ) | beam.Flatten()
        assert_that(coordinates, equal_to(list(range(len(records)))), label="CheckOffsets")
    assert len(windows) > 3  # the batch really spans several windows and types
