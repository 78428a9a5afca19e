"""The main job against the real Kafka and PostgreSQL: produce, run the DAG, reconcile.

ReadFromKafka's Java side, the PostgreSQL writer and Beamline's per-partition read run in
the loopback Java worker of the expansion service the driver starts.  The
expectations come from the producer's labels (the batch is regenerated from the
report's seed), and from the reconciliation, whose every term is read from a sink.
"""

import collections
import json
import shutil

import pytest
from confluent_kafka import OFFSET_BEGINNING, Consumer, TopicPartition

from beam_pipeline import driver
from beam_pipeline.graph import DEAD_LETTER_TOPIC
from beam_pipeline.kafka_security import client_config
from datasets.customer_events import DATASET
from schemas.normalise import value_at
from schemas.values import event_time_ms
from tools import main_job, reconcile
from tools.event_producer import generate

pytestmark = pytest.mark.integration

EVENTS = 300
RATIOS = {"malformed": 0.03, "invalid": 0.03, "duplicates": 0.05, "out_of_order": 0.02}
RATE = 5.0  # events per second of event time: 300 events span a minute or two


def _main_job(topic, output_dir, capsys):
    flags = [f"--{name}={value}" for name, value in RATIOS.items()]
    code = main_job.main(
        [
            f"--events={EVENTS}",
            f"--rate={RATE}",
            f"--kafka_topic={topic}",
            f"--output_dir={output_dir}",
            *flags,
        ]
    )
    out = capsys.readouterr().out.strip().splitlines()
    summary = json.loads(out[-1])
    return code, summary


def _regenerate(report):
    return generate(
        EVENTS,
        report["run_id"],
        report["seed"],
        report["start_ms"],
        rate_per_s=RATE,
        malformed_ratio=RATIOS["malformed"],
        invalid_ratio=RATIOS["invalid"],
        duplicate_ratio=RATIOS["duplicates"],
        out_of_order_ratio=RATIOS["out_of_order"],
    )


def _dead_letter_messages(bootstrap_servers, run_id):
    """(partition, offset, stage, reason, value) of the run's messages on the dead-letter topic."""
    consumer = Consumer(
        client_config(
            bootstrap_servers,
            {
                "group.id": f"it-dlq-{run_id}",
                "enable.auto.commit": False,
                "log_level": 0,
            },
        )
    )
    topic = DEAD_LETTER_TOPIC
    try:
        ends = {}
        for p in consumer.list_topics(topic, timeout=10).topics[topic].partitions:
            low, high = consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=10)
            if high > low:
                ends[p] = high
        consumer.assign([TopicPartition(topic, p, OFFSET_BEGINNING) for p in ends])
        found = []
        while ends:
            message = consumer.poll(10)
            assert message is not None, f"the dead-letter topic stalled before {ends}"
            headers = {k: v.decode() for k, v in message.headers() or []}
            if headers.get("beamline.run_id") == run_id:
                found.append(
                    (
                        int(headers["beamline.source.partition"]),
                        int(headers["beamline.source.offset"]),
                        headers["beamline.stage"],
                        headers["beamline.reason"],
                        message.value(),
                    )
                )
            if message.offset() + 1 >= ends.get(message.partition(), 0):
                ends.pop(message.partition(), None)
        return found
    finally:
        consumer.close()


def _rows(pg, sql, run_id):
    with pg.cursor() as cur:
        cur.execute(sql, (run_id,))
        return cur.fetchall()


def test_two_runs_balance_and_the_sinks_hold_what_was_produced(
    stack, fresh_topic, pg, tmp_path, capsys
):
    code, first = _main_job(fresh_topic, tmp_path, capsys)
    assert code == 0, first
    # The ten every dataset has, and customer events' child tables.
    assert first["passed"] and len(first["checks"]) == 12 and all(first["checks"].values())
    assert first["terms"]["kafka_dead_letters"] == first["terms"]["dead_letters"] > 0
    run_id = first["run_id"]
    report = json.loads((tmp_path / run_id / reconcile.REPORT_NAME).read_text())
    batch = _regenerate(report)
    assert report["sent"] == len(batch.messages) == first["terms"]["produced"]

    # The events table holds exactly the valid originals, by id.
    originals = [
        json.loads(value)
        for (_, value, _), label in zip(batch.messages, batch.labels, strict=True)
        if label in ("valid", "out_of_order")
    ]
    ids = _rows(pg, "SELECT event_id FROM customer_events WHERE run_id = %s", run_id)
    assert sorted(i for (i,) in ids) == sorted(e["event_id"] for e in originals)

    # Dead letters: one per malformed (stage decode) and invalid (stage validate) message.
    stages = _rows(
        pg, "SELECT stage, count(*) FROM dead_letters WHERE run_id = %s GROUP BY stage", run_id
    )
    labels = collections.Counter(label.split("/")[0] for label in batch.labels)
    assert dict(stages) == {"decode": labels["malformed"], "validate": labels["invalid"]}

    # The dead-letter topic holds the same records: raw bytes, coordinates in headers.
    in_postgres = _rows(
        pg,
        "SELECT kafka_partition, kafka_offset, stage, reason, payload FROM dead_letters "
        "WHERE run_id = %s",
        run_id,
    )
    in_kafka = _dead_letter_messages(stack.kafka_bootstrap_servers, run_id)
    assert sorted(in_kafka) == sorted(
        (p, o, stage, reason, bytes(payload) if payload is not None else None)
        for p, o, stage, reason, payload in in_postgres
    )

    # Window counts: per minute and event type, counted here from the events.
    expected = collections.Counter()
    for (_, value, _), label in zip(batch.messages, batch.labels, strict=True):
        if label in ("valid", "out_of_order"):
            event = json.loads(value)
            at_ms = event_time_ms(value_at(event, DATASET.contract.event_time_field))
            expected[(at_ms // 60_000 * 60_000, event["event_type"])] += 1
    counts = _rows(
        pg,
        "SELECT window_start_ms, event_type, event_count, pane_index, pane_timing "
        "FROM customer_event_counts WHERE run_id = %s",
        run_id,
    )
    assert {(w, t): n for w, t, n, _, _ in counts} == dict(expected)
    # A batch run: the watermark jumps to the end, each window fires once, on time.
    assert {(pane, timing) for *_, pane, timing in counts} == {(0, "on_time")}

    # Stage counts per minute of Kafka time, counted here from the labels.
    stage_expected = collections.Counter()
    for (_, _, ts), label in zip(batch.messages, batch.labels, strict=True):
        minute = ts // 60_000 * 60_000
        stage_expected[(minute, "read")] += 1
        kind = label.split("/")[0]
        if kind in ("valid", "out_of_order", "duplicate"):
            stage_expected[(minute, "valid")] += 1
        stage = {"duplicate": "duplicate", "malformed": "dead_letter:decode"}.get(kind)
        stage = stage or {"invalid": "dead_letter:validate"}.get(kind)
        if stage:
            stage_expected[(minute, stage)] += 1
    stage_rows = _rows(
        pg,
        "SELECT window_start_ms, stage, record_count FROM window_stage_counts WHERE run_id = %s",
        run_id,
    )
    assert {(w, st): n for w, st, n in stage_rows} == dict(stage_expected)

    # Duplicate log: one row per injected copy, each naming a kept copy of its id.
    dups = _rows(
        pg,
        "SELECT d.event_id, e.kafka_partition, e.kafka_offset, d.kept_partition, d.kept_offset "
        "FROM duplicate_log d JOIN customer_events e USING (event_id) WHERE d.run_id = %s",
        run_id,
    )
    assert len(dups) == labels["duplicate"]
    assert all((p, o) == (kp, ko) for _, p, o, kp, ko in dups)

    # The same records again under the same run_id and output folder: upserts leave
    # every table as it was, and the Parquet files are replaced, not added to.  A file
    # of another shard count (what a re-run that shards differently leaves) is planted
    # first: the reconciliation would count its rows twice if it stayed.
    shard = sorted((tmp_path / run_id / "customer_events").glob("*.parquet"))[0]
    shutil.copy(shard, shard.with_name("part-00098-of-00099.parquet"))
    assert (
        driver.main(
            [
                f"--run_id={run_id}",
                f"--kafka_topic={fresh_topic}",
                "--kafka_start_offsets="
                + ",".join(f"{p}={o}" for p, o in report["offsets_before"].items()),
                "--kafka_stop_offsets="
                + ",".join(f"{p}={o}" for p, o in report["offsets_after"].items()),
                f"--output_dir={tmp_path}",
            ]
        )
        == 0
    )
    terms, results = reconcile.reconcile(DATASET, run_id, report, tmp_path, stack)
    assert all(c.passed for c in results), [c for c in results if not c.passed]
    assert json.loads(json.dumps(terms.__dict__)) == first["terms"]

    # A second run on the same topic balances for its own run_id.
    code, second = _main_job(fresh_topic, tmp_path, capsys)
    assert code == 0 and second["passed"] and second["run_id"] != run_id
    assert second["terms"]["produced"] == first["terms"]["produced"]  # same sizes, new events


def test_unreachable_postgres_is_one_clear_line(stack, monkeypatch, capsys):
    # Kafka answers; nothing listens on port 1 for PostgreSQL.
    monkeypatch.setenv("BEAMLINE_PG_PORT", "1")
    code = driver.main(
        ["--kafka_max_records=5", f"--kafka_bootstrap_servers={stack.kafka_bootstrap_servers}"]
    )
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 1 and len(err) == 1
    assert "PostgreSQL does not accept connections at 127.0.0.1:1" in err[0]
    assert "./run_local.sh start" in err[0]
