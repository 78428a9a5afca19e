"""Producing to Kafka and reading its end offsets with confluent-kafka (outside the DAG).

``tools.event_producer`` builds the events; this module sends them.
"""

from __future__ import annotations

import time
import typing

from confluent_kafka import Consumer, KafkaError, KafkaException, Producer, TopicPartition

from beam_pipeline.kafka_security import client_config

__all__ = ["end_offsets", "produce"]

# What a partition answers while its leadership is still moving: right after the
# topic is created (the metadata already names a leader the broker has not yet
# installed, seen in CI), or while a broker restarts.
_LEADERSHIP_MOVING = frozenset(
    {
        KafkaError.NOT_LEADER_FOR_PARTITION,
        KafkaError.LEADER_NOT_AVAILABLE,
        KafkaError.UNKNOWN_TOPIC_OR_PART,
    }
)


def end_offsets(bootstrap_servers: str, topic: str, timeout_s: float = 30.0) -> dict[int, int]:
    """The next offset to be written, per partition of ``topic``.

    Asks again while a partition's leadership is moving, for up to ``timeout_s``;
    any other error, or the same one past the deadline, is raised.
    """
    consumer = Consumer(client_config(bootstrap_servers, {"group.id": "beamline-offsets"}))
    deadline = time.monotonic() + timeout_s
    try:
        while True:
            try:
                partitions = consumer.list_topics(topic, timeout=10).topics[topic].partitions
                return {
                    p: consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=10)[1]
                    for p in sorted(partitions)
                }
            except KafkaException as e:
                if e.args[0].code() not in _LEADERSHIP_MOVING or time.monotonic() > deadline:
                    raise
            time.sleep(0.2)  # back off before asking the broker again
    finally:
        consumer.close()


def produce(
    bootstrap_servers: str,
    topic: str,
    messages: typing.Iterable[tuple[bytes, bytes] | tuple[bytes, bytes, int]],
) -> list[tuple[bytes, int, int]]:
    """Sends messages and waits until the broker acknowledged all of them.

    A message is ``(key, value)`` or ``(key, value, timestamp_ms)``: with a
    timestamp (epoch milliseconds, positive) the Kafka record carries it as its
    CreateTime; without one, the producer stamps the time of sending.

    Returns ``(key, partition, offset)`` of every delivered message.  The producer is
    idempotent, so a retried send cannot write a message twice.
    """
    producer = Producer(
        client_config(
            bootstrap_servers,
            {
                "enable.idempotence": True,
                "linger.ms": 5,
                # librdkafka logs transient retries (coordinator loading) as warnings;
                # delivery failures are reported below through the callbacks.
                "log_level": 3,
            },
        )
    )
    errors: list[str] = []
    delivered: list[tuple[bytes, int, int]] = []

    def on_delivery(err, msg):
        if err is not None:
            errors.append(str(err))
        else:
            delivered.append((msg.key(), msg.partition(), msg.offset()))

    for message in messages:
        key, value, *rest = message
        options = {"timestamp": rest[0]} if rest and rest[0] is not None else {}
        while True:
            try:
                producer.produce(topic, key=key, value=value, on_delivery=on_delivery, **options)
                break
            except BufferError:
                producer.poll(0.5)
        producer.poll(0)
    remaining = producer.flush(60)
    if remaining or errors:
        raise RuntimeError(
            f"{remaining} messages not delivered, {len(errors)} failed: {errors[:3]}"
        )
    return delivered
