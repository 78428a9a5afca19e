"""Transport security of the local stack.

Kafka: the whole job over the broker's SASL_SSL listener (SCRAM-SHA-512 over TLS).
``BEAMLINE_KAFKA_BOOTSTRAP_SERVERS`` points every client at the listener and
``BEAMLINE_KAFKA_PROPERTIES`` names the client settings ``run_local.sh setup``
wrote: the producer, the job's Java read and dead-letter write, the driver's checks
and the reconciliation all authenticate, and the run balances.

PostgreSQL: TCP logins over TLS only, and a client that verifies the server's
certificate (``BEAMLINE_PG_SSLMODE=verify-full``) refuses another one.  Every run
of the suite writes through the Java writer, so each of them crosses TLS too.
"""

import json
import os
import uuid

import psycopg2
import pytest

from beam_pipeline.kafka_security import ENV, KafkaSecurity
from beam_pipeline.preflight import ServiceUnavailable, check_kafka
from beam_pipeline.settings import StackSettings
from tools import main_job
from tools.stack import create_topics, delete_topics

pytestmark = pytest.mark.integration


@pytest.fixture
def sasl_servers():
    return f"127.0.0.1:{os.environ.get('BEAMLINE_KAFKA_SASL_PORT', '9094')}"


@pytest.fixture
def secure_env(stack, sasl_servers, monkeypatch):
    """Every Kafka client of the test and of the job on the SASL_SSL listener."""
    monkeypatch.setenv(ENV, str(stack.kafka_client_properties))
    monkeypatch.setenv("BEAMLINE_KAFKA_BOOTSTRAP_SERVERS", sasl_servers)
    return StackSettings.from_env()


def test_the_listener_refuses_a_wrong_user_and_a_plaintext_client(
    stack, sasl_servers, tmp_path, monkeypatch
):
    user, _ = KafkaSecurity.load(stack.kafka_client_properties).credentials()
    wrong = tmp_path / "wrong.properties"
    wrong.write_text(
        stack.kafka_client_properties.read_text().replace(f'username="{user}"', 'username="x"')
    )
    wrong.chmod(0o600)
    monkeypatch.setenv(ENV, str(wrong))
    with pytest.raises(ServiceUnavailable, match="Kafka does not answer"):
        check_kafka(sasl_servers)
    monkeypatch.delenv(ENV)  # PLAINTEXT to the SASL_SSL port
    with pytest.raises(ServiceUnavailable, match="Kafka does not answer"):
        check_kafka(sasl_servers)
    monkeypatch.setenv(ENV, str(stack.kafka_client_properties))
    check_kafka(sasl_servers)


def test_the_main_job_balances_over_sasl_ssl(secure_env, tmp_path, capsys):
    topic = f"it_sasl_{uuid.uuid4().hex[:8]}"
    servers = secure_env.kafka_bootstrap_servers
    check_kafka(servers)
    create_topics(servers, [topic], partitions=3)  # the admin client authenticates too
    try:
        code = main_job.main(
            [
                "--events=200",
                "--rate=5",
                "--malformed=0.05",
                "--invalid=0.02",
                "--duplicates=0.05",
                f"--kafka_topic={topic}",
                f"--output_dir={tmp_path}",
            ]
        )
        summary = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    finally:
        delete_topics(servers, [topic])
    assert code == 0 and summary["passed"], summary
    terms = summary["terms"]
    # Read by the Java consumer, dead letters written by the Java producer and read
    # back by the reconciliation's consumer: all over the SASL_SSL listener.
    assert terms["produced"] == 210
    assert terms["kafka_dead_letters"] == terms["dead_letters"] == 14  # 10 malformed, 4 invalid
    logs = b"".join(p.read_bytes() for p in (secure_env.home / "logs").glob("expansion*.log"))
    _, password = KafkaSecurity.load(secure_env.kafka_client_properties).credentials()
    assert password.encode() not in logs


def test_postgres_takes_tcp_logins_over_tls_only(stack):
    kwargs = {**stack.psycopg2_kwargs(writer=True), "sslmode": "require"}
    with psycopg2.connect(**kwargs) as connection, connection.cursor() as cur:
        cur.execute("SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()")
        assert cur.fetchone() == (True,)
    with pytest.raises(psycopg2.OperationalError, match="no pg_hba.conf entry .* no encryption"):
        psycopg2.connect(**{**kwargs, "sslmode": "disable"})


def test_a_verifying_client_refuses_a_certificate_its_ca_did_not_sign(stack):
    # The Kafka broker's CA signed another certificate than PostgreSQL's.
    other_ca = stack.home / "secrets" / "kafka-ca.pem"
    kwargs = {**stack.psycopg2_kwargs(), "sslmode": "verify-full", "sslrootcert": str(other_ca)}
    with pytest.raises(psycopg2.OperationalError, match="certificate verify failed"):
        psycopg2.connect(**kwargs)
    ca = stack.home / "secrets" / "pg-ca.pem"
    psycopg2.connect(**{**kwargs, "sslrootcert": str(ca)}).close()
