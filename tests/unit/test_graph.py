"""The whole graph on Create: every record in exactly one output, outputs as the labels say.

The input is a generated batch whose labels say what each message is (valid,
out of order, duplicate, malformed/<kind>, invalid/<kind>); the expectations
below come from those labels, not from running the graph.
"""

import collections
import datetime
import json

import apache_beam as beam
import pytest
from apache_beam.testing.test_stream import TestStream
from apache_beam.testing.util import assert_that, equal_to
from apache_beam.transforms.window import TimestampedValue

import datasets
from beam_pipeline.graph import GraphParams, build_graph, late_dead_letter
from datasets.customer_events import DATASET
from schemas.normalise import value_at
from schemas.records import KafkaRecord
from schemas.values import event_time_ms, format_timestamp
from tests.samples import customer
from tools.event_producer import generate
from transforms.aggregate import LateArrival

pytestmark = pytest.mark.unit

START_MS = 1_795_323_600_000  # 2026-11-22T05:00:00Z, a window boundary
RATE = 2.0  # events per second of event time: 400 events span 200 s, four windows


def _batch(dataset=DATASET):
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
        dataset=dataset,
    )


def _records(batch, topic="customer_events"):
    # Offsets in send order, spread over three partitions.
    return [
        KafkaRecord(topic, i % 3, i, ts, key, value)
        for i, (key, value, ts) in enumerate(batch.messages)
    ]


# Datasets with a generator that keep the first copy.  A keep_latest dataset emits a
# version and may log it later as replaced, in an order the batch runner chooses: its
# graph is tested on hand-made versions below, its runs by the reconciliation.
GENERATED = [
    n
    for n in datasets.names()
    if datasets.get(n).new_maker is not None
    and datasets.get(n).contract.dedup.kind == "drop_later_copies"
]


@pytest.mark.parametrize("name", GENERATED)
def test_every_record_lands_in_exactly_one_output(pipeline, name):
    dataset = datasets.get(name)
    contract = dataset.contract
    id_field, keys = contract.id_field, contract.aggregate.keys
    key_paths = [contract.column_path(key) for key in keys]
    batch = _batch(dataset)
    records = _records(batch, contract.topic)
    labels = batch.labels
    kept_ids = sorted(
        {
            json.loads(r.value)[id_field]
            for r, label in zip(records, labels, strict=True)
            if label in ("valid", "out_of_order", "duplicate")
        }
    )
    stages = collections.Counter(
        {"malformed": "decode", "invalid": "validate"}[label.split("/")[0]]
        for label in labels
        if "/" in label
    )
    # Which minute each kept original falls in, by its event time (the Kafka
    # timestamp is the feed's clock when it was sent, later for an out-of-order one).
    windows = collections.Counter()
    # Per window of the Kafka timestamp: records read, valid, duplicate, dead-lettered.
    stage_counts = collections.Counter()
    for r, label in zip(records, labels, strict=True):
        start = (r.timestamp_ms // 60_000) * 60_000
        stage_counts[(start, "read")] += 1
        if label in ("valid", "out_of_order"):
            event = json.loads(r.value)
            at_ms = event_time_ms(value_at(event, contract.event_time_field))
            windows[(at_ms // 60_000 * 60_000, *(event[path] for path in key_paths))] += 1
        if label in ("valid", "out_of_order", "duplicate"):
            stage_counts[(start, "valid")] += 1
        if label == "duplicate":
            stage_counts[(start, "duplicate")] += 1
        if "/" in label:
            stage = {"malformed": "decode", "invalid": "validate"}[label.split("/")[0]]
            stage_counts[(start, f"dead_letter:{stage}")] += 1

    # Each kept event's array items, once per id (a duplicate is a byte copy).
    items = collections.Counter()
    seen_ids = set()
    for r, label in zip(records, labels, strict=True):
        if label in ("valid", "out_of_order", "duplicate"):
            event = json.loads(r.value)
            if event[id_field] not in seen_ids:
                seen_ids.add(event[id_field])
                for child in contract.children:
                    items[child.table] += len(event[child.path])

    with pipeline as p:
        out = build_graph(p, dataset, beam.Create(records), GraphParams("g1", window_size_s=60))
        id_column, count_column = contract.id_column(), contract.aggregate.count_column
        assert set(out.children) == {child.table for child in contract.children}
        # The shared tables' rows name their dataset, which leads those tables' keys.
        shared = (
            (out.dead_letters, "DeadLetter"),
            (out.duplicates, "Duplicate"),
            (out.stage_counts, "StageCount"),
        )
        for pcoll, kind in shared:
            assert_that(
                pcoll
                | f"{kind}Dataset" >> beam.Map(lambda r: r.dataset)
                | f"{kind}Datasets" >> beam.Distinct(),
                equal_to([name]),
                label=f"Check{kind}Dataset",
            )
        for table, rows in out.children.items():
            assert_that(
                rows
                | f"Parents{table}" >> beam.Map(lambda c: getattr(c, id_column) in seen_ids)
                | f"Count{table}" >> beam.combiners.Count.PerElement(),
                equal_to([(True, items[table])] if items[table] else []),
                label=f"Check{table}",
            )
        assert_that(
            out.events | "Ids" >> beam.Map(lambda e: getattr(e, id_column)),
            equal_to(kept_ids),
            label="CheckEvents",
        )
        assert_that(
            out.dead_letters | "Stages" >> beam.Map(lambda d: d.stage),
            equal_to(list(stages.elements())),
            label="CheckDeadLetterStages",
        )
        # Each dead letter carries its record's raw bytes and key, as read.
        as_read = {r.offset: (r.value, r.key) for r in records}
        assert_that(
            out.dead_letters
            | "AsRead" >> beam.Map(lambda d: (d.payload, d.kafka_key) == as_read[d.kafka_offset]),
            equal_to([True] * sum(stages.values())),
            label="CheckDeadLetterBytes",
        )
        assert_that(
            out.duplicates | "DupCount" >> beam.combiners.Count.Globally(),
            equal_to([labels.count("duplicate")]),
            label="CheckDuplicates",
        )
        assert_that(
            out.counts
            | "Windows"
            >> beam.Map(
                lambda c: (
                    (c.window_start_ms, *(getattr(c, key) for key in keys)),
                    getattr(c, count_column),
                )
            ),
            equal_to(list(windows.items())),
            label="CheckWindowCounts",
        )
        assert_that(
            out.stage_counts
            | "StageWindows"
            >> beam.Map(lambda c: ((c.window_start_ms, c.stage), c.record_count, c.pane_index)),
            equal_to([(key, n, 0) for key, n in stage_counts.items()]),
            label="CheckStageCounts",
        )
        coordinates = (
            out.events | "EvOffsets" >> beam.Map(lambda e: e.kafka_offset),
            out.dead_letters | "DlOffsets" >> beam.Map(lambda d: d.kafka_offset),
            out.duplicates | "DupOffsets" >> beam.Map(lambda d: d.kafka_offset),
        ) | beam.Flatten()
        assert_that(coordinates, equal_to(list(range(len(records)))), label="CheckOffsets")
    assert len(windows) > 3  # the batch really spans several windows and types


def test_a_late_event_is_kept_counted_nowhere_and_dead_lettered_late(stream_pipeline):
    # Three valid events at 10 s, 20 s and 130 s of event time (windows of 60 s, no
    # allowed lateness), sent with the watermark at 0; the watermark then passes 130,
    # closing [0, 60) and [60, 120); a fourth event at 30 s arrives after that.
    # Hand-computed: events 4 (the late one included); counts [0, 60) = 2 and
    # [120, 180) = 1; one dead letter, stage late, for offset 3; stage counts for
    # [0, 60): read 3, valid 3, late 1.
    batch = generate(4, "g2", 9, START_MS, rate_per_s=1.0)
    times_s = [10, 20, 130, 30]
    records = [
        KafkaRecord("customer_events", 0, i, START_MS + t * 1000, key, _retime(value, t))
        for i, ((key, value, _), t) in enumerate(zip(batch.messages, times_s, strict=True))
    ]

    def at(r):
        return TimestampedValue(r, r.timestamp_ms / 1000)

    stream = (
        TestStream()
        .advance_watermark_to(START_MS / 1000)
        .add_elements([at(r) for r in records[:3]])
        .advance_watermark_to(START_MS / 1000 + 131)
        .add_elements([at(records[3])])
        .advance_watermark_to(START_MS / 1000 + 400)
        .advance_watermark_to_infinity()
    )
    with stream_pipeline as p:
        out = build_graph(
            p, DATASET, stream, GraphParams("g2", window_size_s=60, allowed_lateness_s=0)
        )
        assert_that(
            out.events | "Offsets" >> beam.Map(lambda e: e.kafka_offset),
            equal_to([0, 1, 2, 3]),
            label="CheckEvents",
        )
        assert_that(
            out.counts
            | "Totals" >> beam.Map(lambda c: (c.window_start_ms - START_MS, c.event_count)),
            equal_to([(0, n) for n in _per_type(batch, [0, 1])] + [(120_000, 1)]),
            label="CheckCounts",
        )
        assert_that(
            out.dead_letters | "Late" >> beam.Map(lambda d: (d.stage, d.reason, d.kafka_offset)),
            equal_to([("late", "after_window_closed", 3)]),
            label="CheckLateLane",
        )
        # The late dead letter keeps the record as read (not the normalised row).
        assert_that(
            out.dead_letters | "LateBytes" >> beam.Map(lambda d: (d.payload, d.kafka_key)),
            equal_to([(records[3].value, records[3].key)]),
            label="CheckLateBytes",
        )
        assert_that(
            out.stage_counts
            | "FirstWindow" >> beam.Filter(lambda c: c.window_start_ms == START_MS)
            | "Final" >> beam.Map(lambda c: (c.stage, c.record_count)),
            # read and valid: on-time pane 2 (10 s, 20 s), then late pane 3 (30 s)
            equal_to([("read", 2), ("read", 3), ("valid", 2), ("valid", 3), ("late", 1)]),
            label="CheckStageCounts",
        )


def test_a_copy_after_the_dedup_ttl_is_late_never_counted_twice(stream_pipeline):
    # The rule for a copy that arrives after its id was forgotten (docs/pipeline.md, "Dedup
    # after its TTL"): with the TTL covering window + allowed lateness (the job
    # refuses less), the copy's window has closed before its id's state expires, so
    # the copy is in the late lane: a `late` dead letter with its coordinates, kept
    # in the events output (a second Parquet row the reconciliation flags), never in
    # a window count, not a duplicate.  Hand-computed: the original at 10 s (offset
    # 0) counts 1 in [0, 60); its state expires at 10 + 120 s; the watermark passes
    # 200 s; the same bytes again (offset 1) are late.
    batch = generate(1, "g3", 9, START_MS, rate_per_s=1.0)
    key, value = batch.messages[0][0], _retime(batch.messages[0][1], 10)
    original, copy = (
        KafkaRecord("customer_events", 0, i, START_MS + 10_000, key, value) for i in (0, 1)
    )
    stream = (
        TestStream()
        .advance_watermark_to(START_MS / 1000)
        .add_elements([TimestampedValue(original, START_MS / 1000 + 10)])
        .advance_watermark_to(START_MS / 1000 + 200)
        .add_elements([TimestampedValue(copy, START_MS / 1000 + 10)])
        .advance_watermark_to_infinity()
    )
    params = GraphParams("g3", dedup_ttl_s=120, window_size_s=60, allowed_lateness_s=0)
    with stream_pipeline as p:
        out = build_graph(p, DATASET, stream, params)
        assert_that(
            out.events | "Offsets" >> beam.Map(lambda e: e.kafka_offset),
            equal_to([0, 1]),
            label="CheckEvents",
        )
        assert_that(
            out.counts
            | "Totals" >> beam.Map(lambda c: (c.window_start_ms - START_MS, c.event_count)),
            equal_to([(0, 1)]),
            label="CheckCounts",
        )
        assert_that(
            out.dead_letters | "Late" >> beam.Map(lambda d: (d.stage, d.kafka_offset)),
            equal_to([("late", 1)]),
            label="CheckLateLane",
        )
        assert_that(out.duplicates, equal_to([]), label="CheckNoDuplicate")
        # Stage counts keep [0, 60) open for twice the TTL (until 300 s): the copy,
        # read at 200 s, is counted there too, in a late pane.
        assert_that(
            out.stage_counts | "Stages" >> beam.Map(lambda c: (c.stage, c.record_count)),
            equal_to([("read", 1), ("read", 2), ("valid", 1), ("valid", 2), ("late", 1)]),
            label="CheckStageCounts",
        )


def test_a_live_read_judges_each_record_by_its_arrival_whatever_the_watermark(stream_pipeline):
    # A restored job reads its backlog with the watermark behind (here it never moves
    # before the end): the verdicts must still be the first run's, which the records'
    # own Kafka timestamps (their arrival, minus the 5 s read delay) decide.  Windows
    # of 60 s, no allowed lateness ([0, 60) closes at 59.999 s), dedup TTL 120 s.
    #   offset 0: A at 10 s, sent at 10 s          → counted in [0, 60)
    #   offset 1: A again, sent at 15 s             → a duplicate (10 s < 10 + 120 s)
    #   offset 2: B at 30 s, sent at 140 s          → late (arrival 135 s > 59.999 s)
    #   offset 3: A again, sent at 200 s            → after A's TTL (195 s ≥ 130 s): kept
    #                                                 as a first copy, then late
    batch = generate(2, "g5", 9, START_MS, rate_per_s=1.0)
    (key_a, a, _), (key_b, b, _) = batch.messages
    sent = [(key_a, _retime(a, 10), 10), (key_a, _retime(a, 10), 15)]
    sent += [(key_b, _retime(b, 30), 140), (key_a, _retime(a, 10), 200)]
    records = [
        KafkaRecord("customer_events", 0, i, START_MS + t * 1000, key, value)
        for i, (key, value, t) in enumerate(sent)
    ]
    stream = (
        TestStream()
        .advance_watermark_to(START_MS / 1000)
        .add_elements([TimestampedValue(r, r.timestamp_ms / 1000) for r in records])
        .advance_watermark_to(START_MS / 1000 + 400)  # only once all is read
        .advance_watermark_to_infinity()
    )
    params = GraphParams(
        "g5", dedup_ttl_s=120, window_size_s=60, allowed_lateness_s=0, arrival_delay_ms=5000
    )
    with stream_pipeline as p:
        out = build_graph(p, DATASET, stream, params)
        assert_that(
            out.counts
            | "Totals" >> beam.Map(lambda c: (c.window_start_ms - START_MS, c.event_count)),
            equal_to([(0, 1)]),
            label="CheckCounts",
        )
        assert_that(
            out.dead_letters | "Late" >> beam.Map(lambda d: (d.stage, d.kafka_offset)),
            equal_to([("late", 2), ("late", 3)]),
            label="CheckLateLane",
        )
        assert_that(
            out.duplicates | "Dups" >> beam.Map(lambda d: (d.kafka_offset, d.kept_offset)),
            equal_to([(1, 0)]),
            label="CheckDuplicates",
        )


def _retime(value: bytes, seconds: int) -> bytes:
    event = json.loads(value)
    moment = datetime.datetime.fromtimestamp(START_MS / 1000 + seconds, tz=datetime.timezone.utc)
    event["timestamp"] = moment.isoformat()
    return json.dumps(event).encode()


def _per_type(batch, indexes) -> list[int]:
    types = collections.Counter(json.loads(batch.messages[i][1])["event_type"] for i in indexes)
    return list(types.values())


def test_a_late_event_in_the_year_1_is_a_late_dead_letter_not_a_crash(stream_pipeline):
    # Valid times start at 0001-01-01T00:00:00Z; a window of 7 s that holds the first
    # seconds of year 1 starts before it, where datetime cannot go: the late lane's
    # detail once raised there, on every retry of the bundle.
    year_1_ms = -62_135_596_800_000
    assert (year_1_ms + 1000) // 7000 * 7000 < year_1_ms  # the window starts in year 0
    batch = generate(2, "g3", 9, START_MS, rate_per_s=1.0)
    records = []
    for i, (key, value, _) in enumerate(batch.messages):
        event = json.loads(value)
        event["timestamp"] = f"0001-01-01T00:00:0{i + 1}Z"
        event["event_type"] = "browse"  # one key: its window's timer has fired
        records.append(
            KafkaRecord(
                "customer_events", 0, i, year_1_ms + (i + 1) * 1000, key, json.dumps(event).encode()
            )
        )

    def at(r):
        return TimestampedValue(r, r.timestamp_ms / 1000)

    stream = (
        TestStream()
        .advance_watermark_to(year_1_ms / 1000)
        .add_elements([at(records[0])])
        .advance_watermark_to(year_1_ms / 1000 + 100)
        .add_elements([at(records[1])])
        .advance_watermark_to_infinity()
    )
    with stream_pipeline as p:
        out = build_graph(
            p, DATASET, stream, GraphParams("g3", window_size_s=7, allowed_lateness_s=0)
        )
        assert_that(
            out.dead_letters | "Late" >> beam.Map(lambda d: (d.stage, d.kafka_offset)),
            equal_to([("late", 1)]),
            label="CheckLateLane",
        )
        assert_that(
            out.dead_letters | "Detail" >> beam.Map(lambda d: d.detail.split(", which closed")[0]),
            # Instants as the contract writes them (format_timestamp); the window's
            # start, before year 1, in milliseconds.
            equal_to(
                [
                    f"event time {format_timestamp(year_1_ms + 2000)} is in window "
                    f"[-62135596803000 ms since the epoch, {format_timestamp(year_1_ms + 4000)})"
                ]
            ),
            label="CheckDetail",
        )


def test_the_late_detail_names_each_instant_to_the_millisecond():
    # 2275-03-22T03:58:21.810Z: as a float of seconds, 9,631,799,901.81 is just below
    # .810, which formatting through datetime.fromtimestamp printed as .809.
    ms = 9_631_799_901_810
    record = KafkaRecord("customer_events", 0, 7, ms, b"k", b"{}")
    row = collections.namedtuple("Row", "event_time_ms")(ms)
    letter = late_dead_letter(
        LateArrival((record, row), ms - 1810, ms + 58_190, ms + 58_189), 0, "r", "event_time_ms"
    )
    assert (letter.stage, letter.reason, letter.kafka_offset) == ("late", "after_window_closed", 7)
    assert letter.detail.startswith(
        "event time 2275-03-22T03:58:21.810Z is in window [2275-03-22T03:58:20.000Z, "
        "2275-03-22T03:59:20.000Z), which closed when the watermark passed "
        "2275-03-22T03:59:19.999Z (allowed lateness 0 s)"
    )


def _customer(customer_id: str, updated_at: str, **changes) -> dict:
    changes = {"monthly_charges": 70.5, "total_charges": 846.0, **changes}
    return customer(customer_id=customer_id, updated_at=updated_at, **changes)


def test_keep_latest_on_the_customers_rows_keeps_the_newest_version(stream_pipeline):
    # The customers contract, keep_latest by updated_at, through the whole graph on its
    # real row type (column updated_at_ms).  Arrival order, one customer c-1:
    #   @0 v 01-02 first → kept; @1 v 01-01 older → logged naming @0;
    #   @2 v 01-03 newer → kept, @0 logged as replaced by @2; @3 v 01-03 equal → logged
    #   naming @2.  Customer c-2 (@4) has no total_charges: 24 × 50.0 = 1200.0.
    #   @5 is not JSON: one dead letter, stage decode.
    # Counts per hour window of updated_at by contract: the three kept rows, one each
    # in the windows of 01-02 10:00, 01-03 10:00 (One year) and 01-03 11:00 (Two year).
    from datasets.customers import DATASET as CUSTOMERS

    values = [
        _customer("c-1", "2026-01-02T10:00:00Z"),
        _customer("c-1", "2026-01-01T10:00:00Z"),
        _customer("c-1", "2026-01-03T10:00:00+00:00"),
        _customer("c-1", "2026-01-03T10:00:00Z", tenure=13),
        _customer(
            "c-2",
            "2026-01-03T11:30:00Z",
            contract="Two year",
            tenure=24,
            monthly_charges=50.0,
            total_charges=None,
        ),
    ]
    encoded = [json.dumps(v).encode() for v in values] + [b"{not json"]
    records = [
        KafkaRecord("customers", 0, i, START_MS + i, b"k", value) for i, value in enumerate(encoded)
    ]
    stream = TestStream().advance_watermark_to(0)
    for r in records:
        stream = stream.add_elements([TimestampedValue(r, r.timestamp_ms / 1000)])
    # Past every window's close first: panes a timer emits at the jump to infinity
    # would come after the assertion's own global window ended.
    stream = stream.advance_watermark_to(START_MS / 1000).advance_watermark_to_infinity()

    def ms(text):
        return int(datetime.datetime.fromisoformat(text).timestamp() * 1000)

    with stream_pipeline as p:
        out = build_graph(p, CUSTOMERS, stream, GraphParams("c1"))
        assert_that(
            out.events
            | "Kept" >> beam.Map(lambda r: (r.kafka_offset, r.updated_at_ms, r.total_charges)),
            equal_to(
                [
                    (0, ms("2026-01-02T10:00:00+00:00"), 846.0),
                    (2, ms("2026-01-03T10:00:00+00:00"), 846.0),
                    (4, ms("2026-01-03T11:30:00+00:00"), 1200.0),
                ]
            ),
            label="CheckKept",
        )
        assert_that(
            out.duplicates | "Log" >> beam.Map(lambda d: (d.kafka_offset, d.kept_offset)),
            equal_to([(1, 0), (0, 2), (3, 2)]),
            label="CheckLog",
        )
        assert_that(
            out.dead_letters | "Dead" >> beam.Map(lambda d: (d.stage, d.kafka_offset)),
            equal_to([("decode", 5)]),
            label="CheckDeadLetters",
        )
        assert_that(
            out.counts
            | "Counts" >> beam.Map(lambda c: (c.window_start_ms, c.contract, c.customer_versions)),
            equal_to(
                [
                    (ms("2026-01-02T10:00:00+00:00"), "One year", 1),
                    (ms("2026-01-03T10:00:00+00:00"), "One year", 1),
                    (ms("2026-01-03T11:00:00+00:00"), "Two year", 1),
                ]
            ),
            label="CheckCounts",
        )


@pytest.mark.parametrize("name", [n for n in datasets.names() if datasets.get(n).new_maker])
def test_every_dataset_has_a_late_lane(stream_pipeline, name):
    # One group, 7 s windows, no lateness: the first event (at +1 s) fires its window
    # when the watermark passes +7 s; a second event of the same group at +2 s, sent
    # once the watermark is at +100 s, is late.  The late lane reads each contract's
    # own event-time column (customers': updated_at_ms; it once read event_time_ms,
    # raised, and retried the bundle for ever).
    dataset = datasets.get(name)
    contract = dataset.contract
    batch = generate(4, "g4", 9, START_MS, rate_per_s=1.0, dataset=dataset)
    first = json.loads(batch.messages[0][1])
    records = []
    for i in range(2):
        event = dict(first)
        event[contract.id_field] = f"{first[contract.id_field]}-{i}"
        event[contract.event_time_field] = format_timestamp(START_MS + (i + 1) * 1000)
        value = json.dumps(event).encode()
        records.append(KafkaRecord(contract.topic, 0, i, START_MS + (i + 1) * 1000, None, value))

    def at(r):
        return TimestampedValue(r, r.timestamp_ms / 1000)

    stream = (
        TestStream()
        .advance_watermark_to(START_MS / 1000)
        .add_elements([at(records[0])])
        .advance_watermark_to(START_MS / 1000 + 100)
        .add_elements([at(records[1])])
        .advance_watermark_to_infinity()
    )
    with stream_pipeline as p:
        out = build_graph(
            p, dataset, stream, GraphParams("g4", window_size_s=7, allowed_lateness_s=0)
        )
        assert_that(
            out.dead_letters
            | "Late"
            >> beam.Map(lambda d: (d.stage, d.kafka_offset, d.detail.split(" is in window")[0])),
            equal_to([("late", 1, "event time 2026-11-22T05:00:02.000Z")]),
            label="CheckLateLane",
        )
