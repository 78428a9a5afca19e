"""Producing test and demo data to Kafka with confluent-kafka (outside the DAG).

``python -m beam_pipeline.producer --count 500 --malformed 5`` sends keyed JSON
proof records (``{"id": …, "seq": …}``) plus a few malformed values, and prints
one JSON line: what it sent and the per-partition offsets before and after.
"""

from __future__ import annotations

import argparse
import json
import sys
import typing

from confluent_kafka import Consumer, Producer, TopicPartition

from beam_pipeline.settings import StackSettings

__all__ = ["end_offsets", "produce", "proof_messages"]

# Values that are not proof records, one per decode/validate rule.
MALFORMED_VALUES = (
    b"{not json",
    b"\xff\xfe{\x00}\x00",
    b'{"id": "x", "seq": NaN}',
    b"[1, 2, 3]",
    b'{"id": 7, "seq": 1}',
    b"",
    b'{"seq": 3}',
)


def proof_messages(tag: str, count: int, malformed: int = 0) -> list[tuple[bytes, bytes]]:
    """``count`` valid records keyed ``<tag>-<i>``, then ``malformed`` bad values."""
    messages = [
        (
            f"{tag}-{i}".encode(),
            json.dumps({"id": f"{tag}-{i}", "seq": i, "note": f"record {i} of {count}"}).encode(),
        )
        for i in range(count)
    ]
    messages += [
        (f"{tag}-bad-{i}".encode(), MALFORMED_VALUES[i % len(MALFORMED_VALUES)])
        for i in range(malformed)
    ]
    return messages


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
        {"bootstrap.servers": bootstrap_servers, "enable.idempotence": True, "linger.ms": 5}
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


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m beam_pipeline.producer")
    parser.add_argument("--topic", default="proof_records")
    parser.add_argument("--count", type=int, default=500, help="valid records to send")
    parser.add_argument("--malformed", type=int, default=0, help="malformed values to send")
    parser.add_argument("--tag", default="proof", help="prefix of the record keys")
    args = parser.parse_args(argv)
    bootstrap = StackSettings.from_env().kafka_bootstrap_servers
    before = end_offsets(bootstrap, args.topic)
    sent = len(produce(bootstrap, args.topic, proof_messages(args.tag, args.count, args.malformed)))
    after = end_offsets(bootstrap, args.topic)
    print(
        json.dumps(
            {
                "topic": args.topic,
                "sent": sent,
                "valid": args.count,
                "malformed": args.malformed,
                "offsets_before": before,
                "offsets_after": after,
            }
        )
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
