"""The customer-events producer against the real broker: timestamps and the report."""

import json
import uuid

import pytest
from confluent_kafka import Consumer, TopicPartition

from tools import event_producer
from tools.event_producer import generate
from tools.producer import end_offsets
from tools.stack import create_topics, delete_topics

pytestmark = pytest.mark.integration

START_MS = 1_795_300_000_000


def _read_all(bootstrap_servers, topic, expected):
    consumer = Consumer(
        {
            "bootstrap.servers": bootstrap_servers,
            "group.id": f"read-{topic}",
            "enable.auto.commit": False,
            "log_level": 0,
        }
    )
    consumer.assign([TopicPartition(topic, p, 0) for p in range(3)])
    messages = []
    try:
        while len(messages) < expected:
            message = consumer.poll(10)
            assert message is not None, f"only {len(messages)} of {expected} messages arrived"
            assert message.error() is None, message.error()
            messages.append(message)
    finally:
        consumer.close()
    return messages


def test_main_sends_the_batch_with_its_send_time_timestamps(stack, fresh_topic, capsys):
    argv = ["--topic", fresh_topic, "--count", "40", "--seed", "3", "--run_id", "R1"]
    argv += ["--start_ms", str(START_MS), "--malformed", "0.05", "--duplicates", "0.1"]
    assert event_producer.main(argv) == 0
    report = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    batch = generate(40, "R1", 3, START_MS, malformed_ratio=0.05, duplicate_ratio=0.1)

    assert report["sent"] == batch.injected.total == 44
    assert sum(report["produced"].values()) == 44
    assert all(v == 0 for v in report["offsets_before"].values())

    received = _read_all(stack.kafka_bootstrap_servers, fresh_topic, 44)
    got = sorted((m.key(), m.value(), m.timestamp()[1]) for m in received)
    assert got == sorted(batch.messages)  # same bytes, Kafka timestamp = the send slot


def test_end_offsets_of_topics_just_created_are_zero_on_every_partition(stack):
    # A read right after creation raced the partition's leadership in CI
    # (NOT_LEADER_FOR_PARTITION); several fresh topics give the race its chance.
    names = [f"it_offsets_{i}_{uuid.uuid4().hex[:6]}" for i in range(4)]
    try:
        for name in names:
            create_topics(stack.kafka_bootstrap_servers, [name], partitions=3)
            assert end_offsets(stack.kafka_bootstrap_servers, name) == {0: 0, 1: 0, 2: 0}
    finally:
        delete_topics(stack.kafka_bootstrap_servers, names)
