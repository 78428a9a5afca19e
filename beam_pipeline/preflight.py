"""What the job checks before it builds a graph: that Kafka and PostgreSQL answer,
and where its consumer group starts.  Each failure is one line saying what to do.

Part of the job (the driver imports it); the operator's stack administration
(``tools.stack``: topics, migrations) builds on it.
"""

from __future__ import annotations

import socket
import typing

import psycopg2
from confluent_kafka import ConsumerGroupTopicPartitions, KafkaException, TopicPartition
from confluent_kafka.admin import AdminClient

from beam_pipeline.kafka_security import client_config
from beam_pipeline.settings import StackSettings

__all__ = [
    "ServiceUnavailable",
    "admin_client",
    "check_kafka",
    "check_listening",
    "check_postgres",
    "commit_offsets",
    "committed_offsets",
]


class ServiceUnavailable(RuntimeError):
    """A service of the local stack does not answer; the message says what to do."""


def admin_client(bootstrap_servers: str) -> AdminClient:
    # librdkafka logs every refused connection to stderr; the checks below turn an
    # unreachable broker into one line of their own instead.
    return AdminClient(
        client_config(bootstrap_servers, {"socket.timeout.ms": 5000, "log_level": 0})
    )


def check_kafka(bootstrap_servers: str, timeout_s: float = 5.0) -> None:
    """Raises ServiceUnavailable unless a broker answers at ``bootstrap_servers``."""
    try:
        admin_client(bootstrap_servers).list_topics(timeout=timeout_s)
    except KafkaException as e:
        raise ServiceUnavailable(
            f"Kafka does not answer at {bootstrap_servers} ({e.args[0].str()}): "
            "start it with ./run_local.sh start"
        ) from None


def check_postgres(settings: StackSettings) -> None:
    """Raises ServiceUnavailable unless PostgreSQL accepts Beamline's login (over
    TLS as ``BEAMLINE_PG_SSLMODE`` says)."""
    problem = settings.ssl_problem()
    if problem:
        raise ServiceUnavailable(problem)
    try:
        psycopg2.connect(connect_timeout=5, **settings.psycopg2_kwargs()).close()
    except psycopg2.OperationalError as e:
        first_line = str(e).strip().splitlines()[0]
        raise ServiceUnavailable(
            f"PostgreSQL does not accept connections at {settings.pg_host}:{settings.pg_port} "
            f"({first_line}): start it with ./run_local.sh start"
        ) from None


def check_listening(address: str, what: str, timeout_s: float = 2.0) -> None:
    """Raises ServiceUnavailable unless something accepts TCP connections at
    ``address`` (``host:port``); ``what`` names it in the message."""
    host, _, port = address.rpartition(":")
    try:
        socket.create_connection((host, int(port)), timeout=timeout_s).close()
    except OSError as e:
        raise ServiceUnavailable(
            f"{what} does not answer at {address} ({e.strerror or e}): "
            "start the cluster with ./run_local.sh flink start"
        ) from None


def commit_offsets(
    bootstrap_servers: str, group: str, topic: str, offsets: typing.Mapping[int, int]
) -> None:
    """Sets ``group``'s committed offsets on ``topic``: where a consumer of that group starts.

    ``offsets`` maps partition → the next offset to read.  The group must have no
    active member (a new group per run has none).
    """
    admin = admin_client(bootstrap_servers)
    request = ConsumerGroupTopicPartitions(
        group, [TopicPartition(topic, p, o) for p, o in sorted(offsets.items())]
    )
    for future in admin.alter_consumer_group_offsets([request]).values():
        future.result(timeout=30)


def committed_offsets(bootstrap_servers: str, group: str, topic: str) -> dict[int, int]:
    """``group``'s committed offsets on ``topic``: partition → the next offset to read
    (partitions without a commit are left out)."""
    admin = admin_client(bootstrap_servers)
    request = ConsumerGroupTopicPartitions(group)
    result = admin.list_consumer_group_offsets([request])[group].result(timeout=30)
    return {
        tp.partition: tp.offset
        for tp in result.topic_partitions
        if tp.topic == topic and tp.offset >= 0
    }
