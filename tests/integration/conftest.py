"""Integration fixtures: the real Kafka broker and PostgreSQL server.

A missing service fails the test with the reason (it is never skipped): these
tests are what proves the stack.
"""

import uuid

import psycopg2
import pytest

from beam_pipeline.settings import StackSettings
from tools.stack import (
    ServiceUnavailable,
    check_kafka,
    check_postgres,
    create_topics,
    delete_topics,
)


@pytest.fixture(scope="session")
def stack() -> StackSettings:
    settings = StackSettings.from_env()
    try:
        check_kafka(settings.kafka_bootstrap_servers)
        check_postgres(settings)
    except ServiceUnavailable as e:
        pytest.fail(str(e), pytrace=False)
    return settings


@pytest.fixture
def fresh_topic(stack):
    """A new 3-partition topic for one test, deleted afterwards."""
    name = f"it_{uuid.uuid4().hex[:10]}"
    create_topics(stack.kafka_bootstrap_servers, [name], partitions=3)
    yield name
    delete_topics(stack.kafka_bootstrap_servers, [name])


@pytest.fixture
def pg(stack):
    connection = psycopg2.connect(**stack.psycopg2_kwargs())
    connection.autocommit = True
    yield connection
    connection.close()
