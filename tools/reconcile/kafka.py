"""The dead-letter topic's term: the run's distinct source records on it."""

from __future__ import annotations

from confluent_kafka import OFFSET_BEGINNING, Consumer, TopicPartition

from beam_pipeline.kafka_security import client_config
from transforms.kafka_io import HEADER_PREFIX

__all__ = ["count_dead_letter_messages"]


def count_dead_letter_messages(
    bootstrap_servers: str, topic: str, run_id: str, dataset: str
) -> int:
    """Distinct source records among the run's messages of ``dataset`` on the
    dead-letter ``topic``.

    A Kafka sink is at least once (a retried bundle, or a re-run of the same records,
    writes a message again), so the term counts distinct source coordinates.  Reads
    every partition from its beginning to its end offset at the start; raises
    ``RuntimeError`` if no message comes for 10 s before that end is reached.
    """
    consumer = Consumer(
        client_config(
            bootstrap_servers,
            {
                "group.id": "beamline-reconcile",
                "enable.auto.commit": False,
                "log_level": 0,
            },
        )
    )
    try:
        partitions = consumer.list_topics(topic, timeout=10).topics[topic].partitions
        remaining = {}
        for p in partitions:
            low, high = consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=10)
            if high > low:
                remaining[p] = high
        consumer.assign([TopicPartition(topic, p, OFFSET_BEGINNING) for p in remaining])
        wanted, found = (run_id.encode(), dataset.encode()), set()
        while remaining:
            message = consumer.poll(10)
            if message is None:
                raise RuntimeError(f"reading {topic} stalled with {remaining} left to reach")
            if message.error():
                continue
            headers = dict(message.headers() or [])
            if (
                headers.get(HEADER_PREFIX + "run_id"),
                headers.get(HEADER_PREFIX + "dataset"),
            ) == wanted:
                found.add(
                    tuple(
                        headers.get(HEADER_PREFIX + f"source.{name}")
                        for name in ("topic", "partition", "offset")
                    )
                )
            if message.offset() + 1 >= remaining.get(message.partition(), 0):
                remaining.pop(message.partition(), None)
        return len(found)
    finally:
        consumer.close()
