"""Checks and administration of the local stack, outside the Beam graph.

``python -m tools.stack create-topics`` creates the project's topics
(idempotent); ``scram-user`` gives the local broker the SASL user of
``.beamline/secrets/kafka-client.properties``; ``migrate`` brings the tables up to
the contracts; ``check`` verifies that Kafka and PostgreSQL answer.  Each failure
is one line saying what to do.
"""

from __future__ import annotations

import argparse
import logging
import pathlib
import sys
import time

import psycopg2
from confluent_kafka.admin import (
    AdminClient,
    NewTopic,
    ScramCredentialInfo,
    ScramMechanism,
    UserScramCredentialUpsertion,
)
from psycopg2 import sql

from beam_pipeline.kafka_security import KafkaSecurity, KafkaSecurityError
from beam_pipeline.preflight import (
    ServiceUnavailable,
    admin_client,
    check_kafka,
    check_postgres,
    commit_offsets,
)
from beam_pipeline.settings import StackSettings
from schemas.ddl import NonAdditiveChange, check_key, plan_migration
from schemas.sql import rollup_views

__all__ = [
    "all_tables",
    "project_topics",
    "ServiceUnavailable",
    "check_kafka",
    "check_postgres",
    "commit_offsets",
    "create_topics",
    "delete_topics",
    "ensure_scram_user",
    "migrate",
]

_LOG = logging.getLogger(__name__)


def project_topics() -> tuple[str, ...]:
    """Every topic the project reads or writes: each dataset's and the dead letters'."""
    import datasets  # imports Beam (the contracts' row coders): only when asked

    return (*(datasets.get(name).contract.topic for name in datasets.names()), "dead_letters")


def delete_topics(bootstrap_servers: str, topics) -> None:
    """Deletes ``topics`` and waits for the broker to confirm."""
    admin = admin_client(bootstrap_servers)  # must outlive its futures
    for future in admin.delete_topics(list(topics)).values():
        future.result(timeout=30)


def create_topics(bootstrap_servers: str, topics=None, partitions: int = 3) -> list[str]:
    """Creates the missing ``topics`` (default: ``project_topics()``); returns those
    it created."""
    topics = project_topics() if topics is None else topics
    admin = admin_client(bootstrap_servers)
    existing = set(admin.list_topics(timeout=10).topics)
    missing = [t for t in topics if t not in existing]
    if not missing:
        return []
    futures = admin.create_topics(
        [NewTopic(t, num_partitions=partitions, replication_factor=1) for t in missing]
    )
    for future in futures.values():
        future.result(timeout=30)
    _wait_for_leaders(admin, missing, partitions)
    return missing


def ensure_scram_user(bootstrap_servers: str, client_properties: pathlib.Path) -> str:
    """Gives the broker the SCRAM-SHA-512 credential of the user in ``client_properties``
    (an upsert: the same password again changes nothing a client sees); returns the
    user's name."""
    user, password = KafkaSecurity.load(client_properties).credentials()
    admin = admin_client(bootstrap_servers)
    futures = admin.alter_user_scram_credentials(
        [
            UserScramCredentialUpsertion(
                user, ScramCredentialInfo(ScramMechanism.SCRAM_SHA_512, 8192), password.encode()
            )
        ]
    )
    for future in futures.values():
        future.result(timeout=30)
    return user


def _wait_for_leaders(admin: AdminClient, topics, partitions: int, timeout_s: float = 30) -> None:
    """Returns once every partition of ``topics`` has a leader in the broker's metadata.

    A created topic's future resolves when the controller accepts it; a read of its
    offsets right after can still fail with NOT_LEADER_FOR_PARTITION (seen under load).
    """
    deadline = time.monotonic() + timeout_s
    while True:
        metadata = admin.list_topics(timeout=10).topics
        led = [
            name
            for name in topics
            if name in metadata
            and metadata[name].error is None
            and len(metadata[name].partitions) == partitions
            and all(p.leader >= 0 and p.error is None for p in metadata[name].partitions.values())
        ]
        if len(led) == len(topics):
            return
        if time.monotonic() > deadline:
            raise ServiceUnavailable(
                f"Kafka created {', '.join(topics)} but elected no leader for every partition "
                f"in {timeout_s:.0f} s: see .beamline/kafka/logs/"
            )
        time.sleep(0.1)


def all_tables() -> tuple:
    """Every table the pipeline writes: each registered dataset's, then the shared ones."""
    import datasets  # imports Beam: only when migrating
    from schemas import tables as shared

    per_dataset = (t for name in datasets.names() for t in datasets.get(name).tables.all())
    return (*per_dataset, *shared.SHARED)


def all_views() -> dict[str, str]:
    """Every dataset's rollup views of its aggregate: name → ``SELECT``."""
    import datasets

    return {
        name: select
        for dataset in map(datasets.get, datasets.names())
        for name, select in rollup_views(dataset.contract.aggregate).items()
    }


def migrate(settings: StackSettings, tables=None) -> list[str]:
    """Brings every table up to its contract with additive statements; returns them.

    Grants the writer what it needs: SELECT, INSERT and UPDATE on each table, and
    temporary tables in the database (the batched writer's staging tables).

    Raises:
      NonAdditiveChange: a table differs in a way only a person should fix; nothing
        of that table is changed.
    """
    applied = []
    connection = psycopg2.connect(**settings.psycopg2_kwargs())
    try:
        for table in tables or all_tables():
            with connection, connection.cursor() as cur:
                cur.execute(
                    "SELECT column_name, data_type, is_nullable = 'YES' "
                    "FROM information_schema.columns "
                    "WHERE table_schema = current_schema() AND table_name = %s",
                    (table.name,),
                )
                existing = {name: (kind, nullable) for name, kind, nullable in cur.fetchall()}
                # Each index's columns in order, the primary key's among them.
                cur.execute(
                    "SELECT i.indisprimary, array_agg(a.attname ORDER BY k.position) "
                    "FROM pg_index i CROSS JOIN LATERAL unnest(i.indkey) "
                    "WITH ORDINALITY AS k(attnum, position) "
                    "JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = k.attnum "
                    "WHERE i.indrelid = to_regclass(%s) GROUP BY i.indexrelid, i.indisprimary",
                    (table.name,),
                )
                found = cur.fetchall()
                key = next((list(columns) for primary, columns in found if primary), [])
                indexes = [tuple(columns) for _, columns in found]
                for statement in plan_migration(table, existing, indexes):
                    cur.execute(statement)
                    applied.append(statement)
            if existing:
                # After the columns: a key change needs them, and a person.
                check_key(table, key)
            with connection, connection.cursor() as cur:
                # The pipeline's role: what an upsert needs (SELECT for the ON CONFLICT
                # … WHERE guard), never DELETE, TRUNCATE or DDL.
                cur.execute(
                    sql.SQL("GRANT SELECT, INSERT, UPDATE ON {} TO {}").format(
                        sql.Identifier(table.name), sql.Identifier(settings.pg_writer)
                    )
                )
        if tables is None:
            applied += _create_views(connection, all_views())
        with connection, connection.cursor() as cur:
            # The batched writer COPYs each batch into a temporary staging table
            # (schemas.sql.staging_ddl), which lives and dies with its session.
            cur.execute(
                sql.SQL("GRANT TEMPORARY ON DATABASE {} TO {}").format(
                    sql.Identifier(settings.pg_database), sql.Identifier(settings.pg_writer)
                )
            )
    finally:
        connection.close()
    return applied


def _create_views(connection, views: dict[str, str]) -> list[str]:
    """Creates the views that do not exist yet; an existing one is left as it is (to
    change a rollup, ``DROP VIEW`` it and migrate again)."""
    applied = []
    with connection, connection.cursor() as cur:
        cur.execute("SELECT viewname FROM pg_views WHERE schemaname = current_schema()")
        existing = {name for (name,) in cur.fetchall()}
        for name, select in views.items():
            if name in existing:
                continue
            statement = f"CREATE VIEW {name} AS {select}"
            cur.execute(statement)
            applied.append(statement)
    return applied


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tools.stack")
    parser.add_argument("command", choices=["create-topics", "check", "migrate", "scram-user"])
    args = parser.parse_args(argv)
    settings = StackSettings.from_env()
    try:
        check_kafka(settings.kafka_bootstrap_servers)
        if args.command == "create-topics":
            created = create_topics(
                settings.kafka_bootstrap_servers, partitions=settings.kafka_partitions
            )
            print(
                f"[beamline] topics created: {', '.join(created) if created else 'none needed'}",
                file=sys.stderr,
            )
        elif args.command == "scram-user":
            user = ensure_scram_user(
                settings.kafka_bootstrap_servers, settings.kafka_client_properties
            )
            print(f"[beamline] Kafka SCRAM user {user} set", file=sys.stderr)
        elif args.command == "migrate":
            check_postgres(settings)
            applied = migrate(settings)
            print(
                f"[beamline] tables migrated: {len(applied)} statement(s) applied",
                file=sys.stderr,
            )
        else:
            check_postgres(settings)
    except (ServiceUnavailable, NonAdditiveChange, KafkaSecurityError) as e:
        print(f"beamline: error: {e}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
