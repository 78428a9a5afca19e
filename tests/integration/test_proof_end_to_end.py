"""The proof pipeline against the real Kafka and PostgreSQL, on the DirectRunner.

ReadFromKafka and WriteToJdbc run in the Java loopback worker of the expansion
service the driver starts: this test is the evidence that Beam's Java side works
here without Docker.
"""

import uuid

import pyarrow.parquet as pq
import pytest

from beam_pipeline import driver
from beam_pipeline.producer import end_offsets, produce, proof_messages

pytestmark = pytest.mark.integration

VALID, MALFORMED = 500, 7


def _run(stack, topic, run_id, output_dir):
    return driver.main(
        [
            "--runner=DirectRunner",
            f"--kafka_bootstrap_servers={stack.kafka_bootstrap_servers}",
            f"--kafka_topic={topic}",
            f"--kafka_max_records={VALID + MALFORMED}",
            f"--output_dir={output_dir}",
            f"--run_id={run_id}",
        ]
    )


def test_500_records_reach_postgres_and_parquet_exactly_once(stack, fresh_topic, pg, tmp_path):
    tag = uuid.uuid4().hex[:8]
    messages = proof_messages(tag, VALID, malformed=MALFORMED)
    delivered = produce(stack.kafka_bootstrap_servers, fresh_topic, messages)
    assert sum(end_offsets(stack.kafka_bootstrap_servers, fresh_topic).values()) == len(messages)
    expected = {f"{tag}-{i}": i for i in range(VALID)}
    coordinates = {key.decode(): (partition, offset) for key, partition, offset in delivered}

    assert _run(stack, fresh_topic, tag, tmp_path) == 0

    with pg.cursor() as cur:
        cur.execute(
            "SELECT record_key, seq, kafka_partition, kafka_offset, payload->>'id' "
            "FROM proof_records WHERE run_id = %s",
            (tag,),
        )
        rows = cur.fetchall()
    assert len(rows) == VALID
    assert {key: seq for key, seq, *_ in rows} == expected
    assert all((p, o) == coordinates[key] and pid == key for key, _, p, o, pid in rows)

    parquet = pq.read_table(tmp_path / tag / "proof_records").to_pylist()
    assert len(parquet) == VALID
    assert {row["record_key"]: row["seq"] for row in parquet} == expected

    dead = pq.read_table(tmp_path / tag / "dead_letters").to_pylist()
    bad_keys = {key.decode() for key, _ in messages[VALID:]}
    assert sorted(row["key"].decode() for row in dead) == sorted(bad_keys)
    assert all(
        (row["partition"], row["offset"]) == coordinates[row["key"].decode()] for row in dead
    )
    assert {row["stage"] for row in dead} == {"decode", "validate"}

    # Every produced (partition, offset) is in exactly one output.
    seen = [(r["kafka_partition"], r["kafka_offset"]) for r in parquet]
    seen += [(r["partition"], r["offset"]) for r in dead]
    assert sorted(seen) == sorted(coordinates.values())


def test_a_second_run_over_the_same_records_changes_nothing(stack, fresh_topic, pg, tmp_path):
    tag = uuid.uuid4().hex[:8]
    produce(stack.kafka_bootstrap_servers, fresh_topic, proof_messages(tag, VALID, MALFORMED))
    assert _run(stack, fresh_topic, tag, tmp_path / "first") == 0
    with pg.cursor() as cur:
        cur.execute("SELECT count(*), sum(seq) FROM proof_records WHERE run_id = %s", (tag,))
        first = cur.fetchone()
    assert _run(stack, fresh_topic, tag, tmp_path / "second") == 0
    with pg.cursor() as cur:
        cur.execute("SELECT count(*), sum(seq) FROM proof_records WHERE run_id = %s", (tag,))
        second = cur.fetchone()
    assert first == second == (VALID, sum(range(VALID)))
