"""``python -m tools.event_producer``: send a batch to Kafka and report what was sent.

``send_batch`` is also the main job's, the bench's and the drills' way to send: it
reports what was injected and the per-partition offsets around the send, which is
what the reconciliation reads the run back by.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import secrets
import time

import datasets
from beam_pipeline.identifiers import run_id_argument
from beam_pipeline.settings import StackSettings
from tools.event_producer.batch import Batch, BatchSpec
from tools.producer import end_offsets, produce

__all__ = ["main", "paced", "send_batch"]


def main(argv=None) -> int:
    """Generates a batch, sends it to Kafka and prints a one-line JSON report."""
    parser = _parser()
    args = parser.parse_args(argv)
    run_id = args.run_id or secrets.token_hex(6)
    seed = args.seed if args.seed is not None else secrets.randbelow(2**31)
    start_ms = args.start_ms if args.start_ms is not None else time.time_ns() // 1_000_000
    dataset = datasets.get(args.dataset)
    spec = BatchSpec(
        count=args.count,
        rate_per_s=args.rate,
        users=args.users,
        value_format=args.value_format,
        dataset=dataset,
        malformed=args.malformed,
        invalid=args.invalid,
        duplicates=args.duplicates,
        out_of_order=args.out_of_order,
        late=args.late,
        late_shift_ms=round(args.late_shift_s * 1000),
    )
    try:
        batch = spec.generate(run_id, seed, start_ms)
    except ValueError as e:
        parser.error(str(e))
    report = send_batch(
        StackSettings.from_env().kafka_bootstrap_servers,
        args.topic or dataset.contract.topic,
        batch,
        run_id,
        seed,
        start_ms,
        live=args.live,
    )
    print(json.dumps(report))
    return 0


def send_batch(
    bootstrap_servers: str,
    topic: str,
    batch: Batch,
    run_id: str,
    seed: int,
    start_ms: int,
    live: bool = False,
    stop=None,
) -> dict:
    """Sends ``batch`` to ``topic`` and returns the producer's report.

    The report says what was injected and sent, and the per-partition end offsets
    before and after the send; ``produced`` is their difference per partition.
    With no other writer on the topic, the batch is exactly the offsets
    ``[offsets_before[p], offsets_after[p])`` of each partition ``p``.  With
    ``live``, each message is sent when the wall clock reaches its Kafka timestamp,
    its slot in the feed (``paced``; setting the ``stop`` event ends the feed early).
    """
    before = end_offsets(bootstrap_servers, topic)
    messages = paced(batch.messages, stop=stop) if live else batch.messages
    delivered = produce(bootstrap_servers, topic, messages)
    after = end_offsets(bootstrap_servers, topic)
    return {
        "run_id": run_id,
        "dataset": batch.dataset,
        "topic": topic,
        "value_format": batch.value_format,
        "seed": seed,
        "start_ms": start_ms,
        "injected": dataclasses.asdict(batch.injected),
        "sent": len(delivered),
        "offsets_before": before,
        "offsets_after": after,
        "produced": {p: after[p] - before.get(p, 0) for p in after},
    }


def paced(messages, clock=time.time, sleep=time.sleep, stop=None):
    """Yields ``(key, value, timestamp_ms)`` messages no earlier than their timestamps.

    A live feed: a message whose timestamp (its send slot, see ``Batch.messages``;
    not its event time, which is earlier for an out-of-order or late event) is in
    the future waits for it; one whose timestamp has passed goes at once.  Setting
    the ``stop`` event ends the feed early (the report then says what was sent).
    """
    for message in messages:
        wait_s = message[2] / 1000 - clock()
        if wait_s > 0:
            if stop is None:
                sleep(wait_s)
            elif stop.wait(wait_s):
                return
        if stop is not None and stop.is_set():
            return
        yield message


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m tools.event_producer",
        description="Send a dataset's deterministic records, with injected faults, to Kafka.",
    )
    parser.add_argument("--dataset", default=datasets.DEFAULT, choices=datasets.names())
    parser.add_argument("--count", type=int, default=1000, help="original events to generate")
    parser.add_argument("--seed", type=int, default=None, help="default: random, reported")
    parser.add_argument(
        "--run_id", type=run_id_argument, default=None, help="default: a random 12-hex id"
    )
    parser.add_argument("--rate", type=float, default=1000.0, help="events per second")
    parser.add_argument("--start_ms", type=int, default=None, help="default: now")
    parser.add_argument("--users", type=int, default=200, help="size of the user pool")
    parser.add_argument("--malformed", type=float, default=0.0, help="ratio of malformed")
    parser.add_argument("--invalid", type=float, default=0.0, help="ratio of invalid")
    parser.add_argument("--duplicates", type=float, default=0.0, help="ratio of duplicates")
    parser.add_argument("--out_of_order", type=float, default=0.0, help="ratio out of order")
    parser.add_argument("--late", type=float, default=0.0, help="ratio sent --late_shift_s behind")
    parser.add_argument("--late_shift_s", type=float, default=0.0, help="how far behind")
    parser.add_argument("--topic", default=None, help="default: the dataset's topic")
    parser.add_argument(
        "--live",
        action="store_true",
        help="send each record when the feed's clock reaches its timestamp",
    )
    parser.add_argument(
        "--value_format", default="json", choices=("json", "avro", "avro_confluent")
    )
    return parser
