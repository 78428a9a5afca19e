"""Producing to Kafka and reading its end offsets with confluent-kafka (outside the DAG).

``tools.event_producer`` builds the events; this module sends them.
"""

from __future__ import annotations

import typing

from confluent_kafka import Consumer, Producer, TopicPartition

__all__ = ["end_offsets", "produce"]


def end_offsets(bootstrap_servers: str, topic: str) -> dict[int, int]:
    """The next offset to be written, per partition of ``topic``."""
    consumer = Consumer({"bootstrap.servers": bootstrap_servers, "group.id": "beamline-offsets"})
    try:
        partitions = consumer.list_topics(topic, timeout=10).topics[topic].partitions
        return {
            p: consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=10)[1]
            for p in sorted(partitions)
        }
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
        {
            "bootstrap.servers": bootstrap_servers,
            "enable.idempotence": True,
            "linger.ms": 5,
            # librdkafka logs transient retries (coordinator loading) as warnings;
            # delivery failures are reported below through the callbacks.
            "log_level": 3,
        }
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
